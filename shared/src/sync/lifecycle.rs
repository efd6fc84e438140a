//! Lifecycle: what happens to a linked pair when one side is trashed, archived, deleted, moved out of the
//! route, or comes back (docs/lifecycle.md). Pure: [`assess`] looks at the pair and the fresh reads, the
//! executor acts on its [`Step`], and [`detach_notice`] / [`resume_notice`] word the one comment the other
//! side gets.
//!
//! Rules: a pair whose to-do is trashed or archived, no longer taken by the route, or whose tracker item
//! moved out of the route's project is *detached*: nothing is synced while it is, events are skipped and
//! audited, and `status` lists it. When the cause goes away (restored, moved back) it is *resumed* and syncs
//! from its snapshot as usual. A deleted side is final: the pair stays detached, and nothing is recreated.
//! Each detach and each resume posts exactly one comment on the side that is still there.

use crate::domain::TrackerTarget;
use crate::domain::{
    DetachReason, Detachment, DevItem, FilteredOut, Notice, NoticeSide, Pair, RecordingStatus, Route, Todo, escape_html,
};

use super::decide::Fresh;
use super::plan::Side;

/// What the executor should do before (or instead of) deciding field writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Both sides are where the route wants them: sync fields as usual.
    Attached,
    /// Read this side first: it decides whether a detached pair comes back.
    Fetch(Side),
    /// One side went away: stop syncing, tell the other side.
    Detach(DetachReason),
    /// The cause of the detachment is gone: say so, then sync as usual.
    Resume,
    /// Still detached: skip this event.
    Stay,
}

/// Why the route cannot sync `todo` as it is now, if it cannot.
pub fn todo_reason(route: &Route, todo: &Todo) -> Option<DetachReason> {
    match todo.status {
        RecordingStatus::Trashed => return Some(DetachReason::TodoTrashed),
        RecordingStatus::Archived => return Some(DetachReason::TodoArchived),
        RecordingStatus::Active => {}
    }
    match route.admits(todo) {
        Ok(()) => None,
        Err(FilteredOut::Inactive) => Some(DetachReason::TodoArchived),
        Err(why) => Some(DetachReason::TodoUnrouted { why: why.to_string() }),
    }
}

/// Why the route cannot sync `item` as it is now (moved to another project), if it cannot.
pub fn item_reason(route: &Route, item: &DevItem) -> Option<DetachReason> {
    let TrackerTarget::Jira { project, .. } = &route.target;
    let crate::domain::DevItemRef::Jira { key, .. } = &item.item;
    (key.project() != project.as_str()).then(|| DetachReason::IssueMoved { key: key.clone() })
}

/// The step for a linked `pair`, given what has been read of each side for a job from `changed`.
pub fn assess(route: &Route, pair: &Pair, changed: Side, todo: Fresh<&Todo>, item: Fresh<&DevItem>) -> Step {
    let todo_fact = match todo {
        Fresh::NotFetched => None,
        Fresh::Gone => Some(Some(DetachReason::TodoDeleted)),
        Fresh::Found(t) => Some(todo_reason(route, t)),
    };
    let item_fact = match item {
        Fresh::NotFetched => None,
        Fresh::Gone => Some(Some(DetachReason::IssueDeleted)),
        Fresh::Found(i) => Some(item_reason(route, i)),
    };
    let Some(current) = &pair.detached else {
        return match (todo_fact, item_fact) {
            (Some(Some(reason)), _) | (_, Some(Some(reason))) => Step::Detach(reason),
            _ => Step::Attached,
        };
    };
    if current.reason.is_final() {
        return Step::Stay;
    }
    // Only the side that went away can bring the pair back; the other side's events wait.
    let (causing, fact) =
        if current.reason.on_todo_side() { (Side::Basecamp, todo_fact) } else { (Side::Tracker, item_fact) };
    if causing != changed {
        return Step::Stay;
    }
    match fact {
        None => Step::Fetch(causing),
        Some(None) => Step::Resume,
        Some(Some(reason)) if reason == current.reason => Step::Stay,
        Some(Some(reason)) => Step::Detach(reason),
    }
}

/// The time a notice names, to the millisecond: it makes each notice's marker unique, so the look-before-
/// posting of a retry never mistakes an earlier notice of the same kind for this one.
fn stamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}

fn when(detachment: &Detachment) -> String {
    stamp(detachment.since)
}

fn todo_link(todo_url: &str, title: &str) -> String {
    if todo_url.is_empty() {
        format!("<strong>{}</strong>", escape_html(title))
    } else {
        format!("<a href=\"{}\">{}</a>", escape_html(todo_url), escape_html(title))
    }
}

