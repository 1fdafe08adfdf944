//! What one fetch of a room tells: its messages, each once, the newest id, how many
//! messages the room had, and whether some could not be fetched (a gap).

use std::cmp::Ordering;

use uuid::Uuid;

use crate::chatwork::{MESSAGES_PER_REQUEST, Message, compare_message_ids};
use crate::sync::snapshot::{Entry, ListedRoom};

/// The room as its last successful sync left it.
#[derive(Debug, Clone)]
pub(super) struct RoomState {
    pub id: Uuid,
    pub left_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_message_id: Option<String>,
    pub synced_last_update_time: Option<chrono::DateTime<chrono::Utc>>,
    pub synced_message_num: Option<i32>,
}

impl RoomState {
    /// Whether the room moved since its last successful sync, as far as the snapshot
    /// tells. A room the snapshot does not list counts as changed: only a request can
    /// tell what became of it.
    pub(super) fn changed(&self, entry: &Entry) -> bool {
        match entry {
            Entry::Listed(listed) => {
                let now = chrono::DateTime::from_timestamp(listed.last_update_time, 0)
                    .filter(|_| listed.last_update_time > 0);
                now != self.synced_last_update_time
            }
            Entry::NotListed => true,
        }
    }
}

/// One fetch of a room and what it tells.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fetch {
    /// The messages returned, each id once.
    pub messages: Vec<Message>,
    /// The numerically greatest id returned.
    pub newest_id: Option<String>,
    /// How many messages the room had at this sync, as far as we know: the baseline that
    /// the next sync compares `message_num` with. `None` without a snapshot entry.
    pub message_num: Option<i64>,
    /// The estimated number of messages that could not be fetched, when there is a gap.
    pub gap: Option<i64>,
}

impl Fetch {
    /// Detects a gap by two signs: every message returned is newer than the last one
    /// stored and a full page came back (there may be more before them), or the room's
    /// `message_num` grew by more than the new messages returned. The estimate is the
    /// second sign's shortfall, or at least 1 when only the first sign shows.
    pub(super) fn analyse(mut messages: Vec<Message>, room: &RoomState, entry: &Entry) -> Fetch {
        messages.sort_by(|a, b| compare_message_ids(&a.message_id, &b.message_id));
        messages.dedup_by(|a, b| compare_message_ids(&a.message_id, &b.message_id).is_eq());
        let newest_id = messages.last().map(|m| m.message_id.clone());
        let last = room.last_message_id.as_deref();
        let new_count = messages
            .iter()
            .filter(|m| {
                last.is_none_or(|l| compare_message_ids(&m.message_id, l) == Ordering::Greater)
            })
            .count() as i64;
        let full_page_all_new = last.is_some()
            && messages.len() >= MESSAGES_PER_REQUEST
            && new_count == messages.len() as i64;
        let before = i64::from(room.synced_message_num.unwrap_or(0));
        let (shortfall, message_num) = match entry {
            Entry::Listed(ListedRoom { message_num, .. }) => (
                Some(message_num - before - new_count).filter(|m| *m > 0),
                // Messages posted between the snapshot and the fetch were fetched too.
                Some((*message_num).max(before + new_count)),
            ),
            Entry::NotListed => (None, None),
        };
        let gap = match (shortfall, full_page_all_new) {
            (Some(missed), _) => Some(missed),
            (None, true) => Some(1),
            (None, false) => None,
        };
        Fetch {
            messages,
            newest_id,
            message_num,
            gap,
        }
    }
}

/// Seconds between a room's `last_update_time` and our fetch below which more messages
/// of that same second may have been posted after the fetch (Chatwork's times have a
/// resolution of one second; a second more for the clocks' skew).
const SETTLE_SECS: i64 = 2;

