//! `campbridge auth basecamp` end to end: the real binary against the Basecamp simulator's Launchpad, with
//! the test playing the browser (open the printed URL, press "allow" on the page, follow the redirect to
//! the binary's listener). Every wait is bounded; none is a speed goal.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns panic on setup failure by design

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use campbridge_simulators::basecamp::{self as bc, Simulator};
use reqwest::StatusCode;
use serde_json::Value;

/// Long enough for any honest wait on a loaded machine; only a hung process reaches it.
const HUNG: Duration = Duration::from_secs(60);

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("campbridge-auth-it-{}-{name}", std::process::id()));
    let _fresh = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A free loopback port (bound and released: the binary binds it again right away).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A config with only `[basecamp]`, pointing at the simulator, with the redirect URI on `port`.
fn write_config(dir: &Path, sim: &Simulator, port: u16) -> PathBuf {
    let host = sim.base_url().trim_end_matches(&format!("/{}", sim.account_id())).to_owned();
    let text = format!(
        r#"[server]
allow_insecure_loopback_upstreams = true

[basecamp]
account_id = {account}
base_url = {host:?}
launchpad_url = {launchpad:?}
user_agent = "campbridge tests (tests@campbridge.invalid)"
access_token = {{ secret = "basecamp-access-token" }}
client_id = {client_id:?}
client_secret = {{ secret = "basecamp-client-secret" }}
refresh_token = {{ secret = "basecamp-refresh-token" }}
redirect_uri = "http://127.0.0.1:{port}/callback"
"#,
        account = sim.account_id(),
        launchpad = sim.launchpad_url(),
        client_id = bc::CLIENT_ID,
    );
    let path = dir.join("campbridge.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The running binary and everything it printed so far.
struct Run {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Run {
    fn start(config: &Path, client_secret: &str, extra: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_campbridge"));
        command.args(["auth", "basecamp", "--config"]).arg(config).args(extra);
        for (var, _) in std::env::vars().filter(|(v, _)| v.starts_with("CAMPBRIDGE_SECRET_")) {
            command.env_remove(var);
        }
        let mut child = command
            .env("CAMPBRIDGE_SECRET_BASECAMP_CLIENT_SECRET", client_secret)
            .env(shared::config::LOOPBACK_OPT_IN_VAR, "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let out = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Self { child, out }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// The Launchpad URL the binary printed.
    async fn authorize_url(&self) -> String {
        let start = Instant::now();
        loop {
            let out = self.output();
            if let Some(url) = out.split_whitespace().find(|w| w.contains("/authorization/new?")) {
                return url.to_owned();
            }
            assert!(start.elapsed() < HUNG, "no authorization URL printed:\n{out}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the exit; (success, everything printed).
    async fn finish(mut self) -> (bool, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return (status.success(), self.output());
            }
            if start.elapsed() > HUNG {
                let _killed = self.child.kill();
                panic!("campbridge auth did not exit:\n{}", self.output());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(HUNG).build().unwrap()
}

fn query_of(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// Opens the authorization page and presses a button; the `Location` Launchpad sends the browser to.
async fn press(url: &str, sim: &Simulator, decision: &str) -> String {
    let page = browser().get(url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "the printed URL opens Launchpad's page");
    let html = page.text().await.unwrap();
    let marker = "name=\"authorization\" value=\"";
    let start = html.find(marker).expect("the page's form") + marker.len();
    let id = html[start..].split('"').next().unwrap();
    let answer = browser()
        .post(format!("{}/authorization", sim.launchpad_url()))
        .form(&[("authorization", id), ("decision", decision)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    answer.headers()["location"].to_str().unwrap().to_owned()
}

/// `VAR='value'` lines of an environment file.
fn env_vars(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

async fn authorization_json(sim: &Simulator, token: &str) -> (StatusCode, Value) {
    let r =
        browser().get(format!("{}/authorization.json", sim.launchpad_url())).bearer_auth(token).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_stores_working_tokens_in_a_private_env_file_and_never_prints_them() {
    let sim = Simulator::start(bc::Options::default()).await.unwrap();
    let port = free_port();
    sim.register_redirect_uri(&format!("http://127.0.0.1:{port}/callback"));
    let dir = dir("ok");
    let config = write_config(&dir, &sim, port);
    let env_file = dir.join("campbridge.env");
    std::fs::write(&env_file, "# kept\nCAMPBRIDGE_SECRET_JIRA_API_TOKEN='jira-value'\n").unwrap();
    let run = Run::start(&config, bc::CLIENT_SECRET, &["--timeout", "60s"]);

    let url = run.authorize_url().await;
    let asked = query_of(&url);
    assert!(url.starts_with(&format!("{}/authorization/new?", sim.launchpad_url())), "{url}");
    assert_eq!(asked["response_type"], "code");
    assert_eq!(asked["client_id"], bc::CLIENT_ID);
    assert_eq!(asked["redirect_uri"], format!("http://127.0.0.1:{port}/callback"));
    assert!(asked["state"].len() >= 32, "a long random state");

    // Something else knocking on the listener does not end the wait.
    let stray = browser().get(format!("http://127.0.0.1:{port}/favicon.ico")).send().await.unwrap();
    assert_eq!(stray.status(), StatusCode::NOT_FOUND);

    let location = press(&url, &sim, "allow").await;
    assert!(location.starts_with(&format!("http://127.0.0.1:{port}/callback?code=")), "{location}");
    let back = browser().get(&location).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::OK);
    assert!(back.text().await.unwrap().contains("You can close this window"));
    let (ok, out) = run.finish().await;
    assert!(ok, "{out}");
    eprintln!("{out}");

    let vars = env_vars(&env_file);
    let access = vars["CAMPBRIDGE_SECRET_BASECAMP_ACCESS_TOKEN"].clone();
    let refresh = vars["CAMPBRIDGE_SECRET_BASECAMP_REFRESH_TOKEN"].clone();
    assert_eq!(vars["CAMPBRIDGE_SECRET_JIRA_API_TOKEN"], "jira-value", "other lines are kept");
    assert!(std::fs::read_to_string(&env_file).unwrap().starts_with("# kept\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The tokens work: the access token on Launchpad, the refresh token for a renewal.
    let (status, me) = authorization_json(&sim, &access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["identity"]["id"], bc::SYNC_BOT);
    let renewed = browser()
        .post(format!("{}/authorization/token", sim.launchpad_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", bc::CLIENT_ID),
            ("client_secret", bc::CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status(), StatusCode::OK);

    // The output says where, in words, and never the values.
    assert!(out.contains(&env_file.display().to_string()) && out.contains("mode 0600"), "{out}");
    assert!(out.contains("Campbridge Sync") && out.contains(&sim.account_id().to_string()), "{out}");
    for secret in [access.as_str(), refresh.as_str(), bc::CLIENT_SECRET, &query_of(&location)["code"]] {
        assert!(!out.contains(secret), "a secret value was printed:\n{out}");
    }
    assert_eq!(sim.calls().count("POST", "/authorization/token"), 2, "one exchange (and the test's renewal)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_with_another_state_is_refused_and_nothing_is_exchanged_or_stored() {
    let sim = Simulator::start(bc::Options::default()).await.unwrap();
    let port = free_port();
    sim.register_redirect_uri(&format!("http://127.0.0.1:{port}/callback"));
    let dir = dir("csrf");
    let config = write_config(&dir, &sim, port);
    let run = Run::start(&config, bc::CLIENT_SECRET, &["--timeout", "60s"]);
    let url = run.authorize_url().await;
    // A real code from Launchpad, delivered with somebody else's state (a forged redirect).
    let location = press(&url, &sim, "allow").await;
    let code = query_of(&location)["code"].clone();
    let forged = format!("http://127.0.0.1:{port}/callback?code={code}&state=attacker");
    assert_eq!(browser().get(&forged).send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    let (ok, out) = run.finish().await;
    assert!(!ok, "{out}");
    assert!(out.contains("state does not match"), "{out}");
    assert_eq!(sim.calls().count("POST", "/authorization/token"), 0, "the code was never exchanged");
    assert!(!dir.join("campbridge.env").exists(), "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_a_wrong_client_secret_and_no_answer_each_end_with_nothing_stored() {
    let sim = Simulator::start(bc::Options::default()).await.unwrap();

    // The person says no.
    let port = free_port();
    sim.register_redirect_uri(&format!("http://127.0.0.1:{port}/callback"));
    let dir_no = dir("deny");
    let run = Run::start(&write_config(&dir_no, &sim, port), bc::CLIENT_SECRET, &["--timeout", "60s"]);
    let location = press(&run.authorize_url().await, &sim, "deny").await;
    assert_eq!(browser().get(&location).send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    let (ok, out) = run.finish().await;
    assert!(!ok && out.contains("access_denied"), "{out}");
    assert!(!dir_no.join("campbridge.env").exists());

    // The client secret is wrong: Launchpad refuses the exchange with its own error.
    let port = free_port();
    sim.register_redirect_uri(&format!("http://127.0.0.1:{port}/callback"));
    let dir_secret = dir("secret");
    let run = Run::start(&write_config(&dir_secret, &sim, port), "not-the-secret", &["--timeout", "60s"]);
    let location = press(&run.authorize_url().await, &sim, "allow").await;
    browser().get(&location).send().await.unwrap();
    let (ok, out) = run.finish().await;
    assert!(!ok, "{out}");
    assert!(out.contains("PROVIDER_AUTH_REQUIRED") && out.contains("invalid_client"), "{out}");
    assert!(!out.contains("not-the-secret"), "{out}");
    assert!(!dir_secret.join("campbridge.env").exists());

    // Nobody comes back: the wait ends at the timeout.
    let port = free_port();
    let dir_wait = dir("timeout");
    let run = Run::start(&write_config(&dir_wait, &sim, port), bc::CLIENT_SECRET, &["--timeout", "2s"]);
    let (ok, out) = run.finish().await;
    assert!(!ok && out.contains("no redirect from Launchpad within 2 s"), "{out}");
    assert!(!dir_wait.join("campbridge.env").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_client_secret_it_says_which_secret_to_set_and_starts_nothing() {
    let sim = Simulator::start(bc::Options::default()).await.unwrap();
    let dir = dir("no-secret");
    let config = write_config(&dir, &sim, free_port());
    let run = Run::start(&config, "", &["--timeout", "60s"]);
    let (ok, out) = run.finish().await;
    assert!(!ok, "{out}");
    assert!(out.contains("SECRET_MISSING") && out.contains("CAMPBRIDGE_SECRET_BASECAMP_CLIENT_SECRET"), "{out}");
    assert!(!out.contains("/authorization/new"), "{out}");
    assert_eq!(sim.calls().count("GET", "/authorization/new"), 0);
}
