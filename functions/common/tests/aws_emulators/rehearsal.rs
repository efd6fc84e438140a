//! The deploy rehearsal: the AWS path as a deployed stack runs it, offline.
//!
//! 1. infra/template.yaml is translated by the SAM translator (scripts/rehearsal/translate.py) into the
//!    CloudFormation template AWS would run.
//! 2. A moto server with IAM enforced (scripts/rehearsal/moto_server.py, INITIAL_NO_AUTH_ACTION_COUNT=3)
//!    gets a deploying user; then the README's deploy steps run as written (the block under
//!    `<!-- deploy-steps -->`), with `make deploy` replaced by creating the translated template as a
//!    CloudFormation stack on moto (scripts/rehearsal/rehearsal.py).
//! 3. Every function's own binary runs on cargo-lambda's runtime emulator with the environment Lambda
//!    holds for it in that stack, signed with credentials of its own role (`sts:AssumeRole` on moto).
//!    Its AWS calls go through [`Proxy`], which checks each against the role's true policies (moto checks
//!    the action, and the resource only for SQS) and records it.
//! 4. The harness plays the Lambda service where the stack relies on it, with the same roles: the SQS
//!    event source of the sync-mapper (receive, invoke, delete what succeeded), the reconciler's
//!    schedule, and writing each function's output to its log group.
//!
//! Then: the story of local mode, through receivers → queue → mapper → simulators; every declared
//! permission (shared::deploy::FUNCTIONS) is exactly what the stack grants and each is used; and the
//! negative controls: a permission removed from a role fails the run with AccessDenied, from moto on its
//! own and from the proxy, and a permission no function uses is reported as excess.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use campbridge_simulators::common::faults::{Faults, Forced429, WebhookFaults};
use campbridge_simulators::{basecamp as bc_sim, bitbucket as bb_sim, jira as jira_sim};
use serde_json::{Value, json};
use shared::deploy::{FUNCTIONS, Resource, STACK_SECRETS};

use crate::iam::{self, Arns, Call};
use crate::proxy::{Caller, Proxy, Record};
use crate::world::{Process, cargo_lambda, config_text, emulators, free_port, function_binary, root};

/// The stack name the README's deploy steps use.
const STACK: &str = "campbridge";
const REGION: &str = "us-east-1";

/// Test values of the secrets the README's steps fill (the simulators accept them).
fn secret_values(bitbucket: &bb_sim::Simulator) -> Vec<(&'static str, String)> {
    vec![
        ("basecamp-access-token", bc_sim::ACCESS_TOKEN.to_owned()),
        ("basecamp-refresh-token", bc_sim::REFRESH_TOKEN.to_owned()),
        ("basecamp-client-secret", bc_sim::CLIENT_SECRET.to_owned()),
        ("jira-api-token", jira_sim::API_TOKEN.to_owned()),
        ("jira-webhook-secret", "rehearsal-jira-webhook-secret".to_owned()),
        ("bitbucket-api-token", bitbucket.credentials().1),
        ("bitbucket-webhook-secret", "rehearsal-bitbucket-webhook-secret".to_owned()),
    ]
}

fn tools(path: &str) -> PathBuf {
    let p = root().join(".tools").join(path);
    assert!(p.exists(), "{} is missing: run scripts/emulators.sh install", p.display());
    p
}

/// The README's deploy steps: the commands before `make deploy`, and those after it.
fn readme_steps() -> (String, String) {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("<!-- deploy-steps").expect("README.md has no <!-- deploy-steps --> block");
    let block = &readme[start..];
    let body_start = block.find("```sh\n").expect("the deploy steps are a ```sh block") + "```sh\n".len();
    let body = &block[body_start..];
    let body = &body[..body.find("```").expect("the deploy-steps block ends")];
    let (before, after) = body.split_once("make deploy STACK=campbridge").expect("the steps run make deploy");
    let after = after.split_once('\n').map_or("", |(_, rest)| rest);
    (before.to_owned(), after.to_owned())
}

/// Runs `script` in bash with only the given environment; returns stdout, panics with both streams.
fn bash(what: &str, script: &str, dir: &Path, env: &[(&str, String)]) -> String {
    let (ok, output) = bash_status(script, dir, env);
    assert!(ok, "{what} failed:\n{script}\n{output}");
    output
}

/// Runs `script` in bash: whether it succeeded, and stdout followed by stderr.
fn bash_status(script: &str, dir: &Path, env: &[(&str, String)]) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["120", "bash", "-euo", "pipefail", "-c", script])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), format!("{stdout}{stderr}"))
}

