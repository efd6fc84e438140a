//! The function binaries (every `functions/*` package with a binary, found at run time): release sizes,
//! cold starts and warm invocations against a loopback stub of the Lambda Runtime API.
//!
//! Cold start = from exec of the release binary to its first `GET /2018-06-01/runtime/invocation/next`,
//! which is what AWS reports as init duration. It includes everything `main` does before that: reading
//! the config from the environment, building the SDK clients, and reading the function's secrets from
//! Secrets Manager — moto inside the emulators' private network namespace, on loopback. The binaries are
//! built for this host (x86_64); AWS runs them on arm64.
//!
//! Warm invocations replay the function URL envelopes of `events/<function>/` (the accepted ones)
//! through the stub: duration = event handed out → response posted; log bytes = what the process wrote
//! to stdout/stderr per invocation beyond its init lines.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};

use crate::stats::{Percentiles, Spread};

/// A function binary and the package that builds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Function {
    pub name: String,
    pub package: String,
}

/// Every binary target of the packages under `functions/`, by reading their manifests.
pub fn discover(root: &Path) -> anyhow::Result<Vec<Function>> {
    let mut found = Vec::new();
    let dir = root.join("functions");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let pkg_dir = entry?.path();
        let manifest = pkg_dir.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        found.extend(binaries(&text, pkg_dir.join("src/main.rs").exists())?);
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The binary targets a manifest declares: its `[[bin]]` entries, or the package itself when it has a
/// `src/main.rs` and no `[[bin]]`.
fn binaries(manifest: &str, has_main: bool) -> anyhow::Result<Vec<Function>> {
    let value: toml::Value = toml::from_str(manifest)?;
    let package = value.get("package").and_then(|p| p.get("name")).and_then(toml::Value::as_str);
    let Some(package) = package else { return Ok(Vec::new()) };
    let bins: Vec<Function> = value
        .get("bin")
        .and_then(toml::Value::as_array)
        .map(|bins| {
            bins.iter()
                .filter_map(|b| b.get("name").and_then(toml::Value::as_str))
                .map(|name| Function { name: name.to_owned(), package: package.to_owned() })
                .collect()
        })
        .unwrap_or_default();
    let auto = value.get("package").and_then(|p| p.get("autobins")).and_then(toml::Value::as_bool) != Some(false);
    if bins.is_empty() && has_main && auto {
        return Ok(vec![Function { name: package.to_owned(), package: package.to_owned() }]);
    }
    Ok(bins)
}

/// What the stub saw.
#[derive(Debug)]
enum Seen {
    Next(Instant),
    Handed { id: String, at: Instant },
    Response { id: String, at: Instant, body: Bytes },
    Error { id: String, body: Bytes },
}

#[derive(Clone)]
struct Stub {
    seen: mpsc::UnboundedSender<Seen>,
    events: Arc<Mutex<VecDeque<Bytes>>>,
    more: Arc<Notify>,
    seq: Arc<AtomicU64>,
}

async fn next(State(stub): State<Stub>) -> Response {
    if stub.seen.send(Seen::Next(Instant::now())).is_err() {
        return StatusCode::GONE.into_response();
    }
    // Wait for an event; the server is dropped after each run, which ends a wait that never gets one.
    let event = loop {
        let notified = stub.more.notified();
        if let Some(e) = stub.events.lock().unwrap_or_else(|p| p.into_inner()).pop_front() {
            break e;
        }
        notified.await;
    };
    let id = format!("bench-{}", stub.seq.fetch_add(1, Ordering::Relaxed));
    let mut headers = HeaderMap::new();
    let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
    for (name, value) in [
        ("lambda-runtime-aws-request-id", id.clone()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned()),
        ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned()),
        ("content-type", "application/json".to_owned()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    // A closed channel only means the run is over.
    stub.seen.send(Seen::Handed { id, at: Instant::now() }).ok();
    (headers, event).into_response()
}

async fn response(State(stub): State<Stub>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    stub.seen.send(Seen::Response { id, at: Instant::now(), body }).ok();
    StatusCode::ACCEPTED
}

async fn invocation_error(State(stub): State<Stub>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    stub.seen.send(Seen::Error { id, body }).ok();
    StatusCode::ACCEPTED
}

async fn init_error(State(stub): State<Stub>, body: Bytes) -> StatusCode {
    stub.seen.send(Seen::Error { id: "init".to_owned(), body }).ok();
    StatusCode::ACCEPTED
}

/// One run's stub server on 127.0.0.1; aborted (with every connection) when dropped.
struct StubServer {
    addr: std::net::SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    events: Arc<Mutex<VecDeque<Bytes>>>,
    more: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StubServer {
    async fn start() -> anyhow::Result<Self> {
        let (tx, seen) = mpsc::unbounded_channel();
        let stub = Stub {
            seen: tx,
            events: Arc::new(Mutex::new(VecDeque::new())),
            more: Arc::new(Notify::new()),
            seq: Arc::new(AtomicU64::new(1)),
        };
        let (events, more) = (stub.events.clone(), stub.more.clone());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(stub);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("runtime API stub stopped: {e}");
            }
        });
        Ok(Self { addr, seen, events, more, task })
    }

    fn push(&self, event: Bytes) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).push_back(event);
        self.more.notify_waiters();
    }
}

