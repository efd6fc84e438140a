//! `campbridge auth basecamp`: signs campbridge in to Basecamp with Launchpad's OAuth 2 authorization-code
//! flow and stores the tokens where the configured backend reads its secrets.
//!
//! 1. [`start`] binds a one-shot listener on 127.0.0.1 at `[basecamp] redirect_uri`'s port (the redirect
//!    URI registered with the app at Launchpad) and builds the URL to open:
//!    `{launchpad}/authorization/new?response_type=code&client_id=…&redirect_uri=…&state=…`, with a fresh
//!    random `state` (256 bits from the OS).
//! 2. [`Pending::finish`] waits — at most the given timeout, each connection's headers at most 10 s — for
//!    the browser to come back to that path. A redirect whose `state` differs is refused (CSRF) and ends the
//!    flow; `error=…` (the person said no) ends it too; other requests get a 404 and the wait goes on.
//! 3. The code is exchanged at `{launchpad}/authorization/token` (`grant_type=authorization_code`, form
//!    encoded, with the client id and secret and the same redirect URI), and the new access token is
//!    checked against `authorization.json`: the person who approved must reach `[basecamp] account_id`.
//! 4. The access and refresh tokens go to the secrets `[basecamp] access_token` and `refresh_token` name:
//!    locally as `CAMPBRIDGE_SECRET_*` lines of an environment file (written whole, mode 0600, other lines
//!    kept), for a stack as new versions of Secrets Manager `<stack>/<name>`.
//!
//! Any failure stores nothing. Token values are never printed, logged or put in an error.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use shared::config::{BasecampConfig, Config};
use shared::outbound::OutboundGuard;
use shared::ports::SecretStore;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use url::Url;

/// Why signing in did not finish. Nothing was stored in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("PROVIDER_NOT_CONFIGURED: {0}")]
    NotConfigured(String),
    #[error(
        "SECRET_MISSING: the OAuth app's client secret {0:?} is not set (locally: CAMPBRIDGE_SECRET_{var}; for a \
         stack: Secrets Manager <stack>/{0}); copy it from the app at launchpad.37signals.com/integrations",
        var = .0.to_ascii_uppercase().replace('-', "_")
    )]
    ClientSecretMissing(String),
    #[error(
        "cannot listen on {addr} for Launchpad's redirect ({reason}); is another `campbridge auth` running? Free \
         the port, or register another redirect URI with the app and set [basecamp] redirect_uri"
    )]
    Listen { addr: String, reason: String },
    #[error("no redirect from Launchpad within {0} s; nothing was stored (run it again and approve in the browser)")]
    TimedOut(u64),
    #[error(
        "the redirect's state does not match the one campbridge sent (a forged or stale redirect): nothing was \
         exchanged or stored"
    )]
    StateMismatch,
    #[error("Launchpad answered the redirect with {0:?} (access was not allowed); nothing was stored")]
    Denied(String),
    #[error("PROVIDER_AUTH_REQUIRED: Launchpad refused the code exchange ({status}: {error}); {hint}")]
    Exchange { status: u16, error: String, hint: &'static str },
    #[error(
        "PROVIDER_SCOPE_UNAVAILABLE: {who} cannot reach Basecamp account {account}; nothing was stored (sign in to \
         Launchpad as a person on that account, or fix [basecamp] account_id)"
    )]
    Account { who: String, account: i64 },
    #[error("Launchpad unreachable or answering oddly: {0}; nothing was stored")]
    Launchpad(String),
    #[error("could not store the tokens: {0}")]
    Store(String),
}

/// Where the tokens go.
pub enum TokenSink {
    /// Local mode: `CAMPBRIDGE_SECRET_<NAME>=…` lines in this environment file.
    EnvFile(PathBuf),
    /// A secret store (Secrets Manager for a stack); secret `name` lives at `<prefix><name>`.
    Store { secrets: Arc<dyn SecretStore>, prefix: String },
}

/// How to run the flow.
pub struct Options {
    /// How long to wait for the browser to come back.
    pub timeout: Duration,
    /// The OAuth app's client secret (`[basecamp] client_secret`).
    pub client_secret: SecretString,
}

