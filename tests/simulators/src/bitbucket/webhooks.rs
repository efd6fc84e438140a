//! Bitbucket webhook bodies (shaped like `cloud-webhook-*.json`) and deliveries with
//! `X-Event-Key`, `X-Request-UUID` (stable across retries), `X-Hook-UUID` (no braces),
//! `X-Attempt-Number` and `X-Hub-Signature: sha256=…` when the hook has a secret.

use std::sync::Weak;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::Inner;
use super::render::{self, overlay};
use super::state::{BuildStatus, State, User};
use crate::common::json::fixture;
use crate::common::signing::hub_signature;
use crate::common::webhooks::DeliveryObserver;
use crate::common::{DeliveryRecord, Outgoing};

fn owner(state: &State) -> User {
    state.users.first().cloned().unwrap_or(User {
        uuid: String::new(),
        account_id: String::new(),
        display_name: String::new(),
        nickname: String::new(),
    })
}

/// `pullrequest:*` body for pull request `id`.
pub fn pullrequest_body(sim: &Inner, state: &State, event_key: &str, id: u64, actor: &User) -> Option<Value> {
    let template = fixture(match event_key {
        "pullrequest:created" => render::WH_CREATED,
        "pullrequest:fulfilled" => render::WH_FULFILLED,
        "pullrequest:rejected" => render::WH_REJECTED,
        _ => render::WH_UPDATED,
    });
    let pr = state.pullrequests.get(&id)?;
    let author = state.user(&pr.author)?;
    let closed_by = pr.closed_by.as_deref().and_then(|c| state.user(c));
    let mut ours = render::pullrequest(&sim.ctx, pr, author, closed_by);
    ours["rendered"] = json!({
        "title": {"raw": pr.title, "markup": "markdown", "html": format!("<p>{}</p>", pr.title), "type": "rendered"},
        "description": {"raw": pr.description, "markup": "markdown", "html": format!("<p>{}</p>", pr.description), "type": "rendered"},
    });
    ours["reviewers"] = json!([]);
    ours["participants"] = json!([]);
    ours["draft"] = json!(false);
    ours["queued"] = json!(false);
    Some(json!({
        "actor": overlay(&template["actor"], &render::account(&sim.ctx, actor)),
        "repository": render::webhook_repository(&sim.ctx, &template["repository"], &owner(state)),
        "pullrequest": overlay(&template["pullrequest"], &ours),
    }))
}

/// `repo:commit_status_created|updated` body.
pub fn status_body(sim: &Inner, state: &State, created: bool, status: &BuildStatus, actor: &User) -> Value {
    let template = fixture(if created { render::WH_STATUS_CREATED } else { render::WH_STATUS_UPDATED });
    let rendered = render::build_status(&sim.ctx, status);
    let mut commit_status = overlay(&template["commit_status"], &rendered);
    // The docs template is trimmed; the real event carries the REST object's fields, `refname` and
    // `commit` included (reference §3.2), and the sync relies on `refname` to find the branch.
    if let (Some(out), Some(full)) = (commit_status.as_object_mut(), rendered.as_object()) {
        for key in ["refname", "commit"] {
            if let Some(v) = full.get(key) {
                out.insert(key.to_owned(), v.clone());
            }
        }
    }
    json!({
        "actor": overlay(&template["actor"], &render::account(&sim.ctx, actor)),
        "repository": render::webhook_repository(&sim.ctx, &template["repository"], &owner(state)),
        "commit_status": commit_status,
    })
}

/// `repo:push` body for one branch update.
pub fn push_body(sim: &Inner, state: &State, branch: &str, old: Option<&str>, new: &str, actor: &User) -> Value {
    let template = fixture(render::WH_PUSH);
    let mut body = json!({
        "actor": overlay(&template["actor"], &render::account(&sim.ctx, actor)),
        "repository": render::webhook_repository(&sim.ctx, &template["repository"], &owner(state)),
        "push": template["push"].clone(),
    });
    if let Some(change) = body.pointer_mut("/push/changes/0") {
        change["new"]["name"] = branch.into();
        change["new"]["target"]["hash"] = new.into();
        change["new"]["target"]["message"] = format!("Update {branch}\n").into();
        change["old"] = match old {
            Some(hash) => {
                let mut previous = change["new"].clone();
                previous["target"]["hash"] = hash.into();
                previous
            }
            None => Value::Null,
        };
        change["created"] = old.is_none().into();
        change["commits"] = json!([change["new"]["target"].clone()]);
    }
    body
}

/// Queues one delivery per active hook subscribed to `event_key`.
pub fn emit(sim: &Inner, state: &State, event_key: &str, body: &Value) {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    for hook in state.hooks.values().filter(|h| h.active && h.events.iter().any(|e| e == event_key)) {
        let mut headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("User-Agent".to_owned(), "Bitbucket-Webhooks/2.0".to_owned()),
            ("X-Event-Key".to_owned(), event_key.to_owned()),
            ("X-Request-UUID".to_owned(), uuid::Uuid::new_v4().to_string()),
            ("X-Hook-UUID".to_owned(), hook.uuid.trim_matches(|c| c == '{' || c == '}').to_owned()),
        ];
        if let Some(secret) = hook.secret.as_deref() {
            headers.push(("X-Hub-Signature".to_owned(), hub_signature(secret, &bytes)));
        }
        sim.dispatcher.enqueue(Outgoing {
            hook_id: hook.uuid.clone(),
            event: event_key.to_owned(),
            url: hook.url.clone(),
            headers,
            body: bytes.clone(),
        });
    }
}

/// Skips deliveries for hooks removed or deactivated meanwhile.
pub struct Observer(pub Weak<Inner>);

#[async_trait]
impl DeliveryObserver for Observer {
    async fn should_send(&self, outgoing: &Outgoing) -> bool {
        let Some(sim) = self.0.upgrade() else { return false };
        sim.state.lock().await.hooks.get(&outgoing.hook_id).is_some_and(|h| h.active)
    }

    async fn delivered(&self, _outgoing: &Outgoing, _last: &DeliveryRecord) {}
}
