//! Measurement 11: how the database's cost grows with the organization: the room check
//! at thousands of rooms, and storing and summarizing with the `messages` table at
//! millions of rows.
//!
//! Everything runs on a temporary cluster of this machine's PostgreSQL (as measurement
//! 9's), never the shared server: WAL positions are the cluster's, so no other database's
//! work may move them, and `pg_stat_statements` (which times each statement on the
//! server) has to be loaded at start. The cluster keeps fsync on and runs without
//! autovacuum, so that nothing but the measured work writes WAL; the set-up vacuums and
//! analyzes what it loads, as autovacuum would.
//!
//! The room check runs through its public path (`sync::check::run`, then the check's
//! record) against a fake Chatwork listing the rooms, on a pool of one connection: the
//! connection a warm Lambda keeps, so that Postgres's plan cache behaves as it does there
//! (its sixth run of a statement may use a generic plan). Messages are stored by a
//! messages sync of one room through the job consumer (the real write statement), and a
//! summary is drafted by the summary job with the extractive summarizer (the real query
//! of a company's messages of a period).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cwsync::chatwork::ChatworkClient;
use cwsync::connections::Connections;
use cwsync::consumer::{BatchConsumer, EventSource};
use cwsync::db::DatabaseConfig;
use cwsync::jobs::{self, JobConsumer, JobSpec, JobStatus};
use cwsync::queue::{EmbeddedQueues, EmbeddedSettings, QueueName, Queues};
use cwsync::summary::{SummaryContext, SummaryDraft, SummaryDraftPayload};
use cwsync::sync::SyncContext;
use cwsync::sync::check::{self, CheckTrigger, RoomCheckSettings};
use cwsync::sync::messages::{MessagesSync, MessagesSyncPayload};
use cwsync::sync::rooms::{RoomsSync, RoomsSyncPayload};
use fake_chatwork::{FakeChatwork, FakeSettings};
use secrecy::SecretString;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

use crate::restart::Cluster;
use crate::world::{self, client_settings, poster};

/// The server settings of the cluster: a modest production instance's buffers, room for
/// index builds, no checkpoint or autovacuum in the middle of a measurement.
const SERVER_OPTIONS: &str = "-c max_connections=40 -c shared_buffers=512MB \
     -c maintenance_work_mem=1GB -c max_wal_size=16GB -c checkpoint_timeout=1h \
     -c autovacuum=off -c shared_preload_libraries=pg_stat_statements \
     -c pg_stat_statements.track=all";

/// The three kinds of check measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// The first check: every listed room is new.
    First,
    /// Nothing moved since the last check (every room synced).
    Unchanged,
    /// 1 % of the rooms received a message since the last check.
    OnePercent,
}

impl CheckKind {
    pub fn describe(self) -> &'static str {
        match self {
            Self::First => "first check (registers every room)",
            Self::Unchanged => "nothing changed",
            Self::OnePercent => "1 % of rooms changed",
        }
    }
}

/// Medians (and the worst) of one kind of check at one size.
pub struct CheckFigures {
    pub rooms: usize,
    pub kind: CheckKind,
    pub runs: usize,
    /// The whole check: the room list's request, its statements, the check's record.
    pub took_ms: Spread,
    /// The check's statement (`observe`), timed by the server.
    pub statement_ms: Spread,
    /// The connection's membership statement (`record_listing`), timed by the server.
    pub listing_ms: Spread,
    /// `chatwork_rooms` rows inserted and updated (`pg_stat_user_tables`).
    pub rooms_inserted: Spread,
    pub rooms_updated: Spread,
    /// `chatwork_room_connections` rows inserted, updated and deleted.
    pub memberships_written: Spread,
    /// WAL the cluster wrote during the check.
    pub wal_bytes: Spread,
    /// Rooms the check found needing a fetch (the last run's).
    pub changed: usize,
}

