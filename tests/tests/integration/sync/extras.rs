//! A room's tasks, files and members, synced as items of a sync of all rooms against the
//! fake Chatwork, with files copied to moto's S3 and served back by the API.

use std::sync::Arc;
use std::time::Duration;

use cwsync::api::{self, AppState, AuthConfig, Role};
use cwsync::chatwork::ChatworkClient;
use cwsync::config::Env;
use cwsync::files::{FileCopies, FileStore, S3FileStore, storage_key};
use cwsync::jobs::{self, Job, JobConsumer};
use cwsync::sync::SyncContext;
use cwsync::sync::check::RoomExtras;
use cwsync::sync::messages::{MessagesSync, MessagesSyncPayload};
use fake_chatwork::{
    Account, FakeSettings, File, LimitType, Member, RequestRecord, Room, RoomType, Task,
};
use secrecy::SecretString;
use serde_json::Value;

use super::{Backend, SyncRig, client_settings};

const ROOM: i64 = 4101;

fn alice() -> Account {
    Account::new(11, "Alice")
}

fn bob() -> Account {
    Account::new(12, "Bob")
}

/// The rig, and the messages consumer of a sync that fetches every part of a room and
/// copies files (at most `max_bytes`) to a bucket of moto's S3.
struct Extras {
    rig: SyncRig,
    messages: JobConsumer<MessagesSync>,
    store: Arc<dyn FileStore>,
}

impl Extras {
    async fn new(room: Room, max_bytes: u64) -> Self {
        let rig = SyncRig::with_fake(
            Backend::Embedded,
            FakeSettings::default().with_rooms(vec![room]),
        )
        .await;
        let bucket = cwsync_tests::create_test_bucket().await;
        let store: Arc<dyn FileStore> =
            Arc::new(S3FileStore::new(cwsync_tests::s3_client(), bucket));
        let client = ChatworkClient::new(client_settings(&rig.fake), rig.pool().clone()).unwrap();
        let mut context = SyncContext::new(client).with_files(FileCopies {
            store: store.clone(),
            max_bytes,
        });
        context.settings.room_check.extras = RoomExtras::ALL;
        let messages = JobConsumer::new(rig.pool().clone(), rig.queues.clone(), Arc::new(context));
        Self {
            rig,
            messages,
            store,
        }
    }

    /// A person's sync of all rooms (the room check, then what it planned), run to its end.
    async fn sync_all(&self) -> Job {
        let started = jobs::start::<MessagesSync>(
            self.rig.pool(),
            self.rig.queues.as_ref(),
            &MessagesSyncPayload::All,
            Some("admin-1"),
        )
        .await
        .unwrap();
        let job = self
            .rig
            .run_until_with(&self.messages, started.job.id, "the sync", |j| {
                j.status.is_terminal()
            })
            .await;
        assert_eq!(job.status, cwsync::jobs::JobStatus::Completed, "{job:?}");
        job
    }

    async fn task(&self, task_id: i64) -> (String, String, Option<i64>, bool) {
        sqlx::query_as(
            "SELECT status, limit_type, extract(epoch FROM limit_time)::int8,
                    done_seen_at IS NOT NULL
               FROM chatwork_tasks WHERE task_id = $1",
        )
        .bind(task_id)
        .fetch_one(self.rig.pool())
        .await
        .unwrap()
    }

    async fn file(&self, file_id: i64) -> (String, Option<String>, i32, Option<String>) {
        sqlx::query_as(
            "SELECT storage_state, storage_key, copy_attempts, storage_error
               FROM chatwork_files WHERE file_id = $1",
        )
        .bind(file_id)
        .fetch_one(self.rig.pool())
        .await
        .unwrap()
    }
}

/// The requests of `requests` whose path ends with `/{suffix}` (`tasks`, `files`,
/// `members`), or that ask for a download URL (`download-url`).
fn count(requests: &[RequestRecord], what: &str) -> usize {
    requests
        .iter()
        .filter(|r| match what {
            "download-url" => r
                .query
                .as_deref()
                .is_some_and(|q| q.contains("create_download_url=1")),
            suffix => r.path.ends_with(&format!("/{suffix}")),
        })
        .count()
}

