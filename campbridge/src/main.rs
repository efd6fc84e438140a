//! `campbridge`: the operator command. Thin over `shared` and the `campbridge` library: it parses
//! arguments, wires adapters and prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use campbridge::config_cmd;
use campbridge::demo::{self, Stack, StackOptions};
use campbridge::server::{self, Stats};
use campbridge::wiring;
use clap::{Parser, Subcommand, ValueEnum};
use shared::adapters::env_secrets::EnvSecrets;
use shared::config::Config;
use shared::ports::{Clock, SecretStore, SystemClock};

#[derive(Debug, Parser)]
#[command(name = "campbridge", version, about = "Two-way sync between Basecamp and Jira/Bitbucket")]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run local mode: the webhook receivers and mapper workers on the embedded SQLite store.
    Serve {
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
        /// Port on 127.0.0.1 (overrides `[server] listen`).
        #[arg(long)]
        port: Option<u16>,
        /// Mapper workers.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
    /// Start the built-in simulators, sync a story through them, then keep serving until Ctrl-C.
    Demo {
        /// Exit after the story instead of serving.
        #[arg(long)]
        exit: bool,
        /// Where the demo writes its config and database.
        #[arg(long, default_value = "target/demo")]
        dir: PathBuf,
    },
    /// Work with campbridge.toml.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file; prints every problem as `file:line: message` and exits 1 if any.
    Check {
        #[arg(default_value = "campbridge.toml")]
        path: PathBuf,
    },
}

fn init_logs(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config { command: ConfigCommand::Check { path } } => config_cmd::check(&path),
        Command::Serve { config, port, workers } => {
            init_logs(cli.log_format, "info");
            run_async(serve(config, port, workers))
        }
        Command::Demo { exit, dir } => {
            init_logs(cli.log_format, "warn");
            run_async(run_demo(dir, exit))
        }
    }
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn ctrl_c() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("error: cannot listen for Ctrl-C: {e}");
    }
}

async fn serve(path: PathBuf, port: Option<u16>, workers: usize) -> anyhow::Result<()> {
    let config = Config::from_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let secrets: Arc<dyn SecretStore> = Arc::new(EnvSecrets::from_env());
    let store = wiring::open_store(&config, clock.clone())?;
    let worker = format!("local-{}", std::process::id());
    let wired = wiring::wire(&config, store, secrets, clock, &worker).await?;
    let mut addr = config.server.listen;
    if let Some(p) = port {
        addr.set_port(p);
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = format!("http://{}", listener.local_addr()?);
    let base = config.server.public_url.as_ref().map_or(local.clone(), |u| u.as_str().to_owned());
    println!("campbridge serving on {local}; webhook URLs to register:");
    for (what, url) in wiring::webhook_urls(&config, &wired.receivers, &base) {
        println!("  {what}: {url}");
    }
    server::run(listener, wired.app, wired.engine, workers, Arc::new(Stats::default()), ctrl_c()).await
}

async fn run_demo(dir: PathBuf, exit: bool) -> anyhow::Result<()> {
    let dir = demo::fresh_dir(&dir, "run");
    println!("campbridge demo — Basecamp, Jira and Bitbucket simulators on 127.0.0.1, the embedded SQLite store");
    let stack = Stack::start(StackOptions::new(&dir)).await?;
    println!("config written to {}", dir.join("campbridge.toml").display());
    let summary = demo::play(&stack).await?;
    demo::print_summary(&summary);
    if exit {
        return stack.stop().await;
    }
    println!("\nStill serving on {} against the simulators. Webhook URLs:", stack.server_url);
    for (what, url) in &stack.urls {
        println!("  {what}: {url}");
    }
    println!("  Basecamp simulator: {}  (control API: {})", stack.basecamp.base_url(), stack.basecamp.control_url());
    println!("  Jira simulator:     {}  (control API: {})", stack.jira.base_url(), stack.jira.control_url());
    println!("  Bitbucket simulator: {}  (control API: {})", stack.bitbucket.base_url(), stack.bitbucket.control_url());
    println!("Press Ctrl-C to stop.");
    ctrl_c().await;
    stack.stop().await
}