/// The listener is up; the person has to open [`Pending::url`].
pub struct Pending {
    /// The Launchpad URL to open in a browser.
    pub url: String,
    /// Where Launchpad sends the browser back.
    pub redirect_uri: Url,
    listener: TcpListener,
    state: String,
    timeout: Duration,
    client_secret: SecretString,
}

/// What was done.
#[derive(Debug, Clone, Serialize)]
pub struct Authorized {
    /// `First Last (email)` of the person who approved: campbridge acts as them.
    pub identity: String,
    /// `195539477 (Honcho Design, bc3)`.
    pub account: String,
    /// Seconds until the access token expires (campbridge renews it with the refresh token).
    pub expires_in: Option<u64>,
    /// Where the tokens were stored, one line each (never their values).
    pub stored: Vec<String>,
    /// The environment file, when local.
    pub env_file: Option<PathBuf>,
}

fn basecamp(config: &Config) -> Result<(&BasecampConfig, &shared::config::BasecampRefresh), AuthError> {
    let bc = config.basecamp.as_ref().ok_or_else(|| AuthError::NotConfigured("[basecamp] is missing".into()))?;
    let refresh = bc.refresh.as_ref().ok_or_else(|| {
        AuthError::NotConfigured(
            "[basecamp] needs client_id, client_secret and refresh_token: the OAuth app's id, its secret, and the \
             secret name the refresh token is stored under"
                .into(),
        )
    })?;
    Ok((bc, refresh))
}

/// The OAuth app's client secret, read from `secrets` under `[basecamp] client_secret`'s name.
pub async fn client_secret(config: &Config, secrets: &dyn SecretStore) -> Result<SecretString, AuthError> {
    let (_, refresh) = basecamp(config)?;
    let name = refresh.client_secret.name();
    secrets.get(name).await.map_err(|e| match e {
        shared::ports::SecretError::Missing(_) => AuthError::ClientSecretMissing(name.to_owned()),
        shared::ports::SecretError::Unexpected(e) => AuthError::Store(format!("reading secret {name:?}: {e}")),
    })
}

