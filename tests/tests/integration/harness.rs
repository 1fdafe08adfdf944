//! The harness itself: isolated databases and the SQS emulator.

use cwsync_tests::{TestDb, sqs_emulator};

#[tokio::test]
async fn each_test_database_is_isolated_and_dropped() {
    let a = TestDb::new().await;
    let b = TestDb::new().await;
    assert_ne!(a.name, b.name);
    sqlx::query("INSERT INTO companies (name) VALUES ('only in a')")
        .execute(&a.pool)
        .await
        .unwrap();
    let in_b: i64 = sqlx::query_scalar("SELECT count(*) FROM companies")
        .fetch_one(&b.pool)
        .await
        .unwrap();
    assert_eq!(in_b, 0);

    let name = a.name.clone();
    drop(a);
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&b.pool)
            .await
            .unwrap();
    assert!(!exists, "the dropped TestDb's database is gone");
}

#[tokio::test]
async fn the_sqs_emulator_answers_on_loopback() {
    let emulator = sqs_emulator();
    assert!(emulator.endpoint.starts_with("http://127.0.0.1:"));
    let response = reqwest::get(format!("{}/moto-api/", emulator.endpoint))
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    // A second call reuses the same server.
    assert_eq!(sqs_emulator().endpoint, emulator.endpoint);
}
