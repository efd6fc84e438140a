//! The `jira-webhook` Lambda function: wiring only (configuration, SDK clients, secrets, once per cold start).

mod handler;

use std::sync::Arc;

use campbridge_lambda::{Aws, LambdaConfig, init_tracing, receivers};
use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = LambdaConfig::from_env()?;
    let aws = Aws::connect(&config).await;
    let state =
        Arc::new(handler::State { receivers: receivers(&config, aws.secrets.as_ref()).await?, queue: aws.queue });
    run(service_fn(move |request: Request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Error>(handler::handle(&state, request).await) }
    }))
    .await
}
