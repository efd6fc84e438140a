//! `campbridge status`: pairs by state, pending claims, open conflicts, queue depth and dead letters, the
//! last audited delivery per source, and webhook health — as a table people read at a glance — and what
//! needs attention ([`problems`]): dead letters, open conflicts, unhealthy webhooks (what `webhooks check`
//! calls unhealthy: missing, inactive, without the events, or ours at an old URL) and a receiver silent
//! for longer than `[server] max_silence`. `status --check` exits non-zero when there is any; `doctor`
//! runs the same rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::config::Config;
use shared::domain::PairState;
use shared::ports::SecretStore;

use super::webhooks::{self, Action, HooksReport};
use super::{Backend, NO_PUBLIC_URL, OpsError, PublicUrls, mark};

/// The newest audited delivery from one source.
#[derive(Debug, Clone, Serialize)]
pub struct LastDelivery {
    /// `basecamp`, `jira`, `bitbucket`, `backfill`…
    pub source: String,
    pub at: DateTime<Utc>,
    pub delivery: String,
    pub action: String,
    pub subject: String,
}

/// A linked pair that stopped syncing because one side went away (docs/lifecycle.md).
#[derive(Debug, Clone, Serialize)]
pub struct DetachedPair {
    /// `route/to-do id`.
    pub pair: String,
    /// The tracker item, as last known (`WEB-12`).
    pub item: String,
    /// `todo_trashed`, `todo_archived`, `todo_deleted`, `todo_unrouted`, `issue_deleted`, `issue_moved`.
    pub reason: String,
    pub detail: String,
    /// A deleted side: the pair never syncs again.
    pub gone: bool,
    pub since: DateTime<Utc>,
}

/// What `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Where the numbers come from (the SQLite file, or the DynamoDB table and SQS queues).
    pub backend: String,
    /// Linked pairs that sync (detached ones are counted in `detached`).
    pub pairs_linked: usize,
    /// Linked pairs one of whose sides is gone, trashed, archived or out of the route.
    pub detached: Vec<DetachedPair>,
    pub pairs_pending: usize,
    /// PENDING pairs whose creator's lease is still running (a create in flight).
    pub claims_live: usize,
    /// PENDING pairs whose lease ran out (a crashed create; the next event for the to-do takes it over).
    pub claims_stale: usize,
    pub conflicts_open: usize,
    pub queue_depth: u64,
    pub dead_letters: usize,
    pub last_delivery: Vec<LastDelivery>,
    /// `None` when no public URL is known (or the check could not run).
    pub webhooks: Option<HooksReport>,
    pub webhooks_note: Option<String>,
    /// What needs attention (empty: nothing); `status --check` fails on any.
    pub problems: Vec<Problem>,
}

/// One thing that needs a person.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// `dead letters`, `open conflicts`, `webhook …`, `silent receiver jira`.
    pub what: String,
    pub detail: String,
    pub fix: String,
}

/// The sources whose receivers should hear something: Basecamp with routes, Jira and Bitbucket when configured.
fn expected_sources(config: &Config) -> Vec<&'static str> {
    let mut sources = Vec::new();
    if config.basecamp.is_some() && !config.routes.is_empty() {
        sources.push("basecamp");
    }
    if config.jira.is_some() {
        sources.push("jira");
    }
    if config.bitbucket.as_ref().is_some_and(|b| !b.repos.is_empty()) {
        sources.push("bitbucket");
    }
    sources
}