/// The median and the largest of some runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread {
    pub median: f64,
    pub max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let median = match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Self {
            median,
            max: v.last().copied().unwrap_or(0.0),
        }
    }
}

/// The room check at `sizes` rooms, each kind `runs` times.
pub async fn room_check_curve(sizes: &[usize], runs: usize) -> anyhow::Result<Vec<CheckFigures>> {
    let cluster = Cluster::start_with("growth", SERVER_OPTIONS)?;
    let mut figures = Vec::new();
    for &rooms in sizes {
        crate::say(format!(
            "11. room check at {rooms} rooms, {runs} runs of each kind"
        ));
        figures.extend(room_check_at(&cluster, rooms, runs).await?);
    }
    Ok(figures)
}

/// A database of its own on `cluster` with every migration and `pg_stat_statements`;
/// returns an admin connection to it (no statement timeout) and its URL.
async fn database(cluster: &Cluster, name: &str) -> anyhow::Result<(PgConnection, String)> {
    let mut server = PgConnection::connect(&cluster.url()).await?;
    // The names are this module's constants, never input.
    server
        .execute(sqlx::raw_sql(AssertSqlSafe(format!(
            r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
        ))))
        .await?;
    server
        .execute(sqlx::raw_sql(AssertSqlSafe(format!(
            r#"CREATE DATABASE "{name}""#
        ))))
        .await?;
    server.close().await?;
    let url = cluster.url_of(name);
    let pool = pool_of(&url, 1)?;
    cwsync::db::migrate(&pool).await?;
    pool.close().await;
    let mut admin = PgConnection::connect(&url).await?;
    for statement in [
        "SET statement_timeout = 0",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    ] {
        admin.execute(sqlx::raw_sql(statement)).await?;
    }
    Ok((admin, url))
}

/// A pool of `connections` on `url`, with the functions' settings otherwise.
fn pool_of(url: &str, connections: u32) -> anyhow::Result<PgPool> {
    Ok(cwsync::db::pool(&DatabaseConfig {
        url: SecretString::from(url.to_owned()),
        max_connections: connections,
        acquire_timeout: Duration::from_secs(30),
        statement_timeout: Duration::from_secs(120),
        idle_timeout: Duration::from_secs(600),
    })?)
}

/// What the server counted for the tables a check writes, and where its WAL was.
#[derive(Debug, Clone)]
struct Counters {
    rooms_inserted: i64,
    rooms_updated: i64,
    memberships: i64,
    wal: String,
}

async fn counters(admin: &mut PgConnection) -> anyhow::Result<Counters> {
    let (rooms_inserted, rooms_updated, memberships, wal): (i64, i64, i64, String) =
        sqlx::query_as(
            "SELECT coalesce(sum(n_tup_ins) FILTER (WHERE relname = 'chatwork_rooms'), 0)::int8,
                    coalesce(sum(n_tup_upd) FILTER (WHERE relname = 'chatwork_rooms'), 0)::int8,
                    coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del)
                             FILTER (WHERE relname = 'chatwork_room_connections'), 0)::int8,
                    pg_current_wal_insert_lsn()::text
               FROM pg_stat_user_tables
              WHERE relname IN ('chatwork_rooms', 'chatwork_room_connections')",
        )
        .fetch_one(&mut *admin)
        .await?;
    Ok(Counters {
        rooms_inserted,
        rooms_updated,
        memberships,
        wal,
    })
}

/// The server's time for the statements whose text contains `marker` (every statement
/// for an empty one), in ms, since the last reset; the measuring statements left out.
async fn statement_ms(admin: &mut PgConnection, marker: &str) -> anyhow::Result<f64> {
    let ms: f64 = sqlx::query_scalar(
        "SELECT coalesce(sum(total_exec_time), 0)::float8 FROM pg_stat_statements
          WHERE query LIKE '%' || $1 || '%' AND query NOT LIKE '%pg_stat_statements%' AND toplevel",
    )
    .bind(marker)
    .fetch_one(&mut *admin)
    .await?;
    Ok(ms)
}

