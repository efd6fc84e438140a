//! The service sections: `[server]`, `[store]`, `[basecamp]`, `[jira]`, `[bitbucket]` and `[pacing]`.
//! Each reader records its problems and returns what it could build; a section with a problem is
//! never used, because the whole config is refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use url::{Host, Url};

use super::reader::{Ctx, Scope, Section, Spanned};
use super::{
    BaseUrl, BasecampConfig, BasecampRefresh, BitbucketAuth, BitbucketConfig, Budget, JiraConfig, MIN_RECONCILE_EVERY,
    PacingConfig, ServerConfig, StoreConfig,
};
use crate::domain::{AccountId, JiraAccountId, RepoRef, UnknownWord};
use crate::outbound::{AddressClass, classify};

pub(super) const BASECAMP_BASE_URL: &str = "https://3.basecampapi.com";
/// Basecamp's OAuth server (tokens are refreshed at `{launchpad_url}/authorization/token`).
pub(super) const LAUNCHPAD_URL: &str = "https://launchpad.37signals.com";
pub(super) const BITBUCKET_BASE_URL: &str = "https://api.bitbucket.org/2.0";
pub(super) const JIRA_CLOUD_API: &str = "https://api.atlassian.com/ex/jira";

/// `[server]`; absent keys take their defaults. Always returns a value (problems are recorded).
pub(super) fn server(ctx: &mut Ctx, root: &Section<'_>) -> ServerConfig {
    let mut server = ServerConfig::default();
    let Some(sec) = root.table(ctx, "server", Scope::section("server")) else { return server };
    sec.check_keys(
        ctx,
        &["listen", "public_url", "webhook_key", "allow_insecure_loopback_upstreams", "reconcile_every", "max_silence"],
    );
    // Read first: it decides whether the URLs below may be plain http on loopback.
    if let Some(allow) = sec.bool(ctx, "allow_insecure_loopback_upstreams") {
        server.allow_insecure_loopback_upstreams = allow.value;
        ctx.allow_insecure_loopback = allow.value;
    }
    if let Some(listen) = sec.str(ctx, "listen")
        && let Some(addr) = loopback_addr(ctx, &sec, &listen)
    {
        server.listen = addr;
    }
    if let Some(url) = sec.str(ctx, "public_url") {
        server.public_url = base_url(ctx, &sec, "public_url", &url);
    }
    server.webhook_key = sec.secret(ctx, "webhook_key").map(|s| s.value);
    if let Some(every) = sec.str(ctx, "reconcile_every")
        && let Some(every) = reconcile_every(ctx, &sec, &every)
    {
        server.reconcile_every = every;
    }
    if let Some(text) = sec.str(ctx, "max_silence") {
        let value = text.value.trim();
        match duration(value) {
            _ if value == "off" => server.max_silence = None,
            Some(d) if !d.is_zero() => server.max_silence = Some(d),
            _ => ctx.error(
                &text.span,
                sec.scope.say(format!(
                    "max_silence {value:?} is not a duration like \"6h\" or \"2d\" (\"off\", the default, never \
                     alerts)"
                )),
            ),
        }
    }
    server
}

/// `"30s"`, `"5m"`, `"1h"`, `"2d"`: a whole number and one unit.
fn duration(value: &str) -> Option<Duration> {
    let (i, unit) = value.char_indices().last()?;
    let per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 60 * 60,
        'd' => 24 * 60 * 60,
        _ => return None,
    };
    value[..i].parse::<u64>().ok()?.checked_mul(per).map(Duration::from_secs)
}