/// A fresh `state`: 32 random bytes from the OS, hex.
fn random_state() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Binds the redirect listener and builds the authorization URL. Nothing is sent anywhere yet.
pub async fn start(config: &Config, opts: Options) -> Result<Pending, AuthError> {
    let (bc, refresh) = basecamp(config)?;
    let redirect_uri = bc.redirect_uri.clone();
    let port = redirect_uri.port().unwrap_or_default();
    let addr = format!("127.0.0.1:{port}");
    let listener =
        TcpListener::bind(&addr).await.map_err(|e| AuthError::Listen { addr: addr.clone(), reason: e.to_string() })?;
    let state = random_state();
    let mut url = Url::parse(&bc.launchpad_url.join("/authorization/new"))
        .map_err(|e| AuthError::NotConfigured(format!("[basecamp] launchpad_url: {e}")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &refresh.client_id)
        .append_pair("redirect_uri", redirect_uri.as_str())
        .append_pair("state", &state);
    Ok(Pending {
        url: url.to_string(),
        redirect_uri,
        listener,
        state,
        timeout: opts.timeout,
        client_secret: opts.client_secret,
    })
}

/// What the redirect brought.
enum Callback {
    Code(SecretString),
    Denied(String),
    StateMismatch,
}

struct Listening {
    path: String,
    state: String,
    tx: mpsc::Sender<Callback>,
}

const PAGE_DONE: &str =
    "campbridge received Basecamp's answer. You can close this window; the terminal says what happened.";

fn page(status: StatusCode, text: &str) -> Response {
    let html =
        format!("<!DOCTYPE html>\n<html><head><title>campbridge</title></head><body><p>{text}</p></body></html>\n");
    (status, Html(html)).into_response()
}

/// Every request to the listener: only the redirect path with `code` and `state`, or `error`, counts.
async fn redirect_handler(State(l): State<Arc<Listening>>, uri: Uri) -> Response {
    if uri.path() != l.path {
        return page(StatusCode::NOT_FOUND, "Not found.");
    }
    let query: std::collections::BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    let (code, error) = (query.get("code"), query.get("error"));
    if code.is_none() && error.is_none() {
        return page(StatusCode::BAD_REQUEST, "Expected Launchpad's redirect with a code.");
    }
    let (callback, answer) = if query.get("state") != Some(&l.state) {
        let text = "This redirect does not belong to the sign-in campbridge started. Nothing was stored.";
        (Callback::StateMismatch, page(StatusCode::BAD_REQUEST, text))
    } else if let Some(error) = error {
        (Callback::Denied(error.clone()), page(StatusCode::BAD_REQUEST, "Access was not allowed. Nothing was stored."))
    } else {
        let code = code.cloned().unwrap_or_default();
        (Callback::Code(SecretString::from(code)), page(StatusCode::OK, PAGE_DONE))
    };
    // Only the first answer counts; the flow has ended when the channel is full or closed.
    let _first_or_late = l.tx.try_send(callback);
    answer
}

impl Pending {
    /// Waits for the redirect, exchanges the code, checks the account and stores the tokens in `sink`.
    pub async fn finish(self, config: &Config, sink: &TokenSink) -> Result<Authorized, AuthError> {
        let (bc, refresh) = basecamp(config)?;
        let (tx, mut rx) = mpsc::channel(1);
        let listening =
            Arc::new(Listening { path: self.redirect_uri.path().to_owned(), state: self.state.clone(), tx });
        let app = axum::Router::new().fallback(redirect_handler).with_state(listening);
        let mut connections = JoinSet::new();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let callback = loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let service = TowerToHyperService::new(app.clone());
                    connections.spawn(async move {
                        let mut http = hyper::server::conn::http1::Builder::new();
                        http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10)).keep_alive(false);
                        // A broken connection only ends that connection; the wait goes on.
                        let _ended = http.serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                Some(callback) = rx.recv() => break callback,
                () = tokio::time::sleep_until(deadline) => return Err(AuthError::TimedOut(self.timeout.as_secs())),
            }
        };
        drop(self.listener);
        let code = match callback {
            Callback::Code(code) => code,
            Callback::Denied(error) => return Err(AuthError::Denied(error)),
            Callback::StateMismatch => return Err(AuthError::StateMismatch),
        };

        let http = OutboundGuard::for_config(config)
            .client_builder()
            .timeout(Duration::from_secs(30))
            .user_agent(bc.user_agent.clone())
            .build()
            .map_err(|e| AuthError::Launchpad(e.to_string()))?;
        let tokens = exchange(&http, bc, refresh, &code, &self.redirect_uri, &self.client_secret).await?;
        let (identity, account) = check_account(&http, bc, &tokens.access).await?;
        let stored = store(bc, refresh, &tokens, sink, &self.state).await?;
        // Let the browser's page finish before the connections go.
        let _flushed =
            tokio::time::timeout(Duration::from_secs(2), async { while connections.join_next().await.is_some() {} })
                .await;
        Ok(Authorized {
            identity,
            account,
            expires_in: tokens.expires_in,
            stored,
            env_file: match sink {
                TokenSink::EnvFile(path) => Some(path.clone()),
                TokenSink::Store { .. } => None,
            },
        })
    }
}

struct Tokens {
    access: SecretString,
    refresh: SecretString,
    expires_in: Option<u64>,
}

/// Launchpad's error field (`{"error": "…"}`), or the start of a non-JSON body; never more than 200 characters.
fn launchpad_error(body: &str) -> String {
    let error = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned());
    error.chars().take(200).collect()
}

async fn exchange(
    http: &reqwest::Client,
    bc: &BasecampConfig,
    refresh: &shared::config::BasecampRefresh,
    code: &SecretString,
    redirect_uri: &Url,
    client_secret: &SecretString,
) -> Result<Tokens, AuthError> {
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", refresh.client_id.as_str()),
        ("client_secret", client_secret.expose_secret()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code", code.expose_secret()),
    ];
    let response = http
        .post(bc.launchpad_url.join("/authorization/token"))
        .form(&form)
        .send()
        .await
        .map_err(|e| AuthError::Launchpad(e.without_url().to_string()))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| AuthError::Launchpad(e.without_url().to_string()))?;
    if !status.is_success() {
        let error = launchpad_error(&body);
        let hint = match error.as_str() {
            "invalid_client" => "check [basecamp] client_id and the client secret against the app at Launchpad",
            "redirect_uri_mismatch" => "[basecamp] redirect_uri must be the one registered with the app",
            "expired_verification_code" => "the code expired or was used; run it again and approve right away",
            _ => "run it again; if it keeps failing, check the app's settings at Launchpad",
        };
        return Err(AuthError::Exchange { status: status.as_u16(), error, hint });
    }
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        access_token: Option<String>,
        refresh_token: Option<String>,
        expires_in: Option<u64>,
    }
    let parsed: TokenResponse = serde_json::from_str(&body)
        .map_err(|_| AuthError::Launchpad("the token response is not the documented JSON".into()))?;
    match (parsed.access_token, parsed.refresh_token) {
        (Some(access), Some(refresh)) if !access.is_empty() && !refresh.is_empty() => Ok(Tokens {
            access: SecretString::from(access),
            refresh: SecretString::from(refresh),
            expires_in: parsed.expires_in,
        }),
        _ => Err(AuthError::Launchpad("the token response lacks an access or refresh token".into())),
    }
}