/// Text only the room check's statement has, and only the membership statement.
const OBSERVE_MARKER: &str = "INSERT INTO chatwork_rooms AS r";
const LISTING_MARKER: &str = "INSERT INTO chatwork_room_connections";

/// One size: the first checks (each on an empty table), then every room synced and
/// checks that find nothing, then checks that find 1 % of the rooms moved.
async fn room_check_at(
    cluster: &Cluster,
    rooms: usize,
    runs: usize,
) -> anyhow::Result<Vec<CheckFigures>> {
    let (mut admin, url) = database(cluster, "cwsync_growth_rooms").await?;
    let ids: Vec<i64> = (1..=rooms as i64).map(|i| 5_000_000 + i).collect();
    let fake = FakeChatwork::start(
        FakeSettings::default()
            .with_rooms(ids.iter().map(|&id| world::room(id, 2, 40)).collect())
            .with_rate_limit(world::UNLIMITED.0, world::UNLIMITED.1),
    )
    .await;
    let settings = RoomCheckSettings::default();
    let mut figures = Vec::new();
    for kind in [
        CheckKind::First,
        CheckKind::Unchanged,
        CheckKind::OnePercent,
    ] {
        // Every kind starts on a fresh connection: its plan cache is empty.
        let pool = pool_of(&url, 1)?;
        let client = ChatworkClient::new(client_settings(&fake, fake.token())?, pool.clone())?;
        let connections = Connections::of_client(client);
        if kind == CheckKind::Unchanged {
            // As if every room had been fetched since the first check.
            sqlx::query(
                "UPDATE chatwork_rooms
                    SET synced_message_num = checked_message_num,
                        synced_last_update_time = checked_last_update_time,
                        fetch_wanted_since = NULL, last_sync_at = now()",
            )
            .execute(&mut admin)
            .await?;
        }
        for statement in [
            "VACUUM (ANALYZE) chatwork_rooms, chatwork_room_connections",
            "CHECKPOINT",
        ] {
            admin.execute(sqlx::raw_sql(statement)).await?;
        }
        let mut took = Vec::new();
        let mut statement = Vec::new();
        let mut listing = Vec::new();
        let (mut inserted, mut updated, mut memberships, mut wal) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut changed = 0;
        let per_run = (rooms / 100).max(1);
        for run in 0..runs {
            match kind {
                CheckKind::First => {
                    for statement in ["TRUNCATE chatwork_rooms CASCADE", "CHECKPOINT"] {
                        admin.execute(sqlx::raw_sql(statement)).await?;
                    }
                }
                CheckKind::Unchanged => {}
                CheckKind::OnePercent => {
                    // Other rooms each run: a room found changed stays wanted until
                    // fetched, and a room that moves again is written again anyway.
                    for k in 0..per_run {
                        let id = ids[(run * per_run + k) % ids.len()];
                        fake.post_message(id, &poster(), "新しいメッセージです")
                            .context("a room of the fake")?;
                    }
                }
            }
            sqlx::query("SELECT pg_stat_statements_reset()")
                .execute(&mut admin)
                .await?;
            let before = counters(&mut admin).await?;
            let started = Instant::now();
            let planned =
                check::run(&pool, &connections, None, &settings, CheckTrigger::Schedule).await?;
            let report = planned.record(&pool, &settings, None, false).await?;
            took.push(started.elapsed().as_secs_f64() * 1000.0);
            // The connection's statistics reach the shared counters at once, not within
            // the second Postgres otherwise waits.
            sqlx::query("SELECT pg_stat_force_next_flush()")
                .execute(&pool)
                .await?;
            let after = counters(&mut admin).await?;
            let wal_diff: f64 =
                sqlx::query_scalar("SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::float8")
                    .bind(&after.wal)
                    .bind(&before.wal)
                    .fetch_one(&mut admin)
                    .await?;
            statement.push(statement_ms(&mut admin, OBSERVE_MARKER).await?);
            listing.push(statement_ms(&mut admin, LISTING_MARKER).await?);
            inserted.push((after.rooms_inserted - before.rooms_inserted) as f64);
            updated.push((after.rooms_updated - before.rooms_updated) as f64);
            memberships.push((after.memberships - before.memberships) as f64);
            wal.push(wal_diff);
            changed = report.changed;
        }
        pool.close().await;
        figures.push(CheckFigures {
            rooms,
            kind,
            runs,
            took_ms: Spread::of(&took),
            statement_ms: Spread::of(&statement),
            listing_ms: Spread::of(&listing),
            rooms_inserted: Spread::of(&inserted),
            rooms_updated: Spread::of(&updated),
            memberships_written: Spread::of(&memberships),
            wal_bytes: Spread::of(&wal),
            changed,
        });
    }
    admin.close().await?;
    Ok(figures)
}

