//! Jira client against the scripted server with real Jira bodies.

use std::collections::BTreeSet;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};

use super::server::{Reply, TestServer, fixture, fixture_json};
use crate::clients::jira::{self, Issue, JiraClient, JiraConfig, SearchPage, Transitions};
use crate::clients::{BaseUrl, ClientError, Credentials, HttpSettings};
use crate::domain::TrackerTarget;
use crate::domain::{
    DevItemRef, JiraAccountId, JiraIssueId, JiraKey, JiraProjectKey, NewDevItem, Priority, RouteId, StatusCategory,
    SyncMarker, TodoId,
};
use crate::ports::{ApiError, DevItemPatch, RemoteLink, TrackerApi};

const TOKEN: &str = "jira-api-token-do-not-print";

/// A client for any Jira base URL (the scripted server here, a simulator elsewhere).
pub fn client(base: &str) -> JiraClient {
    let auth = Credentials::Basic { user: "bot@example.test".into(), secret: SecretString::from(TOKEN) };
    let mut config =
        JiraConfig::new(BaseUrl::parse(base).unwrap(), auth, HttpSettings::for_loopback_tests("campbridge-tests"));
    config.default_retry_after = Duration::from_millis(1500);
    JiraClient::new(config).unwrap()
}

fn item() -> DevItemRef {
    DevItemRef::Jira { id: JiraIssueId::parse("10305").unwrap(), key: JiraKey::parse("SEN-5").unwrap() }
}

pub fn target() -> TrackerTarget {
    TrackerTarget::Jira { project: JiraProjectKey::parse("WEB").unwrap(), issue_type: "Task".into() }
}

fn marker() -> SyncMarker {
    SyncMarker { route: RouteId::parse("web").unwrap(), todo: TodoId(1_069_480_015) }
}

#[test]
fn the_fixture_bodies_deserialize_into_the_client_types() {
    let transitions: Transitions = serde_json::from_str(&fixture("jira/cloud-rest-transitions.json")).unwrap();
    assert_eq!(transitions.transitions.len(), 4);
    assert!(transitions.transitions[3].to.is_none(), "the last real transition has no `to`");
    for rel in ["jira/cloud-rest-search-jql-page1.fixture.json", "jira/cloud-rest-search-jql.docs-example.json"] {
        let page: SearchPage = serde_json::from_str(&fixture(rel)).unwrap();
        assert_eq!(page.issues.len(), 1, "{rel}");
    }
    for rel in ["jira/cloud-rest-issue-get.v3.docs-example.json", "jira/cloud-rest-issue-get.v2-capture.json"] {
        let issue: Issue = serde_json::from_str(&fixture(rel)).unwrap();
        assert!(!issue.key.is_empty(), "{rel}");
    }
    let users: Vec<jira::User> =
        serde_json::from_str(&fixture("jira/cloud-rest-user-search.docs-example.json")).unwrap();
    assert_eq!(users[0].account_id.as_deref(), Some("5b10a2844c20165700ede21g"));
    let comment: jira::Comment =
        serde_json::from_str(&fixture("jira/cloud-rest-comment-add-response.docs-example.json")).unwrap();
    assert_eq!(comment.id, "10000");
    let created: jira::CreatedIssue =
        serde_json::from_str(&fixture("jira/cloud-rest-issue-create-response.docs-example.json")).unwrap();
    assert_eq!(created.key, "ED-24");
}

