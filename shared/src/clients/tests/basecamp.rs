//! Basecamp client against the scripted server with real Basecamp bodies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::server::{Reply, TestServer, fixture, fixture_json};
use crate::clients::basecamp::{
    self, BasecampClient, BasecampConfig, BasecampTodo, NewTodo, RecordingsQuery, TodoChanges,
};
use crate::clients::{BaseUrl, ClientError, HttpSettings};
use crate::domain::{PersonId, ProjectId, TodoId, TodolistId};
use crate::ports::{ApiError, BasecampApi, SecretError, SecretStore, TodoPatch};

const ACCESS: &str = "bc-access-token-old";
const REFRESH: &str = "bc-refresh-token-do-not-print";
const CLIENT_SECRET: &str = "bc-client-secret-do-not-print";
const TODO: TodoId = TodoId(1_069_480_015);
const PROJECT: ProjectId = ProjectId(2_085_958_505);

/// Secrets in memory, recording every write.
#[derive(Default)]
pub struct MemorySecrets {
    values: Mutex<HashMap<String, String>>,
    pub puts: Mutex<Vec<(String, String)>>,
}

impl MemorySecrets {
    pub fn with_tokens() -> Arc<Self> {
        let s = Self::default();
        s.values.lock().unwrap().insert("basecamp/access".into(), ACCESS.into());
        s.values.lock().unwrap().insert("basecamp/refresh".into(), REFRESH.into());
        Arc::new(s)
    }
    pub fn value(&self, name: &str) -> Option<String> {
        self.values.lock().unwrap().get(name).cloned()
    }
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn get(&self, name: &str) -> Result<SecretString, SecretError> {
        self.value(name).map(SecretString::from).ok_or_else(|| SecretError::Missing(name.into()))
    }
    async fn put(&self, name: &str, value: &SecretString, request_token: &str) -> Result<(), SecretError> {
        self.values.lock().unwrap().insert(name.into(), value.expose_secret().to_owned());
        self.puts.lock().unwrap().push((name.into(), request_token.into()));
        Ok(())
    }
}

/// A client for any Basecamp base URL and token endpoint.
pub fn client(base: &str, token_url: &str, secrets: Arc<MemorySecrets>) -> BasecampClient {
    let config = BasecampConfig {
        base_url: BaseUrl::parse(base).unwrap(),
        token_url: url::Url::parse(token_url).unwrap(),
        client_id: "campbridge-client".into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        access_token_secret: "basecamp/access".into(),
        refresh_token_secret: "basecamp/refresh".into(),
        http: HttpSettings::for_loopback_tests("campbridge-tests (ops@example.test)"),
        default_retry_after: Duration::from_secs(10),
    };
    BasecampClient::new(config, secrets).unwrap()
}

async fn setup() -> (TestServer, BasecampClient, Arc<MemorySecrets>) {
    let server = TestServer::start().await;
    let secrets = MemorySecrets::with_tokens();
    let c = client(&server.url("/195539477/"), &server.url("/authorization/token"), secrets.clone());
    (server, c, secrets)
}

/// The real to-do, with a description and a due date so a lost field would show.
fn todo_with_description() -> Value {
    let mut todo = fixture_json("basecamp/todo-get.json");
    todo["description"] = json!("<div><em>Try that new language!</em></div>");
    todo["due_on"] = json!("2026-09-01");
    todo
}