// ---- the `messages` table ----

/// What storing and summarizing cost at one size of `messages`.
pub struct MessagesFigures {
    pub rows: i64,
    /// How long filling up to this size took (inserting, then building the indexes and
    /// vacuuming).
    pub fill: Duration,
    pub table_bytes: i64,
    pub index_bytes: i64,
    /// A messages sync of one room storing 100 new messages: the whole job (request to
    /// end) and its write statement, timed by the server.
    pub store_ms: Spread,
    pub write_ms: Spread,
    /// Every statement of the sync, timed by the server (job core, rate budget, write).
    pub store_db_ms: Spread,
    /// A company's draft over its period: the whole job, its query of the messages, and
    /// how many messages it read.
    pub draft_ms: Spread,
    pub gather_ms: Spread,
    /// Every statement of the draft, timed by the server.
    pub draft_db_ms: Spread,
    pub drafted_messages: i64,
}

/// How `messages` is filled.
#[derive(Debug, Clone)]
pub struct MessagesSettings {
    /// Sizes of the table, in rows, smallest first.
    pub sizes: Vec<i64>,
    /// Rooms the rows are spread over.
    pub rooms: i64,
    /// Messages the organization posts a day: a bigger table is a longer history.
    pub per_day: i64,
    /// Runs of each measurement per size.
    pub runs: usize,
}

/// The measured room (in the fake Chatwork) and the company linked to it and to every
/// hundredth generated room.
const MEASURED_ROOM: i64 = 7_000_001;
/// Generated rooms' Chatwork ids start above this.
const ROOM_BASE: i64 = 8_000_000;

/// Text only the write statement has, and only the summary's read.
const WRITE_MARKER: &str = "INSERT INTO messages AS m";
const GATHER_MARKER: &str = "AS room_name, m.message_id";

