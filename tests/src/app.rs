//! The API served over real HTTP on a free loopback port, over a fresh database.

use cwsync::api;

use crate::TestDb;

/// A running API and the database behind it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub db: TestDb,
    pub http: reqwest::Client,
}

impl TestApp {
    /// `GET {address}{path}`
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request to the test API")
    }
}

/// Starts the API on `127.0.0.1:0` over a freshly migrated database.
pub async fn spawn_app() -> TestApp {
    let db = TestDb::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = format!("http://{}", listener.local_addr().expect("bound address"));
    let app = api::router(api::AppState {
        pool: db.pool.clone(),
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("test API server");
    });
    TestApp {
        address,
        db,
        http: reqwest::Client::new(),
    }
}
