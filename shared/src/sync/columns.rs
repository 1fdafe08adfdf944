//! A room list as the columns of an `UNNEST` upsert into `chatwork_rooms`: the rooms sync
//! and the room check both write Chatwork's room list this way, the same six columns in
//! the same order.

use crate::chatwork::Room;

/// One vector per column, one entry per room, in the list's order.
#[derive(Debug, Default)]
pub(crate) struct RoomColumns {
    pub ids: Vec<i64>,
    pub names: Vec<String>,
    pub types: Vec<String>,
    /// Empty when the room has no icon (the statements store that as NULL).
    pub icons: Vec<String>,
    /// Chatwork's `last_update_time` (Unix seconds; 0 when it never moved).
    pub updated: Vec<i64>,
    pub counts: Vec<i64>,
}

impl RoomColumns {
    pub(crate) fn of(rooms: &[Room]) -> Self {
        let mut columns = Self::default();
        for room in rooms {
            columns.ids.push(room.room_id);
            columns.names.push(room.name.clone());
            columns.types.push(room.room_type.as_str().to_owned());
            columns.icons.push(room.icon_path.clone());
            columns.updated.push(room.last_update_time);
            columns.counts.push(room.message_num);
        }
        columns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_column_holds_its_field_in_the_lists_order() {
        let rooms: Vec<Room> = serde_json::from_value(serde_json::json!([
            {"room_id": 2, "name": "b", "type": "group", "icon_path": "https://i/b.png",
             "last_update_time": 1700000000, "message_num": 5},
            {"room_id": 1, "name": "a", "type": "my", "icon_path": "",
             "last_update_time": 0, "message_num": 0}
        ]))
        .unwrap();
        let columns = RoomColumns::of(&rooms);
        assert_eq!(columns.ids, [2, 1]);
        assert_eq!(columns.names, ["b", "a"]);
        assert_eq!(columns.types, ["group", "my"]);
        assert_eq!(columns.icons, ["https://i/b.png", ""]);
        assert_eq!(columns.updated, [1_700_000_000, 0]);
        assert_eq!(columns.counts, [5, 0]);
    }
}
