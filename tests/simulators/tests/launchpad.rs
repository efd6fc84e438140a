//! The Basecamp simulator's Launchpad: the authorization page, the person's answer, the code exchange and
//! its refusals, shaped as Launchpad answers (reference/basecamp-api.md §2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use campbridge_simulators::basecamp::launchpad::REDIRECT_NOT_APPROVED;
use campbridge_simulators::basecamp::{CLIENT_ID, CLIENT_SECRET, JARED, Options, REDIRECT_URI, SYNC_BOT, Simulator};
use reqwest::StatusCode;
use serde_json::Value;
use support::{assert_same_keys, fixture};

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn authorize_url(sim: &Simulator, redirect: &str, state: &str) -> String {
    let mut url = url::Url::parse(&format!("{}/authorization/new", sim.launchpad_url())).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", redirect)
        .append_pair("state", state);
    url.to_string()
}

/// The hidden `authorization` field of the page's form.
fn authorization_id(html: &str) -> String {
    let marker = "name=\"authorization\" value=\"";
    let start = html.find(marker).expect("the page has the authorization form") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn query_of(location: &str) -> BTreeMap<String, String> {
    url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

/// Opens the page and presses a button; the redirect's query.
async fn press(sim: &Simulator, redirect: &str, state: &str, decision: &str) -> (String, BTreeMap<String, String>) {
    let page = browser().get(authorize_url(sim, redirect, state)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Yes, I'll allow access"), "{html}");
    let answer = browser()
        .post(format!("{}/authorization", sim.launchpad_url()))
        .form(&[("authorization", authorization_id(&html).as_str()), ("decision", decision)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    let query = query_of(&location);
    (location, query)
}

async fn exchange(sim: &Simulator, fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let response =
        browser().post(format!("{}/authorization/token", sim.launchpad_url())).form(fields).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn code_grant<'a>(code: &'a str, redirect: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("redirect_uri", redirect),
        ("code", code),
    ]
}

#[tokio::test]
async fn an_approval_redirects_with_a_single_use_code_that_exchanges_for_working_tokens() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let (location, query) = press(&sim, REDIRECT_URI, "s+t/a=te&1", "allow").await;
    assert!(location.starts_with(&format!("{REDIRECT_URI}?")), "{location}");
    assert_eq!(query["state"], "s+t/a=te&1", "state comes back exactly as sent");
    let code = query["code"].clone();
    assert_eq!(code.len(), 8, "Launchpad's codes have 8 characters");

    let (status, tokens) = exchange(&sim, &code_grant(&code, REDIRECT_URI)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_same_keys(&tokens, &fixture("basecamp", "oauth-token-response.json"), "token response");
    assert_eq!(tokens["expires_in"], 1_209_600);
    let access = tokens["access_token"].as_str().unwrap();
    let me =
        browser().get(format!("{}/authorization.json", sim.launchpad_url())).bearer_auth(access).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await.unwrap()["identity"]["id"], SYNC_BOT);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, renewed) = exchange(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", refresh),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");

    let (status, again) = exchange(&sim, &code_grant(&code, REDIRECT_URI)).await;
    assert_eq!((status, again["error"].as_str()), (StatusCode::BAD_REQUEST, Some("expired_verification_code")));
    assert_eq!(sim.calls().count("POST", "/authorization/token"), 3);
}

#[tokio::test]
async fn the_legacy_parameters_work_and_a_control_call_can_approve_as_another_person() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let url = authorize_url(&sim, REDIRECT_URI, "xyz").replace("response_type=code", "type=web_server");
    assert_eq!(browser().get(url).send().await.unwrap().status(), StatusCode::OK);
    let location = sim.answer_authorization(None, JARED, true).unwrap();
    let code = query_of(&location)["code"].clone();
    let (status, tokens) = exchange(
        &sim,
        &[
            ("type", "web_server"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("redirect_uri", REDIRECT_URI),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let me = browser()
        .get(format!("{}/authorization.json", sim.launchpad_url()))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.json::<Value>().await.unwrap()["identity"]["id"], JARED);
    assert!(sim.answer_authorization(None, JARED, true).is_err(), "each page is answered once");
}

#[tokio::test]
async fn an_unregistered_redirect_or_unknown_client_gets_an_error_page_and_no_redirect() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let other = browser().get(authorize_url(&sim, "http://127.0.0.1:9999/elsewhere", "s")).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::BAD_REQUEST);
    assert!(other.headers().get("location").is_none());
    assert!(other.text().await.unwrap().contains(REDIRECT_NOT_APPROVED));
    let unknown = authorize_url(&sim, REDIRECT_URI, "s").replace(CLIENT_ID, "someone-else");
    assert_eq!(browser().get(unknown).send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    let no_type = authorize_url(&sim, REDIRECT_URI, "s").replace("response_type=code&", "");
    assert_eq!(browser().get(no_type).send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert!(sim.answer_authorization(None, SYNC_BOT, true).is_err(), "no page was shown");

    // Registering the URI (as editing the app at Launchpad) makes it acceptable.
    sim.register_redirect_uri("http://127.0.0.1:9999/elsewhere");
    let (_, query) = press(&sim, "http://127.0.0.1:9999/elsewhere", "s", "allow").await;
    assert!(query.contains_key("code"));
}

#[tokio::test]
async fn a_denial_redirects_with_access_denied_and_no_code() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let (_, query) = press(&sim, REDIRECT_URI, "abc", "deny").await;
    assert_eq!(query.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(query["state"], "abc");
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn exchanges_with_a_wrong_secret_another_redirect_or_an_expired_code_are_refused() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let (_, query) = press(&sim, REDIRECT_URI, "s", "allow").await;
    let code = query["code"].clone();

    let mut wrong_secret = code_grant(&code, REDIRECT_URI);
    wrong_secret[2] = ("client_secret", "not-the-secret");
    let (status, body) = exchange(&sim, &wrong_secret).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));

    let (status, body) = exchange(&sim, &code_grant(&code, "http://127.0.0.1:8915/other")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("redirect_uri_mismatch")));

    let (status, body) = exchange(&sim, &code_grant("AAAAAAAA", REDIRECT_URI)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("expired_verification_code")));

    assert_eq!(sim.expire_authorization_codes(), 1);
    let (status, body) = exchange(&sim, &code_grant(&code, REDIRECT_URI)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("expired_verification_code")));

    let mut grant = code_grant(&code, REDIRECT_URI);
    grant[0] = ("grant_type", "password");
    let (status, body) = exchange(&sim, &grant).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
}
