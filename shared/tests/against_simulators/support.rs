//! Clients built on a simulator's URLs and default credentials, fixture access and raw GETs for
//! the key comparisons.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use campbridge_simulators::{basecamp as bc_sim, bitbucket as bb_sim, jira as jira_sim};
use secrecy::SecretString;
use serde_json::Value;
use shared::adapters::memory::MemorySecrets;
use shared::clients::basecamp::{BasecampClient, BasecampConfig};
use shared::clients::bitbucket::{BitbucketClient, BitbucketConfig, RATE_LIMIT_DELAY};
use shared::clients::jira::{JiraClient, JiraConfig};
use shared::clients::{BaseUrl, Credentials, HttpSettings};

/// Basecamp requires an app name and a contact.
pub const USER_AGENT: &str = "campbridge-tests (ops@example.test)";
pub const ACCESS_SECRET: &str = "basecamp/access";
pub const REFRESH_SECRET: &str = "basecamp/refresh";

/// A Basecamp simulator with a client holding its default tokens.
pub struct Basecamp {
    pub sim: bc_sim::Simulator,
    pub client: BasecampClient,
    pub secrets: Arc<MemorySecrets>,
}

impl Basecamp {
    /// The simulator with its default options (rate limit 50 / 10 s included).
    pub async fn start() -> Self {
        Self::start_with(bc_sim::Options::default(), bc_sim::REFRESH_TOKEN).await
    }

    /// The simulator with `opts`; the client's secret store holds `refresh_token`.
    pub async fn start_with(opts: bc_sim::Options, refresh_token: &str) -> Self {
        let sim = bc_sim::Simulator::start(opts).await.unwrap();
        let access = sim.access_token();
        let secrets =
            Arc::new(MemorySecrets::with([(ACCESS_SECRET, access.as_str()), (REFRESH_SECRET, refresh_token)]));
        let config = BasecampConfig {
            base_url: BaseUrl::parse(&sim.base_url()).unwrap(),
            token_url: url::Url::parse(&format!("{}/authorization/token", sim.launchpad_url())).unwrap(),
            client_id: bc_sim::CLIENT_ID.to_owned(),
            client_secret: SecretString::from(bc_sim::CLIENT_SECRET),
            access_token_secret: ACCESS_SECRET.to_owned(),
            refresh_token_secret: REFRESH_SECRET.to_owned(),
            http: HttpSettings::for_loopback_tests(USER_AGENT),
            default_retry_after: Duration::from_secs(10),
        };
        let client = BasecampClient::new(config, secrets.clone()).unwrap();
        Self { sim, client, secrets }
    }

    /// Creates a to-do in the seeded list `list` as Victor; returns its id.
    pub async fn todo_in(&self, list: &str, write: bc_sim::TodoWrite) -> i64 {
        let list = self.sim.list_id(list).await.unwrap();
        self.sim.create_todo(list, write, bc_sim::VICTOR).await.unwrap()
    }

    /// A plain GET below the API base with the default token, as JSON.
    pub async fn raw_get(&self, path: &str) -> Value {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.sim.base_url()))
            .bearer_auth(self.sim.access_token())
            .header("User-Agent", USER_AGENT)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.unwrap()
    }
}

/// A Jira simulator and a client with its default Basic credentials.
pub async fn jira_with(opts: jira_sim::Options) -> (jira_sim::Simulator, JiraClient) {
    let sim = jira_sim::Simulator::start(opts).await.unwrap();
    let (email, token) = sim.credentials();
    let auth = Credentials::Basic { user: email, secret: SecretString::from(token) };
    let config =
        JiraConfig::new(BaseUrl::parse(&sim.base_url()).unwrap(), auth, HttpSettings::for_loopback_tests(USER_AGENT));
    (sim, JiraClient::new(config).unwrap())
}

pub async fn jira() -> (jira_sim::Simulator, JiraClient) {
    jira_with(jira_sim::Options::default()).await
}

/// A plain GET on the Jira simulator with the default credentials, as JSON.
pub async fn jira_raw_get(sim: &jira_sim::Simulator, path: &str) -> Value {
    let (email, token) = sim.credentials();
    let response = reqwest::Client::new()
        .get(format!("{}{path}", sim.base_url()))
        .basic_auth(email, Some(token))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "GET {path}: {}", response.status());
    response.json().await.unwrap()
}

/// A Bitbucket simulator and a client with its default API token.
pub async fn bitbucket() -> (bb_sim::Simulator, BitbucketClient) {
    bitbucket_with(bb_sim::Options::default()).await
}

pub async fn bitbucket_with(opts: bb_sim::Options) -> (bb_sim::Simulator, BitbucketClient) {
    let sim = bb_sim::Simulator::start(opts).await.unwrap();
    let (email, token) = sim.credentials();
    let client = BitbucketClient::new(BitbucketConfig {
        base_url: BaseUrl::parse(&format!("{}/2.0/", sim.base_url())).unwrap(),
        auth: Credentials::Basic { user: email, secret: SecretString::from(token) },
        http: HttpSettings::for_loopback_tests(USER_AGENT),
        rate_limit_delay: RATE_LIMIT_DELAY,
    })
    .unwrap();
    (sim, client)
}

/// A plain GET on the Bitbucket simulator with the default credentials, as JSON.
pub async fn bitbucket_raw_get(sim: &bb_sim::Simulator, path: &str) -> Value {
    let (email, token) = sim.credentials();
    let response = reqwest::Client::new()
        .get(format!("{}{path}", sim.base_url()))
        .basic_auth(email, Some(token))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "GET {path}: {}", response.status());
    response.json().await.unwrap()
}

/// A fixture from the repository's `tests/fixtures/`, parsed.
pub fn fixture(rel: &str) -> Value {
    let path = format!("{}/../tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {rel} is not JSON: {e}"))
}

pub fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap_or_else(|| panic!("not an object: {value}")).keys().cloned().collect()
}

/// Asserts `actual` carries exactly the top-level keys of the fixture `rel` (or of its first item
/// when the fixture is a list).
pub fn assert_fixture_keys(actual: &Value, rel: &str) {
    let expected = fixture(rel);
    let expected = if expected.is_array() { expected[0].clone() } else { expected };
    assert_eq!(keys(actual), keys(&expected), "top-level keys differ from {rel}");
}
