//! Bitbucket client against the scripted server with real Bitbucket bodies.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};

use super::server::{Reply, TestServer, fixture, fixture_json};
use crate::clients::bitbucket::{self, BitbucketClient, BitbucketConfig, PullRequest, WebhookSpec};
use crate::clients::http::Reply as RawReply;
use crate::clients::{BaseUrl, ClientError, Credentials, HttpSettings};
use crate::domain::RepoRef;
use crate::domain::{BuildState, PullRequestState};

const TOKEN: &str = "bb-api-token-do-not-print";
const RATE_LIMIT_BODY: &str = "Rate limit for this resource has been exceeded";

/// A client for any Bitbucket base URL.
pub fn client(base: &str) -> BitbucketClient {
    BitbucketClient::new(BitbucketConfig {
        base_url: BaseUrl::parse(base).unwrap(),
        auth: Credentials::Basic { user: "bot@example.test".into(), secret: SecretString::from(TOKEN) },
        http: HttpSettings::for_loopback_tests("campbridge-tests"),
        rate_limit_delay: bitbucket::RATE_LIMIT_DELAY,
    })
    .unwrap()
}

fn repo() -> RepoRef {
    RepoRef::parse("amuniz/test-repos").unwrap()
}

#[test]
fn the_fixture_bodies_deserialize_into_the_client_types() {
    let user: bitbucket::Account = serde_json::from_str(&fixture("bitbucket/cloud-api-user-get.legacy.json")).unwrap();
    assert!(user.uuid.is_some());
    let repo: bitbucket::Repository =
        serde_json::from_str(&fixture("bitbucket/cloud-api-repository-get.json")).unwrap();
    assert_eq!(repo.full_name, "amuniz/test-repos");
    assert!(repo.has_issues.is_some());
    let page: bitbucket::Page<PullRequest> =
        serde_json::from_str(&fixture("bitbucket/cloud-api-pullrequests-list-paginated.json")).unwrap();
    assert_eq!(page.values.len(), 5);
    assert!(page.next.is_none(), "the captured page is the last one");
    let pr: PullRequest = serde_json::from_str(&fixture("bitbucket/cloud-api-pullrequest-get.json")).unwrap();
    assert!(pr.source_branch().is_some() && pr.html_url().is_some());
    let status: bitbucket::CommitStatus =
        serde_json::from_str(&fixture("bitbucket/cloud-api-commit-build-status-get.json")).unwrap();
    assert_eq!(status.state, BuildState::Failed);
    let hook: bitbucket::WebhookSubscription =
        serde_json::from_str(&fixture("bitbucket/cloud-api-webhook-subscription.json")).unwrap();
    assert_eq!(hook.secret_set, Some(true));
}

#[tokio::test]
async fn pull_requests_follow_next_links() {
    let server = TestServer::start().await;
    let mut first = fixture_json("bitbucket/cloud-api-pullrequests-list-paginated.json");
    first["next"] = json!("{origin}/2.0/repositories/amuniz/test-repos/pullrequests?page=2&state=OPEN&state=MERGED");
    server.on("GET", "/2.0/repositories/amuniz/test-repos/pullrequests", Reply::value(200, &first));
    server.on(
        "GET",
        "/2.0/repositories/amuniz/test-repos/pullrequests?page=2&state=OPEN&state=MERGED",
        Reply::fixture(200, "bitbucket/cloud-api-pullrequests-list-paginated.json"),
    );
    let prs = client(&server.url("/2.0/"))
        .pull_requests(&repo(), &[PullRequestState::Open, PullRequestState::Merged])
        .await
        .unwrap();
    assert_eq!(prs.len(), 10);
    let reqs = server.requests_to("GET", "/2.0/repositories/amuniz/test-repos/pullrequests");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].target, "/2.0/repositories/amuniz/test-repos/pullrequests?state=OPEN&state=MERGED&pagelen=50");
    assert!(reqs[0].header("authorization").is_some_and(|a| a.starts_with("Basic ")));
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_never_followed() {
    let server = TestServer::start().await;
    let mut first = fixture_json("bitbucket/cloud-api-pullrequests-list-paginated.json");
    first["next"] = json!("https://elsewhere.invalid/2.0/repositories/amuniz/test-repos/pullrequests?page=2");
    server.on("GET", "/2.0/repositories/amuniz/test-repos/pullrequests", Reply::value(200, &first));
    let err = client(&server.url("/2.0/")).pull_requests(&repo(), &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::Decode(m) if m.contains("another origin")));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_plain_text_429_is_one_request_and_a_delay_in_minutes_never_a_sleep() {
    let server = TestServer::start().await;
    server.on("GET", "/2.0/user", Reply::text(429, "text/plain", RATE_LIMIT_BODY)).on(
        "GET",
        "/2.0/user",
        Reply::fixture(200, "bitbucket/cloud-api-user-get.legacy.json"),
    );
    let err = client(&server.url("/2.0/")).user().await.unwrap_err();
    assert!(
        matches!(err, ClientError::RateLimited { retry_after } if retry_after >= Duration::from_secs(60)),
        "{err:?}"
    );
    assert_eq!(server.requests_to("GET", "/2.0/user").len(), 1, "no retry inside the request");
}