/// `authorization.json` with the new token: who approved, and that they reach the configured account.
async fn check_account(
    http: &reqwest::Client,
    bc: &BasecampConfig,
    access: &SecretString,
) -> Result<(String, String), AuthError> {
    let response = http
        .get(bc.launchpad_url.join("/authorization.json"))
        .bearer_auth(access.expose_secret())
        .send()
        .await
        .map_err(|e| AuthError::Launchpad(e.without_url().to_string()))?;
    if !response.status().is_success() {
        return Err(AuthError::Launchpad(format!(
            "authorization.json answered {} for the new token",
            response.status()
        )));
    }
    let body: serde_json::Value =
        response.json().await.map_err(|e| AuthError::Launchpad(format!("authorization.json: {}", e.without_url())))?;
    let who = format!(
        "{} {} ({})",
        body["identity"]["first_name"].as_str().unwrap_or_default(),
        body["identity"]["last_name"].as_str().unwrap_or_default(),
        body["identity"]["email_address"].as_str().unwrap_or("no e-mail")
    )
    .trim()
    .to_owned();
    let accounts = body["accounts"].as_array().cloned().unwrap_or_default();
    let account = accounts.iter().find(|a| {
        a["id"].as_i64() == Some(bc.account_id.0) && a["product"].as_str().is_some_and(|p| p.starts_with("bc"))
    });
    match account {
        Some(a) => Ok((
            who,
            format!(
                "{} ({}, {})",
                bc.account_id,
                a["name"].as_str().unwrap_or("?"),
                a["product"].as_str().unwrap_or("?")
            ),
        )),
        None => Err(AuthError::Account { who, account: bc.account_id.0 }),
    }
}

async fn store(
    bc: &BasecampConfig,
    refresh: &shared::config::BasecampRefresh,
    tokens: &Tokens,
    sink: &TokenSink,
    state: &str,
) -> Result<Vec<String>, AuthError> {
    let access_name = bc.access_token.name();
    let refresh_name = refresh.refresh_token.name();
    match sink {
        TokenSink::EnvFile(path) => {
            let access_var = shared::adapters::env_secrets::var_name(access_name);
            let refresh_var = shared::adapters::env_secrets::var_name(refresh_name);
            write_env_file(path, &[(&access_var, &tokens.access), (&refresh_var, &tokens.refresh)])
                .map_err(|e| AuthError::Store(format!("{}: {e}", path.display())))?;
            Ok(vec![
                format!("{access_var} (secret {access_name:?}): the access token"),
                format!("{refresh_var} (secret {refresh_name:?}): the refresh token"),
            ])
        }
        TokenSink::Store { secrets, prefix } => {
            // The request tokens make a retried write one version, not two.
            let run = &state[..16];
            secrets
                .put(access_name, &tokens.access, &format!("auth-{run}-access"))
                .await
                .map_err(|e| AuthError::Store(format!("secret {prefix}{access_name}: {e}")))?;
            secrets.put(refresh_name, &tokens.refresh, &format!("auth-{run}-refresh")).await.map_err(|e| {
                AuthError::Store(format!(
                    "secret {prefix}{refresh_name}: {e} (the access token was stored in {prefix}{access_name}; run \
                         it again)"
                ))
            })?;
            Ok(vec![
                format!("Secrets Manager {prefix}{access_name}: the access token (new version)"),
                format!("Secrets Manager {prefix}{refresh_name}: the refresh token (new version)"),
            ])
        }
    }
}

