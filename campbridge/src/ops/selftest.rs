//! `campbridge selftest --route R`: the validation loop on a sandbox to-do in the real accounts, run
//! through the engine directly (no webhook needed): create → exactly one issue; rename → mirrored once;
//! a to-do in an unrouted list → nothing; both sides edit the title → the route's conflict policy is
//! applied and logged. Then it cleans up after itself: a conflict it left open (the `manual` policy) is
//! settled, the sandbox issues are deleted in Jira, the sandbox to-dos trashed in Basecamp (completed when
//! trashing is refused), and its pairs removed from the store, so `status` and `conflicts list` show
//! nothing of it (the audit trail keeps the story).

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Serialize;
use shared::clients::basecamp::{BasecampClient, NewTodo, TodoChanges};
use shared::config::Config;
use shared::domain::{DeliveryId, DevItemRef, Job, PairKey, Route, RouteId, TodoId, TodolistId};
use shared::ports::Resolution;
use shared::ports::{DevItemPatch, SecretStore};
use shared::sync::{Engine, Outcome, Side, Skip};

use super::{OpsError, mark, secret};

/// One step of the loop.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: &'static str,
    /// `None`: skipped (the detail says why).
    pub ok: Option<bool>,
    pub detail: String,
}

/// The loop's results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub steps: Vec<Step>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.ok != Some(false))
    }
    fn add(&mut self, name: &'static str, ok: Option<bool>, detail: impl Into<String>) {
        self.steps.push(Step { name, ok, detail: detail.into() });
    }
}

fn routed(route: &Route, list: &str) -> bool {
    route.filter.todolists.is_empty() || route.filter.todolists.iter().any(|g| g.matches(list))
}

struct Sandbox<'a> {
    engine: &'a Engine,
    route: &'a Route,
    project: shared::domain::ProjectId,
    tag: String,
    n: usize,
}

impl Sandbox<'_> {
    async fn sync(&mut self, todo: i64) -> Result<Outcome, String> {
        self.n += 1;
        let job = Job::TodoChanged {
            delivery: DeliveryId(format!("selftest:{}:{}", self.tag, self.n)),
            route: self.route.id.clone(),
            project: self.project,
            todo: TodoId(todo),
            event: "selftest".to_owned(),
            received_at: chrono::Utc::now(),
        };
        self.engine.sync_record(&[job]).await.map_err(|e| e.to_string())
    }
}

