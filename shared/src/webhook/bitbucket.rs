//! Bitbucket deliveries, signed with `X-Hub-Signature`: the dev-side signals (pull requests, build
//! statuses, pushes) that the sync reports back to Basecamp.
//!
//! The event comes from the `X-Event-Key` header, the delivery id from `X-Request-UUID` (stable across
//! Bitbucket's automatic retries; Data Center sends `X-Request-Id` instead, accepted as a fallback so its
//! "Test connection" ping is answered 2xx). Bitbucket Cloud issues were removed in 2026, so `issue:*`
//! events, like every key the sync does not follow (PR comments, approvals, Data Center `pr:*`), parse as
//! [`BitbucketEvent::Ignored`].

use secrecy::SecretString;
use serde::Deserialize;

use super::verify::{SIGNATURE_HEADER, Verified, verify_signature};
use super::{Headers, WebhookError, check_size, required};
use crate::domain::{BuildState, PullRequest, PullRequestState};
use crate::domain::{DeliveryId, PullRequestRef, RepoRef};

/// The header naming the event.
pub const EVENT_HEADER: &str = "X-Event-Key";
/// The header naming a Cloud delivery.
pub const DELIVERY_HEADER: &str = "X-Request-UUID";
/// Data Center's name for the delivery header.
pub const DC_DELIVERY_HEADER: &str = "X-Request-Id";

/// One authenticated, parsed Bitbucket delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitbucketDelivery {
    /// `bitbucket:<X-Request-UUID>`.
    pub delivery: DeliveryId,
    pub event: BitbucketEvent,
}

/// What a Bitbucket delivery is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitbucketEvent {
    PullRequest(PullRequestEvent),
    BuildStatus(BuildStatusEvent),
    Push(PushEvent),
    /// Any other event key. Answer 2xx.
    Ignored {
        event_key: String,
    },
}

/// Which `pullrequest:*` event arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequestAction {
    Created,
    Updated,
    /// `pullrequest:fulfilled`: merged.
    Fulfilled,
    /// `pullrequest:rejected`: declined.
    Rejected,
}

/// A pull request was opened, changed, merged or declined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestEvent {
    pub action: PullRequestAction,
    pub state: PullRequestState,
    /// Repository and id, title, description (empty when none), source branch, the author's display
    /// name and the PR's web link (`links.html.href`).
    pub pull_request: PullRequest,
}

/// A build status on a commit was created or updated (`repo:commit_status_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStatusEvent {
    pub repo: RepoRef,
    /// The commit's hash (`commit.hash`, or the last segment of `links.commit.href`).
    pub commit: String,
    /// The status key; the same key overwrites the previous status of that build.
    pub key: String,
    pub state: BuildState,
    pub name: Option<String>,
    pub url: Option<String>,
    /// The branch the status is associated with, when the build tool set one.
    pub refname: Option<String>,
}

/// Branches moved by a push (`repo:push`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    pub repo: RepoRef,
    /// Branches created or updated, with their new head. Deleted branches and tags are not listed.
    pub branches: Vec<PushedBranch>,
}

/// One branch's new head after a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedBranch {
    pub name: String,
    pub hash: String,
}

#[derive(Deserialize)]
struct WireRepository {
    full_name: String,
}

#[derive(Deserialize)]
struct WirePullRequestBody {
    repository: WireRepository,
    pullrequest: WirePullRequest,
}

#[derive(Deserialize)]
struct WirePullRequest {
    id: u64,
    title: String,
    #[serde(default)]
    description: Option<String>,
    state: PullRequestState,
    source: WireEnd,
    #[serde(default)]
    author: Option<WireAccount>,
    links: WireLinks,
}

#[derive(Deserialize)]
struct WireEnd {
    branch: WireName,
}

#[derive(Deserialize)]
struct WireName {
    name: String,
}

#[derive(Deserialize)]
struct WireAccount {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
}

#[derive(Deserialize)]
struct WireLinks {
    html: WireHref,
}

#[derive(Deserialize)]
struct WireHref {
    href: String,
}

#[derive(Deserialize)]
struct WireStatusBody {
    repository: WireRepository,
    commit_status: WireStatus,
}

