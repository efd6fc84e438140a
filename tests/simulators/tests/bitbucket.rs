//! Bitbucket simulator behaviour checked against the fixtures and documented quirks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use campbridge_simulators::bitbucket::{self, BuildStatus, Options, Simulator};
use campbridge_simulators::common::signing::hub_signature;
use campbridge_simulators::{Faults, Forced429};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Receiver, fixture, fixture_bytes, keys};

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
    async fn get(&self, path: &str) -> Value {
        let response = self.req(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }
}

const REPO: &str = "/2.0/repositories/honcho/leto-web";

#[tokio::test]
async fn api_objects_carry_the_fixture_keys() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let user = c.get("/2.0/user").await;
    assert_eq!(keys(&user), keys(&fixture("bitbucket", "cloud-api-user-get.legacy.json")));
    let workspaces = c.get("/2.0/user/workspaces").await;
    assert_eq!(workspaces["values"][0]["workspace"]["slug"], "honcho");
    let repo = c.get(REPO).await;
    assert_eq!(keys(&repo), keys(&fixture("bitbucket", "cloud-api-repository-get.json")));
    assert_eq!(repo["has_issues"], json!(false));

    let id =
        sim.open_pullrequest("WEB-1 Build the page", "Fixes BC-42", "feature/WEB-1", bitbucket::JARED).await.unwrap();
    let pr = c.get(&format!("{REPO}/pullrequests/{id}")).await;
    assert_eq!(keys(&pr), keys(&fixture("bitbucket", "cloud-api-pullrequest-get.json")));
    assert_eq!(pr["source"]["branch"]["name"], "feature/WEB-1");
    let list = c.get(&format!("{REPO}/pullrequests")).await;
    let list_fixture = fixture("bitbucket", "cloud-api-pullrequests-list-paginated.json");
    assert_eq!(keys(&list), keys(&list_fixture));

    let hash = sim.head_of(id).await.unwrap();
    sim.post_build_status(
        BuildStatus {
            commit: hash.clone(),
            key: "ci".into(),
            state: "FAILED".into(),
            name: "CI".into(),
            description: String::new(),
            url: "https://ci.example.com/1".into(),
            refname: None,
            created_on: String::new(),
            updated_on: String::new(),
        },
        bitbucket::SYNC_BOT,
    )
    .await
    .unwrap();
    let statuses = c.get(&format!("{REPO}/commit/{hash}/statuses")).await;
    assert_eq!(keys(&statuses["values"][0]), keys(&fixture("bitbucket", "cloud-api-commit-build-status-get.json")));
    assert_eq!(statuses["values"][0]["state"], "FAILED");
}

#[tokio::test]
async fn pull_requests_page_by_next_and_filter_by_state() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    for n in 0..12 {
        sim.open_pullrequest(&format!("PR {n}"), "", &format!("b{n}"), bitbucket::JARED).await.unwrap();
    }
    sim.merge_pullrequest(1, bitbucket::JARED).await.unwrap();
    let first = c.get(&format!("{REPO}/pullrequests")).await;
    assert_eq!(first["values"].as_array().unwrap().len(), 10);
    assert_eq!(first["size"], 11);
    let second: Value = c
        .http
        .get(first["next"].as_str().unwrap())
        .basic_auth(&c.email, Some(&c.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["values"].as_array().unwrap().len(), 1);
    assert!(second.get("next").is_none());
    let merged = c.get(&format!("{REPO}/pullrequests?state=MERGED&state=DECLINED")).await;
    assert_eq!(merged["values"][0]["state"], "MERGED");
}

#[tokio::test]
async fn removed_issue_endpoints_answer_410_and_errors_use_the_envelope() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    for path in [format!("{REPO}/issues"), format!("{REPO}/issues/1/comments")] {
        let response = c.req(Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::GONE);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            fixture("bitbucket", "cloud-api-error-410-resource-removed.json")
        );
    }
    let missing = c.req(Method::GET, "/2.0/repositories/dev/null").send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<Value>().await.unwrap(), fixture("bitbucket", "cloud-api-error-404-not-found.json"));
    let anonymous = c.http.get(format!("{}/2.0/user", sim.base_url())).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let bearer =
        c.http.get(format!("{}{REPO}", sim.base_url())).bearer_auth(bitbucket::ACCESS_TOKEN).send().await.unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);

    sim.set_faults(Faults {
        force_429: Some(Forced429 { retry_after: 30, remaining: Some(1), html: false }),
        ..Faults::default()
    });
    let limited = c.req(Method::GET, REPO).send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_none());
    assert_eq!(limited.headers()["content-type"], "text/plain");
    // The unknown repository, the bearer call and the refused call share the pattern.
    assert_eq!(sim.calls().count("GET", "/2.0/repositories/{workspace}/{repo}"), 3);
}

