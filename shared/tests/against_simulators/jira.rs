//! The Jira client against the Jira simulator: the `TrackerApi` port end to end (create with
//! marker, reads with status category and ADF → HTML, marker search over `/search/jql`, edits,
//! transitions, rejected assignees, remote links) and the client's other reads.

use std::collections::BTreeSet;
use std::time::Duration;

use campbridge_simulators::jira::{self as jira_sim, Config, Options};
use campbridge_simulators::{Faults, Forced429};
use serde_json::{Value, json};
use shared::clients::jira::MARKER_PROPERTY;
use shared::domain::{
    DevItemRef, JiraAccountId, JiraIssueId, JiraKey, Priority, RouteId, StatusCategory, SyncMarker, TodoId,
};
use shared::ports::{ApiError, DevItemPatch, RemoteLink, TrackerApi};

use super::contract::{draft, target};
use super::support::{self, jira_raw_get};

fn key_of(item: &DevItemRef) -> String {
    item.display_name().to_owned()
}

/// An issue written by a person: a bold word and a bullet list in ADF.
fn person_issue(summary: &str) -> Value {
    json!({"fields": {
        "project": {"key": jira_sim::PROJECT_KEY},
        "issuetype": {"name": "Bug"},
        "summary": summary,
        "labels": ["triage"],
        "description": {"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Steps are "},
                {"type": "text", "text": "important", "marks": [{"type": "strong"}]}
            ]},
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "open"}]}]},
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "click"}]}]}
            ]}
        ]}
    }})
}

fn item_ref(sim_issue: &Value) -> DevItemRef {
    DevItemRef::Jira {
        id: JiraIssueId::parse(sim_issue["id"].as_str().unwrap()).unwrap(),
        key: JiraKey::parse(sim_issue["key"].as_str().unwrap()).unwrap(),
    }
}

#[tokio::test]
async fn a_created_item_carries_the_marker_label_property_and_every_field() {
    let (sim, client) = support::jira().await;
    let draft = draft(1_069_480_015);
    let created = client.create_item(&target(), &draft).await.unwrap();

    assert_eq!(created.summary, draft.summary);
    assert_eq!(created.description, draft.description, "the description round-trips through ADF");
    assert_eq!(created.status, StatusCategory::New);
    assert_eq!(created.status_name, "To Do");
    assert_eq!(created.assignee, Some(JiraAccountId(jira_sim::MIA.into())));
    assert_eq!(created.priority, Some(Priority::Highest));
    assert_eq!(created.labels, BTreeSet::from(["basecamp".to_owned(), "bc-1069480015".to_owned()]));
    assert_eq!(created.components, BTreeSet::from(["Frontend".to_owned()]));
    assert_eq!(created.due, chrono::NaiveDate::from_ymd_opt(2026, 9, 1));
    assert_eq!(created.url, format!("{}/browse/WEB-1", sim.base_url()));

    let stored = sim.issue("WEB-1").await.unwrap();
    assert_eq!(stored["fields"]["description"]["type"], "doc");
    let marker = client.get_property("WEB-1", MARKER_PROPERTY).await.unwrap();
    assert_eq!(marker, Some(json!({"route": "web", "todo": 1_069_480_015_i64})));
}

#[tokio::test]
async fn an_item_reads_with_its_status_category_and_description_as_html() {
    let (sim, client) = support::jira().await;
    let key = sim.create_issue(person_issue("Login fails"), jira_sim::EMMA).await.unwrap();
    sim.transition_issue(&key, "In Progress", jira_sim::EMMA).await.unwrap();
    sim.assign_issue(&key, Some(jira_sim::ANNIE), jira_sim::EMMA).await.unwrap();
    let stored = sim.issue(&key).await.unwrap();

    let item = client.get_item(&item_ref(&stored)).await.unwrap().expect("the issue exists");
    assert_eq!(item.summary, "Login fails");
    assert_eq!((item.status, item.status_name.as_str()), (StatusCategory::Indeterminate, "In Progress"));
    assert_eq!(item.assignee, Some(JiraAccountId(jira_sim::ANNIE.into())));
    assert_eq!(item.labels, BTreeSet::from(["triage".to_owned()]));
    assert_eq!(item.description, "<div>Steps are <strong>important</strong></div><ul><li>open</li><li>click</li></ul>");
    assert_eq!(item.description, shared::richtext::adf_to_html(&stored["fields"]["description"]));

    let gone = DevItemRef::Jira { id: JiraIssueId::parse("99999").unwrap(), key: JiraKey::parse("WEB-999").unwrap() };
    assert!(client.get_item(&gone).await.unwrap().is_none());
}

