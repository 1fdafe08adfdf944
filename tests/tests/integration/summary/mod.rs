//! Summary drafts through the consumer runtime (job core, embedded queue, event source)
//! against a real Postgres: the extractive summarizer, and the OpenAI-compatible client
//! against a fake chat-completions server on loopback.

use cwsync::jobs::JobSpec as _;

mod extractive;
mod model;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use cwsync::consumer::EventSource;
use cwsync::jobs::{self, DeadLetterConsumer, Job, JobConsumer};
use cwsync::queue::{EmbeddedQueues, EmbeddedSettings, QueueName, Queues};
use cwsync::summary::{SummaryContext, SummaryDraft, SummaryDraftPayload};
use cwsync_tests::TestDb;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// Receives before a message moves to its dead-letter queue.
const MAX_RECEIVES: u32 = 4;

/// A database with one company, the embedded queue and a summary consumer.
pub struct SummaryRig {
    pub db: TestDb,
    pub queues: Arc<dyn Queues>,
    pub consumer: JobConsumer<SummaryDraft>,
    pub dead_letters: DeadLetterConsumer,
    pub company: Uuid,
}

pub fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

impl SummaryRig {
    pub async fn new(context: SummaryContext) -> Self {
        let db = TestDb::new().await;
        let queues: Arc<dyn Queues> = Arc::new(EmbeddedQueues::new(EmbeddedSettings {
            visibility_timeout: Duration::from_millis(500),
            max_receive_count: MAX_RECEIVES,
            deduplication_window: Duration::from_secs(300),
        }));
        let company =
            sqlx::query_scalar("INSERT INTO companies (name) VALUES ('Acme') RETURNING id")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        Self {
            consumer: JobConsumer::new(db.pool.clone(), queues.clone(), Arc::new(context)),
            dead_letters: DeadLetterConsumer::new(
                db.pool.clone(),
                cwsync::job_types::registry(),
                MAX_RECEIVES,
            ),
            db,
            queues,
            company,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Registers a Chatwork room and links it to `company`.
    pub async fn room(&self, company: Uuid, room_id: i64, name: &str) {
        sqlx::query(
            "WITH r AS (INSERT INTO chatwork_rooms (room_id, name, room_type)
                        VALUES ($1, $2, 'group') RETURNING id)
             INSERT INTO company_room_links (company_id, chatwork_room_id) SELECT $3, id FROM r",
        )
        .bind(room_id)
        .bind(name)
        .bind(company)
        .execute(self.pool())
        .await
        .unwrap();
    }

    /// Stores a message of a room as a sync would (with the room's company).
    pub async fn message(
        &self,
        room_id: i64,
        message_id: &str,
        (account_id, account_name): (i64, &str),
        body: &str,
        send_time: DateTime<Utc>,
    ) {
        sqlx::query(
            "INSERT INTO messages (chatwork_room_id, room_id, message_id, account_id, account_name,
                                   body, send_time, company_id)
             SELECT r.id, r.room_id, $2, $3, $4, $5, $6,
                    (SELECT company_id FROM company_room_links WHERE chatwork_room_id = r.id)
               FROM chatwork_rooms r WHERE r.room_id = $1",
        )
        .bind(room_id)
        .bind(message_id)
        .bind(account_id)
        .bind(account_name)
        .bind(body)
        .bind(send_time)
        .execute(self.pool())
        .await
        .unwrap();
    }

