//! The registry: the job types an application runs, built where the application is
//! assembled (a Lambda's `main`, the local runner, tests) from `cwsync::job_types`. The
//! code that handles jobs of any type reads it: finishing and canceling a job (its
//! result), the sweeper and recovery (its queue), the dead-letter consumer, the API (the
//! types it accepts, and retrying a job's failed items) and the local runner (its
//! consumers and job view).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::PgPool;

use super::{
    ItemRecord, ItemStatus, JobKind, JobRecord, JobType, StartError, Started, start_recorded,
};
use crate::consumer::BatchConsumer;
use crate::jobs::JobConsumer;
use crate::queue::{QueueName, Queues};

/// One registered job type, its Rust types erased: what code that handles jobs of any
/// type may ask of it.
pub trait RegisteredType: Send + Sync {
    fn job_type(&self) -> JobType;
    /// Its work queue.
    fn queue(&self) -> QueueName;
    /// What people call a job of this type (`rooms sync`).
    fn label(&self) -> &'static str;
    /// What its items are, in progress lines (`rooms`).
    fn items(&self) -> &'static str;
    /// The job's result derived from its stored items, as stored.
    fn summarize(&self, items: &[ItemRecord]) -> serde_json::Value;
    /// A stored result in a few words; `None` when it does not parse as this type's.
    fn describe(&self, result: &serde_json::Value) -> Option<String>;
    /// The consumer of its queue, with its context taken from `contexts`; `queues` carry
    /// the items its jobs grow by.
    fn consumer(
        &self,
        pool: &PgPool,
        queues: &Arc<dyn Queues>,
        contexts: &Contexts,
    ) -> Result<Arc<dyn BatchConsumer>, MissingContext>;
    /// What a job that does again the failed items of a finished job with `payload` and
    /// `items` would be asked.
    fn retry_plan(&self, payload: &serde_json::Value, items: &[ItemRecord]) -> RetryPlan;
    /// Starts a job of this type over a stored `payload` (see [`start_recorded`]).
    fn start<'a>(
        &'a self,
        pool: &'a PgPool,
        queues: &'a dyn Queues,
        payload: &'a serde_json::Value,
        user_id: Option<&'a str>,
        record: Option<&'a dyn JobRecord>,
    ) -> Pin<Box<dyn Future<Output = Result<Started, StartError>> + Send + 'a>>;
}

/// What retrying the failed items of a finished job would do.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryPlan {
    /// Start a job with this payload; it covers the `failed` failed items.
    Start {
        payload: serde_json::Value,
        failed: usize,
    },
    /// No item failed.
    NothingFailed,
    /// Some items failed, and this type cannot start a job over only those.
    NotSupported,
}

struct Entry<K>(PhantomData<fn() -> K>);

impl<K: JobKind> RegisteredType for Entry<K> {
    fn job_type(&self) -> JobType {
        K::TYPE
    }

    fn queue(&self) -> QueueName {
        K::QUEUE
    }

    fn label(&self) -> &'static str {
        K::LABEL
    }

    fn items(&self) -> &'static str {
        K::ITEMS
    }

    fn summarize(&self, items: &[ItemRecord]) -> serde_json::Value {
        let typed: Vec<_> = items.iter().map(ItemRecord::typed::<K>).collect();
        serde_json::to_value(K::summarize(&typed)).unwrap_or_else(|e| {
            tracing::error!(job_type = %K::TYPE, error = %e, "a job result does not serialize");
            serde_json::Value::Null
        })
    }

    fn describe(&self, result: &serde_json::Value) -> Option<String> {
        let result: K::Result = serde_json::from_value(result.clone()).ok()?;
        Some(K::describe(&result))
    }

    fn consumer(
        &self,
        pool: &PgPool,
        queues: &Arc<dyn Queues>,
        contexts: &Contexts,
    ) -> Result<Arc<dyn BatchConsumer>, MissingContext> {
        let context = contexts.get::<K::Context>().ok_or(MissingContext {
            job_type: K::TYPE,
            context: std::any::type_name::<K::Context>(),
        })?;
        Ok(Arc::new(JobConsumer::<K>::new(
            pool.clone(),
            queues.clone(),
            context,
        )))
    }

    fn retry_plan(&self, payload: &serde_json::Value, items: &[ItemRecord]) -> RetryPlan {
        let failed: Vec<_> = items
            .iter()
            .filter(|i| i.status == ItemStatus::Failed)
            .map(ItemRecord::typed::<K>)
            .collect();
        if failed.is_empty() {
            return RetryPlan::NothingFailed;
        }
        let own = serde_json::from_value::<K::Payload>(payload.clone())
            .ok()
            .and_then(|p| K::retry_payload(&p, &failed))
            .and_then(|p| serde_json::to_value(p).ok());
        match own {
            Some(payload) => RetryPlan::Start {
                payload,
                failed: failed.len(),
            },
            // Every item failed: the same job again does exactly the failed items.
            None if failed.len() == items.len() => RetryPlan::Start {
                payload: payload.clone(),
                failed: failed.len(),
            },
            None => RetryPlan::NotSupported,
        }
    }

    fn start<'a>(
        &'a self,
        pool: &'a PgPool,
        queues: &'a dyn Queues,
        payload: &'a serde_json::Value,
        user_id: Option<&'a str>,
        record: Option<&'a dyn JobRecord>,
    ) -> Pin<Box<dyn Future<Output = Result<Started, StartError>> + Send + 'a>> {
        Box::pin(async move {
            let payload: K::Payload = serde_json::from_value(payload.clone())?;
            start_recorded::<K>(pool, queues, &payload, user_id, record).await
        })
    }
}

