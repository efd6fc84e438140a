//! `campbridge explain <to-do id | Jira key | delivery id>`: why an item synced (or did not), from what
//! the store kept — the pair, and in time order every audited decision and write (created, updated,
//! filtered, detached, comment and signal entries, assignee fallbacks, failed and postponed attempts),
//! every conflict, and any dead letter about it. The same on SQLite and DynamoDB: it reads only the ports.
//! Echoes of campbridge's own writes are not audited (they are the frequent case; see the metrics).

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::config::Config;
use shared::domain::{Job, Pair, RecordRef};
use shared::sync::audit_subject;

use super::{Backend, OpsError};

/// How far back the audit trail is read when a delivery id is asked about.
const AUDIT_SCAN: usize = 20_000;

/// One pair the question led to.
#[derive(Debug, Clone, Serialize)]
pub struct PairView {
    pub pair: String,
    pub item: Option<String>,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub open_conflicts: Vec<String>,
}

/// One thing that happened, in words.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    /// `created`, `updated`, `filtered`, `failed`, `conflict`, `dead_letter`, …
    pub action: String,
    pub subject: String,
    pub delivery: Option<String>,
    pub text: String,
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub asked: String,
    pub pairs: Vec<PairView>,
    /// Oldest first.
    pub events: Vec<Event>,
}

/// Explains `what`: a to-do id (digits), a Jira key (`WEB-12`) or a delivery id (`basecamp:…`, `jira:…`,
/// `bitbucket:…`, `backfill:…`).
pub async fn run(backend: &Backend, config: &Config, what: &str) -> Result<Explanation, OpsError> {
    let what = what.trim();
    let stores = &backend.stores;
    let all_pairs = stores.pairs.list(None, None, 100_000).await?;
    let mut subjects: Vec<String> = Vec::new();
    let pairs: Vec<Pair>;
    let mut deliveries: Vec<String> = Vec::new();
    if !what.is_empty() && what.bytes().all(|b| b.is_ascii_digit()) {
        pairs = all_pairs.iter().filter(|p| p.todo.0.to_string() == what).cloned().collect();
        // A to-do never paired (filtered, or still failing) is audited under `<route>/<id>` all the same.
        subjects.extend(route_ids(config, &all_pairs).into_iter().map(|r| format!("{r}/{what}")));
    } else if what.contains(':') {
        deliveries.push(what.to_owned());
        for e in stores.audit.recent(None, AUDIT_SCAN).await? {
            if e.delivery.as_ref().is_some_and(|d| d.as_str() == what) && !subjects.contains(&e.subject) {
                subjects.push(e.subject);
            }
        }
        for d in backend.queue.dead_letters().await? {
            if let Ok(job) = Job::from_wire(&d.body)
                && job.delivery().as_str() == what
                && let Some(s) = audit_subject(&job.record())
                && !subjects.contains(&s)
            {
                subjects.push(s);
            }
        }
        pairs = all_pairs
            .iter()
            .filter(|p| {
                subjects.contains(&p.key().to_string())
                    || p.item.as_ref().is_some_and(|i| subjects.contains(&i.index_key()))
            })
            .cloned()
            .collect();
    } else {
        let key = what.to_ascii_uppercase();
        pairs =
            all_pairs.iter().filter(|p| p.item.as_ref().is_some_and(|i| i.display_name() == key)).cloned().collect();
    }
    for p in &pairs {
        subjects.push(p.key().to_string());
        if let Some(item) = &p.item {
            subjects.push(item.index_key());
        }
    }
    subjects.sort();
    subjects.dedup();

    let mut events = Vec::new();
    for subject in &subjects {
        for e in stores.audit.recent(Some(subject), 10_000).await? {
            events.push(Event {
                at: e.at,
                action: e.action,
                subject: e.subject,
                delivery: e.delivery.map(|d| d.as_str().to_owned()),
                text: e.detail,
            });
        }
    }
    let keys: Vec<_> = pairs.iter().map(Pair::key).collect();
    for c in stores.conflicts.list(false, 100_000).await? {
        if keys.contains(&c.pair) {
            let settled = match c.resolution {
                shared::ports::Resolution::TookBasecamp => "settled by taking Basecamp's value".to_owned(),
                shared::ports::Resolution::TookTracker => "settled by taking the tracker's value".to_owned(),
                shared::ports::Resolution::Open => {
                    format!("left open for a person (`campbridge conflicts resolve {} --take basecamp|tracker`)", c.id)
                }
            };
            events.push(Event {
                at: c.at,
                action: "conflict".into(),
                subject: c.pair.to_string(),
                delivery: None,
                text: format!(
                    "both sides changed the {}: Basecamp {:?}, tracker {:?}; policy {}, {settled}",
                    c.field, c.basecamp_value, c.tracker_value, c.policy
                ),
            });
        }
    }
    for d in backend.queue.dead_letters().await? {
        let Ok(job) = Job::from_wire(&d.body) else { continue };
        let about = audit_subject(&job.record());
        let by_delivery = deliveries.iter().any(|x| x == job.delivery().as_str());
        let by_item = match job.record() {
            RecordRef::Issue { key, .. } | RecordRef::IssueComment { key, .. } => {
                pairs.iter().any(|p| p.item.as_ref().is_some_and(|i| i.display_name() == key.as_str()))
            }
            _ => false,
        };
        if by_delivery || by_item || about.as_ref().is_some_and(|s| subjects.contains(s)) {
            events.push(Event {
                at: d.dead_at,
                action: "dead_letter".into(),
                subject: about.unwrap_or_else(|| job.record().group_id()),
                delivery: Some(job.delivery().as_str().to_owned()),
                text: format!(
                    "moved to the dead letters after {} tries (message {}); fix the cause, then \
                     `campbridge replay {}`",
                    d.receive_count,
                    d.message_id,
                    job.delivery().as_str()
                ),
            });
        }
    }
    events.sort_by_key(|e| e.at);
    let pairs = pairs
        .iter()
        .map(|p| PairView {
            pair: p.key().to_string(),
            item: p.item.as_ref().map(|i| i.display_name().to_owned()),
            state: p.state.as_str().to_ascii_lowercase(),
            created_at: p.created_at,
            updated_at: p.updated_at,
            open_conflicts: p.open_conflicts.iter().map(ToString::to_string).collect(),
        })
        .collect();
    Ok(Explanation { asked: what.to_owned(), pairs, events })
}

