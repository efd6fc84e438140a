//! `campbridge.toml`: one typed [`Config`], read once at startup and validated as a whole.
//!
//! Every problem in the file is reported, not just the first, each as `file:line: message`
//! (e.g. `campbridge.toml:14: route "web": unknown status strategy "dev_owned" (expected dev-owned, …)`).
//! Secrets are never in the file: keys that need one hold a reference, `{ secret = "name" }`, which
//! the `SecretStore` port resolves later. Nothing here reads environment variables.
//! The keys and their defaults are described in docs/configuration.md.

mod reader;
mod routes;
mod sections;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

pub use crate::clients::pacing::Budget;
use crate::domain::{AccountId, JiraAccountId, RepoRef, Route, UserTable};
use reader::{Ctx, Scope, Section};

/// The whole configuration. Built only from a file without a single problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    /// Required as soon as there is a route.
    pub basecamp: Option<BasecampConfig>,
    /// Required as soon as there is a route.
    pub jira: Option<JiraConfig>,
    pub bitbucket: Option<BitbucketConfig>,
    /// Basecamp people ⇄ Jira accounts, from `[[users]]`.
    pub users: UserTable,
    /// The optional contact details of `[[users]]`, in the same order as `users.users`.
    pub user_contacts: Vec<UserContact>,
    /// Routes in file order. Their `webhook_token` is `None`: it is derived from `server.webhook_key`.
    pub routes: Vec<Route>,
    /// `[pacing]`: the request budgets the clients spend themselves.
    pub pacing: PacingConfig,
}

/// `[pacing]`: each upstream's request budget, spent by campbridge itself so 429s stay rare
/// ([`crate::clients::pacing`]). `None` turns pacing off for that upstream (`"off"`: e.g. simulators
/// without the limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacingConfig {
    /// Basecamp allows 50 requests per 10 s per IP; the default leaves room for an operator's commands.
    pub basecamp: Option<Budget>,
    /// Jira Cloud's per-second burst limit for API-token traffic (not published; a conservative pace).
    pub jira: Option<Budget>,
    /// Jira's per-issue write limit (not published): writes to one issue.
    pub jira_issue_writes: Option<Budget>,
    /// Bitbucket Cloud's hourly budget per API token (1,000 requests per hour).
    pub bitbucket: Option<Budget>,
    /// How many processes split these budgets: 1 locally; AWS mode sets it from `PACING_SHARE` (the
    /// mapper's maximum concurrency plus the reconciler).
    pub share: u32,
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self {
            basecamp: Some(Budget::new(45, Duration::from_secs(10))),
            jira: Some(Budget::new(20, Duration::from_secs(1))),
            jira_issue_writes: Some(Budget::new(10, Duration::from_secs(10))),
            bitbucket: Some(Budget::new(900, Duration::from_secs(3600))),
            share: 1,
        }
    }
}

impl PacingConfig {
    /// No pacing at all.
    pub fn off() -> Self {
        Self { basecamp: None, jira: None, jira_issue_writes: None, bitbucket: None, share: 1 }
    }
}

/// `[server]`: local mode's HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Always a loopback address: local mode never listens on a public interface.
    pub listen: SocketAddr,
    /// The public base URL (e.g. a tunnel) used to print the webhook URLs to register upstream.
    pub public_url: Option<BaseUrl>,
    /// The server key each route's Basecamp webhook URL token is derived from. Required with routes.
    pub webhook_key: Option<SecretRef>,
    /// Lets upstream URLs be `http://127.0.0.1:*` / `http://localhost:*` (the demo's simulators).
    pub allow_insecure_loopback_upstreams: bool,
    /// How often local mode runs a reconcile pass (the first one at start); `None` = never. AWS mode runs
    /// the reconciler on the template's schedule instead.
    pub reconcile_every: Option<Duration>,
    /// `status --check` and `doctor` fail when a configured source's receiver has had no delivery for
    /// longer than this (`None`, the default: never).
    pub max_silence: Option<Duration>,
}

/// `[server] reconcile_every`'s default: the template's `rate(5 minutes)`.
pub const DEFAULT_RECONCILE_EVERY: Duration = Duration::from_secs(5 * 60);
/// The shortest `reconcile_every`: each pass spends a few of Basecamp's 50 requests per 10 s (shared by
/// everything on the IP), and its 5-minute overlap makes faster passes find nothing new.
pub const MIN_RECONCILE_EVERY: Duration = Duration::from_secs(10);

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            public_url: None,
            webhook_key: None,
            allow_insecure_loopback_upstreams: false,
            reconcile_every: Some(DEFAULT_RECONCILE_EVERY),
            max_silence: None,
        }
    }
}

/// `[store]`: where pairs, deliveries and the queue live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// Local mode: one embedded database file.
    Sqlite { path: PathBuf },
    /// AWS mode: one DynamoDB table and an SQS FIFO queue.
    DynamoDb { table: String, queue_url: Url },
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self::Sqlite { path: PathBuf::from("campbridge.db") }
    }
}