/// A queue and the consumer of its batches.
pub type QueueConsumer = (QueueName, Arc<dyn BatchConsumer>);

/// The job types of an application. Cheap to clone.
#[derive(Clone, Default)]
pub struct Registry {
    types: Vec<Arc<dyn RegisteredType>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.types.iter().map(|t| t.job_type()))
            .finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry of one type (what a consumer of that type needs).
    pub fn of<K: JobKind>() -> Self {
        Self::new().register::<K>()
    }

    /// Adds job type `K`.
    ///
    /// # Panics
    /// When its `job_type` value or its queue is taken: two types in one queue or under
    /// one name would read each other's jobs, a mistake of assembly, not of run time.
    pub fn register<K: JobKind>(mut self) -> Self {
        for known in &self.types {
            assert!(
                known.job_type() != K::TYPE,
                "job type {} is registered twice",
                K::TYPE
            );
            assert!(
                known.queue() != K::QUEUE,
                "queue {} carries both {} and {}",
                K::QUEUE,
                known.job_type(),
                K::TYPE
            );
        }
        self.types.push(Arc::new(Entry::<K>(PhantomData)));
        self
    }

    pub fn get(&self, job_type: JobType) -> Option<&dyn RegisteredType> {
        self.types
            .iter()
            .find(|t| t.job_type() == job_type)
            .map(|t| t.as_ref())
    }

    /// The registered types, in the order they were registered.
    pub fn types(&self) -> impl Iterator<Item = &dyn RegisteredType> {
        self.types.iter().map(|t| t.as_ref())
    }

    /// The `job_type` values, in the order they were registered.
    pub fn job_types(&self) -> Vec<JobType> {
        self.types().map(|t| t.job_type()).collect()
    }

    /// The work queues, one per type.
    pub fn work_queues(&self) -> Vec<QueueName> {
        self.types().map(|t| t.queue()).collect()
    }

    /// The dead-letter queues, one per work queue.
    pub fn dead_letter_queues(&self) -> Vec<QueueName> {
        self.types().map(|t| t.queue().dead_letter()).collect()
    }

    /// The result of a job of `job_type` derived from its items; `None` for a type this
    /// registry does not hold.
    pub fn summarize(&self, job_type: JobType, items: &[ItemRecord]) -> Option<serde_json::Value> {
        self.get(job_type).map(|t| t.summarize(items))
    }

    /// The consumer of every type's queue, each with its context from `contexts`.
    pub fn consumers(
        &self,
        pool: &PgPool,
        queues: &Arc<dyn Queues>,
        contexts: &Contexts,
    ) -> Result<Vec<QueueConsumer>, MissingContext> {
        self.types()
            .map(|t| Ok((t.queue(), t.consumer(pool, queues, contexts)?)))
            .collect()
    }
}

/// The contexts job types run with, one per Rust type (job types that need the same
/// context share it: the two syncs share one Chatwork client and so one rate budget).
#[derive(Clone, Default)]
pub struct Contexts {
    map: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Contexts {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with<C: Send + Sync + 'static>(mut self, context: Arc<C>) -> Self {
        self.map.insert(TypeId::of::<C>(), context);
        self
    }

    pub fn get<C: Send + Sync + 'static>(&self) -> Option<Arc<C>> {
        self.map
            .get(&TypeId::of::<C>())
            .cloned()
            .and_then(|c| c.downcast::<C>().ok())
    }
}

/// A job type whose context was not provided.
#[derive(Debug, thiserror::Error)]
#[error("job type {job_type} needs a context of type {context}, and none was given")]
pub struct MissingContext {
    pub job_type: JobType,
    pub context: &'static str,
}