/// `python scripts/rehearsal/rehearsal.py ARGS` with only `env`: its JSON answer.
fn rehearsal_py(args: &[&str], env: &[(&str, String)]) -> Value {
    let script = root().join("scripts/rehearsal/rehearsal.py");
    let out = Command::new("timeout")
        .arg("120")
        .arg(tools("venv/bin/python"))
        .arg(&script)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rehearsal.py {}: {}\n{}",
        args.first().copied().unwrap_or_default(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One rehearsal: moto with IAM enforced, the stack deployed by the README's steps, the functions
/// running under their roles behind the proxy.
pub struct Rehearsal {
    pub logs: PathBuf,
    /// Where the README's steps ran (campbridge.toml, secrets/), and with which environment.
    pub workdir: PathBuf,
    pub operator_env: Vec<(&'static str, String)>,
    /// What the functions get beyond what Lambda gives them (tests only; see [`Rehearsal::deploy`]).
    test_env: Vec<(&'static str, String)>,
    pub moto_url: String,
    pub deployer: (String, String),
    pub proxy: Proxy,
    pub stack: Value,
    pub arns: Arns,
    /// The runtime emulator's port on 127.0.0.1.
    pub port: u16,
    /// Everything the README's steps printed.
    pub steps_output: String,
    // Stopped in this order: the functions, the emulator, moto.
    functions: Vec<Process>,
    watch: Option<Process>,
    _moto: Process,
}

impl Rehearsal {
    /// Deploys `config` (the text of campbridge.toml) with `secrets` in the files the README's loop
    /// reads, and starts `functions` (binary names) on the runtime emulator. `test_env` is added to the
    /// operator's and the functions' environment (the loopback opt-in, for a config of the simulators).
    pub async fn deploy(
        name: &str,
        config: &str,
        secrets: &[(&str, String)],
        functions: &[&str],
        test_env: &[(&'static str, String)],
    ) -> Self {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let logs = std::env::temp_dir().join(format!("campbridge-rehearsal-{name}-{unique}"));
        let workdir = logs.join("work");
        std::fs::create_dir_all(workdir.join("secrets")).unwrap();
        std::fs::write(workdir.join("campbridge.toml"), config).unwrap();
        for (secret, value) in secrets {
            std::fs::write(workdir.join("secrets").join(secret), format!("{value}\n")).unwrap();
        }

        // 1. The template as CloudFormation runs it.
        let template = logs.join("template.json");
        let out = Command::new("timeout")
            .arg("120")
            .arg(tools("sam/bin/python"))
            .arg(root().join("scripts/rehearsal/translate.py"))
            .arg(root().join("infra/template.yaml"))
            .arg(&template)
            .arg("campbridge-rehearsal-code")
            .output()
            .unwrap();
        assert!(out.status.success(), "translate.py: {}", String::from_utf8_lossy(&out.stderr));

        // 2. moto with IAM enforced, and the deploying user.
        let moto_port = free_port();
        let moto = Process::start_clean(
            "moto-iam",
            &logs,
            &tools("venv/bin/python"),
            &[root().join("scripts/rehearsal/moto_server.py").to_str().unwrap(), &moto_port.to_string()],
            &[("INITIAL_NO_AUTH_ACTION_COUNT", "3".to_owned())],
        );
        let moto_url = format!("http://127.0.0.1:{moto_port}");
        wait_for_port(moto_port, "moto").await;
        let boot = rehearsal_py(&["bootstrap", &moto_url], &[]);
        assert_eq!(boot["unsigned_call"], "InvalidClientTokenId", "moto refuses unsigned calls after the bootstrap");
        let deployer = (
            boot["access_key_id"].as_str().unwrap().to_owned(),
            boot["secret_access_key"].as_str().unwrap().to_owned(),
        );
        let operator_env = |extra: &[(&'static str, String)]| {
            let mut env: Vec<(&'static str, String)> = test_env.to_vec();
            env.extend([
                ("PATH", format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default())),
                ("HOME", workdir.display().to_string()),
                ("AWS_ACCESS_KEY_ID", deployer.0.clone()),
                ("AWS_SECRET_ACCESS_KEY", deployer.1.clone()),
                ("AWS_REGION", REGION.to_owned()),
                ("AWS_ENDPOINT_URL", moto_url.clone()),
                ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ]);
            env.extend_from_slice(extra);
            env
        };

        // 3. The README's steps, `make deploy` being the stack created on moto.
        let (before, after) = readme_steps();
        let mut steps_output =
            bash("the README's deploy steps before make deploy", &before, &workdir, &operator_env(&[]));
        let version = steps_output
            .lines()
            .rev()
            .find(|l| shared::deploy::is_config_version_id(l.trim()))
            .expect("campbridge config push printed the version")
            .trim()
            .to_owned();
        assert_eq!(version, shared::deploy::config_version_id(config), "the pushed version is the file's");
        let stack = rehearsal_py(
            &["create-stack", &moto_url, STACK, template.to_str().unwrap(), &format!("ConfigVersion={version}")],
            &[("AWS_ACCESS_KEY_ID", deployer.0.clone()), ("AWS_SECRET_ACCESS_KEY", deployer.1.clone())],
        );
        steps_output.push_str(&bash(
            "the README's deploy steps after make deploy",
            &after,
            &workdir,
            &operator_env(&[]),
        ));

        // 4. The proxy, the runtime emulator and the functions under their roles.
        let arns = Arns {
            region: stack["region"].as_str().unwrap().to_owned(),
            account: stack["account"].as_str().unwrap().to_owned(),
            secrets: secret_arns(&moto_url, &deployer).await,
        };
        let proxy = Proxy::start(&moto_url).await;
        proxy.set_arns(arns.clone());
        for (binary, f) in stack["functions"].as_object().unwrap() {
            let documents: Vec<Value> = f["policies"].as_object().unwrap().values().cloned().collect();
            proxy.add_caller(
                f["credentials"]["access_key_id"].as_str().unwrap(),
                Caller {
                    function: binary.clone(),
                    role_arn: f["role_arn"].as_str().unwrap().to_owned(),
                    statements: iam::statements(&documents),
                },
            );
        }
        let port = free_port();
        let operator_env = operator_env(&[]);
        let mut rehearsal = Self {
            logs,
            workdir,
            operator_env,
            test_env: test_env.to_vec(),
            moto_url,
            deployer,
            proxy,
            stack,
            arns,
            port,
            steps_output,
            functions: Vec::new(),
            watch: None,
            _moto: moto,
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
        let offline = [("CARGO_NET_OFFLINE", "true".to_owned())];
        rehearsal.watch =
            Some(Process::start("cargo-lambda-watch", &rehearsal.logs, &cargo_lambda(), &watch_args, &offline));
        wait_for_port(rehearsal.port, "cargo lambda watch").await;
        for binary in functions {
            let env = rehearsal.function_env(binary);
            let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let process = Process::start_clean(binary, &rehearsal.logs, &function_binary(binary), &[], &env);
            rehearsal.functions.push(process);
        }
        rehearsal
    }

    /// Runs `script` where the README's steps ran, as the operator: whether it succeeded, and its output.
    pub fn operator(&self, script: &str) -> (bool, String) {
        bash_status(script, &self.workdir, &self.operator_env)
    }

    /// A function's part of the stack description.
    pub fn function(&self, binary: &str) -> &Value {
        let f = &self.stack["functions"][binary];
        assert!(f.is_object(), "the stack has no function {binary}");
        f
    }

    /// What Lambda gives the function: its variables as the stack holds them, what it derives from the
    /// `LoggingConfig`, the runtime API, and its role's credentials. AWS calls go to the proxy.
    pub fn function_env(&self, binary: &str) -> Vec<(String, String)> {
        let f = self.function(binary);
        let mut env: Vec<(String, String)> = f["environment"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let logging = &f["logging"];
        let lambda = [
            ("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{}/.rt/{binary}", self.port)),
            ("AWS_LAMBDA_FUNCTION_NAME", f["function_name"].as_str().unwrap().to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", f["memory"].to_string()),
            ("AWS_LAMBDA_LOG_FORMAT", logging["LogFormat"].as_str().unwrap_or("Text").to_owned()),
            ("AWS_LAMBDA_LOG_LEVEL", logging["ApplicationLogLevel"].as_str().unwrap_or("INFO").to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", f["credentials"]["access_key_id"].as_str().unwrap().to_owned()),
            ("AWS_SECRET_ACCESS_KEY", f["credentials"]["secret_access_key"].as_str().unwrap().to_owned()),
            ("AWS_SESSION_TOKEN", f["credentials"]["session_token"].as_str().unwrap().to_owned()),
            ("AWS_ENDPOINT_URL", self.proxy.url.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ];
        env.extend(lambda.into_iter().map(|(k, v)| (k.to_owned(), v)));
        env.extend(self.test_env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        env
    }

    /// Stops `binary` and starts it again (a new cold start), its log kept.
    pub fn restart(&mut self, binary: &str) {
        let log = self.log(binary);
        self.functions.retain(|p| p.name() != binary);
        let env = self.function_env(binary);
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        self.functions.push(Process::start_clean(binary, &self.logs, &function_binary(binary), &[], &env));
        std::fs::write(self.logs.join(format!("{binary}.before-restart.log")), log).unwrap();
    }

    /// Waits (at most 30 s) for `binary`'s process to end: why it ended.
    pub async fn wait_for_exit(&mut self, binary: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(why) = self.functions.iter_mut().find(|p| p.name() == binary).and_then(Process::ended) {
                return why;
            }
            assert!(Instant::now() < deadline, "{binary} kept running:\n{}", self.log(binary));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Panics, naming the logs, when a function or the emulator has ended.
    pub fn assert_running(&mut self) {
        let ended: Vec<String> =
            self.functions.iter_mut().chain(self.watch.as_mut()).filter_map(Process::ended).collect();
        assert!(ended.is_empty(), "{}; see {}", ended.join(", "), self.logs.display());
    }

    /// Invokes `binary` through the runtime emulator's Invoke API: its answer.
    pub async fn invoke(&self, binary: &str, event: &Value) -> Value {
        let url = format!("http://127.0.0.1:{}/2015-03-31/functions/{binary}/invocations", self.port);
        let response = reqwest::Client::new()
            .post(&url)
            .json(event)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .unwrap_or_else(|e| panic!("invoking {binary}: {e}; see {}", self.logs.display()));
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(status.is_success(), "{binary} answered {status}: {body}; see {}", self.logs.display());
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{binary} answered no JSON ({e}): {body}"))
    }

    /// `binary`'s function URL on the emulator, with `path`.
    pub fn function_url(&self, binary: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}/lambda-url/{binary}{path}", self.port)
    }

    /// The SDK configuration of the deploying user, straight to moto.
    pub fn deployer_sdk(&self) -> SdkConfig {
        let creds = aws_sdk_sqs::config::Credentials::new(&self.deployer.0, &self.deployer.1, None, None, "deployer");
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(shared::adapters::aws_sdk::https_client())
            .region(Region::new(REGION))
            .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(creds))
            .endpoint_url(&self.moto_url)
            .build()
    }

    /// An SQS client with `binary`'s role, through the proxy (the Lambda service's calls for it).
    pub fn sqs_as(&self, binary: &str) -> aws_sdk_sqs::Client {
        let c = &self.function(binary)["credentials"];
        let creds = aws_sdk_sqs::config::Credentials::new(
            c["access_key_id"].as_str().unwrap(),
            c["secret_access_key"].as_str().unwrap(),
            Some(c["session_token"].as_str().unwrap().to_owned()),
            None,
            "role",
        );
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(shared::adapters::aws_sdk::https_client())
            .region(Region::new(REGION))
            .credentials_provider(creds)
            .endpoint_url(&self.proxy.url)
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    pub fn queue_url(&self) -> String {
        self.stack["outputs"]["QueueUrl"].as_str().unwrap().to_owned()
    }

    /// Writes each function's output so far to its log group with its role, as Lambda does.
    pub fn put_logs(&self) {
        let spec: Vec<Value> = self.stack["functions"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(binary, _)| self.logs.join(format!("{binary}.log")).exists())
            .map(|(binary, f)| {
                let c = &f["credentials"];
                json!({
                    "group": format!("/aws/lambda/{}", f["function_name"].as_str().unwrap()),
                    "stream": "rehearsal",
                    "file": self.logs.join(format!("{binary}.log")),
                    "access_key_id": c["access_key_id"],
                    "secret_access_key": c["secret_access_key"],
                    "session_token": c["session_token"],
                })
            })
            .collect();
        let path = self.logs.join("put-logs.json");
        std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
        let written = rehearsal_py(&["put-logs", &self.proxy.url, path.to_str().unwrap()], &[]);
        assert_eq!(written.as_object().map(|o| o.len()), Some(spec.len()), "{written}");
    }

    /// Waits (at most 30 s) until `binary`'s log contains `needle`.
    pub async fn wait_for_log(&mut self, binary: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log(binary).contains(needle) {
            self.assert_running();
            assert!(Instant::now() < deadline, "{binary} never logged {needle:?}:\n{}", self.log(binary));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The log `binary` wrote so far.
    pub fn log(&self, binary: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("{binary}.log"))).unwrap_or_default()
    }

    /// The ARN each declared resource names in this stack.
    pub fn resolve(&self, binary: &str, resource: Resource) -> String {
        let (region, account) = (&self.arns.region, &self.arns.account);
        let table = self.stack["outputs"]["TableName"].as_str().unwrap();
        let queue = self.queue_url().rsplit('/').next().unwrap().to_owned();
        match resource {
            Resource::JobQueue => self.arns.queue(&queue),
            Resource::DeadLetterQueue => {
                let url = self.function("sync-mapper")["environment"]["DEAD_LETTER_QUEUE_URL"].as_str().unwrap();
                self.arns.queue(url.rsplit('/').next().unwrap())
            }
            Resource::Table => self.arns.table(table),
            Resource::TableIndexes => format!("{}/index/*", self.arns.table(table)),
            Resource::Secret(name) => self.arns.secret(&format!("{STACK}/{name}")),
            Resource::Config => format!(
                "arn:aws:secretsmanager:{region}:{account}:secret:{STACK}/{}-??????",
                shared::deploy::CONFIG_SECRET
            ),
            Resource::LogGroup => format!(
                "arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{}:*",
                self.function(binary)["function_name"].as_str().unwrap()
            ),
        }
    }
}

impl Drop for Rehearsal {
    fn drop(&mut self) {
        self.functions.clear();
        self.watch = None;
        if std::thread::panicking() {
            eprintln!("the rehearsal's logs (moto, emulator, functions) are in {}", self.logs.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.logs) {
            eprintln!("could not remove {}: {e}", self.logs.display());
        }
    }
}

/// Where the test's own binaries are (target/<profile>): the `campbridge` command the README runs.
fn bin_dir() -> PathBuf {
    function_binary("campbridge").parent().unwrap().to_path_buf()
}

async fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on 127.0.0.1:{port} within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every secret's name → ARN, as the deploying user lists them.
async fn secret_arns(moto_url: &str, deployer: &(String, String)) -> BTreeMap<String, String> {
    let creds = aws_sdk_secretsmanager::config::Credentials::new(&deployer.0, &deployer.1, None, None, "deployer");
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(shared::adapters::aws_sdk::https_client())
        .region(Region::new(REGION))
        .credentials_provider(creds)
        .endpoint_url(moto_url)
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(config);
    let mut out = BTreeMap::new();
    let mut next = None;
    loop {
        let page = client.list_secrets().set_next_token(next).send().await.unwrap();
        for s in page.secret_list() {
            out.insert(s.name().unwrap().to_owned(), s.arn().unwrap().to_owned());
        }
        next = page.next_token().map(str::to_owned);
        if next.is_none() {
            return out;
        }
    }
}

/// Least privilege both ways, for one function: what its role grants against what shared::deploy
/// declares, and what it used against what it was granted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Privileges {
    /// Declared but not granted by the stack: the function would fail.
    pub missing: Vec<(String, String)>,
    /// Granted but not declared, or granted and never used in the rehearsal: excess.
    pub excess: Vec<(String, String)>,
    /// Calls the function made that the declaration does not cover.
    pub undeclared_calls: Vec<Call>,
}

/// A function's permissions: granted by its role, declared, declared but needed only with another
/// configuration, and used (the calls it made).
pub struct Grants {
    pub granted: Vec<(String, String)>,
    pub declared: Vec<(String, String)>,
    pub conditional: Vec<(String, String)>,
    pub used: Vec<Call>,
}

/// Compares what the role grants, what shared::deploy declares and what the function used. A declared
/// permission needed only with another configuration may stay unused.
pub fn privileges(g: &Grants) -> Privileges {
    let (granted, declared, used) = (&g.granted, &g.declared, &g.used);
    let granted_set: BTreeSet<&(String, String)> = granted.iter().collect();
    let declared_set: BTreeSet<&(String, String)> = declared.iter().collect();
    let covers = |(a, r): &(String, String), c: &Call| {
        iam::matches(&a.to_ascii_lowercase(), &c.action.to_ascii_lowercase()) && iam::matches(r, &c.resource)
    };
    let mut excess: Vec<(String, String)> = granted_set.difference(&declared_set).map(|p| (*p).clone()).collect();
    excess.extend(
        granted
            .iter()
            .filter(|p| declared_set.contains(p) && !g.conditional.contains(p) && !used.iter().any(|c| covers(p, c)))
            .cloned(),
    );
    excess.sort();
    excess.dedup();
    Privileges {
        missing: declared_set.difference(&granted_set).map(|p| (*p).clone()).collect(),
        excess,
        undeclared_calls: used.iter().filter(|c| !declared.iter().any(|d| covers(d, c))).cloned().collect(),
    }
}

impl Rehearsal {
    /// `binary`'s grants (its role's policies as CloudFormation created them), declaration and calls.
    pub fn privileges_of(&self, binary: &str, records: &[Record]) -> Grants {
        let documents: Vec<Value> = self.function(binary)["policies"].as_object().unwrap().values().cloned().collect();
        let granted = iam::grants(&iam::statements(&documents));
        let spec = shared::deploy::function(binary).unwrap();
        let mut declared: Vec<(String, String)> =
            spec.permissions().into_iter().map(|(a, r)| (a.to_owned(), self.resolve(binary, r))).collect();
        declared.sort();
        let conditional: Vec<(String, String)> =
            spec.conditional_permissions().into_iter().map(|(a, r)| (a.to_owned(), self.resolve(binary, r))).collect();
        let used: Vec<Call> = records.iter().filter(|r| r.function == binary).map(|r| r.call.clone()).collect();
        Grants { granted, declared, conditional, used }
    }
}

/// Reads the stack's configuration secret as the deploying user: version → text.
async fn stored_versions(r: &Rehearsal) -> Vec<String> {
    let client = aws_sdk_secretsmanager::Client::new(&r.deployer_sdk());
    let out =
        client.describe_secret().secret_id(format!("{STACK}/{}", shared::deploy::CONFIG_SECRET)).send().await.unwrap();
    out.version_ids_to_stages().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

// ---- the example configuration, as it is -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_config_deploys_as_it_is_and_every_function_starts_under_its_own_role() {
    if emulators().await.is_none() {
        return;
    }
    let example = std::fs::read_to_string(root().join("campbridge.example.toml")).unwrap();
    let secrets: Vec<(&str, String)> =
        STACK_SECRETS.iter().filter(|s| !s.generated).map(|s| (s.name, format!("example-{}", s.name))).collect();
    let all: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
    let mut r = Rehearsal::deploy("example", &example, &secrets, &all, &[]).await;

    // The README's steps passed: config check found nothing to warn about, the stored config is the file,
    // every secret it names is set.
    assert!(!r.steps_output.contains("warning"), "{}", r.steps_output);
    assert!(r.steps_output.contains(&format!("✓ {STACK}/campbridge.toml")), "{}", r.steps_output);
    assert_eq!(stored_versions(&r).await, [shared::deploy::config_version_id(&example)]);

    // The stack creates every secret a config can name, and only those; the webhook key has a value.
    let names: BTreeSet<String> = r.arns.secrets.keys().cloned().collect();
    let mut expected: BTreeSet<String> = STACK_SECRETS.iter().map(|s| format!("{STACK}/{}", s.name)).collect();
    expected.insert(format!("{STACK}/{}", shared::deploy::CONFIG_SECRET));
    assert_eq!(names, expected);

    // Lambda's 4 KB cap on a function's variables, and the guard rails on the public receivers.
    for f in FUNCTIONS {
        let vars = r.function(f.name)["environment"].as_object().unwrap().clone();
        let size: usize = vars.iter().map(|(k, v)| k.len() + v.as_str().unwrap().len()).sum();
        assert!(size < 4096, "{}'s variables take {size} bytes", f.name);
        assert_eq!(r.function(f.name)["logging"]["LogFormat"], "JSON");
        let reserved = &r.function(f.name)["reserved_concurrency"];
        if f.public {
            assert_eq!(reserved.as_u64(), Some(10), "{} reserves ReceiverReservedConcurrency", f.name);
        } else {
            assert!(reserved.is_null(), "{} reserves nothing", f.name);
        }
    }

    // Every function starts: its configuration version read, its secrets read, under its own role.
    let answer = r.invoke("basecamp-webhook", &event("basecamp-webhook/wrong-token.json")).await;
    assert_eq!(answer["statusCode"], 404, "{answer}");
    let answer = r.invoke("jira-webhook", &event("jira-webhook/bad-signature.json")).await;
    assert_eq!(answer["statusCode"], 401, "{answer}");
    let answer = r.invoke("bitbucket-webhook", &event("bitbucket-webhook/bad-signature.json")).await;
    assert_eq!(answer["statusCode"], 401, "{answer}");
    let answer = r.invoke("sync-mapper", &poison_event("poison-1", 1)).await;
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "poison-1"}]}));
    // On its last allowed receive the mapper files it in the dead-letter queue itself, with its error.
    let answer = r.invoke("sync-mapper", &poison_event("poison-1", 5)).await;
    assert_eq!(answer, json!({"batchItemFailures": []}), "filed, not left to the redrive policy");
    let dlq_url = r.function("sync-mapper")["environment"]["DEAD_LETTER_QUEUE_URL"].as_str().unwrap().to_owned();
    let dead = aws_sdk_sqs::Client::new(&r.deployer_sdk())
        .receive_message()
        .queue_url(&dlq_url)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let error = dead.messages().first().and_then(|m| m.message_attributes()).and_then(|a| a.get("LastError"));
    assert!(
        error.and_then(|e| e.string_value()).is_some_and(|e| e.starts_with("unreadable job")),
        "the dead letter carries its error: {dead:?}"
    );
    r.assert_running();
    // The reconciler would call Basecamp at its first run (no network here): its cold start is what is
    // checked, by its log.
    for f in FUNCTIONS {
        r.wait_for_log(f.name, "configuration loaded").await;
        let log = r.log(f.name);
        assert!(
            log.lines().filter(|l| !l.trim().is_empty()).all(|l| l.starts_with('{')),
            "{} logs JSON:\n{log}",
            f.name
        );
    }
    let denied: Vec<Record> = r.proxy.records().into_iter().filter(|rec| !rec.allowed || rec.status >= 400).collect();
    assert!(denied.is_empty(), "calls refused: {denied:#?}");

    // The operator's checks fail when they should: an edited file is not the stored one; the generated
    // key and names the stack lacks are not set by hand.
    let (ok, out) =
        r.operator("echo '# edited' >> campbridge.toml && campbridge config check --stack campbridge campbridge.toml");
    assert!(!ok && out.contains("is not campbridge.toml"), "{out}");
    let (ok, out) = r.operator("echo x | campbridge secrets set --stack campbridge webhook-key");
    assert!(!ok && out.contains("generated by the stack"), "{out}");
    let (ok, out) = r.operator("echo x | campbridge secrets set --stack campbridge campbridge-webhook-key");
    assert!(!ok && out.contains("the stack creates no secret"), "{out}");
}

fn event(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("events").join(path)).unwrap()).unwrap()
}

// ---- the story, least privilege, and the negative controls -------------------------------------------

/// The SQS event Lambda's event source hands the sync-mapper for `messages`.
fn sqs_event(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone()))).collect())
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// What the mapper did while the queue drained.
#[derive(Debug, Default)]
struct Drained {
    invocations: usize,
    messages: usize,
    failures: usize,
}

/// Plays the sync-mapper's SQS event source until the queue is empty: receive with the mapper's role,
/// invoke the function, delete what it did not report failed (a failed message returns when its
/// visibility ends).
async fn drain(r: &mut Rehearsal, sims: &Sims) -> Drained {
    let sqs = r.sqs_as("sync-mapper");
    let queue_url = r.queue_url();
    let queue_arn = r.arns.queue(queue_url.rsplit('/').next().unwrap());
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut drained = Drained::default();
    loop {
        sims.settle().await;
        r.assert_running();
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(&queue_url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .unwrap();
            let count = |n: QueueAttributeName| {
                attrs.attributes().and_then(|a| a.get(&n)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            };
            let left = count(QueueAttributeName::ApproximateNumberOfMessages)
                + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
            if left == 0 {
                sims.settle().await;
                return drained;
            }
            assert!(Instant::now() < deadline, "the queue did not drain within 90 s ({left} left): {drained:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let answer = r.invoke("sync-mapper", &sqs_event(&messages, &queue_arn)).await;
        let failed: BTreeSet<String> = answer["batchItemFailures"]
            .as_array()
            .unwrap_or_else(|| panic!("sync-mapper answered {answer}"))
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
            .collect();
        drained.invocations += 1;
        drained.messages += messages.len();
        drained.failures += failed.len();
        for m in &messages {
            if !failed.contains(m.message_id().unwrap()) {
                sqs.delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

struct Sims {
    basecamp: bc_sim::Simulator,
    jira: jira_sim::Simulator,
    bitbucket: bb_sim::Simulator,
}

impl Sims {
    async fn start() -> Self {
        let basecamp =
            bc_sim::Simulator::start(bc_sim::Options { rate_limit: None, ..bc_sim::Options::default() }).await.unwrap();
        let jira = jira_sim::Simulator::start(jira_sim::Options::default()).await.unwrap();
        let bitbucket = bb_sim::Simulator::start(bb_sim::Options::default()).await.unwrap();
        Self { basecamp, jira, bitbucket }
    }

    async fn settle(&self) {
        self.basecamp.settle().await;
        self.jira.settle().await;
        self.bitbucket.settle().await;
    }

    /// How many issues Jira holds (keys are numbered from 1 in the one project).
    async fn issues(&self) -> usize {
        let mut n = 0;
        while self.jira.issue(&format!("WEB-{}", n + 1)).await.is_some() {
            n += 1;
        }
        n
    }

    /// Writes so far (every call but GETs): (Basecamp, Jira).
    fn writes(&self) -> (u64, u64) {
        let writes = |calls: campbridge_simulators::common::calls::Calls| {
            calls.0.iter().filter(|(k, _)| !k.starts_with("GET ")).map(|(_, n)| n).sum::<u64>()
        };
        (writes(self.basecamp.calls()), writes(self.jira.calls()))
    }

    fn basecamp_comment_posts(&self) -> u64 {
        self.basecamp
            .calls()
            .0
            .iter()
            .filter(|(k, _)| k.starts_with("POST ") && k.contains("comments"))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Clears a simulator's faults and sends the webhooks they held.
trait Release {
    fn release(&self);
}

impl Release for bc_sim::Simulator {
    fn release(&self) {
        self.set_faults(Faults::default());
        self.release_held();
    }
}

impl Release for jira_sim::Simulator {
    fn release(&self) {
        self.set_faults(Faults::default());
        self.release_held();
    }
}

fn scheduled() -> Value {
    event("reconciler/scheduled.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_runs_on_the_deployed_stack_with_least_privilege_and_fails_without_a_needed_permission() {
    if emulators().await.is_none() {
        return;
    }
    let start = Instant::now();
    let sims = Sims::start().await;
    // Padded with comments to 60 KiB of quotes, shell syntax, tabs and non-ASCII: what a parameter or an
    // environment variable could not carry, the README's steps store and every function reads.
    let config = padded(&config_text(&sims.basecamp, &sims.jira, &sims.bitbucket), 60 * 1024);
    let secrets = secret_values(&sims.bitbucket);
    let all: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
    // The simulators live on 127.0.0.1: the one variable beyond Lambda's, the test opt-in for the config's
    // loopback allowance (the example config above needs none).
    let opt_in = [(shared::config::LOOPBACK_OPT_IN_VAR, "1".to_owned())];
    let mut r = Rehearsal::deploy("story", &config, &secrets, &all, &opt_in).await;

    phase(start, "deployed");
    let version = shared::deploy::config_version_id(&config);
    for f in FUNCTIONS {
        r.wait_for_log(f.name, &version).await;
    }

    phase(start, "every function loaded the configuration; webhooks");
    // The webhooks, registered as an admin would: the Basecamp URL carries the route token derived from
    // the key the stack generated.
    let sdk = r.deployer_sdk();
    let deployed_secrets = std::sync::Arc::new(shared::adapters::secrets_manager::SecretsManagerSecrets::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        format!("{STACK}/"),
    ));
    let parsed = shared::config::Config::parse(&config, "campbridge.toml").unwrap();
    let token = shared::setup::basecamp_receiver(&parsed, deployed_secrets.as_ref())
        .await
        .unwrap()
        .unwrap()
        .route_token(&shared::domain::RouteId::parse("web").unwrap());
    let basecamp_client = shared::setup::basecamp_client(&parsed, deployed_secrets.clone()).await.unwrap();
    basecamp_client
        .create_webhook(
            shared::domain::ProjectId(bc_sim::PROJECT_ID),
            &r.function_url("basecamp-webhook", &format!("/basecamp/{token}")),
            shared::clients::basecamp::SYNC_WEBHOOK_TYPES,
        )
        .await
        .unwrap();
    sims.jira
        .register_webhook(jira_sim::AdminHook {
            id: 0,
            url: r.function_url("jira-webhook", "/"),
            secret: Some("rehearsal-jira-webhook-secret".to_owned()),
            events: Vec::new(),
            jql: None,
        })
        .await;
    sims.bitbucket
        .register_webhook(
            &r.function_url("bitbucket-webhook", "/"),
            Some("rehearsal-bitbucket-webhook-secret"),
            &["pullrequest:created", "pullrequest:updated", "pullrequest:fulfilled", "repo:commit_status_created"],
        )
        .await;

    phase(start, "reconciler's first run");
    // The reconciler's first scheduled run records where to start.
    let first = r.invoke("reconciler", &scheduled()).await;
    assert_eq!(first["basecamp"]["initialized"], true, "{first}");

    phase(start, "1. a to-do, through a Jira 429");
    // 1. Annie creates a to-do. Jira answers the mapper's first call with a 429: the mapper sets the
    //    message's visibility to its Retry-After and reports it; it comes back and makes one issue. The
    //    webhooks of the sync's own writes are held for step 2.
    let hold =
        Faults { webhook: WebhookFaults { reorder_hold: 1000, ..WebhookFaults::default() }, ..Faults::default() };
    sims.jira.set_faults(Faults {
        force_429: Some(Forced429 { retry_after: 1, remaining: Some(1), html: false }),
        ..hold.clone()
    });
    let sprint = sims.basecamp.list_id("Sprint 1").await.unwrap();
    let todo = sims
        .basecamp
        .create_todo(
            sprint,
            bc_sim::TodoWrite {
                content: Some("Fix login redirect".into()),
                assignee_ids: Some(vec![bc_sim::JARED]),
                due_on: Some("2026-12-01".into()),
                ..Default::default()
            },
            bc_sim::ANNIE,
        )
        .await
        .unwrap();
    sims.settle().await;
    sims.basecamp.set_faults(hold.clone());
    let created = drain(&mut r, &sims).await;
    let delivered = sims.basecamp.deliveries();
    assert!(delivered.iter().all(|d| d.status == Some(202)), "basecamp-webhook answered {:?}", statuses(&delivered));
    assert!(created.failures >= 1, "the 429 postponed a message: {created:?}");
    assert_eq!(sims.issues().await, 1, "one issue");
    let store = shared::adapters::dynamo::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        r.stack["outputs"]["TableName"].as_str().unwrap().to_owned(),
    );
    let key = shared::domain::PairKey {
        route: shared::domain::RouteId::parse("web").unwrap(),
        todo: shared::domain::TodoId(todo),
    };
    let pair = shared::ports::PairStore::get(&store, &key).await.unwrap().expect("the pair is in the stack's table");
    let issue_key = pair.item.as_ref().expect("linked").display_name().to_owned();
    let issue = sims.jira.issue(&issue_key).await.unwrap();
    assert_eq!(issue["fields"]["summary"], "[BC][WEB] Fix login redirect");
    assert_eq!(issue["fields"]["assignee"]["accountId"], jira_sim::JARED);

    phase(start, "2. echoes");
    // 2. The sync's own writes come back as webhooks (jira-webhook, basecamp-webhook) and write nothing.
    let writes = sims.writes();
    for faults in [&sims.basecamp as &dyn Release, &sims.jira] {
        faults.release();
    }
    let echoes = drain(&mut r, &sims).await;
    assert!(echoes.messages > 0, "the echoes came back through the receivers");
    assert_eq!(sims.writes(), writes, "an echo wrote");
    let jira_deliveries = sims.jira.deliveries();
    assert!(
        !jira_deliveries.is_empty() && jira_deliveries.iter().all(|d| d.status == Some(202)),
        "{:?}",
        statuses(&jira_deliveries)
    );

    phase(start, "3. a redelivery");
    // 3. Basecamp redelivers the to-do's first webhook: accepted, absorbed as a duplicate.
    let first_delivery = sims.basecamp.deliveries().into_iter().find(|d| d.event == "todo_created").unwrap();
    let resent = reqwest::Client::new().post(&first_delivery.url).json(&first_delivery.body).send().await.unwrap();
    assert_eq!(resent.status().as_u16(), 202);
    let duplicate = drain(&mut r, &sims).await;
    assert_eq!(duplicate.messages, 1);
    assert_eq!(sims.writes(), writes, "a duplicate wrote");
    assert_eq!(sims.issues().await, 1, "still exactly one issue");

    phase(start, "4. a pull request");
    // 4. Jared opens a pull request naming the issue: bitbucket-webhook enqueues the signal and the mapper
    //    posts one comment on the to-do.
    let comments = sims.basecamp_comment_posts();
    sims.bitbucket
        .open_pullrequest(&format!("Fix login redirect ({issue_key})"), "Sends users back.", "feature/login", "jared")
        .await
        .unwrap();
    drain(&mut r, &sims).await;
    let bb_deliveries = sims.bitbucket.deliveries();
    assert!(
        !bb_deliveries.is_empty() && bb_deliveries.iter().all(|d| d.status == Some(202)),
        "{:?}",
        statuses(&bb_deliveries)
    );
    assert_eq!(sims.basecamp_comment_posts(), comments + 1, "one pull-request comment on the to-do");
    drain(&mut r, &sims).await;

    phase(start, "5. an expired token, Done");
    // 5. The Basecamp token expires; Jared moves the issue to Done. The mapper renews the token, writes
    //    it back to the stack's secret, and completes the to-do once.
    sims.basecamp.expire_token(bc_sim::ACCESS_TOKEN).await;
    sims.jira.transition_issue(&issue_key, "Done", jira_sim::JARED).await.unwrap();
    let jira_writes = sims.writes().1;
    drain(&mut r, &sims).await;
    assert_eq!(sims.basecamp.record("todos", todo).await.unwrap()["completed"], true);
    assert_eq!(sims.basecamp.calls().count("POST", "/todos/{id}/completion.json"), 1);
    assert_eq!(sims.writes().1, jira_writes, "nothing written back to Jira");
    assert_eq!(sims.basecamp.calls().count("POST", "/authorization/token"), 1, "the token was renewed once");
    let renewed = shared::ports::SecretStore::get(
        &shared::adapters::secrets_manager::SecretsManagerSecrets::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            format!("{STACK}/"),
        ),
        "basecamp-access-token",
    )
    .await
    .unwrap();
    assert_ne!(
        secrecy::ExposeSecret::expose_secret(&renewed),
        bc_sim::ACCESS_TOKEN,
        "the renewed token is in the stack's secret"
    );

    phase(start, "6. a lost webhook, the reconciler");
    // 6. A rename whose webhook Basecamp loses: the reconciler's next run (with an expired token again)
    //    finds it, enqueues it, and the mapper renames the issue.
    sims.basecamp.set_faults(Faults {
        webhook: WebhookFaults { drop_next: 1, ..WebhookFaults::default() },
        ..Faults::default()
    });
    let renewed_token = secrecy::ExposeSecret::expose_secret(&renewed).to_owned();
    sims.basecamp.expire_token(&renewed_token).await;
    let second = sims
        .basecamp
        .create_todo(
            sprint,
            bc_sim::TodoWrite { content: Some("Receipts show the wrong VAT".into()), ..Default::default() },
            bc_sim::ANNIE,
        )
        .await
        .unwrap();
    sims.settle().await;
    let run = r.invoke("reconciler", &scheduled()).await;
    assert_eq!(run["failures"], json!([]), "{run}");
    assert!(run["basecamp"]["enqueued"].as_u64().unwrap_or(0) >= 1, "the reconciler found the lost webhook: {run}");
    drain(&mut r, &sims).await;
    assert_eq!(sims.issues().await, 2, "the lost to-do got its issue");
    let second_pair = shared::ports::PairStore::get(
        &store,
        &shared::domain::PairKey {
            route: shared::domain::RouteId::parse("web").unwrap(),
            todo: shared::domain::TodoId(second),
        },
    )
    .await
    .unwrap();
    assert!(second_pair.and_then(|p| p.item).is_some(), "paired");
    drain(&mut r, &sims).await;

    phase(start, "6b. a poison message");
    // A job that cannot be read, on its last allowed receive: the mapper files it in the dead letters
    // itself (sqs:SendMessage on the dead-letter queue) and leaves the original to the event source.
    let answer = r.invoke("sync-mapper", &poison_event("poison-story", 5)).await;
    assert_eq!(answer, json!({"batchItemFailures": []}), "filed, not left to the redrive policy");

    phase(start, "7. logs");
    // 7. Lambda writes every function's output to its log group, with the function's role.
    r.put_logs();

    phase(start, "least privilege");
    // Least privilege, both ways: the stack grants exactly what shared::deploy declares, every call was
    // allowed by the true policies (and by moto), each is declared, and each declared permission was used.
    let records = r.proxy.records();
    let refused: Vec<&Record> = records.iter().filter(|rec| !rec.allowed || rec.moto_denied).collect();
    assert!(refused.is_empty(), "calls refused during the story: {refused:#?}");
    let mut report = BTreeMap::new();
    for f in FUNCTIONS {
        report.insert(f.name, privileges(&r.privileges_of(f.name, &records)));
    }
    let problems: BTreeMap<_, _> = report.iter().filter(|(_, p)| **p != Privileges::default()).collect();
    assert!(problems.is_empty(), "least privilege: {problems:#?}");
    let lambda_side: Vec<&Record> = records
        .iter()
        .filter(|rec| rec.call.action.starts_with("logs:") || rec.call.action == "sqs:ReceiveMessage")
        .collect();
    assert!(!lambda_side.is_empty(), "the harness played the Lambda service's part with the roles");

    // A permission no function uses is reported as excess: the reconciler's policy with a table scan.
    let mut reconciler = r.privileges_of("reconciler", &records);
    let scan = ("dynamodb:Scan".to_owned(), r.resolve("reconciler", Resource::Table));
    reconciler.granted.push(scan.clone());
    let found = privileges(&reconciler);
    assert_eq!(found.excess, [scan], "the unused grant is reported");
    // …and a declared permission the stack does not grant is reported missing.
    let mut receiver = r.privileges_of("basecamp-webhook", &records);
    receiver.granted.retain(|(a, _)| a != "sqs:SendMessage");
    assert_eq!(privileges(&receiver).missing.len(), 1);

    phase(start, "negative control: SendMessage");
    // Negative control: remove sqs:SendMessage from basecamp-webhook's role. moto alone (the proxy only
    // recording) refuses the receiver's send with AccessDenied, and the receiver answers 503; with the
    // proxy's check on, the true policy refuses it as well.
    remove_permission(&r, "basecamp-webhook", "sqs:SendMessage");
    let queued_before = queue_depth(&r).await;
    r.proxy.set_enforcing(false);
    let resent = reqwest::Client::new().post(&first_delivery.url).json(&first_delivery.body).send().await.unwrap();
    assert_eq!(resent.status().as_u16(), 503, "the receiver could not enqueue");
    let last = r.proxy.records().into_iter().rev().find(|rec| rec.function == "basecamp-webhook").unwrap();
    assert_eq!(last.call.action, "sqs:SendMessage");
    assert!(last.moto_denied && last.status == 403, "moto refused it with AccessDenied: {last:?}");
    r.proxy.set_enforcing(true);
    let resent = reqwest::Client::new().post(&first_delivery.url).json(&first_delivery.body).send().await.unwrap();
    assert_eq!(resent.status().as_u16(), 503);
    let last = r.proxy.records().into_iter().rev().find(|rec| rec.function == "basecamp-webhook").unwrap();
    assert!(!last.allowed && last.status == 400, "the true policy refused it: {last:?}");
    assert_eq!(queue_depth(&r).await, queued_before, "nothing was enqueued");
    assert!(r.log("basecamp-webhook").contains("AccessDenied"), "the receiver's log names the denial");

    phase(start, "negative control: a cold start");
    // And at a cold start: without secretsmanager:GetSecretValue the Jira receiver cannot read its
    // configuration, and stops before taking any request (moto refusing on its own).
    remove_permission(&r, "jira-webhook", "secretsmanager:GetSecretValue");
    r.proxy.set_enforcing(false);
    r.restart("jira-webhook");
    let why = r.wait_for_exit("jira-webhook").await;
    let log = r.log("jira-webhook");
    assert!(log.contains("not allowed to read campbridge/campbridge.toml"), "{why}:\n{log}");
    let last = r.proxy.records().into_iter().rev().find(|rec| rec.function == "jira-webhook").unwrap();
    assert!(last.call.action == "secretsmanager:GetSecretValue" && last.moto_denied, "{last:?}");
    phase(start, "done");
}

/// Notes how far a test got and when (shown with the test's output when it fails or runs long).
/// An SQS event holding one job that cannot be read, received `receives` times (its receipt handle is
/// not one SQS issued: nothing may try to delete it).
fn poison_event(id: &str, receives: u32) -> Value {
    json!({"Records": [{
        "messageId": id, "receiptHandle": "not-a-real-handle", "body": "{\"v\":\"0\"}",
        "attributes": {"ApproximateReceiveCount": receives.to_string(), "MessageGroupId": "g", "MessageDeduplicationId": id},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:campbridge-jobs.fifo", "awsRegion": REGION
    }]})
}

fn phase(start: Instant, what: &str) {
    eprintln!("[{:>6.1}s] {what}", start.elapsed().as_secs_f64());
}

/// `config` with a comment block appended, `bytes` long in all.
fn padded(config: &str, bytes: usize) -> String {
    let mut text = format!("{config}\n");
    let line = "# \"quoted\" 'single' $(not run) `ticks` ünïcødé — tab:\there; a=b&c | x > y\n";
    while text.len() + line.len() <= bytes {
        text.push_str(line);
    }
    text
}

fn statuses(deliveries: &[campbridge_simulators::common::webhooks::DeliveryRecord]) -> Vec<(&str, Option<u16>)> {
    deliveries.iter().map(|d| (d.event.as_str(), d.status)).collect()
}

async fn queue_depth(r: &Rehearsal) -> u64 {
    let sqs = aws_sdk_sqs::Client::new(&r.deployer_sdk());
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(r.queue_url())
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Removes `action` from `binary`'s role: from the policy moto checks (as the deploying user, through
/// IAM) and from the true policy the proxy checks.
fn remove_permission(r: &Rehearsal, binary: &str, action: &str) {
    let f = r.function(binary);
    let role = f["role_arn"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    rehearsal_py(
        &["remove-action", &r.moto_url, &role, action],
        &[("AWS_ACCESS_KEY_ID", r.deployer.0.clone()), ("AWS_SECRET_ACCESS_KEY", r.deployer.1.clone())],
    );
    let truth: Vec<Value> = f["policies"]
        .as_object()
        .unwrap()
        .values()
        .map(|document| {
            let mut doc = document.clone();
            for statement in doc["Statement"].as_array_mut().unwrap() {
                let actions: Vec<Value> = match &statement["Action"] {
                    Value::Array(a) => a.iter().filter(|a| *a != action).cloned().collect(),
                    one if one == action => Vec::new(),
                    one => vec![one.clone()],
                };
                statement["Action"] = Value::Array(actions);
            }
            doc["Statement"].as_array_mut().unwrap().retain(|s| !s["Action"].as_array().unwrap().is_empty());
            doc
        })
        .collect();
    r.proxy.add_caller(
        f["credentials"]["access_key_id"].as_str().unwrap(),
        Caller {
            function: binary.to_owned(),
            role_arn: f["role_arn"].as_str().unwrap().to_owned(),
            statements: iam::statements(&truth),
        },
    );
}