/// Runs the loop on route `route_id` and cleans up.
pub async fn run(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    engine: &Engine,
    route_id: &RouteId,
) -> Result<Report, OpsError> {
    let route = engine
        .settings
        .routes
        .iter()
        .find(|r| &r.id == route_id)
        .ok_or_else(|| OpsError::Usage(format!("no route {route_id:?}")))?
        .clone();
    let client = super::basecamp_client(config, secrets.clone()).await?;
    let project = client
        .project(route.project)
        .await?
        .ok_or_else(|| OpsError::Usage(format!("project {} is not visible: run `campbridge doctor`", route.project)))?;
    let mut lists = Vec::new();
    for set in project.todoset_ids() {
        lists.extend(client.todolists(set).await?);
    }
    let target = lists
        .iter()
        .find(|l| routed(&route, &l.title))
        .ok_or_else(|| OpsError::Usage("no to-do list of the project matches the route's lists".to_owned()))?;
    let outside = lists.iter().find(|l| !routed(&route, &l.title));
    let tag = format!("{:x}", chrono::Utc::now().timestamp_millis());
    let marker = route.filter.marker.as_ref().map(|m| format!(" {m}")).unwrap_or_default();
    let mut sandbox = Sandbox { engine, route: &route, project: route.project, tag: tag.clone(), n: 0 };
    let mut report = Report::default();
    let mut todos: Vec<i64> = Vec::new();
    let mut items: Vec<DevItemRef> = Vec::new();

    let result =
        steps(&client, &mut sandbox, target.id, outside, &tag, &marker, &mut todos, &mut items, &mut report).await;
    if let Err(e) = result {
        report.add("run", Some(false), format!("stopped: {e}"));
    }
    let keys: Vec<PairKey> = todos.iter().map(|t| PairKey { route: route.id.clone(), todo: TodoId(*t) }).collect();
    let settled = settle_open_conflicts(engine, &keys).await;
    cleanup(config, secrets.as_ref(), &client, &todos, &items, settled, &mut report).await;
    let removed = remove_pairs(engine, &keys).await;
    if let Some(step) = report.steps.iter_mut().find(|s| s.name == "clean up") {
        step.ok = Some(step.ok == Some(true) && removed.is_ok());
        step.detail.push_str(&match removed {
            Ok(0) => "; no pair to remove".to_owned(),
            Ok(n) => format!("; {n} sandbox pair(s) removed from the store"),
            Err(e) => format!("; {e}"),
        });
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)] // one call site; the loop's state, spelled out
async fn steps(
    client: &BasecampClient,
    sandbox: &mut Sandbox<'_>,
    list: i64,
    outside: Option<&shared::clients::basecamp::Todolist>,
    tag: &str,
    marker: &str,
    todos: &mut Vec<i64>,
    items: &mut Vec<DevItemRef>,
    report: &mut Report,
) -> Result<(), OpsError> {
    let title = format!("campbridge selftest {tag}{marker}");
    let todo = client.create_todo(TodolistId(list), &NewTodo { content: title.clone(), ..NewTodo::default() }).await?;
    todos.push(todo.id);

    // 1. create → exactly one issue, and a repeat creates nothing.
    let item = match sandbox.sync(todo.id).await {
        Ok(Outcome::Created { item, .. }) => item,
        other => {
            let got = match other {
                Ok(outcome) => outcome.to_string(),
                Err(e) => format!("an error: {e}"),
            };
            report.add("create → one issue", Some(false), format!("expected a created issue, got {got}"));
            return Ok(());
        }
    };
    items.push(item.clone());
    let again = sandbox.sync(todo.id).await;
    let key = PairKey { route: sandbox.route.id.clone(), todo: TodoId(todo.id) };
    let paired = sandbox.engine.pairs.get(&key).await?.and_then(|p| p.item);
    let once = !matches!(again, Ok(Outcome::Created { .. })) && paired.as_ref() == Some(&item);
    report.add("create → one issue", Some(once), format!("to-do {} → {item}", todo.id));

    // 2. rename → mirrored once.
    let renamed = format!("campbridge selftest {tag} renamed{marker}");
    client
        .update_todo(TodoId(todo.id), &TodoChanges { content: Some(renamed.clone()), ..TodoChanges::default() })
        .await?;
    let first = sandbox.sync(todo.id).await;
    let second = sandbox.sync(todo.id).await;
    let summary = sandbox.engine.tracker.get_item(&item).await.ok().flatten().map(|i| i.summary).unwrap_or_default();
    let mirrored = summary == sandbox.route.summary_for(&renamed);
    let once = matches!(first, Ok(Outcome::Updated { .. })) && matches!(second, Ok(Outcome::Skipped(Skip::Unchanged)));
    report.add("update → mirrored once", Some(mirrored && once), format!("{item} is now {summary:?}"));

    // 3. a to-do outside the route → nothing.
    match outside {
        Some(l) => {
            let other = client
                .create_todo(
                    TodolistId(l.id),
                    &NewTodo { content: format!("campbridge selftest {tag} outside"), ..NewTodo::default() },
                )
                .await?;
            todos.push(other.id);
            let outcome = sandbox.sync(other.id).await;
            let key = PairKey { route: sandbox.route.id.clone(), todo: TodoId(other.id) };
            let none = sandbox.engine.pairs.get(&key).await?.is_none();
            let filtered = matches!(outcome, Ok(Outcome::Skipped(Skip::Filtered(_))));
            report.add(
                "filter-negative → nothing",
                Some(none && filtered),
                format!("to-do in {:?}: {}", l.title, outcome.map(|o| o.to_string()).unwrap_or_else(|e| e)),
            );
        }
        None => report.add("filter-negative → nothing", None, "every to-do list is routed; nothing to test"),
    }

    // 4. permission edge: what doctor checks (a refused assignment falls back to triage, audited).
    report.add(
        "permission edge → clear message",
        None,
        "covered by `campbridge doctor` (PROVIDER_AUTH_REQUIRED / PROVIDER_SCOPE_UNAVAILABLE with a fix)",
    );

    // 5. both sides edit the title → the policy is applied and logged.
    client
        .update_todo(
            TodoId(todo.id),
            &TodoChanges {
                content: Some(format!("campbridge selftest {tag} PM side{marker}")),
                ..TodoChanges::default()
            },
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(1100)).await; // a later tracker edit, on a second clock
    let patch = DevItemPatch {
        summary: Some(sandbox.route.summary_for(&format!("campbridge selftest {tag} dev side"))),
        ..DevItemPatch::default()
    };
    sandbox.engine.tracker.update_item(&item, &patch).await.map_err(|e| OpsError::Other(anyhow::anyhow!(e)))?;
    let outcome = sandbox.sync(todo.id).await;
    let logged = sandbox.engine.conflicts.list(false, 1000).await?.into_iter().find(|c| c.pair == key);
    match logged {
        Some(c) => report.add(
            "conflict → policy applied",
            Some(true),
            format!("{} conflict logged; policy {} {}", c.field, c.policy, resolution_words(&c.resolution)),
        ),
        None => report.add(
            "conflict → policy applied",
            Some(false),
            format!("no conflict logged ({})", outcome.map(|o| o.to_string()).unwrap_or_else(|e| e)),
        ),
    }
    Ok(())
}

