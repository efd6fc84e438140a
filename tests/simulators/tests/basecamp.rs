//! Basecamp simulator behaviour checked against the documented payloads and quirks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use campbridge_simulators::basecamp::{self, ANNIE, CHERYL, Options, Simulator, TodoWrite, VICTOR};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Receiver, assert_same_keys, fixture};

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(sim: &Simulator) -> Self {
        Self { http: reqwest::Client::new(), base: sim.base_url(), token: sim.access_token() }
    }
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("User-Agent", "campbridge-tests (ops@example.com)")
    }
    async fn get(&self, path: &str) -> Value {
        let response = self.req(reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> reqwest::Response {
        self.req(method, path).json(&body).send().await.unwrap()
    }
}

async fn new_todo(sim: &Simulator, write: TodoWrite) -> i64 {
    let list = sim.list_id("Sprint 1").await.unwrap();
    sim.create_todo(list, write, VICTOR).await.unwrap()
}

#[tokio::test]
async fn main_get_endpoints_carry_the_fixture_keys() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let todo_id = new_todo(
        &sim,
        TodoWrite { content: Some("Ship it".into()), assignee_ids: Some(vec![ANNIE]), ..TodoWrite::default() },
    )
    .await;
    let comment_id = sim.comment(todo_id, "<div>hi</div>", VICTOR).await.unwrap();
    let list_id = sim.list_id("Bugs").await.unwrap();

    let project = c.get(&format!("/projects/{}.json", basecamp::PROJECT_ID)).await;
    assert_same_keys(&project, &fixture("basecamp", "project-get.json"), "project");
    let dock_todoset = project["dock"].as_array().unwrap().iter().find(|t| t["name"] == "todoset").unwrap();
    assert_eq!(dock_todoset["id"], json!(basecamp::TODOSET_ID));

    let projects = c.get("/projects.json").await;
    assert_same_keys(&projects[0], &fixture("basecamp", "projects-list.json")[0], "projects list item");
    let todoset = c.get(&format!("/buckets/{}/todosets/{}.json", basecamp::PROJECT_ID, basecamp::TODOSET_ID)).await;
    assert_same_keys(&todoset, &fixture("basecamp", "todoset-get.json"), "todoset");
    let lists = c.get(&format!("/todosets/{}/todolists.json", basecamp::TODOSET_ID)).await;
    assert_same_keys(&lists[0], &fixture("basecamp", "todolists-list.json")[0], "todolists item");
    assert_eq!(lists.as_array().unwrap().len(), 3);
    let list = c.get(&format!("/todolists/{list_id}.json")).await;
    let mut list_fixture = fixture("basecamp", "todolist-get.json");
    list_fixture["position"] = json!(1);
    assert_same_keys(&list, &list_fixture, "todolist");

    sim.complete_todo(todo_id, CHERYL).await.unwrap();
    let todo = c.get(&format!("/todos/{todo_id}.json")).await;
    assert_same_keys(&todo, &fixture("basecamp", "todo-get.json"), "completed todo");
    assert_eq!(todo["assignees"][0]["id"], json!(ANNIE));
    assert_eq!(todo["completion"]["creator"]["id"], json!(CHERYL));
    sim.uncomplete_todo(todo_id, CHERYL).await.unwrap();
    let todos = c.get(&format!("/todolists/{}/todos.json", sim.list_id("Sprint 1").await.unwrap())).await;
    assert_same_keys(&todos[0], &fixture("basecamp", "todos-list.json")[0], "todos list item");

    let comment = c.get(&format!("/comments/{comment_id}.json")).await;
    assert_same_keys(&comment, &fixture("basecamp", "comment-get.json"), "comment");
    let comments = c.get(&format!("/recordings/{todo_id}/comments.json")).await;
    assert_same_keys(&comments[0], &fixture("basecamp", "comments-list.json")[0], "comments item");
    let people = c.get("/people.json").await;
    assert_same_keys(&people[0], &fixture("basecamp", "people-list.json")[0], "person");
}

