//! Jira admin-webhook deliveries (Cloud and Data Center), signed with `X-Hub-Signature`.
//!
//! Bodies use the v2 representation even on Cloud (description and comment bodies are strings). The event
//! name is the body's `webhookEvent`; the delivery id is the `X-Atlassian-Webhook-Identifier` header, the
//! same across retries. Deliveries can be late, duplicated and out of order, so events carry only what the
//! mapper needs to decide whether to re-read the issue: ids, the changed field ids, the actor and the time.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;

use super::verify::{SIGNATURE_HEADER, Verified, verify_signature};
use super::{Headers, WebhookError, check_size, required};
use crate::domain::{DeliveryId, JiraAccountId, JiraCommentId, JiraIssueId, JiraKey};

/// The header naming a delivery; unique per site and stable across retries.
pub const DELIVERY_HEADER: &str = "X-Atlassian-Webhook-Identifier";

/// One authenticated, parsed Jira delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JiraDelivery {
    /// `jira:<X-Atlassian-Webhook-Identifier>`.
    pub delivery: DeliveryId,
    pub event: JiraEvent,
}

/// What a Jira delivery is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JiraEvent {
    /// `jira:issue_created`, `jira:issue_updated`, `jira:issue_deleted`.
    Issue(IssueEvent),
    /// `comment_created`, `comment_updated`.
    Comment(CommentEvent),
    /// Any other `webhookEvent` (worklogs, versions, `comment_deleted`, …). Answer 2xx.
    Ignored { webhook_event: String },
}

/// An issue was created, changed or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueEvent {
    /// The raw `webhookEvent`.
    pub webhook_event: String,
    pub issue_id: JiraIssueId,
    pub key: JiraKey,
    pub deleted: bool,
    /// The key the issue had before this change, when the change moved it to another project (a changelog
    /// item `Key` whose `fromString` is the old key).
    pub previous_key: Option<JiraKey>,
    /// The changelog items' `fieldId` (Cloud), else `field` (Data Center has no `fieldId`), in order.
    /// Created events list the initial values here too; a comment-only update has none.
    pub changed_fields: Vec<String>,
    /// Who made the change: `user.accountId` on Cloud, `user.name` on Data Center.
    pub actor_account_id: Option<JiraAccountId>,
    /// The delivery's `timestamp` (epoch ms).
    pub timestamp: DateTime<Utc>,
    /// A comment carried by the update (`issue_commented`): Data Center always sends comments this way,
    /// and Cloud does for comments added on a transition screen.
    pub comment: Option<JiraComment>,
}

/// A comment was created or edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentEvent {
    /// The raw `webhookEvent`.
    pub webhook_event: String,
    pub issue_id: JiraIssueId,
    pub key: JiraKey,
    pub comment: JiraComment,
    /// The delivery's `timestamp` (epoch ms).
    pub timestamp: DateTime<Utc>,
}

/// A comment as webhooks carry it (v2: `body` is plain or wiki-markup text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JiraComment {
    pub comment_id: JiraCommentId,
    /// `author.accountId` on Cloud, `author.name` on Data Center.
    pub author: Option<JiraAccountId>,
    pub author_display_name: Option<String>,
    pub body_text: String,
    /// `None` when absent or in a date format not recognised (informational only).
    pub created: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    webhook_event: String,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    user: Option<WireUser>,
    #[serde(default)]
    issue: Option<WireIssue>,
    #[serde(default)]
    changelog: Option<WireChangelog>,
    #[serde(default)]
    comment: Option<WireComment>,
}

#[derive(Deserialize)]
struct WireUser {
    // The documentation example spells it `accoundId`; accept both.
    #[serde(default, rename = "accountId", alias = "accoundId")]
    account_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "displayName")]
    display_name: Option<String>,
}

impl WireUser {
    fn id(&self) -> Option<JiraAccountId> {
        let id = self.account_id.as_deref().or(self.name.as_deref())?;
        (!id.is_empty()).then(|| JiraAccountId(id.to_owned()))
    }
}

#[derive(Deserialize)]
struct WireIssue {
    id: String,
    key: String,
}

#[derive(Deserialize)]
struct WireChangelog {
    #[serde(default)]
    items: Vec<WireItem>,
}

#[derive(Deserialize)]
struct WireItem {
    #[serde(default, rename = "fieldId")]
    field_id: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default, rename = "fromString")]
    from_string: Option<String>,
}

#[derive(Deserialize)]
struct WireComment {
    id: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    author: Option<WireUser>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    updated: Option<String>,
}

