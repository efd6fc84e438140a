//! `campbridge conflicts list|show|resolve`: the conflict log, and settling an open one by hand through
//! [`shared::sync::Engine::resolve_conflict`].

use shared::ports::{Conflict, ConflictLog, Resolution};
use shared::sync::{Engine, Resolved, Side};

use super::OpsError;

/// Conflicts, newest first; only open ones unless `all`.
pub async fn list(log: &dyn ConflictLog, all: bool) -> Result<Vec<Conflict>, OpsError> {
    Ok(log.list(!all, 10_000).await?)
}

/// One conflict by id (open or settled).
pub async fn show(log: &dyn ConflictLog, id: &str) -> Result<Conflict, OpsError> {
    log.list(false, 100_000)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| OpsError::Usage(format!("no conflict {id:?} (see `campbridge conflicts list --all`)")))
}

/// Settles `id` by keeping `take`'s value.
pub async fn resolve(engine: &Engine, id: &str, take: Side) -> Result<Resolved, OpsError> {
    engine.resolve_conflict(id, take).await.map_err(|e| OpsError::Other(anyhow::anyhow!(e)))
}

fn resolution(r: &Resolution) -> &'static str {
    match r {
        Resolution::TookBasecamp => "took basecamp",
        Resolution::TookTracker => "took tracker",
        Resolution::Open => "OPEN",
    }
}

/// The list as a table.
pub fn render_list(conflicts: &[Conflict]) -> String {
    if conflicts.is_empty() {
        return "No conflicts.\n".to_owned();
    }
    let mut out = format!("{:<40} {:<20} {:<11} {:<14} {}\n", "id", "pair", "field", "resolution", "at");
    for c in conflicts {
        out.push_str(&format!(
            "{:<40} {:<20} {:<11} {:<14} {}\n",
            c.id,
            c.pair.to_string(),
            c.field.to_string(),
            resolution(&c.resolution),
            c.at.format("%Y-%m-%d %H:%M")
        ));
    }
    out
}

/// One conflict in full.
pub fn render_one(c: &Conflict) -> String {
    format!(
        "conflict   {}\npair       {}\nitem       {}\nfield      {}\nbasecamp   {:?}\ntracker    {:?}\npolicy     {}\nresolution {}\nat         {}\n{}",
        c.id,
        c.pair,
        c.item.as_ref().map(ToString::to_string).unwrap_or_default(),
        c.field,
        c.basecamp_value,
        c.tracker_value,
        c.policy,
        resolution(&c.resolution),
        c.at.to_rfc3339(),
        if c.resolution == Resolution::Open {
            format!("settle it: campbridge conflicts resolve {} --take basecamp|tracker\n", c.id)
        } else {
            String::new()
        }
    )
}

/// What `resolve` did.
pub fn render_resolved(r: &Resolved) -> String {
    format!(
        "Resolved {}: kept the {} {} ({:?}){}.\n",
        r.conflict.id,
        r.took.as_str(),
        r.conflict.field,
        r.value,
        if r.wrote { format!(", written to the {} side", r.took.other().as_str()) } else { String::new() }
    )
}

/// Parses `--take`.
pub fn side(take: &str) -> Result<Side, OpsError> {
    match take {
        "basecamp" => Ok(Side::Basecamp),
        "tracker" | "jira" => Ok(Side::Tracker),
        other => Err(OpsError::Usage(format!("--take {other:?}: use basecamp or tracker"))),
    }
}
