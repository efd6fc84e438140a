//! Basecamp deliveries: thin, unsigned hints that "recording X in project Y changed".
//!
//! Basecamp does not sign webhooks; the receiver authenticates the request by the route token in its URL
//! ([`super::verify::authorize_route`]) before calling [`ingest`]. The body is only a hint: it carries no
//! description, completion or assignees, so every event the sync acts on leads to a re-fetch.
//!
//! `kind` is an open set (`todo_created`, `todo_rescheduled`, kinds not yet documented…), so events are
//! classified by the *recording* they are about, never by kind: any to-do, comment on a to-do, or to-do
//! list triggers a job; everything else is [`BasecampTarget::Ignored`].

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{WebhookError, check_size};
use crate::domain::{BasecampCommentId, DeliveryId, PersonId, ProjectId, TodoId, TodolistId};

/// One authenticated, parsed Basecamp delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasecampDelivery {
    /// `basecamp:<event id>`; the same event delivered twice (retries, duplicate hooks) has the same id.
    pub delivery: DeliveryId,
    pub event: BasecampEvent,
}

/// The normalized fields of a Basecamp webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasecampEvent {
    /// The event id (int64; may exceed 2^53).
    pub event_id: i64,
    /// The raw `kind`, e.g. `todo_completed`; informational (see the module docs).
    pub kind: String,
    /// `recording.type`: `Todo`, `Comment`, `Todolist`, `Message`, …
    pub recording_type: String,
    pub recording_id: i64,
    /// The project (`recording.bucket.id`).
    pub bucket: ProjectId,
    /// `recording.parent.id`: the list of a to-do, the recording a comment is on.
    pub parent_id: Option<i64>,
    /// `recording.parent.type`.
    pub parent_type: Option<String>,
    /// Who performed the action (top-level `creator`).
    pub creator_id: Option<PersonId>,
    pub created_at: DateTime<Utc>,
    /// On `*_copied` events: the new recording and its project (possibly another project).
    pub copy: Option<CopiedTo>,
    /// What the sync should look at.
    pub target: BasecampTarget,
}

/// Where a copy event put the new recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopiedTo {
    pub id: i64,
    pub bucket: Option<ProjectId>,
}

/// The record an event is about, as far as the sync cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasecampTarget {
    /// A to-do changed in some way: re-fetch it.
    Todo { todo: TodoId },
    /// A comment on a to-do changed: re-fetch the comment (and its to-do's pair).
    TodoComment { todo: TodoId, comment: BasecampCommentId },
    /// A to-do list (or list group) changed, e.g. renamed or archived: re-scan its to-dos.
    Todolist { list: TodolistId },
    /// Nothing the sync follows (messages, documents, comments on messages…). Answer 2xx.
    Ignored { kind: String },
}

#[derive(Deserialize)]
struct Wire {
    id: i64,
    kind: String,
    created_at: DateTime<Utc>,
    recording: WireRecording,
    #[serde(default)]
    creator: Option<WireId>,
    #[serde(default)]
    copy: Option<WireCopy>,
}

#[derive(Deserialize)]
struct WireRecording {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
    bucket: WireId,
    #[serde(default)]
    parent: Option<WireParent>,
}

