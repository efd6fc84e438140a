//! One campbridge deployment on the emulators, built fresh per test: the API simulators as upstreams, a
//! new SQS FIFO queue and secret prefix on moto, a new table on DynamoDB Local, and the functions' own
//! binaries answering invocations through cargo-lambda's runtime emulator on 127.0.0.1.
//!
//! The emulator runs as `cargo lambda watch --only-lambda-apis`, and the harness starts each function's
//! binary itself, with the environment a deployed function gets (`AWS_LAMBDA_RUNTIME_API` and the
//! function's variables, as in infra/template.yaml). Letting `watch` compile the functions instead
//! (`cargo run --bin <function>`) would resolve 12 of a function's 270 crates with other features than
//! the workspace's test build (tokio, hyper and serde_core among them: no dev-dependencies, no other
//! members), so nearly everything would compile a second time. `make test-aws` builds the functions
//! once with the tests (`cargo build --bins --test aws_emulators`), and the harness runs those binaries
//! from next to its own executable.
//!
//! Every process runs under `timeout`, so none outlives a killed test; a dropped world stops its own
//! processes by PID and keeps their logs only when the test failed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use campbridge_simulators::{basecamp as bc_sim, bitbucket as bb_sim, jira as jira_sim};
use serde_json::Value;
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::secrets_manager::SecretsManagerSecrets;
use shared::adapters::sqs::SqsFifoQueue;
use shared::adapters::stored_config::StoredConfig;
use shared::config::Config;

/// The documented test secrets (events/README.md): the events in events/ are signed with them.
pub const WEBHOOK_KEY: &str = "campbridge-test-webhook-key";
pub const JIRA_WEBHOOK_SECRET: &str = "campbridge-test-jira-secret";
pub const BITBUCKET_WEBHOOK_SECRET: &str = "campbridge-test-bitbucket-secret";

/// Seconds any process of a world may live: a safety net for a test that is killed, not a time limit
/// on a working one.
const LIFETIME: &str = "300";

/// Seconds one `cargo lambda invoke` may take.
const INVOKE_TIMEOUT: &str = "60";

/// The workspace root (cargo-lambda always runs from there).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The SDK configuration pointing at the emulators, or `None` (after saying so) when they are not
/// running; with `CAMPBRIDGE_REQUIRE_EMULATORS` set, a missing endpoint fails instead. Only loopback
/// endpoints are accepted, so no test ever reaches a real AWS endpoint.
pub async fn emulators() -> Option<SdkConfig> {
    for service in ["DYNAMODB", "SQS", "SECRETS_MANAGER"] {
        let var = format!("AWS_ENDPOINT_URL_{service}");
        match std::env::var(&var) {
            Ok(url) if url.starts_with("http://127.0.0.1:") => {}
            Ok(url) => panic!("{var}={url}: the emulator tests only talk to 127.0.0.1"),
            Err(_) if std::env::var("CAMPBRIDGE_REQUIRE_EMULATORS").is_ok() => {
                panic!("{var} is not set but CAMPBRIDGE_REQUIRE_EMULATORS is: start the emulators (make test-aws)")
            }
            Err(_) => {
                eprintln!("not run: {var} is not set (make test-aws runs this against the emulators)");
                return None;
            }
        }
    }
    Some(shared::adapters::aws_sdk::load().await)
}

/// A process a test started, stopped by its PID when dropped.
pub struct Process {
    name: String,
    child: Child,
}

impl Process {
    /// Starts `program args…` under `timeout`, its output going to `<logs>/<name>.log`, with the test's
    /// environment plus `env`.
    pub fn start(name: &str, logs: &Path, program: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        Self::spawn(name, logs, program, args, env, false)
    }

    /// Like [`Process::start`], but with only `PATH`, `HOME` and `env` in its environment: nothing of the
    /// test's own AWS settings leaks in (a service endpoint variable would beat `AWS_ENDPOINT_URL`).
    pub fn start_clean(name: &str, logs: &Path, program: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        Self::spawn(name, logs, program, args, env, true)
    }