/// `[pacing]`; absent keys keep their defaults. Always returns a value (problems are recorded).
pub(super) fn pacing(ctx: &mut Ctx, root: &Section<'_>) -> PacingConfig {
    let mut pacing = PacingConfig::default();
    let Some(sec) = root.table(ctx, "pacing", Scope::section("pacing")) else { return pacing };
    sec.check_keys(ctx, &["basecamp", "jira", "jira_issue_writes", "bitbucket"]);
    for (key, slot) in [
        ("basecamp", &mut pacing.basecamp),
        ("jira", &mut pacing.jira),
        ("jira_issue_writes", &mut pacing.jira_issue_writes),
        ("bitbucket", &mut pacing.bitbucket),
    ] {
        let Some(text) = sec.str(ctx, key) else { continue };
        let value = text.value.trim();
        if value == "off" {
            *slot = None;
        } else if let Some(budget) = Budget::parse(value) {
            *slot = Some(budget);
        } else {
            ctx.error(
                &text.span,
                sec.scope.say(format!(
                    "{key} {value:?} is not a budget like \"45/10s\", \"20/1s\" or \"900/1h\" (requests per \
                     seconds, minutes or hours; \"off\" turns pacing off)"
                )),
            );
        }
    }
    pacing
}

/// `"30s"`, `"5m"`, `"1h"` (a whole number and one unit), or `"off"` / `"0"` for never (`Some(None)`);
/// `None` after recording the problem.
fn reconcile_every(ctx: &mut Ctx, sec: &Section<'_>, text: &Spanned<String>) -> Option<Option<Duration>> {
    let value = text.value.trim();
    if value == "off" || value == "0" {
        return Some(None);
    }
    let seconds = value.char_indices().last().and_then(|(i, unit)| {
        let per = match unit {
            's' => 1,
            'm' => 60,
            'h' => 60 * 60,
            _ => return None,
        };
        value[..i].parse::<u64>().ok()?.checked_mul(per)
    });
    let Some(seconds) = seconds else {
        ctx.error(
            &text.span,
            sec.scope.say(format!(
                "reconcile_every {value:?} is not a duration like \"30s\", \"5m\" or \"1h\" (\"off\" turns it off)"
            )),
        );
        return None;
    };
    let every = Duration::from_secs(seconds);
    if every < MIN_RECONCILE_EVERY {
        ctx.error(
            &text.span,
            sec.scope.say(format!(
                "reconcile_every {value:?} is shorter than {}s: each pass spends Basecamp requests from the \
                 shared rate limit (\"off\" turns it off)",
                MIN_RECONCILE_EVERY.as_secs()
            )),
        );
        return None;
    }
    Some(Some(every))
}

fn loopback_addr(ctx: &mut Ctx, sec: &Section<'_>, listen: &Spanned<String>) -> Option<SocketAddr> {
    let text = listen.value.trim();
    let parsed = match text.strip_prefix("localhost:") {
        Some(port) => port.parse::<u16>().ok().map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p))),
        None => text.parse::<SocketAddr>().ok(),
    };
    let Some(addr) = parsed else {
        ctx.error(&listen.span, sec.scope.say(format!("listen {text:?} is not an address like 127.0.0.1:8080")));
        return None;
    };
    if !addr.ip().is_loopback() {
        ctx.error(
            &listen.span,
            sec.scope.say(format!(
                "listen {text:?} is not a loopback address: local mode binds 127.0.0.1 or [::1] only \
                 (put a tunnel or proxy in front to receive webhooks)"
            )),
        );
        return None;
    }
    Some(addr)
}