#[tokio::test]
async fn find_by_marker_searches_jql_and_finds_only_its_own_item() {
    let (sim, client) = support::jira().await;
    let first = client.create_item(&target(), &draft(1)).await.unwrap();
    let second = client.create_item(&target(), &draft(2)).await.unwrap();
    sim.create_issue(person_issue("Unrelated"), jira_sim::EMMA).await.unwrap();

    let marker = |todo| SyncMarker { route: RouteId::parse("web").unwrap(), todo: TodoId(todo) };
    // Jira's search index lags behind writes: right after the create, the marker finds nothing yet.
    assert!(client.find_by_marker(&target(), &marker(2)).await.unwrap().is_none(), "not indexed yet");
    sim.refresh_index().await;
    let found = client.find_by_marker(&target(), &marker(2)).await.unwrap().expect("found by marker");
    assert_eq!(found.item, second.item);
    assert_eq!(found.summary, second.summary);
    assert_eq!(client.find_by_marker(&target(), &marker(1)).await.unwrap().unwrap().item, first.item);
    assert!(client.find_by_marker(&target(), &marker(3)).await.unwrap().is_none());
    let calls = sim.calls();
    assert_eq!(calls.count("POST", "/rest/api/3/search/jql"), 4);
    let old_search = calls.count("POST", "/rest/api/3/search") + calls.count("GET", "/rest/api/3/search");
    assert_eq!(old_search, 0, "the removed search is never called");
}

#[tokio::test]
async fn an_update_edits_labels_and_moves_to_done_and_back() {
    let (sim, client) = support::jira().await;
    let created = client.create_item(&target(), &draft(7)).await.unwrap();
    let key = key_of(&created.item);
    sim.edit_issue(&key, json!({"update": {"labels": [{"add": "hand-made"}]}}), jira_sim::EMMA).await.unwrap();

    let patch = DevItemPatch {
        summary: Some("[BC][WEB] Clear and simpler UI".into()),
        labels_add: BTreeSet::from(["sprint-2".to_owned()]),
        labels_remove: BTreeSet::from(["basecamp".to_owned()]),
        status: Some(StatusCategory::Done),
        ..DevItemPatch::default()
    };
    client.update_item(&created.item, &patch).await.unwrap();
    let stored = sim.issue(&key).await.unwrap();
    assert_eq!(stored["fields"]["summary"], "[BC][WEB] Clear and simpler UI");
    assert_eq!(stored["fields"]["labels"], json!(["bc-7", "hand-made", "sprint-2"]), "hand-made labels survive");
    assert_eq!(stored["fields"]["status"]["statusCategory"]["key"], "done");

    let reopen = DevItemPatch { status: Some(StatusCategory::New), ..DevItemPatch::default() };
    client.update_item(&created.item, &reopen).await.unwrap();
    let item = client.get_item(&created.item).await.unwrap().unwrap();
    assert_eq!((item.status, item.status_name.as_str()), (StatusCategory::New, "To Do"));
    assert_eq!(sim.calls().count("PUT", "/rest/api/3/issue/{key}"), 1, "one edit request for all field changes");
}

#[tokio::test]
async fn done_behind_a_resolution_screen_is_reached_with_a_resolution() {
    let options = Options { config: Config { require_resolution: true, ..Config::default() }, ..Options::default() };
    let (sim, client) = support::jira_with(options).await;
    let created = client.create_item(&target(), &draft(8)).await.unwrap();
    let done = DevItemPatch { status: Some(StatusCategory::Done), ..DevItemPatch::default() };
    client.update_item(&created.item, &done).await.unwrap();
    let stored = sim.issue(&key_of(&created.item)).await.unwrap();
    assert_eq!(stored["fields"]["status"]["statusCategory"]["key"], "done");
    assert_eq!(stored["fields"]["resolution"]["name"], "Done");
}

#[tokio::test]
async fn an_unassignable_user_is_a_rejected_assignee_field() {
    let unassignable = BTreeSet::from([jira_sim::JARED.to_owned()]);
    let options = Options { config: Config { unassignable, ..Config::default() }, ..Options::default() };
    let (sim, client) = support::jira_with(options).await;
    let created = client.create_item(&target(), &draft(9)).await.unwrap();

    let assign = DevItemPatch {
        assignee: Some(Some(JiraAccountId(jira_sim::JARED.into()))),
        summary: Some("not applied either".into()),
        ..DevItemPatch::default()
    };
    let err = client.update_item(&created.item, &assign).await.unwrap_err();
    assert!(matches!(&err, ApiError::FieldRejected { field, .. } if field == "assignee"), "{err:?}");
    let stored = sim.issue(&key_of(&created.item)).await.unwrap();
    assert_eq!(stored["fields"]["assignee"]["accountId"], jira_sim::MIA, "the edit was all-or-nothing");

    let mut doomed = draft(10);
    doomed.assignee = Some(JiraAccountId(jira_sim::JARED.into()));
    let err = client.create_item(&target(), &doomed).await.unwrap_err();
    assert!(matches!(&err, ApiError::FieldRejected { field, .. } if field == "assignee"), "{err:?}");
    assert!(sim.issue("WEB-2").await.is_none(), "nothing was created");
}