#[test]
fn the_fixture_bodies_deserialize_into_the_client_types() {
    let parse = |rel: &str| -> Value { fixture_json(rel) };
    let todo: BasecampTodo = serde_json::from_value(parse("basecamp/todo-get.json")).unwrap();
    assert_eq!(todo.assignees[0].id, 1_049_715_930);
    let todos: Vec<BasecampTodo> = serde_json::from_value(parse("basecamp/todos-list.json")).unwrap();
    assert_eq!(todos.len(), 1);
    let projects: Vec<basecamp::Project> = serde_json::from_value(parse("basecamp/projects-list.json")).unwrap();
    assert_eq!(projects.len(), 2);
    let project: basecamp::Project = serde_json::from_value(parse("basecamp/project-get.json")).unwrap();
    assert_eq!(project.todoset_ids(), vec![1_069_479_829]);
    let _: basecamp::Todoset = serde_json::from_value(parse("basecamp/todoset-get.json")).unwrap();
    let _: Vec<basecamp::Todolist> = serde_json::from_value(parse("basecamp/todolists-list.json")).unwrap();
    let _: basecamp::Todolist = serde_json::from_value(parse("basecamp/todolist-get.json")).unwrap();
    let _: Vec<basecamp::Comment> = serde_json::from_value(parse("basecamp/comments-list.json")).unwrap();
    let _: basecamp::Comment = serde_json::from_value(parse("basecamp/comment-get.json")).unwrap();
    let _: Vec<basecamp::Person> = serde_json::from_value(parse("basecamp/people-list.json")).unwrap();
    let _: basecamp::Person = serde_json::from_value(parse("basecamp/person-get.json")).unwrap();
    let hooks: Vec<basecamp::Webhook> = serde_json::from_value(parse("basecamp/webhook-list.json")).unwrap();
    assert_eq!(hooks[0].types, vec!["all"]);
    let hook: basecamp::Webhook =
        serde_json::from_value(parse("basecamp/webhook-get-with-recent-deliveries.json")).unwrap();
    assert!(!hook.recent_deliveries.is_empty());
    let tokens: basecamp::TokenResponse = serde_json::from_str(&fixture("basecamp/oauth-token-response.json")).unwrap();
    assert!(tokens.refresh_token.is_some());
}

#[tokio::test]
async fn a_todo_maps_to_the_domain_todo() {
    let (server, c, _) = setup().await;
    server.on("GET", "/195539477/todos/1069480015.json", Reply::value(200, &todo_with_description()));
    let todo = c.get_todo(PROJECT, TODO).await.unwrap().unwrap();
    assert_eq!(todo.id, TODO);
    assert_eq!(todo.project, PROJECT);
    assert_eq!(todo.project_name, "The Leto Laptop");
    assert_eq!(todo.todolist, TodolistId(1_069_480_012));
    assert_eq!(todo.todolist_name, "Strategy ideas");
    assert_eq!(todo.title, "Clear and simple UI");
    assert_eq!(todo.description, "<div><em>Try that new language!</em></div>");
    assert!(todo.completed && todo.is_active());
    assert_eq!(todo.assignees, vec![PersonId(1_049_715_930)]);
    assert_eq!(todo.creator_name, "Annie Bryan");
    assert_eq!(todo.app_url, "https://3.basecamp.com/195539477/buckets/2085958505/todos/1069480015");

    let req = &server.requests()[0];
    assert_eq!(req.header("authorization"), Some(format!("Bearer {ACCESS}").as_str()));
    assert_eq!(req.header("user-agent"), Some("campbridge-tests (ops@example.test)"));
}

#[tokio::test]
async fn changing_only_the_title_resends_every_other_field() {
    let (server, c, _) = setup().await;
    let before = todo_with_description();
    let mut after = before.clone();
    after["content"] = json!("Clear and simple UI v2");
    after["title"] = json!("Clear and simple UI v2");
    server.on("GET", "/195539477/todos/1069480015.json", Reply::value(200, &before));
    server.on("PUT", "/195539477/todos/1069480015.json", Reply::value(200, &after));

    let patch = TodoPatch { title: Some("Clear and simple UI v2".into()), ..TodoPatch::default() };
    let todo = BasecampApi::update_todo(&c, PROJECT, TODO, &patch).await.unwrap();
    assert_eq!(todo.title, "Clear and simple UI v2");

    let puts = server.requests_to("PUT", "/195539477/todos/1069480015.json");
    assert_eq!(puts.len(), 1);
    assert_eq!(
        puts[0].json(),
        json!({
            "content": "Clear and simple UI v2",
            "description": "<div><em>Try that new language!</em></div>",
            "assignee_ids": [1_049_715_930],
            "completion_subscriber_ids": [1_049_715_930],
            "due_on": "2026-09-01"
        })
    );
    assert_eq!(puts[0].header("content-type"), Some("application/json; charset=utf-8"));
    assert!(server.requests_to("POST", "/195539477/todos/1069480015/completion.json").is_empty());
}