/// Size check, signature check, delivery id, then parse.
///
/// Errors, in that order: [`WebhookError::TooLarge`]; [`WebhookError::MissingSignature`] /
/// [`WebhookError::BadSignature`]; [`WebhookError::MissingHeader`] without `X-Atlassian-Webhook-Identifier`;
/// [`WebhookError::Malformed`] (see [`parse`]).
pub fn ingest(
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    secret: &SecretString,
) -> Result<JiraDelivery, WebhookError> {
    check_size(body)?;
    let verified = verify_signature(secret, headers.header(SIGNATURE_HEADER), body)?;
    let delivery = DeliveryId::jira(required(headers, DELIVERY_HEADER)?);
    Ok(JiraDelivery { delivery, event: parse(verified)? })
}

/// Parses a verified body. Unknown `webhookEvent`s are [`JiraEvent::Ignored`]; a body without
/// `webhookEvent`, or an issue/comment event without a valid `issue.id`/`issue.key`, `comment.id` or
/// `timestamp`, is [`WebhookError::Malformed`].
pub fn parse(body: Verified<'_>) -> Result<JiraEvent, WebhookError> {
    let wire: Wire = serde_json::from_slice(body.body()).map_err(WebhookError::malformed)?;
    let deleted = match wire.webhook_event.as_str() {
        "jira:issue_created" | "jira:issue_updated" => false,
        "jira:issue_deleted" => true,
        "comment_created" | "comment_updated" => return comment_event(wire).map(JiraEvent::Comment),
        _ => return Ok(JiraEvent::Ignored { webhook_event: wire.webhook_event }),
    };
    let (issue_id, key) = issue_ids(wire.issue.as_ref())?;
    let items = wire.changelog.map(|c| c.items).unwrap_or_default();
    let previous_key = items
        .iter()
        .find(|i| i.field.as_deref() == Some("Key"))
        .and_then(|i| i.from_string.as_deref())
        .and_then(|k| JiraKey::parse(k).ok())
        .filter(|k| *k != key);
    let changed_fields = items.into_iter().filter_map(|i| i.field_id.or(i.field)).collect();
    Ok(JiraEvent::Issue(IssueEvent {
        timestamp: timestamp(wire.timestamp)?,
        webhook_event: wire.webhook_event,
        issue_id,
        key,
        deleted,
        previous_key,
        changed_fields,
        actor_account_id: wire.user.as_ref().and_then(WireUser::id),
        comment: wire.comment.map(comment).transpose()?,
    }))
}

fn comment_event(wire: Wire) -> Result<CommentEvent, WebhookError> {
    let (issue_id, key) = issue_ids(wire.issue.as_ref())?;
    let wire_comment = wire.comment.ok_or_else(|| WebhookError::Malformed("comment event without comment".into()))?;
    Ok(CommentEvent {
        timestamp: timestamp(wire.timestamp)?,
        webhook_event: wire.webhook_event,
        issue_id,
        key,
        comment: comment(wire_comment)?,
    })
}

fn issue_ids(issue: Option<&WireIssue>) -> Result<(JiraIssueId, JiraKey), WebhookError> {
    let issue = issue.ok_or_else(|| WebhookError::Malformed("issue event without issue".into()))?;
    let id = JiraIssueId::parse(&issue.id).map_err(WebhookError::malformed)?;
    let key = JiraKey::parse(&issue.key).map_err(WebhookError::malformed)?;
    Ok((id, key))
}

fn timestamp(ms: Option<i64>) -> Result<DateTime<Utc>, WebhookError> {
    ms.and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| WebhookError::Malformed("missing or invalid timestamp".into()))
}

fn comment(c: WireComment) -> Result<JiraComment, WebhookError> {
    if c.id.trim().is_empty() {
        return Err(WebhookError::Malformed("comment without id".into()));
    }
    Ok(JiraComment {
        comment_id: JiraCommentId(c.id),
        author: c.author.as_ref().and_then(WireUser::id),
        author_display_name: c.author.and_then(|a| a.display_name),
        body_text: c.body.unwrap_or_default(),
        created: c.created.as_deref().and_then(jira_datetime),
        updated: c.updated.as_deref().and_then(jira_datetime),
    })
}

