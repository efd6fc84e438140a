//! campbridge's Basecamp client through the cases of the official SDK's conformance suite that cover what
//! it does (basecamp/basecamp-sdk `conformance/tests/`: `todos_write.json`, `pagination.json`,
//! `retry.json`, `status-codes.json`, `error-mapping.json`, `integer-precision.json`). The suite is not
//! published in a package, so the cases are restated here in our words, each naming the case it follows;
//! the server answers what the case's mock answers. Where campbridge differs by design it says so:
//! it never retries inside a request (a 429 or a 5xx becomes a delay of the queued job), so the SDK's
//! "retries on 503/429" cases become "reports the delay, after exactly one request".

use std::time::Duration;

use serde_json::{Value, json};

use super::basecamp::{MemorySecrets, client};
use super::server::{Reply, TestServer};
use crate::clients::ClientError;
use crate::clients::basecamp::{BasecampClient, RecordingsQuery, TodoChanges};
use crate::domain::{ProjectId, TodoId};

const ACCOUNT: &str = "/999";

async fn setup() -> (TestServer, BasecampClient) {
    let server = TestServer::start().await;
    let c =
        client(&server.url(&format!("{ACCOUNT}/")), &server.url("/authorization/token"), MemorySecrets::with_tokens());
    (server, c)
}

/// The to-do every `todos_write` case reads first: every writable field set.
fn full_todo() -> Value {
    json!({
        "id": 456, "status": "active", "visible_to_clients": false,
        "created_at": "2024-01-15T10:00:00Z", "updated_at": "2024-01-15T10:00:00Z",
        "title": "Buy milk", "inherits_status": true, "type": "Todo",
        "url": "https://3.basecampapi.com/999/buckets/1/todos/456.json",
        "app_url": "https://3.basecamp.com/999/buckets/1/todos/456",
        "content": "Buy milk", "description": "<p>From the store</p>",
        "due_on": "2024-03-01", "starts_on": "2024-02-01", "completed": false, "position": 1,
        "parent": {"id": 2, "title": "Todolist", "type": "Todolist"},
        "bucket": {"id": 1, "name": "Project", "type": "Project"},
        "creator": {"id": 1, "name": "Test User"},
        "assignees": [{"id": 100, "name": "Jane Doe"}],
        "completion_subscribers": [{"id": 555, "name": "Sub Scriber"}]
    })
}

fn todo_path() -> String {
    format!("{ACCOUNT}/todos/456.json")
}

/// todos_write.json, "update-merge: content-only update preserves every unset field": GET, then one PUT of
/// the full writable state to the flat route — description, both dates, assignee and subscriber ids — and
/// no `notify` (sent only when true).
#[tokio::test]
async fn update_merge_resends_every_unset_field_and_no_notify() {
    let (server, c) = setup().await;
    server.on("GET", &todo_path(), Reply::value(200, &full_todo()));
    server.on("PUT", &todo_path(), Reply::value(200, &full_todo()));
    let changes = TodoChanges { content: Some("New title".into()), ..TodoChanges::default() };
    c.update_todo(TodoId(456), &changes).await.unwrap();
    let requests = server.requests();
    let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["GET", "PUT"]);
    assert!(requests.iter().all(|r| r.path() == todo_path()));
    assert_eq!(
        requests[1].json(),
        json!({
            "content": "New title",
            "description": "<p>From the store</p>",
            "due_on": "2024-03-01",
            "starts_on": "2024-02-01",
            "assignee_ids": [100],
            "completion_subscriber_ids": [555]
        }),
        "the whole writable state, and no notify"
    );
}

/// todos_write.json, "edit-clear": clearing the description and the assignees sends them present and empty,
/// while the untouched fields are carried over.
#[tokio::test]
async fn clearing_fields_sends_them_present_and_empty() {
    let (server, c) = setup().await;
    server.on("GET", &todo_path(), Reply::value(200, &full_todo()));
    server.on("PUT", &todo_path(), Reply::value(200, &full_todo()));
    let changes =
        TodoChanges { description: Some(String::new()), assignee_ids: Some(Vec::new()), ..TodoChanges::default() };
    c.update_todo(TodoId(456), &changes).await.unwrap();
    let put = &server.requests_to("PUT", &todo_path())[0].json();
    assert_eq!(put["description"], json!(""));
    assert_eq!(put["assignee_ids"], json!([]));
    assert_eq!(put["content"], json!("Buy milk"));
    assert_eq!(put["due_on"], json!("2024-03-01"));
    assert_eq!(put["completion_subscriber_ids"], json!([555]));
}