pub async fn messages_curve(settings: &MessagesSettings) -> anyhow::Result<Vec<MessagesFigures>> {
    let cluster = Cluster::start_with("growth-messages", SERVER_OPTIONS)?;
    let (mut admin, url) = database(&cluster, "cwsync_growth_messages").await?;
    let pool = pool_of(&url, 2)?;
    let fake = FakeChatwork::start(
        FakeSettings::default()
            .with_rooms(vec![world::room(MEASURED_ROOM, 100, 200)])
            .with_rate_limit(world::UNLIMITED.0, world::UNLIMITED.1),
    )
    .await;
    let queues: Arc<dyn Queues> = Arc::new(EmbeddedQueues::new(EmbeddedSettings {
        visibility_timeout: Duration::from_secs(600),
        ..EmbeddedSettings::default()
    }));
    let client = ChatworkClient::new(client_settings(&fake, fake.token())?, pool.clone())?;
    let context = Arc::new(SyncContext::new(client));

    // The measured room, registered and synced as any room is.
    let job = jobs::start::<RoomsSync>(
        &pool,
        queues.as_ref(),
        &RoomsSyncPayload::default(),
        Some("bench"),
    )
    .await?;
    let rooms_consumer: JobConsumer<RoomsSync> =
        JobConsumer::new(pool.clone(), queues.clone(), context.clone());
    run_to_end(
        &pool,
        &queues,
        RoomsSync::QUEUE,
        &rooms_consumer,
        job.job.id,
    )
    .await?;
    let messages_consumer: JobConsumer<MessagesSync> =
        JobConsumer::new(pool.clone(), queues.clone(), context.clone());
    let summary_consumer: JobConsumer<SummaryDraft> = JobConsumer::new(
        pool.clone(),
        queues.clone(),
        Arc::new(SummaryContext::extractive()),
    );

    // The company, the generated rooms, every hundredth linked to it, and the measured
    // room linked too. `growth_rooms` numbers the rooms for the fill.
    let company: Uuid =
        sqlx::query_scalar("INSERT INTO companies (name) VALUES ('株式会社ベンチ') RETURNING id")
            .fetch_one(&mut admin)
            .await?;
    sqlx::query(
        "INSERT INTO chatwork_rooms (room_id, name, room_type, checked_at)
         SELECT $1 + g, 'room ' || g, 'group', now() FROM generate_series(1, $2) g",
    )
    .bind(ROOM_BASE)
    .bind(settings.rooms)
    .execute(&mut admin)
    .await?;
    admin
        .execute(sqlx::raw_sql(
            "CREATE TABLE growth_rooms (n int8 PRIMARY KEY, id uuid NOT NULL,
                                        room_id int8 NOT NULL, company_id uuid)",
        ))
        .await?;
    sqlx::query(
        "INSERT INTO growth_rooms (n, id, room_id, company_id)
         SELECT r.room_id - $1 - 1, r.id, r.room_id,
                CASE WHEN (r.room_id - $1) % 100 = 0 THEN $2::uuid END
           FROM chatwork_rooms r WHERE r.room_id > $1",
    )
    .bind(ROOM_BASE)
    .bind(company)
    .execute(&mut admin)
    .await?;
    sqlx::query(
        "INSERT INTO company_room_links (company_id, chatwork_room_id)
         SELECT $1, id FROM growth_rooms WHERE company_id IS NOT NULL
         UNION ALL
         SELECT $1, id FROM chatwork_rooms WHERE room_id = $2",
    )
    .bind(company)
    .bind(MEASURED_ROOM)
    .execute(&mut admin)
    .await?;
    admin.execute(sqlx::raw_sql("ANALYZE growth_rooms")).await?;
    // The generated history ends an hour before now; the draft covers its last week
    // but a day.
    let anchor: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT date_trunc('hour', now()) - interval '1 hour'")
            .fetch_one(&mut admin)
            .await?;
    let payload = SummaryDraftPayload {
        company_id: company,
        period_start: anchor - chrono::Duration::days(8),
        period_end: anchor - chrono::Duration::days(1),
    };
    // The room's first 100 messages.
    store_once(&pool, &queues, &messages_consumer).await?;

    let mut figures = Vec::new();
    let mut rows = 0i64;
    for &size in &settings.sizes {
        crate::say(format!(
            "11. messages: filling to {size} rows over {} rooms",
            settings.rooms
        ));
        let began = Instant::now();
        fill(&mut admin, rows, size, settings, anchor).await?;
        let filled = began.elapsed();
        rows = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&mut admin)
            .await?;
        crate::say(format!(
            "11. messages: {rows} rows after {:.0} s; storing and drafting",
            filled.as_secs_f64()
        ));
        let (table_bytes, index_bytes): (i64, i64) =
            sqlx::query_as("SELECT pg_table_size('messages'), pg_indexes_size('messages')")
                .fetch_one(&mut admin)
                .await?;
        let (mut store, mut write, mut store_db) = (Vec::new(), Vec::new(), Vec::new());
        let (mut draft, mut gather, mut draft_db) = (Vec::new(), Vec::new(), Vec::new());
        let mut drafted = 0;
        for _ in 0..settings.runs {
            for i in 0..100 {
                fake.post_message(MEASURED_ROOM, &poster(), &world::body_of(200, i))
                    .context("the measured room")?;
            }
            sqlx::query("SELECT pg_stat_statements_reset()")
                .execute(&mut admin)
                .await?;
            let (took, stored) = store_once(&pool, &queues, &messages_consumer).await?;
            anyhow::ensure!(stored == 100, "the sync stored {stored} messages, not 100");
            store.push(took.as_secs_f64() * 1000.0);
            write.push(statement_ms(&mut admin, WRITE_MARKER).await?);
            store_db.push(statement_ms(&mut admin, "").await?);

            sqlx::query("SELECT pg_stat_statements_reset()")
                .execute(&mut admin)
                .await?;
            let (took, messages) = draft_once(&pool, &queues, &summary_consumer, &payload).await?;
            draft.push(took.as_secs_f64() * 1000.0);
            gather.push(statement_ms(&mut admin, GATHER_MARKER).await?);
            draft_db.push(statement_ms(&mut admin, "").await?);
            drafted = messages;
        }
        figures.push(MessagesFigures {
            rows,
            fill: filled,
            table_bytes,
            index_bytes,
            store_ms: Spread::of(&store),
            write_ms: Spread::of(&write),
            store_db_ms: Spread::of(&store_db),
            draft_ms: Spread::of(&draft),
            gather_ms: Spread::of(&gather),
            draft_db_ms: Spread::of(&draft_db),
            drafted_messages: drafted,
        });
    }
    pool.close().await;
    admin.close().await?;
    Ok(figures)
}