/// Jira writes `2019-02-15T19:11:18.321-0800` (offset without a colon); accept RFC 3339 as well.
fn jira_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::webhook::MAX_BODY_BYTES;
    use crate::webhook::test_support::fixture;
    use crate::webhook::verify::sign;

    const SECRET: &str = "jira-admin-webhook-secret";

    fn secret() -> SecretString {
        SecretString::from(SECRET.to_owned())
    }

    /// Delivers `body` as Jira would: signed, with a delivery id.
    fn deliver(body: &[u8]) -> Result<JiraDelivery, WebhookError> {
        let signature = sign(&secret(), body);
        let headers = vec![
            ("x-hub-signature", signature.as_str()),
            ("x-atlassian-webhook-identifier", "4fa0a5a2-0001"),
            ("Content-Type", "application/json"),
        ];
        ingest(&headers, body, &secret())
    }

    fn event(name: &str) -> JiraEvent {
        deliver(&fixture("jira", name)).unwrap().event
    }

    fn issue_event(name: &str) -> IssueEvent {
        match event(name) {
            JiraEvent::Issue(e) => e,
            other => panic!("{name}: {other:?}"),
        }
    }

    /// Every Jira fixture with `webhook` in its name, and what ingest makes of it.
    #[test]
    fn every_webhook_fixture_has_a_known_outcome() {
        enum Expect {
            Issue,
            Comment,
            NotADelivery,
        }
        let table = [
            ("cloud-webhook-issue-created.json", Expect::Issue),
            ("cloud-webhook-issue-updated-description.json", Expect::Issue),
            ("cloud-webhook-issue-updated-status.json", Expect::Issue),
            ("cloud-webhook-issue-updated-assignee.json", Expect::Issue),
            ("cloud-webhook-issue-updated.docs-example.json", Expect::Issue),
            ("dc-webhook-issue-updated-commented.json", Expect::Issue),
            ("cloud-webhook-comment-created.json", Expect::Comment),
            // Registration API bodies and the signature vector: no `webhookEvent`, so not deliveries.
            ("cloud-rest-webhook-register-request.docs-example.json", Expect::NotADelivery),
            ("cloud-rest-webhook-register-response.docs-example.json", Expect::NotADelivery),
            ("webhook-signature-test-vector.docs-example.json", Expect::NotADelivery),
        ];
        for (name, expect) in table {
            let result = deliver(&fixture("jira", name));
            let ok = match expect {
                Expect::Issue => matches!(result, Ok(JiraDelivery { event: JiraEvent::Issue(_), .. })),
                Expect::Comment => matches!(result, Ok(JiraDelivery { event: JiraEvent::Comment(_), .. })),
                Expect::NotADelivery => matches!(result, Err(WebhookError::Malformed(_))),
            };
            assert!(ok, "{name}: {result:?}");
        }
    }

    #[test]
    fn the_delivery_id_comes_from_the_webhook_identifier_header() {
        let d = deliver(&fixture("jira", "cloud-webhook-issue-updated-status.json")).unwrap();
        assert_eq!(d.delivery, DeliveryId::jira("4fa0a5a2-0001"));
    }

    #[test]
    fn a_status_change_names_the_issue_the_field_and_the_actor() {
        let e = issue_event("cloud-webhook-issue-updated-status.json");
        assert_eq!(e.webhook_event, "jira:issue_updated");
        assert_eq!(e.issue_id.as_str(), "10040");
        assert_eq!(e.key.as_str(), "TES-41");
        assert!(!e.deleted);
        assert_eq!(e.changed_fields, ["status"]);
        assert_eq!(e.actor_account_id, Some(JiraAccountId("5c5f880629be9642ba529340".into())));
        assert_eq!(e.timestamp.timestamp_millis(), 1_550_286_862_039);
        assert_eq!(e.comment, None);
    }

    #[test]
    fn an_assignment_reports_the_assignee_field() {
        let e = issue_event("cloud-webhook-issue-updated-assignee.json");
        assert_eq!(e.changed_fields, ["assignee"]);
        assert_eq!(e.key.as_str(), "TES-41");
    }

    #[test]
    fn a_description_edit_reports_the_description_field() {
        let e = issue_event("cloud-webhook-issue-updated-description.json");
        assert_eq!(e.changed_fields, ["description"]);
        assert_eq!(e.issue_id.as_str(), "10021");
        assert_eq!(e.key.as_str(), "KAN-22");
        assert_eq!(e.actor_account_id, Some(JiraAccountId("712020:f1ad7cfd-7f82-4dc0-85e4-8bc47bcc08e4".into())));
    }

    #[test]
    fn a_created_issue_lists_its_initial_fields_by_field_id() {
        let e = issue_event("cloud-webhook-issue-created.json");
        assert_eq!(e.webhook_event, "jira:issue_created");
        assert_eq!(e.key.as_str(), "KAN-22");
        assert!(e.changed_fields.starts_with(&["assignee".into(), "description".into(), "priority".into()]));
        assert!(e.changed_fields.iter().all(|f| f.chars().all(|c| !c.is_ascii_uppercase())), "{:?}", e.changed_fields);
    }

    #[test]
    fn items_without_a_field_id_fall_back_to_the_field_name() {
        // The documentation example has no `fieldId`, and spells the actor's `accountId` `accoundId`.
        let e = issue_event("cloud-webhook-issue-updated.docs-example.json");
        assert_eq!(e.changed_fields, ["summary", "issuetype"]);
        assert_eq!(e.key.as_str(), "JRA-20002");
        assert_eq!(e.actor_account_id, Some(JiraAccountId("99:27935d01-92a7-4687-8272-a9b8d3b2ae2e".into())));
    }

    #[test]
    fn a_data_center_comment_arrives_inside_an_issue_update() {
        let e = issue_event("dc-webhook-issue-updated-commented.json");
        assert_eq!(e.key.as_str(), "PRJX-14");
        assert!(e.changed_fields.is_empty());
        assert_eq!(e.actor_account_id, Some(JiraAccountId("levbrouk".into())));
        let c = e.comment.unwrap();
        assert_eq!(c.comment_id, JiraCommentId("10082".into()));
        assert_eq!(c.body_text, "unik");
        assert_eq!(c.author, Some(JiraAccountId("levbrouk".into())));
        assert_eq!(c.created.map(|d| d.to_rfc3339()).as_deref(), Some("2019-06-04T00:15:17.234+00:00"));
    }

    #[test]
    fn a_cloud_comment_names_its_issue_author_and_text() {
        let JiraEvent::Comment(e) = event("cloud-webhook-comment-created.json") else { panic!("not a comment") };
        assert_eq!(e.webhook_event, "comment_created");
        assert_eq!(e.issue_id.as_str(), "10040");
        assert_eq!(e.key.as_str(), "TES-41");
        assert_eq!(e.comment.comment_id, JiraCommentId("10019".into()));
        assert_eq!(e.comment.author, Some(JiraAccountId("5c5f880629be9642ba529340".into())));
        assert_eq!(e.comment.author_display_name.as_deref(), Some("Test User"));
        assert_eq!(e.comment.body_text, "Added a comment");
        assert_eq!(e.comment.created.map(|d| d.to_rfc3339()).as_deref(), Some("2019-02-16T03:11:18.321+00:00"));
        assert_eq!(e.comment.updated, e.comment.created);
    }

    fn renamed(name: &str, webhook_event: &str) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_slice(&fixture("jira", name)).unwrap();
        v["webhookEvent"] = webhook_event.into();
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn a_deleted_issue_is_marked_deleted() {
        let body = renamed("cloud-webhook-issue-updated-status.json", "jira:issue_deleted");
        let JiraEvent::Issue(e) = deliver(&body).unwrap().event else { panic!("not an issue event") };
        assert!(e.deleted);
        assert_eq!(e.key.as_str(), "TES-41");
    }

    #[test]
    fn an_edited_comment_is_a_comment_event() {
        let body = renamed("cloud-webhook-comment-created.json", "comment_updated");
        let JiraEvent::Comment(e) = deliver(&body).unwrap().event else { panic!("not a comment event") };
        assert_eq!(e.webhook_event, "comment_updated");
    }

    #[test]
    fn other_events_are_ignored_not_rejected() {
        for name in ["comment_deleted", "worklog_created", "jira:version_released", "something_new"] {
            let body = renamed("cloud-webhook-comment-created.json", name);
            assert_eq!(deliver(&body).unwrap().event, JiraEvent::Ignored { webhook_event: name.into() });
        }
    }

    #[test]
    fn an_issue_event_with_a_bad_key_is_malformed() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("jira", "cloud-webhook-issue-updated-status.json")).unwrap();
        v["issue"]["key"] = "not a key".into();
        assert!(matches!(deliver(&serde_json::to_vec(&v).unwrap()), Err(WebhookError::Malformed(_))));
    }

    #[test]
    fn malformed_json_is_malformed() {
        assert!(matches!(deliver(b"{not json"), Err(WebhookError::Malformed(_))));
    }

    #[test]
    fn an_unsigned_delivery_is_rejected_before_parsing() {
        let headers = [("X-Atlassian-Webhook-Identifier", "x")];
        assert_eq!(ingest(&headers, b"{not json", &secret()).unwrap_err(), WebhookError::MissingSignature);
    }

    #[test]
    fn a_delivery_signed_with_another_secret_is_rejected() {
        let body = fixture("jira", "cloud-webhook-issue-updated-status.json");
        let other = SecretString::from("other".to_owned());
        let headers = [("X-Hub-Signature", sign(&other, &body)), ("X-Atlassian-Webhook-Identifier", "x".into())];
        assert_eq!(ingest(&headers, &body, &secret()).unwrap_err(), WebhookError::BadSignature);
    }

    #[test]
    fn a_delivery_without_an_identifier_is_a_bad_request() {
        let body = fixture("jira", "cloud-webhook-issue-updated-status.json");
        let headers = [("X-Hub-Signature", sign(&secret(), &body))];
        let err = ingest(&headers, &body, &secret()).unwrap_err();
        assert_eq!(err, WebhookError::MissingHeader(DELIVERY_HEADER));
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn an_oversize_body_is_rejected_before_the_signature_is_checked() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        let headers: [(&str, &str); 0] = [];
        assert_eq!(ingest(&headers, &body, &secret()).unwrap_err(), WebhookError::TooLarge);
    }
}
