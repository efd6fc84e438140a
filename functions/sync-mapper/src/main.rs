//! The `sync-mapper` Lambda function: wiring only (configuration, SDK clients, secrets, once per cold start).
//! A missing table or secret fails the cold start with its setup error, before any message is taken.

mod handler;

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use campbridge_lambda::{ConfigError, cold_start_failed, init_tracing, start};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::ports::SystemClock;
use shared::setup::Stores;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let (config, aws) = start().await?;
    let table = aws.table.clone().ok_or_else(|| cold_start_failed(ConfigError::Missing("TABLE_NAME")))?;
    // Leases name their holder; every cold start is a distinct holder, so two instances never mistake
    // each other's claim for their own.
    let worker = format!("sync-mapper-{}", uuid::Uuid::new_v4().simple());
    let engine = shared::setup::engine(
        &config.campbridge,
        Stores::all(table),
        aws.secrets.clone(),
        Arc::new(SystemClock),
        &worker,
    )
    .await
    .map_err(cold_start_failed)?;
    let state = Arc::new(handler::State { engine, queue: aws.queue });
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Error>(campbridge_lambda::with_metrics(handler::handle(&state, event.payload)).await) }
    }))
    .await
}
