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

fn unlimited() -> Options {
    Options { rate_limit: None, ..Options::default() }
}

async fn new_todo(sim: &Simulator, write: TodoWrite) -> i64 {
    let list = sim.list_id("Sprint 1").await.unwrap();
    sim.create_todo(list, write, VICTOR).await.unwrap()
}

#[tokio::test]
async fn main_get_endpoints_carry_the_fixture_keys() {
    let sim = Simulator::start(unlimited()).await.unwrap();
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
    let sim = Simulator::start(unlimited()).await.unwrap();
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
    let sim = Simulator::start(unlimited()).await.unwrap();
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
    let sim = Simulator::start(unlimited()).await.unwrap();
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
    let sim = Simulator::start(unlimited()).await.unwrap();
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
    let sim = Simulator::start(unlimited()).await.unwrap();
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

#[tokio::test]
async fn a_webhook_is_deactivated_silently_after_ten_failed_deliveries() {
    let sim = Simulator::start(unlimited()).await.unwrap();
    let c = Client::new(&sim);
    let receiver = Receiver::start().await;
    receiver.respond_with(500);
    let hook = register_hook(&c, &receiver, json!(["Todo"])).await;
    let id = new_todo(&sim, TodoWrite { content: Some("t".into()), ..TodoWrite::default() }).await;
    for n in 0..12 {
        sim.edit_todo(id, basecamp::TodoEdit { content: Some(format!("t{n}")), ..Default::default() }, VICTOR)
            .await
            .unwrap();
    }
    sim.settle().await;
    assert_eq!(receiver.received().len(), 10);
    let detail = c.get(&format!("/webhooks/{}.json", hook["id"])).await;
    assert_eq!(detail["active"], json!(false));

    // Re-enabling through PUT makes it deliver again.
    receiver.respond_with(200);
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
async fn a_delivery_that_never_connects_is_lost_silently_and_the_hook_stays_active() {
    let sim = Simulator::start(Options { deactivate_after_failures: 1, ..unlimited() }).await.unwrap();
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
    let detail = c.get(&format!("/webhooks/{}.json", hook["id"])).await;
    assert_eq!(detail["active"], json!(true), "connection failures do not deactivate");
    assert_eq!(detail["recent_deliveries"][0]["response"]["code"], json!(0));
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
    let sim = Simulator::start(unlimited()).await.unwrap();
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
