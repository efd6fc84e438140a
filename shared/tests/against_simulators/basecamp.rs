//! The Basecamp client against the Basecamp simulator: the `BasecampApi` port end to end, OAuth
//! refresh through the simulator's Launchpad endpoint, the 50-per-10-s rate limit, and every read
//! the client has deserializing simulator responses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use campbridge_simulators::basecamp::{self as bc_sim, Options, TodoWrite};
use chrono::NaiveDate;
use serde_json::{Value, json};
use shared::clients::basecamp::RecordingsQuery;
use shared::domain::{PersonId, ProjectId, TodoId, TodolistId};
use shared::ports::{ApiError, BasecampApi, SecretStore, TodoPatch};

use super::support::{self, ACCESS_SECRET, Basecamp, USER_AGENT, fixture};

const PROJECT: ProjectId = ProjectId(bc_sim::PROJECT_ID);

fn ids(people: &Value) -> Vec<i64> {
    people.as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect()
}

/// A to-do with every field a lost PUT would clear.
fn rich_todo(title: &str) -> TodoWrite {
    TodoWrite {
        content: Some(title.into()),
        description: Some("<div><em>Try that new language!</em></div>".into()),
        assignee_ids: Some(vec![bc_sim::ANNIE, bc_sim::JARED]),
        completion_subscriber_ids: Some(vec![bc_sim::CHERYL]),
        due_on: Some("2026-09-01".into()),
        ..TodoWrite::default()
    }
}

#[tokio::test]
async fn a_todo_reads_through_the_port_with_its_list_project_and_people() {
    let bc = Basecamp::start().await;
    let id = bc.todo_in("Sprint 1", rich_todo("Clear and simple UI")).await;
    let todo = bc.client.get_todo(PROJECT, TodoId(id)).await.unwrap().expect("the to-do exists");
    assert_eq!(todo.id, TodoId(id));
    assert_eq!(todo.project, PROJECT);
    assert_eq!(todo.project_name, "The Leto Laptop");
    assert_eq!(todo.todolist, TodolistId(bc.sim.list_id("Sprint 1").await.unwrap()));
    assert_eq!(todo.todolist_name, "Sprint 1");
    assert_eq!(todo.title, "Clear and simple UI");
    assert_eq!(todo.description, "<div><em>Try that new language!</em></div>");
    assert_eq!(todo.assignees, vec![PersonId(bc_sim::ANNIE), PersonId(bc_sim::JARED)]);
    assert_eq!(todo.due_on, NaiveDate::from_ymd_opt(2026, 9, 1));
    assert_eq!(todo.creator_name, "Victor Cooper");
    assert!(todo.is_active() && !todo.completed);
    assert!(todo.app_url.ends_with(&format!("/buckets/{}/todos/{id}", bc_sim::PROJECT_ID)), "{}", todo.app_url);
}

#[tokio::test]
async fn a_missing_todo_reads_as_none() {
    let bc = Basecamp::start().await;
    assert!(bc.client.get_todo(PROJECT, TodoId(4_242)).await.unwrap().is_none());
}

#[tokio::test]
async fn changing_only_the_title_keeps_assignees_and_description_in_the_simulator() {
    let bc = Basecamp::start().await;
    let id = bc.todo_in("Bugs", rich_todo("Clear and simple UI")).await;
    let before = bc.sim.record("todos", id).await.unwrap();

    let patch = TodoPatch { title: Some("Clear and simple UI v2".into()), ..TodoPatch::default() };
    let returned = BasecampApi::update_todo(&bc.client, PROJECT, TodoId(id), &patch).await.unwrap();
    assert_eq!(returned.title, "Clear and simple UI v2");

    let after = bc.sim.record("todos", id).await.unwrap();
    assert_eq!(after["content"], "Clear and simple UI v2");
    assert_eq!(after["description"], before["description"]);
    assert_eq!(ids(&after["assignees"]), vec![bc_sim::ANNIE, bc_sim::JARED]);
    assert_eq!(ids(&after["completion_subscribers"]), vec![bc_sim::CHERYL]);
    assert_eq!(after["due_on"], "2026-09-01");
    assert_eq!(bc.sim.calls().count("PUT", "/todos/{id}.json"), 1);

    // The same title again writes nothing.
    BasecampApi::update_todo(&bc.client, PROJECT, TodoId(id), &patch).await.unwrap();
    assert_eq!(bc.sim.calls().count("PUT", "/todos/{id}.json"), 1);
}