/// A started function process with its output counted.
struct Process {
    child: Child,
    bytes: Arc<AtomicU64>,
    tail: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Process {
    fn spawn(binary: &Path, env: &[(String, String)]) -> anyhow::Result<Self> {
        let mut cmd = Command::new(binary);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("starting {}", binary.display()))?;
        let bytes = Arc::new(AtomicU64::new(0));
        let tail = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let outs: Vec<Box<dyn Read + Send>> = [
            child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>),
            child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        for mut out in outs {
            let (bytes, tail) = (bytes.clone(), tail.clone());
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = out.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    t.extend_from_slice(&buf[..n]);
                    let excess = t.len().saturating_sub(4096);
                    t.drain(..excess);
                }
            }));
        }
        Ok(Self { child, bytes, tail, readers })
    }

    /// Kills the process and waits for it and its output; returns the bytes it wrote.
    fn stop(mut self) -> u64 {
        // An error means it already exited.
        self.child.kill().ok();
        if let Err(e) = self.child.wait() {
            eprintln!("waiting for a function process: {e}");
        }
        for r in self.readers.drain(..) {
            if r.join().is_err() {
                eprintln!("an output reader panicked");
            }
        }
        self.bytes.load(Ordering::Relaxed)
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                std::thread::sleep(Duration::from_millis(50));
                let tail = String::from_utf8_lossy(&self.tail.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
                Some(format!("exited with {status} before asking for an event: {}", tail.trim()))
            }
            Ok(None) => None,
            Err(e) => Some(format!("could not be polled: {e}")),
        }
    }
}

/// Waits for what the stub sees next, watching the process; `Err` when the process exits or the bound
/// (which only stops a broken run from hanging) runs out.
async fn wait_seen(stub: &mut StubServer, process: &mut Process, bound: Duration) -> anyhow::Result<Seen> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        tokio::select! {
            seen = stub.seen.recv() => return seen.context("the stub stopped"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {
                if let Some(why) = process.exited() {
                    bail!("{why}");
                }
                if tokio::time::Instant::now() > deadline {
                    bail!("no request to the Runtime API within {} s", bound.as_secs());
                }
            }
        }
    }
}

/// One function's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionFigures {
    pub init_ms: Option<Spread>,
    /// Bytes the process logs before asking for its first event (median over the starts).
    pub init_log_bytes: Option<f64>,
    pub warm: Option<Warm>,
    pub error: Option<String>,
}

/// Warm invocations of one function.
#[derive(Debug, Clone, Serialize)]
pub struct Warm {
    pub invocations: usize,
    pub events: Vec<String>,
    pub duration_ms_p50: f64,
    pub duration_ms_p99: f64,
    pub log_bytes_per_invocation: f64,
}