#[tokio::test]
async fn a_v3_issue_maps_to_a_dev_item_with_html_description() {
    let server = TestServer::start().await;
    let mut issue = fixture_json("jira/cloud-rest-issue-get.v2-capture.json");
    // The v2 capture carries every mapped field; give it the ADF description a v3 read returns
    // (taken from the v3 docs example of the same endpoint).
    issue["fields"]["description"] =
        fixture_json("jira/cloud-rest-issue-get.v3.docs-example.json")["fields"]["description"].clone();
    server.on("GET", "/rest/api/3/issue/10305", Reply::value(200, &issue));

    let got = client(&server.url("/")).get_item(&item()).await.unwrap().unwrap();
    assert_eq!(got.item, item());
    assert_eq!(got.summary, "example summary");
    assert_eq!(got.description, "<div>Main order flow broken</div>");
    assert_eq!(got.status, StatusCategory::New);
    assert_eq!(got.status_name, "To Do");
    assert_eq!(got.priority, Some(Priority::Medium));
    assert_eq!(got.assignee, None);
    assert_eq!(got.url, server.url("/browse/SEN-5"));
    assert_eq!(got.updated_at.to_rfc3339(), "2018-06-28T21:12:29.014+00:00");

    let req = &server.requests_to("GET", "/rest/api/3/issue/10305")[0];
    assert!(req.target.contains("fields=summary%2Cdescription%2Cstatus"), "{}", req.target);
    assert!(req.header("authorization").is_some_and(|a| a.starts_with("Basic ")));
}

#[tokio::test]
async fn a_plain_string_description_from_v2_becomes_html() {
    let server = TestServer::start().await;
    server.on("GET", "/rest/api/3/issue/10305", Reply::fixture(200, "jira/cloud-rest-issue-get.v2-capture.json"));
    let got = client(&server.url("/")).get_item(&item()).await.unwrap().unwrap();
    assert_eq!(got.description, "<div>example bug report</div>");
}

#[tokio::test]
async fn a_missing_issue_reads_as_none() {
    let server = TestServer::start().await;
    server.on(
        "GET",
        "/rest/api/3/issue/10305",
        Reply::json(
            404,
            r#"{"errorMessages":["Issue does not exist or you do not have permission to see it."],"errors":{}}"#,
        ),
    );
    assert!(client(&server.url("/")).get_item(&item()).await.unwrap().is_none());
}

#[test]
fn the_transition_is_chosen_by_status_category_never_by_name() {
    let t: Transitions = serde_json::from_str(&fixture("jira/cloud-rest-transitions.json")).unwrap();
    let pick = |c| jira::choose_transition(&t.transitions, c).map(|t| t.id.clone());
    assert_eq!(pick(StatusCategory::Done).as_deref(), Some("31"));
    assert_eq!(pick(StatusCategory::New).as_deref(), Some("11"));
    assert_eq!(pick(StatusCategory::Indeterminate).as_deref(), Some("21"));
}

#[tokio::test]
async fn update_item_posts_the_transition_into_the_done_category() {
    let server = TestServer::start().await;
    server.on("GET", "/rest/api/3/issue/10305/transitions", Reply::fixture(200, "jira/cloud-rest-transitions.json"));
    server.on("POST", "/rest/api/3/issue/10305/transitions", Reply::empty(204));
    let patch = DevItemPatch { status: Some(StatusCategory::Done), ..DevItemPatch::default() };
    client(&server.url("/")).update_item(&item(), &patch).await.unwrap();

    assert!(server.requests_to("PUT", "/rest/api/3/issue/10305").is_empty(), "no field edits, no edit request");
    let posts = server.requests_to("POST", "/rest/api/3/issue/10305/transitions");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].json(), json!({"transition": {"id": "31"}}));
}

#[tokio::test]
async fn a_transition_screen_that_requires_a_resolution_is_retried_once_with_done() {
    let server = TestServer::start().await;
    server.on("GET", "/rest/api/3/issue/10305/transitions", Reply::fixture(200, "jira/cloud-rest-transitions.json"));
    server
        .on(
            "POST",
            "/rest/api/3/issue/10305/transitions",
            Reply::json(400, r#"{"errorMessages":[],"errors":{"resolution":"Field 'resolution' is required"}}"#),
        )
        .on("POST", "/rest/api/3/issue/10305/transitions", Reply::empty(204));
    client(&server.url("/")).transition_to("10305", StatusCategory::Done).await.unwrap();

    let posts = server.requests_to("POST", "/rest/api/3/issue/10305/transitions");
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].json(), json!({"transition": {"id": "31"}, "fields": {"resolution": {"name": "Done"}}}));
}