#[tokio::test]
async fn error_bodies_map_to_typed_errors() {
    let server = TestServer::start().await;
    server.on("GET", "/2.0/repositories/dev/null", Reply::fixture(404, "bitbucket/cloud-api-error-404-not-found.json"));
    server.on("GET", "/2.0/user", Reply::fixture(401, "bitbucket/cloud-api-error-401-token-invalid.json"));
    server.on(
        "GET",
        "/2.0/repositories/amuniz/test-repos/pullrequests/1",
        Reply::fixture(410, "bitbucket/cloud-api-error-410-change-2770-deprecated.json"),
    );
    server.on(
        "POST",
        "/2.0/repositories/amuniz/test-repos/hooks",
        Reply::fixture(400, "bitbucket/cloud-api-error-400-with-fields.json"),
    );
    server.on("GET", "/2.0/repositories/amuniz/test-repos", Reply::text(503, "text/html", "<html>busy</html>"));
    let c = client(&server.url("/2.0/"));

    assert!(c.repository(&RepoRef::parse("dev/null").unwrap()).await.unwrap().is_none());
    let err = c.user().await.unwrap_err();
    assert!(matches!(&err, ClientError::AuthRequired(m) if m.contains("Token is invalid")), "{err:?}");
    assert!(err.to_string().starts_with("PROVIDER_AUTH_REQUIRED"));
    let err = c.pull_request(&repo(), 1).await.unwrap_err();
    assert!(matches!(&err, ClientError::Gone(m) if m.contains("CHANGE-2770")), "{err:?}");
    let err = c.create_webhook(&repo(), &spec()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::FieldRejected { field, message } if field == "parents" && message.contains("Commit not found")),
        "{err:?}"
    );
    let err = c.repository(&repo()).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn a_removed_issue_endpoint_says_issues_moved_to_jira() {
    let server = TestServer::start().await;
    server.on(
        "GET",
        "/2.0/repositories/amuniz/test-repos/issues/1",
        Reply::fixture(410, "bitbucket/cloud-api-error-410-resource-removed.json"),
    );
    let err = client(&server.url("/2.0/")).legacy_issue(&repo(), 1).await.unwrap_err();
    assert!(matches!(err, ClientError::IssuesRemoved));
    let shown = err.to_string();
    assert!(shown.contains("2026-08-20") && shown.contains("Jira"), "{shown}");

    // The same mapping from the error layer alone.
    let reply = RawReply {
        status: reqwest::StatusCode::GONE,
        headers: [(reqwest::header::CONTENT_TYPE, "application/json".parse().unwrap())].into_iter().collect(),
        body: fixture("bitbucket/cloud-api-error-410-resource-removed.json").into_bytes(),
    };
    assert!(matches!(bitbucket::error_from("/2.0/repositories/a/b/issues", &reply), ClientError::IssuesRemoved));
    assert!(
        matches!(bitbucket::error_from("/1.0/user", &reply), ClientError::Gone(m) if m.contains("Resource removed"))
    );
}

fn spec() -> WebhookSpec {
    WebhookSpec {
        description: "campbridge".into(),
        url: "https://hooks.example.test/bitbucket".into(),
        events: vec!["pullrequest:created".into(), "pullrequest:fulfilled".into(), "repo:commit_status_updated".into()],
        secret: SecretString::from("whsec-do-not-print"),
        active: true,
    }
}