    fn spawn(name: &str, logs: &Path, program: &Path, args: &[&str], env: &[(&str, String)], clean: bool) -> Self {
        let log = std::fs::File::create(logs.join(format!("{name}.log"))).unwrap();
        let mut command = Command::new("timeout");
        if clean {
            command.env_clear();
            for keep in ["PATH", "HOME"] {
                if let Ok(v) = std::env::var(keep) {
                    command.env(keep, v);
                }
            }
        }
        let child = command
            .arg(LIFETIME)
            .arg(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", program.display()));
        Self { name: name.to_owned(), child }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Some(why)` when the process has ended.
    pub fn ended(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|status| format!("{} exited ({status})", self.name))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.ended().is_some() {
            return;
        }
        // SIGTERM to our `timeout`, which passes it on to the process it runs.
        let pid = self.child.id().to_string();
        let terminated = Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        while terminated && Instant::now() < deadline {
            if self.ended().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = self.child.kill() {
            eprintln!("could not stop {} (pid {pid}): {e}", self.name);
        }
        if let Err(e) = self.child.wait() {
            eprintln!("could not reap {} (pid {pid}): {e}", self.name);
        }
    }
}

/// A message found on the queue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Queued {
    pub group: String,
    pub deduplication: String,
    pub body: String,
}

/// A fresh deployment: simulators, queue, table, secrets, the runtime emulator and the functions.
pub struct World {
    pub basecamp: bc_sim::Simulator,
    pub jira: jira_sim::Simulator,
    pub bitbucket: bb_sim::Simulator,
    pub config: Config,
    pub sdk: SdkConfig,
    pub queue_url: String,
    pub table: String,
    pub secret_prefix: String,
    /// The version of the stored configuration the functions run.
    pub config_version: String,
    /// The runtime emulator's port on 127.0.0.1.
    pub port: u16,
    logs: PathBuf,
    // Stopped in this order: the functions, then the emulator they talk to.
    functions: Vec<Process>,
    watch: Option<Process>,
}

impl World {
    /// Starts a world running `functions` (package names, as in events/), or `None` when the emulators
    /// are not running (see [`emulators`]).
    pub async fn start(functions: &[&str]) -> Option<Self> {
        let sdk = emulators().await?;
        let basecamp = bc_sim::Simulator::start(bc_sim::Options::default()).await.unwrap();
        let jira = jira_sim::Simulator::start(jira_sim::Options::default()).await.unwrap();
        let bitbucket = bb_sim::Simulator::start(bb_sim::Options::default()).await.unwrap();
        let text = config_text(&basecamp, &jira, &bitbucket);
        let config = Config::parse(&text, "CAMPBRIDGE_CONFIG").unwrap();

        let unique = uuid::Uuid::new_v4().simple().to_string();
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("campbridge-{unique}.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let table = format!("campbridge-{unique}");
        DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await.unwrap();
        let secret_prefix = format!("campbridge-{unique}/");
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        for (name, value) in [
            ("webhook-key", WEBHOOK_KEY.to_owned()),
            ("jira-webhook-secret", JIRA_WEBHOOK_SECRET.to_owned()),
            ("bitbucket-webhook-secret", BITBUCKET_WEBHOOK_SECRET.to_owned()),
            ("basecamp-access-token", bc_sim::ACCESS_TOKEN.to_owned()),
            ("basecamp-client-secret", bc_sim::CLIENT_SECRET.to_owned()),
            ("basecamp-refresh-token", bc_sim::REFRESH_TOKEN.to_owned()),
            ("jira-api-token", jira_sim::API_TOKEN.to_owned()),
            ("bitbucket-api-token", bitbucket.credentials().1),
        ] {
            secrets.create_secret().name(format!("{secret_prefix}{name}")).secret_string(value).send().await.unwrap();
        }
        // The configuration as `campbridge config push` stores it; the functions read that version.
        let config_version = StoredConfig::new(secrets.clone(), &secret_prefix)
            .push(&text, "campbridge.toml")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .version;

        let logs = std::env::temp_dir().join(format!("campbridge-lambda-{unique}"));
        std::fs::create_dir_all(&logs).unwrap();
        let port = free_port();
        let mut world = Self {
            basecamp,
            jira,
            bitbucket,
            config,
            sdk,
            queue_url,
            table,
            secret_prefix,
            config_version,
            port,
            logs,
            functions: Vec::new(),
            watch: None,
        };
        let port = port.to_string();
        let watch_args = [
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--ignore-changes",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port,
        ];
        // watch reads the workspace's metadata with cargo; the network namespace has no network.
        let offline = [("CARGO_NET_OFFLINE", "true".to_owned())];
        world.watch = Some(Process::start("cargo-lambda-watch", &world.logs, &cargo_lambda(), &watch_args, &offline));
        world.wait_for_emulator().await;
        for name in functions {
            let env = world.function_env(name);
            let process = Process::start(name, &world.logs, &function_binary(name), &[], &env);
            world.functions.push(process);
        }
        Some(world)
    }

    /// What a deployed function finds in its environment (infra/template.yaml), plus the runtime API.
    fn function_env(&self, name: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{}/.rt/{name}", self.port)),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
            ("CAMPBRIDGE_CONFIG_VERSION", self.config_version.clone()),
            ("QUEUE_URL", self.queue_url.clone()),
            ("TABLE_NAME", self.table.clone()),
            ("SECRET_PREFIX", self.secret_prefix.clone()),
            // The simulators live on 127.0.0.1: the functions' test opt-in for the config's loopback allowance.
            (shared::config::LOOPBACK_OPT_IN_VAR, "1".to_owned()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ]
    }

    async fn wait_for_emulator(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            if let Some(why) = self.watch.as_mut().and_then(Process::ended) {
                panic!("{why} before listening; see {}", self.logs.display());
            }
            assert!(
                Instant::now() < deadline,
                "the runtime emulator did not listen within 60 s; see {}",
                self.logs.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Panics, naming the logs, when a process of this world has ended.
    pub fn assert_running(&mut self) {
        let ended: Vec<String> =
            self.functions.iter_mut().chain(self.watch.as_mut()).filter_map(Process::ended).collect();
        assert!(ended.is_empty(), "{}; see {}", ended.join(", "), self.logs.display());
    }

    /// `cargo lambda invoke <function> --data-file events/<function>/<event>` (under `timeout`): the
    /// function's response as JSON.
    pub async fn invoke(&mut self, function: &str, event: &str) -> Value {
        self.assert_running();
        let data = format!("events/{function}/{event}");
        let args = [
            INVOKE_TIMEOUT.to_owned(),
            cargo_lambda().display().to_string(),
            "lambda".to_owned(),
            "invoke".to_owned(),
            function.to_owned(),
            "--invoke-address".to_owned(),
            "127.0.0.1".to_owned(),
            "--invoke-port".to_owned(),
            self.port.to_string(),
            "--data-file".to_owned(),
            data.clone(),
            "--output-format".to_owned(),
            "json".to_owned(),
        ];
        let out = tokio::task::spawn_blocking(move || {
            Command::new("timeout").args(&args).current_dir(root()).stdin(Stdio::null()).output()
        })
        .await
        .unwrap()
        .unwrap();
        self.assert_running();
        assert!(
            out.status.success(),
            "cargo lambda invoke {function} --data-file {data}: {}\n{}\nlogs: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.logs.display()
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{function} answered no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// The function URL of `function` on the emulator, with `path` appended.
    pub fn function_url(&self, function: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}/lambda-url/{function}{path}", self.port)
    }

    pub fn queue(&self) -> SqsFifoQueue {
        SqsFifoQueue::new(aws_sdk_sqs::Client::new(&self.sdk), &self.queue_url)
    }

    pub fn store(&self) -> Arc<DynamoStore> {
        Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), self.table.clone()))
    }

    pub fn secrets(&self) -> Arc<SecretsManagerSecrets> {
        Arc::new(SecretsManagerSecrets::new(aws_sdk_secretsmanager::Client::new(&self.sdk), &self.secret_prefix))
    }

    /// Every message waiting on the queue, oldest first per group, removed from it.
    pub async fn take_queued(&self) -> Vec<Queued> {
        let client = aws_sdk_sqs::Client::new(&self.sdk);
        let mut taken = Vec::new();
        loop {
            let out = client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let attribute = |name| m.attributes().and_then(|a| a.get(&name)).cloned().unwrap_or_default();
                taken.push(Queued {
                    group: attribute(MessageSystemAttributeName::MessageGroupId),
                    deduplication: attribute(MessageSystemAttributeName::MessageDeduplicationId),
                    body: m.body().unwrap_or_default().to_owned(),
                });
                let receipt = m.receipt_handle().unwrap();
                client.delete_message().queue_url(&self.queue_url).receipt_handle(receipt).send().await.unwrap();
            }
        }
        taken
    }

    /// Creates to-dos titled `titles` in the seeded list "Sprint 1" (route `web` takes it), as Victor; their
    /// ids in order.
    pub async fn create_todos(&self, titles: &[&str]) -> Vec<i64> {
        let list = self.basecamp.list_id("Sprint 1").await.unwrap();
        let mut ids = Vec::new();
        for title in titles {
            let write = bc_sim::TodoWrite { content: Some((*title).into()), ..bc_sim::TodoWrite::default() };
            ids.push(self.basecamp.create_todo(list, write, bc_sim::VICTOR).await.unwrap());
        }
        ids
    }

    /// Registers route `web`'s Basecamp webhook and deactivates it, as Basecamp does after repeated failed
    /// deliveries. Its URL has the route's token but no listener (loopback port 9): re-enabled, it would
    /// lose its deliveries instead of enqueueing jobs the rows do not expect.
    pub async fn register_deactivated_webhook(&self) {
        let secrets: Arc<dyn shared::ports::SecretStore> = self.secrets();
        let route = shared::domain::RouteId::parse("web").unwrap();
        let token = shared::setup::basecamp_receiver(&self.config, secrets.as_ref())
            .await
            .unwrap()
            .unwrap()
            .route_token(&route);
        let client = shared::setup::basecamp_client(&self.config, secrets).await.unwrap();
        let url = format!("http://127.0.0.1:9/basecamp/{token}");
        let types = shared::clients::basecamp::SYNC_WEBHOOK_TYPES;
        let hook = client.create_webhook(shared::domain::ProjectId(bc_sim::PROJECT_ID), &url, types).await.unwrap();
        client.update_webhook(hook.id, &url, types, false).await.unwrap();
    }

    /// How many issues Jira holds (keys are numbered from 1 in the one project).
    pub async fn jira_issues(&self) -> usize {
        let mut n = 0;
        while self.jira.issue(&format!("WEB-{}", n + 1)).await.is_some() {
            n += 1;
        }
        n
    }

    /// Writes to the simulators so far (every call but GETs): (Basecamp, Jira).
    pub fn upstream_writes(&self) -> (u64, u64) {
        let writes = |calls: campbridge_simulators::common::calls::Calls| {
            calls.0.iter().filter(|(k, _)| !k.starts_with("GET ")).map(|(_, n)| n).sum::<u64>()
        };
        (writes(self.basecamp.calls()), writes(self.jira.calls()))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.functions.clear();
        self.watch = None;
        if std::thread::panicking() {
            eprintln!("the functions' and the runtime emulator's logs are in {}", self.logs.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.logs) {
            eprintln!("could not remove {}: {e}", self.logs.display());
        }
    }
}

/// cargo-lambda as `make tools-aws` installs it.
pub fn cargo_lambda() -> PathBuf {
    let path = root().join(".tools/venv/bin/cargo-lambda");
    assert!(path.exists(), "{} is missing: run scripts/emulators.sh install", path.display());
    path
}

/// A function's binary, built with the tests (`make test-aws`): next to this test's own directory.
pub fn function_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/aws_emulators-<hash> → target/<profile>/<name>
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the functions with the tests first \
         (cargo build --workspace --all-features --bins --test aws_emulators, as make test-aws does)",
        path.display()
    );
    path
}

/// A port nothing listens on now (the emulator binds it right after; the namespace holds only this run).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The functions' `campbridge.toml` (CAMPBRIDGE_CONFIG): the demo's deployment — route `web` = the
/// simulators' project and Jira project WEB, the route the events in events/ are made for. Secrets are
/// named, not included; the functions take their table and queue from the environment, not `[store]`.
pub fn config_text(bc: &bc_sim::Simulator, jira: &jira_sim::Simulator, bb: &bb_sim::Simulator) -> String {
    let opts = campbridge::demo::StackOptions::new(std::env::temp_dir());
    campbridge::demo::simulator_config(&opts, "kind = \"sqlite\"", bc, jira, bb)
}