/// Adds generated rows `from + 1 ..= to` to `messages`: its indexes and constraints
/// dropped first and built again after (foreign keys again `NOT VALID`: the generated
/// rows are right by construction, and new rows are checked either way), then vacuumed
/// and analyzed. Row `g` is `g` messages' worth of time before `anchor` at `per_day`,
/// in room `g mod rooms`, by one of 500 people.
async fn fill(
    admin: &mut PgConnection,
    from: i64,
    to: i64,
    settings: &MessagesSettings,
    anchor: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    if to <= from {
        return Ok(());
    }
    let constraints: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid), contype::text FROM pg_constraint
          WHERE conrelid = 'messages'::regclass AND contype IN ('p', 'u', 'f')
          ORDER BY contype, conname",
    )
    .fetch_all(&mut *admin)
    .await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes
          WHERE schemaname = 'public' AND tablename = 'messages'
            AND indexname NOT IN (SELECT conname FROM pg_constraint
                                   WHERE conrelid = 'messages'::regclass)",
    )
    .fetch_all(&mut *admin)
    .await?;
    // None of them depends on another (the foreign keys need the other tables' keys).
    for (name, _, _) in &constraints {
        admin
            .execute(sqlx::raw_sql(AssertSqlSafe(format!(
                r#"ALTER TABLE messages DROP CONSTRAINT "{name}""#
            ))))
            .await?;
    }
    for (name, _) in &indexes {
        admin
            .execute(sqlx::raw_sql(AssertSqlSafe(format!(
                r#"DROP INDEX "{name}""#
            ))))
            .await?;
    }
    let seconds_apart = 86_400.0 / settings.per_day as f64;
    let chunk = 2_000_000i64;
    let mut start = from + 1;
    while start <= to {
        let end = (start + chunk - 1).min(to);
        sqlx::query(
            "INSERT INTO messages (chatwork_room_id, room_id, message_id, account_id,
                                   account_name, body, send_time, company_id)
             SELECT r.id, r.room_id, (1000000000000 + g)::text, 1000 + (g * 7919) % 500,
                    'メンバー ' || ((g * 7919) % 500),
                    '[' || g || '] 打ち合わせの件、承知しました。 The quarterly report draft is attached; see section ' || (g % 9) || '.',
                    $3::timestamptz - make_interval(secs => g * $4::float8),
                    r.company_id
               FROM generate_series($1::int8, $2::int8) g
               JOIN growth_rooms r ON r.n = g % $5",
        )
        .bind(start)
        .bind(end)
        .bind(anchor)
        .bind(seconds_apart)
        .bind(settings.rooms)
        .execute(&mut *admin)
        .await?;
        crate::say(format!("11. messages: {end} rows inserted"));
        start = end + 1;
    }
    for statement in [
        "SET maintenance_work_mem = '1GB'",
        "SET max_parallel_maintenance_workers = 2",
    ] {
        admin.execute(sqlx::raw_sql(statement)).await?;
    }
    for (name, definition, kind) in &constraints {
        let not_valid = if kind == "f" { " NOT VALID" } else { "" };
        admin
            .execute(sqlx::raw_sql(AssertSqlSafe(format!(
                r#"ALTER TABLE messages ADD CONSTRAINT "{name}" {definition}{not_valid}"#
            ))))
            .await?;
    }
    for (_, definition) in &indexes {
        admin
            .execute(sqlx::raw_sql(AssertSqlSafe(definition.clone())))
            .await?;
    }
    for statement in ["VACUUM (ANALYZE) messages", "CHECKPOINT"] {
        admin.execute(sqlx::raw_sql(statement)).await?;
    }
    Ok(())
}

