//! Client contract scenarios (feature `testkit`): behaviour any faithful backend must show through
//! the real clients — the scripted fixture server in this crate's tests, the API simulators in
//! `tests/simulators`. Each scenario takes a client built on the backend's base URL plus the ids of
//! records that exist there, and fails with a message naming the first broken expectation.

use anyhow::{Context, ensure};

use super::basecamp::BasecampClient;
use super::bitbucket::{BitbucketClient, PullRequest};
use super::jira::JiraClient;
use crate::domain::PullRequestState;
use crate::domain::TrackerTarget;
use crate::domain::{DevItem, DevItemRef, NewDevItem, ProjectId, RepoRef, StatusCategory, TodoId};
use crate::ports::{BasecampApi, DevItemPatch, TodoPatch, TrackerApi};

/// Changing only a to-do's title leaves its description, assignees, completion subscribers and
/// dates as they were (Basecamp clears whatever a PUT omits).
pub async fn basecamp_title_change_keeps_other_fields(
    client: &BasecampClient,
    project: ProjectId,
    todo: TodoId,
    new_title: &str,
) -> anyhow::Result<()> {
    let before = client.todo(todo).await?.context("the to-do does not exist")?;
    let patch = TodoPatch { title: Some(new_title.to_owned()), ..TodoPatch::default() };
    let returned = BasecampApi::update_todo(client, project, todo, &patch).await?;
    ensure!(returned.title == new_title, "update returned title {:?}", returned.title);
    let after = client.todo(todo).await?.context("the to-do vanished after the update")?;
    let ids = |people: &[super::basecamp::Person]| people.iter().map(|p| p.id).collect::<Vec<_>>();
    ensure!(after.content == new_title, "title after update: {:?}", after.content);
    ensure!(after.description == before.description, "the description changed: {:?}", after.description);
    ensure!(ids(&after.assignees) == ids(&before.assignees), "the assignees changed");
    ensure!(
        ids(&after.completion_subscribers) == ids(&before.completion_subscribers),
        "the completion subscribers changed"
    );
    ensure!(after.due_on == before.due_on && after.starts_on == before.starts_on, "the dates changed");
    ensure!(after.completed == before.completed, "completion changed");
    Ok(())
}

/// Asking for a status category moves the issue into a status of that category.
pub async fn jira_status_moves_by_category(
    client: &JiraClient,
    issue: &DevItemRef,
    category: StatusCategory,
) -> anyhow::Result<()> {
    client.update_item(issue, &DevItemPatch { status: Some(category), ..DevItemPatch::default() }).await?;
    let item = client.get_item(issue).await?.context("the issue does not exist")?;
    ensure!(item.status == category, "status after the transition: {:?} ({})", item.status, item.status_name);
    Ok(())
}

/// A created item carries its marker label and is found again by its marker once the search index has
/// caught up (`index_lag`: Jira's search lags behind writes) — what a retry after a crash relies on, and
/// why the engine searches only [`crate::sync::SyncSettings::search_settle`] after a claim's lease.
pub async fn jira_created_item_is_found_by_marker(
    client: &JiraClient,
    target: &TrackerTarget,
    draft: &NewDevItem,
    index_lag: std::time::Duration,
) -> anyhow::Result<DevItem> {
    let created = client.create_item(target, draft).await?;
    ensure!(created.labels.contains(&draft.marker.label()), "the created item lacks the marker label");
    tokio::time::sleep(index_lag).await;
    let found = client.find_by_marker(target, &draft.marker).await?.context("the marker search found nothing")?;
    ensure!(found.item == created.item, "the marker search found {} instead of {}", found.item, created.item);
    Ok(created)
}

/// Listing pull requests in every state walks all pages and returns each one once.
pub async fn bitbucket_lists_every_pull_request_once(
    client: &BitbucketClient,
    repo: &RepoRef,
    at_least: usize,
) -> anyhow::Result<Vec<PullRequest>> {
    let all =
        [PullRequestState::Open, PullRequestState::Merged, PullRequestState::Declined, PullRequestState::Superseded];
    let prs = client.pull_requests(repo, &all).await?;
    ensure!(prs.len() >= at_least, "only {} pull requests listed, expected at least {at_least}", prs.len());
    let ids: std::collections::BTreeSet<u64> = prs.iter().map(|p| p.id).collect();
    ensure!(ids.len() == prs.len(), "a pull request was listed twice");
    Ok(prs)
}