#[tokio::test]
async fn no_transition_into_the_category_is_a_typed_error() {
    let server = TestServer::start().await;
    let mut t = fixture_json("jira/cloud-rest-transitions.json");
    // Keep only the transitions that do not lead to `done` (the real list minus "Done").
    t["transitions"].as_array_mut().unwrap().retain(|t| t["id"] != "31");
    server.on("GET", "/rest/api/3/issue/10305/transitions", Reply::value(200, &t));
    server.on("GET", "/rest/api/3/issue/10305", Reply::fixture(200, "jira/cloud-rest-issue-get.v2-capture.json"));
    let err = client(&server.url("/")).transition_to("10305", StatusCategory::Done).await.unwrap_err();
    assert!(matches!(err, ClientError::NoTransition(StatusCategory::Done)), "{err:?}");
    assert!(server.requests_to("POST", "/rest/api/3/issue/10305/transitions").is_empty());
}

#[tokio::test]
async fn no_transition_is_needed_when_the_issue_is_already_in_the_category() {
    let server = TestServer::start().await;
    let mut t = fixture_json("jira/cloud-rest-transitions.json");
    t["transitions"].as_array_mut().unwrap().retain(|t| t["id"] != "11");
    server.on("GET", "/rest/api/3/issue/10305/transitions", Reply::value(200, &t));
    // The capture's status is "To Do", category `new`.
    server.on("GET", "/rest/api/3/issue/10305", Reply::fixture(200, "jira/cloud-rest-issue-get.v2-capture.json"));
    let taken = client(&server.url("/")).transition_to("10305", StatusCategory::New).await.unwrap();
    assert!(taken.is_none());
    assert!(server.requests_to("POST", "/rest/api/3/issue/10305/transitions").is_empty());
}

#[tokio::test]
async fn field_edits_go_out_in_one_put_with_label_and_component_operations() {
    let server = TestServer::start().await;
    server.on("PUT", "/rest/api/3/issue/10305", Reply::empty(204));
    let patch = DevItemPatch {
        summary: Some("[BC][WEB] New title".into()),
        description: Some("<div><strong>Hi</strong></div>".into()),
        assignee: Some(Some(JiraAccountId("5b10ac8d82e05b22cc7d4ef5".into()))),
        due: Some(None),
        labels_add: BTreeSet::from(["sprint-1".to_owned()]),
        labels_remove: BTreeSet::from(["sprint-0".to_owned()]),
        components_add: BTreeSet::from(["Web".to_owned()]),
        ..DevItemPatch::default()
    };
    client(&server.url("/")).update_item(&item(), &patch).await.unwrap();
    let puts = server.requests_to("PUT", "/rest/api/3/issue/10305");
    assert_eq!(puts.len(), 1);
    assert_eq!(
        puts[0].json(),
        json!({
            "fields": {
                "summary": "[BC][WEB] New title",
                "description": {"type": "doc", "version": 1, "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": "Hi", "marks": [{"type": "strong"}]}]}]},
                "assignee": {"accountId": "5b10ac8d82e05b22cc7d4ef5"},
                "duedate": null
            },
            "update": {
                "labels": [{"add": "sprint-1"}, {"remove": "sprint-0"}],
                "components": [{"add": {"name": "Web"}}]
            }
        })
    );
}

