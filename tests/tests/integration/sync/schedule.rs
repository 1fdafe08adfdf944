//! The scheduled room check through its run record: paused, it fetches nothing (not
//! even the room list) and says so; resumed, it catches up with what changed meanwhile;
//! a person's run now of it is run by the scheduler's tick.

use cwsync::chatwork::ChatworkClient;
use cwsync::config::Env;
use cwsync::jobs::JobStatus;
use cwsync::schedule::runs::{self, RunStatus};
use cwsync::schedule::{ScheduleSettings, Task};

use super::check::SETTLE;
use super::{Backend, SyncRig, client_settings, messages_requests, poster, room_with_history};

impl SyncRig {
    fn schedule_settings(&self) -> ScheduleSettings {
        let client = ChatworkClient::new(client_settings(&self.fake), self.pool().clone()).unwrap();
        // One room check per invocation (deployed, four 15 s apart).
        ScheduleSettings::from_env(&Env::from_pairs([("ROOM_CHECK_EVERY_SECONDS", "60")]))
            .unwrap()
            .with_chatwork(client)
    }

    /// The schedule's start of the room check, as the scheduler does it.
    async fn fire_check(&self) -> runs::Run {
        let settings = self.schedule_settings();
        runs::fire(
            self.pool(),
            self.queues.as_ref(),
            Task::RoomCheck,
            &settings,
        )
        .await
        .unwrap()
    }

    async fn set_paused(&self, paused: bool) {
        let mut conn = self.pool().acquire().await.unwrap();
        if paused {
            runs::pause(
                &mut conn,
                Task::RoomCheck,
                "admin-1",
                Some("reconnecting Chatwork"),
            )
            .await
            .unwrap();
        } else {
            runs::resume(&mut conn, Task::RoomCheck).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_paused_room_check_fetches_nothing_and_catches_up_when_resumed() {
    let rooms: Vec<_> = (1..=5).map(|i| room_with_history(5600 + i, 3)).collect();
    let rig = SyncRig::new(Backend::Embedded, rooms).await;
    // The first check registers and fetches every room.
    let first = rig.fire_check().await;
    assert_eq!(first.status, RunStatus::Completed, "{first:?}");
    let job_id = first.report.as_ref().unwrap()["jobId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(rig.run_to_end(job_id).await.status, JobStatus::Completed);
    tokio::time::sleep(SETTLE).await;

    rig.set_paused(true).await;
    for room in [5602, 5604] {
        rig.fake
            .post_message(room, &poster(), "while paused")
            .unwrap();
    }
    let jobs_before: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(rig.pool())
        .await
        .unwrap();
    let checks_before: i64 = sqlx::query_scalar("SELECT count(*) FROM room_checks")
        .fetch_one(rig.pool())
        .await
        .unwrap();
    let requests_before = rig.fake.requests().len();
    for _ in 0..2 {
        let paused = rig.fire_check().await;
        assert_eq!(paused.status, RunStatus::Paused, "{paused:?}");
        let report = paused.report.as_ref().unwrap();
        assert_eq!(report["paused"], true, "{report}");
        assert_eq!(report["reason"], "reconnecting Chatwork", "{report}");
        assert!(
            report["message"]
                .as_str()
                .unwrap()
                .contains("no Chatwork request")
        );
    }
    assert!(
        rig.requests_since(requests_before).is_empty(),
        "a paused check sends no request"
    );
    let (jobs, checks): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM room_checks)")
            .fetch_one(rig.pool())
            .await
            .unwrap();
    assert_eq!(
        (jobs, checks),
        (jobs_before, checks_before),
        "no job, no check"
    );

    // Resumed, the next check fetches exactly what changed while it was paused (settled,
    // so that the run now below finds only its own room changed).
    tokio::time::sleep(SETTLE).await;
    rig.set_paused(false).await;
    let caught_up = rig.fire_check().await;
    assert_eq!(caught_up.status, RunStatus::Completed, "{caught_up:?}");
    let report = caught_up.report.as_ref().unwrap();
    assert_eq!(report["outcome"], "fetching", "{report}");
    assert_eq!(report["changed"], 2, "{report}");
    let job_id = report["jobId"].as_str().unwrap().parse().unwrap();
    assert_eq!(rig.run_to_end(job_id).await.status, JobStatus::Completed);
    let mut fetched = messages_requests(&rig.requests_since(requests_before));
    fetched.sort();
    assert_eq!(fetched, [5602, 5604]);
    for room in [5602, 5604] {
        rig.holds_everything_of(room).await;
    }
    // A person's run now of the check: requested, then run by the scheduler's tick.
    rig.fake.post_message(5601, &poster(), "asked for").unwrap();
    let runs::Requested::Run(asked) =
        runs::request(rig.pool(), Task::RoomCheck, "admin-1", false, "r-1")
            .await
            .unwrap()
    else {
        panic!("the run is requested");
    };
    assert_eq!(asked.status, RunStatus::Requested);
    let done = runs::run_requested(rig.pool(), rig.queues.as_ref(), &rig.schedule_settings())
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].id, done[0].status),
        (asked.id, RunStatus::Completed)
    );
    let report = done[0].report.as_ref().unwrap();
    assert_eq!(report["changed"], 1, "{report}");
    let job_id = report["jobId"].as_str().unwrap().parse().unwrap();
    assert_eq!(rig.run_to_end(job_id).await.status, JobStatus::Completed);
    rig.holds_everything_of(5601).await;

    // The history shows it all, newest first.
    let history = runs::list(rig.pool(), Task::RoomCheck, None, 10)
        .await
        .unwrap();
    let statuses: Vec<RunStatus> = history.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            RunStatus::Completed,
            RunStatus::Completed,
            RunStatus::Paused,
            RunStatus::Paused,
            RunStatus::Completed
        ]
    );
    assert_eq!(history[0].trigger, "admin-1");
}
