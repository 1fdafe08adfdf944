//! The Chatwork client over real HTTP against the fake Chatwork, with its rate budget in
//! a real Postgres.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cwsync::chatwork::budget::{BudgetSettings, RateBudget, RateHeaders, Reservation};
use cwsync::chatwork::{
    BreakerSettings, ChatworkClient, ChatworkError, ClientSettings, MessagesOptions,
    latest_message_id,
};
use cwsync_tests::TestDb;
use fake_chatwork::{
    FakeChatwork, FakeSettings, Fault, FaultScope, MAX_MESSAGES, RoomAccess, WindowKind,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;

const BIG_ROOM: i64 = 281_000_105;
const DM_ROOM: i64 = 281_000_102;

/// Client settings for `fake`, with short backoffs so that retries do not drag a test.
fn settings(fake: &FakeChatwork) -> ClientSettings {
    let mut settings = ClientSettings::new(
        SecretString::from(fake.token().to_owned()),
        Url::parse(&fake.base_url()).unwrap(),
    );
    settings.request_timeout = Duration::from_secs(5);
    settings.backoff_initial = Duration::from_millis(20);
    settings.backoff_max = Duration::from_millis(200);
    settings.assumed_window = fake.rate_limit().1;
    settings
}

fn client(fake: &FakeChatwork, db: &TestDb) -> ChatworkClient {
    ChatworkClient::new(settings(fake), db.pool.clone()).unwrap()
}

fn in_secs(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

fn statuses(fake: &FakeChatwork) -> Vec<Option<u16>> {
    fake.requests().iter().map(|r| r.status).collect()
}

fn epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn rooms_and_messages_are_read_and_a_204_is_an_empty_list() {
    let fake = FakeChatwork::demo().await;
    let db = TestDb::new().await;
    let (client, meter) = client(&fake, &db).metered();

    let rooms = client.list_rooms(in_secs(30)).await.unwrap().items;
    assert_eq!(rooms.len(), 12);
    let big = rooms.iter().find(|r| r.room_id == BIG_ROOM).unwrap();
    assert!(big.message_num > 100);
    assert!(big.last_updated_at().is_some());

    let detail = client.get_room(BIG_ROOM, in_secs(30)).await.unwrap();
    assert_eq!(detail.room.name, big.name);
    assert!(detail.description.contains("日報"));

    let first = client
        .list_messages(BIG_ROOM, MessagesOptions::new(in_secs(30)))
        .await
        .unwrap()
        .items;
    assert_eq!(first.len(), MAX_MESSAGES);
    let newest = fake
        .room(BIG_ROOM)
        .unwrap()
        .messages
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        latest_message_id(first.iter().map(|m| m.message_id.as_str())),
        Some(newest.message_id.as_str())
    );
    assert!(first.iter().all(|m| m.message_id.len() == 19));

    // Nothing new: Chatwork's 204 is an empty list, not an error.
    let nothing = client
        .list_messages(BIG_ROOM, MessagesOptions::new(in_secs(30)))
        .await
        .unwrap()
        .items;
    assert!(nothing.is_empty());
    assert_eq!(fake.requests().last().unwrap().status, Some(204));

    // An edit shows with force, as an update time.
    assert!(fake.edit_message(BIG_ROOM, &newest.message_id, "edited ✏️"));
    let forced = client
        .list_messages(BIG_ROOM, MessagesOptions::new(in_secs(30)).force(true))
        .await
        .unwrap()
        .items;
    assert_eq!(forced.len(), MAX_MESSAGES);
    let edited = forced.last().unwrap();
    assert_eq!(edited.body, "edited ✏️");
    assert!(edited.updated_at().unwrap() > edited.sent_at());
    assert_eq!(
        fake.requests().last().unwrap().query.as_deref(),
        Some("force=1")
    );

    let stats = meter.snapshot();
    assert_eq!(stats.requests, 5);
    assert_eq!(stats.status_count(200), 4);
    assert_eq!(stats.status_count(204), 1);
    assert_eq!(stats.rate_limit_waits, 0);

    // The budget learned Chatwork's numbers and holds no reservation.
    let state = client.budget().state().await.unwrap().unwrap();
    assert!(state.limit_known);
    assert_eq!(state.limit_count, 300);
    assert_eq!(state.remaining, 300 - 5);
    assert_eq!(state.in_flight, 0);
}

#[tokio::test]
async fn meters_count_each_jobs_requests_on_a_shared_client() {
    let fake = FakeChatwork::demo().await;
    let db = TestDb::new().await;
    let shared = client(&fake, &db);
    let (job_a, meter_a) = shared.metered();
    let (job_b, meter_b) = shared.metered();
    let (outer, meter_outer) = shared.metered();
    let (inner, meter_inner) = outer.metered();
    fake.fail_next(1, 503);
    let deadline = in_secs(30);
    let ((), (), inner_result) = tokio::join!(
        async {
            for _ in 0..3 {
                job_a.list_rooms(deadline).await.unwrap();
            }
        },
        async {
            for room in [DM_ROOM, BIG_ROOM] {
                job_b.get_room(room, deadline).await.unwrap();
            }
        },
        inner.list_rooms(deadline),
    );
    inner_result.unwrap();
    let (a, b) = (meter_a.snapshot(), meter_b.snapshot());
    // One of the six calls met the 503 and retried it: seven requests in all.
    assert_eq!(a.requests + b.requests + meter_inner.snapshot().requests, 7);
    assert_eq!(
        a.status_count(200) + b.status_count(200) + meter_inner.snapshot().status_count(200),
        6
    );
    assert_eq!(
        meter_outer.snapshot(),
        meter_inner.snapshot(),
        "meters stack"
    );
    assert_eq!(fake.counted_requests(), 7);
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_call_then_succeeds() {
    let fake =
        FakeChatwork::start(FakeSettings::demo().with_rate_limit(5, Duration::from_secs(2))).await;
    let db = TestDb::new().await;
    let (client, meter) = client(&fake, &db).metered();
    // Someone else spent this window of the token.
    fake.use_up_rate_limit(fake.token());
    let reset = fake.rate_limit_state(fake.token()).reset;

    let rooms = client.list_rooms(in_secs(30)).await.unwrap().items;
    assert_eq!(rooms.len(), 12);
    assert_eq!(statuses(&fake), [Some(429), Some(200)]);
    assert_eq!(fake.rate_limited_count(), 1);
    let retried_at = fake.requests()[1]
        .at
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(retried_at >= reset, "the retry waited for the reset");
    let stats = meter.snapshot();
    assert_eq!(stats.status_count(429), 1);
    assert_eq!(stats.status_count(200), 1);
    assert_eq!(stats.rate_limit_waits, 1);
    assert!(stats.rate_limit_wait_ms > 0);
}

#[tokio::test]
async fn server_errors_are_retried_until_one_succeeds() {
    let fake = FakeChatwork::demo().await;
    let db = TestDb::new().await;
    let client = client(&fake, &db);
    fake.fail_next(2, 503);
    let detail = client.get_room(DM_ROOM, in_secs(30)).await.unwrap();
    assert_eq!(detail.room.room_id, DM_ROOM);
    assert_eq!(statuses(&fake), [Some(503), Some(503), Some(200)]);

    // A share of random 5xx over many calls: every call still succeeds.
    fake.set_error_rate(0.3);
    for _ in 0..10 {
        client.list_rooms(in_secs(30)).await.unwrap();
    }
    fake.clear_faults();
    let state = client.budget().state().await.unwrap().unwrap();
    assert_eq!(state.in_flight, 0);
    assert_eq!(
        state.remaining as u64,
        300 - fake.counted_requests(),
        "every attempt took a unit"
    );
}

#[tokio::test]
async fn exhausted_retries_give_the_typed_error() {
    let fake = FakeChatwork::demo().await;
    let db = TestDb::new().await;
    let mut settings = settings(&fake);
    settings.max_attempts = 3;
    let client = ChatworkClient::new(settings, db.pool.clone()).unwrap();
    fake.inject(FaultScope::Room(DM_ROOM), Fault::Status(502), None);
    let err = client
        .list_messages(DM_ROOM, MessagesOptions::new(in_secs(30)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ChatworkError::Status { status: 502, errors, .. } if errors == &["Injected fault"]),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(err.status(), Some(502));
    assert_eq!(
        err.to_string(),
        format!("Chatwork answered 502 to GET /rooms/{DM_ROOM}/messages: Injected fault")
    );
    assert_eq!(statuses(&fake), [Some(502); 3]);

    // Retries also stop when the next one would start after the retry time bound.
    let mut settings = self::settings(&fake);
    settings.max_attempts = 10;
    settings.backoff_initial = Duration::from_millis(400);
    settings.backoff_max = Duration::from_millis(400);
    settings.retry_max_elapsed = Duration::from_millis(500);
    let bounded = ChatworkClient::new(settings, db.another_pool()).unwrap();
    let before = fake.requests().len();
    let err = bounded
        .list_messages(DM_ROOM, MessagesOptions::new(in_secs(30)))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(502));
    let attempts = fake.requests().len() - before;
    assert!((1..=2).contains(&attempts), "{attempts} attempts");
}

#[tokio::test]
async fn a_request_that_hangs_past_the_timeout_is_retried_then_reported() {
    let fake = FakeChatwork::demo().await;
    let db = TestDb::new().await;
    let mut settings = settings(&fake);
    settings.request_timeout = Duration::from_secs(1);
    settings.max_attempts = 2;
    let (client, meter) = ChatworkClient::new(settings, db.pool.clone())
        .unwrap()
        .metered();

    fake.hang_next(1, Duration::from_secs(10));
    let rooms = client.list_rooms(in_secs(30)).await.unwrap().items;
    assert_eq!(rooms.len(), 12);
    assert_eq!(statuses(&fake), [None, Some(200)]);

    fake.inject(
        FaultScope::Room(DM_ROOM),
        Fault::Hang(Duration::from_secs(10)),
        None,
    );
    let err = client.get_room(DM_ROOM, in_secs(30)).await.unwrap_err();
    assert!(
        matches!(err, ChatworkError::Timeout { attempts: 2, after, .. } if after == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(err.status(), None);
    let stats = meter.snapshot();
    assert_eq!(stats.timeouts, 3);
    assert_eq!(stats.requests, 4);
}

#[tokio::test]
async fn a_request_never_outlives_the_callers_deadline() {
    let fake = FakeChatwork::demo().await;
    let db = TestDb::new().await;
    let mut settings = settings(&fake);
    settings.request_timeout = Duration::from_secs(20);
    let client = ChatworkClient::new(settings, db.pool.clone()).unwrap();
    fake.hang_next(1, Duration::from_secs(60));
    let started = Instant::now();
    let err = client
        .list_rooms(Instant::now() + Duration::from_millis(1500))
        .await
        .unwrap_err();
    // The request timeout (20 s) was cut to the time left, and no retry began past it.
    assert!(matches!(err, ChatworkError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let err = client.list_rooms(Instant::now()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ChatworkError::Deadline { .. } | ChatworkError::RateLimited { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let fake = FakeChatwork::demo().await;
    let db = TestDb::new().await;
    let client = client(&fake, &db);

    fake.set_room_access(DM_ROOM, RoomAccess::Forbidden);
    let forbidden = client
        .list_messages(DM_ROOM, MessagesOptions::new(in_secs(30)))
        .await
        .unwrap_err();
    assert_eq!(forbidden.status(), Some(403));
    fake.set_room_access(DM_ROOM, RoomAccess::Gone);
    let gone = client.get_room(DM_ROOM, in_secs(30)).await.unwrap_err();
    assert_eq!(gone.status(), Some(404));
    let unknown = client.get_room(42, in_secs(30)).await.unwrap_err();
    assert_eq!(unknown.status(), Some(404));
    let invalid = client.get_room(0, in_secs(30)).await.unwrap_err();
    assert_eq!(invalid.status(), Some(400));
    for err in [&forbidden, &gone, &unknown, &invalid] {
        assert!(!err.is_retryable(), "{err}");
    }
    assert!(gone.is_room_unavailable() && forbidden.is_room_unavailable());
    assert!(gone.to_string().contains("Room not found"), "{gone}");
    assert_eq!(fake.requests().len(), 4, "one request each");

    let mut wrong = settings(&fake);
    wrong.token = SecretString::from("not-the-token".to_owned());
    let stranger = ChatworkClient::new(wrong, db.pool.clone()).unwrap();
    let unauthorized = stranger.list_rooms(in_secs(30)).await.unwrap_err();
    assert_eq!(unauthorized.status(), Some(401));
    assert!(!unauthorized.is_retryable());
    assert_eq!(fake.requests().len(), 5);
    // Its budget is its own (another token) and gave the probe back.
    let state = stranger.budget().state().await.unwrap().unwrap();
    assert!(!state.limit_known);
    assert_eq!((state.remaining, state.in_flight), (1, 0));
}

#[tokio::test]
async fn a_budget_spent_past_the_deadline_returns_rate_limited_at_once() {
    let fake =
        FakeChatwork::start(FakeSettings::demo().with_rate_limit(5, Duration::from_secs(60))).await;
    let db = TestDb::new().await;
    let (client, meter) = client(&fake, &db).metered();
    fake.use_up_rate_limit(fake.token());
    let reset = fake.rate_limit_state(fake.token()).reset;

    let started = Instant::now();
    let err = client.list_rooms(in_secs(3)).await.unwrap_err();
    let ChatworkError::RateLimited { until } = err else {
        panic!("{err:?}");
    };
    // Far sooner than the minute the window has left: it did not wait for it.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(until.timestamp() >= reset, "{until} vs {reset}");
    assert!(err.is_retryable());
    assert_eq!(statuses(&fake), [Some(429)]);

    // The budget now knows: the next call does not even send a request.
    let err = client.get_room(DM_ROOM, in_secs(3)).await.unwrap_err();
    assert!(matches!(err, ChatworkError::RateLimited { .. }), "{err:?}");
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(meter.snapshot().requests, 1);

    // Another process on the same token learns it from the shared budget too.
    let other = ChatworkClient::new(settings(&fake), db.another_pool()).unwrap();
    let err = other.list_rooms(in_secs(3)).await.unwrap_err();
    assert!(matches!(err, ChatworkError::RateLimited { .. }), "{err:?}");
    assert_eq!(fake.requests().len(), 1);
}

/// Three "processes" (clients with pools of their own) with two concurrent callers
/// each, all on one token, as fast as the budget lets them.
async fn three_processes_share_one_token(fake: FakeChatwork, margin: Duration, per_caller: u64) {
    let db = TestDb::new().await;
    let deadline = in_secs(90);
    let mut callers = tokio::task::JoinSet::new();
    let mut meters = Vec::new();
    for process in 0..3 {
        let mut settings = settings(&fake);
        settings.reset_margin = margin;
        let client = ChatworkClient::new(settings, db.another_pool()).unwrap();
        for caller in 0..2 {
            let (client, meter) = client.metered();
            meters.push(meter);
            callers.spawn(async move {
                for i in 0..per_caller {
                    if (process + caller + i) % 2 == 0 {
                        client.list_rooms(deadline).await?;
                    } else {
                        client
                            .list_messages(BIG_ROOM, MessagesOptions::new(deadline).force(true))
                            .await?;
                    }
                }
                Ok::<_, ChatworkError>(())
            });
        }
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap().unwrap();
    }
    let total = 6 * per_caller;
    assert_eq!(fake.rate_limited_count(), 0, "no 429 at all");
    assert_eq!(fake.counted_requests(), total);
    let sent: u64 = meters.iter().map(|m| m.snapshot().requests).sum();
    assert_eq!(sent, total);
    // The calls had to wait for later windows (the test would prove nothing otherwise).
    let (limit, _) = fake.rate_limit();
    assert!(total > 2 * u64::from(limit));
    assert!(meters.iter().any(|m| m.snapshot().rate_limit_waits > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_on_one_token_get_no_429() {
    let fake = FakeChatwork::start(
        FakeSettings::demo()
            .with_rate_limit(10, Duration::from_secs(2))
            .with_window_kind(WindowKind::Aligned),
    )
    .await;
    // The default margin.
    three_processes_share_one_token(fake, Duration::from_secs(1), 5).await;
}

/// The harder case: windows that start with the first request, requests that spend a
/// while on the way (so some are in flight when a window ends), and no reset margin.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_get_no_429_with_requests_in_flight_at_each_reset() {
    let fake =
        FakeChatwork::start(FakeSettings::demo().with_rate_limit(10, Duration::from_secs(2))).await;
    fake.set_latency(Duration::from_millis(150));
    three_processes_share_one_token(fake, Duration::ZERO, 5).await;
}

/// The worst plausible rounding on Chatwork's side: a window outlives its reported reset
/// by up to a second. The default reset margin absorbs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_get_no_429_when_the_reset_header_is_rounded_down() {
    let fake = FakeChatwork::start(
        FakeSettings::demo()
            .with_rate_limit(10, Duration::from_secs(2))
            .with_window_kind(WindowKind::Unrounded),
    )
    .await;
    fake.set_latency(Duration::from_millis(50));
    three_processes_share_one_token(fake, Duration::from_secs(1), 5).await;
}

/// `callers` concurrent callers of one client make `calls` calls each; once `after`
/// requests reached the fake, `change` runs once (while requests are in flight). Returns
/// how many rate windows the fake had seen just before and just after the change, and
/// the number of 429s.
async fn callers_through_a_change(
    fake: &FakeChatwork,
    client: &ChatworkClient,
    callers: usize,
    calls: usize,
    after: usize,
    change: impl FnOnce(),
) -> (usize, usize, u64) {
    let deadline = in_secs(90);
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..callers {
        let client = client.clone();
        tasks.spawn(async move {
            for i in 0..calls {
                if (caller + i) % 2 == 0 {
                    client.list_rooms(deadline).await?;
                } else {
                    client.get_room(DM_ROOM, deadline).await?;
                }
            }
            Ok::<_, ChatworkError>(())
        });
    }
    while fake.requests().len() < after {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let before = fake.rate_windows(fake.token()).len();
    change();
    let after = fake.rate_windows(fake.token()).len();
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    (before, after, fake.rate_limited_count())
}

/// The 429s among the fake's requests arrived before `end`.
fn every_429_before(fake: &FakeChatwork, end: SystemTime) {
    for request in fake.requests() {
        if request.status == Some(429) {
            assert!(request.at < end, "a 429 after the window it was meant for");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_window_that_changes_mid_run_costs_at_most_the_requests_in_flight() {
    const CALLERS: usize = 3;
    let fake = FakeChatwork::demo().await;
    fake.set_latency(Duration::from_millis(20));
    let db = TestDb::new().await;
    let client = client(&fake, &db);
    // The budget believes in Chatwork's 300 per 5 minutes; then the window becomes 10
    // per 2 s with requests on their way.
    let (before, _, limited) = callers_through_a_change(&fake, &client, CALLERS, 16, 9, || {
        fake.set_rate_limit(10, Duration::from_secs(2))
    })
    .await;
    println!("window change with {CALLERS} callers: {limited} answers of 429");
    assert!(limited <= CALLERS as u64, "{limited} 429s");
    // `before` is the index of the first window of the new kind.
    let windows = fake.rate_windows(fake.token());
    assert!(
        windows.len() >= before + 3,
        "the run spanned the new windows"
    );
    // Then none: the first new window holds every 429 there was.
    every_429_before(&fake, windows[before + 1].start);
    let state = client.budget().state().await.unwrap().unwrap();
    assert_eq!((state.limit_count, state.in_flight), (10, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_program_spending_the_token_costs_at_most_the_requests_in_flight() {
    const CALLERS: usize = 3;
    let fake =
        FakeChatwork::start(FakeSettings::demo().with_rate_limit(20, Duration::from_secs(3))).await;
    fake.set_latency(Duration::from_millis(20));
    let db = TestDb::new().await;
    let client = client(&fake, &db);
    let (_, after, limited) = callers_through_a_change(&fake, &client, CALLERS, 16, 5, || {
        fake.spend_rate_limit(fake.token(), 1000);
    })
    .await;
    println!("a second program spent the window, {CALLERS} callers: {limited} answers of 429");
    assert!(limited <= CALLERS as u64, "{limited} 429s");
    // The window the second program spent is the last one before `after`.
    let windows = fake.rate_windows(fake.token());
    assert!(windows.len() > after, "the run went on in later windows");
    every_429_before(&fake, windows[after - 1].end);
}

// ---- the outage breaker ----

/// The breaker at a scale where a test's seconds stand for an outage's hours: open after
/// 4 failures, then one probe every 400 ms (Chatwork's real defaults: 8, every 30 s).
fn scaled_breaker(threshold: u32) -> BreakerSettings {
    BreakerSettings {
        threshold,
        failure_window: Duration::from_secs(10),
        probe_interval: Duration::from_millis(400),
    }
}

/// `processes` clients (pools of their own) on one token, `callers` each, that call
/// Chatwork over and over for `outage` while it answers 503 to everything, as records
/// redelivered by their queues would. Returns the requests Chatwork got meanwhile and
/// how many calls failed fast as unavailable.
async fn calls_through_an_outage(
    fake: &FakeChatwork,
    clients: &[ChatworkClient],
    callers: usize,
    outage: Duration,
) -> (usize, u64) {
    fake.inject(FaultScope::Any, Fault::Status(503), None);
    let before = fake.requests().len();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        for _ in 0..callers {
            let client = client.clone();
            tasks.spawn(async move {
                let mut unavailable = 0u64;
                while started.elapsed() < outage {
                    match client.list_rooms(in_secs(30)).await {
                        Ok(_) => panic!("Chatwork is down"),
                        Err(ChatworkError::Unavailable { .. }) => unavailable += 1,
                        Err(e) => assert_eq!(e.status(), Some(503), "{e}"),
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                unavailable
            });
        }
    }
    let mut unavailable = 0;
    while let Some(done) = tasks.join_next().await {
        unavailable += done.unwrap();
    }
    fake.clear_faults();
    (fake.requests().len() - before, unavailable)
}

fn clients_with_breaker(
    fake: &FakeChatwork,
    db: &TestDb,
    processes: usize,
    breaker: BreakerSettings,
) -> Vec<ChatworkClient> {
    (0..processes)
        .map(|_| {
            let mut settings = settings(fake);
            settings.breaker = breaker;
            ChatworkClient::new(settings, db.another_pool()).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_costs_the_failures_that_open_the_breaker_and_one_probe_per_interval() {
    const PROCESSES: usize = 3;
    const CALLERS: usize = 2;
    let outage = Duration::from_secs(4);
    let breaker = scaled_breaker(4);

    // A rate limit out of the way: the unguarded run may send more than 300.
    let fake_settings = || FakeSettings::demo().with_rate_limit(100_000, Duration::from_secs(300));
    // Without a breaker (it never opens), for comparison.
    let fake = FakeChatwork::start(fake_settings()).await;
    let db = TestDb::new().await;
    let clients = clients_with_breaker(&fake, &db, PROCESSES, scaled_breaker(u32::MAX));
    let (unguarded, _) = calls_through_an_outage(&fake, &clients, CALLERS, outage).await;

    let fake = FakeChatwork::start(fake_settings()).await;
    let db = TestDb::new().await;
    let clients = clients_with_breaker(&fake, &db, PROCESSES, breaker);
    // Healthy first: no breaker row, no statement.
    clients[0].list_rooms(in_secs(30)).await.unwrap();
    assert_eq!(clients[0].breaker().state().await.unwrap(), None);

    let (sent, unavailable) = calls_through_an_outage(&fake, &clients, CALLERS, outage).await;
    let probes = (outage.as_millis() / breaker.probe_interval.as_millis()) as usize + 1;
    println!(
        "outage of {outage:?} with {PROCESSES} processes x {CALLERS} callers: {sent} requests \
         with the breaker ({unavailable} calls failed fast), {unguarded} without"
    );
    // The failures that opened it, one more per caller that had a request on its way or
    // had not learned it yet, and one probe per interval.
    let bound = breaker.threshold as usize + PROCESSES * CALLERS + probes;
    assert!(sent <= bound, "{sent} requests while down, bound {bound}");
    assert!(
        sent < unguarded / 3,
        "{sent} vs {unguarded} without the breaker"
    );
    assert!(unavailable > 0);
    let state = clients[0].breaker().state().await.unwrap().unwrap();
    assert!(state.opened_at.is_some(), "{state:?}");

    // Chatwork is back: the next probe closes the breaker, and every process sends
    // again within about one probe interval.
    let back = Instant::now();
    for client in &clients {
        loop {
            match client.list_rooms(in_secs(30)).await {
                Ok(listed) => {
                    assert_eq!(listed.items.len(), 12);
                    break;
                }
                Err(ChatworkError::Unavailable { .. }) => {
                    assert!(back.elapsed() < Duration::from_secs(5), "still unavailable");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    let state = clients[0].breaker().state().await.unwrap().unwrap();
    assert_eq!((state.failures, state.opened_at), (0, None));
}

#[tokio::test]
async fn timeouts_open_the_breaker_and_a_failing_fast_call_says_why() {
    let fake = FakeChatwork::demo().await;
    let db = TestDb::new().await;
    let mut settings = settings(&fake);
    settings.request_timeout = Duration::from_millis(300);
    settings.breaker = scaled_breaker(3);
    settings.breaker.probe_interval = Duration::from_secs(60);
    let client = ChatworkClient::new(settings, db.pool.clone()).unwrap();
    fake.inject(FaultScope::Any, Fault::Hang(Duration::from_secs(5)), None);
    // Four attempts allowed, but the third timeout opens the breaker.
    let err = client.get_room(DM_ROOM, in_secs(30)).await.unwrap_err();
    let ChatworkError::Unavailable { until } = err else {
        panic!("{err:?}");
    };
    assert_eq!(fake.requests().len(), 3);
    assert!(until > chrono::Utc::now() + chrono::Duration::seconds(50));
    assert!(err.is_retryable());
    assert!(err.to_string().starts_with("Chatwork unavailable"), "{err}");
    // Failing fast sends nothing, in this process and in another one.
    let again = client.list_rooms(in_secs(30)).await.unwrap_err();
    assert!(
        matches!(again, ChatworkError::Unavailable { .. }),
        "{again:?}"
    );
    let mut other = self::settings(&fake);
    other.breaker = client.breaker().settings();
    other.request_timeout = Duration::from_millis(300);
    let other = ChatworkClient::new(other, db.another_pool()).unwrap();
    // The other process has not failed yet: it learns from its first failure.
    let learned = other.list_rooms(in_secs(30)).await.unwrap_err();
    assert!(
        matches!(learned, ChatworkError::Unavailable { .. }),
        "{learned:?}"
    );
    assert_eq!(fake.requests().len(), 4);
    let again = other.list_rooms(in_secs(30)).await.unwrap_err();
    assert!(
        matches!(again, ChatworkError::Unavailable { .. }),
        "{again:?}"
    );
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test]
async fn one_probe_per_interval_across_processes_and_the_first_success_closes() {
    use cwsync::chatwork::OutageBreaker;
    use cwsync::chatwork::breaker::Admission;
    let db = TestDb::new().await;
    let token = SecretString::from("t".to_owned());
    let settings = BreakerSettings {
        threshold: 3,
        failure_window: Duration::from_secs(10),
        probe_interval: Duration::from_millis(300),
    };
    let processes: Vec<OutageBreaker> = (0..5)
        .map(|_| OutageBreaker::new(db.another_pool(), &token, settings))
        .collect();
    // Failures from different processes add up; the third opens the breaker.
    assert_eq!(processes[0].failed().await.unwrap(), None);
    assert_eq!(processes[1].failed().await.unwrap(), None);
    let until = processes[2].failed().await.unwrap().expect("open");
    assert!(until > chrono::Utc::now());
    // Those that know it open fail fast; the others do not know yet (no statement).
    assert!(matches!(
        processes[2].admit().await.unwrap(),
        Admission::Open { .. }
    ));
    assert_eq!(
        processes[3].admit().await.unwrap(),
        Admission::Send { probe: false }
    );

    // Requests of the first two that were on their way fail too: now they know.
    assert!(processes[0].failed().await.unwrap().is_some());
    assert!(processes[1].failed().await.unwrap().is_some());

    // For three intervals, the three that know ask as soon as their probe time has
    // come: exactly one probe per interval goes out among them, and it fails.
    for _ in 0..3 {
        tokio::time::sleep(settings.probe_interval + Duration::from_millis(20)).await;
        let mut asks = tokio::task::JoinSet::new();
        for process in processes[..3].iter().cloned() {
            asks.spawn(async move { (process.admit().await.unwrap(), process) });
        }
        let mut probers = Vec::new();
        while let Some(done) = asks.join_next().await {
            let (admission, process) = done.unwrap();
            match admission {
                Admission::Send { probe: true } => probers.push(process),
                Admission::Open { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(probers.len(), 1, "one probe per interval");
        assert!(probers[0].failed().await.unwrap().is_some(), "still open");
    }
    // A success (here of a process that had failed) closes it for everyone.
    processes[1].succeeded().await.unwrap();
    let state = processes[0].state().await.unwrap().unwrap();
    assert_eq!((state.failures, state.opened_at), (0, None));
    tokio::time::sleep(settings.probe_interval + Duration::from_millis(20)).await;
    for process in &processes {
        assert_eq!(
            process.admit().await.unwrap(),
            Admission::Send { probe: false }
        );
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn the_token_never_shows_in_logs_errors_or_debug_output() {
    const TOKEN: &str = "tok-SECRET-7f3a9c2e51d84b06";
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    // This test runs on one thread, so every task it starts logs here.
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = FakeChatwork::start(
        FakeSettings::demo()
            .with_token(TOKEN)
            .with_rate_limit(8, Duration::from_secs(2)),
    )
    .await;
    let db = TestDb::new().await;
    let mut settings = settings(&fake);
    settings.request_timeout = Duration::from_secs(1);
    let client = ChatworkClient::new(settings.clone(), db.pool.clone()).unwrap();
    let mut failures: Vec<ChatworkError> = Vec::new();
    // A log statement first reached by another test's thread while this subscriber was
    // being installed can keep the interest it computed without it (a race in tracing's
    // callsite registry); computing every statement's interest again now closes it.
    tracing::callsite::rebuild_interest_cache();

    client.list_rooms(in_secs(30)).await.unwrap();
    fake.fail_next(1, 503);
    client.get_room(DM_ROOM, in_secs(30)).await.unwrap();
    fake.hang_next(1, Duration::from_secs(5));
    client
        .list_messages(BIG_ROOM, MessagesOptions::new(in_secs(30)).force(true))
        .await
        .unwrap();
    fake.set_room_access(DM_ROOM, RoomAccess::Gone);
    failures.push(client.get_room(DM_ROOM, in_secs(30)).await.unwrap_err());
    // A 429 waited out.
    fake.use_up_rate_limit(TOKEN);
    client.list_rooms(in_secs(30)).await.unwrap();
    // A 429 with no time to wait it out (a long window, and a budget of its own).
    let slow = FakeChatwork::start(
        FakeSettings::demo()
            .with_token(TOKEN)
            .with_rate_limit(5, Duration::from_secs(60)),
    )
    .await;
    slow.use_up_rate_limit(TOKEN);
    let other_db = TestDb::new().await;
    let mut slow_settings = settings.clone();
    slow_settings.base_url = Url::parse(&slow.base_url()).unwrap();
    let limited = ChatworkClient::new(slow_settings, other_db.pool.clone()).unwrap();
    failures.push(limited.list_rooms(in_secs(3)).await.unwrap_err());
    // A wrong token, a token that cannot be a header, and a server that is not there.
    let mut wrong = settings.clone();
    wrong.token = SecretString::from(format!("{TOKEN}-wrong"));
    let stranger = ChatworkClient::new(wrong, db.pool.clone()).unwrap();
    failures.push(stranger.list_rooms(in_secs(30)).await.unwrap_err());
    let mut bad = settings.clone();
    bad.token = SecretString::from(format!("{TOKEN}\n"));
    failures.push(ChatworkClient::new(bad, db.pool.clone()).unwrap_err());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut nowhere = settings.clone();
    nowhere.base_url = Url::parse(&format!("http://{}/v2", closed.local_addr().unwrap())).unwrap();
    nowhere.max_attempts = 2;
    drop(closed);
    let lost = ChatworkClient::new(nowhere, db.another_pool()).unwrap();
    failures.push(lost.list_rooms(in_secs(30)).await.unwrap_err());

    assert!(matches!(failures[1], ChatworkError::RateLimited { .. }));
    assert_eq!(failures[2].status(), Some(401));
    assert!(matches!(failures[3], ChatworkError::Setup { .. }));
    assert!(
        matches!(failures[4], ChatworkError::Network { attempts: 2, .. }),
        "{:?}",
        failures[4]
    );
    let mut texts = vec![format!("{client:?}"), format!("{settings:?}")];
    for failure in &failures {
        texts.push(failure.to_string());
        texts.push(format!("{failure:?}"));
    }
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: it holds the client's own events.
    assert!(log.contains("chatwork request"), "{log}");
    assert!(log.contains("429"), "{log}");
    assert!(log.contains("retrying a Chatwork request"), "{log}");
    texts.push(log);
    for text in texts {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
}

// ---- the budget itself, without HTTP ----

fn budget_settings() -> BudgetSettings {
    BudgetSettings {
        lease: Duration::from_millis(300),
        assumed_window: Duration::from_secs(300),
        reset_margin: Duration::ZERO,
    }
}

/// The budget of token `t` in `db`, with the settings above.
fn budget_of(db: &TestDb) -> RateBudget {
    RateBudget::new(
        db.pool.clone(),
        &SecretString::from("t".to_owned()),
        budget_settings(),
    )
}

fn headers(limit: i32, remaining: i32, reset_in: i64) -> RateHeaders {
    let now = epoch_secs();
    RateHeaders {
        limit,
        remaining,
        reset: now + reset_in,
        date: Some(now),
        rate_limited: false,
    }
}

/// The headers of a 429 whose window resets in `reset_in` seconds.
fn refused(limit: i32, reset_in: i64) -> RateHeaders {
    headers(limit, 0, reset_in).answered_with(429)
}

async fn grant(budget: &RateBudget) -> cwsync::chatwork::budget::Grant {
    match budget.try_reserve().await.unwrap() {
        Reservation::Granted(grant) => grant,
        other => panic!("expected a unit, got {other:?}"),
    }
}

#[tokio::test]
async fn the_budget_starts_with_one_probe_and_takes_the_limit_from_its_answer() {
    let db = TestDb::new().await;
    let token = SecretString::from("t".to_owned());
    let budget = RateBudget::new(db.pool.clone(), &token, budget_settings());
    let probe = grant(&budget).await;
    assert!(matches!(
        budget.try_reserve().await.unwrap(),
        Reservation::Exhausted {
            unconfirmed: true,
            ..
        }
    ));
    budget
        .record(probe, Some(headers(300, 299, 300)))
        .await
        .unwrap();
    let state = budget.state().await.unwrap().unwrap();
    assert_eq!(
        (state.limit_count, state.remaining, state.in_flight),
        (300, 299, 0)
    );
    let left = (state.reset_at - chrono::Utc::now()).num_seconds();
    assert!((295..=300).contains(&left), "{left}");

    // A probe that fails without an answer gives its unit back.
    let other = RateBudget::new(
        db.pool.clone(),
        &SecretString::from("u".to_owned()),
        budget_settings(),
    );
    let probe = grant(&other).await;
    other.record(probe, None).await.unwrap();
    let _again = grant(&other).await;
}

#[tokio::test]
async fn a_reservation_given_back_unsent_is_whole_again() {
    let db = TestDb::new().await;
    let budget = budget_of(&db);
    let probe = grant(&budget).await;
    budget
        .record(probe, Some(headers(3, 2, 300)))
        .await
        .unwrap();
    // Taken ahead by a statement, then not needed: the unit comes back.
    let unused = grant(&budget).await;
    let state = budget.state().await.unwrap().unwrap();
    assert_eq!((state.remaining, state.in_flight), (1, 1));
    budget.release(unused).await.unwrap();
    let state = budget.state().await.unwrap().unwrap();
    assert_eq!((state.remaining, state.in_flight), (2, 0));
    // A sent request without an answer keeps its unit spent, as before.
    let sent = grant(&budget).await;
    budget.record(sent, None).await.unwrap();
    let state = budget.state().await.unwrap().unwrap();
    assert_eq!((state.remaining, state.in_flight), (1, 0));
}

#[tokio::test]
async fn the_reset_is_read_on_chatworks_clock() {
    let db = TestDb::new().await;
    let budget = budget_of(&db);
    let probe = grant(&budget).await;
    // Chatwork's clock is 1000 s ahead of ours: its reset, 30 s from its now, is 30 s
    // from ours too.
    let now = epoch_secs();
    budget
        .record(
            probe,
            Some(RateHeaders {
                limit: 300,
                remaining: 0,
                reset: now + 1030,
                date: Some(now + 1000),
                rate_limited: false,
            }),
        )
        .await
        .unwrap();
    let Reservation::Exhausted { wait, unconfirmed } = budget.try_reserve().await.unwrap() else {
        panic!("the window is spent");
    };
    assert!(!unconfirmed);
    assert!(
        wait <= Duration::from_secs(31) && wait >= Duration::from_secs(25),
        "{wait:?}"
    );
}

#[tokio::test]
async fn reservations_are_atomic_across_processes() {
    let db = TestDb::new().await;
    let token = SecretString::from("shared".to_owned());
    let first = RateBudget::new(db.pool.clone(), &token, budget_settings());
    let probe = grant(&first).await;
    first
        .record(probe, Some(headers(25, 25, 60)))
        .await
        .unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let budget = RateBudget::new(db.another_pool(), &token, budget_settings());
        for _ in 0..15 {
            let budget = budget.clone();
            tasks.spawn(async move {
                matches!(budget.try_reserve().await.unwrap(), Reservation::Granted(_))
            });
        }
    }
    let mut granted = 0;
    while let Some(done) = tasks.join_next().await {
        granted += u32::from(done.unwrap());
    }
    assert_eq!(granted, 25, "exactly the limit, never more");
}

#[tokio::test]
async fn an_old_answer_never_overwrites_a_newer_window() {
    let db = TestDb::new().await;
    let budget = budget_of(&db);
    let probe = grant(&budget).await;
    let first = headers(10, 9, 30);
    budget.record(probe, Some(first)).await.unwrap();
    let old_a = grant(&budget).await;
    let old_b = grant(&budget).await;
    let late = grant(&budget).await;
    // `late` reached Chatwork after its reset: Chatwork reports a newer window.
    let newer = headers(10, 9, 330);
    budget.record(late, Some(newer)).await.unwrap();
    let state = budget.state().await.unwrap().unwrap();
    assert_eq!(state.server_reset, Some(newer.reset));
    // The two still in flight may land in the new window: they count against it.
    assert_eq!((state.remaining, state.carried, state.in_flight), (7, 2, 0));
    // `old_a` was counted in the old window after all: its unit comes back.
    budget.record(old_a, Some(first)).await.unwrap();
    let state = budget.state().await.unwrap().unwrap();
    assert_eq!((state.remaining, state.carried), (8, 1));
    // `old_b` landed in the new window: its unit stays spent.
    budget
        .record(old_b, Some(headers(10, 0, 330)))
        .await
        .unwrap();
    let state = budget.state().await.unwrap().unwrap();
    assert_eq!((state.remaining, state.carried), (8, 0));
    // (An answer to a request of the current window is fresh, whatever reset it reports:
    // see `a_fresh_answer_with_an_earlier_reset_moves_the_window_there`.)
    let after = budget.state().await.unwrap().unwrap();

    // An answer from two windows ago changes nothing at all.
    let ancient = grant(&budget).await;
    let next = grant(&budget).await;
    budget
        .record(next, Some(headers(10, 9, 630)))
        .await
        .unwrap();
    let next = grant(&budget).await;
    budget
        .record(next, Some(headers(10, 9, 930)))
        .await
        .unwrap();
    let before = budget.state().await.unwrap().unwrap();
    assert_eq!(before.window_id, after.window_id + 2);
    budget.record(ancient, Some(newer)).await.unwrap();
    assert_eq!(budget.state().await.unwrap().unwrap(), before);
}

#[tokio::test]
async fn a_429_spends_the_row_until_its_reset_whatever_the_row_believed() {
    let db = TestDb::new().await;
    let budget = budget_of(&db);
    let probe = grant(&budget).await;
    budget
        .record(probe, Some(headers(300, 299, 300)))
        .await
        .unwrap();
    // The row believes in 298 more requests for five minutes; Chatwork says the window
    // is spent and resets in 4 s.
    let a = grant(&budget).await;
    let b = grant(&budget).await;
    budget.record(a, Some(refused(12, 4))).await.unwrap();
    let state = budget.state().await.unwrap().unwrap();
    assert_eq!((state.limit_count, state.remaining), (12, 0));
    let left = (state.reset_at - chrono::Utc::now()).num_milliseconds();
    assert!((2_000..=4_500).contains(&left), "{left} ms");
    let Reservation::Exhausted { wait, unconfirmed } = budget.try_reserve().await.unwrap() else {
        panic!("spent");
    };
    assert!(
        !unconfirmed && wait <= Duration::from_millis(4_500),
        "{wait:?}"
    );
    // Another answer of the same old belief (a request that was on its way) cannot
    // bring the five minutes back.
    budget
        .record(b, Some(headers(300, 290, 300)))
        .await
        .unwrap();
    let after = budget.state().await.unwrap().unwrap();
    assert_eq!((after.limit_count, after.remaining), (12, 0));
    assert_eq!(after.reset_at, state.reset_at);

    // A 429 that reports a later reset than the row's makes the row wait longer too.
    let other = RateBudget::new(
        db.pool.clone(),
        &SecretString::from("u".to_owned()),
        budget_settings(),
    );
    let probe = grant(&other).await;
    other.record(probe, Some(headers(10, 9, 2))).await.unwrap();
    let c = grant(&other).await;
    other.record(c, Some(refused(10, 60))).await.unwrap();
    let state = other.state().await.unwrap().unwrap();
    let left = (state.reset_at - chrono::Utc::now()).num_seconds();
    assert!((55..=61).contains(&left), "{left} s");
    assert_eq!(state.remaining, 0);
}

#[tokio::test]
async fn a_fresh_answer_with_an_earlier_reset_moves_the_window_there() {
    let db = TestDb::new().await;
    let budget = budget_of(&db);
    let probe = grant(&budget).await;
    budget
        .record(probe, Some(headers(300, 299, 300)))
        .await
        .unwrap();
    let on_the_way = grant(&budget).await;
    let fresh = grant(&budget).await;
    // Chatwork now counts 12 per 4 s: the fresh answer moves the row to that window,
    // the other request in flight counted against it.
    budget
        .record(fresh, Some(headers(12, 11, 4)))
        .await
        .unwrap();
    let state = budget.state().await.unwrap().unwrap();
    assert_eq!(
        (state.limit_count, state.remaining, state.carried),
        (12, 10, 1)
    );
    assert!((state.reset_at - chrono::Utc::now()).num_seconds() <= 4);
    // The request that was on its way was answered in the old window: late, its unit
    // comes back, and the five minutes do not.
    budget
        .record(on_the_way, Some(headers(300, 297, 300)))
        .await
        .unwrap();
    let after = budget.state().await.unwrap().unwrap();
    assert_eq!(
        (after.limit_count, after.remaining, after.carried),
        (12, 11, 0)
    );
    assert_eq!(after.reset_at, state.reset_at);
}

#[tokio::test]
async fn a_crashed_process_holds_no_budget_past_the_reset() {
    let db = TestDb::new().await;
    let token = SecretString::from("t".to_owned());
    let budget = RateBudget::new(db.pool.clone(), &token, budget_settings());
    let probe = grant(&budget).await;
    budget.record(probe, Some(headers(4, 4, 2))).await.unwrap();
    // A process takes every unit and dies without recording any answer.
    for _ in 0..4 {
        let _lost = grant(&budget).await;
    }
    let Reservation::Exhausted { wait, .. } = budget.try_reserve().await.unwrap() else {
        panic!("spent");
    };
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    // The window rolled over by itself; the lost reservations were granted longer ago
    // than a request can take, so the new window is whole.
    let _fresh = grant(&budget).await;
    let state = budget.state().await.unwrap().unwrap();
    assert_eq!((state.remaining, state.carried, state.in_flight), (3, 0, 1));
}

/// The datagrams an X-Ray daemon receives while the client asks for `/me` inside the
/// trace `header` (none of them carrying the token), with the layer filtered as the
/// functions filter it.
async fn xray_datagrams(header: &str) -> Vec<String> {
    use tracing_subscriber::layer::{Layer, SubscriberExt};

    let fake = FakeChatwork::demo().await;
    let db = TestDb::new().await;
    let daemon = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    daemon
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let layer = cwsync::trace::xray::XrayLayer::to(daemon.local_addr().unwrap()).unwrap();
    let layer = layer.with_filter(cwsync::trace::xray::filter());
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    // A callsite another test's thread reached first (sqlx's statement events, say) keeps
    // the interest it computed without this subscriber until interest is computed again.
    tracing::callsite::rebuild_interest_cache();
    let client = client(&fake, &db);
    let trace = cwsync::trace::TraceHeader::parse(header);
    let mut datagrams = Vec::new();
    // Another test's thread may compute a callsite's interest again at the very moment
    // (without this thread's subscriber): a sampled request that sent nothing is sent
    // once more, an unsampled one is asked twice all the same.
    for _ in 0..2 {
        tracing::callsite::rebuild_interest_cache();
        cwsync::trace::continued(trace.clone(), client.me(in_secs(30)))
            .await
            .unwrap();
        let mut buffer = [0; 65_536];
        while let Ok(size) = daemon.recv(&mut buffer) {
            datagrams.push(String::from_utf8(buffer[..size].to_vec()).unwrap());
        }
        if !datagrams.is_empty() {
            break;
        }
    }
    assert!(datagrams.iter().all(|d| !d.contains(fake.token())));
    datagrams
}

#[tokio::test]
async fn a_request_in_a_sampled_trace_reaches_xray_as_a_subsegment() {
    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
    const PARENT: &str = "53995c3f42cd8ad8";
    let datagrams = xray_datagrams(&format!("Root={ROOT};Parent={PARENT};Sampled=1")).await;
    let documents: Vec<serde_json::Value> = datagrams
        .iter()
        .map(|datagram| {
            let (header, document) = datagram.split_once('\n').expect("a header line");
            assert_eq!(header, r#"{"format": "json", "version": 1}"#);
            serde_json::from_str(document).unwrap()
        })
        .collect();
    for document in &documents {
        assert_eq!(document["type"], "subsegment");
        assert_eq!(document["trace_id"], ROOT);
        assert_eq!(document["parent_id"], PARENT);
    }
    let named = |name: &'static str| documents.iter().filter(move |d| d["name"] == name);
    let requests: Vec<_> = named("chatwork").collect();
    assert_eq!(requests.len(), 1, "{datagrams:?}");
    assert_eq!(requests[0]["http"]["request"]["url"], "/me");
    assert_eq!(requests[0]["http"]["response"]["status"], 200);
    // The rate budget's statements around the request are subsegments too, when sqlx's
    // statement events reach this thread's subscriber; in this binary other tests' threads
    // register those callsites first, so whether they do is not this test's to assert
    // (the Lambda emulator test, where each function is a process of its own, asserts
    // them, and `trace::xray`'s unit tests their document). Whatever arrives is one of
    // the two kinds, in the trace.
    for statement in named("postgres") {
        assert_eq!(statement["sql"]["database_type"], "PostgreSQL");
        assert!(
            statement["sql"]["sanitized_query"]
                .as_str()
                .is_some_and(|q| !q.is_empty())
        );
    }
    assert_eq!(requests.len() + named("postgres").count(), documents.len());

    let unsampled = xray_datagrams(&format!("Root={ROOT};Parent={PARENT};Sampled=0")).await;
    assert_eq!(unsampled, Vec::<String>::new());
}

#[tokio::test]
async fn tasks_files_and_members_are_read_and_a_download_url_never_shows() {
    use cwsync::chatwork::{DownloadError, TaskStatus, TasksFilter};
    const PROJECT: i64 = 281_000_106;
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    // This test runs on one thread, so every task it starts logs here.
    let _guard = tracing::subscriber::set_default(subscriber);
    let fake = FakeChatwork::demo().await;
    let db = TestDb::new().await;
    let (client, meter) = client(&fake, &db).metered();
    tracing::callsite::rebuild_interest_cache();

    let tasks = client
        .list_tasks(PROJECT, &TasksFilter::default(), in_secs(30))
        .await
        .unwrap();
    assert_eq!(tasks.len(), 3);
    assert!(tasks.iter().any(|t| t.status == TaskStatus::Done));
    assert!(tasks.iter().all(|t| t.assigned_by_account.is_some()));
    let open = TasksFilter {
        status: Some(TaskStatus::Open),
        ..TasksFilter::default()
    };
    assert_eq!(
        client
            .list_tasks(PROJECT, &open, in_secs(30))
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.query.as_deref() == Some("status=open"))
    );
    // Nothing (204) is an empty list.
    assert!(
        client
            .list_tasks(281_000_112, &TasksFilter::default(), in_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    let files = client.list_files(PROJECT, None, in_secs(30)).await.unwrap();
    assert_eq!(files.len(), 2);
    let members = client.list_members(PROJECT, in_secs(30)).await.unwrap();
    assert!(
        members
            .iter()
            .any(|m| m.organization_name == fake_chatwork::DemoData::CUSTOMER_ORGANIZATION)
    );

    // A download URL: counted as a request; the download is not.
    let detail = client
        .file_download_url(PROJECT, files[0].file_id, in_secs(30))
        .await
        .unwrap();
    let url = detail.download_url.clone().expect("a download URL");
    let shown = format!("{detail:?}");
    let secret = url.expose_secret().to_owned();
    assert!(!shown.contains(&secret), "{shown}");
    let counted = fake.counted_requests();
    let got = client.download(&url, 1 << 20, in_secs(30)).await.unwrap();
    assert_eq!(got.bytes.len() as i64, files[0].filesize);
    assert_eq!(got.sha256.len(), 64);
    assert_eq!(
        fake.counted_requests(),
        counted,
        "a download is outside the budget"
    );
    // Over the cap: not read; expired: a 403 that asks for a new URL.
    let too_large = client.download(&url, 4, in_secs(30)).await.unwrap_err();
    assert_eq!(too_large, DownloadError::TooLarge { cap: 4 });
    fake.expire_download_urls();
    let expired = client
        .download(&url, 1 << 20, in_secs(30))
        .await
        .unwrap_err();
    assert!(expired.wants_new_url(), "{expired:?}");
    for error in [&too_large, &expired] {
        assert!(!error.to_string().contains(&secret));
        assert!(!format!("{error:?}").contains(&secret));
    }
    assert_eq!(meter.snapshot().requests, 6);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let path = secret.rsplit('/').next().unwrap();
    assert!(!logs.contains(path), "the download URL reached a log");
}

#[tokio::test]
async fn a_download_without_a_length_stops_being_read_at_the_cap() {
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const CHUNK: usize = 64 << 10;
    const CHUNKS: usize = 1600;
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    // 100 MiB in chunks, produced as they are read, with no Content-Length.
    let app = axum::Router::new().route(
        "/file",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                let chunks = futures_util::stream::iter(0..CHUNKS).map(move |_| {
                    counter.fetch_add(CHUNK, Ordering::Relaxed);
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; CHUNK]))
                });
                axum::body::Body::from_stream(chunks)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/file", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let fake = FakeChatwork::start(FakeSettings::default()).await;
    let db = TestDb::new().await;
    let client = client(&fake, &db);
    let error = client
        .download(&SecretString::from(url), 1 << 20, in_secs(30))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        cwsync::chatwork::DownloadError::TooLarge { cap: 1 << 20 }
    );
    // What left the server: the cap and what the connection's buffers took (loopback's
    // grow to a few MiB), far from all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left = sent.load(Ordering::Relaxed);
    assert!(left < 32 << 20, "{left} bytes were produced");
    assert!(fake.requests().is_empty(), "no API request");
}
