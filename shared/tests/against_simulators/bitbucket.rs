//! The Bitbucket client against the Bitbucket simulator: the account, the repository (`has_issues`,
//! removed issues), pull requests paged by `next`, build statuses, hooks and the plain-text 429.

use campbridge_simulators::bitbucket::{self as bb_sim, BuildStatus};
use secrecy::SecretString;
use shared::clients::ClientError;
use shared::clients::bitbucket::WebhookSpec;
use shared::domain::PullRequestState;
use shared::domain::RepoRef;

use super::support::{self, bitbucket_raw_get};

fn repo(sim: &bb_sim::Simulator) -> RepoRef {
    let (workspace, repo) = sim.repository();
    RepoRef::parse(&format!("{workspace}/{repo}")).unwrap()
}

#[tokio::test]
async fn the_user_and_the_repository_read_through_the_client() {
    let (sim, client) = support::bitbucket().await;
    let me = client.user().await.unwrap();
    assert_eq!(me.account_id.as_deref(), Some(bb_sim::SYNC_BOT));
    assert!(me.uuid.as_deref().is_some_and(|u| u.starts_with('{')));
    let workspaces = client.workspaces().await.unwrap();
    assert_eq!(workspaces.iter().filter_map(|w| w.slug()).collect::<Vec<_>>(), vec![bb_sim::WORKSPACE]);

    let repository = client.repository(&repo(&sim)).await.unwrap().expect("the repository exists");
    assert_eq!(repository.full_name, format!("{}/{}", bb_sim::WORKSPACE, bb_sim::REPO));
    assert_eq!(repository.has_issues, Some(false));
    assert_eq!(repository.mainbranch.map(|b| b.name).as_deref(), Some("main"));
    let elsewhere = RepoRef::parse(&format!("{}/other", bb_sim::WORKSPACE)).unwrap();
    assert!(client.repository(&elsewhere).await.unwrap().is_none());
    assert!(matches!(client.legacy_issue(&repo(&sim), 1).await, Err(ClientError::IssuesRemoved)));
}

#[tokio::test]
async fn a_repository_with_the_tracker_enabled_says_so() {
    let options = bb_sim::Options { has_issues: true, ..bb_sim::Options::default() };
    let (sim, client) = support::bitbucket_with(options).await;
    assert_eq!(client.repository(&repo(&sim)).await.unwrap().unwrap().has_issues, Some(true));
}

#[tokio::test]
async fn pull_requests_page_by_next_and_read_one_by_one() {
    let (sim, client) = support::bitbucket().await;
    let mut ids = Vec::new();
    for n in 0..52 {
        let description = format!("Fixes BC-{n}");
        ids.push(
            sim.open_pullrequest(&format!("WEB-{n} Part {n}"), &description, "feature/WEB-1", bb_sim::JARED).await,
        );
    }
    let ids: Vec<u64> = ids.into_iter().map(Result::unwrap).collect();
    sim.merge_pullrequest(ids[3], bb_sim::SYNC_BOT).await.unwrap();

    let open = client.pull_requests(&repo(&sim), &[PullRequestState::Open]).await.unwrap();
    assert_eq!(open.len(), 51);
    assert!(!open.iter().any(|p| p.id == ids[3]));
    assert_eq!(sim.calls().count("GET", "/2.0/repositories/{workspace}/{repo}/pullrequests"), 2, "two pages of 50");

    let merged = client.pull_request(&repo(&sim), ids[3]).await.unwrap().expect("the pull request exists");
    assert_eq!(merged.state, Some(PullRequestState::Merged));
    assert_eq!(merged.title, "WEB-3 Part 3");
    assert_eq!(merged.description, "Fixes BC-3");
    assert_eq!(merged.source_branch(), Some("feature/WEB-1"));
    assert!(merged.merge_commit.is_some());
    assert!(merged.html_url().is_some_and(|u| u.ends_with(&format!("/pull-requests/{}", ids[3]))));
    assert!(client.pull_request(&repo(&sim), 9_999).await.unwrap().is_none());
}

#[tokio::test]
async fn the_spent_hourly_budget_is_a_delay_in_minutes_and_no_request_is_retried_inside() {
    let (sim, client) = support::bitbucket_with(bb_sim::Options { hourly_budget: Some(3), ..Default::default() }).await;
    let repo = repo(&sim);
    for _ in 0..3 {
        assert!(client.repository(&repo).await.unwrap().is_some());
    }
    let err = client.repository(&repo).await.unwrap_err();
    assert!(
        matches!(err, ClientError::RateLimited { retry_after } if retry_after >= std::time::Duration::from_secs(60)),
        "{err:?}"
    );
    assert_eq!(sim.calls().count("GET", "/2.0/repositories/{workspace}/{repo}"), 4, "one refused request, no retries");
}

#[tokio::test]
async fn build_statuses_and_hooks_deserialize_into_the_client_types() {
    let (sim, client) = support::bitbucket().await;
    let id = sim.open_pullrequest("WEB-1 Build", "", "feature/WEB-1", bb_sim::JARED).await.unwrap();
    let hash = sim.head_of(id).await.unwrap();
    let status = BuildStatus {
        commit: hash.clone(),
        key: "ci".into(),
        state: "FAILED".into(),
        name: "CI".into(),
        description: "2 tests failed".into(),
        url: "https://ci.example.com/1".into(),
        refname: Some("feature/WEB-1".into()),
        created_on: String::new(),
        updated_on: String::new(),
    };
    sim.post_build_status(status, bb_sim::SYNC_BOT).await.unwrap();
    let statuses = client.commit_statuses(&repo(&sim), &hash).await.unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!((statuses[0].key.as_str(), statuses[0].state.as_str()), ("ci", "FAILED"));
    assert_eq!(statuses[0].refname.as_deref(), Some("feature/WEB-1"));

    let spec = WebhookSpec {
        description: "campbridge".into(),
        url: "http://127.0.0.1:9/bitbucket/hook".into(),
        events: vec!["pullrequest:created".into(), "repo:commit_status_updated".into()],
        secret: SecretString::from("bb-hook-secret-do-not-print"),
        active: true,
    };
    let hook = client.create_webhook(&repo(&sim), &spec).await.unwrap();
    assert_eq!(hook.secret_set, Some(true));
    assert_eq!(hook.events, spec.events);
    let listed = client.webhooks(&repo(&sim)).await.unwrap();
    assert_eq!(listed.iter().map(|h| h.uuid.as_str()).collect::<Vec<_>>(), vec![hook.uuid.as_str()]);
    let fetched = client.webhook(&repo(&sim), &hook.uuid).await.unwrap().expect("the hook exists");
    assert_eq!(fetched.url, spec.url);
    let raw = bitbucket_raw_get(&sim, &format!("/2.0/repositories/{}/hooks", repo(&sim))).await;
    assert!(raw["values"][0].get("secret").is_none(), "the secret is never returned");
    client.delete_webhook(&repo(&sim), &hook.uuid).await.unwrap();
    assert!(client.webhook(&repo(&sim), &hook.uuid).await.unwrap().is_none());
}