#[tokio::test]
async fn new_assignees_replace_the_old_ones_and_keep_the_description() {
    let bc = Basecamp::start().await;
    let id = bc.todo_in("Sprint 1", rich_todo("Assign me")).await;
    let patch = TodoPatch { assignees: Some(vec![PersonId(bc_sim::CHERYL)]), ..TodoPatch::default() };
    let returned = BasecampApi::update_todo(&bc.client, PROJECT, TodoId(id), &patch).await.unwrap();
    assert_eq!(returned.assignees, vec![PersonId(bc_sim::CHERYL)]);
    let after = bc.sim.record("todos", id).await.unwrap();
    assert_eq!(ids(&after["assignees"]), vec![bc_sim::CHERYL]);
    assert_eq!(after["description"], "<div><em>Try that new language!</em></div>");
    assert_eq!(after["content"], "Assign me");
}

#[tokio::test]
async fn completion_goes_through_the_completion_endpoints_and_back() {
    let bc = Basecamp::start().await;
    let id = bc.todo_in("Sprint 1", rich_todo("Finish me")).await;

    let done = TodoPatch { completed: Some(true), ..TodoPatch::default() };
    assert!(BasecampApi::update_todo(&bc.client, PROJECT, TodoId(id), &done).await.unwrap().completed);
    let after = bc.sim.record("todos", id).await.unwrap();
    assert_eq!(after["completed"], true);
    assert_eq!(after["completion"]["creator"]["id"], json!(bc_sim::SYNC_BOT));
    assert_eq!(ids(&after["assignees"]), vec![bc_sim::ANNIE, bc_sim::JARED]);

    let reopened = TodoPatch { completed: Some(false), ..TodoPatch::default() };
    assert!(!BasecampApi::update_todo(&bc.client, PROJECT, TodoId(id), &reopened).await.unwrap().completed);
    assert_eq!(bc.sim.record("todos", id).await.unwrap()["completed"], false);

    let calls = bc.sim.calls();
    assert_eq!(calls.count("POST", "/todos/{id}/completion.json"), 1);
    assert_eq!(calls.count("DELETE", "/todos/{id}/completion.json"), 1);
    assert_eq!(calls.count("PUT", "/todos/{id}.json"), 0, "completion alone needs no PUT");
}