#[tokio::test]
async fn a_string_description_rejected_by_v3_maps_to_a_field_error() {
    let server = TestServer::start().await;
    server.on("PUT", "/rest/api/3/issue/10305", Reply::fixture(400, "jira/cloud-rest-error-400-adf-required.json"));
    let patch = DevItemPatch { description: Some("x".into()), ..DevItemPatch::default() };
    let err = client(&server.url("/")).update_item(&item(), &patch).await.unwrap_err();
    match err {
        ApiError::FieldRejected { field, message } => {
            assert_eq!(field, "description");
            assert!(message.contains("Atlassian Document"), "{message}");
        }
        other => panic!("expected FieldRejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_rejected_assignee_on_create_is_a_field_error_and_errors_without_a_field_are_invalid() {
    let server = TestServer::start().await;
    server
        .on(
            "POST",
            "/rest/api/3/issue",
            Reply::json(400, r#"{"errorMessages":[],"errors":{"assignee":"User 'x' cannot be assigned issues."}}"#),
        )
        .on(
            "POST",
            "/rest/api/3/issue",
            Reply::fixture(400, "jira/cloud-rest-error-400-required-field.docs-example.json"),
        );
    let draft = draft();
    let c = client(&server.url("/"));
    let err = c.create_item(&target(), &draft).await.unwrap_err();
    assert!(matches!(&err, ApiError::FieldRejected { field, .. } if field == "assignee"), "{err:?}");
    let err = c.create_item(&target(), &draft).await.unwrap_err();
    assert!(matches!(&err, ApiError::Invalid(m) if m.contains("Field 'priority' is required")), "{err:?}");
}

#[tokio::test]
async fn a_remote_link_without_title_names_the_field() {
    let server = TestServer::start().await;
    server.on(
        "POST",
        "/rest/api/3/issue/10305/remotelink",
        Reply::fixture(400, "jira/cloud-rest-error-400-field-errors.docs-example.json"),
    );
    let link =
        RemoteLink { global_id: "system=basecamp&id=1/2".into(), url: "https://x.test".into(), title: String::new() };
    let err = client(&server.url("/")).upsert_remote_link("10305", &link).await.unwrap_err();
    assert!(matches!(&err, ClientError::FieldRejected { field, .. } if field == "title"), "{err:?}");
}

pub fn draft() -> NewDevItem {
    NewDevItem {
        summary: "[BC][WEB] Clear and simple UI".into(),
        description: "<div>Context</div><ul><li>one</li></ul>".into(),
        assignee: Some(JiraAccountId("5b10a2844c20165700ede21g".into())),
        priority: Some(Priority::Highest),
        labels: BTreeSet::from(["basecamp".to_owned()]),
        components: BTreeSet::from(["Web".to_owned()]),
        due: chrono::NaiveDate::from_ymd_opt(2026, 9, 1),
        fields: Default::default(),
        marker: marker(),
    }
}

#[tokio::test]
async fn create_item_sends_the_marker_label_property_and_an_adf_description() {
    let server = TestServer::start().await;
    server.on(
        "POST",
        "/rest/api/3/issue",
        Reply::fixture(201, "jira/cloud-rest-issue-create-response.docs-example.json"),
    );
    server.on("GET", "/rest/api/3/issue/10000", Reply::fixture(200, "jira/cloud-rest-issue-get.v2-capture.json"));
    let created = client(&server.url("/")).create_item(&target(), &draft()).await.unwrap();
    assert_eq!(created.summary, "example summary", "the item is read back after create");

    let body = server.requests_to("POST", "/rest/api/3/issue")[0].json();
    let fields = &body["fields"];
    assert_eq!(fields["project"], json!({"key": "WEB"}));
    assert_eq!(fields["issuetype"], json!({"name": "Task"}));
    assert_eq!(fields["labels"], json!(["basecamp", "bc-1069480015"]));
    assert_eq!(fields["assignee"], json!({"accountId": "5b10a2844c20165700ede21g"}));
    assert_eq!(fields["priority"], json!({"name": "Highest"}));
    assert_eq!(fields["duedate"], json!("2026-09-01"));
    assert_eq!(fields["components"], json!([{"name": "Web"}]));
    assert_eq!(fields["description"]["type"], "doc");
    assert_eq!(fields["description"]["content"][1]["type"], "bulletList");
    assert_eq!(body["properties"], json!([{"key": "campbridge", "value": {"route": "web", "todo": 1_069_480_015}}]));
}

#[tokio::test]
async fn find_by_marker_searches_the_marker_label_in_the_project() {
    let server = TestServer::start().await;
    let page = json!({"issues": [fixture_json("jira/cloud-rest-issue-get.v2-capture.json")], "isLast": true});
    server.on("POST", "/rest/api/3/search/jql", Reply::value(200, &page));
    let found = client(&server.url("/")).find_by_marker(&target(), &marker()).await.unwrap().unwrap();
    assert_eq!(found.item.display_name(), "SEN-5");
    let body = server.requests_to("POST", "/rest/api/3/search/jql")[0].json();
    assert_eq!(body["jql"], "project = \"WEB\" AND labels = \"bc-1069480015\" ORDER BY created ASC");
    assert!(body["fields"].as_array().unwrap().contains(&json!("updated")));
}

#[tokio::test]
async fn search_follows_next_page_tokens_until_the_last_page() {
    let server = TestServer::start().await;
    server
        .on("POST", "/rest/api/3/search/jql", Reply::fixture(200, "jira/cloud-rest-search-jql-page1.fixture.json"))
        .on("POST", "/rest/api/3/search/jql", Reply::fixture(200, "jira/cloud-rest-search-jql.docs-example.json"));
    let issues = client(&server.url("/")).search("project = TES ORDER BY updated ASC", &["summary"], 50).await.unwrap();
    assert_eq!(issues.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["TES-41", "ED-1"]);
    let bodies: Vec<Value> = server.requests_to("POST", "/rest/api/3/search/jql").iter().map(|r| r.json()).collect();
    assert_eq!(bodies.len(), 2);
    assert!(bodies[0].get("nextPageToken").is_none());
    assert_eq!(bodies[1]["nextPageToken"], "opaque-token-page-2");
    assert_eq!(bodies[1]["jql"], "project = TES ORDER BY updated ASC");
    assert_eq!(bodies[1]["maxResults"], 50);
}

#[tokio::test]
async fn a_search_that_repeats_its_token_stops_with_an_error() {
    let server = TestServer::start().await;
    server.on("POST", "/rest/api/3/search/jql", Reply::fixture(200, "jira/cloud-rest-search-jql-page1.fixture.json"));
    let err = client(&server.url("/")).search("project = TES", &["summary"], 50).await.unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)), "{err:?}");
}