#[tokio::test]
async fn tasks_are_synced_new_done_and_with_a_moved_deadline() {
    let mut room = Room::new(ROOM, "tasks", RoomType::Group);
    room.last_update_time = 1_700_000_000;
    let extras = Extras::new(room, 1 << 20).await;
    let fake = &extras.rig.fake;
    let task = fake
        .add_task(
            ROOM,
            Task::new(alice(), bob(), "見積書を送る").due(LimitType::Date, 1_900_000_000),
        )
        .unwrap();

    let job = extras.sync_all().await;
    let result = job.result.unwrap();
    assert_eq!(result["extras"]["tasksRooms"], 1, "{result}");
    assert_eq!(
        extras.task(task).await,
        ("open".into(), "date".into(), Some(1_900_000_000), false)
    );

    // Done: the room list's count of open tasks moves, and the check fetches the tasks.
    assert!(fake.complete_task(ROOM, task));
    extras.sync_all().await;
    let (status, _, _, done_seen) = extras.task(task).await;
    assert_eq!(status, "done");
    assert!(done_seen, "a task seen done records when");

    // A new deadline moves no count: it is refreshed when the room moves and its tasks
    // were last synced over a day ago.
    let second = fake
        .add_task(
            ROOM,
            Task::new(bob(), alice(), "議事録").due(LimitType::Time, 1_900_000_600),
        )
        .unwrap();
    extras.sync_all().await;
    assert!(fake.set_task_deadline(ROOM, second, LimitType::Date, 1_900_086_399));
    extras.sync_all().await;
    assert_eq!(
        extras.task(second).await.2,
        Some(1_900_000_600),
        "no count moved yet"
    );
    sqlx::query(
        "UPDATE chatwork_rooms SET tasks_synced_at = now() - interval '2 days' WHERE room_id = $1",
    )
    .bind(ROOM)
    .execute(extras.rig.pool())
    .await
    .unwrap();
    fake.post_message(ROOM, &alice(), "期限を変更しました");
    extras.sync_all().await;
    assert_eq!(
        extras.task(second).await,
        ("open".into(), "date".into(), Some(1_900_086_399), false)
    );
}

#[tokio::test]
async fn the_check_fetches_tasks_and_files_only_when_their_counts_move() {
    let extras = Extras::new(Room::new(ROOM, "counts", RoomType::Group), 1 << 20).await;
    let fake = &extras.rig.fake;
    fake.add_task(ROOM, Task::new(alice(), bob(), "one"))
        .unwrap();
    fake.add_file(ROOM, File::new(alice(), "a.txt", b"a".to_vec()))
        .unwrap();

    let before = fake.requests().len();
    extras.sync_all().await;
    let first = extras.rig.requests_since(before);
    assert_eq!(count(&first, "tasks"), 1);
    assert_eq!(count(&first, "files"), 1);
    assert_eq!(
        count(&first, "members"),
        1,
        "members when the room is first seen"
    );
    assert_eq!(count(&first, "download-url"), 1);

    // Nothing moved: no tasks, files or members (the messages may be fetched again: a
    // room that moved within seconds of its fetch is not settled).
    let before = fake.requests().len();
    extras.sync_all().await;
    let quiet = extras.rig.requests_since(before);
    for part in ["tasks", "files", "members", "download-url"] {
        assert_eq!(count(&quiet, part), 0, "{part}: {quiet:?}");
    }

    // A new task: its count moves, the files' does not.
    fake.add_task(ROOM, Task::new(bob(), alice(), "two"))
        .unwrap();
    let before = fake.requests().len();
    extras.sync_all().await;
    let moved = extras.rig.requests_since(before);
    assert_eq!(count(&moved, "tasks"), 1);
    assert_eq!(count(&moved, "files"), 0);
    assert_eq!(
        count(&moved, "members"),
        0,
        "members are refreshed at most daily"
    );

    // A new file: the files are fetched and the new one copied, the first one not again.
    fake.add_file(ROOM, File::new(bob(), "b.txt", b"b".to_vec()))
        .unwrap();
    let before = fake.requests().len();
    extras.sync_all().await;
    let moved = extras.rig.requests_since(before);
    assert_eq!(count(&moved, "tasks"), 0);
    assert_eq!(count(&moved, "files"), 1);
    assert_eq!(
        count(&moved, "download-url"),
        1,
        "only the new file is copied"
    );
}

/// The API over the rig's database, serving files from `store`; its address and a
/// token minter.
async fn serve_api(extras: &Extras) -> (String, Arc<AuthConfig>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let auth = AuthConfig::local_jwt(
        &Env::default(),
        &SecretString::from(cwsync_tests::TEST_JWT_SECRET),
    )
    .unwrap();
    let state = AppState::new(extras.rig.pool().clone(), extras.rig.queues.clone(), auth)
        .with_files(extras.store.clone());
    let auth = state.auth.clone();
    let app = api::router(state);
    tokio::spawn(async move { api::serve(listener, app, std::future::pending()).await });
    (address, auth)
}