fn ago(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// The health rules over a report, at `now`.
pub fn problems(r: &StatusReport, config: &Config, now: DateTime<Utc>) -> Vec<Problem> {
    let mut out = Vec::new();
    if r.dead_letters > 0 {
        out.push(Problem {
            what: "dead letters".into(),
            detail: format!("{} event(s) failed too often and wait in the dead letters", r.dead_letters),
            fix: "`campbridge dead-letters list`, fix the cause, then `campbridge replay <delivery>` or \
                  `dead-letters redrive --all`"
                .into(),
        });
    }
    if r.conflicts_open > 0 {
        out.push(Problem {
            what: "open conflicts".into(),
            detail: format!(
                "{} conflict(s) wait for a person; their fields do not sync until settled",
                r.conflicts_open
            ),
            fix: "`campbridge conflicts list`, then `campbridge conflicts resolve <id> --take basecamp|tracker`".into(),
        });
    }
    for h in r.webhooks.iter().flat_map(|w| w.hooks.iter()).filter(|h| h.healthy == Some(false)) {
        out.push(Problem {
            what: format!("webhook {} {}", h.provider, h.target),
            detail: h.state.clone(),
            fix: h.fix.clone().unwrap_or_else(|| "run `campbridge webhooks register`".into()),
        });
    }
    if let Some(bound) = config.server.max_silence.and_then(|b| chrono::Duration::from_std(b).ok()) {
        for source in expected_sources(config) {
            let last = r.last_delivery.iter().find(|d| d.source == source);
            let detail = match last {
                None => format!("no delivery from {source} in the audit trail"),
                Some(d) if now - d.at > bound => {
                    format!("the last delivery from {source} was {} ago ({})", ago(now - d.at), d.delivery)
                }
                Some(_) => continue,
            };
            out.push(Problem {
                what: format!("silent receiver {source}"),
                detail: format!("{detail}, longer than [server] max_silence ({})", ago(bound)),
                fix: format!(
                    "check the {source} webhook (`campbridge webhooks check`) and the receiver's logs; if {source} is \
                     just quiet, raise max_silence"
                ),
            });
        }
    }
    out
}

/// Reads the store and queue (and, with the receivers' URLs and secrets, the webhook registrations).
pub async fn run(
    backend: &Backend,
    config: &Config,
    secrets: Option<Arc<dyn SecretStore>>,
    urls: &PublicUrls,
) -> Result<StatusReport, OpsError> {
    const ALL: usize = 1_000_000;
    let stores = &backend.stores;
    let linked_pairs = stores.pairs.list(None, Some(PairState::Linked), ALL).await?;
    let mut detached: Vec<DetachedPair> = linked_pairs
        .iter()
        .filter_map(|p| {
            let d = p.detached.as_ref()?;
            Some(DetachedPair {
                pair: p.key().to_string(),
                item: p.item.as_ref().map(|i| i.display_name().to_owned()).unwrap_or_default(),
                reason: d.reason.code().to_owned(),
                detail: d.reason.describe(),
                gone: d.reason.is_final(),
                since: d.since,
            })
        })
        .collect();
    detached.sort_by_key(|d| std::cmp::Reverse(d.since));
    let linked = linked_pairs.len() - detached.len();
    let pending = stores.pairs.list(None, Some(PairState::Pending), ALL).await?;
    let now = Utc::now();
    let claims_live = pending.iter().filter(|p| !p.lease_expired(now)).count();
    let mut by_source: BTreeMap<String, LastDelivery> = BTreeMap::new();
    for e in stores.audit.recent(None, 5_000).await? {
        let Some(d) = &e.delivery else { continue };
        let source = d.as_str().split(':').next().unwrap_or("unknown").to_owned();
        by_source.entry(source.clone()).or_insert(LastDelivery {
            source,
            at: e.at,
            delivery: d.as_str().to_owned(),
            action: e.action.clone(),
            subject: e.subject.clone(),
        });
    }
    let (webhooks, webhooks_note) = match secrets {
        Some(s) if !urls.unknown(config) => match webhooks::run(config, s, urls, Action::Check).await {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(format!("could not check: {e}"))),
        },
        _ => (None, Some(format!("unknown: {NO_PUBLIC_URL}"))),
    };
    let mut report = StatusReport {
        backend: backend.describe.clone(),
        pairs_linked: linked,
        detached,
        pairs_pending: pending.len(),
        claims_live,
        claims_stale: pending.len() - claims_live,
        conflicts_open: stores.conflicts.list(true, ALL).await?.len(),
        queue_depth: backend.queue.depth().await?,
        dead_letters: backend.queue.dead_letters().await?.len(),
        last_delivery: by_source.into_values().collect(),
        webhooks,
        webhooks_note,
        problems: Vec::new(),
    };
    report.problems = problems(&report, config, now);
    Ok(report)
}

/// The report as a table.
pub fn render(r: &StatusReport) -> String {
    let mut out = format!("Store: {}\n", r.backend);
    let row = |out: &mut String, k: &str, v: String, hint: &str| {
        out.push_str(&format!("  {k:<26} {v:>8}  {hint}\n"));
    };
    out.push_str("Pairs\n");
    row(&mut out, "linked", r.pairs_linked.to_string(), "");
    row(&mut out, "pending", r.pairs_pending.to_string(), "");
    row(&mut out, "  claims in flight", r.claims_live.to_string(), "");
    row(
        &mut out,
        "  claims expired",
        r.claims_stale.to_string(),
        if r.claims_stale > 0 { "a create stopped midway; the next event or `backfill` finishes it" } else { "" },
    );
    let gone = r.detached.iter().filter(|d| d.gone).count();
    row(
        &mut out,
        "detached",
        r.detached.len().to_string(),
        if r.detached.is_empty() { "" } else { "one side trashed, archived, moved or deleted: not synced (below)" },
    );
    row(&mut out, "  of which gone", gone.to_string(), if gone > 0 { "a side was deleted: final" } else { "" });
    for d in &r.detached {
        out.push_str(&format!(
            "    {} ⇄ {}  {}: {} (since {})\n",
            d.pair,
            d.item,
            if d.gone { "GONE" } else { "detached" },
            d.detail,
            d.since.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    out.push_str("Work\n");
    row(
        &mut out,
        "conflicts open",
        r.conflicts_open.to_string(),
        if r.conflicts_open > 0 { "see `campbridge conflicts list`" } else { "" },
    );
    row(&mut out, "queue depth", r.queue_depth.to_string(), "");
    row(
        &mut out,
        "dead letters",
        r.dead_letters.to_string(),
        if r.dead_letters > 0 { "see `campbridge dead-letters list`, then `replay`" } else { "" },
    );
    out.push_str("Last delivery per source\n");
    if r.last_delivery.is_empty() {
        out.push_str("  (none audited yet)\n");
    }
    for d in &r.last_delivery {
        out.push_str(&format!(
            "  {:<10} {}  {} {} ({})\n",
            d.source,
            d.at.format("%Y-%m-%d %H:%M:%S UTC"),
            d.action,
            d.subject,
            d.delivery
        ));
    }
    out.push_str("Webhooks\n");
    if let Some(note) = &r.webhooks_note {
        out.push_str(&format!("  {note}\n"));
    }
    for h in r.webhooks.iter().flat_map(|w| w.hooks.iter()) {
        out.push_str(&format!("  {} {:<9} {}: {}\n", mark(h.healthy), h.provider, h.target, h.state));
    }
    if r.problems.is_empty() {
        out.push_str("Nothing needs attention.\n");
    } else {
        out.push_str(&format!("Needs attention ({})\n", r.problems.len()));
        for p in &r.problems {
            out.push_str(&format!("  ✗ {}: {}\n    fix: {}\n", p.what, p.detail, p.fix));
        }
    }
    out
}
