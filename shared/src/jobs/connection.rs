//! The one connection a consumer's batch runs its records' statements on (fewer round
//! trips: see docs/architecture.md, "Jobs").
//!
//! A statement on the pool takes a connection of its own, and sqlx pings every
//! connection it hands out (`test_before_acquire`, see [`db::pool`](crate::db::pool)) and
//! every one it takes back: three round trips per statement. A batch instead takes one
//! connection from the pool at its first statement (so the ping that finds a connection
//! that died while the Lambda was frozen still comes first: a Lambda is frozen only
//! between invocations, never inside a batch) and keeps it until the batch ends. A record
//! that fails gives it back at once, so the next record starts on a connection the pool
//! checked: a failure may have been the connection's.
//!
//! A statement locks the connection only while it runs: between statements (while a
//! handler waits for Chatwork) nothing holds it. Records run one after another, so the
//! lock is never contended; handlers that need the database otherwise use the pool.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{Mutex, MutexGuard};

/// A batch's connection, taken from `pool` when first needed. Clones share it.
#[derive(Clone)]
pub struct BatchConnection {
    pool: PgPool,
    held: Arc<Mutex<Option<PoolConnection<Postgres>>>>,
}

impl std::fmt::Debug for BatchConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchConnection").finish_non_exhaustive()
    }
}

/// The batch's connection, locked for one statement.
pub struct Locked<'a>(MutexGuard<'a, Option<PoolConnection<Postgres>>>);

impl std::ops::Deref for Locked<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.0
            .as_deref()
            .expect("a locked batch connection is held")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.0
            .as_deref_mut()
            .expect("a locked batch connection is held")
    }
}

impl BatchConnection {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            held: Arc::default(),
        }
    }

    /// The pool the connection comes from.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The connection, for one statement (`&mut *locked` is its executor); taken from
    /// the pool, which checks it, when none is held.
    pub async fn lock(&self) -> Result<Locked<'_>, sqlx::Error> {
        let mut held = self.held.lock().await;
        if held.is_none() {
            *held = Some(self.pool.acquire().await?);
        }
        Ok(Locked(held))
    }

    /// Gives the connection back to the pool (at the end of a batch, or after a failed
    /// record); the next statement takes one again.
    pub async fn release(&self) {
        self.held.lock().await.take();
    }
}