/// integer-precision.json: an id past 2^53 (9007199254740993, which an f64 rounds to …992) comes back exact.
#[tokio::test]
async fn ids_past_two_to_the_53_are_kept_exactly() {
    let (server, c) = setup().await;
    let id = 9_007_199_254_740_993_i64;
    server.on(
        "GET",
        &format!("{ACCOUNT}/projects/{id}.json"),
        Reply::json(
            200,
            format!(r#"{{"id": {id}, "name": "Large ID Project", "status": "active", "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"}}"#),
        ),
    );
    let project = c.project(ProjectId(id)).await.unwrap().unwrap();
    assert_eq!(project.id, id);
    let mut todo = full_todo();
    todo["id"] = json!(id + 2);
    todo["bucket"]["id"] = json!(id);
    todo["assignees"][0]["id"] = json!(id + 4);
    server.on("GET", &format!("{ACCOUNT}/todos/{}.json", id + 2), Reply::value(200, &todo));
    let got = c.todo(TodoId(id + 2)).await.unwrap().unwrap().to_todo();
    assert_eq!((got.id.0, got.project.0, got.assignees[0].0), (id + 2, id, id + 4));
}

/// pagination.json: a list follows `Link: rel="next"` (here root-relative, as the case's mock sends it) and
/// stops on a page without one.
#[tokio::test]
async fn lists_follow_a_relative_next_link_and_stop_without_one() {
    let (server, c) = setup().await;
    let path = format!("{ACCOUNT}/projects.json");
    server.on(
        "GET",
        &path,
        Reply::json(200, r#"[{"id": 1, "name": "A"}, {"id": 2, "name": "B"}]"#)
            .header("Link", &format!("<{ACCOUNT}/projects.json?page=2>; rel=\"next\""))
            .header("X-Total-Count", "3"),
    );
    server.on("GET", &path, Reply::json(200, r#"[{"id": 3, "name": "C"}]"#));
    let ids: Vec<i64> = c.projects().await.unwrap().iter().map(|p| p.id).collect();
    assert_eq!(ids, [1, 2, 3]);
    let targets: Vec<String> = server.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets, [path.clone(), format!("{path}?page=2")]);
}

/// retry.json, "GET operation retries on 429 with Retry-After" (2 s): campbridge reports the 2 s delay after
/// one request, and the job is retried then.
#[tokio::test]
async fn a_429_reports_its_retry_after_after_one_request() {
    let (server, c) = setup().await;
    server.on("GET", &todo_path(), Reply::json(429, r#"{"error": "Rate limit exceeded"}"#).header("Retry-After", "2"));
    let err = c.todo(TodoId(456)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::RateLimited { retry_after } if retry_after == Duration::from_secs(2)),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

/// retry.json, "Retry-After HTTP-date format respected": a date already past is no delay to wait for, so
/// the client's standard delay applies (the SDK "falls back to standard backoff").
#[tokio::test]
async fn a_retry_after_date_in_the_past_falls_back_to_the_standard_delay() {
    let (server, c) = setup().await;
    server.on("GET", &todo_path(), Reply::empty(429).header("Retry-After", "Wed, 09 Jun 2021 10:18:14 GMT"));
    let err = c.todo(TodoId(456)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::RateLimited { retry_after } if retry_after == Duration::from_secs(10)),
        "the client's default delay, not zero: {err:?}"
    );
}

/// retry.json, "POST with 429 is not retried" and "POST operation does NOT retry": one request, a delay.
#[tokio::test]
async fn a_create_is_never_sent_twice() {
    let (server, c) = setup().await;
    let path = format!("{ACCOUNT}/recordings/456/comments.json");
    server.on("POST", &path, Reply::json(429, r#"{"error": "Rate limit exceeded"}"#).header("Retry-After", "1"));
    server.on("POST", &path, Reply::empty(503));
    assert!(matches!(c.create_comment(456, "<div>x</div>").await, Err(ClientError::RateLimited { .. })));
    assert_eq!(server.requests_to("POST", &path).len(), 1, "a 429 is reported, not retried");
    assert!(matches!(c.create_comment(456, "<div>x</div>").await, Err(ClientError::Transient(_))));
    assert_eq!(server.requests_to("POST", &path).len(), 2, "a 503 is reported, not retried");
}

/// retry.json "GET operation retries on 503" / "GET 500 is not retried", status-codes.json "500 … is
/// surfaced": one request each; both are transient for the job (it is retried later, never dead-lettered
/// for a server error).
#[tokio::test]
async fn server_errors_are_transient_after_one_request() {
    for status in [500, 502, 503, 504] {
        let (server, c) = setup().await;
        server.on("GET", &todo_path(), Reply::json(status, r#"{"error": "Service Unavailable"}"#));
        let err = c.todo(TodoId(456)).await.unwrap_err();
        assert!(matches!(err, ClientError::Transient(_)), "{status}: {err:?}");
        assert_eq!(server.requests().len(), 1, "{status}");
    }
}

/// error-mapping.json / status-codes.json: 403 forbidden, 404 not found (never retried), 400 and 422
/// validation with the server's message.
#[tokio::test]
async fn client_errors_map_to_their_kinds_with_the_servers_message() {
    let (server, c) = setup().await;
    server.on("GET", &format!("{ACCOUNT}/projects/12345.json"), Reply::json(403, r#"{"error": "Forbidden"}"#));
    let err = c.project(ProjectId(12345)).await.unwrap_err();
    assert!(matches!(&err, ClientError::Forbidden(m) if m == "Forbidden"), "{err:?}");

    server.on("GET", &format!("{ACCOUNT}/projects/99999.json"), Reply::json(404, r#"{"error": "Not found"}"#));
    assert!(c.project(ProjectId(99999)).await.unwrap().is_none(), "404 reads as gone");
    assert_eq!(server.requests_to("GET", &format!("{ACCOUNT}/projects/99999.json")).len(), 1, "never retried");

    let list = format!("{ACCOUNT}/todolists/67890/todos.json");
    server.on("POST", &list, Reply::json(422, r#"{"error": "Content can't be blank"}"#));
    let new = crate::clients::basecamp::NewTodo { content: String::new(), ..Default::default() };
    let err = c.create_todo(crate::domain::TodolistId(67890), &new).await.unwrap_err();
    assert!(matches!(&err, ClientError::Invalid(m) if m == "Content can't be blank"), "{err:?}");
    assert_eq!(server.requests_to("POST", &list).len(), 1);
}

/// error-mapping.json, the field-keyed cases: `{"errors": {field: [messages]}}` and the webhooks
/// controller's bare `{field: [messages]}` at 400 flatten to "field: message; message, field: message",
/// fields sorted, after a top-level `error` or `message` in parentheses; a malformed entry is skipped.
#[tokio::test]
async fn field_errors_flatten_into_the_message() {
    let cases = [
        (json!({"errors": {"color": ["is not a valid color"]}}), "color: is not a valid color"),
        (
            json!({"errors": {"name": ["can't be blank", "is too short"], "color": ["is not a valid color"]}}),
            "color: is not a valid color, name: can't be blank; is too short",
        ),
        (
            json!({"error": "Validation failed", "errors": {"color": ["is not a valid color"]}}),
            "Validation failed (color: is not a valid color)",
        ),
        (json!({"error": {}, "errors": {"color": ["is not a valid color"]}}), "color: is not a valid color"),
        (
            json!({"message": "Validation failed", "errors": {"color": ["is not a valid color"]}}),
            "Validation failed (color: is not a valid color)",
        ),
        (json!({"errors": {"color": ["is not a valid color"], "base": "invalid"}}), "color: is not a valid color"),
    ];
    for (body, expected) in cases {
        let (server, c) = setup().await;
        server.on("PUT", &format!("{ACCOUNT}/comments/77.json"), Reply::value(422, &body));
        let err = c.update_comment(crate::domain::BasecampCommentId(77), "<div>x</div>").await.unwrap_err();
        assert!(matches!(&err, ClientError::Invalid(m) if m == expected), "{body}: {err:?}");
    }

    let (server, c) = setup().await;
    let hooks = format!("{ACCOUNT}/buckets/456/webhooks.json");
    server.on(
        "POST",
        &hooks,
        Reply::value(400, &json!({"types": ["is invalid"], "payload_url": ["is not a valid URL", "is too long"]})),
    );
    let err = c.create_webhook(ProjectId(456), "https://example.com/hook", &["Todo"]).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Invalid(m) if m == "payload_url: is not a valid URL; is too long, types: is invalid"),
        "{err:?}"
    );
}

/// The recordings walk pages the same way, and a poll for one project names it as the `bucket` filter.
#[tokio::test]
async fn the_recordings_poll_keeps_big_bucket_ids_exact_in_its_query() {
    let (server, c) = setup().await;
    let path = format!("{ACCOUNT}/projects/recordings.json");
    server.on("GET", &path, Reply::json(200, "[]"));
    let query = RecordingsQuery {
        kind: "Todo".into(),
        buckets: vec![ProjectId(9_007_199_254_740_993)],
        status: None,
        since: None,
        max_pages: Some(1),
    };
    c.recordings(&query).await.unwrap();
    assert!(server.requests()[0].target.contains("bucket=9007199254740993"), "{}", server.requests()[0].target);
}