/// Every route id: the config's and the pairs' (a to-do's audit subject names its route).
fn route_ids(config: &Config, pairs: &[Pair]) -> Vec<String> {
    let mut ids: Vec<String> = config.routes.iter().map(|r| r.id.to_string()).collect();
    ids.extend(pairs.iter().map(|p| p.route.to_string()));
    ids.sort();
    ids.dedup();
    ids
}

/// The explanation in words.
pub fn render(x: &Explanation) -> String {
    let mut out = String::new();
    if x.pairs.is_empty() && x.events.is_empty() {
        return format!(
            "Nothing about {:?} in the store: no pair, no audited decision, no conflict, no dead letter. \
             Was the webhook delivered (`campbridge status`: last delivery per source; `webhooks check`)?\n",
            x.asked
        );
    }
    for p in &x.pairs {
        let item = p.item.as_deref().unwrap_or("no tracker item yet");
        out.push_str(&format!(
            "pair {} ↔ {item}: {}, paired {}, last saved {}",
            p.pair,
            p.state,
            p.created_at.format("%Y-%m-%d %H:%M:%S"),
            p.updated_at.format("%Y-%m-%d %H:%M:%S")
        ));
        if !p.open_conflicts.is_empty() {
            out.push_str(&format!("; open conflicts on {}", p.open_conflicts.join(", ")));
        }
        out.push('\n');
    }
    if x.pairs.is_empty() {
        out.push_str(&format!("{} is not paired.\n", x.asked));
    }
    for e in &x.events {
        let delivery = e.delivery.as_ref().map(|d| format!(" (delivery {d})")).unwrap_or_default();
        out.push_str(&format!(
            "{}  {:<18} {:<12} {}{delivery}\n",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.subject,
            e.action,
            e.text
        ));
    }
    out
}