#[tokio::test]
async fn the_put_carries_the_same_fields_as_the_documented_update_request() {
    let current: BasecampTodo = serde_json::from_value(todo_with_description()).unwrap();
    let body = basecamp::full_put_body(&current, &TodoChanges::default());
    let documented = fixture_json("basecamp/todo-update-request.json");
    for key in documented.as_object().unwrap().keys() {
        assert!(body.get(key).is_some(), "the documented update sends {key}");
    }
}

#[tokio::test]
async fn completion_changes_go_through_the_completion_endpoint() {
    let (server, c, _) = setup().await;
    server.on("GET", "/195539477/todos/1069480015.json", Reply::fixture(200, "basecamp/todo-get.json"));
    server.on("DELETE", "/195539477/todos/1069480015/completion.json", Reply::empty(204));
    let patch = TodoPatch { completed: Some(false), ..TodoPatch::default() };
    let todo = BasecampApi::update_todo(&c, PROJECT, TODO, &patch).await.unwrap();
    assert!(!todo.completed);
    assert_eq!(server.requests_to("DELETE", "/195539477/todos/1069480015/completion.json").len(), 1);
    assert!(server.requests_to("PUT", "/195539477/todos/1069480015.json").is_empty(), "no PUT for completion");
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_request_retried() {
    let (server, c, secrets) = setup().await;
    server
        .on(
            "GET",
            "/195539477/todos/1069480015.json",
            Reply::json(401, r#"{"error":"OAuth token expired (old age). Refresh your token."}"#),
        )
        .on("GET", "/195539477/todos/1069480015.json", Reply::fixture(200, "basecamp/todo-get.json"));
    server.on("POST", "/authorization/token", Reply::fixture(200, "basecamp/oauth-token-response.json"));

    assert!(c.todo(TODO).await.unwrap().is_some());

    let tokens = fixture_json("basecamp/oauth-token-response.json");
    let new_access = tokens["access_token"].as_str().unwrap();
    let form = &server.requests_to("POST", "/authorization/token")[0].body;
    let form: HashMap<String, String> = url::form_urlencoded::parse(form.as_bytes()).into_owned().collect();
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], REFRESH);
    assert_eq!(form["client_id"], "campbridge-client");
    assert_eq!(form["client_secret"], CLIENT_SECRET);

    let gets = server.requests_to("GET", "/195539477/todos/1069480015.json");
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[1].header("authorization"), Some(format!("Bearer {new_access}").as_str()));
    assert_eq!(secrets.value("basecamp/access").as_deref(), Some(new_access));
    let puts = secrets.puts.lock().unwrap().clone();
    assert_eq!(puts.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["basecamp/access", "basecamp/refresh"]);
    assert!(puts.iter().all(|(_, token)| token.len() == 32), "idempotency tokens: {puts:?}");

    // The refreshed token is cached: the next call does not read the store or refresh again.
    assert!(c.todo(TODO).await.unwrap().is_some());
    assert_eq!(server.requests_to("POST", "/authorization/token").len(), 1);
}

