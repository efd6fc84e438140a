//! The contract scenarios ([`crate::clients::contract`]) against the scripted server, replaying what
//! the real APIs answer at each step. The simulators run the same scenarios against their own state.

use serde_json::json;
use std::time::Duration;

use super::server::{Reply, TestServer, fixture_json};
use super::{basecamp, bitbucket, jira};
use crate::clients::contract;
use crate::domain::{DevItemRef, JiraIssueId, JiraKey, ProjectId, RepoRef, StatusCategory, TodoId};

#[tokio::test]
async fn a_title_change_keeps_the_other_fields_on_the_fixture_server() {
    let server = TestServer::start().await;
    let secrets = basecamp::MemorySecrets::with_tokens();
    let c = basecamp::client(&server.url("/195539477/"), &server.url("/authorization/token"), secrets);
    let mut before = fixture_json("basecamp/todo-get.json");
    before["description"] = json!("<div>Keep me</div>");
    let mut after = before.clone();
    after["content"] = json!("Renamed");
    after["title"] = json!("Renamed");
    let path = "/195539477/todos/1069480015.json";
    server.on("GET", path, Reply::value(200, &before)).on("GET", path, Reply::value(200, &before));
    server.on("GET", path, Reply::value(200, &after));
    server.on("PUT", path, Reply::value(200, &after));
    contract::basecamp_title_change_keeps_other_fields(&c, ProjectId(2_085_958_505), TodoId(1_069_480_015), "Renamed")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_status_moves_by_category_on_the_fixture_server() {
    let server = TestServer::start().await;
    let transitions = fixture_json("jira/cloud-rest-transitions.json");
    let mut issue = fixture_json("jira/cloud-rest-issue-get.v2-capture.json");
    issue["fields"]["status"] = transitions["transitions"][2]["to"].clone();
    server.on("GET", "/rest/api/3/issue/10305/transitions", Reply::value(200, &transitions));
    server.on("POST", "/rest/api/3/issue/10305/transitions", Reply::empty(204));
    server.on("GET", "/rest/api/3/issue/10305", Reply::value(200, &issue));
    let item = DevItemRef::Jira { id: JiraIssueId::parse("10305").unwrap(), key: JiraKey::parse("SEN-5").unwrap() };
    contract::jira_status_moves_by_category(&jira::client(&server.url("/")), &item, StatusCategory::Done)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_created_item_is_found_by_its_marker_on_the_fixture_server() {
    let server = TestServer::start().await;
    let created = fixture_json("jira/cloud-rest-issue-create-response.docs-example.json");
    let mut issue = fixture_json("jira/cloud-rest-issue-get.v2-capture.json");
    issue["id"] = created["id"].clone();
    issue["key"] = created["key"].clone();
    issue["fields"]["labels"] = json!(["basecamp", "bc-1069480015"]);
    server.on("POST", "/rest/api/3/issue", Reply::value(201, &created));
    server.on("GET", "/rest/api/3/issue/10000", Reply::value(200, &issue));
    server.on("POST", "/rest/api/3/search/jql", Reply::value(200, &json!({"issues": [issue], "isLast": true})));
    let c = jira::client(&server.url("/"));
    let item = contract::jira_created_item_is_found_by_marker(&c, &jira::target(), &jira::draft(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(item.item.display_name(), "ED-24");
}

#[tokio::test]
async fn every_pull_request_is_listed_once_on_the_fixture_server() {
    let server = TestServer::start().await;
    let mut first = fixture_json("bitbucket/cloud-api-pullrequests-list-paginated.json");
    let mut second = first.clone();
    let values = first["values"].as_array().unwrap().clone();
    first["values"] = json!(values[..3]);
    first["next"] = json!("{origin}/2.0/repositories/amuniz/test-repos/pullrequests?page=2");
    second["values"] = json!(values[3..]);
    second["page"] = json!(2);
    server.on("GET", "/2.0/repositories/amuniz/test-repos/pullrequests", Reply::value(200, &first));
    server.on("GET", "/2.0/repositories/amuniz/test-repos/pullrequests?page=2", Reply::value(200, &second));
    let repo = RepoRef::parse("amuniz/test-repos").unwrap();
    let prs = contract::bitbucket_lists_every_pull_request_once(&bitbucket::client(&server.url("/2.0/")), &repo, 5)
        .await
        .unwrap();
    assert_eq!(prs.len(), 5);
}