/// An https URL, or `http://` on loopback when `[server] allow_insecure_loopback_upstreams = true`. A host
/// written as an IP address (in any spelling the URL parser accepts: `0xa9fea9fe`, `[::ffff:10.0.0.1]`, …)
/// must pass the outbound guard's address rules here, with its line; a named host is checked by the guard
/// each time it resolves.
pub(super) fn base_url(ctx: &mut Ctx, sec: &Section<'_>, key: &str, text: &Spanned<String>) -> Option<BaseUrl> {
    let raw = text.value.trim();
    let say = |problem: &str| sec.scope.say(format!("{key} {raw:?} {problem}"));
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(e) => {
            ctx.error(&text.span, say(&format!("is not a URL ({e})")));
            return None;
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        ctx.error(&text.span, say("must not carry credentials: secrets never live in this file"));
        return None;
    }
    if url.query().is_some() || url.fragment().is_some() {
        ctx.error(&text.span, say("must not have a query or fragment"));
        return None;
    }
    let literal = match url.host() {
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    let loopback = match url.host() {
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        _ => literal.and_then(classify) == Some(AddressClass::Loopback),
    };
    if loopback && literal.is_none() && url.scheme() == "https" && !ctx.allow_insecure_loopback {
        ctx.error(
            &text.span,
            say("names loopback: campbridge never calls loopback addresses (only for tests: [server] \
                 allow_insecure_loopback_upstreams = true)"),
        );
        return None;
    }
    // http on loopback is reported below, with the way to allow it.
    if let Some(ip) = literal
        && let Some(class) = classify(ip)
        && !(class == AddressClass::Loopback && (ctx.allow_insecure_loopback || url.scheme() == "http"))
    {
        let hint = if class == AddressClass::Loopback {
            " (loopback only for tests: [server] allow_insecure_loopback_upstreams = true)"
        } else {
            ""
        };
        ctx.error(
            &text.span,
            say(&format!(
                "is {ip}, a {class} address: campbridge never calls private, loopback, link-local or reserved \
                 addresses{hint}"
            )),
        );
        return None;
    }
    match url.scheme() {
        "https" if url.host().is_some() => Some(BaseUrl(url)),
        "http" if loopback && ctx.allow_insecure_loopback => Some(BaseUrl(url)),
        "http" if loopback => {
            ctx.error(
                &text.span,
                say("must be an https URL (http on loopback needs [server] allow_insecure_loopback_upstreams = true)"),
            );
            None
        }
        _ => {
            ctx.error(&text.span, say("must be an https URL"));
            None
        }
    }
}

/// A URL for a built-in default, which is always valid.
fn default_url(text: &str) -> Option<BaseUrl> {
    Url::parse(text).ok().map(BaseUrl)
}

/// `[store]`: sqlite (default) or dynamodb. Always returns a value (problems are recorded).
pub(super) fn store(ctx: &mut Ctx, root: &Section<'_>) -> StoreConfig {
    let Some(sec) = root.table(ctx, "store", Scope::section("store")) else { return StoreConfig::default() };
    const KINDS: &[&str] = &["sqlite", "dynamodb"];
    let kind = sec.str(ctx, "kind");
    match kind.as_ref().map_or("sqlite", |k| k.value.as_str()) {
        "sqlite" => {
            sec.check_keys(ctx, &["kind", "path"]);
            let path = sec.non_empty_str(ctx, "path", false).map_or_else(|| "campbridge.db".to_owned(), |p| p.value);
            StoreConfig::Sqlite { path: PathBuf::from(path) }
        }
        "dynamodb" => {
            sec.check_keys(ctx, &["kind", "table", "queue_url"]);
            let table = sec.non_empty_str(ctx, "table", true);
            if let Some(t) = &table {
                let ok = (3..=255).contains(&t.value.len())
                    && t.value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                if !ok {
                    ctx.error(
                        &t.span,
                        sec.scope.say(format!(
                            "table {:?} is not a DynamoDB table name (3-255 letters, digits, _ . -)",
                            t.value
                        )),
                    );
                }
            }
            let queue = sec.non_empty_str(ctx, "queue_url", true);
            let queue_url = queue.as_ref().and_then(|q| base_url(ctx, &sec, "queue_url", q));
            if let (Some(q), Some(url)) = (&queue, &queue_url)
                && !url.as_str().ends_with(".fifo")
            {
                ctx.error(
                    &q.span,
                    sec.scope.say(format!("queue_url {:?} must name an SQS FIFO queue (ending in .fifo)", q.value)),
                );
            }
            match (table, queue_url) {
                (Some(table), Some(url)) => StoreConfig::DynamoDb { table: table.value, queue_url: url.0 },
                _ => StoreConfig::default(),
            }
        }
        other => {
            sec.check_keys(ctx, &["kind", "path", "table", "queue_url"]);
            let err = UnknownWord { what: "store kind", got: other.to_owned(), expected: KINDS };
            let span = kind.map(|k| k.span).unwrap_or_else(|| sec.span.clone());
            ctx.error(&span, sec.scope.say(err));
            StoreConfig::default()
        }
    }
}

/// `[basecamp]`.
pub(super) fn basecamp(ctx: &mut Ctx, sec: &Section<'_>) -> Option<BasecampConfig> {
    sec.check_keys(
        ctx,
        &[
            "account_id",
            "base_url",
            "launchpad_url",
            "user_agent",
            "client_id",
            "client_secret",
            "access_token",
            "refresh_token",
            "redirect_uri",
        ],
    );
    let account_id = sec.required_int(ctx, "account_id").and_then(|id| {
        if id.value > 0 {
            Some(AccountId(id.value))
        } else {
            ctx.error(&id.span, sec.scope.say(format!("account_id {} must be a positive id", id.value)));
            None
        }
    });
    let base = match sec.str(ctx, "base_url") {
        Some(text) => base_url(ctx, sec, "base_url", &text),
        None => default_url(BASECAMP_BASE_URL),
    };
    let launchpad = match sec.str(ctx, "launchpad_url") {
        Some(text) => base_url(ctx, sec, "launchpad_url", &text),
        None => default_url(LAUNCHPAD_URL),
    };
    let redirect_uri = match sec.str(ctx, "redirect_uri") {
        Some(text) => redirect_uri(ctx, sec, &text),
        None => Url::parse(super::DEFAULT_REDIRECT_URI).ok(),
    };
    let user_agent = sec.non_empty_str(ctx, "user_agent", true).and_then(|ua| {
        if user_agent_has_contact(&ua.value) {
            Some(ua.value)
        } else {
            ctx.error(
                &ua.span,
                sec.scope.say(format!(
                    "user_agent {:?} must name the app and a contact in parentheses, \
                     e.g. \"campbridge (ops@example.com)\" — Basecamp requires it",
                    ua.value
                )),
            );
            None
        }
    });
    let access_token = sec.required_secret(ctx, "access_token");
    let client_id = sec.non_empty_str(ctx, "client_id", false);
    let client_secret = sec.secret(ctx, "client_secret");
    let refresh_token = sec.secret(ctx, "refresh_token");
    let refresh_keys = ["client_id", "client_secret", "refresh_token"];
    let present: Vec<&str> = refresh_keys.iter().copied().filter(|k| sec.has(k)).collect();
    let refresh = match (client_id, client_secret, refresh_token) {
        (Some(id), Some(secret), Some(token)) => {
            Some(BasecampRefresh { client_id: id.value, client_secret: secret.value, refresh_token: token.value })
        }
        _ => {
            if !present.is_empty() && present.len() < refresh_keys.len() {
                let missing: Vec<&str> = refresh_keys.iter().copied().filter(|k| !sec.has(k)).collect();
                ctx.error(
                    &sec.key_span(present[0]),
                    sec.scope.say(format!(
                        "refreshing the access token needs client_id, client_secret and refresh_token together \
                         (missing {})",
                        missing.join(", ")
                    )),
                );
            }
            None
        }
    };
    Some(BasecampConfig {
        account_id: account_id?,
        base_url: base?,
        launchpad_url: launchpad?,
        redirect_uri: redirect_uri?,
        user_agent: user_agent?,
        access_token: access_token?.value,
        refresh,
    })
}

/// The OAuth redirect URI `campbridge auth basecamp` listens on: plain http on 127.0.0.1 (or `localhost`,
/// which it also serves on 127.0.0.1) with an explicit port, as registered with the app at Launchpad.
fn redirect_uri(ctx: &mut Ctx, sec: &Section<'_>, text: &Spanned<String>) -> Option<Url> {
    let raw = text.value.trim();
    let problem = match Url::parse(raw) {
        Err(e) => format!("is not a URL ({e})"),
        Ok(url) if url.scheme() != "http" => {
            "must be http: the browser comes back to campbridge on this machine".into()
        }
        Ok(url) if !matches!(url.host_str(), Some("127.0.0.1" | "localhost")) => {
            "must be on 127.0.0.1 (or localhost): campbridge receives the redirect on loopback only".into()
        }
        Ok(url) if url.port().is_none_or(|p| p == 0) => {
            "needs an explicit port, like http://127.0.0.1:8915/callback".into()
        }
        Ok(url) if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() => {
            "must not have a fragment or credentials".into()
        }
        Ok(url) => return Some(url),
    };
    ctx.error(&text.span, sec.scope.say(format!("redirect_uri {raw:?} {problem}")));
    None
}

/// `Name (contact)`: some text, then a parenthesised e-mail address or URL.
fn user_agent_has_contact(ua: &str) -> bool {
    let Some((app, rest)) = ua.split_once('(') else { return false };
    let Some((contact, _)) = rest.split_once(')') else { return false };
    !app.trim().is_empty() && (contact.contains('@') || contact.contains("://"))
}

/// `[jira]`.
pub(super) fn jira(ctx: &mut Ctx, sec: &Section<'_>) -> Option<JiraConfig> {
    sec.check_keys(ctx, &["site", "cloud_id", "email", "api_token", "webhook_secret", "service_account_id"]);
    let site_text = sec.str(ctx, "site");
    let site = site_text.as_ref().and_then(|s| base_url(ctx, sec, "site", s));
    let cloud_id =
        sec.non_empty_str(ctx, "cloud_id", false).and_then(|c| match uuid::Uuid::parse_str(c.value.trim()) {
            Ok(id) => Some(id.hyphenated().to_string()),
            Err(_) => {
                ctx.error(&c.span, sec.scope.say(format!("cloud_id {:?} is not a Jira cloud id (a UUID)", c.value)));
                None
            }
        });
    if !sec.has("site") && !sec.has("cloud_id") {
        ctx.error(
            &sec.span,
            sec.scope.say("needs site (https://your-team.atlassian.net) or cloud_id (for scoped API tokens)"),
        );
    }
    let email = required_email(ctx, sec, "email");
    let api_token = sec.required_secret(ctx, "api_token");
    let webhook_secret = sec.required_secret(ctx, "webhook_secret");
    let service_account_id = account_id(ctx, sec, "service_account_id");
    let api_base = match &cloud_id {
        Some(id) => default_url(&format!("{JIRA_CLOUD_API}/{id}")),
        None => site.clone(),
    };
    if sec.has("site") && site.is_none() {
        return None;
    }
    if let (Some(site), Some(text)) = (&site, &site_text)
        && site.url().path() != "/"
    {
        ctx.warn(
            &text.span,
            sec.scope.say(format!(
                "site {:?} has a path ({}): campbridge calls the REST API and links issues under it \
                 ({}/rest/api/3/…); a Jira Cloud site is just https://<team>.atlassian.net (a Data Center context \
                 path is fine)",
                text.value,
                site.url().path(),
                site.as_str()
            )),
        );
    }
    Some(JiraConfig {
        site,
        cloud_id,
        base_url: api_base?,
        email: email?,
        api_token: api_token?.value,
        webhook_secret: webhook_secret?.value,
        service_account_id,
    })
}

/// A Jira account id: non-empty, no spaces.
pub(super) fn account_id(ctx: &mut Ctx, sec: &Section<'_>, key: &str) -> Option<JiraAccountId> {
    let text = sec.non_empty_str(ctx, key, false)?;
    jira_account(ctx, sec, key, &text)
}

pub(super) fn jira_account(
    ctx: &mut Ctx,
    sec: &Section<'_>,
    key: &str,
    text: &Spanned<String>,
) -> Option<JiraAccountId> {
    if text.value.chars().any(char::is_whitespace) {
        ctx.error(&text.span, sec.scope.say(format!("{key} {:?} is not a Jira account id", text.value)));
        return None;
    }
    Some(JiraAccountId(text.value.clone()))
}

fn required_email(ctx: &mut Ctx, sec: &Section<'_>, key: &str) -> Option<String> {
    let text = sec.non_empty_str(ctx, key, true)?;
    email(ctx, sec, key, text)
}

pub(super) fn email(ctx: &mut Ctx, sec: &Section<'_>, key: &str, text: Spanned<String>) -> Option<String> {
    let value = text.value.trim();
    let ok = value.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
        && !value.chars().any(char::is_whitespace);
    if ok {
        Some(value.to_owned())
    } else {
        ctx.error(&text.span, sec.scope.say(format!("{key} {value:?} is not an e-mail address")));
        None
    }
}

/// `[bitbucket]`.
pub(super) fn bitbucket(ctx: &mut Ctx, sec: &Section<'_>) -> Option<BitbucketConfig> {
    sec.check_keys(ctx, &["workspace", "base_url", "email", "api_token", "access_token", "webhook_secret", "repos"]);
    let workspace = sec.non_empty_str(ctx, "workspace", true).and_then(|w| {
        if w.value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            Some(w.value)
        } else {
            ctx.error(&w.span, sec.scope.say(format!("workspace {:?} is not a workspace slug", w.value)));
            None
        }
    });
    let base = match sec.str(ctx, "base_url") {
        Some(text) => base_url(ctx, sec, "base_url", &text),
        None => default_url(BITBUCKET_BASE_URL),
    };
    let email_text = sec.non_empty_str(ctx, "email", false);
    let api_token = sec.secret(ctx, "api_token");
    let access_token = sec.secret(ctx, "access_token");
    let auth = match (sec.has("api_token"), sec.has("access_token")) {
        (true, true) => {
            ctx.error(
                &sec.key_span("access_token"),
                sec.scope.say("set api_token (with email) or access_token, not both"),
            );
            None
        }
        (false, false) => {
            ctx.error(&sec.span, sec.scope.say("needs api_token (with email) or access_token"));
            None
        }
        (true, false) => {
            if email_text.is_none() && !sec.has("email") {
                ctx.error(&sec.key_span("api_token"), sec.scope.say("api_token needs email (Basic email:token)"));
            }
            let email = email_text.and_then(|e| email(ctx, sec, "email", e));
            match (email, api_token) {
                (Some(email), Some(token)) => Some(BitbucketAuth::ApiToken { email, token: token.value }),
                _ => None,
            }
        }
        (false, true) => {
            if let Some(e) = email_text {
                // An email with an access token is harmless but unused; still check it is well-formed.
                email(ctx, sec, "email", e);
            }
            access_token.map(|t| BitbucketAuth::AccessToken(t.value))
        }
    };
    let webhook_secret = sec.required_secret(ctx, "webhook_secret");
    let mut repos = Vec::new();
    if let Some(list) = sec.str_list(ctx, "repos") {
        for repo in list.value {
            match RepoRef::parse(repo.value.trim()) {
                Ok(r) if repos.contains(&r) => {
                    ctx.error(&repo.span, sec.scope.say(format!("repos lists {:?} twice", repo.value)))
                }
                Ok(r) => repos.push(r),
                Err(e) => ctx.error(&repo.span, sec.scope.say(format!("repos: {e}"))),
            }
        }
    }
    Some(BitbucketConfig {
        workspace: workspace?,
        base_url: base?,
        auth: auth?,
        webhook_secret: webhook_secret?.value,
        repos,
    })
}
