//! Fake Chatwork rooms with a settled history, for the sync tests and the benchmarks.

use std::time::{SystemTime, UNIX_EPOCH};

use fake_chatwork::{Account, Message, Room, RoomType};

/// Now, in epoch seconds (Chatwork's unit).
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// A group room whose `count` messages were posted an hour ago (so that its
/// `last_update_time` is long settled), with 19-digit ids unique to the room: 10 digits
/// of time, then 9 of room and sequence, as Chatwork's look. `body(i)` is message i's.
pub fn settled_room(room_id: i64, count: usize, body: impl Fn(usize) -> String) -> Room {
    let mut room = Room::new(room_id, format!("room {room_id}"), RoomType::Group);
    let at = now_secs() - 3600;
    let author = Account::new(1000 + room_id % 7, "佐藤 健一");
    room.messages = (0..count)
        .map(|i| Message {
            message_id: format!(
                "{}{:06}{:03}",
                at - (count - i) as i64,
                room_id % 1_000_000,
                i % 1000
            ),
            account: author.clone(),
            body: body(i),
            send_time: at - (count - i) as i64,
            update_time: 0,
        })
        .collect();
    room.last_update_time = if count > 0 { at } else { 0 };
    room
}