#[tokio::test]
async fn webhooks_are_created_with_a_secret_and_managed_by_uuid() {
    let server = TestServer::start().await;
    let path = "/2.0/repositories/amuniz/test-repos/hooks";
    let one = "/2.0/repositories/amuniz/test-repos/hooks/%7B202cf34e-7ccf-44b7-ba6b-8827a14d5324%7D";
    server.on("POST", path, Reply::fixture(201, "bitbucket/cloud-api-webhook-subscription.json"));
    let page = json!({"values": [fixture_json("bitbucket/cloud-api-webhook-subscription.json")], "pagelen": 10});
    server.on("GET", path, Reply::value(200, &page));
    server.on("PUT", one, Reply::fixture(200, "bitbucket/cloud-api-webhook-subscription.json"));
    server.on("DELETE", one, Reply::empty(204));
    let c = client(&server.url("/2.0/"));

    let hook = c.create_webhook(&repo(), &spec()).await.unwrap();
    let body: Value = server.requests_to("POST", path)[0].json();
    assert_eq!(body["secret"], "whsec-do-not-print");
    assert_eq!(body["events"], json!(["pullrequest:created", "pullrequest:fulfilled", "repo:commit_status_updated"]));
    assert_eq!(body["active"], true);
    assert!(!format!("{:?}", spec()).contains("whsec-do-not-print"));

    assert_eq!(c.webhooks(&repo()).await.unwrap().len(), 1);
    c.update_webhook(&repo(), &hook.uuid, &spec()).await.unwrap();
    c.delete_webhook(&repo(), &hook.uuid).await.unwrap();
    assert_eq!(server.requests_to("DELETE", one).len(), 1);
}

#[tokio::test]
async fn repository_pull_request_and_statuses_read_from_real_bodies() {
    let server = TestServer::start().await;
    server.on(
        "GET",
        "/2.0/repositories/amuniz/test-repos",
        Reply::fixture(200, "bitbucket/cloud-api-repository-get.json"),
    );
    server.on(
        "GET",
        "/2.0/repositories/amuniz/test-repos/pullrequests/1",
        Reply::fixture(200, "bitbucket/cloud-api-pullrequest-get.json"),
    );
    let statuses = json!({"values": [fixture_json("bitbucket/cloud-api-commit-build-status-get.json")], "pagelen": 10});
    server.on(
        "GET",
        "/2.0/repositories/amuniz/test-repos/commit/046d9a3c1532acf4cf08fe93235c00e4d673c1d2/statuses",
        Reply::value(200, &statuses),
    );
    let c = client(&server.url("/2.0/"));
    let repository = c.repository(&repo()).await.unwrap().unwrap();
    assert_eq!(repository.has_issues, fixture_json("bitbucket/cloud-api-repository-get.json")["has_issues"].as_bool());
    assert_eq!(c.pull_request(&repo(), 1).await.unwrap().unwrap().id, 1);
    let got = c.commit_statuses(&repo(), "046d9a3c1532acf4cf08fe93235c00e4d673c1d2").await.unwrap();
    assert_eq!(got[0].key, "fe7e71305b004dd8dd5a124e1dae4c33");
}

#[tokio::test]
async fn an_access_token_goes_out_as_bearer_and_never_prints() {
    let server = TestServer::start().await;
    server.on(
        "GET",
        "/2.0/repositories/amuniz/test-repos",
        Reply::fixture(200, "bitbucket/cloud-api-repository-get.json"),
    );
    let c = BitbucketClient::new(BitbucketConfig {
        base_url: BaseUrl::parse(&server.url("/2.0/")).unwrap(),
        auth: Credentials::Bearer(SecretString::from(TOKEN)),
        http: HttpSettings::for_loopback_tests("campbridge-tests"),
        rate_limit_delay: bitbucket::RATE_LIMIT_DELAY,
    })
    .unwrap();
    assert!(c.repository(&repo()).await.unwrap().is_some());
    assert_eq!(server.requests()[0].header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert!(!format!("{c:?}").contains(TOKEN));
}
