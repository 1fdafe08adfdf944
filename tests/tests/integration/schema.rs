//! The data model's rules, proven against the real database.

use cwsync_tests::TestDb;
use sqlx::PgPool;
use uuid::Uuid;

/// The SQLSTATE of a statement that must fail.
async fn sqlstate(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> String {
    match result {
        Ok(_) => panic!("the statement was accepted"),
        Err(sqlx::Error::Database(e)) => e.code().expect("a SQLSTATE").into_owned(),
        Err(e) => panic!("not a database error: {e}"),
    }
}

const UNIQUE_VIOLATION: &str = "23505";
const FOREIGN_KEY_VIOLATION: &str = "23503";
const CHECK_VIOLATION: &str = "23514";
const INVALID_TEXT_REPRESENTATION: &str = "22P02";

async fn room(pool: &PgPool, room_id: i64) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO chatwork_rooms (room_id, name, room_type) VALUES ($1, 'room', 'group') RETURNING id",
    )
    .bind(room_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn company(pool: &PgPool) -> Uuid {
    sqlx::query_scalar("INSERT INTO companies (name) VALUES ('Acme') RETURNING id")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn insert_message(
    pool: &PgPool,
    room: Uuid,
    room_id: i64,
    message_id: &str,
) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    sqlx::query(
        "INSERT INTO messages (chatwork_room_id, room_id, message_id, account_id, account_name, body, send_time)
         VALUES ($1, $2, $3, 7, 'Sato', 'hello', now())",
    )
    .bind(room)
    .bind(room_id)
    .bind(message_id)
    .execute(pool)
    .await
}

#[tokio::test]
async fn a_duplicate_message_is_rejected() {
    let db = TestDb::new().await;
    let r = room(&db.pool, 101).await;
    insert_message(&db.pool, r, 101, "1234567890123456789")
        .await
        .unwrap();
    let code = sqlstate(insert_message(&db.pool, r, 101, "1234567890123456789").await).await;
    assert_eq!(code, UNIQUE_VIOLATION);
}

#[tokio::test]
async fn a_message_cannot_name_two_different_rooms() {
    let db = TestDb::new().await;
    let a = room(&db.pool, 101).await;
    room(&db.pool, 202).await;
    let code = sqlstate(insert_message(&db.pool, a, 202, "1").await).await;
    assert_eq!(code, FOREIGN_KEY_VIOLATION);
}

#[tokio::test]
async fn message_ids_must_be_decimal_and_order_numerically() {
    let db = TestDb::new().await;
    let r = room(&db.pool, 101).await;
    for bad in ["12a", "-5", "", "1e5"] {
        let code = sqlstate(insert_message(&db.pool, r, 101, bad).await).await;
        // The generated numeric column may refuse the text before the CHECK sees it.
        assert!(
            [CHECK_VIOLATION, INVALID_TEXT_REPRESENTATION].contains(&code.as_str()),
            "{bad:?}: {code}"
        );
    }
    for id in ["99", "100", "1234567890123456789", "98765432109876543210"] {
        insert_message(&db.pool, r, 101, id).await.unwrap();
    }
    let ordered: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM messages ORDER BY message_seq")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        ordered,
        ["99", "100", "1234567890123456789", "98765432109876543210"]
    );
}

#[tokio::test]
async fn a_duplicate_link_is_rejected_and_deleting_a_company_removes_its_links() {
    let db = TestDb::new().await;
    let c = company(&db.pool).await;
    let r = room(&db.pool, 101).await;
    let link = "INSERT INTO company_room_links (company_id, chatwork_room_id) VALUES ($1, $2)";
    sqlx::query(link)
        .bind(c)
        .bind(r)
        .execute(&db.pool)
        .await
        .unwrap();
    let code = sqlstate(sqlx::query(link).bind(c).bind(r).execute(&db.pool).await).await;
    assert_eq!(code, UNIQUE_VIOLATION);

    let m = insert_message(&db.pool, r, 101, "5").await;
    m.unwrap();
    sqlx::query("UPDATE messages SET company_id = $1")
        .bind(c)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM companies WHERE id = $1")
        .bind(c)
        .execute(&db.pool)
        .await
        .unwrap();
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM company_room_links")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(links, 0);
    // The message stays; it only loses its company.
    let company: Option<Uuid> = sqlx::query_scalar("SELECT company_id FROM messages")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(company, None);
}