#[test]
fn signing_matches_the_known_answer_vector() {
    let body = fixture_bytes("bitbucket", "cloud-webhook-repo-push.signed-raw-body.json");
    assert_eq!(body.len(), 14_515);
    let expected = "sha256=f205c729821c6954aff2afe72b965c34015b4baf96ea8ddc2cc44999c014a035";
    assert_eq!(hub_signature("Gkvl$k$wyNpQAF42", &body), expected);
    let mut changed = body.clone();
    changed[100] ^= 1;
    assert_ne!(hub_signature("Gkvl$k$wyNpQAF42", &changed), expected);
}

#[tokio::test]
async fn hooks_crud_keeps_the_secret_hidden_and_deliveries_are_signed() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let c = Client::new(&sim);
    let receiver = Receiver::start().await;
    let events = [
        "pullrequest:created",
        "pullrequest:updated",
        "pullrequest:fulfilled",
        "pullrequest:rejected",
        "repo:commit_status_created",
        "repo:commit_status_updated",
    ];
    let response = c
        .req(Method::POST, &format!("{REPO}/hooks"))
        .json(&json!({"description": "sync", "url": receiver.url, "active": true, "secret": "hook-secret", "events": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let hook: Value = response.json().await.unwrap();
    assert_eq!(keys(&hook), keys(&fixture("bitbucket", "cloud-api-webhook-subscription.json")));
    assert_eq!(hook["secret_set"], json!(true));
    assert!(hook.get("secret").is_none());
    let uid = hook["uuid"].as_str().unwrap().trim_matches(|ch| ch == '{' || ch == '}').to_owned();
    let fetched = c.get(&format!("{REPO}/hooks/{uid}")).await;
    assert_eq!(fetched["uuid"], hook["uuid"]);

    let id = sim.open_pullrequest("WEB-2 fix", "", "feature/WEB-2", bitbucket::JARED).await.unwrap();
    let hash = sim.head_of(id).await.unwrap();
    let status = |state: &str| BuildStatus {
        commit: hash.clone(),
        key: "ci".into(),
        state: state.into(),
        name: "CI".into(),
        description: String::new(),
        url: String::new(),
        refname: Some("feature/WEB-2".into()),
        created_on: String::new(),
        updated_on: String::new(),
    };
    sim.post_build_status(status("FAILED"), bitbucket::SYNC_BOT).await.unwrap();
    sim.post_build_status(status("SUCCESSFUL"), bitbucket::SYNC_BOT).await.unwrap();
    sim.merge_pullrequest(id, bitbucket::JARED).await.unwrap();
    sim.settle().await;
    let got = receiver.received();
    let keys_sent: Vec<String> = got.iter().map(|r| r.header("x-event-key").unwrap()).collect();
    assert_eq!(
        keys_sent,
        ["pullrequest:created", "repo:commit_status_created", "repo:commit_status_updated", "pullrequest:fulfilled"]
    );
    for delivery in &got {
        assert_eq!(delivery.header("x-hub-signature").unwrap(), hub_signature("hook-secret", &delivery.body));
        assert_eq!(delivery.header("x-hook-uuid").unwrap(), uid);
        assert_eq!(delivery.header("x-attempt-number").unwrap(), "1");
        assert!(delivery.header("x-request-uuid").is_some());
    }
    let created = got[0].json();
    let template = fixture("bitbucket", "cloud-webhook-pullrequest-created.json");
    assert_eq!(keys(&created), keys(&template));
    assert_eq!(keys(&created["pullrequest"]), keys(&template["pullrequest"]));
    assert_eq!(keys(&created["repository"]), keys(&template["repository"]));
    let fulfilled = got[3].json();
    assert_eq!(fulfilled["pullrequest"]["state"], "MERGED");
    assert_eq!(
        keys(&fulfilled["pullrequest"]),
        keys(&fixture("bitbucket", "cloud-webhook-pullrequest-fulfilled.json")["pullrequest"])
    );
    // The docs template is trimmed; the event carries the REST status object's fields (reference §3.2).
    let status_body = got[1].json();
    let sent = keys(&status_body["commit_status"]);
    let template =
        keys(&fixture("bitbucket", "cloud-webhook-repo-commit-status-created.docs-template.json")["commit_status"]);
    let rest = keys(&fixture("bitbucket", "cloud-api-commit-build-status-get.json"));
    assert!(template.is_subset(&sent), "{template:?} ⊄ {sent:?}");
    assert!(sent.iter().all(|k| template.contains(k) || rest.contains(k)), "{sent:?}");
    assert_eq!(status_body["commit_status"]["refname"], "feature/WEB-2", "the branch the build named");

    // Removing the secret with null stops signing.
    let updated =
        c.req(Method::PUT, &format!("{REPO}/hooks/{uid}")).json(&json!({"secret": null})).send().await.unwrap();
    assert_eq!(updated.json::<Value>().await.unwrap()["secret_set"], json!(false));
    let declined = sim.open_pullrequest("other", "", "feature/x", bitbucket::JARED).await.unwrap();
    sim.decline_pullrequest(declined, "not needed", bitbucket::JARED).await.unwrap();
    sim.settle().await;
    let last = receiver.received().pop().unwrap();
    assert_eq!(last.header("x-event-key").unwrap(), "pullrequest:rejected");
    assert!(last.header("x-hub-signature").is_none());
    assert_eq!(last.json()["pullrequest"]["reason"], "not needed");
}

#[tokio::test]
async fn failed_deliveries_are_retried_twice_with_the_same_request_uuid() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let receiver = Receiver::start().await;
    receiver.respond_with(500);
    sim.register_webhook(&receiver.url, None, &["pullrequest:created"]).await;
    sim.open_pullrequest("t", "", "b", bitbucket::JARED).await.unwrap();
    sim.settle().await;
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    let attempts: Vec<String> = got.iter().map(|r| r.header("x-attempt-number").unwrap()).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert_eq!(got[0].header("x-request-uuid"), got[2].header("x-request-uuid"));
}

#[tokio::test]
async fn a_commit_lists_the_pull_requests_that_contain_it_and_access_tokens_are_no_users() {
    let sim = bitbucket::Simulator::start(bitbucket::Options::default()).await.unwrap();
    let id = sim.open_pullrequest("Fix it (WEB-1)", "", "feature/fix", bitbucket::JARED).await.unwrap();
    let head = sim.head_of(id).await.unwrap();
    let (ws, repo) = sim.repository();
    let http = reqwest::Client::new();
    let (email, token) = sim.credentials();
    let url = format!("{}/2.0/repositories/{ws}/{repo}/commit/{}/pullrequests", sim.base_url(), &head[..12]);
    let page: serde_json::Value =
        http.get(&url).basic_auth(&email, Some(&token)).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["values"][0]["source"]["branch"]["name"], "feature/fix");
    let unknown = format!("{}/2.0/repositories/{ws}/{repo}/commit/0123456789ab/pullrequests", sim.base_url());
    assert_eq!(http.get(&unknown).basic_auth(&email, Some(&token)).send().await.unwrap().status(), 404);

    let bearer = |path: &str| http.get(format!("{}{path}", sim.base_url())).bearer_auth(bitbucket::ACCESS_TOKEN).send();
    assert_eq!(bearer("/2.0/user").await.unwrap().status(), 401, "an access token is not a user");
    assert_eq!(
        bearer(&format!("/2.0/repositories/{ws}/{repo}")).await.unwrap().status(),
        200,
        "but works on its repository"
    );
}

#[tokio::test]
async fn the_hourly_budget_answers_plain_text_429_without_retry_after() {
    let opts = bitbucket::Options { hourly_budget: Some(2), ..bitbucket::Options::default() };
    let sim = bitbucket::Simulator::start(opts).await.unwrap();
    let (email, token) = sim.credentials();
    let http = reqwest::Client::new();
    let get = || http.get(format!("{}/2.0/user", sim.base_url())).basic_auth(&email, Some(&token)).send();
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(get().await.unwrap().status(), 200);
    let refused = get().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_none());
    assert_eq!(refused.headers()["content-type"], "text/plain");
    assert_eq!(refused.text().await.unwrap(), "Rate limit for this resource has been exceeded");
}
