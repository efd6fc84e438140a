//! The `reconciler` Lambda function: wiring only (configuration, SDK clients, secrets, once per cold start).
//! A missing table or secret fails the cold start with its setup error.

mod handler;

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use campbridge_lambda::{ConfigError, cold_start_failed, init_tracing, start};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::ports::SystemClock;
use shared::sync::ReconcileStores;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let (config, aws) = start().await?;
    let table = aws.table.clone().ok_or_else(|| cold_start_failed(ConfigError::Missing("TABLE_NAME")))?;
    let stores = ReconcileStores { pairs: table.clone(), cursors: table, queue: aws.queue };
    let reconciler = shared::setup::reconciler(&config.campbridge, stores, aws.secrets.clone(), Arc::new(SystemClock))
        .await
        .map_err(cold_start_failed)?;
    let state = Arc::new(handler::State { reconciler });
    run(service_fn(move |event: LambdaEvent<EventBridgeEvent>| {
        let state = Arc::clone(&state);
        async move { campbridge_lambda::with_metrics(handler::handle(&state, event.payload)).await.map_err(Error::from) }
    }))
    .await
}