/// `[basecamp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasecampConfig {
    pub account_id: AccountId,
    /// The API host, without the account id (default `https://3.basecampapi.com`).
    pub base_url: BaseUrl,
    /// Where OAuth tokens are refreshed (default `https://launchpad.37signals.com`).
    pub launchpad_url: BaseUrl,
    /// Where Launchpad sends the browser back to `campbridge auth basecamp`: the OAuth app's registered
    /// redirect URI, always `http://127.0.0.1:<port>/…` or `http://localhost:<port>/…` (default
    /// [`DEFAULT_REDIRECT_URI`]).
    pub redirect_uri: Url,
    /// Sent on every request; Basecamp requires an app name and a contact, `app (contact)`.
    pub user_agent: String,
    pub access_token: SecretRef,
    /// Present when the access token can be refreshed (it lasts two weeks).
    pub refresh: Option<BasecampRefresh>,
}

/// `[basecamp] redirect_uri`'s default.
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8915/callback";

/// What the OAuth refresh flow needs. The three keys come together or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasecampRefresh {
    pub client_id: String,
    pub client_secret: SecretRef,
    pub refresh_token: SecretRef,
}

/// `[jira]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JiraConfig {
    /// The site (`https://team.atlassian.net`), used for browse links and, without `cloud_id`, for the API.
    pub site: Option<BaseUrl>,
    pub cloud_id: Option<String>,
    /// Where API calls go: `https://api.atlassian.com/ex/jira/{cloud_id}` with a cloud id, else the site.
    pub base_url: BaseUrl,
    /// The account the API token belongs to (Basic `email:token`).
    pub email: String,
    pub api_token: SecretRef,
    /// The HMAC secret of the Jira admin webhook.
    pub webhook_secret: SecretRef,
    /// The integration account, an optional pre-filter for our own writes.
    pub service_account_id: Option<JiraAccountId>,
}

/// `[bitbucket]`: pull-request, build and push signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitbucketConfig {
    pub workspace: String,
    /// The API root (default `https://api.bitbucket.org/2.0`).
    pub base_url: BaseUrl,
    pub auth: BitbucketAuth,
    /// The HMAC secret of the repository webhooks.
    pub webhook_secret: SecretRef,
    pub repos: Vec<RepoRef>,
}

/// How campbridge authenticates to Bitbucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitbucketAuth {
    /// An Atlassian API token, sent as Basic `email:token`.
    ApiToken { email: String, token: SecretRef },
    /// A repository, project or workspace access token, sent as Bearer.
    AccessToken(SecretRef),
}

/// A `[[users]]` entry's optional contact details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserContact {
    pub name: String,
    pub email: Option<String>,
    pub bitbucket: Option<String>,
}

/// The name of a secret in the `SecretStore` (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef(String);

impl SecretRef {
    /// Names use the characters secret stores accept: letters, digits and `/_+=.@-`.
    pub fn parse(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 512
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!("secret name {name:?} may use only letters, digits and /_+=.@- (at most 512)"))
        }
    }
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An API base URL: https (or http on loopback when allowed), no credentials, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(Url);

