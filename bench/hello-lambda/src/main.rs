//! The smallest useful `lambda_runtime` function (the shape `cargo lambda new` starts
//! from): it answers every event with a greeting. The cold-start benchmark compares each
//! cwsync function's start-up against this one, built with the same profile.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({ "hello": event.payload }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(handler)).await
}
