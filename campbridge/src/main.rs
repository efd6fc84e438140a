//! `campbridge`: the operator command. Thin over `shared` and the `campbridge` library: it parses
//! arguments, wires adapters and prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use campbridge::config_cmd;
use campbridge::demo::{self, Stack, StackOptions};
use campbridge::ops::{self, Backend, SecretSource};
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
    /// Where the operator commands read secrets: `auto` follows `[store]` (CAMPBRIDGE_SECRET_* variables
    /// with SQLite, AWS Secrets Manager with DynamoDB), or `env` / `aws` explicitly.
    #[arg(long, value_enum, default_value_t = SecretsFrom::Auto, global = true)]
    secrets: SecretsFrom,
    /// The Secrets Manager prefix: secret `name` is read from `<prefix><name>` (the SAM template uses
    /// `<stack name>/`).
    #[arg(long, env = "CAMPBRIDGE_SECRET_PREFIX", default_value = ops::backend::DEFAULT_SECRET_PREFIX, global = true)]
    secret_prefix: String,
    /// TESTS ONLY: accept a config with `[server] allow_insecure_loopback_upstreams = true` (upstreams on
    /// 127.0.0.1, such as the simulators). Without this flag such a config is refused.
    #[arg(long, env = LOOPBACK_OPT_IN, global = true, value_parser = clap::builder::BoolishValueParser::new())]
    insecure_loopback_upstreams_for_tests: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SecretsFrom {
    Auto,
    Env,
    Aws,
}

/// How the commands find their secrets, and whether the process opted into the loopback test allowance.
#[derive(Debug, Clone)]
struct SecretArgs {
    from: SecretsFrom,
    prefix: String,
    loopback_for_tests: bool,
}