#[derive(Deserialize)]
struct WireStatus {
    key: String,
    state: BuildState,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    refname: Option<String>,
    #[serde(default)]
    commit: Option<WireCommit>,
    #[serde(default)]
    links: Option<WireStatusLinks>,
}

#[derive(Deserialize)]
struct WireCommit {
    hash: String,
}

#[derive(Deserialize)]
struct WireStatusLinks {
    #[serde(default)]
    commit: Option<WireHref>,
}

#[derive(Deserialize)]
struct WirePushBody {
    repository: WireRepository,
    push: WirePush,
}

#[derive(Deserialize)]
struct WirePush {
    #[serde(default)]
    changes: Vec<WireChange>,
}

#[derive(Deserialize)]
struct WireChange {
    #[serde(default)]
    new: Option<WireRef>,
}

#[derive(Deserialize)]
struct WireRef {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    target: Option<WireCommit>,
}

/// Size check, signature check, event key and delivery id, then parse.
///
/// Errors, in that order: [`WebhookError::TooLarge`]; [`WebhookError::MissingSignature`] /
/// [`WebhookError::BadSignature`]; [`WebhookError::MissingHeader`] without `X-Event-Key` or a request id;
/// [`WebhookError::Malformed`] (see [`parse`]).
pub fn ingest(
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    secret: &SecretString,
) -> Result<BitbucketDelivery, WebhookError> {
    check_size(body)?;
    let verified = verify_signature(secret, headers.header(SIGNATURE_HEADER), body)?;
    let event_key = required(headers, EVENT_HEADER)?;
    let request_id =
        required(headers, DELIVERY_HEADER).or_else(|e| required(headers, DC_DELIVERY_HEADER).map_err(|_| e))?;
    Ok(BitbucketDelivery { delivery: DeliveryId::bitbucket(request_id), event: parse(event_key, verified)? })
}

/// Parses a verified body for `event_key`. Keys the sync does not follow are [`BitbucketEvent::Ignored`]
/// without looking at the body; a followed key whose body lacks the fields above (or whose
/// `repository.full_name` is not `workspace/slug`) is [`WebhookError::Malformed`].
pub fn parse(event_key: &str, body: Verified<'_>) -> Result<BitbucketEvent, WebhookError> {
    let action = match event_key {
        "pullrequest:created" => PullRequestAction::Created,
        "pullrequest:updated" => PullRequestAction::Updated,
        "pullrequest:fulfilled" => PullRequestAction::Fulfilled,
        "pullrequest:rejected" => PullRequestAction::Rejected,
        "repo:commit_status_created" | "repo:commit_status_updated" => return build_status(body),
        "repo:push" => return push(body),
        other => return Ok(BitbucketEvent::Ignored { event_key: other.to_owned() }),
    };
    let wire: WirePullRequestBody = serde_json::from_slice(body.body()).map_err(WebhookError::malformed)?;
    let pr = wire.pullrequest;
    let author = pr.author.and_then(|a| a.display_name.or(a.nickname)).unwrap_or_default();
    Ok(BitbucketEvent::PullRequest(PullRequestEvent {
        action,
        state: pr.state,
        pull_request: PullRequest {
            pr: PullRequestRef { repo: repo(&wire.repository)?, id: pr.id },
            title: pr.title,
            description: pr.description.unwrap_or_default(),
            source_branch: pr.source.branch.name,
            author,
            url: pr.links.html.href,
        },
    }))
}

fn repo(r: &WireRepository) -> Result<RepoRef, WebhookError> {
    RepoRef::parse(&r.full_name).map_err(WebhookError::malformed)
}

fn build_status(body: Verified<'_>) -> Result<BitbucketEvent, WebhookError> {
    let wire: WireStatusBody = serde_json::from_slice(body.body()).map_err(WebhookError::malformed)?;
    let s = wire.commit_status;
    let from_link = || {
        let href = s.links.as_ref()?.commit.as_ref()?.href.as_str();
        href.trim_end_matches('/').rsplit('/').next().map(str::to_owned)
    };
    let commit = s
        .commit
        .as_ref()
        .map(|c| c.hash.clone())
        .or_else(from_link)
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| WebhookError::Malformed("commit status without a commit hash".into()))?;
    Ok(BitbucketEvent::BuildStatus(BuildStatusEvent {
        repo: repo(&wire.repository)?,
        commit,
        key: s.key,
        state: s.state,
        name: s.name,
        url: s.url,
        refname: s.refname.filter(|r| !r.is_empty()),
    }))
}

