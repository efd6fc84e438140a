//! Jira simulator behaviour checked against the fixtures and documented quirks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use campbridge_simulators::common::signing::hub_signature;
use campbridge_simulators::jira::{self, AdminHook, Config, Options, Simulator};
use campbridge_simulators::{Faults, Forced429, WebhookFaults};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Receiver, fixture, keys};

struct Client {
    http: reqwest::Client,
    base: String,
    email: String,
    token: String,
}

impl Client {
    fn new(sim: &Simulator) -> Self {
        let (email, token) = sim.credentials();
        Self { http: reqwest::Client::new(), base: sim.base_url(), email, token }
    }
    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).basic_auth(&self.email, Some(&self.token))
    }
    async fn send(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self.req(method, path).json(&body).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> Value {
        let response = self.req(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }
}

fn adf(text: &str) -> Value {
    json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]})
}

async fn create(c: &Client, summary: &str) -> String {
    let body = json!({"fields": {"project": {"key": "WEB"}, "issuetype": {"name": "Task"}, "summary": summary,
        "description": adf("Body"), "labels": ["basecamp"], "components": [{"name": "Bugs"}],
        "priority": {"name": "High"}, "assignee": {"accountId": jira::ANNIE}, "duedate": "2026-12-01"}});
    let (status, created) = c.send(Method::POST, "/rest/api/3/issue", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn issue_get_is_v3_shaped_like_the_fixture() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let (status, created) = c
        .send(
            Method::POST,
            "/rest/api/3/issue",
            json!({"fields": {"project": {"key": "WEB"}, "issuetype": {"name": "Task"}, "summary": "S"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let create_fixture = fixture("jira", "cloud-rest-issue-create-response.docs-example.json");
    assert!(keys(&created).is_subset(&keys(&create_fixture)));
    assert_eq!(created["key"], "WEB-1");

    let key = create(&c, "Build the page").await;
    let issue = c.get(&format!("/rest/api/3/issue/{key}")).await;
    let v3 = fixture("jira", "cloud-rest-issue-get.v3.docs-example.json");
    assert!(keys(&v3).is_subset(&keys(&issue)));
    let fields = &issue["fields"];
    assert_eq!(fields["summary"], "Build the page");
    assert_eq!(fields["description"]["type"], "doc");
    assert_eq!(fields["status"]["name"], "To Do");
    assert_eq!(fields["status"]["statusCategory"]["key"], "new");
    assert_eq!(fields["assignee"]["accountId"], jira::ANNIE);
    assert_eq!(fields["assignee"]["displayName"], "Annie Bryan");
    assert_eq!(fields["priority"]["name"], "High");
    assert_eq!(fields["labels"], json!(["basecamp"]));
    assert_eq!(fields["components"][0]["name"], "Bugs");
    assert_eq!(fields["duedate"], "2026-12-01");
    assert_eq!(fields["project"]["key"], "WEB");
    assert!(fields["updated"].as_str().unwrap().ends_with("+0000"));
    let only: Value = c.get(&format!("/rest/api/3/issue/{key}?fields=summary,status")).await;
    assert_eq!(keys(&only["fields"]), ["status".to_owned(), "summary".to_owned()].into());
}

#[tokio::test]
async fn v3_rejects_plain_string_descriptions_and_missing_summaries() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let (status, body) = c
        .send(Method::POST, "/rest/api/3/issue", json!({"fields": {"project": {"key": "WEB"}, "issuetype": {"name": "Task"}, "summary": "S", "description": "plain"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, fixture("jira", "cloud-rest-error-400-adf-required.json"));
    let (status, body) = c
        .send(
            Method::POST,
            "/rest/api/3/issue",
            json!({"fields": {"project": {"key": "WEB"}, "issuetype": {"name": "Task"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let required = fixture("jira", "cloud-rest-error-400-required-field.docs-example.json");
    assert_eq!(keys(&body), keys(&required));
    assert_eq!(body["errorMessages"][0], "Field 'summary' is required");
    let key = create(&c, "x").await;
    let (status, body) =
        c.send(Method::POST, &format!("/rest/api/3/issue/{key}/comment"), json!({"body": "plain"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) =
        c.send(Method::POST, &format!("/rest/api/3/issue/{key}/comment"), json!({"body": adf("hi")})).await;
    assert_eq!(status, StatusCode::CREATED);
    let comment_fixture = fixture("jira", "cloud-rest-comment-add-response.docs-example.json");
    let mut expected = keys(&comment_fixture);
    expected.remove("visibility");
    expected.insert("jsdPublic".into());
    assert_eq!(keys(&body), expected);
}

#[tokio::test]
async fn done_needs_a_resolution_when_the_screen_requires_it() {
    let options = Options { config: Config { require_resolution: true, ..Config::default() }, ..Options::default() };
    let sim = Simulator::start(options).await.unwrap();
    let c = Client::new(&sim);
    let key = create(&c, "t").await;
    let transitions = c.get(&format!("/rest/api/3/issue/{key}/transitions?expand=transitions.fields")).await;
    let template = fixture("jira", "cloud-rest-transitions.json");
    assert_eq!(keys(&transitions), keys(&template));
    let done = transitions["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to"]["statusCategory"]["key"] == "done")
        .unwrap();
    assert!(keys(&template["transitions"][0]).is_subset(&keys(done)));
    assert_eq!(done["fields"]["resolution"]["required"], json!(true));
    let path = format!("/rest/api/3/issue/{key}/transitions");
    let (status, body) = c.send(Method::POST, &path, json!({"transition": {"id": done["id"]}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["resolution"].is_string());
    let (status, _) = c
        .send(
            Method::POST,
            &path,
            json!({"transition": {"id": done["id"]}, "fields": {"resolution": {"name": "Done"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let issue = c.get(&format!("/rest/api/3/issue/{key}")).await;
    assert_eq!(issue["fields"]["status"]["statusCategory"]["key"], "done");
    assert_eq!(issue["fields"]["resolution"]["name"], "Done");
    let reopen = c.get(&path).await;
    assert_eq!(reopen["transitions"][0]["name"], "Reopen");
}

#[tokio::test]
async fn edits_apply_label_operations_and_refuse_unassignable_users() {
    let options = Options {
        config: Config { unassignable: [jira::EMMA.to_owned()].into(), ..Config::default() },
        ..Options::default()
    };
    let sim = Simulator::start(options).await.unwrap();
    let c = Client::new(&sim);
    let key = create(&c, "t").await;
    let path = format!("/rest/api/3/issue/{key}");
    let (status, _) =
        c.send(Method::PUT, &path, json!({"update": {"labels": [{"add": "triaged"}, {"remove": "basecamp"}]}})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(c.get(&path).await["fields"]["labels"], json!(["triaged"]));
    let (status, body) = c.send(Method::PUT, &path, json!({"fields": {"assignee": {"accountId": jira::EMMA}}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let field_errors = fixture("jira", "cloud-rest-error-400-field-errors.docs-example.json");
    assert_eq!(keys(&body), keys(&field_errors));
    assert!(body["errors"]["assignee"].is_string());
    let (status, _) = c.send(Method::PUT, &path, json!({"fields": {"resolution": {"name": "Done"}}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn jql_search_pages_by_cursor_and_the_old_search_is_gone() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    for n in 0..5 {
        create(&c, &format!("issue {n}")).await;
    }
    sim.refresh_index().await;
    let mut token: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let mut body = json!({"jql": "project = WEB AND labels = \"basecamp\" AND updated >= \"2000-01-01 00:00\" ORDER BY updated ASC", "maxResults": 2, "fields": ["summary", "updated"]});
        if let Some(t) = &token {
            body["nextPageToken"] = json!(t);
        }
        let (status, page) = c.send(Method::POST, "/rest/api/3/search/jql", body).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.get("total").is_none());
        for issue in page["issues"].as_array().unwrap() {
            seen.push(issue["fields"]["summary"].as_str().unwrap().to_owned());
        }
        if page["isLast"] == json!(true) {
            assert!(page.get("nextPageToken").is_none());
            break;
        }
        token = Some(page["nextPageToken"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["issue 0", "issue 1", "issue 2", "issue 3", "issue 4"]);
    let ids = c.get("/rest/api/3/search/jql?jql=project%20%3D%20WEB").await;
    assert_eq!(keys(&ids["issues"][0]), ["id".to_owned()].into());
    let page1_shape = fixture("jira", "cloud-rest-search-jql-page1.fixture.json");
    assert!(keys(&ids).is_subset(&keys(&page1_shape)));
    for path in ["/rest/api/3/search?jql=project=WEB", "/rest/api/2/search?jql=project=WEB"] {
        let response = c.req(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::GONE);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            fixture("jira", "cloud-rest-error-410-search-removed.json")
        );
    }
    let (status, _) = c.send(Method::POST, "/rest/api/3/search/jql", json!({"jql": "order by key desc"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn remote_links_upsert_by_global_id_and_properties_round_trip() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let key = create(&c, "t").await;
    let path = format!("/rest/api/3/issue/{key}/remotelink");
    let link = json!({"globalId": "system=basecamp&id=1/2", "relationship": "mirrors",
        "object": {"url": "https://example.com/todos/2", "title": "To-do", "summary": "s"}});
    let (status, first) = c.send(Method::POST, &path, link).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(keys(&first), keys(&fixture("jira", "cloud-rest-remotelink-response.docs-example.json")));
    let (status, second) = c
        .send(Method::POST, &path, json!({"globalId": "system=basecamp&id=1/2", "object": {"url": "https://example.com/todos/2", "title": "Renamed"}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["id"], second["id"]);
    let links = c.get(&path).await;
    assert_eq!(links.as_array().unwrap().len(), 1);
    assert_eq!(links[0]["relationship"], Value::Null);
    let (status, body) = c.send(Method::POST, &path, json!({"object": {"url": "https://e.com"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, fixture("jira", "cloud-rest-error-400-field-errors.docs-example.json"));

    let prop = format!("/rest/api/3/issue/{key}/properties/campbridge");
    let (status, _) = c.send(Method::PUT, &prop, json!({"todo": 2})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = c.send(Method::PUT, &prop, json!({"todo": 3})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c.get(&prop).await, json!({"key": "campbridge", "value": {"todo": 3}}));
    let deleted = c.req(Method::DELETE, &prop).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(c.req(Method::GET, &prop).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn users_auth_and_forced_429() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let users = c.get("/rest/api/3/user/search?query=annie").await;
    assert_eq!(users[0]["accountId"], jira::ANNIE);
    assert!(keys(&fixture("jira", "cloud-rest-user-search.docs-example.json")[0]).is_subset(&keys(&users[0])));
    let hidden = c.get("/rest/api/3/user/search?query=jared").await;
    assert!(hidden[0].get("emailAddress").is_none());
    assert_eq!(c.get("/rest/api/3/myself").await["accountId"], jira::SYNC_BOT);
    assert_eq!(c.get("/rest/api/3/project/WEB").await["key"], "WEB");
    let anonymous = c.http.get(format!("{}/rest/api/3/myself", sim.base_url())).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    sim.set_faults(Faults {
        force_429: Some(Forced429 { retry_after: 7, remaining: Some(1), html: true }),
        ..Faults::default()
    });
    let limited = c.req(Method::GET, "/rest/api/3/myself").send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "7");
    assert!(limited.text().await.unwrap().contains("<html>"));
    c.get("/rest/api/3/myself").await;
    // Counted: the first call, the anonymous one, the refused one and the last one.
    assert_eq!(sim.calls().count("GET", "/rest/api/3/myself"), 4);
}

#[test]
fn signing_matches_the_documented_known_answer_vector() {
    let vector = fixture("jira", "webhook-signature-test-vector.docs-example.json");
    let signature = hub_signature(vector["secret"].as_str().unwrap(), vector["raw_body"].as_str().unwrap().as_bytes());
    assert_eq!(signature, vector["header_value"].as_str().unwrap());
    assert_ne!(hub_signature("It's a Secret to Everybody", b"Hello World?"), signature);
}

#[tokio::test]
async fn webhooks_are_signed_v2_shaped_and_identified() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let receiver = Receiver::start().await;
    sim.register_webhook(AdminHook {
        id: 0,
        url: receiver.url.clone(),
        secret: Some("s3cret".into()),
        events: vec![],
        jql: Some("project = WEB".into()),
    })
    .await;
    let key = sim
        .create_issue(
            json!({"fields": {"project": {"key": "WEB"}, "issuetype": {"name": "Task"}, "summary": "Hook me"}}),
            jira::MIA,
        )
        .await
        .unwrap();
    sim.transition_issue(&key, "In Progress", jira::MIA).await.unwrap();
    sim.comment_issue(&key, "PM: looks good", jira::EMMA).await.unwrap();
    sim.settle().await;
    let got = receiver.received();
    let events: Vec<String> = got.iter().map(|r| r.json()["webhookEvent"].as_str().unwrap().to_owned()).collect();
    assert_eq!(events, ["jira:issue_created", "jira:issue_updated", "comment_created", "jira:issue_updated"]);
    for delivery in &got {
        assert_eq!(delivery.header("x-hub-signature").unwrap(), hub_signature("s3cret", &delivery.body));
        assert!(delivery.header("x-atlassian-webhook-identifier").is_some());
    }
    let created = got[0].json();
    let template = fixture("jira", "cloud-webhook-issue-created.json");
    assert_eq!(keys(&created), keys(&template));
    assert_eq!(keys(&created["issue"]["fields"]), keys(&template["issue"]["fields"]));
    assert_eq!(
        created["issue"]["self"],
        json!(format!("{}/rest/api/2/{}", sim.base_url(), created["issue"]["id"].as_str().unwrap()))
    );
    let status_change = got[1].json();
    assert_eq!(status_change["issue_event_type_name"], "issue_generic");
    assert_eq!(status_change["changelog"]["items"][0]["fieldId"], "status");
    assert_eq!(status_change["issue"]["fields"]["status"]["statusCategory"]["key"], "indeterminate");
    let comment = got[2].json();
    assert_eq!(keys(&comment), keys(&fixture("jira", "cloud-webhook-comment-created.json")));
    assert_eq!(comment["comment"]["body"], "PM: looks good");
}

#[tokio::test]
async fn delivery_faults_duplicate_reorder_and_retry() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let receiver = Receiver::start().await;
    sim.register_webhook(AdminHook {
        id: 0,
        url: receiver.url.clone(),
        secret: None,
        events: vec!["jira:issue_created".into()],
        jql: None,
    })
    .await;
    let body = |s: &str| json!({"fields": {"project": {"key": "WEB"}, "issuetype": {"name": "Task"}, "summary": s}});

    sim.set_faults(Faults {
        webhook: WebhookFaults { duplicate: true, ..WebhookFaults::default() },
        ..Faults::default()
    });
    sim.create_issue(body("dup"), jira::MIA).await.unwrap();
    sim.settle().await;
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("x-atlassian-webhook-identifier"), got[1].header("x-atlassian-webhook-identifier"));

    sim.set_faults(Faults {
        webhook: WebhookFaults { reorder_hold: 2, ..WebhookFaults::default() },
        ..Faults::default()
    });
    sim.create_issue(body("first"), jira::MIA).await.unwrap();
    sim.create_issue(body("second"), jira::MIA).await.unwrap();
    sim.settle().await;
    let got = receiver.received();
    let summaries: Vec<Value> = got[2..].iter().map(|r| r.json()["issue"]["fields"]["summary"].clone()).collect();
    assert_eq!(summaries, [json!("second"), json!("first")]);

    sim.set_faults(Faults::default());
    receiver.respond_with(503);
    sim.create_issue(body("retry"), jira::MIA).await.unwrap();
    sim.settle().await;
    let got = receiver.received();
    assert_eq!(got.len(), 7);
    assert!(got[4].header("x-atlassian-webhook-retry").is_none());
    assert_eq!(got[6].header("x-atlassian-webhook-retry").unwrap(), "2");
    assert_eq!(got[4].header("x-atlassian-webhook-identifier"), got[6].header("x-atlassian-webhook-identifier"));
}

#[tokio::test]
async fn writes_past_the_per_issue_limit_get_429_with_the_documented_reason_and_retry_after() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let window = jira::RateWindow { requests: 2, window_ms: 60_000, retry_after_secs: 7 };
    sim.set_config(jira::Config { per_issue_writes: Some(window), ..jira::Config::default() }).await;
    let c = Client::new(&sim);
    let key = create(&c, "busy issue").await;
    let path = format!("/rest/api/3/issue/{key}");
    let edit = |n: u32| json!({"fields": {"summary": format!("edit {n}")}});
    assert_eq!(c.send(Method::PUT, &path, edit(1)).await.0, StatusCode::NO_CONTENT);
    assert_eq!(c.send(Method::PUT, &path, edit(2)).await.0, StatusCode::NO_CONTENT);
    let response = c.req(Method::PUT, &path).json(&edit(3)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["RateLimit-Reason"], "jira-per-issue-on-write");
    assert_eq!(response.headers()["Retry-After"], "7");
    assert_eq!(c.get(&path).await["key"], key.as_str(), "reads are not limited");
}

#[tokio::test]
async fn a_search_sees_a_write_only_after_the_index_lag() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    sim.set_config(jira::Config { search_lag_ms: 300, ..jira::Config::default() }).await;
    let c = Client::new(&sim);
    create(&c, "fresh").await;
    let search = || c.get("/rest/api/3/search/jql?jql=project%20%3D%20WEB&fields=summary");
    assert_eq!(search().await["issues"], json!([]), "not indexed yet");
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(search().await["issues"][0]["fields"]["summary"], "fresh");
}

#[tokio::test]
async fn a_custom_field_change_says_fieldtype_custom_in_the_webhook_changelog() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let receiver = Receiver::start().await;
    sim.register_webhook(AdminHook { id: 0, url: receiver.url.clone(), secret: None, events: vec![], jql: None }).await;
    let key = sim
        .create_issue(
            json!({"fields": {"project": {"key": "WEB"}, "issuetype": {"name": "Task"}, "summary": "Flag me"}}),
            jira::MIA,
        )
        .await
        .unwrap();
    sim.flag_issue(&key, true, jira::JARED).await.unwrap();
    sim.settle().await;
    let items: Vec<Value> = receiver
        .received()
        .iter()
        .flat_map(|d| d.json()["changelog"]["items"].as_array().cloned().unwrap_or_default())
        .collect();
    let flagged = items.iter().find(|i| i["fieldId"] == "customfield_10021").expect("the flag's changelog item");
    assert_eq!(flagged["fieldtype"], "custom");
    let summary = items.iter().find(|i| i["fieldId"] == "summary").expect("the summary's item");
    assert_eq!(summary["fieldtype"], "jira");
}

#[tokio::test]
async fn rich_text_is_held_to_atlassians_adf_schema_and_jiras_limits() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let key = create(&c, "limits").await;
    let path = format!("/rest/api/3/issue/{key}");
    let nested = json!({"type": "doc", "version": 1, "content": [{"type": "blockquote", "content": [
        {"type": "blockquote", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "x"}]}]}]}]});
    let (status, body) = c.send(Method::PUT, &path, json!({"fields": {"description": nested}})).await;
    assert_eq!((status, &body["errors"]["description"]), (StatusCode::BAD_REQUEST, &json!("INVALID_INPUT")));
    let (status, body) = c
        .send(
            Method::POST,
            &format!("{path}/comment"),
            json!({"body": {"type": "doc", "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let long = adf(&"x".repeat(32_800));
    let (status, body) = c.send(Method::PUT, &path, json!({"fields": {"description": long}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"]["description"],
        "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
    );
    let (status, body) =
        c.send(Method::POST, &format!("{path}/comment"), json!({"body": adf(&"y".repeat(32_800))})).await;
    assert_eq!((status, body["errors"]["comment"].is_string()), (StatusCode::BAD_REQUEST, true));
    for (fields, field) in [
        (json!({"summary": "two\nlines"}), "summary"),
        (json!({"summary": "s".repeat(256)}), "summary"),
        (json!({"labels": ["l".repeat(256)]}), "labels"),
        (json!({"labels": ["has space"]}), "labels"),
    ] {
        let (status, body) = c.send(Method::PUT, &path, json!({"fields": fields})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{fields}");
        assert!(body["errors"][field].is_string(), "{body}");
    }
    let link = json!({"globalId": "g".repeat(256), "object": {"url": "https://x.test", "title": "t"}});
    let (status, body) = c.send(Method::POST, &format!("{path}/remotelink"), link).await;
    assert_eq!((status, body["errors"]["globalId"].is_string()), (StatusCode::BAD_REQUEST, true));
}

#[tokio::test]
async fn createmeta_lists_the_create_screen_and_create_enforces_it() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let mut config = jira::Config::default();
    config.create_required.insert("customfield_10050".into(), "Team".into());
    config.create_absent.insert("duedate".into());
    sim.set_config(config).await;
    let c = Client::new(&sim);
    let types = c.get("/rest/api/3/issue/createmeta/WEB/issuetypes").await;
    assert_eq!(types["total"], 3);
    let task = types["issueTypes"].as_array().unwrap().iter().find(|t| t["name"] == "Task").unwrap()["id"].clone();
    let fields = c.get(&format!("/rest/api/3/issue/createmeta/WEB/issuetypes/{}", task.as_str().unwrap())).await;
    let ids: Vec<&str> = fields["fields"].as_array().unwrap().iter().filter_map(|f| f["fieldId"].as_str()).collect();
    assert!(ids.contains(&"customfield_10050") && !ids.contains(&"duedate"), "{ids:?}");
    let team = fields["fields"].as_array().unwrap().iter().find(|f| f["fieldId"] == "customfield_10050").unwrap();
    assert_eq!(team["required"], true);

    let base = json!({"project": {"key": "WEB"}, "issuetype": {"name": "Task"}, "summary": "s"});
    let (status, body) = c.send(Method::POST, "/rest/api/3/issue", json!({"fields": base})).await;
    assert_eq!((status, &body["errors"]["customfield_10050"]), (StatusCode::BAD_REQUEST, &json!("Team is required.")));
    let mut with_due = base.clone();
    with_due["customfield_10050"] = json!({"value": "Web"});
    with_due["duedate"] = json!("2026-12-01");
    let (status, body) = c.send(Method::POST, "/rest/api/3/issue", json!({"fields": with_due})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"]["duedate"],
        "Field 'duedate' cannot be set. It is not on the appropriate screen, or unknown."
    );
    let mut ok = base;
    ok["customfield_10050"] = json!({"value": "Web"});
    assert_eq!(c.send(Method::POST, "/rest/api/3/issue", json!({"fields": ok})).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn a_moved_issue_keeps_its_id_gets_a_new_key_and_says_so_in_the_changelog() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let receiver = Receiver::start().await;
    sim.register_webhook(AdminHook { id: 0, url: receiver.url.clone(), secret: None, events: vec![], jql: None }).await;
    let key = sim
        .create_issue(
            json!({"fields": {"project": {"key": "WEB"}, "issuetype": {"name": "Task"}, "summary": "Move me"}}),
            jira::MIA,
        )
        .await
        .unwrap();
    let id = sim.issue(&key).await.unwrap()["id"].clone();
    let moved = sim.move_issue(&key, "OPS", jira::MIA).await.unwrap();
    assert_eq!(moved, "OPS-1");
    let issue = sim.issue(id.as_str().unwrap()).await.unwrap();
    assert_eq!((issue["key"].as_str(), issue["fields"]["project"]["key"].as_str()), (Some("OPS-1"), Some("OPS")));
    sim.delete_issue(&moved, jira::MIA).await.unwrap();
    assert!(sim.issue(id.as_str().unwrap()).await.is_none());
    sim.settle().await;
    let got: Vec<Value> = receiver.received().iter().map(|r| r.json()).collect();
    let events: Vec<&str> = got.iter().map(|b| b["webhookEvent"].as_str().unwrap()).collect();
    assert_eq!(events, ["jira:issue_created", "jira:issue_updated", "jira:issue_deleted"]);
    let items = &got[1]["changelog"]["items"];
    assert_eq!((items[0]["field"].as_str(), items[0]["fromString"].as_str()), (Some("Key"), Some(key.as_str())));
    assert_eq!(items[0]["toString"], "OPS-1");
    assert_eq!(items[1]["field"], "project");
    assert_eq!(got[1]["issue"]["key"], "OPS-1");
}
