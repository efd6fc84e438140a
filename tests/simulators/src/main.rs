//! `campbridge-simulators`: starts the Basecamp, Jira and Bitbucket simulators on loopback ports,
//! prints their base and control URLs with the default credentials, and runs until Ctrl-C.

use anyhow::Context;
use campbridge_simulators::{basecamp, bitbucket, jira};
use clap::Parser;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(name = "campbridge-simulators", about = "Run the Basecamp, Jira and Bitbucket API simulators")]
struct Args {
    /// Print the URLs as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Disable Basecamp's 50-requests-per-10-s rate limit.
    #[arg(long)]
    no_rate_limit: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let mut basecamp_options = basecamp::Options::default();
    if args.no_rate_limit {
        basecamp_options.rate_limit = None;
    }
    let bc = basecamp::Simulator::start(basecamp_options).await.context("failed to start the Basecamp simulator")?;
    let jr = jira::Simulator::start(jira::Options::default()).await.context("failed to start the Jira simulator")?;
    let bb = bitbucket::Simulator::start(bitbucket::Options::default())
        .await
        .context("failed to start the Bitbucket simulator")?;
    let (jira_email, jira_token) = jr.credentials();
    let (bb_email, bb_token) = bb.credentials();
    let summary = serde_json::json!({
        "basecamp": {"base_url": bc.base_url(), "launchpad_url": bc.launchpad_url(), "control_url": bc.control_url(),
                     "access_token": bc.access_token(), "refresh_token": basecamp::REFRESH_TOKEN,
                     "client_id": basecamp::CLIENT_ID, "client_secret": basecamp::CLIENT_SECRET},
        "jira": {"base_url": jr.base_url(), "control_url": jr.control_url(), "email": jira_email, "api_token": jira_token},
        "bitbucket": {"base_url": bb.base_url(), "control_url": bb.control_url(), "email": bb_email, "api_token": bb_token,
                      "workspace": bitbucket::WORKSPACE, "repo": bitbucket::REPO},
    });
    if args.json {
        println!("{summary}");
    } else {
        println!("basecamp   base {}  launchpad {}  control {}", bc.base_url(), bc.launchpad_url(), bc.control_url());
        println!("jira       base {}  control {}", jr.base_url(), jr.control_url());
        println!("bitbucket  base {}  control {}", bb.base_url(), bb.control_url());
        println!("credentials: GET <control>/info on each simulator (test-only values)");
    }
    tokio::signal::ctrl_c().await.context("failed to wait for Ctrl-C")?;
    tokio::join!(bc.shutdown(), jr.shutdown(), bb.shutdown());
    Ok(())
}