#[tokio::test]
async fn put_without_assignee_ids_clears_assignees_description_and_due_date() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let id = new_todo(
        &sim,
        TodoWrite {
            content: Some("Draft".into()),
            description: Some("<div>notes</div>".into()),
            assignee_ids: Some(vec![ANNIE]),
            due_on: Some("2026-12-01".into()),
            ..TodoWrite::default()
        },
    )
    .await;
    let response = c.send(reqwest::Method::PUT, &format!("/todos/{id}.json"), json!({"content": "Renamed"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let todo: Value = response.json().await.unwrap();
    assert_eq!(todo["content"], "Renamed");
    assert_eq!(todo["assignees"], json!([]));
    assert_eq!(todo["description"], "");
    assert_eq!(todo["due_on"], Value::Null);
    assert_eq!(sim.calls().count("PUT", "/todos/{id}.json"), 1);
}

#[tokio::test]
async fn a_burst_of_sixty_requests_meets_429_with_retry_after() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let mut limited = 0;
    for _ in 0..60 {
        let response = c.req(reqwest::Method::GET, "/projects.json").send().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=10).contains(&retry));
            limited += 1;
        }
    }
    assert_eq!(limited, 10);
}

#[tokio::test]
async fn requests_without_user_agent_or_valid_token_are_refused() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let no_ua = c.http.get(format!("{}/projects.json", sim.base_url())).bearer_auth(&c.token).send().await.unwrap();
    assert_eq!(no_ua.status(), StatusCode::BAD_REQUEST);
    let wrong = c
        .http
        .get(format!("{}/projects.json", sim.base_url()))
        .bearer_auth("nope")
        .header("User-Agent", "t (t@example.com)")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    sim.expire_token(&c.token).await;
    let expired = c.req(reqwest::Method::GET, "/projects.json").send().await.unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let refreshed: Value = c
        .http
        .post(format!(
            "{}/authorization/token?type=refresh&refresh_token={}&client_id={}&client_secret={}",
            sim.launchpad_url(),
            basecamp::REFRESH_TOKEN,
            basecamp::CLIENT_ID,
            basecamp::CLIENT_SECRET
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_same_keys(&refreshed, &fixture("basecamp", "oauth-token-response.json"), "token response");
    let fresh = Client { token: refreshed["access_token"].as_str().unwrap().to_owned(), ..Client::new(&sim) };
    fresh.get("/projects.json").await;
    let auth: Value = fresh
        .http
        .get(format!("{}/authorization.json", sim.launchpad_url()))
        .bearer_auth(&fresh.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_same_keys(&auth, &fixture("basecamp", "oauth-authorization.json"), "authorization");
    assert_eq!(auth["accounts"][0]["href"], json!(sim.base_url()));
}

#[tokio::test]
async fn projects_paginate_with_link_headers() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    for n in 0..20 {
        sim.create_project(&format!("Project {n}")).await;
    }
    let c = Client::new(&sim);
    let first = c.req(reqwest::Method::GET, "/projects.json").send().await.unwrap();
    assert_eq!(first.headers()["x-total-count"], "21");
    let link = first.headers()["link"].to_str().unwrap().to_owned();
    let page1: Vec<Value> = first.json().await.unwrap();
    assert_eq!(page1.len(), 15);
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let second = c.http.get(next).bearer_auth(&c.token).header("User-Agent", "t (t@e.com)").send().await.unwrap();
    assert!(second.headers().get("link").is_none());
    let page2: Vec<Value> = second.json().await.unwrap();
    assert_eq!(page2.len(), 6);
}

#[tokio::test]
async fn records_of_another_bucket_are_not_found() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let other = sim.create_project("Elsewhere").await;
    let id = new_todo(&sim, TodoWrite { content: Some("x".into()), ..TodoWrite::default() }).await;
    let c = Client::new(&sim);
    let response = c.req(reqwest::Method::GET, &format!("/buckets/{other}/todos/{id}.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    c.get(&format!("/buckets/{}/todos/{id}.json", basecamp::PROJECT_ID)).await;
    assert_eq!(sim.calls().count("GET", "/todos/{id}.json"), 2);
}

async fn register_hook(c: &Client, receiver: &Receiver, types: Value) -> Value {
    let response = c
        .send(
            reqwest::Method::POST,
            &format!("/buckets/{}/webhooks.json", basecamp::PROJECT_ID),
            json!({"payload_url": receiver.url, "types": types}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

#[tokio::test]
async fn webhooks_deliver_thin_unsigned_payloads_for_subscribed_types() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let receiver = Receiver::start().await;
    let hook = register_hook(&c, &receiver, json!(["Todo"])).await;
    assert_same_keys(&hook, &fixture("basecamp", "webhook-list.json")[0], "webhook");

    let id = new_todo(&sim, TodoWrite { content: Some("Call caterer".into()), ..TodoWrite::default() }).await;
    sim.complete_todo(id, VICTOR).await.unwrap();
    sim.comment(id, "<div>not subscribed</div>", VICTOR).await.unwrap();
    sim.settle().await;

    let got = receiver.received();
    let kinds: Vec<String> = got.iter().map(|r| r.json()["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["todo_created", "todo_completed"]);
    let template = fixture("basecamp", "webhook-event-todo-completed.json");
    let body = got[1].json();
    assert_same_keys(&body, &template, "webhook payload");
    assert_same_keys(&body["recording"], &template["recording"], "thin recording");
    assert_eq!(body["recording"]["content"], "Call caterer");
    assert_eq!(got[1].header("user-agent").unwrap(), "Basecamp3 Webhook");
    assert!(got[1].header("x-hub-signature").is_none());

    let detail = c.get(&format!("/webhooks/{}.json", hook["id"])).await;
    assert_same_keys(&detail, &fixture("basecamp", "webhook-get-with-recent-deliveries.json"), "webhook get");
    assert_eq!(detail["recent_deliveries"].as_array().unwrap().len(), 2);
}

/// Deliveries the receiver got for one event id.
fn deliveries_of(receiver: &Receiver, event_id: &Value) -> usize {
    receiver.received().iter().filter(|r| r.json()["id"] == *event_id).count()
}

#[tokio::test]
async fn a_failed_event_is_retried_ten_times_over_hours_then_the_webhook_is_deactivated() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let receiver = Receiver::start().await;
    receiver.respond_with(500);
    let hook = register_hook(&c, &receiver, json!(["Todo"])).await;
    new_todo(&sim, TodoWrite { content: Some("t".into()), ..TodoWrite::default() }).await;
    sim.settle().await;
    let event = receiver.received()[0].json()["id"].clone();
    assert_eq!(deliveries_of(&receiver, &event), 1);
    assert_eq!(sim.retries_waiting(), 1, "the failed event waits for its retry");

    // The waits grow polynomially: n⁴ + 2 s after the n-th attempt, about 4–5 hours for all ten.
    sim.advance_clock(std::time::Duration::from_secs(2)).await;
    assert_eq!(deliveries_of(&receiver, &event), 1, "not before 3 s");
    sim.advance_clock(std::time::Duration::from_secs(2)).await;
    assert_eq!(deliveries_of(&receiver, &event), 2, "the second attempt after 3 s");
    sim.advance_clock(std::time::Duration::from_secs(3600)).await;
    // Attempts 3–7 come 18, 83, 258, 627 and 1298 s (+ up to 15 %) after the one before: 2287–2628 s after
    // the first; the eighth waits 2403 s more.
    assert_eq!(deliveries_of(&receiver, &event), 7, "seven attempts within the first hour");
    assert_eq!(c.get(&format!("/webhooks/{}.json", hook["id"])).await["active"], json!(true));
    sim.advance_clock(std::time::Duration::from_secs(4 * 3600)).await;
    assert_eq!(deliveries_of(&receiver, &event), 10, "ten attempts in all");
    assert_eq!(sim.retries_waiting(), 0);
    let detail = c.get(&format!("/webhooks/{}.json", hook["id"])).await;
    assert_eq!(detail["active"], json!(false), "deactivated silently once the event exhausted its attempts");

    // Nothing more is sent to a deactivated hook; re-enabling it through PUT makes it deliver again.
    receiver.respond_with(200);
    let id = new_todo(&sim, TodoWrite { content: Some("later".into()), ..TodoWrite::default() }).await;
    sim.settle().await;
    assert_eq!(receiver.received().len(), 10);
    let response = c
        .send(
            reqwest::Method::PUT,
            &format!("/webhooks/{}.json", hook["id"]),
            json!({"payload_url": receiver.url, "types": ["Todo"], "active": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    sim.complete_todo(id, VICTOR).await.unwrap();
    sim.settle().await;
    assert_eq!(receiver.received().len(), 11);
}

#[tokio::test]
async fn ten_different_events_failing_once_each_do_not_deactivate_the_webhook() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let receiver = Receiver::start().await;
    receiver.respond_with(503);
    let hook = register_hook(&c, &receiver, json!(["Todo"])).await;
    let id = new_todo(&sim, TodoWrite { content: Some("t".into()), ..TodoWrite::default() }).await;
    for n in 0..11 {
        sim.edit_todo(id, basecamp::TodoEdit { content: Some(format!("t{n}")), ..Default::default() }, VICTOR)
            .await
            .unwrap();
    }
    sim.settle().await;
    assert_eq!(receiver.received().len(), 12, "twelve events, one failed attempt each");
    assert_eq!(c.get(&format!("/webhooks/{}.json", hook["id"])).await["active"], json!(true));

    // The receiver recovers: every event's retry gets through, once.
    receiver.respond_with(200);
    sim.advance_clock(std::time::Duration::from_secs(10)).await;
    assert_eq!(receiver.received().len(), 24);
    assert_eq!(sim.retries_waiting(), 0);
    let mut ids: Vec<String> = receiver.received().iter().map(|r| r.json()["id"].to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "a retry carries the same event id");
    assert_eq!(c.get(&format!("/webhooks/{}.json", hook["id"])).await["active"], json!(true));
}

#[tokio::test]
async fn a_delivery_that_never_connects_is_lost_silently_and_the_hook_stays_active() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    // A port nothing listens on: the connection is refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let response = c
        .send(
            reqwest::Method::POST,
            &format!("/buckets/{}/webhooks.json", basecamp::PROJECT_ID),
            json!({"payload_url": format!("http://{closed}/hook"), "types": ["Todo"]}),
        )
        .await;
    let hook: Value = response.json().await.unwrap();
    new_todo(&sim, TodoWrite { content: Some("t".into()), ..TodoWrite::default() }).await;
    sim.settle().await;
    sim.advance_clock(std::time::Duration::from_secs(6 * 3600)).await;
    let detail = c.get(&format!("/webhooks/{}.json", hook["id"])).await;
    assert_eq!(detail["active"], json!(true), "connection failures do not deactivate");
    assert_eq!(detail["recent_deliveries"].as_array().unwrap().len(), 1, "and are not retried");
    assert_eq!(detail["recent_deliveries"][0]["response"]["code"], json!(0));
}

#[tokio::test]
async fn webhook_writes_are_validated_with_rails_field_errors() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let path = format!("/buckets/{}/webhooks.json", basecamp::PROJECT_ID);
    let plain_http = c.send(reqwest::Method::POST, &path, json!({"payload_url": "http://example.com/x"})).await;
    assert_eq!(plain_http.status(), StatusCode::BAD_REQUEST);
    assert_eq!(plain_http.json::<Value>().await.unwrap(), json!({"payload_url": ["is not a valid URL"]}));
    let bad_type =
        c.send(reqwest::Method::POST, &path, json!({"payload_url": "https://e.com/x", "types": ["Todos"]})).await;
    assert_eq!(bad_type.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad_type.json::<Value>().await.unwrap(), json!({"types": ["is invalid"]}));
}

#[tokio::test]
async fn every_id_but_the_documented_project_is_past_two_to_the_53_and_odd() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let id =
        new_todo(&sim, TodoWrite { content: Some("t".into()), assignee_ids: Some(vec![ANNIE]), ..Default::default() })
            .await;
    let comment = sim.comment(id, "<div>c</div>", VICTOR).await.unwrap();
    let todo = c.get(&format!("/todos/{id}.json")).await;
    let two_53 = 9_007_199_254_740_992_i64;
    for (what, value) in [
        ("todo", &todo["id"]),
        ("list", &todo["parent"]["id"]),
        ("assignee", &todo["assignees"][0]["id"]),
        ("creator", &todo["creator"]["id"]),
        ("comment", &json!(comment)),
    ] {
        let n = value.as_i64().unwrap();
        assert!(n > two_53 && n % 2 == 1, "{what} id {n}");
        assert_ne!(n as f64 as i64, n, "{what} id {n} must not survive an f64");
    }
}
#[tokio::test]
async fn many_simulators_start_in_parallel() {
    let starts = (0..16).map(|_| Simulator::start(Options::default()));
    let sims: Vec<Simulator> = futures_join_all(starts).await;
    let mut urls: Vec<String> = sims.iter().map(Simulator::base_url).collect();
    urls.dedup();
    assert_eq!(urls.len(), 16);
}

async fn futures_join_all<F, T, E>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: std::fmt::Debug + Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap().unwrap());
    }
    out
}

#[tokio::test]
async fn the_control_api_acts_as_a_person_and_counts_calls() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let http = reqwest::Client::new();
    let list = sim.list_id("Backlog").await.unwrap();
    let created: Value = http
        .post(format!("{}/todos", sim.control_url()))
        .json(&json!({"todolist_id": list, "content": "From control", "assignee_ids": [ANNIE]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let done = http.post(format!("{}/todos/{id}/complete", sim.control_url())).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let todo: Value =
        http.get(format!("{}/records/todos/{id}", sim.control_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(todo["completed"], json!(true));

    Client::new(&sim).get(&format!("/todos/{id}.json")).await;
    let calls: Value = http.get(format!("{}/calls", sim.control_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(calls["GET /todos/{id}.json"], json!(1));
    http.post(format!("{}/calls/reset", sim.control_url())).send().await.unwrap();
    assert_eq!(sim.calls().total(), 0);
}

#[tokio::test]
async fn a_move_to_another_list_changes_parent_and_position_and_fires_no_webhook() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let receiver = Receiver::start().await;
    register_hook(&c, &receiver, json!(["Todo", "Todolist", "Comment"])).await;
    let first = new_todo(&sim, TodoWrite { content: Some("first".into()), ..Default::default() }).await;
    let second = new_todo(&sim, TodoWrite { content: Some("second".into()), ..Default::default() }).await;
    sim.settle().await;
    let before = receiver.received().len();
    let before_updated = c.get(&format!("/todos/{second}.json")).await["updated_at"].clone();

    // Reorder within the list.
    let response =
        c.send(reqwest::Method::PUT, &format!("/todos/{second}/position.json"), json!({"position": 1})).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let sprint = sim.list_id("Sprint 1").await.unwrap();
    let todos = c.get(&format!("/todolists/{sprint}/todos.json")).await;
    let order: Vec<i64> = todos.as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert_eq!(order, [second, first]);
    assert_eq!(todos[0]["position"], json!(1));

    // Move to the Backlog list.
    let backlog = sim.list_id("Backlog").await.unwrap();
    let path = format!("/buckets/{}/todos/{second}/position.json", basecamp::PROJECT_ID);
    let response = c.send(reqwest::Method::PUT, &path, json!({"position": 1, "parent_id": backlog})).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let moved = c.get(&format!("/todos/{second}.json")).await;
    assert_eq!(moved["parent"]["id"], json!(backlog));
    assert_eq!(moved["parent"]["title"], "Backlog");
    assert_ne!(moved["updated_at"], before_updated, "a new parent moves updated_at, so a poll sees it");
    let left: Vec<Value> = c.get(&format!("/todolists/{sprint}/todos.json")).await.as_array().unwrap().clone();
    assert_eq!((left.len(), left[0]["position"].clone()), (1, json!(1)));
    sim.settle().await;
    assert_eq!(receiver.received().len(), before, "moves fire no webhook");

    // Bad positions and foreign lists are refused.
    let zero = c.send(reqwest::Method::PUT, &format!("/todos/{second}/position.json"), json!({"position": 0})).await;
    assert_eq!(zero.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let elsewhere = sim.create_project("Elsewhere").await;
    let foreign = sim.create_todolist(elsewhere, "Theirs", VICTOR).await.unwrap();
    let response = c
        .send(
            reqwest::Method::PUT,
            &format!("/todos/{second}/position.json"),
            json!({"position": 1, "parent_id": foreign}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(sim.calls().count("PUT", "/todos/{id}/position.json"), 4);
}

#[tokio::test]
async fn trash_archive_and_restore_show_in_reads_listings_and_webhooks() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let receiver = Receiver::start().await;
    register_hook(&c, &receiver, json!(["Todo", "Todolist"])).await;
    let id = new_todo(&sim, TodoWrite { content: Some("Doomed".into()), ..Default::default() }).await;
    let sprint = sim.list_id("Sprint 1").await.unwrap();
    let status_path = |s: &str| format!("/recordings/{id}/status/{s}.json");

    let trash = c.send(reqwest::Method::PUT, &status_path("trashed"), json!({})).await;
    assert_eq!(trash.status(), StatusCode::NO_CONTENT);
    assert_eq!(c.get(&format!("/todos/{id}.json")).await["status"], "trashed", "a trashed to-do is still readable");
    assert_eq!(c.get(&format!("/todolists/{sprint}/todos.json")).await, json!([]));
    let trashed = c.get(&format!("/todolists/{sprint}/todos.json?status=trashed")).await;
    assert_eq!(trashed[0]["id"], json!(id));
    let polled =
        c.get(&format!("/projects/recordings.json?type=Todo&status=trashed&bucket={}", basecamp::PROJECT_ID)).await;
    assert_eq!(polled[0]["id"], json!(id));
    // Trashing twice changes nothing and fires nothing.
    c.send(reqwest::Method::PUT, &status_path("trashed"), json!({})).await;
    c.send(reqwest::Method::PUT, &status_path("active"), json!({})).await;
    c.send(reqwest::Method::PUT, &status_path("archived"), json!({})).await;
    c.send(reqwest::Method::PUT, &status_path("active"), json!({})).await;
    let unknown = c.send(reqwest::Method::PUT, &status_path("deleted"), json!({})).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // A list's status reaches its to-dos without events of their own.
    sim.set_status(sprint, "archived", VICTOR).await.unwrap();
    assert_eq!(c.get(&format!("/todos/{id}.json")).await["status"], "archived");
    assert_eq!(c.get(&format!("/todolists/{sprint}/todos.json?status=archived")).await[0]["id"], json!(id));
    let lists = c.get(&format!("/todosets/{}/todolists.json?status=archived", basecamp::TODOSET_ID)).await;
    assert_eq!(lists[0]["id"], json!(sprint));
    sim.set_status(sprint, "active", VICTOR).await.unwrap();
    assert_eq!(c.get(&format!("/todos/{id}.json")).await["status"], "active");

    sim.settle().await;
    let kinds: Vec<String> =
        receiver.received().iter().map(|r| r.json()["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        kinds,
        [
            "todo_created",
            "todo_trashed",
            "todo_untrashed",
            "todo_archived",
            "todo_unarchived",
            "todolist_archived",
            "todolist_unarchived"
        ]
    );
    assert_eq!(receiver.received()[1].json()["recording"]["status"], "trashed");
}

#[tokio::test]
async fn a_trashed_todo_can_be_deleted_for_good_and_then_reads_404() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let receiver = Receiver::start().await;
    register_hook(&c, &receiver, json!(["Todo"])).await;
    let id = new_todo(&sim, TodoWrite { content: Some("Gone soon".into()), ..Default::default() }).await;
    assert!(sim.delete_recording(id, VICTOR).await.is_err(), "only trashed recordings are deleted");
    sim.set_status(id, "trashed", VICTOR).await.unwrap();
    sim.delete_recording(id, VICTOR).await.unwrap();
    let response = c.req(reqwest::Method::GET, &format!("/todos/{id}.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    sim.settle().await;
    let last = receiver.received().last().unwrap().json();
    assert_eq!((last["kind"].as_str().unwrap(), last["recording"]["id"].as_i64().unwrap()), ("todo_deleted", id));
}

#[tokio::test]
async fn a_copy_fires_todo_copied_on_the_original_naming_the_copy() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let receiver = Receiver::start().await;
    register_hook(&c, &receiver, json!(["Todo"])).await;
    let id = new_todo(
        &sim,
        TodoWrite { content: Some("Original".into()), description: Some("<div>d</div>".into()), ..Default::default() },
    )
    .await;
    let bugs = sim.list_id("Bugs").await.unwrap();
    let copy = sim.copy_todo(id, bugs, ANNIE).await.unwrap();
    sim.settle().await;
    let event = receiver.received().last().unwrap().json();
    assert_same_keys(&event, &fixture("basecamp", "webhook-event-todo-copied.json"), "copy event");
    assert_eq!(event["kind"], "todo_copied");
    assert_eq!(event["recording"]["id"], json!(id));
    assert_eq!(event["details"]["copy_id"], json!(copy));
    assert_eq!(event["copy"]["id"], json!(copy));
    assert_eq!(event["copy"]["bucket"]["id"], json!(basecamp::PROJECT_ID));
    let got = c.get(&format!("/todos/{copy}.json")).await;
    assert_eq!((got["content"].clone(), got["description"].clone()), (json!("Original"), json!("<div>d</div>")));
    assert_eq!(got["parent"]["id"], json!(bugs));
}

#[tokio::test]
async fn rich_text_is_stored_with_only_basecamps_tags() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let list = sim.list_id("Sprint 1").await.unwrap();
    let created: Value = c
        .send(
            reqwest::Method::POST,
            &format!("/todolists/{list}/todos.json"),
            json!({"content": "Styled", "description": "<p class=\"x\">Hello <b>bold</b> <strong>kept</strong></p><h2>Sub</h2><table><tr><td>cell</td></tr></table><a href=\"https://e.com\" target=\"_blank\">link</a><script>x()</script>"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["description"], "Hello bold <strong>kept</strong>Subcell<a href=\"https://e.com\">link</a>");
    let id = created["id"].as_i64().unwrap();
    let comment: Value = c
        .send(
            reqwest::Method::POST,
            &format!("/recordings/{id}/comments.json"),
            json!({"content": "<p>DEV: <code>x</code></p>"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(comment["content"], "DEV: x");
    let blank =
        c.send(reqwest::Method::POST, &format!("/recordings/{id}/comments.json"), json!({"content": "<p> </p>"})).await;
    assert_eq!(blank.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