impl BaseUrl {
    /// The URL without a trailing slash, ready for `format!("{}/path", base.as_str())`.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }
    pub fn url(&self) -> &Url {
        &self.0
    }
    /// `base` + `path`, with exactly one slash between them.
    pub fn join(&self, path: &str) -> String {
        format!("{}/{}", self.as_str(), path.trim_start_matches('/'))
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in the file. `line` is 1-based; `None` only when the file could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config file, in file order; never empty. Displays one problem per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The environment variable a process sets (to `1` or `true`) to accept a config with `[server]
/// allow_insecure_loopback_upstreams = true`: the tests and the demo's simulators on 127.0.0.1. The SAM
/// template never sets it. See docs/decisions/0008-outbound-guard.md.
pub const LOOPBACK_OPT_IN_VAR: &str = "CAMPBRIDGE_INSECURE_LOOPBACK_UPSTREAMS_FOR_TESTS";

const TOP_LEVEL_KEYS: &[&str] = &["server", "store", "basecamp", "jira", "bitbucket", "users", "routes", "pacing"];

impl Config {
    /// Every secret the config names, each once, with what it is for (`"Jira API token"`), in section order.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        let mut all: Vec<(&'static str, &SecretRef)> = Vec::new();
        if let Some(key) = &self.server.webhook_key {
            all.push(("webhook key", key));
        }
        if let Some(bc) = &self.basecamp {
            all.push(("Basecamp access token", &bc.access_token));
            if let Some(r) = &bc.refresh {
                all.push(("Basecamp OAuth client secret", &r.client_secret));
                all.push(("Basecamp refresh token", &r.refresh_token));
            }
        }
        if let Some(jira) = &self.jira {
            all.push(("Jira API token", &jira.api_token));
            all.push(("Jira webhook secret", &jira.webhook_secret));
        }
        if let Some(bb) = &self.bitbucket {
            match &bb.auth {
                BitbucketAuth::ApiToken { token, .. } => all.push(("Bitbucket API token", token)),
                BitbucketAuth::AccessToken(token) => all.push(("Bitbucket access token", token)),
            }
            all.push(("Bitbucket webhook secret", &bb.webhook_secret));
        }
        let mut seen = std::collections::BTreeSet::new();
        all.retain(|(_, r)| seen.insert(r.name().to_owned()));
        all
    }

    /// Refuses a config that asks for the loopback test allowance unless the process opted in
    /// ([`LOOPBACK_OPT_IN_VAR`], or `campbridge --insecure-loopback-upstreams-for-tests`), so one line in a
    /// production config cannot switch it on silently. With the opt-in it warns once in the log.
    pub fn check_loopback_opt_in(&self, opted_in: bool) -> Result<(), String> {
        if !self.server.allow_insecure_loopback_upstreams {
            return Ok(());
        }
        if !opted_in {
            return Err(format!(
                "[server] allow_insecure_loopback_upstreams = true is a test setting (upstreams on 127.0.0.1, such as \
                 the simulators) and is refused here; remove it, or for tests start with {LOOPBACK_OPT_IN_VAR}=1"
            ));
        }
        tracing::warn!(
            "TEST SETTING: upstream calls to loopback addresses are allowed ([server] \
             allow_insecure_loopback_upstreams with {LOOPBACK_OPT_IN_VAR}); never use this in production"
        );
        Ok(())
    }

    /// Reads and validates a config file. Problems are reported against the path as given.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigErrors> {
        Self::from_file_with_warnings(path).map(|(config, _)| config)
    }

    /// [`Config::from_file`] with the warnings of [`Config::parse_with_warnings`].
    pub fn from_file_with_warnings(path: impl AsRef<Path>) -> Result<(Self, Vec<ConfigError>), ConfigErrors> {
        let path = path.as_ref();
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse_with_warnings(&text, &file),
            Err(e) => Err(ConfigErrors(vec![ConfigError { file, line: None, message: format!("cannot read: {e}") }])),
        }
    }

    /// Validates config text; `file_name` only labels the problems.
    pub fn parse(text: &str, file_name: &str) -> Result<Self, ConfigErrors> {
        Self::parse_with_warnings(text, file_name).map(|(config, _)| config)
    }

    /// [`Config::parse`], plus the warnings (in file order, each with its line): things the config allows
    /// but that are probably mistakes — two routes on one Basecamp project that can take the same to-do, a
    /// to-do list pattern written as a regular expression, a Jira site URL with a path.
    pub fn parse_with_warnings(text: &str, file_name: &str) -> Result<(Self, Vec<ConfigError>), ConfigErrors> {
        let mut ctx = Ctx::new(file_name, text);
        let doc = match toml_edit::Document::parse(text) {
            Ok(doc) => doc,
            Err(e) => {
                ctx.error(&e.span(), format!("invalid TOML: {}", e.message().trim_end()));
                return Err(ConfigErrors(ctx.into_errors()));
            }
        };
        let root = Section::new(doc.as_table(), Some(0..0), Scope::root());
        root.check_keys(&mut ctx, TOP_LEVEL_KEYS);

        let server = sections::server(&mut ctx, &root);
        ctx.allow_insecure_loopback = server.allow_insecure_loopback_upstreams;
        let store = sections::store(&mut ctx, &root);
        let basecamp = root.table(&mut ctx, "basecamp", Scope::section("basecamp"));
        let basecamp = basecamp.and_then(|s| sections::basecamp(&mut ctx, &s));
        let jira = root.table(&mut ctx, "jira", Scope::section("jira"));
        let jira = jira.and_then(|s| sections::jira(&mut ctx, &s));
        let bitbucket = root.table(&mut ctx, "bitbucket", Scope::section("bitbucket"));
        let bitbucket = bitbucket.and_then(|s| sections::bitbucket(&mut ctx, &s));
        let pacing = sections::pacing(&mut ctx, &root);
        let users = routes::users(&mut ctx, &root);
        let routes = routes::routes(&mut ctx, &root, &users);
        routes::check_route_prerequisites(&mut ctx, &root, server.webhook_key.is_some());

        if ctx.has_errors() {
            return Err(ConfigErrors(ctx.into_errors()));
        }
        let warnings = ctx.take_warnings();
        let config = Self {
            server,
            store,
            basecamp,
            jira,
            bitbucket,
            users: users.table,
            user_contacts: users.contacts,
            routes,
            pacing,
        };
        Ok((config, warnings))
    }
}