fn push(body: Verified<'_>) -> Result<BitbucketEvent, WebhookError> {
    let wire: WirePushBody = serde_json::from_slice(body.body()).map_err(WebhookError::malformed)?;
    let branches = wire
        .push
        .changes
        .into_iter()
        .filter_map(|c| c.new)
        .filter(|r| r.kind == "branch" || r.kind == "named_branch")
        .filter_map(|r| Some(PushedBranch { hash: r.target?.hash, name: r.name }))
        .collect();
    Ok(BitbucketEvent::Push(PushEvent { repo: repo(&wire.repository)?, branches }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::webhook::MAX_BODY_BYTES;
    use crate::webhook::test_support::fixture;
    use crate::webhook::verify::sign;

    const SECRET: &str = "bitbucket-hook-secret";

    fn secret() -> SecretString {
        SecretString::from(SECRET.to_owned())
    }

    /// Delivers `body` as Bitbucket Cloud would: signed, with an event key and a request id.
    fn deliver(event_key: &str, body: &[u8]) -> Result<BitbucketDelivery, WebhookError> {
        let headers = vec![
            ("X-Event-Key".to_owned(), event_key.to_owned()),
            ("X-Request-UUID".to_owned(), "2f4e1c9a-1111-4a2b-9c3d-000000000001".to_owned()),
            ("X-Hub-Signature".to_owned(), sign(&secret(), body)),
            ("X-Attempt-Number".to_owned(), "1".to_owned()),
        ];
        ingest(&headers, body, &secret())
    }

    fn event(event_key: &str, name: &str) -> BitbucketEvent {
        deliver(event_key, &fixture("bitbucket", name)).unwrap().event
    }

    fn pull_request(event_key: &str, name: &str) -> PullRequestEvent {
        match event(event_key, name) {
            BitbucketEvent::PullRequest(e) => e,
            other => panic!("{name}: {other:?}"),
        }
    }

    /// Every Bitbucket fixture with `webhook` in its name, with the event key its README gives, and what
    /// ingest makes of it.
    #[test]
    fn every_webhook_fixture_has_a_known_outcome() {
        enum Expect {
            PullRequest,
            BuildStatus,
            Push,
            Ignored,
            NotADelivery,
        }
        use Expect::*;
        let table = [
            ("cloud-webhook-pullrequest-created.json", "pullrequest:created", PullRequest),
            ("cloud-webhook-pullrequest-updated.json", "pullrequest:updated", PullRequest),
            ("cloud-webhook-pullrequest-fulfilled.json", "pullrequest:fulfilled", PullRequest),
            ("cloud-webhook-pullrequest-rejected.json", "pullrequest:rejected", PullRequest),
            ("cloud-webhook-repo-commit-status-created.docs-template.json", "repo:commit_status_created", BuildStatus),
            ("cloud-webhook-repo-commit-status-updated.docs-template.json", "repo:commit_status_updated", BuildStatus),
            ("cloud-webhook-repo-push.signed-raw-body.json", "repo:push", Push),
            ("cloud-webhook-pullrequest-comment-created.json", "pullrequest:comment_created", Ignored),
            ("cloud-webhook-issue-created.docs-template.json", "issue:created", Ignored),
            ("cloud-webhook-issue-updated-status-change.docs-template.json", "issue:updated", Ignored),
            ("cloud-webhook-issue-updated-content-change.json", "issue:updated", Ignored),
            ("cloud-webhook-issue-updated-multi-field-change.json", "issue:updated", Ignored),
            ("cloud-webhook-issue-comment-created.docs-template.json", "issue:comment_created", Ignored),
            ("cloud-webhook-issue-comment-created.json", "issue:comment_created", Ignored),
            ("dc-webhook-diagnostics-ping.json", "diagnostics:ping", Ignored),
            ("dc-webhook-pr-opened.json", "pr:opened", Ignored),
            ("dc-webhook-pr-modified.json", "pr:modified", Ignored),
            ("dc-webhook-pr-merged.json", "pr:merged", Ignored),
            ("dc-webhook-pr-merged.iso-dates.json", "pr:merged", Ignored),
            ("dc-webhook-pr-declined.json", "pr:declined", Ignored),
            ("dc-webhook-pr-comment-added.json", "pr:comment:added", Ignored),
            // Hook-management API objects are not delivery bodies: under a followed key they are malformed.
            ("cloud-api-webhook-subscription.json", "repo:push", NotADelivery),
            ("dc-api-webhook-get.json", "pullrequest:created", NotADelivery),
        ];
        for (name, key, expect) in table {
            let result = deliver(key, &fixture("bitbucket", name));
            let ok = match expect {
                PullRequest => matches!(result, Ok(BitbucketDelivery { event: BitbucketEvent::PullRequest(_), .. })),
                BuildStatus => matches!(result, Ok(BitbucketDelivery { event: BitbucketEvent::BuildStatus(_), .. })),
                Push => matches!(result, Ok(BitbucketDelivery { event: BitbucketEvent::Push(_), .. })),
                Ignored => {
                    matches!(&result, Ok(BitbucketDelivery { event: BitbucketEvent::Ignored { event_key }, .. }) if event_key == key)
                }
                NotADelivery => matches!(result, Err(WebhookError::Malformed(_))),
            };
            assert!(ok, "{name}: {result:?}");
        }
    }

    #[test]
    fn a_created_pull_request_carries_what_signals_need() {
        let e = pull_request("pullrequest:created", "cloud-webhook-pullrequest-created.json");
        assert_eq!(e.action, PullRequestAction::Created);
        assert_eq!(e.state, PullRequestState::Open);
        let pr = e.pull_request;
        assert_eq!(pr.pr.repo, RepoRef::parse("amuniz/test-repos").unwrap());
        assert_eq!(pr.pr.id, 735);
        assert_eq!(pr.title, "BUILD test");
        assert_eq!(pr.source_branch, "feature/test");
        assert_eq!(pr.author, "Nikolas Falco");
        assert_eq!(pr.url, "https://bitbucket.org/amuniz/test-repos/pull-requests/735");
    }

    #[test]
    fn an_updated_pull_request_keeps_its_description() {
        let e = pull_request("pullrequest:updated", "cloud-webhook-pullrequest-updated.json");
        assert_eq!(e.action, PullRequestAction::Updated);
        assert_eq!(e.pull_request.pr.to_string(), "nfalco79/test-repos#1");
        assert_eq!(e.pull_request.source_branch, "release/release-1");
        assert_eq!(e.pull_request.description, "* Add license\r\n\r\n* [CI] Release version 1.0.0");
    }

    #[test]
    fn a_fulfilled_pull_request_is_merged() {
        let e = pull_request("pullrequest:fulfilled", "cloud-webhook-pullrequest-fulfilled.json");
        assert_eq!(e.action, PullRequestAction::Fulfilled);
        assert_eq!(e.state, PullRequestState::Merged);
        assert_eq!(e.pull_request.pr.to_string(), "cloudbeers/temp#2");
        assert_eq!(e.pull_request.source_branch, "foo");
        assert_eq!(e.pull_request.author, "Stephen Q. Connolly");
    }

    #[test]
    fn a_rejected_pull_request_is_declined() {
        let e = pull_request("pullrequest:rejected", "cloud-webhook-pullrequest-rejected.json");
        assert_eq!(e.action, PullRequestAction::Rejected);
        assert_eq!(e.state, PullRequestState::Declined);
        assert_eq!(e.pull_request.pr.id, 735);
    }

    #[test]
    fn a_superseded_or_unknown_state_is_kept() {
        for (state, expected) in [
            ("SUPERSEDED", PullRequestState::Superseded),
            ("SOMETHING_NEW", PullRequestState::Other("SOMETHING_NEW".into())),
        ] {
            let mut v: serde_json::Value =
                serde_json::from_slice(&fixture("bitbucket", "cloud-webhook-pullrequest-updated.json")).unwrap();
            v["pullrequest"]["state"] = state.into();
            let BitbucketEvent::PullRequest(e) =
                deliver("pullrequest:updated", &serde_json::to_vec(&v).unwrap()).unwrap().event
            else {
                panic!("not a pull request event")
            };
            assert_eq!(e.state, expected);
        }
    }

    #[test]
    fn a_commit_status_names_the_commit_key_and_state() {
        let BitbucketEvent::BuildStatus(created) =
            event("repo:commit_status_created", "cloud-webhook-repo-commit-status-created.docs-template.json")
        else {
            panic!("not a build status")
        };
        assert_eq!(created.state, BuildState::InProgress);
        assert_eq!(created.repo, RepoRef::parse("team_name/repo_name").unwrap());
        assert_eq!(created.commit, "9fec847784abb10b2fa567ee63b85bd238955d0e");
        assert_eq!(created.key, "mybuildtool");
        assert_eq!(created.name.as_deref(), Some("Unit Tests (Python)"));
        assert_eq!(created.url.as_deref(), Some("https://my-build-tool.com/builds/MY-PROJECT/BUILD-777"));
        assert_eq!(created.refname, None);

        let BitbucketEvent::BuildStatus(updated) =
            event("repo:commit_status_updated", "cloud-webhook-repo-commit-status-updated.docs-template.json")
        else {
            panic!("not a build status")
        };
        assert_eq!(updated.state, BuildState::Successful);
    }

    #[test]
    fn a_commit_status_shaped_like_the_rest_object_reads_commit_hash_and_refname() {
        // The webhook's `commit_status` has the REST object's fields; that object carries `commit.hash`.
        let mut v: serde_json::Value = serde_json::from_slice(&fixture(
            "bitbucket",
            "cloud-webhook-repo-commit-status-updated.docs-template.json",
        ))
        .unwrap();
        v["commit_status"]["commit"] = serde_json::json!({ "hash": "046d9a3c1532acf4cf08fe93235c00e4d673c1d2" });
        v["commit_status"]["refname"] = "feature/test".into();
        v["commit_status"]["state"] = "FAILED".into();
        let BitbucketEvent::BuildStatus(e) =
            deliver("repo:commit_status_updated", &serde_json::to_vec(&v).unwrap()).unwrap().event
        else {
            panic!("not a build status")
        };
        assert_eq!(e.commit, "046d9a3c1532acf4cf08fe93235c00e4d673c1d2");
        assert_eq!(e.refname.as_deref(), Some("feature/test"));
        assert_eq!(e.state, BuildState::Failed);
    }

    #[test]
    fn the_real_signed_push_verifies_with_its_own_secret_and_lists_the_branch() {
        let body = fixture("bitbucket", "cloud-webhook-repo-push.signed-raw-body.json");
        let headers = [
            ("x-event-key", "repo:push"),
            ("x-request-uuid", "7c5d3a3e-2222-4b4b-8e8e-000000000002"),
            ("x-hub-signature", "sha256=f205c729821c6954aff2afe72b965c34015b4baf96ea8ddc2cc44999c014a035"),
        ];
        let d = ingest(&headers, &body, &SecretString::from("Gkvl$k$wyNpQAF42".to_owned())).unwrap();
        assert_eq!(d.delivery, DeliveryId::bitbucket("7c5d3a3e-2222-4b4b-8e8e-000000000002"));
        assert_eq!(
            d.event,
            BitbucketEvent::Push(PushEvent {
                repo: RepoRef::parse("nfalco79/test-repos").unwrap(),
                branches: vec![PushedBranch {
                    name: "feature/webhook".into(),
                    hash: "d7f300a32270053bdfd97a6d64113f58202c33e7".into()
                }],
            })
        );
    }

    #[test]
    fn deleted_branches_and_tags_are_not_listed_as_pushed_branches() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("bitbucket", "cloud-webhook-repo-push.signed-raw-body.json")).unwrap();
        let change = v["push"]["changes"][0].clone();
        let mut deleted = change.clone();
        deleted["new"] = serde_json::Value::Null;
        let mut tag = change.clone();
        tag["new"]["type"] = "tag".into();
        v["push"]["changes"] = serde_json::json!([deleted, tag, change]);
        let BitbucketEvent::Push(e) = deliver("repo:push", &serde_json::to_vec(&v).unwrap()).unwrap().event else {
            panic!("not a push")
        };
        assert_eq!(e.branches.len(), 1);
        assert_eq!(e.branches[0].name, "feature/webhook");
    }

    #[test]
    fn the_delivery_id_is_the_request_uuid() {
        let d = deliver("repo:push", &fixture("bitbucket", "cloud-webhook-repo-push.signed-raw-body.json")).unwrap();
        assert_eq!(d.delivery.as_str(), "bitbucket:2f4e1c9a-1111-4a2b-9c3d-000000000001");
    }

    #[test]
    fn a_data_center_ping_with_its_request_id_is_ignored() {
        let body = fixture("bitbucket", "dc-webhook-diagnostics-ping.json");
        let signature = sign(&secret(), &body);
        let headers = [
            ("X-Event-Key", "diagnostics:ping"),
            ("X-Request-Id", "dc-req-1"),
            ("X-Hub-Signature", signature.as_str()),
        ];
        let d = ingest(&headers, &body, &secret()).unwrap();
        assert_eq!(d.delivery.as_str(), "bitbucket:dc-req-1");
        assert_eq!(d.event, BitbucketEvent::Ignored { event_key: "diagnostics:ping".into() });
    }

    #[test]
    fn missing_event_key_or_request_id_is_a_bad_request() {
        let body = fixture("bitbucket", "cloud-webhook-pullrequest-created.json");
        let signature = sign(&secret(), &body);
        let no_key = [("X-Request-UUID", "u"), ("X-Hub-Signature", signature.as_str())];
        assert_eq!(ingest(&no_key, &body, &secret()).unwrap_err(), WebhookError::MissingHeader(EVENT_HEADER));
        let no_id = [("X-Event-Key", "pullrequest:created"), ("X-Hub-Signature", signature.as_str())];
        assert_eq!(ingest(&no_id, &body, &secret()).unwrap_err(), WebhookError::MissingHeader(DELIVERY_HEADER));
    }

    #[test]
    fn an_unsigned_or_tampered_delivery_is_rejected() {
        let body = fixture("bitbucket", "cloud-webhook-pullrequest-created.json");
        let unsigned = [("X-Event-Key", "pullrequest:created"), ("X-Request-UUID", "u")];
        assert_eq!(ingest(&unsigned, &body, &secret()).unwrap_err(), WebhookError::MissingSignature);
        let signature = sign(&secret(), &body);
        let mut tampered = body.clone();
        tampered[10] ^= 0x20;
        let signed =
            [("X-Event-Key", "pullrequest:created"), ("X-Request-UUID", "u"), ("X-Hub-Signature", signature.as_str())];
        assert_eq!(ingest(&signed, &tampered, &secret()).unwrap_err(), WebhookError::BadSignature);
    }

    #[test]
    fn malformed_json_under_a_followed_key_is_malformed() {
        for key in ["pullrequest:created", "repo:commit_status_updated", "repo:push"] {
            assert!(matches!(deliver(key, b"{\"pullrequest\": "), Err(WebhookError::Malformed(_))), "{key}");
        }
    }

    #[test]
    fn a_repository_without_a_workspace_is_malformed() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("bitbucket", "cloud-webhook-pullrequest-created.json")).unwrap();
        v["repository"]["full_name"] = "test-repos".into();
        assert!(matches!(
            deliver("pullrequest:created", &serde_json::to_vec(&v).unwrap()),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn an_oversize_body_is_rejected_first() {
        let mut body = fixture("bitbucket", "cloud-webhook-pullrequest-created.json");
        body.resize(MAX_BODY_BYTES + 1, b' ');
        assert_eq!(deliver("pullrequest:created", &body).unwrap_err(), WebhookError::TooLarge);
    }
}