    pub async fn start(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Job {
        let started = jobs::start::<SummaryDraft>(
            self.pool(),
            self.queues.as_ref(),
            &SummaryDraftPayload {
                company_id: self.company,
                period_start: start,
                period_end: end,
            },
            Some("writer-1"),
        )
        .await
        .unwrap();
        assert!(started.created, "a new summary draft job");
        started.job
    }

    pub fn source(&self, queue: QueueName) -> EventSource {
        let mut source = EventSource::new(self.queues.clone(), queue);
        source.wait = Duration::from_millis(50);
        source.batch_timeout = Duration::from_secs(60);
        source
    }

    pub async fn job(&self, id: Uuid) -> Job {
        jobs::get(self.pool(), id).await.unwrap().unwrap()
    }

    /// Feeds the queue (and its dead-letter queue) to the consumers until the job ends.
    pub async fn run_to_end(&self, id: Uuid) -> Job {
        let work = self.source(SummaryDraft::QUEUE);
        let dead = self.source(SummaryDraft::QUEUE.dead_letter());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let job = self.job(id).await;
            if job.status.is_terminal() {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for the job to end: {job:?}"
            );
            let polled = work.poll_once(&self.consumer).await.unwrap()
                + dead.poll_once(&self.dead_letters).await.unwrap();
            if polled == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Starts a draft of the period and runs it to its end.
    pub async fn draft(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Job {
        let job = self.start(start, end).await;
        self.run_to_end(job.id).await
    }

    /// The drafts stored for the company, oldest first: (id, job, content, links, model, usage).
    pub async fn drafts(&self) -> Vec<StoredDraft> {
        sqlx::query_as(
            "SELECT id, job_id, content, source_links, model, token_usage
               FROM summary_drafts WHERE company_id = $1 ORDER BY created_at, id",
        )
        .bind(self.company)
        .fetch_all(self.pool())
        .await
        .unwrap()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredDraft {
    pub id: Uuid,
    pub job_id: Option<Uuid>,
    pub content: String,
    pub source_links: Value,
    pub model: String,
    pub token_usage: Option<Value>,
}

/// The URLs of a draft's `sourceLinks`.
pub fn urls(links: &Value) -> Vec<String> {
    links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["url"].as_str().unwrap().to_owned())
        .collect()
}

const SATO: (i64, &str) = (1001, "佐藤 健一");
const SUZUKI: (i64, &str) = (2002, "鈴木 花子");
const YAMADA: (i64, &str) = (3003, "山田 太郎");
const ALICE: (i64, &str) = (4004, "Alice");
const BOB: (i64, &str) = (5005, "Bob");
const CAROL: (i64, &str) = (6006, "Carol");

/// The fixture conversation: a Japanese room and an English one linked to the rig's
/// company, seven days of March 2025, with a message before the period, a system notice,
/// a question answered by a reply and one nobody answered, a quoted decision, and a room
/// of another company. Most of its text is Japanese.
pub async fn fixture_conversation(rig: &SummaryRig) {
    rig.room(rig.company, 101, "営業チーム").await;
    english_conversation(rig).await;
    let other: Uuid =
        sqlx::query_scalar("INSERT INTO companies (name) VALUES ('Other') RETURNING id")
            .fetch_one(rig.pool())
            .await
            .unwrap();
    rig.room(other, 303, "Other's room").await;

    // Before the period.
    rig.message(
        101,
        "9000000000000000001",
        SATO,
        "前回の件は決定しました。",
        at(2025, 2, 27, 9, 0),
    )
    .await;
    for (id, who, body, time) in [
        (
            "9000000000000000101",
            SATO,
            "[To:2002]鈴木さん\nお疲れ様です。先日の見積もりの件、社内で確認しました。",
            at(2025, 3, 3, 1, 0),
        ),
        (
            "9000000000000000102",
            SUZUKI,
            "ありがとうございます。",
            at(2025, 3, 3, 1, 5),
        ),
        (
            "9000000000000000103",
            SATO,
            "来週の定例会議は3月11日(火)14:00からに決定しました。場所は本社の会議室、資料は前日までに共有します。",
            at(2025, 3, 3, 2, 0),
        ),
        (
            "9000000000000000104",
            SUZUKI,
            "承知しました。資料は何部必要ですか？",
            at(2025, 3, 3, 2, 10),
        ),
        (
            "9000000000000000105",
            SATO,
            "[rp aid=2002 to=101-9000000000000000104]鈴木さん\n10部お願いします。連絡先は sato@example.co.jp / 03-1234-5678 です。",
            at(2025, 3, 3, 2, 20),
        ),
        (
            "9000000000000000106",
            YAMADA,
            "了解です",
            at(2025, 3, 4, 0, 0),
        ),
        (
            "9000000000000000107",
            YAMADA,
            "[info][title][dtext:chatroom_chat_edited][/title][dtext:chatroom_member_is][piconname:3003][dtext:chatroom_added][/info]",
            at(2025, 3, 4, 0, 1),
        ),
        (
            "9000000000000000108",
            YAMADA,
            "来月分の請求書の送付先は、本社宛てのままでよろしいでしょうか？",
            at(2025, 3, 4, 0, 30),
        ),
    ] {
        rig.message(101, id, who, body, time).await;
    }
    // Another company's room, in the period.
    rig.message(
        303,
        "7000000000000000301",
        BOB,
        "Other company: we decided everything.",
        at(2025, 3, 5, 12, 0),
    )
    .await;
}

/// The English room of the fixture, with a message after the period.
pub async fn english_conversation(rig: &SummaryRig) {
    rig.room(rig.company, 202, "Project Alpha").await;
    for (id, who, body, time) in [
        (
            "8000000000000000201",
            ALICE,
            "Hi all, quick update on the rollout.",
            at(2025, 3, 5, 9, 0),
        ),
        (
            "8000000000000000202",
            BOB,
            "We decided to ship version 2.0 on March 14 after the final QA pass.",
            at(2025, 3, 5, 9, 30),
        ),
        (
            "8000000000000000203",
            ALICE,
            "[To:6006]Carol\nCould you send the updated invoice by Friday? Call me at +81 90-1234-5678 if anything is unclear.",
            at(2025, 3, 5, 10, 0),
        ),
        (
            "8000000000000000204",
            CAROL,
            "Thanks!",
            at(2025, 3, 5, 10, 5),
        ),
        (
            "8000000000000000205",
            BOB,
            "[qt][qtmeta aid=5005 time=1741167000]We decided to ship version 2.0[/qt]Great.",
            at(2025, 3, 5, 11, 0),
        ),
    ] {
        rig.message(202, id, who, body, time).await;
    }
    // After the period (the end is exclusive).
    rig.message(
        202,
        "8000000000000000299",
        BOB,
        "Decided: ship next week?",
        at(2025, 3, 8, 0, 0),
    )
    .await;
}

pub fn period() -> (DateTime<Utc>, DateTime<Utc>) {
    (at(2025, 3, 1, 0, 0), at(2025, 3, 8, 0, 0))
}