/// The environment variable (and `--insecure-loopback-upstreams-for-tests`) a process sets to accept a
/// config with the loopback test allowance; the functions read the same one.
const LOOPBACK_OPT_IN: &str = shared::config::LOOPBACK_OPT_IN_VAR;

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
        /// On Ctrl-C or SIGTERM, answer `/readyz` with 503 and keep serving this many seconds before
        /// closing the listener, so a load balancer or orchestrator stops sending traffic first.
        #[arg(long, default_value_t = 0)]
        drain_delay: u64,
    },
    /// Why an item synced or not: its pair, and every audited decision, write, failed or postponed
    /// attempt, conflict and dead letter about it, oldest first.
    Explain {
        /// A Basecamp to-do id, a Jira key (`WEB-12`) or a delivery id (`basecamp:…`, `jira:…`).
        what: String,
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
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
    /// Sign campbridge in to an upstream and store its tokens where the backend reads secrets.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Work with campbridge.toml, locally and in a deployed stack.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// A deployed stack's secrets.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Preflight: credentials, scopes, projects, transitions, base URLs and webhooks, each ✓/✗ with a fix.
    /// Exits 1 when any check fails.
    Doctor {
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
        /// The receivers' public URLs (default `[server] public_url`); they enable the webhook checks.
        #[command(flatten)]
        urls: UrlArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Register, list, check or remove the webhooks campbridge needs upstream.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Pairs by state, pending claims, open conflicts, queue depth, dead letters, last delivery per
    /// source and webhook health.
    Status {
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
        /// The receivers' public URLs (default `[server] public_url`); they enable webhook health.
        #[command(flatten)]
        urls: UrlArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Exit 1 when something needs attention: dead letters, open conflicts, unhealthy webhooks, or a
        /// receiver silent for longer than `[server] max_silence` (for monitoring and cron).
        #[arg(long)]
        check: bool,
    },
    /// The conflict log, and settling an open conflict by hand.
    Conflicts {
        #[command(subcommand)]
        command: ConflictsCommand,
    },
    /// Re-run a dead-lettered event by its delivery id (safe: a delivery already applied is a no-op).
    Replay {
        /// The delivery id (`basecamp:…`, `jira:…`) or the dead letter's message id.
        delivery: String,
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
        /// Also work the queue now (when no `campbridge serve` is running to pick it up).
        #[arg(long)]
        run: bool,
    },
    /// Events that failed too often, and putting them back on the queue.
    DeadLetters {
        #[command(subcommand)]
        command: DeadLettersCommand,
    },
    /// Pair the to-dos that existed before the route: plan with --dry-run, then run (resumable).
    Backfill {
        /// The route id (`[[routes]] id`).
        #[arg(long)]
        route: String,
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
        /// Print the plan (create / finish / skip and why) and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only to-dos updated on or after this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
        /// Stop after this many to-dos (run again to continue).
        #[arg(long)]
        limit: Option<usize>,
        /// Machine-readable output (no progress bar).
        #[arg(long)]
        json: bool,
    },
    /// The validation loop on a sandbox to-do in the real accounts (create, update, filter, conflict),
    /// then cleans up. Exits 1 if a step fails.
    Selftest {
        /// The route id (`[[routes]] id`).
        #[arg(long)]
        route: String,
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AuthCommand {
    /// Basecamp's OAuth sign-in (Launchpad): prints the URL to open, receives the browser on
    /// `[basecamp] redirect_uri` (127.0.0.1), exchanges the code and stores the access and refresh tokens —
    /// locally in an environment file (mode 0600), for a stack in Secrets Manager <stack>/<name>.
    Basecamp {
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
        /// How long to wait for the browser to come back (`90s`, `5m`).
        #[arg(long, default_value = "5m", value_parser = parse_wait)]
        timeout: std::time::Duration,
        /// Local mode: the environment file the tokens are written to (default: campbridge.env beside the config).
        #[arg(long)]
        env_file: Option<PathBuf>,
    },
}

/// `90`, `90s`, `5m`, `1h`.
fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    let (number, per) = match text.strip_suffix('h') {
        Some(n) => (n, 3600),
        None => match text.strip_suffix('m') {
            Some(n) => (n, 60),
            None => (text.strip_suffix('s').unwrap_or(text), 1),
        },
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 => Ok(std::time::Duration::from_secs(n * per)),
        _ => Err(format!("{text:?} is not a duration like 90s or 5m")),
    }
}

#[derive(Debug, Subcommand)]
enum ConflictsCommand {
    /// Open conflicts (all with --all), newest first.
    List {
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One conflict in full.
    Show {
        id: String,
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Keep one side's value: it is written to the other side and the field syncs again.
    Resolve {
        id: String,
        /// `basecamp` or `tracker`.
        #[arg(long)]
        take: String,
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLettersCommand {
    /// The dead letters with their delivery ids.
    List {
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back on the queue: the given message ids, or every one with --all.
    Redrive {
        ids: Vec<String>,
        #[arg(long)]
        all: bool,
        #[arg(long, default_value = "campbridge.toml")]
        config: PathBuf,
        /// Also work the queue now (when no `campbridge serve` is running).
        #[arg(long)]
        run: bool,
    },
}

/// Where the receivers are reachable: one base for all (local mode behind a tunnel), or each receiver's
/// own URL (a deployed stack's function URLs). Unset ones fall back to `--base-url`, then `[server] public_url`.
#[derive(Debug, Clone, clap::Args)]
struct UrlArgs {
    /// The public URL in front of `campbridge serve` (`/basecamp/<token>`, `/jira`, `/bitbucket` under it).
    #[arg(long)]
    base_url: Option<String>,
    /// The Basecamp receiver's URL (AWS: the stack output BasecampWebhookUrl).
    #[arg(long)]
    basecamp_url: Option<String>,
    /// The Jira receiver's URL (AWS: the stack output JiraWebhookUrl).
    #[arg(long)]
    jira_url: Option<String>,
    /// The Bitbucket receiver's URL (AWS: the stack output BitbucketWebhookUrl).
    #[arg(long)]
    bitbucket_url: Option<String>,
}

impl UrlArgs {
    fn urls(self) -> ops::PublicUrls {
        ops::PublicUrls {
            base: self.base_url,
            basecamp: self.basecamp_url,
            jira: self.jira_url,
            bitbucket: self.bitbucket_url,
        }
    }
}

#[derive(Debug, clap::Args)]
struct HooksArgs {
    #[arg(long, default_value = "campbridge.toml")]
    config: PathBuf,
    /// The receivers' public URLs (default `[server] public_url`).
    #[command(flatten)]
    urls: UrlArgs,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct RegisterArgs {
    #[command(flatten)]
    hooks: HooksArgs,
    /// Also delete our own hooks that point at an old URL (without it they are reported).
    #[arg(long)]
    prune: bool,
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Create missing registrations and re-enable inactive ones (idempotent); prints Jira's admin steps.
    /// Our hooks at an old URL are reported, and deleted with --prune.
    Register(RegisterArgs),
    /// Show each expected registration and its state.
    List(HooksArgs),
    /// Like `list`, but exits 1 unless every registration is present and active.
    Check(HooksArgs),
    /// Delete the registrations campbridge made (matched by URL).
    Remove(HooksArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file; prints every problem as `file:line: message` and exits 1 if any. Warns
    /// about secret names the AWS stack does not create. With --stack, also checks that the stack's
    /// stored configuration is this file and that every secret it names is set (exit 1 if not).
    Check {
        #[arg(default_value = "campbridge.toml")]
        path: PathBuf,
        /// A deployed stack's name (its secrets are `<stack>/<name>` in Secrets Manager).
        #[arg(long)]
        stack: Option<String>,
    },
    /// Validate a config file and store it as the stack's configuration (Secrets Manager
    /// `<stack>/campbridge.toml`, one version per distinct text). Prints the version id, which
    /// `make deploy` gives the stack as ConfigVersion; nothing is stored when the file has a problem.
    Push {
        #[arg(default_value = "campbridge.toml")]
        path: PathBuf,
        /// The stack's name.
        #[arg(long)]
        stack: String,
    },
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Store a secret of the stack (`<stack>/<name>`); the value is read from stdin, never an argument.
    Set {
        /// One of the names the stack creates (docs/deploy.md).
        name: String,
        /// The stack's name.
        #[arg(long)]
        stack: String,
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
    let sa = SecretArgs {
        from: cli.secrets,
        prefix: cli.secret_prefix.clone(),
        loopback_for_tests: cli.insecure_loopback_upstreams_for_tests,
    };
    match cli.command {
        Command::Config { command: ConfigCommand::Check { path, stack } } => config_cmd::check(&path, stack.as_deref()),
        Command::Config { command: ConfigCommand::Push { path, stack } } => {
            config_cmd::push(&path, &stack, sa.loopback_for_tests)
        }
        Command::Secrets { command: SecretsCommand::Set { name, stack } } => config_cmd::set_secret(&stack, &name),
        Command::Auth { command: AuthCommand::Basecamp { config: path, timeout, env_file } } => {
            init_logs(cli.log_format, "warn");
            run_ops(async move {
                let (config, secrets) = ops_setup(&path, &sa).await?;
                let client_secret = ops::auth::client_secret(&config, secrets.as_ref()).await?;
                let sink = match secret_source(&config, &sa) {
                    SecretSource::Env => {
                        let file = env_file.unwrap_or_else(|| path.with_file_name("campbridge.env"));
                        ops::auth::TokenSink::EnvFile(std::path::absolute(&file).unwrap_or(file))
                    }
                    SecretSource::SecretsManager { prefix } => ops::auth::TokenSink::Store { secrets, prefix },
                };
                let pending = ops::auth::start(&config, ops::auth::Options { timeout, client_secret }).await?;
                println!(
                    "Open this URL in a browser signed in to Basecamp as the person campbridge should act as, and \
                     allow access:\n\n  {}\n",
                    pending.url
                );
                println!(
                    "Waiting up to {} s for Launchpad to send the browser back to {} …",
                    timeout.as_secs(),
                    pending.redirect_uri
                );
                let done = pending.finish(&config, &sink).await?;
                print!("{}", ops::auth::render(&done));
                Ok(true)
            })
        }
        Command::Serve { config, port, workers, drain_delay } => {
            init_logs(cli.log_format, "info");
            let drain_delay = std::time::Duration::from_secs(drain_delay);
            run_async(serve(config, port, workers, drain_delay, sa.loopback_for_tests))
        }
        Command::Demo { exit, dir } => {
            init_logs(cli.log_format, "warn");
            run_async(run_demo(dir, exit))
        }
        Command::Doctor { config, urls, json } => {
            init_logs(cli.log_format, "warn");
            run_ops(async move {
                let (config, secrets) = ops_setup(&config, &sa).await?;
                let report = ops::doctor::run(&config, secrets, &urls.urls()).await;
                emit(json, &report, ops::doctor::render(&report))?;
                Ok(report.ok())
            })
        }
        Command::Webhooks { command } => {
            init_logs(cli.log_format, "warn");
            let (args, action, strict) = match command {
                WebhooksCommand::Register(RegisterArgs { hooks, prune: false }) => {
                    (hooks, ops::webhooks::Action::Register, true)
                }
                WebhooksCommand::Register(RegisterArgs { hooks, prune: true }) => {
                    (hooks, ops::webhooks::Action::RegisterAndPrune, true)
                }
                WebhooksCommand::List(a) => (a, ops::webhooks::Action::Check, false),
                WebhooksCommand::Check(a) => (a, ops::webhooks::Action::Check, true),
                WebhooksCommand::Remove(a) => (a, ops::webhooks::Action::Remove, false),
            };
            run_ops(async move {
                let (config, secrets) = ops_setup(&args.config, &sa).await?;
                let report = ops::webhooks::run(&config, secrets, &args.urls.urls(), action).await?;
                emit(args.json, &report, ops::webhooks::render(&report))?;
                Ok(!strict || report.healthy())
            })
        }
        Command::Status { config, urls, json, check } => {
            init_logs(cli.log_format, "warn");
            run_ops(async move {
                let (config, secrets) = ops_setup(&config, &sa).await?;
                let backend = Backend::open(&config).await?;
                let report = ops::status::run(&backend, &config, Some(secrets), &urls.urls()).await?;
                emit(json, &report, ops::status::render(&report))?;
                Ok(!check || report.problems.is_empty())
            })
        }
        Command::Explain { what, config, json } => {
            init_logs(cli.log_format, "warn");
            run_ops(async move {
                let config = load_config(&config, &sa)?;
                let backend = Backend::open(&config).await?;
                let x = ops::explain::run(&backend, &config, &what).await?;
                emit(json, &x, ops::explain::render(&x))?;
                Ok(true)
            })
        }
        Command::Conflicts { command } => {
            init_logs(cli.log_format, "warn");
            run_ops(async move {
                match command {
                    ConflictsCommand::List { config, all, json } => {
                        let backend = Backend::open(&load_config(&config, &sa)?).await?;
                        let list = ops::conflicts::list(backend.stores.conflicts.as_ref(), all).await?;
                        emit(json, &list, ops::conflicts::render_list(&list))?;
                    }
                    ConflictsCommand::Show { id, config, json } => {
                        let backend = Backend::open(&load_config(&config, &sa)?).await?;
                        let c = ops::conflicts::show(backend.stores.conflicts.as_ref(), &id).await?;
                        emit(json, &c, ops::conflicts::render_one(&c))?;
                    }
                    ConflictsCommand::Resolve { id, take, config } => {
                        let side = ops::conflicts::side(&take)?;
                        let (config, secrets) = ops_setup(&config, &sa).await?;
                        let (_, engine) = ops::open_engine(&config, secrets, &ops_worker()).await?;
                        let r = ops::conflicts::resolve(&engine, &id, side).await?;
                        print!("{}", ops::conflicts::render_resolved(&r));
                    }
                }
                Ok(true)
            })
        }
        Command::Replay { delivery, config, run } => {
            init_logs(cli.log_format, "warn");
            run_ops(async move {
                let config = load_config(&config, &sa)?;
                let backend = Backend::open(&config).await?;
                let ids = ops::replay::replay(backend.queue.as_ref(), &delivery).await?;
                println!("Requeued {} message(s) for {delivery}.", ids.len());
                finish_requeue(&config, &backend, &sa, run).await
            })
        }
        Command::DeadLetters { command } => {
            init_logs(cli.log_format, "warn");
            run_ops(async move {
                match command {
                    DeadLettersCommand::List { config, json } => {
                        let backend = Backend::open(&load_config(&config, &sa)?).await?;
                        let list = ops::replay::list(backend.queue.as_ref()).await?;
                        emit(json, &list, ops::replay::render_list(&list))?;
                        Ok(true)
                    }
                    DeadLettersCommand::Redrive { ids, all, config, run } => {
                        if ids.is_empty() && !all {
                            anyhow::bail!("name the message ids to redrive, or pass --all");
                        }
                        let config = load_config(&config, &sa)?;
                        let backend = Backend::open(&config).await?;
                        let done = ops::replay::redrive(backend.queue.as_ref(), &ids).await?;
                        println!("Requeued {} dead letter(s).", done.len());
                        finish_requeue(&config, &backend, &sa, run).await
                    }
                }
            })
        }
        Command::Backfill { route, config, dry_run, since, limit, json } => {
            init_logs(cli.log_format, "warn");
            run_ops(async move {
                let (config, secrets) = ops_setup(&config, &sa).await?;
                let (_, engine) = ops::open_engine(&config, secrets.clone(), &ops_worker()).await?;
                let client = ops::basecamp_client(&config, secrets).await?;
                let route = shared::domain::RouteId::parse(&route).map_err(|e| anyhow::anyhow!("--route: {e}"))?;
                let opts = ops::backfill::Options { route, dry_run, since, limit, progress: !json };
                let limiter = Arc::new(ops::backfill::RateLimiter::basecamp());
                let report = ops::backfill::run(&engine, &client, limiter, &opts).await?;
                emit(json, &report, ops::backfill::render(&report))?;
                Ok(report.failed == 0)
            })
        }
        Command::Selftest { route, config, json } => {
            init_logs(cli.log_format, "warn");
            run_ops(async move {
                let (config, secrets) = ops_setup(&config, &sa).await?;
                let (_, engine) = ops::open_engine(&config, secrets.clone(), &ops_worker()).await?;
                let route = shared::domain::RouteId::parse(&route).map_err(|e| anyhow::anyhow!("--route: {e}"))?;
                let report = ops::selftest::run(&config, secrets, &engine, &route).await?;
                emit(json, &report, ops::selftest::render(&report))?;
                Ok(report.ok())
            })
        }
    }
}

/// Loads and validates the config; one asking for the loopback test allowance only with the opt-in.
fn load_config(path: &std::path::Path, sa: &SecretArgs) -> anyhow::Result<Config> {
    let config = Config::from_file(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.check_loopback_opt_in(sa.loopback_for_tests).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(config)
}

/// Where secrets come from for `config`, as the global flags say.
fn secret_source(config: &Config, sa: &SecretArgs) -> SecretSource {
    match sa.from {
        SecretsFrom::Auto => SecretSource::for_store(config, &sa.prefix),
        SecretsFrom::Env => SecretSource::Env,
        SecretsFrom::Aws => SecretSource::SecretsManager { prefix: sa.prefix.clone() },
    }
}

/// Loads the config and opens the secret store for an operator command.
async fn ops_setup(path: &std::path::Path, sa: &SecretArgs) -> anyhow::Result<(Config, Arc<dyn SecretStore>)> {
    let config = load_config(path, sa)?;
    let secrets = secret_source(&config, sa).open(&config).await;
    Ok((config, secrets))
}

/// The worker name operator commands use in leases.
fn ops_worker() -> String {
    format!("ops-{}", std::process::id())
}

/// After a requeue: work the queue here when asked, else say who will.
async fn finish_requeue(config: &Config, backend: &Backend, sa: &SecretArgs, run: bool) -> anyhow::Result<bool> {
    if run {
        let secrets = secret_source(config, sa).open(config).await;
        let engine = backend.engine(config, secrets, &ops_worker()).await?;
        let n = ops::replay::drain(&engine, backend.queue.as_ref(), 100).await?;
        println!("Processed {n} message(s).");
    } else {
        println!("{} picks them up (or re-run with --run to process them here).", capitalized(backend.queue_worker()));
    }
    Ok(true)
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Prints `value` as JSON, or `text`.
fn emit(json: bool, value: &impl serde::Serialize, text: String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{text}");
    }
    Ok(())
}

/// Runs an operator command; `Ok(false)` (something is wrong) exits 1 like an error does.
fn run_ops(fut: impl std::future::Future<Output = anyhow::Result<bool>>) -> ExitCode {
    let mut healthy = true;
    let code = run_async(async {
        healthy = fut.await?;
        Ok(())
    });
    if healthy { code } else { ExitCode::FAILURE }
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

async fn serve(
    path: PathBuf,
    port: Option<u16>,
    workers: usize,
    drain_delay: std::time::Duration,
    loopback_for_tests: bool,
) -> anyhow::Result<()> {
    let config = Config::from_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.check_loopback_opt_in(loopback_for_tests).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
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
    // Before the announcement: from here on a SIGTERM drains the server instead of killing it.
    let shutdown = server::shutdown_signal();
    let local = format!("http://{}", listener.local_addr()?);
    let base = config.server.public_url.as_ref().map_or(local.clone(), |u| u.as_str().to_owned());
    println!("campbridge serving on {local}; webhook URLs to register:");
    for (what, url) in wiring::webhook_urls(&config, &wired.receivers, &base) {
        println!("  {what}: {url}");
    }
    match config.server.reconcile_every {
        Some(every) => println!("reconciling at start and every {}s ([server] reconcile_every)", every.as_secs()),
        None => println!("not reconciling: [server] reconcile_every is off"),
    }
    let reconcile = wired.reconcile.map(|(reconciling, _handle)| reconciling);
    let stats = Arc::new(Stats::default());
    let limits = server::Limits { drain_delay, ..server::Limits::default() };
    server::run_with(listener, wired.app, wired.engine, workers, stats, reconcile, limits, shutdown).await
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
    let shutdown = server::shutdown_signal();
    println!("Press Ctrl-C to stop.");
    shutdown.await;
    stack.stop().await
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_stack_passes_each_receivers_url_and_the_secret_prefix() {
        let cli = Cli::try_parse_from([
            "campbridge",
            "webhooks",
            "register",
            "--basecamp-url",
            "https://bc.example",
            "--jira-url",
            "https://jira.example",
            "--bitbucket-url",
            "https://bb.example",
            "--secret-prefix",
            "team-sync/",
        ])
        .map_err(|e| e.to_string());
        let Ok(Cli {
            command: Command::Webhooks { command: WebhooksCommand::Register(RegisterArgs { hooks: args, .. }) },
            secret_prefix,
            ..
        }) = cli
        else {
            panic!("parsed as {cli:?}");
        };
        assert_eq!(secret_prefix, "team-sync/");
        let urls = args.urls.urls();
        assert_eq!(
            (urls.base, urls.basecamp.as_deref(), urls.jira.as_deref(), urls.bitbucket.as_deref()),
            (None, Some("https://bc.example"), Some("https://jira.example"), Some("https://bb.example"))
        );
    }
}