fn resolution_words(r: &Resolution) -> &'static str {
    match r {
        Resolution::TookBasecamp => "kept the Basecamp value",
        Resolution::TookTracker => "kept the tracker value",
        Resolution::Open => "left it open for a person",
    }
}

/// Settles the conflicts the loop left open on its pairs (the `manual` policy), keeping the Basecamp side,
/// while the sandbox records still exist; the notes say what was done.
async fn settle_open_conflicts(engine: &Engine, keys: &[PairKey]) -> (bool, Vec<String>) {
    let open = match engine.conflicts.list(true, 10_000).await {
        Ok(list) => list,
        Err(e) => {
            return (
                false,
                vec![format!("could not read the open conflicts ({e}): settle them with `campbridge conflicts`")],
            );
        }
    };
    let (mut ok, mut notes) = (true, Vec::new());
    for c in open.into_iter().filter(|c| keys.contains(&c.pair)) {
        match engine.resolve_conflict(&c.id, Side::Basecamp).await {
            Ok(_) => notes.push(format!("open {} conflict {} settled", c.field, c.id)),
            Err(e) => {
                ok = false;
                notes.push(format!("conflict {} NOT settled ({e}): `campbridge conflicts resolve {}`", c.id, c.id));
            }
        }
    }
    (ok, notes)
}

/// Removes the sandbox pairs (re-reading when a worker saved one meanwhile); how many were removed.
async fn remove_pairs(engine: &Engine, keys: &[PairKey]) -> Result<usize, String> {
    let mut removed = 0;
    for key in keys {
        let mut gone = false;
        for _ in 0..10 {
            let pair = engine.pairs.get(key).await.map_err(|e| format!("pair {key} NOT removed ({e})"))?;
            let Some(pair) = pair else {
                gone = true;
                break;
            };
            if engine.pairs.remove(key, pair.version).await.map_err(|e| format!("pair {key} NOT removed ({e})"))? {
                removed += 1;
                gone = true;
                break;
            }
            // A worker (a late webhook of the sandbox) saved it meanwhile.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if !gone {
            return Err(format!("pair {key} kept changing and was NOT removed"));
        }
    }
    Ok(removed)
}

async fn cleanup(
    config: &Config,
    secrets: &dyn SecretStore,
    client: &BasecampClient,
    todos: &[i64],
    items: &[DevItemRef],
    (settled_ok, settled): (bool, Vec<String>),
    report: &mut Report,
) {
    let http =
        shared::outbound::OutboundGuard::for_config(config).client_builder().timeout(Duration::from_secs(20)).build();
    let mut ok = settled_ok;
    let mut notes = settled;
    if let (Ok(http), Some(jira)) = (&http, &config.jira) {
        let token = secret(secrets, jira.api_token.name()).await;
        for item in items {
            let deleted = match &token {
                Ok(t) => http
                    .delete(jira.base_url.join(&format!("rest/api/3/issue/{}", item.display_name())))
                    .basic_auth(&jira.email, Some(t.expose_secret()))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                Err(_) => false,
            };
            ok &= deleted;
            notes.push(format!("{item} {}", if deleted { "deleted" } else { "NOT deleted: delete it by hand" }));
        }
    }
    if let (Ok(http), Some(bc)) = (&http, &config.basecamp) {
        let token = secret(secrets, bc.access_token.name()).await;
        for id in todos {
            let trashed = match &token {
                Ok(t) => http
                    .put(format!("{}/{}/recordings/{id}/status/trashed.json", bc.base_url.as_str(), bc.account_id))
                    .bearer_auth(t.expose_secret())
                    .header(reqwest::header::USER_AGENT, bc.user_agent.as_str())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                Err(_) => false,
            };
            if trashed {
                notes.push(format!("to-do {id} trashed"));
            } else if client.complete(TodoId(*id)).await.is_ok() {
                notes.push(format!("to-do {id} completed (trashing refused; trash it by hand)"));
            } else {
                ok = false;
                notes.push(format!("to-do {id} left as is: trash it by hand"));
            }
        }
    }
    report.add("clean up", Some(ok), notes.join("; "));
}

/// The loop as people read it.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    for s in &r.steps {
        out.push_str(&format!("{} {}: {}\n", mark(s.ok), s.name, s.detail));
    }
    out.push_str(if r.ok() { "Selftest passed.\n" } else { "Selftest FAILED.\n" });
    out
}
