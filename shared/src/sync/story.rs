//! The INFO lines that tell an operator what the sync did, in words: one per applied change, conflict and
//! signal (`WEB-12 ← to-do 9007: title "New title"`, `to-do 9007 completed from WEB-12 (Done)`). User
//! content is clipped to [`CLIP`] characters; conflicting values are named by their kind, never shown;
//! nothing here sees a credential.

use crate::domain::{BuildNote, Field, Job, Pair, PullRequestState, SignalKey, StatusCategory, TodoId};
use crate::ports::{DevItemPatch, Resolution, TodoPatch};

use super::plan::ConflictFound;

/// The most characters of a title (or other user text) a log line carries.
pub const CLIP: usize = 80;

/// `text` cut to [`CLIP`] characters, with `…` when cut.
pub fn clip(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(CLIP).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

/// The pair's tracker item by the name people know (its key), or what stands in for it.
pub fn item_name(pair: &Pair) -> &str {
    pair.item.as_ref().map_or("the tracker item", |i| i.display_name())
}

/// Jira's name for a status category.
fn category(status: StatusCategory) -> &'static str {
    match status {
        StatusCategory::New => "To Do",
        StatusCategory::Indeterminate => "In Progress",
        StatusCategory::Done => "Done",
    }
}

/// `WEB-12 ← to-do 9007: title "New title", status Done` — what was written to the tracker; `title` is the
/// summary written without the route's template.
pub fn tracker_write(item: &str, todo: TodoId, patch: &DevItemPatch, title: Option<&str>) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(t) = title.or(patch.summary.as_deref()) {
        parts.push(format!("title \"{}\"", clip(t)));
    }
    if patch.description.is_some() {
        parts.push("description".to_owned());
    }
    match &patch.assignee {
        Some(Some(_)) => parts.push("assignee".to_owned()),
        Some(None) => parts.push("unassigned".to_owned()),
        None => {}
    }
    match patch.due {
        Some(Some(d)) => parts.push(format!("due date {d}")),
        Some(None) => parts.push("due date cleared".to_owned()),
        None => {}
    }
    if let Some(p) = patch.priority {
        parts.push(format!("priority {}", p.jira_name()));
    }
    if !patch.labels_add.is_empty() || !patch.labels_remove.is_empty() {
        parts.push(format!("labels (+{} −{})", patch.labels_add.len(), patch.labels_remove.len()));
    }
    if !patch.components_add.is_empty() || !patch.components_remove.is_empty() {
        parts.push(format!("components (+{} −{})", patch.components_add.len(), patch.components_remove.len()));
    }
    if let Some(s) = patch.status {
        parts.push(format!("status {}", category(s)));
    }
    (!parts.is_empty()).then(|| format!("{item} ← to-do {todo}: {}", parts.join(", ")))
}

/// `to-do 9007 completed from WEB-12 (Done)`, or `to-do 9007 ← WEB-12: title "…"` — what was written to
/// Basecamp.
pub fn basecamp_write(item: &str, todo: TodoId, patch: &TodoPatch) -> Option<String> {
    let completion = patch.completed.map(|done| {
        if done { format!("completed from {item} (Done)") } else { format!("reopened from {item} (no longer Done)") }
    });
    if patch.title.is_none() && patch.assignees.is_none() {
        return completion.map(|c| format!("to-do {todo} {c}"));
    }
    let mut parts = Vec::new();
    if let Some(t) = &patch.title {
        parts.push(format!("title \"{}\"", clip(t)));
    }
    if let Some(a) = &patch.assignees {
        parts.push(format!("{} assignee(s)", a.len()));
    }
    if let Some(done) = patch.completed {
        parts.push(if done { "completed" } else { "reopened" }.to_owned());
    }
    Some(format!("to-do {todo} ← {item}: {}", parts.join(", ")))
}

/// A field's name in a sentence.
fn field_words(field: Field) -> &'static str {
    match field {
        Field::DueDate => "due date",
        other => other.as_str(),
    }
}

/// What kind of value a conflicting side holds, without the value itself (see `Fields::show`).
fn kind(field: Field, shown: &str) -> String {
    let count = |sep: char| shown.split(sep).filter(|s| !s.is_empty()).count();
    match field {
        Field::Title if shown.is_empty() => "an empty title".to_owned(),
        Field::Title => format!("a title of {} chars", shown.chars().count()),
        Field::Description => format!("a description of {shown}"),
        Field::Status => if shown == "done" { "done" } else { "not done" }.to_owned(),
        Field::Assignee if shown == "unassigned" => "no assignee".to_owned(),
        Field::Assignee => "an assignee".to_owned(),
        Field::DueDate | Field::Priority if shown == "none" => format!("no {}", field_words(field)),
        Field::DueDate => "a due date".to_owned(),
        Field::Priority => "a priority".to_owned(),
        Field::Labels | Field::Components => format!("{} {}", count(','), field_words(field)),
    }
}