#[tokio::test]
async fn a_posted_comment_is_listed_with_its_author_across_pages() {
    let bc = Basecamp::start().await;
    let id = bc.todo_in("Sprint 1", rich_todo("Discuss me")).await;
    // More than one page (15) of comments by people, then ours.
    for n in 0..16 {
        bc.sim.comment(id, &format!("<div>PM: note {n}</div>"), bc_sim::ANNIE).await.unwrap();
    }
    let html = "<div>Linked to <a href=\"https://example.atlassian.net/browse/WEB-1\">WEB-1</a></div>";
    let posted = bc.client.post_comment(PROJECT, TodoId(id), html).await.unwrap();
    assert_eq!(bc.sim.record("comments", posted.0).await.unwrap()["content"], html);

    let comments = bc.client.list_comments(PROJECT, TodoId(id)).await.unwrap();
    assert_eq!(comments.len(), 17);
    assert_eq!(comments[0].content, "<div>PM: note 0</div>");
    assert_eq!(comments[0].author_name, "Annie Bryan");
    let ours = comments.last().unwrap();
    assert_eq!((ours.id, ours.content.as_str(), ours.author_name.as_str()), (posted, html, "Campbridge Sync"));
    assert_eq!(bc.sim.calls().count("GET", "/recordings/{id}/comments.json"), 2, "two pages");
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_and_the_request_retried() {
    let bc = Basecamp::start().await;
    let id = bc.todo_in("Sprint 1", rich_todo("Keep working")).await;
    bc.sim.expire_token(&bc.sim.access_token()).await;

    let todo = bc.client.get_todo(PROJECT, TodoId(id)).await.unwrap().expect("the retry succeeds");
    assert_eq!(todo.title, "Keep working");
    let fresh = bc.secrets.get(ACCESS_SECRET).await.unwrap();
    assert_ne!(secrecy::ExposeSecret::expose_secret(&fresh), bc.sim.access_token(), "the new token is stored");

    bc.client.get_todo(PROJECT, TodoId(id)).await.unwrap();
    let calls = bc.sim.calls();
    assert_eq!(calls.count("POST", "/authorization/token"), 1);
    assert_eq!(calls.count("GET", "/todos/{id}.json"), 3, "one 401, its retry, one more read");
}

#[tokio::test]
async fn a_revoked_refresh_token_asks_for_reauthorization() {
    let bc = Basecamp::start_with(Options::default(), "bc-sim-revoked-refresh-token").await;
    let id = bc.todo_in("Sprint 1", rich_todo("Locked out")).await;
    bc.sim.expire_token(&bc.sim.access_token()).await;

    let err = bc.client.get_todo(PROJECT, TodoId(id)).await.unwrap_err();
    assert!(matches!(err, ApiError::AuthRequired(_)), "{err:?}");
    let shown = err.to_string();
    assert!(shown.starts_with("PROVIDER_AUTH_REQUIRED"), "{shown}");
    assert!(!shown.contains("bc-sim-revoked-refresh-token") && !shown.contains(bc_sim::CLIENT_SECRET), "{shown}");
    assert_eq!(bc.sim.calls().count("POST", "/authorization/token"), 1, "one refresh attempt, no loop");
}

#[tokio::test]
async fn a_burst_of_sixty_reads_meets_429_with_the_servers_retry_after() {
    let bc = Basecamp::start().await;
    let id = bc.todo_in("Sprint 1", rich_todo("Popular")).await;
    let client = Arc::new(bc.client);
    let started = Instant::now();
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..60 {
        let client = client.clone();
        burst.spawn(async move { client.get_todo(PROJECT, TodoId(id)).await });
    }
    let mut read = 0;
    let mut waits = Vec::new();
    while let Some(joined) = burst.join_next().await {
        match joined.unwrap() {
            Ok(Some(todo)) => {
                assert_eq!(todo.title, "Popular");
                read += 1;
            }
            Err(ApiError::RateLimited { retry_after }) => waits.push(retry_after),
            other => panic!("a burst read failed otherwise: {other:?}"),
        }
    }

    // What the simulator answers right now, for comparison.
    let probe = reqwest::Client::new()
        .get(format!("{}/todos/{id}.json", bc.sim.base_url()))
        .bearer_auth(bc.sim.access_token())
        .header("User-Agent", USER_AGENT)
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(probe.status().as_u16(), 429);
    let header: u64 = probe.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let server_says = Duration::from_secs(header);

    assert_eq!((read, waits.len()), (50, 10), "50 requests per 10 s pass, the rest are refused");
    for wait in waits {
        if elapsed < Duration::from_secs(1) {
            // Within one second of the first request the server's Retry-After cannot have changed.
            assert_eq!(wait, server_says);
        } else {
            assert!(wait >= server_says && wait <= Duration::from_secs(10), "{wait:?} vs {server_says:?}");
        }
    }
}

#[tokio::test]
async fn simulator_responses_deserialize_into_the_client_types() {
    let bc = Basecamp::start().await;
    let c = &bc.client;
    let id = bc.todo_in("Sprint 1", rich_todo("Read me")).await;
    let done = bc.todo_in("Sprint 1", rich_todo("Done already")).await;
    bc.sim.complete_todo(done, bc_sim::CHERYL).await.unwrap();
    bc.sim.comment(id, "<div>hello</div>", bc_sim::ANNIE).await.unwrap();

    let projects = c.projects().await.unwrap();
    assert!(projects.iter().any(|p| p.id == bc_sim::PROJECT_ID));
    let project = c.project(PROJECT).await.unwrap().unwrap();
    assert_eq!(project.todoset_ids(), vec![bc_sim::TODOSET_ID]);
    let todoset = c.todoset(bc_sim::TODOSET_ID).await.unwrap().unwrap();
    assert_eq!(todoset.id, bc_sim::TODOSET_ID);
    let lists = c.todolists(bc_sim::TODOSET_ID).await.unwrap();
    let names: Vec<&str> = lists.iter().map(|l| l.title.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(bc_sim::SEEDED_LISTS.iter().all(|n| names.contains(n)), "{names:?}");
    let sprint = TodolistId(bc.sim.list_id("Sprint 1").await.unwrap());
    assert_eq!(c.todolist(sprint).await.unwrap().unwrap().title, "Sprint 1");
    let pending = c.todos(sprint, false).await.unwrap();
    assert_eq!(pending.iter().map(|t| t.id).collect::<Vec<_>>(), vec![id]);
    let completed = c.todos(sprint, true).await.unwrap();
    assert_eq!(completed.iter().map(|t| (t.id, t.completed)).collect::<Vec<_>>(), vec![(done, true)]);
    let todo = c.todo(TodoId(id)).await.unwrap().unwrap();
    assert_eq!(todo.completion_subscribers.iter().map(|p| p.id).collect::<Vec<_>>(), vec![bc_sim::CHERYL]);
    assert_eq!(todo.bucket.id, bc_sim::PROJECT_ID);
    let comments = c.comments(id).await.unwrap();
    assert_eq!(comments[0].creator.as_ref().unwrap().id, bc_sim::ANNIE);
    assert!(c.people(None).await.unwrap().iter().any(|p| p.id == bc_sim::VICTOR));
    assert!(!c.people(Some(PROJECT)).await.unwrap().is_empty());
    assert_eq!(c.my_profile().await.unwrap().id, bc_sim::SYNC_BOT);
    let query =
        RecordingsQuery { kind: "Todo".into(), buckets: vec![PROJECT], status: None, since: None, max_pages: None };
    let listing = c.recordings(&query).await.unwrap();
    assert!(listing.complete);
    let recordings = listing.recordings;
    assert_eq!(recordings.len(), 2);
    assert_eq!(recordings[0].id, done, "newest change first");

    let hook = c.create_webhook(PROJECT, "http://127.0.0.1:9/basecamp/hook", &["Todo", "Comment"]).await.unwrap();
    assert_eq!(hook.types, vec!["Todo", "Comment"]);
    assert!(hook.active);
    assert_eq!(c.webhooks(PROJECT).await.unwrap().len(), 1);
    // A delivery to a closed loopback port fails and shows up in `recent_deliveries`.
    bc.todo_in("Bugs", rich_todo("Deliver me")).await;
    bc.sim.settle().await;
    let fetched = c.webhook(hook.id).await.unwrap().unwrap();
    assert_eq!(fetched.payload_url, "http://127.0.0.1:9/basecamp/hook");
    assert!(!fetched.recent_deliveries.is_empty());
}

#[tokio::test]
async fn a_recordings_walk_stops_at_its_page_limit_and_says_it_did_not_reach_the_cursor() {
    let opts = Options { page_size: 2, ..Options::default() };
    let bc = Basecamp::start_with(opts, bc_sim::REFRESH_TOKEN).await;
    let mut created = Vec::new();
    for n in 1..=5 {
        created.push(
            bc.todo_in("Sprint 1", TodoWrite { content: Some(format!("To-do {n}")), ..TodoWrite::default() }).await,
        );
        // Distinct update times, so a cursor falls between two of them.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let newest_first: Vec<i64> = created.iter().rev().copied().collect();
    let c = &bc.client;
    let all =
        RecordingsQuery { kind: "Todo".into(), buckets: vec![PROJECT], status: None, since: None, max_pages: None };
    let everything = c.recordings(&all).await.unwrap();
    assert!(everything.complete);
    assert_eq!(everything.recordings.iter().map(|r| r.id).collect::<Vec<_>>(), newest_first);
    let listed =
        |l: &shared::clients::basecamp::RecordingsListing| l.recordings.iter().map(|r| r.id).collect::<Vec<_>>();
    let pages_read = || bc.sim.calls().count("GET", "/projects/recordings.json");

    // Five to-dos on pages of two: two pages hold the newest four, and the walk says it stopped short.
    let before = pages_read();
    let capped = c.recordings(&RecordingsQuery { max_pages: Some(2), ..all.clone() }).await.unwrap();
    assert!(!capped.complete);
    assert_eq!(listed(&capped), newest_first[..4]);
    assert_eq!(pages_read() - before, 2, "no page past the limit is fetched");
    // Three pages reach the last one: complete.
    let whole = c.recordings(&RecordingsQuery { max_pages: Some(3), ..all.clone() }).await.unwrap();
    assert!(whole.complete);
    assert_eq!(listed(&whole), newest_first);

    // A cursor at the third newest: the second page holds an older to-do, so two pages reach it...
    let since = Some(everything.recordings[2].updated_at);
    let reached = c.recordings(&RecordingsQuery { since, max_pages: Some(2), ..all.clone() }).await.unwrap();
    assert!(reached.complete);
    assert_eq!(listed(&reached), newest_first[..3], "nothing older than the cursor");
    // ...and one page does not.
    let short = c.recordings(&RecordingsQuery { since, max_pages: Some(1), ..all.clone() }).await.unwrap();
    assert!(!short.complete);
    assert_eq!(listed(&short), newest_first[..2]);
}

// The simulator's own tests compare most endpoints' keys with the fixtures; these are the reads
// the client makes that they leave out.
#[tokio::test]
async fn person_reads_carry_the_fixture_keys() {
    let bc = Basecamp::start().await;
    // `company` is optional (reference: `company{id,name}?`): person-get.json shows a person
    // without one, people-list.json one with; every simulated person belongs to the company.
    let without_company = support::keys(&fixture("basecamp/person-get.json"));
    let person = bc.raw_get(&format!("/people/{}.json", bc_sim::VICTOR)).await;
    support::assert_fixture_keys(&person, "basecamp/people-list.json");
    assert!(without_company.is_subset(&support::keys(&person)));
    let me = bc.raw_get("/my/profile.json").await;
    support::assert_fixture_keys(&me, "basecamp/people-list.json");
    let people = bc.raw_get(&format!("/projects/{}/people.json", bc_sim::PROJECT_ID)).await;
    support::assert_fixture_keys(&people[0], "basecamp/people-list.json");
}