/// The `last_update_time` to record as synced after fetching at `fetched_at` (epoch
/// seconds): the snapshot's, unless it is so recent that a message posted in the same
/// second after our fetch would leave it unchanged; then none, so that the next sync
/// fetches the room again rather than miss that message.
pub(super) fn settled_update_time(
    last_update_time: i64,
    fetched_at: i64,
) -> Option<chrono::DateTime<chrono::Utc>> {
    if last_update_time <= 0 || last_update_time > fetched_at - SETTLE_SECS {
        return None;
    }
    chrono::DateTime::from_timestamp(last_update_time, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chatwork::MessageAccount;

    fn message(id: &str) -> Message {
        Message {
            message_id: id.into(),
            account: MessageAccount {
                account_id: 1,
                name: "a".into(),
                avatar_image_url: String::new(),
            },
            body: "b".into(),
            send_time: 1,
            update_time: 0,
        }
    }

    fn room(last: Option<&str>, synced_num: Option<i32>) -> RoomState {
        RoomState {
            id: Uuid::nil(),
            left_at: None,
            last_message_id: last.map(str::to_owned),
            synced_last_update_time: None,
            synced_message_num: synced_num,
        }
    }

    fn listed(message_num: i64) -> Entry {
        Entry::Listed(ListedRoom {
            last_update_time: 1,
            message_num,
        })
    }

    fn ids(from: u64, count: u64) -> Vec<Message> {
        (from..from + count)
            .map(|i| message(&i.to_string()))
            .collect()
    }

    #[test]
    fn a_last_update_time_too_recent_to_be_settled_is_not_recorded() {
        assert_eq!(settled_update_time(0, 1_000), None);
        assert_eq!(settled_update_time(1_000, 1_000), None);
        assert_eq!(settled_update_time(999, 1_000), None);
        assert_eq!(
            settled_update_time(998, 1_000).map(|t| t.timestamp()),
            Some(998)
        );
    }

    #[test]
    fn the_newest_id_is_the_numeric_maximum() {
        let fetch = Fetch::analyse(
            vec![message("100"), message("99"), message("100")],
            &room(None, None),
            &listed(2),
        );
        assert_eq!(fetch.newest_id.as_deref(), Some("100"));
        assert_eq!(fetch.messages.len(), 2, "duplicates dropped");
        assert_eq!(fetch.gap, None);
        // "99" was stored: "100" is newer although it sorts first as text.
        let fetch = Fetch::analyse(vec![message("100")], &room(Some("99"), Some(1)), &listed(2));
        assert_eq!(fetch.message_num, Some(2));
        assert_eq!(fetch.gap, None);
    }

    #[test]
    fn a_full_page_of_new_messages_is_a_gap() {
        // 250 arrived after the stored last id 1000; the page holds the newest 100.
        let page = ids(1151, 100);
        let fetch = Fetch::analyse(page.clone(), &room(Some("1000"), Some(10)), &listed(260));
        assert_eq!(fetch.gap, Some(150));
        assert_eq!(fetch.message_num, Some(260));
        // Without the room in the snapshot, only the first sign shows: at least one.
        let fetch = Fetch::analyse(page, &room(Some("1000"), Some(10)), &Entry::NotListed);
        assert_eq!(fetch.gap, Some(1));
        assert_eq!(fetch.message_num, None);
    }

    #[test]
    fn a_page_overlapping_what_is_stored_is_no_gap() {
        // 40 new after 1059: the page of 100 reaches back into stored messages.
        let fetch = Fetch::analyse(ids(1000, 100), &room(Some("1059"), Some(60)), &listed(100));
        assert_eq!(fetch.gap, None);
        assert_eq!(fetch.message_num, Some(100));
    }

    #[test]
    fn message_num_growth_beyond_the_new_messages_is_a_gap() {
        // The first sync of a room with 180 messages gets the latest 100.
        let fetch = Fetch::analyse(ids(1, 100), &room(None, None), &listed(180));
        assert_eq!(fetch.gap, Some(80));
        // Messages posted between the snapshot and the fetch are no gap, now or at the
        // next sync.
        let fetch = Fetch::analyse(ids(1, 12), &room(None, None), &listed(10));
        assert_eq!((fetch.gap, fetch.message_num), (None, Some(12)));
        let next = Fetch::analyse(ids(1, 12), &room(Some("12"), Some(12)), &listed(12));
        assert_eq!(next.gap, None);
    }
}