/// A messages sync of the measured room, through the consumer, to its end: how long
/// from the request to the end, and how many messages it stored.
async fn store_once(
    pool: &PgPool,
    queues: &Arc<dyn Queues>,
    consumer: &JobConsumer<MessagesSync>,
) -> anyhow::Result<(Duration, i64)> {
    let begun = Instant::now();
    let started = jobs::start::<MessagesSync>(
        pool,
        queues.as_ref(),
        &MessagesSyncPayload::Room {
            room_id: MEASURED_ROOM,
        },
        Some("bench"),
    )
    .await?;
    let job = run_to_end(pool, queues, MessagesSync::QUEUE, consumer, started.job.id).await?;
    let took = begun.elapsed();
    let stored = job
        .result
        .as_ref()
        .and_then(|r| r.get("storedMessages"))
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    Ok((took, stored))
}

/// A summary draft of the company's period, through the consumer, to its end: how long,
/// and how many messages it read.
async fn draft_once(
    pool: &PgPool,
    queues: &Arc<dyn Queues>,
    consumer: &JobConsumer<SummaryDraft>,
    payload: &SummaryDraftPayload,
) -> anyhow::Result<(Duration, i64)> {
    let begun = Instant::now();
    let started =
        jobs::start::<SummaryDraft>(pool, queues.as_ref(), payload, Some("bench")).await?;
    let job = run_to_end(pool, queues, SummaryDraft::QUEUE, consumer, started.job.id).await?;
    let took = begun.elapsed();
    let messages: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(fetched), 0)::int8 FROM job_items WHERE job_id = $1",
    )
    .bind(job.id)
    .fetch_one(pool)
    .await?;
    Ok((took, messages))
}

/// Polls `queue` with `consumer` until job `job_id` has ended; fails unless it completed.
async fn run_to_end<C: BatchConsumer>(
    pool: &PgPool,
    queues: &Arc<dyn Queues>,
    queue: QueueName,
    consumer: &C,
    job_id: Uuid,
) -> anyhow::Result<jobs::Job> {
    let mut source = EventSource::new(queues.clone(), queue);
    source.wait = Duration::from_millis(5);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if source.poll_once(consumer).await? == 0 {
            let job = jobs::get(pool, job_id).await?.context("the job")?;
            if job.status.is_terminal() {
                anyhow::ensure!(
                    job.status == JobStatus::Completed,
                    "the job ended {:?}: {:?}",
                    job.status,
                    job.error
                );
                return Ok(job);
            }
            anyhow::ensure!(Instant::now() < deadline, "the job did not end in time");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
