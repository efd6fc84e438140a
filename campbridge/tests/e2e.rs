//! End to end through HTTP: the simulators send real webhooks to a real `serve` (receivers → SQLite queue
//! → mapper workers → simulators' APIs), covering the validation loop and the invariants in DESIGN.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns panic on setup failure by design

use campbridge::demo::{self, Stack, StackOptions};
use campbridge_simulators::common::faults::{Faults, Forced429, WebhookFaults};
use campbridge_simulators::{basecamp as bc, jira};
use serde_json::Value;
use shared::ports::{AuditLog, ConflictLog, PairStore, QueueOperator};

async fn start(name: &str, edit: impl FnOnce(&mut StackOptions)) -> Stack {
    demo::start_in_temp("campbridge-e2e", name, edit).await.expect("stack starts")
}

fn todo_write(title: &str, assignees: &[i64]) -> bc::TodoWrite {
    bc::TodoWrite { content: Some(title.into()), assignee_ids: Some(assignees.to_vec()), ..Default::default() }
}

fn summary(issue: &Value) -> String {
    issue["fields"]["summary"].as_str().unwrap_or_default().to_owned()
}

async fn jira_get(stack: &Stack, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", stack.jira.base_url()))
        .basic_auth(jira::BOT_EMAIL, Some(jira::API_TOKEN))
        .send()
        .await
        .expect("jira answers")
        .json()
        .await
        .expect("json")
}

async fn basecamp_comments(stack: &Stack, todo: i64) -> Vec<Value> {
    let v: Value = reqwest::Client::new()
        .get(format!("{}/recordings/{todo}/comments.json", stack.basecamp.base_url()))
        .bearer_auth(bc::ACCESS_TOKEN)
        .header("User-Agent", "campbridge tests (tests@campbridge.invalid)")
        .send()
        .await
        .expect("basecamp answers")
        .json()
        .await
        .expect("json");
    v.as_array().cloned().unwrap_or_default()
}