#[tokio::test]
async fn a_file_is_copied_once_and_served_to_people_with_a_role_only() {
    let extras = Extras::new(Room::new(ROOM, "files", RoomType::Group), 1 << 20).await;
    let fake = &extras.rig.fake;
    let bytes = "見積書 v2\n".repeat(100).into_bytes();
    let file = fake
        .add_file(
            ROOM,
            File::new(alice(), "見積書 \"最終\".txt", bytes.clone()),
        )
        .unwrap();
    let job = extras.sync_all().await;
    assert_eq!(job.result.unwrap()["extras"]["filesCopied"], 1);
    let (state, key, attempts, _) = extras.file(file).await;
    assert_eq!(state, "stored");
    assert_eq!(key.as_deref(), Some(storage_key(ROOM, file).as_str()));
    assert_eq!(attempts, 1);
    let stored = extras
        .store
        .get(&storage_key(ROOM, file))
        .await
        .unwrap()
        .expect("the content is in the bucket");
    assert_eq!(stored.length, Some(bytes.len() as u64));

    // Another file arrives: the first is not downloaded again.
    fake.add_file(ROOM, File::new(bob(), "b.bin", vec![0, 1, 2]))
        .unwrap();
    extras.sync_all().await;
    let downloads: Vec<Option<i64>> = fake.downloads().iter().map(|d| d.file_id).collect();
    assert_eq!(
        downloads.iter().filter(|d| **d == Some(file)).count(),
        1,
        "{downloads:?}"
    );

    let (address, auth) = serve_api(&extras).await;
    let http = reqwest::Client::new();
    let url = format!("{address}/api/chatwork/rooms/{ROOM}/files/{file}/content");
    let reader = auth
        .mint_local_token("reader-1", Role::Reader, Duration::from_secs(600))
        .unwrap();
    // A reader sees the rooms of companies: not this one until it is linked to one.
    let unlinked = http.get(&url).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(unlinked.status(), 404);
    sqlx::query(
        "WITH c AS (INSERT INTO companies (name) VALUES ('Files Inc.') RETURNING id)
         INSERT INTO company_room_links (company_id, chatwork_room_id)
         SELECT c.id, r.id FROM c, chatwork_rooms r WHERE r.room_id = $1",
    )
    .bind(ROOM)
    .execute(extras.rig.pool())
    .await
    .unwrap();
    let answer = http.get(&url).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let headers = answer.headers().clone();
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\""),
        "{disposition}"
    );
    assert!(
        disposition.contains("filename*=UTF-8''%E8%A6%8B"),
        "{disposition}"
    );
    assert_eq!(answer.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // Nobody: 401; a genuine identity without a role: 403; not the file's room: 404.
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), Value::from("someone"));
    let no_role = auth
        .mint_local_claims(&claims, Duration::from_secs(600))
        .unwrap();
    assert_eq!(
        http.get(&url)
            .bearer_auth(&no_role)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let elsewhere = format!(
        "{address}/api/chatwork/rooms/{}/files/{file}/content",
        ROOM + 1
    );
    let missing = http
        .get(&elsewhere)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let malformed = format!("{address}/api/chatwork/rooms/{ROOM}/files/0x1/content");
    let answer = http
        .get(&malformed)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_path_parameter");
    let unknown = format!("{address}/api/chatwork/rooms/{ROOM}/files/999999/content");
    assert_eq!(
        http.get(&unknown)
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn an_expired_download_url_is_replaced_by_a_new_one() {
    let extras = Extras::new(Room::new(ROOM, "expired", RoomType::Group), 1 << 20).await;
    let fake = &extras.rig.fake;
    let file = fake
        .add_file(ROOM, File::new(alice(), "a.pdf", b"%PDF".to_vec()))
        .unwrap();
    fake.expire_next_download_urls(1);
    let before = fake.requests().len();
    extras.sync_all().await;
    let statuses: Vec<u16> = fake.downloads().iter().map(|d| d.status).collect();
    assert_eq!(statuses, [403, 200]);
    assert_eq!(count(&extras.rig.requests_since(before), "download-url"), 2);
    assert_eq!(extras.file(file).await.0, "stored");
}

#[tokio::test]
async fn a_file_over_the_cap_is_recorded_and_not_copied() {
    let extras = Extras::new(Room::new(ROOM, "large", RoomType::Group), 16).await;
    let fake = &extras.rig.fake;
    let large = fake
        .add_file(ROOM, File::new(alice(), "big.zip", vec![7; 64]))
        .unwrap();
    // Chatwork says it is small; the download shows otherwise.
    let lying = fake
        .add_file(
            ROOM,
            File {
                declared_size: Some(4),
                ..File::new(alice(), "liar.bin", vec![1; 64])
            },
        )
        .unwrap();
    let job = extras.sync_all().await;
    assert_eq!(job.result.unwrap()["extras"]["filesTooLarge"], 1);
    let (state, key, attempts, _) = extras.file(large).await;
    assert_eq!((state.as_str(), key, attempts), ("too_large", None, 0));
    assert_eq!(extras.file(lying).await.0, "too_large");
    let fetched: Vec<Option<i64>> = fake.downloads().iter().map(|d| d.file_id).collect();
    assert_eq!(fetched, [Some(lying)], "the large one never downloaded");
    assert!(
        extras
            .store
            .get(&storage_key(ROOM, large))
            .await
            .unwrap()
            .is_none()
    );

    let (address, auth) = serve_api(&extras).await;
    let admin = auth
        .mint_local_token("admin-1", Role::Admin, Duration::from_secs(600))
        .unwrap();
    let answer = reqwest::Client::new()
        .get(format!(
            "{address}/api/chatwork/rooms/{ROOM}/files/{large}/content"
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 409);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "file_not_stored");
}

#[tokio::test]
async fn members_suggest_a_company_once_and_a_dismissal_stands() {
    let extras = Extras::new(Room::new(ROOM, "members", RoomType::Group), 1 << 20).await;
    let fake = &extras.rig.fake;
    let pool = extras.rig.pool();
    let acme: uuid::Uuid =
        sqlx::query_scalar("INSERT INTO companies (name) VALUES ('Acme Inc.') RETURNING id")
            .fetch_one(pool)
            .await
            .unwrap();
    fake.set_room_members(
        ROOM,
        vec![
            Member::new(alice(), " ACME inc. "),
            Member::new(bob(), "Acme Inc."),
            Member::new(Account::new(13, "Carol"), "Other Co."),
        ],
    );
    let job = extras.sync_all().await;
    assert_eq!(job.result.unwrap()["extras"]["suggestions"], 1);
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chatwork_members WHERE room_id = $1")
            .bind(ROOM)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(stored, 3);
    let (company, members, status): (uuid::Uuid, i32, String) = sqlx::query_as(
        "SELECT company_id, members, status FROM company_room_suggestions s
           JOIN chatwork_rooms r ON r.id = s.chatwork_room_id WHERE r.room_id = $1",
    )
    .bind(ROOM)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((company, members, status.as_str()), (acme, 2, "open"));

    // An admin dismisses it; Carol leaves; the members are fetched again.
    sqlx::query("UPDATE company_room_suggestions SET status = 'dismissed', decided_at = now()")
        .execute(pool)
        .await
        .unwrap();
    fake.set_room_members(
        ROOM,
        vec![
            Member::new(alice(), "Acme Inc."),
            Member::new(bob(), "Acme Inc."),
        ],
    );
    sqlx::query("UPDATE chatwork_rooms SET members_synced_at = NULL WHERE room_id = $1")
        .bind(ROOM)
        .execute(pool)
        .await
        .unwrap();
    extras.sync_all().await;
    let rows: Vec<(String,)> = sqlx::query_as("SELECT status FROM company_room_suggestions")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(rows, [("dismissed".to_owned(),)], "never made again");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chatwork_members WHERE room_id = $1")
            .bind(ROOM)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(stored, 2, "a member gone is deleted");

    // A company the room is linked to is never suggested.
    let beta: uuid::Uuid =
        sqlx::query_scalar("INSERT INTO companies (name) VALUES ('Beta') RETURNING id")
            .fetch_one(pool)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO company_room_links (company_id, chatwork_room_id)
         SELECT $1, id FROM chatwork_rooms WHERE room_id = $2",
    )
    .bind(beta)
    .bind(ROOM)
    .execute(pool)
    .await
    .unwrap();
    fake.set_room_members(ROOM, vec![Member::new(alice(), "beta")]);
    sqlx::query("UPDATE chatwork_rooms SET members_synced_at = NULL WHERE room_id = $1")
        .bind(ROOM)
        .execute(pool)
        .await
        .unwrap();
    extras.sync_all().await;
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM company_room_suggestions WHERE company_id = $1")
            .bind(beta)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(open, 0);
}