#[tokio::test]
async fn a_refused_refresh_asks_for_re_authorization() {
    let (server, c, _) = setup().await;
    server.on("GET", "/195539477/todos/1069480015.json", Reply::json(401, r#"{"error":"OAuth token expired"}"#));
    server.on("POST", "/authorization/token", Reply::json(400, r#"{"error":"authorization_expired"}"#));
    let err = c.get_todo(PROJECT, TODO).await.unwrap_err();
    assert!(matches!(err, ApiError::AuthRequired(_)), "{err:?}");
    let shown = err.to_string();
    assert!(shown.starts_with("PROVIDER_AUTH_REQUIRED"), "{shown}");
    assert!(shown.contains("authorization_expired"), "{shown}");
    for secret in [ACCESS, REFRESH, CLIENT_SECRET] {
        assert!(!shown.contains(secret) && !format!("{err:?}").contains(secret));
    }
    assert_eq!(server.requests_to("GET", "/195539477/todos/1069480015.json").len(), 1, "no retry without a token");
}

#[tokio::test]
async fn missing_tokens_ask_for_authorization() {
    let server = TestServer::start().await;
    let c = client(&server.url("/1/"), &server.url("/authorization/token"), Arc::new(MemorySecrets::default()));
    let err = c.projects().await.unwrap_err();
    assert!(matches!(err, ClientError::AuthRequired(_)), "{err:?}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn collections_follow_the_link_header_on_the_same_origin_only() {
    let (server, c, _) = setup().await;
    server.on(
        "GET",
        "/195539477/projects.json",
        Reply::fixture(200, "basecamp/projects-list.json")
            .header("Link", "<{origin}/195539477/projects.json?page=2>; rel=\"next\""),
    );
    server.on("GET", "/195539477/projects.json?page=2", Reply::fixture(200, "basecamp/projects-list.json"));
    assert_eq!(c.projects().await.unwrap().len(), 4);
    assert_eq!(server.requests_to("GET", "/195539477/projects.json").len(), 2);

    server.on(
        "GET",
        "/195539477/people.json",
        Reply::fixture(200, "basecamp/people-list.json")
            .header("Link", "<https://elsewhere.invalid/195539477/people.json?page=2>; rel=\"next\""),
    );
    let err = c.people(None).await.unwrap_err();
    assert!(matches!(err, ClientError::Decode(m) if m.contains("another origin")));
}

#[tokio::test]
async fn a_429_is_rate_limited_with_the_servers_retry_after() {
    let (server, c, _) = setup().await;
    server.on(
        "GET",
        "/195539477/todos/1069480015.json",
        Reply::text(429, "text/plain", "Too Many Requests").header("Retry-After", "3"),
    );
    let err = c.get_todo(PROJECT, TODO).await.unwrap_err();
    assert!(matches!(err, ApiError::RateLimited { retry_after } if retry_after == Duration::from_secs(3)), "{err:?}");
}

#[tokio::test]
async fn a_missing_todo_reads_as_none_and_an_inactive_account_as_forbidden() {
    let (server, c, _) = setup().await;
    server.on("GET", "/195539477/todos/1069480015.json", Reply::empty(404));
    assert!(c.get_todo(PROJECT, TODO).await.unwrap().is_none());
    server.on("GET", "/195539477/projects.json", Reply::empty(404).header("Reason", "Account Inactive"));
    assert!(matches!(c.projects().await.unwrap_err(), ClientError::Forbidden(_)));
}

#[tokio::test]
async fn recordings_are_polled_newest_first_until_the_cursor() {
    let (server, c, _) = setup().await;
    // Page 1: the to-do updated 2026-07-21; page 2: one updated 2026-05-12 (older than the cursor).
    let newer = json!([fixture_json("basecamp/todo-get.json")]);
    server.on(
        "GET",
        "/195539477/projects/recordings.json",
        Reply::value(200, &newer).header("Link", "<{origin}/195539477/projects/recordings.json?page=2>; rel=\"next\""),
    );
    server.on(
        "GET",
        "/195539477/projects/recordings.json?page=2",
        Reply::fixture(200, "basecamp/todos-list.json")
            .header("Link", "<{origin}/195539477/projects/recordings.json?page=3>; rel=\"next\""),
    );
    let query = RecordingsQuery {
        kind: "Todo".into(),
        buckets: vec![PROJECT],
        status: None,
        since: chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").ok().map(|t| t.to_utc()),
        max_pages: None,
    };
    let got = c.recordings(&query).await.unwrap();
    assert!(got.complete, "it reached the cursor");
    assert_eq!(got.recordings.iter().map(|r| r.id).collect::<Vec<_>>(), [1_069_480_015]);
    let reqs = server.requests_to("GET", "/195539477/projects/recordings.json");
    assert_eq!(reqs.len(), 2, "page 3 is past the cursor and never fetched");
    assert_eq!(
        reqs[0].target,
        "/195539477/projects/recordings.json?type=Todo&bucket=2085958505&sort=updated_at&direction=desc"
    );
}

#[tokio::test]
async fn webhooks_are_created_with_explicit_types() {
    let (server, c, _) = setup().await;
    let hook = fixture_json("basecamp/webhook-list.json")[0].clone();
    server.on("POST", "/195539477/buckets/2085958505/webhooks.json", Reply::value(201, &hook));
    server.on("GET", "/195539477/buckets/2085958505/webhooks.json", Reply::fixture(200, "basecamp/webhook-list.json"));
    server.on("PUT", "/195539477/webhooks/1051369971.json", Reply::value(200, &hook));
    server.on("DELETE", "/195539477/webhooks/1051369971.json", Reply::empty(204));

    c.create_webhook(PROJECT, "https://hooks.example.test/bc/t0k", basecamp::SYNC_WEBHOOK_TYPES).await.unwrap();
    let body = server.requests_to("POST", "/195539477/buckets/2085958505/webhooks.json")[0].json();
    assert_eq!(
        body,
        json!({"payload_url": "https://hooks.example.test/bc/t0k", "types": ["Todo", "Todolist", "Comment"]})
    );
    assert_eq!(c.webhooks(PROJECT).await.unwrap()[0].id, 1_051_369_971);
    c.update_webhook(1_051_369_971, "https://hooks.example.test/bc/t0k", &["Todo"], true).await.unwrap();
    assert_eq!(server.requests_to("PUT", "/195539477/webhooks/1051369971.json")[0].json()["active"], true);
    c.delete_webhook(1_051_369_971).await.unwrap();

    let err = c.create_webhook(PROJECT, "https://hooks.example.test/x", &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)));
    assert_eq!(server.requests_to("POST", "/195539477/buckets/2085958505/webhooks.json").len(), 1);
}

#[tokio::test]
async fn comments_are_listed_and_posted_as_html() {
    let (server, c, _) = setup().await;
    server.on(
        "GET",
        "/195539477/recordings/1069480015/comments.json",
        Reply::fixture(200, "basecamp/comments-list.json"),
    );
    server.on(
        "POST",
        "/195539477/recordings/1069480015/comments.json",
        Reply::fixture(201, "basecamp/comment-get.json"),
    );
    let comments = c.list_comments(PROJECT, TODO).await.unwrap();
    assert_eq!(comments.len(), 1);
    assert!(!comments[0].author_name.is_empty());
    let id = c
        .post_comment(PROJECT, TODO, "<div>Jira: <a href=\"https://x.test/browse/WEB-1\">WEB-1</a></div>")
        .await
        .unwrap();
    assert_eq!(id.0, fixture_json("basecamp/comment-get.json")["id"].as_i64().unwrap());
    let body = server.requests_to("POST", "/195539477/recordings/1069480015/comments.json")[0].json();
    assert_eq!(body, json!({"content": "<div>Jira: <a href=\"https://x.test/browse/WEB-1\">WEB-1</a></div>"}));
}

#[tokio::test]
async fn a_new_todo_sends_only_what_is_set() {
    let (server, c, _) = setup().await;
    server.on("POST", "/195539477/todolists/1069480012/todos.json", Reply::fixture(201, "basecamp/todo-get.json"));
    let new = NewTodo { content: "Ship it".into(), assignee_ids: vec![1_049_715_930], ..NewTodo::default() };
    c.create_todo(TodolistId(1_069_480_012), &new).await.unwrap();
    let body = server.requests_to("POST", "/195539477/todolists/1069480012/todos.json")[0].json();
    assert_eq!(body, json!({"content": "Ship it", "assignee_ids": [1_049_715_930]}));
}

#[test]
fn a_user_agent_without_a_contact_is_refused_and_debug_hides_secrets() {
    let secrets = MemorySecrets::with_tokens();
    let mut config = BasecampConfig {
        base_url: BaseUrl::parse("http://127.0.0.1:9/1/").unwrap(),
        token_url: url::Url::parse("http://127.0.0.1:9/authorization/token").unwrap(),
        client_id: "id".into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        access_token_secret: "a".into(),
        refresh_token_secret: "r".into(),
        http: HttpSettings::for_loopback_tests("campbridge"),
        default_retry_after: Duration::from_secs(1),
    };
    assert!(matches!(BasecampClient::new(config.clone(), secrets.clone()), Err(ClientError::Config(_))));
    config.http = HttpSettings::for_loopback_tests("campbridge (ops@example.test)");
    let c = BasecampClient::new(config, secrets).unwrap();
    assert!(!format!("{c:?}").contains(CLIENT_SECRET));
}