/// The comment the surviving side gets when the pair detaches. `todo_title`/`todo_url` name the to-do as
/// last seen; `item_key`/`item_url` the tracker item.
pub fn detach_notice(
    route: &Route,
    detachment: &Detachment,
    (todo_title, todo_url): (&str, &str),
    (item_key, item_url): (&str, &str),
) -> Notice {
    let at = when(detachment);
    let todo = todo_link(todo_url, todo_title);
    let item = if item_url.is_empty() {
        format!("<strong>{}</strong>", escape_html(item_key))
    } else {
        format!("<a href=\"{}\">{}</a>", escape_html(item_url), escape_html(item_key))
    };
    let route_id = escape_html(route.id.as_str());
    let (side, marker, tail) = match &detachment.reason {
        DetachReason::TodoTrashed => (
            NoticeSide::Tracker,
            format!("The Basecamp to-do was moved to the trash at {at}."),
            format!("campbridge stopped syncing it with this issue ({todo}); restoring the to-do resumes the sync."),
        ),
        DetachReason::TodoArchived => (
            NoticeSide::Tracker,
            format!("The Basecamp to-do was archived at {at}."),
            format!("campbridge stopped syncing it with this issue ({todo}); unarchiving it resumes the sync."),
        ),
        DetachReason::TodoDeleted => (
            NoticeSide::Tracker,
            format!("The Basecamp to-do was deleted at {at}."),
            format!("campbridge no longer syncs this issue ({todo}) and creates nothing in its place."),
        ),
        DetachReason::TodoUnrouted { why } => (
            NoticeSide::Tracker,
            format!("Route {route_id} stopped syncing the Basecamp to-do at {at}."),
            format!(
                "Reason: {}. campbridge no longer brings changes of {todo} to this issue; moving it back resumes \
                 the sync.",
                escape_html(why)
            ),
        ),
        DetachReason::IssueDeleted => (
            NoticeSide::Basecamp,
            format!("Jira issue {} was deleted at {at}.", escape_html(item_key)),
            "campbridge no longer syncs this to-do and will not create another issue for it.".to_owned(),
        ),
        DetachReason::IssueMoved { key } => (
            NoticeSide::Basecamp,
            format!("Jira issue {} was moved out of route {route_id}'s project at {at}.", escape_html(item_key)),
            format!(
                "It is now {}; campbridge stopped syncing this to-do with it. Moving the issue back resumes the sync.",
                if item_url.is_empty() { escape_html(key.as_str()) } else { item.clone() }
            ),
        ),
    };
    Notice { side, html: format!("<div>{marker} {tail}</div>"), marker }
}