/// The environment a function gets, beyond the inherited one (which carries the emulators' AWS_*).
pub fn env(function: &str, memory_mb: u32, runtime_api: &str, app: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("AWS_LAMBDA_RUNTIME_API".into(), runtime_api.into()),
        ("AWS_LAMBDA_FUNCTION_NAME".into(), function.into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME".into(), format!("/aws/lambda/{function}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), "bench".into()),
        ("AWS_LAMBDA_LOG_LEVEL".into(), "INFO".into()),
        ("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()),
    ];
    env.extend(app.iter().cloned());
    env
}

/// Cold-starts `binary` `starts` times; then, when `events` has envelopes, runs `invocations` warm
/// invocations of the accepted ones in one more process.
pub async fn measure(
    binary: &Path,
    function: &str,
    memory_mb: u32,
    app_env: &[(String, String)],
    starts: usize,
    events: &[(String, Bytes)],
    invocations: usize,
) -> FunctionFigures {
    let mut init = Vec::new();
    let mut init_bytes = Vec::new();
    for _ in 0..starts {
        match cold_start(binary, function, memory_mb, app_env).await {
            Ok((ms, bytes)) => {
                init.push(ms);
                init_bytes.push(bytes as f64);
            }
            Err(e) => {
                return FunctionFigures {
                    init_ms: None,
                    init_log_bytes: None,
                    warm: None,
                    error: Some(format!("{e:#}")),
                };
            }
        }
    }
    let init_log_bytes = Spread::of(&init_bytes).map(|s| s.median);
    let warm = if events.is_empty() {
        Ok(None)
    } else {
        warm(binary, function, memory_mb, app_env, events, invocations).await.map(Some)
    };
    let (warm, error) = match warm {
        Ok(w) => (w, None),
        Err(e) => (None, Some(format!("warm invocations: {e:#}"))),
    };
    FunctionFigures { init_ms: Spread::of(&init), init_log_bytes, warm, error }
}

async fn cold_start(
    binary: &Path,
    function: &str,
    memory_mb: u32,
    app: &[(String, String)],
) -> anyhow::Result<(f64, u64)> {
    let mut stub = StubServer::start().await?;
    let env = env(function, memory_mb, &stub.addr.to_string(), app);
    let started = Instant::now();
    let mut process = Process::spawn(binary, &env)?;
    let seen = wait_seen(&mut stub, &mut process, Duration::from_secs(20)).await;
    let bytes = process.stop();
    match seen? {
        Seen::Next(at) => Ok((at.duration_since(started).as_secs_f64() * 1000.0, bytes)),
        Seen::Error { body, .. } => bail!("init error: {}", String::from_utf8_lossy(&body)),
        other => bail!("unexpected first request: {other:?}"),
    }
}

async fn warm(
    binary: &Path,
    function: &str,
    memory_mb: u32,
    app: &[(String, String)],
    events: &[(String, Bytes)],
    invocations: usize,
) -> anyhow::Result<Warm> {
    let mut stub = StubServer::start().await?;
    let env = env(function, memory_mb, &stub.addr.to_string(), app);
    let mut process = Process::spawn(binary, &env)?;
    let result = async {
        // Each envelope once: keep the accepted ones (the rest are rejections by design).
        let mut accepted = Vec::new();
        for (name, event) in events {
            stub.push(event.clone());
            let status = invoke(&mut stub, &mut process).await?.1;
            if (200..300).contains(&status) {
                accepted.push((name.clone(), event.clone()));
            }
        }
        if accepted.is_empty() {
            bail!("no envelope in events/{function}/ was accepted");
        }
        // Log lines are written before the response is posted; give the pipe readers a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = process.bytes.load(Ordering::Relaxed);
        let mut durations = Vec::new();
        for i in 0..invocations {
            let (_, event) = &accepted[i % accepted.len()];
            stub.push(event.clone());
            durations.push(invoke(&mut stub, &mut process).await?.0);
        }
        Ok((accepted.into_iter().map(|(n, _)| n).collect::<Vec<_>>(), durations, before))
    }
    .await;
    let total = process.stop();
    let (names, durations, before) = result?;
    let p = Percentiles::of(&durations).context("no warm invocations")?;
    let per_invocation = total.saturating_sub(before) as f64 / invocations as f64;
    Ok(Warm {
        invocations,
        events: names,
        duration_ms_p50: p.p50,
        duration_ms_p99: p.p99,
        log_bytes_per_invocation: per_invocation,
    })
}

