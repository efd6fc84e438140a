//! The `basecamp-webhook` Lambda function: wiring only (configuration, SDK clients and its one secret, once per cold
//! start).

mod handler;

use std::sync::Arc;

use campbridge_lambda::{cold_start_failed, init_tracing, start};
use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let (config, aws) = start().await?;
    // Only this source's secret: the function's role allows no other.
    let receiver =
        shared::setup::basecamp_receiver(&config.campbridge, aws.secrets.as_ref()).await.map_err(cold_start_failed)?;
    let state = Arc::new(handler::State { receiver, queue: aws.queue });
    run(service_fn(move |request: Request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Error>(campbridge_lambda::with_metrics(handler::handle(&state, request)).await) }
    }))
    .await
}