/// The comment the side that heard about a detachment gets when the pair comes back.
pub fn resume_notice(detachment: &Detachment, now: chrono::DateTime<chrono::Utc>, item_key: &str) -> Notice {
    let at = stamp(now);
    if detachment.reason.on_todo_side() {
        let marker = format!("The Basecamp to-do is back in the route at {at}.");
        Notice {
            side: NoticeSide::Tracker,
            html: format!("<div>{marker} campbridge syncs it with this issue again.</div>"),
            marker,
        }
    } else {
        let marker = format!("Jira issue {} is back in the route's project at {at}.", escape_html(item_key));
        Notice {
            side: NoticeSide::Basecamp,
            html: format!("<div>{marker} campbridge syncs this to-do with it again.</div>"),
            marker,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{DevItemRef, JiraIssueId, JiraKey, PairState, TodolistId};
    use crate::testkit::{at, route, todo};

    fn linked() -> Pair {
        let mut p = Pair::pending(route().id, todo(1, "t").project, todo(1, "t").id, "w", at(0), at(60));
        p.state = PairState::Linked;
        p.item =
            Some(DevItemRef::Jira { id: JiraIssueId::parse("10001").unwrap(), key: JiraKey::parse("WEB-1").unwrap() });
        p.lease = None;
        p
    }

    fn issue(key: &str) -> DevItem {
        DevItem {
            item: DevItemRef::Jira { id: JiraIssueId::parse("10001").unwrap(), key: JiraKey::parse(key).unwrap() },
            summary: "[BC][WEB] t".into(),
            description: String::new(),
            status: crate::domain::StatusCategory::New,
            status_name: "To Do".into(),
            assignee: None,
            priority: None,
            labels: Default::default(),
            components: Default::default(),
            due: None,
            url: format!("https://example.atlassian.net/browse/{key}"),
            updated_at: at(1),
            flagged: false,
        }
    }

    fn detached(reason: DetachReason) -> Pair {
        Pair { detached: Some(Detachment { reason, since: at(5) }), ..linked() }
    }

    #[test]
    fn a_trashed_archived_or_unrouted_todo_detaches_the_pair() {
        let r = route();
        let trashed = Todo { status: RecordingStatus::Trashed, ..todo(1, "t") };
        let step = assess(&r, &linked(), Side::Basecamp, Fresh::Found(&trashed), Fresh::NotFetched);
        assert_eq!(step, Step::Detach(DetachReason::TodoTrashed));
        let archived = Todo { status: RecordingStatus::Archived, ..todo(1, "t") };
        assert_eq!(
            assess(&r, &linked(), Side::Basecamp, Fresh::Found(&archived), Fresh::NotFetched),
            Step::Detach(DetachReason::TodoArchived)
        );
        let elsewhere = Todo { todolist: TodolistId(7), todolist_name: "Backlog".into(), ..todo(1, "t") };
        assert!(matches!(
            assess(&r, &linked(), Side::Basecamp, Fresh::Found(&elsewhere), Fresh::NotFetched),
            Step::Detach(DetachReason::TodoUnrouted { why }) if why.contains("Backlog")
        ));
        assert_eq!(
            assess(&r, &linked(), Side::Basecamp, Fresh::Gone, Fresh::NotFetched),
            Step::Detach(DetachReason::TodoDeleted)
        );
        assert_eq!(
            assess(&r, &linked(), Side::Basecamp, Fresh::Found(&todo(1, "t")), Fresh::NotFetched),
            Step::Attached
        );
    }

    #[test]
    fn a_deleted_or_moved_issue_detaches_the_pair() {
        let r = route();
        assert_eq!(
            assess(&r, &linked(), Side::Tracker, Fresh::NotFetched, Fresh::Gone),
            Step::Detach(DetachReason::IssueDeleted)
        );
        let moved = issue("OPS-3");
        assert_eq!(
            assess(&r, &linked(), Side::Tracker, Fresh::NotFetched, Fresh::Found(&moved)),
            Step::Detach(DetachReason::IssueMoved { key: JiraKey::parse("OPS-3").unwrap() })
        );
        let home = issue("WEB-1");
        assert_eq!(assess(&r, &linked(), Side::Tracker, Fresh::NotFetched, Fresh::Found(&home)), Step::Attached);
    }

    #[test]
    fn only_the_side_that_went_away_brings_a_pair_back() {
        let r = route();
        let pair = detached(DetachReason::TodoTrashed);
        assert_eq!(assess(&r, &pair, Side::Tracker, Fresh::NotFetched, Fresh::NotFetched), Step::Stay);
        assert_eq!(
            assess(&r, &pair, Side::Basecamp, Fresh::NotFetched, Fresh::NotFetched),
            Step::Fetch(Side::Basecamp)
        );
        assert_eq!(assess(&r, &pair, Side::Basecamp, Fresh::Found(&todo(1, "t")), Fresh::NotFetched), Step::Resume);
        let still = Todo { status: RecordingStatus::Trashed, ..todo(1, "t") };
        assert_eq!(assess(&r, &pair, Side::Basecamp, Fresh::Found(&still), Fresh::NotFetched), Step::Stay);
        assert_eq!(
            assess(&r, &pair, Side::Basecamp, Fresh::Gone, Fresh::NotFetched),
            Step::Detach(DetachReason::TodoDeleted)
        );

        let moved = detached(DetachReason::IssueMoved { key: JiraKey::parse("OPS-3").unwrap() });
        assert_eq!(assess(&r, &moved, Side::Basecamp, Fresh::Found(&todo(1, "t")), Fresh::NotFetched), Step::Stay);
        assert_eq!(assess(&r, &moved, Side::Tracker, Fresh::NotFetched, Fresh::Found(&issue("WEB-9"))), Step::Resume);
    }

    #[test]
    fn a_deleted_side_is_final() {
        let r = route();
        for reason in [DetachReason::TodoDeleted, DetachReason::IssueDeleted] {
            let pair = detached(reason);
            for changed in [Side::Basecamp, Side::Tracker] {
                let step = assess(&r, &pair, changed, Fresh::Found(&todo(1, "t")), Fresh::Found(&issue("WEB-1")));
                assert_eq!(step, Step::Stay);
            }
        }
    }

    #[test]
    fn notices_go_to_the_surviving_side_and_carry_their_time() {
        let r = route();
        let d = Detachment { reason: DetachReason::TodoTrashed, since: at(0) };
        let n = detach_notice(&r, &d, ("Fix <login>", "https://bc/t/1"), ("WEB-1", "https://jira/WEB-1"));
        assert_eq!(n.side, NoticeSide::Tracker);
        assert!(n.html.contains("Fix &lt;login&gt;") && n.html.contains(&n.marker), "{}", n.html);
        assert!(n.marker.contains("2026-07-20 12:00:00.000 UTC"));
        let d = Detachment { reason: DetachReason::IssueDeleted, since: at(0) };
        let n = detach_notice(&r, &d, ("t", ""), ("WEB-1", ""));
        assert_eq!(n.side, NoticeSide::Basecamp);
        assert!(n.html.contains("will not create another issue"));
        let back = resume_notice(&d, at(60), "WEB-1");
        assert_eq!(back.side, NoticeSide::Basecamp);
        assert_ne!(back.marker, n.marker);
    }
}