fn issue_creates(stack: &Stack) -> u64 {
    stack.jira.calls().count("POST", "/rest/api/3/issue")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_todo_becomes_exactly_one_issue_with_its_fields_and_links_both_ways() {
    let stack = start("create", |_| {}).await;
    let bugs = stack.list("Bugs").await.unwrap();
    let mut write = todo_write("Checkout crashes URGENT", &[bc::JARED]);
    write.description = Some("<div>Steps: open the cart, press pay.</div>".into());
    write.due_on = Some("2026-12-03".into());
    let todo = stack.basecamp.create_todo(bugs, write, bc::ANNIE).await.unwrap();
    let issue = stack.wait_issue(todo).await.unwrap();
    stack.settle().await.unwrap();

    assert_eq!(summary(&issue), "[BC][WEB] Checkout crashes URGENT");
    let f = &issue["fields"];
    assert_eq!(f["assignee"]["accountId"], jira::JARED);
    assert_eq!(f["priority"]["name"], "Highest");
    assert_eq!(f["duedate"], "2026-12-03");
    let labels: Vec<&str> = f["labels"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for l in ["bug", "escalated", &format!("bc-{todo}")] {
        assert!(labels.contains(&l), "{l} in {labels:?}");
    }
    let description = shared::richtext::adf_to_text(&f["description"]);
    assert!(description.contains("Steps: open the cart, press pay."), "{description}");
    assert!(description.contains(&format!("/todos/{todo}")), "the Basecamp link: {description}");

    let key = issue["key"].as_str().unwrap();
    let links = jira_get(&stack, &format!("/rest/api/3/issue/{key}/remotelink")).await;
    assert_eq!(links.as_array().map(Vec::len), Some(1), "{links}");
    assert!(links[0]["object"]["url"].as_str().unwrap().ends_with(&format!("/todos/{todo}")));
    let comments = basecamp_comments(&stack, todo).await;
    assert_eq!(comments.len(), 1, "one link comment");
    assert!(comments[0]["content"].as_str().unwrap().contains(key));
    assert_eq!(issue_creates(&stack), 1, "exactly one issue");

    // No mapped assignee → triage.
    let sprint = stack.list("Sprint 1").await.unwrap();
    let plain = stack.basecamp.create_todo(sprint, todo_write("Tidy CSS", &[]), bc::ANNIE).await.unwrap();
    let issue = stack.wait_issue(plain).await.unwrap();
    assert_eq!(issue["fields"]["assignee"]["accountId"], jira::MIA);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_update_the_linked_issue_and_a_title_from_jira_keeps_the_todos_other_fields() {
    let stack = start("update", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let mut write = todo_write("Fix login", &[bc::JARED, bc::VICTOR]);
    write.description = Some("<div>Keep me</div>".into());
    write.due_on = Some("2026-12-09".into());
    let todo = stack.basecamp.create_todo(sprint, write, bc::ANNIE).await.unwrap();
    let issue = stack.wait_issue(todo).await.unwrap();
    let key = issue["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();

    stack
        .basecamp
        .edit_todo(todo, bc::TodoEdit { content: Some("Fix login redirect".into()), ..Default::default() }, bc::ANNIE)
        .await
        .unwrap();
    stack
        .wait_for("the summary", 20, || async {
            (summary(&stack.issue_of(todo).await?) == "[BC][WEB] Fix login redirect").then_some(())
        })
        .await
        .unwrap();

    // A developer renames it in Jira (title is owned by both): Basecamp follows with a full PUT that
    // must keep the assignees, description and due date.
    stack
        .jira
        .edit_issue(
            &key,
            serde_json::json!({"fields": {"summary": "[BC][WEB] Fix login redirect on Safari"}}),
            jira::JARED,
        )
        .await
        .unwrap();
    let t = stack
        .wait_for("the to-do title", 20, || async {
            let t = stack.basecamp.record("todos", todo).await?;
            (t["title"] == "Fix login redirect on Safari").then_some(t)
        })
        .await
        .unwrap();
    stack.settle().await.unwrap();
    let ids: Vec<i64> = t["assignees"].as_array().unwrap().iter().filter_map(|a| a["id"].as_i64()).collect();
    assert_eq!(ids, vec![bc::JARED, bc::VICTOR], "assignees survive the title sync");
    assert!(t["description"].as_str().unwrap().contains("Keep me"));
    assert_eq!(t["due_on"], "2026-12-09");
    assert_eq!(issue_creates(&stack), 1, "nothing new created");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todos_outside_the_routes_filter_create_nothing() {
    let stack = start("filter", |o| o.marker = Some("#dev")).await;
    let backlog = stack.list("Backlog").await.unwrap();
    let sprint = stack.list("Sprint 1").await.unwrap();
    let unrouted = stack.basecamp.create_todo(backlog, todo_write("Brochure #dev", &[]), bc::ANNIE).await.unwrap();
    let unmarked = stack.basecamp.create_todo(sprint, todo_write("Plan the offsite", &[]), bc::ANNIE).await.unwrap();
    let marked = stack.basecamp.create_todo(sprint, todo_write("Fix search #dev", &[]), bc::ANNIE).await.unwrap();
    stack.wait_issue(marked).await.unwrap();
    stack.settle().await.unwrap();
    assert!(stack.item_of(unrouted).await.is_none());
    assert!(stack.item_of(unmarked).await.is_none());
    assert_eq!(issue_creates(&stack), 1);
    let audit = stack.store.recent(None, 50).await.unwrap();
    assert_eq!(audit.iter().filter(|e| e.action == "filtered").count(), 2, "{audit:?}");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_assignment_still_creates_the_issue_with_triage_and_the_audit_says_why() {
    let stack = start("permission", |o| {
        o.jira.unassignable.insert(jira::JARED.to_owned());
        o.jira.unassignable_forbidden = true;
    })
    .await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Rotate keys", &[bc::JARED]), bc::ANNIE).await.unwrap();
    let issue = stack.wait_issue(todo).await.unwrap();
    assert_eq!(issue["fields"]["assignee"]["accountId"], jira::MIA, "triage");
    let audit = stack.store.recent(None, 50).await.unwrap();
    let why = audit.iter().find(|e| e.action == "assignee_fallback").expect("audited");
    assert!(why.detail.contains(jira::JARED) && why.detail.contains("triage"), "{}", why.detail);
    stack.stop().await.unwrap();
}

async fn conflicting_titles(policy: &'static str) -> (Stack, i64, String) {
    let stack = start(&format!("conflict-{policy}"), |o| o.conflict_policy = policy).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Fix login", &[]), bc::ANNIE).await.unwrap();
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();
    stack.edit_title_on_both_sides(todo, &key, "PM title", "Dev title").await.unwrap();
    (stack, todo, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_title_changed_on_both_sides_is_settled_by_the_policy_and_logged_once() {
    let (stack, todo, _) = conflicting_titles("last-writer-wins").await;
    let conflicts = ConflictLog::list(&stack.store, false, 10).await.unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    // The Jira edit came last.
    assert_eq!(stack.basecamp.record("todos", todo).await.unwrap()["title"], "Dev title");
    assert_eq!(summary(&stack.issue_of(todo).await.unwrap()), "[BC][WEB] Dev title");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_manual_policy_neither_side_is_overwritten() {
    let (stack, todo, _) = conflicting_titles("manual").await;
    let conflicts = ConflictLog::list(&stack.store, true, 10).await.unwrap();
    assert_eq!(conflicts.len(), 1, "one open conflict: {conflicts:?}");
    assert_eq!(stack.basecamp.record("todos", todo).await.unwrap()["title"], "PM title");
    assert_eq!(summary(&stack.issue_of(todo).await.unwrap()), "[BC][WEB] Dev title");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_delivery_three_times_makes_one_issue_and_one_comment() {
    let stack = start("duplicates", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    stack
        .basecamp
        .set_faults(Faults { webhook: WebhookFaults { duplicate: true, ..Default::default() }, ..Default::default() });
    let todo = stack.basecamp.create_todo(sprint, todo_write("Ship it", &[]), bc::ANNIE).await.unwrap();
    stack.basecamp.settle().await;
    stack.basecamp.set_faults(Faults::default());
    // And a third time, by hand, exactly as delivered.
    let first = stack.basecamp.deliveries().into_iter().find(|d| d.event == "todo_created").expect("delivered");
    let resent = reqwest::Client::new().post(&first.url).json(&first.body).send().await.unwrap();
    assert_eq!(resent.status(), 202);
    stack.wait_issue(todo).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(issue_creates(&stack), 1);
    assert_eq!(basecamp_comments(&stack, todo).await.len(), 1);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_todo_whose_webhook_was_lost_gets_exactly_one_issue_from_the_next_reconcile_pass() {
    use std::sync::atomic::Ordering::Relaxed;
    let stack = start("reconcile", |_| {}).await;
    // The server's pass at start (the stack waits for it) stored the cursors the later passes poll from.
    assert_eq!(stack.stats.reconcile_passes.load(Relaxed), 1, "one pass at start");
    let sprint = stack.list("Sprint 1").await.unwrap();
    stack
        .basecamp
        .set_faults(Faults { webhook: WebhookFaults { drop_next: 1, ..Default::default() }, ..Default::default() });
    let todo = stack.basecamp.create_todo(sprint, todo_write("Nobody heard of me", &[]), bc::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    stack.basecamp.set_faults(Faults::default());
    assert_eq!(stack.item_of(todo).await, None, "the delivery was lost, so nothing synced it");
    assert_eq!(issue_creates(&stack), 0);

    let first = stack.reconcile().await.unwrap();
    assert!(first.is_ok(), "{first:?}");
    assert_eq!((first.basecamp.seen, first.basecamp.enqueued), (1, 1), "{first:?}");
    let issue = stack.wait_issue(todo).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(summary(&issue), "[BC][WEB] Nobody heard of me");
    assert_eq!(issue_creates(&stack), 1);

    let second = stack.reconcile().await.unwrap();
    stack.settle().await.unwrap();
    assert!(second.is_ok(), "{second:?}");
    assert_eq!((second.basecamp.enqueued, second.basecamp.up_to_date), (0, 1), "{second:?}");
    assert_eq!(second.jira.enqueued, 0, "the issue we made is up to date too: {second:?}");
    assert_eq!(issue_creates(&stack), 1, "the second pass creates nothing");
    assert_eq!(basecamp_comments(&stack, todo).await.len(), 1, "one link comment");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_and_reordered_jira_deliveries_end_in_the_latest_state() {
    let stack = start("reorder", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Draft", &[]), bc::ANNIE).await.unwrap();
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();
    stack.jira.set_faults(Faults {
        webhook: WebhookFaults { reorder_hold: 3, delay_ms: 50, ..Default::default() },
        ..Default::default()
    });
    for title in ["First", "Second", "Third"] {
        stack
            .jira
            .edit_issue(&key, serde_json::json!({"fields": {"summary": format!("[BC][WEB] {title}")}}), jira::JARED)
            .await
            .unwrap();
    }
    stack.jira.settle().await;
    stack.jira.set_faults(Faults::default());
    stack.settle().await.unwrap();
    assert_eq!(stack.basecamp.record("todos", todo).await.unwrap()["title"], "Third");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_jira_created_the_issue_and_before_the_pair_was_linked_still_yields_one_issue() {
    let mut stack = start("crash", |o| {
        o.jira.lose_create_responses = 1;
        o.lease_secs = 1;
    })
    .await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Survive a crash", &[]), bc::ANNIE).await.unwrap();
    stack
        .wait_for("Jira to create the issue", 20, || async { (issue_creates(&stack) == 1).then_some(()) })
        .await
        .unwrap();
    // The worker never learned the key: the pair is still PENDING. Restart as another worker.
    stack.restart("local-2").await.unwrap();
    let issue = stack.wait_issue(todo).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(issue_creates(&stack), 1, "found by its marker, not created again");
    assert!(issue["fields"]["labels"].as_array().unwrap().iter().any(|l| l == &format!("bc-{todo}")));
    let audit = stack.store.recent(None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "recovered"), "{audit:?}");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_story_settles_the_syncs_own_writes_cause_no_further_writes() {
    let stack = start("no-echo", |_| {}).await;
    let summary = demo::play(&stack).await.unwrap();
    assert_eq!(summary.paired, 1);
    stack.settle().await.unwrap();
    let writes = stack.upstream_writes();
    // Deliver every Basecamp webhook the story caused once more (Basecamp's are unsigned, so they can be
    // replayed as delivered): each is an echo of our write or old news by now, and must write nothing.
    let replays = stack.basecamp.deliveries();
    assert!(!replays.is_empty());
    for d in replays {
        let status = reqwest::Client::new().post(&d.url).json(&d.body).send().await.unwrap().status();
        assert_eq!(status.as_u16(), 202);
    }
    stack.settle().await.unwrap();
    assert_eq!(stack.upstream_writes(), writes, "no echo writes");
    assert!(summary.echoes_suppressed > 0, "our own writes came back and were recognised");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_basecamp_delays_jobs_by_retry_after_without_failing_or_busy_looping() {
    let stack = start("rate-limit", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    stack.basecamp.set_faults(Faults {
        force_429: Some(Forced429 { retry_after: 1, remaining: Some(2), html: false }),
        ..Default::default()
    });
    let todo = stack.basecamp.create_todo(sprint, todo_write("Slow down", &[]), bc::ANNIE).await.unwrap();
    stack.wait_issue(todo).await.unwrap();
    stack.settle().await.unwrap();
    let gets = stack.basecamp.calls().count("GET", "/todos/{id}.json");
    assert!(gets <= 6, "{gets} reads of the to-do: the job waited instead of spinning");
    assert!(stack.store.dead_letters().await.unwrap().is_empty(), "nothing failed for good");
    assert_eq!(issue_creates(&stack), 1);
    stack.stop().await.unwrap();
}

/// The issue's measurement: with Basecamp's 50 requests / 10 s on and a burst of to-dos, more than half of
/// the Basecamp calls met 429 and jobs were dead-lettered. Paced, the workers spend the budget themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_todos_under_basecamps_real_limit_is_paced_below_it_without_a_429_or_a_dead_letter() {
    let stack = start("paced-burst", |o| o.workers = 4).await;
    assert!(stack.config.pacing.basecamp.is_some(), "the stack paces Basecamp when its limit is on");
    let sprint = stack.list("Sprint 1").await.unwrap();
    let mut todos = Vec::new();
    for n in 0..24 {
        let write = todo_write(&format!("Burst {n}"), &[bc::JARED]);
        todos.push(stack.basecamp.create_todo(sprint, write, bc::ANNIE).await.unwrap());
    }
    for todo in &todos {
        stack.wait_for(&format!("the issue of {todo}"), 120, || stack.issue_of(*todo)).await.unwrap();
    }
    // The links that follow each create are paced too (about 100 Basecamp calls at 45 per 10 s): let the
    // queue drain under that pace before the usual settle, which allows 30 s per round.
    let store = stack.store.clone();
    let drained = || {
        let store = store.clone();
        async move { (store.depth().await.ok()? == 0).then_some(()) }
    };
    stack.wait_for("the paced queue to drain", 120, drained).await.unwrap();
    stack.settle().await.unwrap();
    let calls = stack.basecamp.calls().total();
    assert!(calls > 50, "the burst needs more than one window's budget: {calls} calls");
    assert_eq!(stack.basecamp.rate_limit_refusals(), 0, "{calls} Basecamp calls, none refused");
    assert!(stack.store.dead_letters().await.unwrap().is_empty());
    assert_eq!(issue_creates(&stack), todos.len() as u64, "one issue per to-do");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_at_the_receivers_gets_a_clear_4xx_and_changes_nothing() {
    let stack = start("bad-input", |_| {}).await;
    let http = reqwest::Client::new();
    let url = &stack.server_url;
    let token_url = &stack.urls[0].1;
    let event = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/basecamp/webhook-event-todo-completed.json"
    ))
    .unwrap();
    let jira_body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/jira/cloud-webhook-issue-updated-status.json"
    ))
    .unwrap();

    let status = |r: reqwest::Response| r.status().as_u16();
    // What the senders post (a body of another media type gets 415: tests/serve.rs).
    let post = |to: String| http.post(to).header("Content-Type", "application/json");
    assert_eq!(status(post(format!("{url}/basecamp/wrong-token")).body(event.clone()).send().await.unwrap()), 404);
    assert_eq!(
        status(post(format!("{url}/jira")).body(jira_body.clone()).send().await.unwrap()),
        401,
        "missing signature"
    );
    let bad = post(format!("{url}/jira"))
        .header("X-Hub-Signature", format!("sha256={}", "0".repeat(64)))
        .header("X-Atlassian-Webhook-Identifier", "x")
        .body(jira_body.clone());
    assert_eq!(status(bad.send().await.unwrap()), 401, "bad signature");
    assert_eq!(status(post(token_url.clone()).body(vec![b' '; 1024 * 1024 + 1]).send().await.unwrap()), 413);
    assert_eq!(status(post(token_url.clone()).body("{not json").send().await.unwrap()), 400);
    let other_project = String::from_utf8(event).unwrap().replace(&bc::PROJECT_ID.to_string(), "42");
    let r = post(token_url.clone()).body(other_project).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202, "unrouted project: accepted and ignored");
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ignored");

    assert_eq!(stack.store.depth().await.unwrap(), 0, "nothing enqueued");
    assert!(PairStore::list(&stack.store, None, None, 10).await.unwrap().is_empty(), "nothing stored");
    assert!(stack.store.recent(None, 10).await.unwrap().is_empty(), "nothing audited");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_comment_crosses_to_jira_once_and_other_comments_stay_put() {
    let stack = start("comments", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Fix login", &[]), bc::ANNIE).await.unwrap();
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();
    stack
        .basecamp
        .set_faults(Faults { webhook: WebhookFaults { duplicate: true, ..Default::default() }, ..Default::default() });
    stack.basecamp.comment(todo, "<div>DEV: stack trace in the logs</div>", bc::ANNIE).await.unwrap();
    stack.basecamp.comment(todo, "<div>Great, thanks</div>", bc::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    stack.basecamp.set_faults(Faults::default());
    let comments = stack.jira_comments(&key).await.unwrap();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(comments[0].contains("stack trace in the logs") && !comments[0].contains("DEV:"), "{}", comments[0]);
    assert!(comments[0].contains("Annie Bryan via Basecamp"), "{}", comments[0]);
    stack.stop().await.unwrap();
}

async fn comments_text(stack: &Stack, todo: i64) -> Vec<String> {
    stack.basecamp_comments(todo).await.unwrap().iter().map(|c| shared::richtext::html_to_text(c)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_naming_two_todos_and_its_builds_reach_both_todos_once_per_state() {
    use campbridge_simulators::bitbucket as bb;
    let stack = start("signals", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let a = stack.basecamp.create_todo(sprint, todo_write("Fix login", &[]), bc::ANNIE).await.unwrap();
    let b = stack.basecamp.create_todo(sprint, todo_write("Fix logout", &[]), bc::ANNIE).await.unwrap();
    let ka = stack.wait_issue(a).await.unwrap()["key"].as_str().unwrap().to_owned();
    let kb = stack.wait_issue(b).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();

    // Every Bitbucket delivery arrives twice, as a retry would.
    stack
        .bitbucket
        .set_faults(Faults { webhook: WebhookFaults { duplicate: true, ..Default::default() }, ..Default::default() });
    let branch = format!("feature/{}-auth", ka.to_lowercase());
    let pr = stack
        .bitbucket
        .open_pullrequest(&format!("Fix auth ({ka})"), &format!("Also fixes {kb}."), &branch, "jared")
        .await
        .unwrap();
    stack
        .bitbucket
        .update_pullrequest(pr, Some(&format!("Fix auth flows ({ka})")), None, false, "jared")
        .await
        .unwrap();
    let head = stack.bitbucket.head_of(pr).await.unwrap();
    let status = |state: &str| bb::BuildStatus {
        commit: head.clone(),
        key: "ci".into(),
        state: state.into(),
        name: "CI".into(),
        url: "https://ci.example.invalid/1".into(),
        refname: Some(branch.clone()),
        ..Default::default()
    };
    for state in ["INPROGRESS", "FAILED", "SUCCESSFUL"] {
        stack.bitbucket.post_build_status(status(state), "jared").await.unwrap();
        stack.settle().await.unwrap();
    }
    stack.bitbucket.merge_pullrequest(pr, "jared").await.unwrap();
    stack.settle().await.unwrap();

    let on_a = comments_text(&stack, a).await;
    let on_b = comments_text(&stack, b).await;
    let count = |list: &[String], needle: &str| list.iter().filter(|c| c.contains(needle)).count();
    for list in [&on_a, &on_b] {
        assert_eq!(count(list, "opened by Jared Davis"), 1, "{list:?}");
        assert_eq!(count(list, "merged by Jared Davis"), 1, "{list:?}");
    }
    // The build names only the first issue's branch.
    assert_eq!(count(&on_a, "Build failed: CI"), 1, "{on_a:?}");
    assert_eq!(count(&on_a, "Build fixed: CI"), 1, "{on_a:?}");
    assert_eq!(count(&on_b, "Build"), 0, "{on_b:?}");
    assert_eq!(on_a.len(), 5, "link + opened + failed + fixed + merged: {on_a:?}");
    let links = jira_get(&stack, &format!("/rest/api/3/issue/{ka}/remotelink")).await;
    assert!(links.as_array().unwrap().iter().any(|l| l["object"]["url"].as_str().unwrap().contains("/pull-requests/")));
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pm_comment_in_jira_reaches_the_todo_once_and_our_twins_never_echo() {
    let stack = start("pm-comments", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Fix login", &[]), bc::ANNIE).await.unwrap();
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();
    stack.jira.comment_issue(&key, "PM: demo is on Friday", jira::JARED).await.unwrap();
    stack.jira.comment_issue(&key, "refactoring the session store", jira::JARED).await.unwrap();
    stack.basecamp.comment(todo, "<div>DEV: repro attached</div>", bc::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    let on_todo = comments_text(&stack, todo).await;
    assert_eq!(on_todo.iter().filter(|c| c.contains("demo is on Friday")).count(), 1, "{on_todo:?}");
    assert!(!on_todo.iter().any(|c| c.contains("session store")), "no prefix: stays in Jira");
    let on_issue = stack.jira_comments(&key).await.unwrap();
    assert_eq!(on_issue.len(), 3, "two developer comments + the DEV twin: {on_issue:?}");
    assert_eq!(on_todo.len(), 3, "link + PM twin + the DEV original: {on_todo:?}");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassignment_in_jira_reaches_the_todo_and_keeps_its_other_fields() {
    let stack = start("reassign", |o| o.assignee_owner = "both").await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let mut write = todo_write("Fix login", &[bc::JARED]);
    write.description = Some("<div>Keep me</div>".into());
    write.due_on = Some("2026-12-09".into());
    let todo = stack.basecamp.create_todo(sprint, write, bc::ANNIE).await.unwrap();
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();
    stack.jira.assign_issue(&key, Some(jira::ANNIE), jira::JARED).await.unwrap();
    let t = stack
        .wait_for("the to-do's assignee", 20, || async {
            let t = stack.basecamp.record("todos", todo).await?;
            let ids: Vec<i64> = t["assignees"].as_array()?.iter().filter_map(|a| a["id"].as_i64()).collect();
            (ids == vec![bc::ANNIE]).then_some(t)
        })
        .await
        .unwrap();
    stack.settle().await.unwrap();
    assert_eq!(t["title"], "Fix login");
    assert!(t["description"].as_str().unwrap().contains("Keep me"));
    assert_eq!(t["due_on"], "2026-12-09");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagged_issue_posts_one_blocked_comment_and_one_note_when_unflagged() {
    let stack = start("blockers", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Fix login", &[]), bc::ANNIE).await.unwrap();
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();
    stack
        .jira
        .set_faults(Faults { webhook: WebhookFaults { duplicate: true, ..Default::default() }, ..Default::default() });
    stack.jira.flag_issue(&key, true, jira::JARED).await.unwrap();
    stack.settle().await.unwrap();
    stack.jira.flag_issue(&key, false, jira::JARED).await.unwrap();
    stack.settle().await.unwrap();
    let texts = comments_text(&stack, todo).await;
    assert_eq!(texts.iter().filter(|c| c.starts_with("Blocked:")).count(), 1, "{texts:?}");
    assert!(texts.iter().any(|c| c.contains("flagged as an impediment")), "{texts:?}");
    assert_eq!(texts.iter().filter(|c| c.starts_with("Unblocked:")).count(), 1, "{texts:?}");
    stack.stop().await.unwrap();
}