/// Waits for one invocation: the event handed out, then its response. Returns (ms, HTTP status the
/// function answered with).
async fn invoke(stub: &mut StubServer, process: &mut Process) -> anyhow::Result<(f64, u16)> {
    let mut handed = None;
    loop {
        match wait_seen(stub, process, Duration::from_secs(20)).await? {
            Seen::Next(_) => {}
            Seen::Handed { id, at } => handed = Some((id, at)),
            Seen::Response { id, at, body } => {
                let (expected, start) = handed.take().context("a response before any event")?;
                if id != expected {
                    bail!("a response for {id} while {expected} was in flight");
                }
                let status = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["statusCode"].as_u64())
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(200);
                return Ok((at.duration_since(start).as_secs_f64() * 1000.0, status));
            }
            Seen::Error { id, body } => bail!("invocation {id} failed: {}", String::from_utf8_lossy(&body)),
        }
    }
}

/// The envelopes in `events/<function>/`, by file name.
pub fn events(root: &Path, function: &str) -> Vec<(String, Bytes)> {
    let dir = root.join("events").join(function);
    let mut out: Vec<(String, Bytes)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .filter_map(|p| {
                    Some((p.file_name()?.to_string_lossy().into_owned(), Bytes::from(std::fs::read(&p).ok()?)))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Release binary sizes: the host build next to this executable, and the arm64 build of `make build`
/// (cargo-lambda's `lambda/<name>/bootstrap`) when one exists.
#[derive(Debug, Clone, Serialize)]
pub struct Size {
    pub host_bytes: Option<u64>,
    pub arm64_bytes: Option<u64>,
    pub arm64_path: Option<PathBuf>,
}

pub fn size(bin_dir: &Path, target_dirs: &[PathBuf], name: &str) -> Size {
    let host_bytes = std::fs::metadata(bin_dir.join(name)).ok().map(|m| m.len());
    let arm64 = target_dirs
        .iter()
        .map(|t| t.join("lambda").join(name).join("bootstrap"))
        .find_map(|p| Some((std::fs::metadata(&p).ok()?.len(), p)));
    Size { host_bytes, arm64_bytes: arm64.as_ref().map(|a| a.0), arm64_path: arm64.map(|a| a.1) }
}

/// Sizes of every discovered function.
pub fn sizes(bin_dir: &Path, target_dirs: &[PathBuf], functions: &[Function]) -> BTreeMap<String, Size> {
    functions.iter().map(|f| (f.name.clone(), size(bin_dir, target_dirs, &f.name))).collect()
}

/// Test secrets of `events/README.md`: the envelopes in `events/` are signed with them.
const EVENTS_SECRETS: [(&str, &str); 3] = [
    ("webhook-key", "campbridge-test-webhook-key"),
    ("jira-webhook-secret", "campbridge-test-jira-secret"),
    ("bitbucket-webhook-secret", "campbridge-test-bitbucket-secret"),
];

/// Prefix of the bench's secrets in moto (`SECRET_PREFIX`).
const SECRET_PREFIX: &str = "campbridge-bench/";

/// Cold starts and warm invocations of every function, inside the emulators' namespace: the bench's
/// deployment config (stored as `campbridge config push` stores it, its version in
/// `CAMPBRIDGE_CONFIG_VERSION`), an SQS FIFO queue and a table, and every secret the config
/// names stored in moto under `SECRET_PREFIX` (the webhook secrets are `events/README.md`'s, so the
/// envelopes verify). Returns the figures per function.
pub async fn run_all(
    root: &Path,
    bin_dir: &Path,
    functions: &[Function],
    memory: &crate::template::Memory,
    starts: usize,
    invocations: usize,
) -> anyhow::Result<BTreeMap<String, FunctionFigures>> {
    use secrecy::SecretString;
    use shared::adapters::secrets_manager::SecretsManagerSecrets;
    use shared::ports::SecretStore;

    let sdk = crate::store_ops::sdk().await;
    let name = format!("campbridge-bench-fn-{}", std::process::id());
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    shared::adapters::dynamo::DynamoStore::create_table(&dynamo, &name).await?;
    let queue_url = crate::store_ops::fifo_queue(&aws_sdk_sqs::Client::new(&sdk), &name).await?;
    let sims = crate::world::Sims::start().await?;
    let config = sims.config_text(crate::world::Store::DynamoDb { table: &name, queue_url: &queue_url });
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let version = shared::adapters::stored_config::StoredConfig::new(sm.clone(), SECRET_PREFIX)
        .push(&config, "campbridge.toml")
        .await?
        .version;
    let secrets = SecretsManagerSecrets::new(sm, SECRET_PREFIX);
    for (secret, value) in sims.secrets() {
        let value = EVENTS_SECRETS.iter().find(|(n, _)| *n == secret).map_or(value, |(_, v)| (*v).to_owned());
        secrets.put(secret, &SecretString::from(value), &format!("bench-{secret}")).await?;
    }
    let app_env: Vec<(String, String)> = vec![
        ("CAMPBRIDGE_CONFIG_VERSION".into(), version),
        ("QUEUE_URL".into(), queue_url),
        ("TABLE_NAME".into(), name),
        ("SECRET_PREFIX".into(), SECRET_PREFIX.into()),
        // The simulators live on 127.0.0.1: the functions' test opt-in for the config's loopback allowance.
        (shared::config::LOOPBACK_OPT_IN_VAR.into(), "1".into()),
    ];
    let mut out = BTreeMap::new();
    for f in functions {
        let binary = bin_dir.join(&f.name);
        let figures = if binary.exists() {
            let events = events(root, &f.name);
            eprintln!(
                "  {}: {starts} cold starts{}",
                f.name,
                if events.is_empty() { String::new() } else { format!(", {invocations} warm invocations") }
            );
            measure(&binary, &f.name, memory.of(&f.name), &app_env, starts, &events, invocations).await
        } else {
            FunctionFigures {
                init_ms: None,
                init_log_bytes: None,
                warm: None,
                error: Some(format!("{} is not built (make bench builds every functions/* package)", binary.display())),
            }
        };
        out.insert(f.name.clone(), figures);
    }
    drop(sims);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_with_a_main_and_no_bin_sections_is_one_binary_named_after_it() {
        let found = binaries("[package]\nname = \"sync-mapper\"\n", true).unwrap_or_default();
        assert_eq!(found, vec![Function { name: "sync-mapper".into(), package: "sync-mapper".into() }]);
    }

    #[test]
    fn bin_sections_name_the_binaries_and_a_library_package_has_none() {
        let text = "[package]\nname = \"x\"\n[[bin]]\nname = \"a\"\npath = \"src/a.rs\"\n[[bin]]\nname = \"b\"\n";
        let names: Vec<String> = binaries(text, true).unwrap_or_default().into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(binaries("[package]\nname = \"campbridge-lambda\"\n", false).unwrap_or_default().is_empty());
    }

    #[test]
    fn the_workspace_has_the_receiver_functions() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let names: Vec<String> = discover(&root).unwrap_or_default().into_iter().map(|f| f.name).collect();
        for f in ["basecamp-webhook", "jira-webhook", "bitbucket-webhook"] {
            assert!(names.iter().any(|n| n == f), "{f} in {names:?}");
        }
    }
}
