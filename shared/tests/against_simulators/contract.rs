//! Every client contract scenario ([`shared::clients::contract`]) against the simulators' state,
//! the same scenarios the crate's own tests replay against the scripted fixture server.

use std::collections::BTreeSet;

use campbridge_simulators::basecamp::{self as bc_sim, TodoWrite};
use campbridge_simulators::bitbucket as bb_sim;
use shared::clients::contract;
use shared::domain::TrackerTarget;
use shared::domain::{
    JiraAccountId, JiraProjectKey, NewDevItem, Priority, ProjectId, RepoRef, RouteId, StatusCategory, SyncMarker,
    TodoId,
};

use super::support::{self, Basecamp};

pub fn target() -> TrackerTarget {
    TrackerTarget::Jira { project: JiraProjectKey::parse("WEB").unwrap(), issue_type: "Task".into() }
}

/// Just past the Jira simulator's search-index lag.
const LAG: std::time::Duration =
    std::time::Duration::from_millis(campbridge_simulators::jira::DEFAULT_SEARCH_LAG_MS + 100);

/// A draft like the engine's, for the to-do `todo`.
pub fn draft(todo: i64) -> NewDevItem {
    NewDevItem {
        summary: "[BC][WEB] Clear and simple UI".into(),
        description: "<div>Context</div><ul><li>one</li></ul>".into(),
        assignee: Some(JiraAccountId(campbridge_simulators::jira::MIA.into())),
        priority: Some(Priority::Highest),
        labels: BTreeSet::from(["basecamp".to_owned()]),
        components: BTreeSet::from(["Frontend".to_owned()]),
        due: chrono::NaiveDate::from_ymd_opt(2026, 9, 1),
        fields: Default::default(),
        marker: SyncMarker { route: RouteId::parse("web").unwrap(), todo: TodoId(todo) },
    }
}

#[tokio::test]
async fn a_title_change_keeps_the_other_fields_on_the_simulator() {
    let bc = Basecamp::start().await;
    let todo = bc
        .todo_in(
            "Sprint 1",
            TodoWrite {
                content: Some("Clear and simple UI".into()),
                description: Some("<div><em>Try that new language!</em></div>".into()),
                assignee_ids: Some(vec![bc_sim::ANNIE, bc_sim::JARED]),
                completion_subscriber_ids: Some(vec![bc_sim::CHERYL]),
                due_on: Some("2026-09-01".into()),
                starts_on: Some("2026-08-20".into()),
                ..TodoWrite::default()
            },
        )
        .await;
    contract::basecamp_title_change_keeps_other_fields(
        &bc.client,
        ProjectId(bc_sim::PROJECT_ID),
        TodoId(todo),
        "Clear and simple UI v2",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_status_moves_by_category_on_the_simulator() {
    let (_sim, client) = support::jira().await;
    let created = contract::jira_created_item_is_found_by_marker(&client, &target(), &draft(1), LAG).await.unwrap();
    for category in [StatusCategory::Indeterminate, StatusCategory::Done, StatusCategory::New, StatusCategory::Done] {
        contract::jira_status_moves_by_category(&client, &created.item, category)
            .await
            .unwrap_or_else(|e| panic!("moving to {category:?}: {e:#}"));
    }
}

#[tokio::test]
async fn a_created_item_is_found_by_its_marker_on_the_simulator() {
    let (_sim, client) = support::jira().await;
    let first =
        contract::jira_created_item_is_found_by_marker(&client, &target(), &draft(1_069_480_015), LAG).await.unwrap();
    assert_eq!(first.item.display_name(), "WEB-1");
    // Another to-do's item does not shadow the first one's marker.
    let second = contract::jira_created_item_is_found_by_marker(&client, &target(), &draft(42), LAG).await.unwrap();
    assert_ne!(first.item, second.item);
}

#[tokio::test]
async fn every_pull_request_is_listed_once_on_the_simulator() {
    let (sim, client) = support::bitbucket().await;
    // More than one page of 50 (the client's pagelen), in every state.
    let mut ids = Vec::new();
    for n in 0..55 {
        let id = sim
            .open_pullrequest(&format!("WEB-{n} Page {n}"), "", &format!("feature/WEB-{n}"), bb_sim::JARED)
            .await
            .unwrap();
        ids.push(id);
    }
    sim.merge_pullrequest(ids[0], bb_sim::SYNC_BOT).await.unwrap();
    sim.decline_pullrequest(ids[1], "not now", bb_sim::SYNC_BOT).await.unwrap();
    let (workspace, repo) = sim.repository();
    let repo = RepoRef::parse(&format!("{workspace}/{repo}")).unwrap();
    let prs = contract::bitbucket_lists_every_pull_request_once(&client, &repo, 55).await.unwrap();
    assert_eq!(prs.len(), 55);
    let listed = |state: &str| prs.iter().filter(|p| p.state.as_ref().is_some_and(|s| s.as_str() == state)).count();
    assert_eq!((listed("OPEN"), listed("MERGED"), listed("DECLINED")), (53, 1, 1));
}