#[derive(Deserialize)]
struct WireParent {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct WireId {
    id: i64,
}

#[derive(Deserialize)]
struct WireCopy {
    id: i64,
    #[serde(default)]
    bucket: Option<WireId>,
}

fn positive(value: i64, what: &str) -> Result<i64, WebhookError> {
    if value > 0 { Ok(value) } else { Err(WebhookError::Malformed(format!("{what} is not a positive id"))) }
}

/// Size check, then parse. Call only after the route token was accepted.
///
/// Errors: [`WebhookError::TooLarge`]; [`WebhookError::Malformed`] when the body is not a Basecamp event
/// (missing `id`, `kind`, `created_at`, `recording.id/type/bucket`, or non-positive ids). Unknown kinds and
/// recording types are not errors: they parse with [`BasecampTarget::Ignored`].
pub fn ingest(body: &[u8]) -> Result<BasecampDelivery, WebhookError> {
    check_size(body)?;
    let event = parse(body)?;
    Ok(BasecampDelivery { delivery: DeliveryId::basecamp(event.event_id), event })
}

fn parse(body: &[u8]) -> Result<BasecampEvent, WebhookError> {
    let wire: Wire = serde_json::from_slice(body).map_err(WebhookError::malformed)?;
    let event_id = positive(wire.id, "event id")?;
    let recording_id = positive(wire.recording.id, "recording id")?;
    let bucket = ProjectId(positive(wire.recording.bucket.id, "recording bucket id")?);
    let parent = wire.recording.parent;
    let target = match (wire.recording.kind.as_str(), &parent) {
        ("Todo", _) => BasecampTarget::Todo { todo: TodoId(recording_id) },
        ("Comment", Some(p)) if p.kind == "Todo" => BasecampTarget::TodoComment {
            todo: TodoId(positive(p.id, "comment parent id")?),
            comment: BasecampCommentId(recording_id),
        },
        ("Todolist", _) => BasecampTarget::Todolist { list: TodolistId(recording_id) },
        _ => BasecampTarget::Ignored { kind: wire.kind.clone() },
    };
    Ok(BasecampEvent {
        event_id,
        kind: wire.kind,
        recording_type: wire.recording.kind,
        recording_id,
        bucket,
        parent_id: parent.as_ref().map(|p| p.id),
        parent_type: parent.map(|p| p.kind),
        creator_id: wire.creator.map(|c| PersonId(c.id)).filter(|p| p.0 > 0),
        created_at: wire.created_at,
        copy: wire.copy.map(|c| CopiedTo { id: c.id, bucket: c.bucket.map(|b| ProjectId(b.id)) }),
        target,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::webhook::MAX_BODY_BYTES;
    use crate::webhook::test_support::fixture;

    fn load(name: &str) -> Vec<u8> {
        fixture("basecamp", name)
    }

    /// Every Basecamp fixture with `webhook` in its name, and what ingest makes of it.
    #[test]
    fn every_webhook_fixture_has_a_known_outcome() {
        enum Expect {
            Todo,
            Ignored,
            NotADelivery,
        }
        let table = [
            ("webhook-event-todo-completed.json", Expect::Todo),
            ("webhook-event-todo-copied.json", Expect::Todo),
            ("webhook-event-message-created.json", Expect::Ignored),
            ("webhook-event-message-subscribers-changed.json", Expect::Ignored),
            // A documentation snippet with only `kind` and `details`: no event id, so not a delivery.
            ("webhook-assignment-changed-details.json", Expect::NotADelivery),
            // Management API bodies (webhook objects, create/update requests), not deliveries.
            ("webhook-get-with-recent-deliveries.json", Expect::NotADelivery),
            ("webhook-list.json", Expect::NotADelivery),
            ("webhook-create-request.json", Expect::NotADelivery),
            ("webhook-update-request.json", Expect::NotADelivery),
        ];
        for (name, expect) in table {
            let result = ingest(&load(name));
            match expect {
                Expect::Todo => {
                    let target = result.map(|d| d.event.target);
                    assert!(matches!(target, Ok(BasecampTarget::Todo { .. })), "{name}: {target:?}");
                }
                Expect::Ignored => {
                    let target = result.map(|d| d.event.target);
                    assert!(matches!(target, Ok(BasecampTarget::Ignored { .. })), "{name}: {target:?}");
                }
                Expect::NotADelivery => {
                    assert!(matches!(result, Err(WebhookError::Malformed(_))), "{name}: {result:?}");
                }
            }
        }
    }

    #[test]
    fn a_todo_completed_event_names_the_todo_its_project_list_and_actor() {
        let d = ingest(&load("webhook-event-todo-completed.json")).unwrap();
        assert_eq!(d.delivery, DeliveryId::basecamp(1_052_473_966));
        let e = d.event;
        assert_eq!(e.event_id, 1_052_473_966);
        assert_eq!(e.kind, "todo_completed");
        assert_eq!(e.recording_type, "Todo");
        assert_eq!(e.recording_id, 1_069_480_405);
        assert_eq!(e.bucket, ProjectId(2_085_958_505));
        assert_eq!(e.parent_id, Some(1_069_479_863));
        assert_eq!(e.parent_type.as_deref(), Some("Todolist"));
        assert_eq!(e.creator_id, Some(PersonId(1_049_715_913)));
        assert_eq!(e.created_at.to_rfc3339(), "2026-07-21T01:05:29.832+00:00");
        assert_eq!(e.copy, None);
        assert_eq!(e.target, BasecampTarget::Todo { todo: TodoId(1_069_480_405) });
    }

    #[test]
    fn ids_beyond_two_to_the_53_are_kept_exactly() {
        let d = ingest(&load("webhook-event-message-created.json")).unwrap();
        assert_eq!(d.event.event_id, 9_007_199_254_741_210);
        assert_eq!(d.event.recording_id, 9_007_199_254_741_622);
        assert_eq!(d.delivery.as_str(), "basecamp:9007199254741210");
        assert_eq!(d.event.target, BasecampTarget::Ignored { kind: "message_created".into() });
    }

    #[test]
    fn a_copy_event_reports_where_the_copy_went() {
        let e = ingest(&load("webhook-event-todo-copied.json")).unwrap().event;
        assert_eq!(e.target, BasecampTarget::Todo { todo: TodoId(968_814_335) });
        assert_eq!(e.bucket, ProjectId(68_833_643_212));
        assert_eq!(e.copy, Some(CopiedTo { id: 981_721_240, bucket: Some(ProjectId(2_085_958_499)) }));
    }

    #[test]
    fn the_delivery_body_recorded_in_recent_deliveries_parses() {
        let hook: serde_json::Value = serde_json::from_slice(&load("webhook-get-with-recent-deliveries.json")).unwrap();
        let body = serde_json::to_vec(&hook["recent_deliveries"][0]["request"]["body"]).unwrap();
        let e = ingest(&body).unwrap().event;
        assert_eq!(e.kind, "todo_completed");
        assert_eq!(e.target, BasecampTarget::Todo { todo: TodoId(1_069_480_405) });
    }

    /// The real to-do event, rewritten into the generic recording shape for another recording type.
    fn as_recording(kind: &str, recording_type: &str, id: i64, parent: Option<(i64, &str)>) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_slice(&load("webhook-event-todo-completed.json")).unwrap();
        v["kind"] = kind.into();
        v["recording"]["type"] = recording_type.into();
        v["recording"]["id"] = id.into();
        match parent {
            Some((pid, ptype)) => {
                v["recording"]["parent"]["id"] = pid.into();
                v["recording"]["parent"]["type"] = ptype.into();
            }
            None => {
                v["recording"].as_object_mut().unwrap().remove("parent");
            }
        }
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn a_comment_on_a_todo_names_both_the_todo_and_the_comment() {
        let body = as_recording("comment_created", "Comment", 1_069_480_999, Some((1_069_480_405, "Todo")));
        let e = ingest(&body).unwrap().event;
        assert_eq!(
            e.target,
            BasecampTarget::TodoComment { todo: TodoId(1_069_480_405), comment: BasecampCommentId(1_069_480_999) }
        );
        assert_eq!(e.parent_id, Some(1_069_480_405));
    }

    #[test]
    fn a_comment_on_a_message_is_ignored() {
        let body = as_recording("comment_created", "Comment", 1_069_480_999, Some((1_069_479_406, "Message")));
        let e = ingest(&body).unwrap().event;
        assert_eq!(e.target, BasecampTarget::Ignored { kind: "comment_created".into() });
    }

    #[test]
    fn a_todolist_event_names_the_list() {
        let body = as_recording("todolist_archived", "Todolist", 1_069_479_863, Some((1_069_479_000, "Todoset")));
        let e = ingest(&body).unwrap().event;
        assert_eq!(e.target, BasecampTarget::Todolist { list: TodolistId(1_069_479_863) });
    }

    #[test]
    fn a_new_todo_kind_still_triggers_a_todo_job() {
        let body = as_recording("todo_frobnicated", "Todo", 1_069_480_405, Some((1_069_479_863, "Todolist")));
        let e = ingest(&body).unwrap().event;
        assert_eq!(e.kind, "todo_frobnicated");
        assert_eq!(e.target, BasecampTarget::Todo { todo: TodoId(1_069_480_405) });
    }

    #[test]
    fn an_unknown_recording_type_is_ignored_not_rejected() {
        let body = as_recording("kanban_card_created", "Kanban::Card", 1_069_480_405, None);
        let e = ingest(&body).unwrap().event;
        assert_eq!(e.target, BasecampTarget::Ignored { kind: "kanban_card_created".into() });
        assert_eq!(e.parent_id, None);
    }

    #[test]
    fn malformed_json_is_rejected_without_quoting_the_body() {
        let err = ingest(b"{\"id\": 12, \"kind\": \"todo_created\", SECRET-LOOKING-TEXT").unwrap_err();
        assert!(matches!(&err, WebhookError::Malformed(r) if !r.contains("SECRET")), "{err:?}");
        assert_eq!(err.status(), 400);
        assert!(matches!(ingest(b""), Err(WebhookError::Malformed(_))));
        assert!(matches!(ingest(b"[]"), Err(WebhookError::Malformed(_))));
    }

    #[test]
    fn a_non_positive_id_is_malformed() {
        let body = as_recording("todo_created", "Todo", 0, None);
        assert!(matches!(ingest(&body), Err(WebhookError::Malformed(_))));
    }

    #[test]
    fn an_oversize_body_is_rejected_before_parsing() {
        let mut body = load("webhook-event-todo-completed.json");
        body.resize(MAX_BODY_BYTES + 1, b' ');
        assert_eq!(ingest(&body).unwrap_err(), WebhookError::TooLarge);
    }
}