/// `conflict on WEB-12 (to-do 9007): title changed on both sides (Basecamp: a title of 8 chars; Jira: a
/// title of 9 chars); policy basecamp-wins kept the Basecamp value`.
pub fn conflict(item: &str, todo: TodoId, policy: &str, c: &ConflictFound) -> String {
    let settled = match c.resolution {
        Resolution::TookBasecamp => "kept the Basecamp value",
        Resolution::TookTracker => "kept the Jira value",
        Resolution::Open => "left it open for a person (`campbridge conflicts`)",
    };
    format!(
        "conflict on {item} (to-do {todo}): {} changed on both sides (Basecamp: {}; Jira: {}); policy {policy} {settled}",
        field_words(c.field),
        kind(c.field, &c.basecamp_value),
        kind(c.field, &c.tracker_value),
    )
}

/// `to-do 9007 ← PR repo#5 opened by Jared Davis: "Fix auth (WEB-12)"` — a signal posted on a to-do.
pub fn signal(pair: &Pair, post_key: &SignalKey, job: &Job) -> String {
    let todo = pair.todo;
    match job {
        Job::PullRequestChanged { pull_request: pr, state, .. } => format!(
            "to-do {todo} ← PR {} {} by {}: \"{}\"",
            pr.pr,
            match state {
                PullRequestState::Open => "opened".to_owned(),
                other => other.as_str().to_lowercase(),
            },
            clip(&pr.author),
            clip(&pr.title)
        ),
        Job::BuildChanged { build, .. } => {
            let what = match post_key {
                SignalKey::Build { note: BuildNote::Failed, .. } => "failed",
                SignalKey::Build { note: BuildNote::Fixed, .. } => "fixed",
                SignalKey::Build { note: BuildNote::Passed, .. } => "passed",
                _ => "changed",
            };
            let branch = build.branch.as_deref().unwrap_or("?");
            format!("to-do {todo} ← build \"{}\" {what} on {}", clip(&build.name), clip(branch))
        }
        Job::IssueCommentChanged { .. } => format!("to-do {todo} ← PM comment from {}", item_name(pair)),
        _ => format!("to-do {todo} ← note from {} ({})", item_name(pair), clip(&post_key.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Priority;

    #[test]
    fn titles_are_clipped_and_writes_read_as_words() {
        let long = "x".repeat(200);
        assert_eq!(clip(&long).chars().count(), CLIP + 1);
        assert_eq!(clip("short"), "short");
        let patch = DevItemPatch {
            summary: Some("New title".into()),
            priority: Some(Priority::High),
            status: Some(StatusCategory::Done),
            ..Default::default()
        };
        let line = tracker_write("WEB-12", TodoId(9007), &patch, None).unwrap();
        assert_eq!(line, "WEB-12 ← to-do 9007: title \"New title\", priority High, status Done");
        assert_eq!(tracker_write("WEB-12", TodoId(1), &DevItemPatch::default(), None), None);
        let done = TodoPatch { completed: Some(true), ..Default::default() };
        assert_eq!(basecamp_write("WEB-12", TodoId(123), &done).unwrap(), "to-do 123 completed from WEB-12 (Done)");
        let retitled = TodoPatch { title: Some(long), ..Default::default() };
        let line = basecamp_write("WEB-12", TodoId(123), &retitled).unwrap();
        assert!(line.starts_with("to-do 123 ← WEB-12: title \"xxx") && line.ends_with("…\""), "{line}");
    }

    #[test]
    fn a_conflict_names_field_kinds_and_resolution_but_not_the_values() {
        let c = ConflictFound {
            field: Field::Title,
            basecamp_value: "PM secret plan".into(),
            tracker_value: "Dev title".into(),
            resolution: Resolution::TookBasecamp,
        };
        let line = conflict("WEB-12", TodoId(5), "basecamp-wins", &c);
        assert_eq!(
            line,
            "conflict on WEB-12 (to-do 5): title changed on both sides (Basecamp: a title of 14 chars; Jira: a \
             title of 9 chars); policy basecamp-wins kept the Basecamp value"
        );
        assert!(!line.contains("PM secret plan") && !line.contains("Dev title"));
    }
}