#[tokio::test]
async fn an_assignment_the_credentials_may_not_make_is_forbidden() {
    let unassignable = BTreeSet::from([jira_sim::JARED.to_owned()]);
    let config = Config { unassignable, unassignable_forbidden: true, ..Config::default() };
    let (_sim, client) = support::jira_with(Options { config, ..Options::default() }).await;
    let created = client.create_item(&target(), &draft(11)).await.unwrap();
    let assign =
        DevItemPatch { assignee: Some(Some(JiraAccountId(jira_sim::JARED.into()))), ..DevItemPatch::default() };
    let err = client.update_item(&created.item, &assign).await.unwrap_err();
    assert!(matches!(err, ApiError::Forbidden(_)), "{err:?}");
}

#[tokio::test]
async fn a_remote_link_upserted_twice_is_one_link() {
    let (sim, client) = support::jira().await;
    let created = client.create_item(&target(), &draft(12)).await.unwrap();
    let link = |title: &str| RemoteLink {
        global_id: "basecamp-todo-1069480015".into(),
        url: "https://3.basecamp.com/195539477/buckets/2085958505/todos/1069480015".into(),
        title: title.into(),
    };
    TrackerApi::upsert_remote_link(&client, &created.item, &link("Clear and simple UI")).await.unwrap();
    TrackerApi::upsert_remote_link(&client, &created.item, &link("Clear and simpler UI")).await.unwrap();

    let links = jira_raw_get(&sim, &format!("/rest/api/3/issue/{}/remotelink", key_of(&created.item))).await;
    let links = links.as_array().unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0]["globalId"], "basecamp-todo-1069480015");
    assert_eq!(links[0]["object"]["title"], "Clear and simpler UI");
    assert_eq!(links[0]["application"]["name"], "Basecamp");
}

#[tokio::test]
async fn a_429_page_is_rate_limited_with_the_servers_retry_after() {
    let (sim, client) = support::jira().await;
    let created = client.create_item(&target(), &draft(13)).await.unwrap();
    for html in [true, false] {
        sim.set_faults(Faults {
            force_429: Some(Forced429 { retry_after: 7, remaining: Some(1), html }),
            ..Faults::default()
        });
        let err = client.get_item(&created.item).await.unwrap_err();
        assert!(
            matches!(err, ApiError::RateLimited { retry_after } if retry_after == Duration::from_secs(7)),
            "html {html}: {err:?}"
        );
    }
    assert!(client.get_item(&created.item).await.unwrap().is_some(), "served again once the fault is spent");
}

#[tokio::test]
async fn simulator_responses_deserialize_into_the_client_types() {
    let (sim, client) = support::jira().await;
    let me = client.myself().await.unwrap();
    assert_eq!(me.account_id.as_deref(), Some(jira_sim::SYNC_BOT));
    let users = client.search_users("mia").await.unwrap();
    assert_eq!(users.iter().filter_map(|u| u.account_id.as_deref()).collect::<Vec<_>>(), vec![jira_sim::MIA]);

    for n in 0..5 {
        sim.create_issue(person_issue(&format!("Bug {n}")), jira_sim::EMMA).await.unwrap();
    }
    sim.refresh_index().await;
    let all = client.search("project = WEB ORDER BY created ASC", &["summary", "status"], 2).await.unwrap();
    assert_eq!(all.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["WEB-1", "WEB-2", "WEB-3", "WEB-4", "WEB-5"]);
    assert!(all.iter().all(|i| i.fields.status.is_some() && i.fields.summary.is_some()));
    assert_eq!(sim.calls().count("POST", "/rest/api/3/search/jql"), 3, "cursor paging by twos");

    let transitions = client.transitions("WEB-1").await.unwrap();
    let targets: Vec<&str> = transitions.iter().filter_map(|t| t.to.as_ref()?.name.as_deref()).collect();
    assert!(targets.contains(&"In Progress") && targets.contains(&"Done"), "{targets:?}");

    let adf = shared::richtext::html_to_adf("<div>DEV: looks good</div>");
    let comment = client.add_comment("WEB-1", &adf).await.unwrap();
    sim.comment_issue("WEB-1", "PM: thanks", jira_sim::EMMA).await.unwrap();
    let comments = client.comments("WEB-1").await.unwrap();
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[0].id, comment.id);
    assert_eq!(comments[1].author.as_ref().unwrap().account_id.as_deref(), Some(jira_sim::EMMA));
    assert_eq!(shared::richtext::adf_to_html(comments[1].body.as_ref().unwrap()), "<div>PM: thanks</div>");

    client.put_property("WEB-1", MARKER_PROPERTY, &json!({"route": "web", "todo": 5})).await.unwrap();
    assert_eq!(client.get_property("WEB-1", MARKER_PROPERTY).await.unwrap(), Some(json!({"route": "web", "todo": 5})));
    assert_eq!(client.get_property("WEB-1", "absent").await.unwrap(), None);
}
