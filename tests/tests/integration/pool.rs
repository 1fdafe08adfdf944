//! The process's pool (`cwsync::db::pool`) through a proxy that reads the wire: what a
//! statement costs in round trips, and a connection that died while idle (as one may
//! while a Lambda is frozen) is replaced instead of failing the statement.

use std::time::Duration;

use cwsync_tests::{TcpProxy, TestDb, eventually};

async fn pool_via(proxy: &TcpProxy, db: &TestDb) -> sqlx::PgPool {
    let mut config = db.config_via(proxy.addr());
    config.max_connections = 1;
    cwsync::db::pool(&config).unwrap()
}

/// sqlx checks a connection when it comes back, in a task of its own: wait for it.
async fn back_in_the_pool(pool: &sqlx::PgPool) {
    eventually(
        "the connection back in the pool",
        Duration::from_secs(10),
        || async { pool.num_idle() == pool.size() as usize },
    )
    .await;
}

#[tokio::test]
async fn a_statement_costs_three_round_trips() {
    let db = TestDb::new().await;
    let proxy = TcpProxy::start(db.server_addr()).await;
    let pool = pool_via(&proxy, &db).await;
    // Connects and prepares the statement.
    cwsync::db::ping(&pool).await.unwrap();
    back_in_the_pool(&pool).await;
    let before = proxy.counts();
    for _ in 0..5 {
        cwsync::db::ping(&pool).await.unwrap();
        back_in_the_pool(&pool).await;
    }
    let spent = proxy.counts() - before;
    assert_eq!(spent.statements(), 5, "{spent:?}");
    // The statement, the check before the pool hands the connection out, and sqlx's
    // check when it comes back (BENCHMARKS.md, figure 4, says why both stay).
    assert_eq!(spent.round_trips(), 15, "{spent:?}");
}

#[tokio::test]
async fn a_connection_that_died_while_idle_is_replaced_before_use() {
    let db = TestDb::new().await;
    let proxy = TcpProxy::start(db.server_addr()).await;
    let pool = pool_via(&proxy, &db).await;
    cwsync::db::ping(&pool).await.unwrap();
    back_in_the_pool(&pool).await;
    // The server side of the idle connection goes away (as it may while a Lambda is
    // frozen), unnoticed by the pool.
    proxy.cut();
    proxy.restore();
    cwsync::db::ping(&pool)
        .await
        .expect("the dead connection is found before use and replaced");
}
