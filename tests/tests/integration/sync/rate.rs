//! Syncs when Chatwork's rate window is not what the shared budget believes: the window
//! shrinks between two syncs (a token that ran under 300 per 5 minutes now gets 12 per
//! 4 s). A 429 is Chatwork's word that the window is spent and a fresh answer its word on
//! when it resets, so a sync learns the new window from its first answer and is sent no
//! 429 at all (its records are handled one after another: none is in flight when the
//! window changes). Prints the counts (`--nocapture` shows them).

use std::time::Duration;

use cwsync::jobs::JobStatus;

use super::{Backend, SyncRig, poster, room_with_history};

#[tokio::test]
async fn a_window_that_shrinks_between_syncs_sends_them_no_429() {
    // 21 rooms: one room list and 21 message reads in the messages sync.
    let rooms: Vec<_> = (1..=21).map(|i| room_with_history(2600 + i, 3)).collect();
    let rig = SyncRig::new(Backend::Embedded, rooms).await;
    assert_eq!(rig.fake.rate_limit().0, 300);
    let job = rig.rooms_sync().await;
    assert_eq!(job.status, JobStatus::Completed);

    rig.fake.set_rate_limit(12, Duration::from_secs(4));
    let before = rig.fake.requests().len();
    let limited_before = rig.fake.rate_limited_count();
    let job = rig.messages_sync(None).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let sent = rig.requests_since(before).len();
    let limited = rig.fake.rate_limited_count() - limited_before;
    println!("messages sync after the window change: {limited} answers of 429 in {sent} requests");
    for room in 2601..=2621 {
        assert_eq!(rig.stored(room).await.len(), 3, "room {room}");
    }
    assert_eq!(limited, 0, "no 429: the first answer showed the new window");
    assert!(
        rig.fake.rate_windows(rig.fake.token()).len() >= 3,
        "it spanned windows"
    );

    // The same for a rooms sync with 20 new rooms' descriptions to read, after another
    // change (back to a long window, then a short one again). Knowing the window, it
    // reads only the descriptions that leave half of it to other work (the rest wait
    // for the next rooms sync), where a belief in 300 would have sent all 20.
    rig.fake.set_rate_limit(300, Duration::from_secs(300));
    let job = rig.rooms_sync().await;
    assert_eq!(job.status, JobStatus::Completed);
    for i in 1..=20 {
        rig.fake.add_room(room_with_history(2700 + i, 1));
    }
    rig.fake.post_message(2601, &poster(), "new").unwrap();
    rig.fake.set_rate_limit(12, Duration::from_secs(4));
    let before = rig.fake.requests().len();
    let limited_before = rig.fake.rate_limited_count();
    let job = rig.rooms_sync().await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let sent = rig.requests_since(before).len();
    let limited = rig.fake.rate_limited_count() - limited_before;
    println!(
        "rooms sync of 20 new rooms after the window change: {limited} answers of 429 in {sent} requests"
    );
    assert_eq!(rig.room(2720).await.name, "room 2720");
    assert_eq!(limited, 0, "no 429: the first answer showed the new window");
    assert!(
        sent <= 12,
        "{sent} requests: half of the new window for descriptions"
    );
}
