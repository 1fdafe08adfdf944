//! The job core: queues, the consumer runtime, jobs, the dead-letter consumer and the
//! sweeper, each scenario over the embedded queue and over moto's SQS.

mod extra_type;
mod jobs;
mod poison;
mod probe;
mod queues;