#[tokio::test]
async fn invalid_enum_values_are_rejected() {
    let db = TestDb::new().await;
    let code = sqlstate(
        sqlx::query("INSERT INTO jobs (type) VALUES ('chatwork_everything_sync')")
            .execute(&db.pool)
            .await,
    )
    .await;
    assert_eq!(code, INVALID_TEXT_REPRESENTATION);
    let code = sqlstate(
        sqlx::query("INSERT INTO jobs (type, status) VALUES ('summary_draft', 'paused')")
            .execute(&db.pool)
            .await,
    )
    .await;
    assert_eq!(code, INVALID_TEXT_REPRESENTATION);
    let code = sqlstate(
        sqlx::query(
            "INSERT INTO chatwork_rooms (room_id, name, room_type) VALUES (1, 'x', 'channel')",
        )
        .execute(&db.pool)
        .await,
    )
    .await;
    assert_eq!(code, CHECK_VIOLATION);
}

#[tokio::test]
async fn a_job_is_finished_exactly_when_its_status_is_terminal() {
    let db = TestDb::new().await;
    let code = sqlstate(
        sqlx::query("INSERT INTO jobs (type, status) VALUES ('summary_draft', 'completed')")
            .execute(&db.pool)
            .await,
    )
    .await;
    assert_eq!(code, CHECK_VIOLATION);
    let code = sqlstate(
        sqlx::query("INSERT INTO jobs (type, finished_at) VALUES ('summary_draft', now())")
            .execute(&db.pool)
            .await,
    )
    .await;
    assert_eq!(code, CHECK_VIOLATION);
    let code = sqlstate(
        sqlx::query("INSERT INTO jobs (type, error) VALUES ('summary_draft', '{\"oops\": 1}')")
            .execute(&db.pool)
            .await,
    )
    .await;
    assert_eq!(code, CHECK_VIOLATION);
    sqlx::query(
        "INSERT INTO jobs (type, status, started_at, finished_at) VALUES ('summary_draft', 'completed', now(), now())",
    )
    .execute(&db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn job_items_belong_to_a_job_and_are_unique_per_key() {
    let db = TestDb::new().await;
    let code = sqlstate(
        sqlx::query(
            "INSERT INTO job_items (job_id, item_key, message, message_group)
             VALUES (gen_random_uuid(), 'room-1', '{}', 'room-1')",
        )
        .execute(&db.pool)
        .await,
    )
    .await;
    assert_eq!(code, FOREIGN_KEY_VIOLATION);
    let job: Uuid = sqlx::query_scalar(
        "INSERT INTO jobs (type) VALUES ('chatwork_messages_sync') RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let item = "INSERT INTO job_items (job_id, item_key, message, message_group)
                VALUES ($1, 'room-1', '{}', 'room-1')";
    sqlx::query(item).bind(job).execute(&db.pool).await.unwrap();
    let code = sqlstate(sqlx::query(item).bind(job).execute(&db.pool).await).await;
    assert_eq!(code, UNIQUE_VIOLATION);
    sqlx::query("DELETE FROM jobs")
        .execute(&db.pool)
        .await
        .unwrap();
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM job_items")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(items, 0, "items go with their job");
}

#[tokio::test]
async fn the_rate_budget_stays_within_its_limit() {
    let db = TestDb::new().await;
    let insert = "INSERT INTO chatwork_rate_budgets (token_hash, limit_count, remaining, reset_at)
                  VALUES (sha256('t'::bytea), 300, $1, now())";
    let code = sqlstate(sqlx::query(insert).bind(301).execute(&db.pool).await).await;
    assert_eq!(code, CHECK_VIOLATION);
    let code = sqlstate(sqlx::query(insert).bind(-1).execute(&db.pool).await).await;
    assert_eq!(code, CHECK_VIOLATION);
    sqlx::query(insert)
        .bind(300)
        .execute(&db.pool)
        .await
        .unwrap();
}

/// Everything the migrations define, as text, to compare two states of a database.
async fn schema_fingerprint(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name || '.' || column_name || ':' || data_type
           FROM information_schema.columns WHERE table_schema = 'public'
         UNION ALL
         SELECT conname || ':' || pg_get_constraintdef(oid) FROM pg_constraint
          WHERE connamespace = 'public'::regnamespace
         UNION ALL
         SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
         UNION ALL
         SELECT version || ':' || success FROM _sqlx_migrations
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn migrations_run_twice_without_error_or_change() {
    let db = TestDb::empty().await;
    cwsync::db::migrate(&db.pool).await.unwrap();
    let first = schema_fingerprint(&db.pool).await;
    assert!(first.len() > 50, "the migrations created the model");
    cwsync::db::migrate(&db.pool).await.unwrap();
    // A second process (its own pool) migrating again changes nothing either.
    cwsync::db::migrate(&db.another_pool()).await.unwrap();
    assert_eq!(schema_fingerprint(&db.pool).await, first);
}