/// A value an environment file holds as `VAR='value'` as is (Launchpad's tokens are base64 and `-`).
fn env_safe(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=._~-:".contains(&b))
}

/// Sets `vars` in the environment file at `path`: an existing `VAR=` (or `export VAR=`) line is replaced,
/// other lines are kept, missing ones appended. The file is written whole to a temporary file with mode
/// 0600 beside it, synced and renamed over `path`, so it is never half-written or readable by others.
pub fn write_env_file(path: &Path, vars: &[(&str, &SecretString)]) -> std::io::Result<()> {
    use std::io::Write as _;
    for (var, value) in vars {
        if !env_safe(value.expose_secret()) {
            return Err(std::io::Error::other(format!(
                "the value for {var} has characters an environment file cannot hold as is; nothing was written"
            )));
        }
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let assigns = |line: &str, var: &str| {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        line.strip_prefix(var).is_some_and(|rest| rest.starts_with('='))
    };
    let mut out = String::new();
    let mut written = vec![false; vars.len()];
    for line in existing.lines() {
        match vars.iter().position(|(var, _)| assigns(line, var)) {
            Some(i) if written[i] => {}
            Some(i) => {
                out.push_str(&format!("{}='{}'\n", vars[i].0, vars[i].1.expose_secret()));
                written[i] = true;
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (i, (var, value)) in vars.iter().enumerate() {
        if !written[i] {
            out.push_str(&format!("{var}='{}'\n", value.expose_secret()));
        }
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "campbridge.env".into());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(out.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Best effort: a leftover temporary file holds the tokens.
        let _removed = std::fs::remove_file(&tmp);
    }
    result
}

/// The result as people read it.
pub fn render(a: &Authorized) -> String {
    let mut out = format!("✓ Signed in to Basecamp as {}; account {}.\n", a.identity, a.account);
    match &a.env_file {
        Some(path) => out.push_str(&format!("Stored in {} (mode 0600):\n", path.display())),
        None => out.push_str("Stored:\n"),
    }
    for line in &a.stored {
        out.push_str(&format!("  {line}\n"));
    }
    if let Some(secs) = a.expires_in {
        out.push_str(&format!(
            "The access token lasts {} days; campbridge renews it with the refresh token by itself.\n",
            secs / 86_400
        ));
    }
    match &a.env_file {
        Some(path) => out.push_str(&format!(
            "Load it before running campbridge (`set -a; . {}; set +a`, or EnvironmentFile= in a systemd unit), then \
             run `campbridge doctor`.\n",
            path.display()
        )),
        None => out.push_str("The functions read them at their next cold start. Next: `campbridge doctor`.\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("campbridge-auth-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).ok();
        d
    }

    #[test]
    fn the_env_file_keeps_other_lines_replaces_ours_and_is_private() {
        let path = dir("env").join("campbridge.env");
        std::fs::write(&path, "# team secrets\nexport CAMPBRIDGE_SECRET_A='old'\nCAMPBRIDGE_SECRET_JIRA=keep\n").ok();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).ok();
        }
        let a = SecretString::from("new-access");
        let b = SecretString::from("new-refresh");
        write_env_file(&path, &[("CAMPBRIDGE_SECRET_A", &a), ("CAMPBRIDGE_SECRET_B", &b)]).ok();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            text,
            "# team secrets\nCAMPBRIDGE_SECRET_A='new-access'\nCAMPBRIDGE_SECRET_JIRA=keep\nCAMPBRIDGE_SECRET_B='new-refresh'\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).unwrap_or_default();
            assert_eq!(mode, 0o600);
        }
        let odd = SecretString::from("it's\nodd");
        assert!(write_env_file(&path, &[("CAMPBRIDGE_SECRET_A", &odd)]).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), text, "nothing written");
    }

    #[test]
    fn states_are_long_random_and_different() {
        let (a, b) = (random_state(), random_state());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn launchpad_errors_are_read_from_json_or_cut_short() {
        assert_eq!(launchpad_error(r#"{"error":"invalid_client"}"#), "invalid_client");
        assert_eq!(launchpad_error("Unknown Basecamp ID."), "Unknown Basecamp ID.");
        assert_eq!(launchpad_error(&"x".repeat(500)).len(), 200);
    }
}