#[tokio::test]
async fn a_429_with_an_html_body_is_rate_limited_with_the_servers_retry_after() {
    let server = TestServer::start().await;
    let page = "<html><body><h1>429 Too Many Requests</h1></body></html>";
    server.on("GET", "/rest/api/3/issue/10305", Reply::text(429, "text/html", page).header("Retry-After", "7")).on(
        "GET",
        "/rest/api/3/issue/10305",
        Reply::text(429, "text/html", page),
    );
    let c = client(&server.url("/"));
    let err = c.get_item(&item()).await.unwrap_err();
    assert!(matches!(err, ApiError::RateLimited { retry_after } if retry_after == Duration::from_secs(7)), "{err:?}");
    let err = c.get_item(&item()).await.unwrap_err();
    assert!(
        matches!(err, ApiError::RateLimited { retry_after } if retry_after == Duration::from_millis(1500)),
        "without Retry-After the configured default applies: {err:?}"
    );
}

#[tokio::test]
async fn auth_and_removed_endpoints_map_to_typed_errors() {
    let server = TestServer::start().await;
    server.on("GET", "/rest/api/3/myself", Reply::fixture(401, "jira/cloud-gateway-error-401-scope-mismatch.json"));
    server.on("POST", "/rest/api/3/search/jql", Reply::fixture(410, "jira/cloud-rest-error-410-search-removed.json"));
    server.on("GET", "/rest/api/3/user/search", Reply::json(403, r#"{"errorMessages":["No permission"],"errors":{}}"#));
    server.on("POST", "/rest/api/3/issue/10305/comment", Reply::text(503, "text/html", "<html>down</html>"));
    let c = client(&server.url("/"));

    let err = c.myself().await.unwrap_err();
    let shown = ApiError::from(err).to_string();
    assert!(shown.starts_with("PROVIDER_AUTH_REQUIRED"), "{shown}");
    assert!(shown.contains("scope does not match"), "{shown}");
    assert!(!shown.contains(TOKEN));

    assert!(matches!(c.search("x", &[], 1).await.unwrap_err(), ClientError::Gone(m) if m.contains("search/jql")));
    assert!(matches!(c.search_users("mia").await.unwrap_err(), ClientError::Forbidden(_)));
    let err = c.add_comment("10305", &json!({"type": "doc", "version": 1, "content": []})).await.unwrap_err();
    assert!(matches!(&err, ClientError::Transient(m) if !m.contains("html")), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn remote_links_carry_a_global_id_and_properties_round_trip() {
    let server = TestServer::start().await;
    server.on(
        "POST",
        "/rest/api/3/issue/10305/remotelink",
        Reply::fixture(200, "jira/cloud-rest-remotelink-response.docs-example.json"),
    );
    server.on("PUT", "/rest/api/3/issue/10305/properties/campbridge", Reply::empty(201));
    server.on(
        "GET",
        "/rest/api/3/issue/10305/properties/campbridge",
        Reply::json(200, r#"{"key":"campbridge","value":{"route":"web","todo":1069480015}}"#),
    );
    let c = client(&server.url("/"));
    let link = RemoteLink {
        global_id: "system=basecamp&id=2085958505/1069480015".into(),
        url: "https://3.basecamp.com/195539477/buckets/2085958505/todos/1069480015".into(),
        title: "Basecamp: Clear and simple UI".into(),
    };
    TrackerApi::upsert_remote_link(&c, &item(), &link).await.unwrap();
    let body = server.requests_to("POST", "/rest/api/3/issue/10305/remotelink")[0].json();
    assert_eq!(body["globalId"], "system=basecamp&id=2085958505/1069480015");
    assert_eq!(body["object"]["url"], link.url);
    assert_eq!(body["object"]["title"], link.title);

    c.put_property("10305", jira::MARKER_PROPERTY, &json!({"route": "web", "todo": 1_069_480_015})).await.unwrap();
    let value = c.get_property("10305", jira::MARKER_PROPERTY).await.unwrap();
    assert_eq!(value, Some(json!({"route": "web", "todo": 1_069_480_015})));
}

#[tokio::test]
async fn comments_and_users_read_from_real_bodies() {
    let server = TestServer::start().await;
    server.on(
        "POST",
        "/rest/api/3/issue/10305/comment",
        Reply::fixture(201, "jira/cloud-rest-comment-add-response.docs-example.json"),
    );
    server.on("GET", "/rest/api/3/user/search", Reply::fixture(200, "jira/cloud-rest-user-search.docs-example.json"));
    let c = client(&server.url("/"));
    let adf = crate::richtext::html_to_adf("<div>PM: shipped</div>");
    let comment = c.add_comment("10305", &adf).await.unwrap();
    assert!(crate::richtext::adf_to_html(comment.body.as_ref().unwrap()).starts_with("<div>Lorem ipsum"));
    assert_eq!(server.requests_to("POST", "/rest/api/3/issue/10305/comment")[0].json(), json!({"body": adf}));

    let users = c.search_users("mia@example.test").await.unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(
        server.requests_to("GET", "/rest/api/3/user/search")[0].target,
        "/rest/api/3/user/search?query=mia%40example.test"
    );
}

#[tokio::test]
async fn a_gateway_base_url_keeps_its_path_and_sends_a_bearer_token() {
    let server = TestServer::start().await;
    server.on(
        "GET",
        "/ex/jira/abc-cloud/rest/api/3/myself",
        Reply::json(200, r#"{"accountId":"5b10","displayName":"Bot"}"#),
    );
    let config = JiraConfig::new(
        BaseUrl::parse(&server.url("/ex/jira/abc-cloud")).unwrap(),
        Credentials::Bearer(SecretString::from(TOKEN)),
        HttpSettings::for_loopback_tests("campbridge-tests"),
    );
    let c = JiraClient::new(config).unwrap();
    assert_eq!(c.myself().await.unwrap().display_name.as_deref(), Some("Bot"));
    let req = &server.requests()[0];
    assert_eq!(req.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert!(!format!("{c:?}").contains(TOKEN), "Debug must not print the token");
}
