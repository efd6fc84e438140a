//! The reconciler's polling ports on the real clients: Basecamp's cross-project recordings listing and
//! webhook endpoints, Jira's `/search/jql`.
//!
//! Jira reads absolute JQL dates in the *searching user's* time zone, which the integration account may
//! have set to anything; a relative date (`updated >= "-25m"`) means the same instant in every zone, so the
//! search asks for "updated within the last N minutes", rounded up (the reconciler's overlap absorbs the
//! rounding and any clock skew between us and Jira).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::basecamp::{BasecampClient, RecordingsQuery, SYNC_WEBHOOK_TYPES};
use super::jira::{JiraClient, jql_string};
use crate::domain::{JiraProjectKey, ProjectId, TodoId};
use crate::ports::{
    ApiError, BasecampPolling, IssuePage, IssueUpdate, ProjectWebhook, TodoUpdate, TodoUpdates, TrackerPolling,
};

/// The search for issues of `projects` changed within the last `within`, oldest change first (key breaks
/// ties, so paging is stable).
pub fn updated_within_jql(projects: &[JiraProjectKey], within: Duration) -> String {
    let minutes = within.as_secs().div_ceil(60).max(1);
    let keys: Vec<String> = projects.iter().map(|p| jql_string(p.as_str())).collect();
    format!("project in ({}) AND updated >= \"-{minutes}m\" ORDER BY updated ASC, key ASC", keys.join(", "))
}

#[async_trait]
impl BasecampPolling for BasecampClient {
    async fn todos_updated_since(
        &self,
        projects: &[ProjectId],
        since: DateTime<Utc>,
        max_pages: usize,
    ) -> Result<TodoUpdates, ApiError> {
        let query = |status: Option<&str>, max_pages: usize| RecordingsQuery {
            kind: "Todo".to_owned(),
            buckets: projects.to_vec(),
            status: status.map(str::to_owned),
            since: Some(since),
            max_pages: Some(max_pages),
        };
        // Active to-dos, then the ones trashed or archived since the cursor (a lost `todo_trashed` must still
        // detach its pair; reference §12.4). Those two lists are short: their first page each.
        let mut listing = self.recordings(&query(None, max_pages)).await?;
        for status in ["trashed", "archived"] {
            let more = self.recordings(&query(Some(status), 1)).await?;
            listing.recordings.extend(more.recordings);
            listing.complete &= more.complete;
        }
        listing.recordings.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
        let updates = listing
            .recordings
            .into_iter()
            .filter_map(|r| {
                // The listing names each recording's project; one without (never seen) cannot be routed.
                let project = ProjectId(r.bucket.as_ref()?.id);
                Some(TodoUpdate { project, todo: TodoId(r.id), updated_at: r.updated_at })
            })
            .collect();
        Ok(TodoUpdates { updates, complete: listing.complete })
    }

    async fn webhooks(&self, project: ProjectId) -> Result<Vec<ProjectWebhook>, ApiError> {
        Ok(BasecampClient::webhooks(self, project)
            .await?
            .into_iter()
            .map(|h| ProjectWebhook { id: h.id, payload_url: h.payload_url, active: h.active })
            .collect())
    }

    async fn reactivate(&self, hook: &ProjectWebhook) -> Result<(), ApiError> {
        self.update_webhook(hook.id, &hook.payload_url, SYNC_WEBHOOK_TYPES, true).await?;
        Ok(())
    }
}

#[async_trait]
impl TrackerPolling for JiraClient {
    async fn issues_updated_within(
        &self,
        projects: &[JiraProjectKey],
        within: Duration,
        page_size: u32,
        page: Option<&str>,
    ) -> Result<IssuePage, ApiError> {
        let jql = updated_within_jql(projects, within);
        let found = self.search_page(&jql, &["updated"], page_size, page).await?;
        let mut issues = Vec::with_capacity(found.issues.len());
        for issue in &found.issues {
            let item = self.to_dev_item(issue)?;
            issues.push(IssueUpdate { item: item.item, updated_at: item.updated_at });
        }
        // The last page has no token (absent, not null); `isLast` says the same.
        let next = found.next_page_token.filter(|_| found.is_last != Some(true));
        Ok(IssuePage { issues, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_is_relative_so_the_accounts_time_zone_does_not_matter() {
        let projects = [JiraProjectKey::parse("WEB").ok(), JiraProjectKey::parse("OPS").ok()];
        let projects: Vec<JiraProjectKey> = projects.into_iter().flatten().collect();
        assert_eq!(
            updated_within_jql(&projects, Duration::from_secs(20 * 60 + 1)),
            r#"project in ("WEB", "OPS") AND updated >= "-21m" ORDER BY updated ASC, key ASC"#
        );
        assert!(updated_within_jql(&projects, Duration::ZERO).contains(r#""-1m""#), "never an empty window");
    }
}
