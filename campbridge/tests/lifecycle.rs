//! The lifecycle rules of docs/lifecycle.md, end to end through the real path: the simulators' webhooks (or
//! a reconcile pass, where Basecamp sends none) reach a real `serve`, the jobs go through its SQLite queue to
//! the mapper, and the outcome is read back from the simulators and from `campbridge status`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns panic on setup failure by design

use campbridge::demo::{self, Stack, StackOptions};
use campbridge::ops::{self, Backend, PublicUrls};
use campbridge_simulators::{basecamp as bc, jira};
use serde_json::{Value, json};
use shared::ports::PairStore;

async fn start(name: &str, edit: impl FnOnce(&mut StackOptions)) -> Stack {
    demo::start_in_temp("campbridge-lifecycle", name, edit).await.expect("stack starts")
}

fn write(title: &str) -> bc::TodoWrite {
    bc::TodoWrite { content: Some(title.into()), ..Default::default() }
}

fn summary(issue: &Value) -> String {
    issue["fields"]["summary"].as_str().unwrap_or_default().to_owned()
}

fn issue_creates(stack: &Stack) -> u64 {
    stack.jira.calls().count("POST", "/rest/api/3/issue")
}

/// A to-do in `list`, synced: its id and its issue's key.
async fn synced(stack: &Stack, list: &str, title: &str) -> (i64, String) {
    let list = stack.list(list).await.unwrap();
    let todo = stack.basecamp.create_todo(list, write(title), bc::ANNIE).await.unwrap();
    let issue = stack.wait_issue(todo).await.unwrap();
    stack.settle().await.unwrap();
    (todo, issue["key"].as_str().unwrap().to_owned())
}

/// Comments on the issue that report a lifecycle change (not the link comments, not `DEV:` twins).
async fn jira_notices(stack: &Stack, key: &str) -> Vec<String> {
    let all = stack.jira_comments(key).await.unwrap();
    all.into_iter().filter(|c| c.contains("campbridge")).collect()
}

/// Comments on the to-do other than the one-time link comment.
async fn basecamp_notices(stack: &Stack, todo: i64) -> Vec<String> {
    let all = stack.basecamp_comments(todo).await.unwrap();
    all.into_iter().filter(|c| c.contains("campbridge")).collect()
}

async fn status(stack: &Stack) -> ops::status::StatusReport {
    let backend = Backend::sqlite(stack.store.clone(), "the stack's SQLite store");
    ops::status::run(&backend, &stack.config, None, &PublicUrls::default()).await.unwrap()
}

async fn detached_reason(stack: &Stack, todo: i64) -> Option<String> {
    let key = shared::domain::PairKey { route: stack.route.clone(), todo: shared::domain::TodoId(todo) };
    stack.store.get(&key).await.unwrap().and_then(|p| p.detached).map(|d| d.reason.code().to_owned())
}

async fn wait_detached(stack: &Stack, todo: i64, reason: Option<&str>) {
    let want = reason.map(str::to_owned);
    stack
        .wait_for(&format!("pair of {todo} detached = {want:?}"), 20, || async {
            (detached_reason(stack, todo).await == want).then_some(())
        })
        .await
        .unwrap();
    stack.settle().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_todo_moved_to_an_unrouted_list_stops_syncing_with_one_comment_and_resumes_when_moved_back() {
    let stack = start("unrouted", |_| {}).await;
    let (todo, key) = synced(&stack, "Sprint 1", "Fix login").await;

    // Basecamp sends no webhook for a move: the reconcile pass sees the to-do's new parent.
    let backlog = stack.list("Backlog").await.unwrap();
    stack.basecamp.move_todo(todo, Some(backlog), 1).await.unwrap();
    stack.reconcile().await.unwrap();
    wait_detached(&stack, todo, Some("todo_unrouted")).await;
    let notices = jira_notices(&stack, &key).await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("Route web stopped syncing") && notices[0].contains("Backlog"), "{notices:?}");
    let report = status(&stack).await;
    assert_eq!((report.pairs_linked, report.detached.len()), (0, 1));
    assert_eq!(report.detached[0].reason, "todo_unrouted");
    assert!(ops::status::render(&report).contains(&key));

    // While it sits in Backlog, its edits stay in Basecamp, and another pass changes nothing.
    let edit = bc::TodoEdit { content: Some("Fix login on Safari".into()), ..Default::default() };
    stack.basecamp.edit_todo(todo, edit, bc::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    stack.reconcile().await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(summary(&stack.jira.issue(&key).await.unwrap()), "[BC][WEB] Fix login");
    assert_eq!(jira_notices(&stack, &key).await.len(), 1, "one comment per change, whatever the events");

    // Moved back: one comment, and the edit made meanwhile crosses over.
    let sprint = stack.list("Sprint 1").await.unwrap();
    stack.basecamp.move_todo(todo, Some(sprint), 1).await.unwrap();
    stack.reconcile().await.unwrap();
    wait_detached(&stack, todo, None).await;
    stack
        .wait_for("the summary", 20, || async {
            (summary(&stack.jira.issue(&key).await?) == "[BC][WEB] Fix login on Safari").then_some(())
        })
        .await
        .unwrap();
    let notices = jira_notices(&stack, &key).await;
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices[1].contains("back in the route"), "{notices:?}");
    assert_eq!(issue_creates(&stack), 1, "nothing recreated");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trashing_archiving_and_restoring_a_todo_or_its_list_detach_and_resume_the_pair() {
    let stack = start("trash", |_| {}).await;
    let (todo, key) = synced(&stack, "Bugs", "Receipts show the wrong VAT").await;

    stack.basecamp.set_status(todo, "trashed", bc::ANNIE).await.unwrap();
    wait_detached(&stack, todo, Some("todo_trashed")).await;
    // Later events of the trashed to-do (here: it is completed in the trash) change nothing.
    stack.basecamp.complete_todo(todo, bc::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(stack.jira.issue(&key).await.unwrap()["fields"]["status"]["name"], "To Do");
    stack.basecamp.uncomplete_todo(todo, bc::ANNIE).await.unwrap();
    stack.basecamp.set_status(todo, "active", bc::ANNIE).await.unwrap();
    wait_detached(&stack, todo, None).await;

    // Archiving the list reaches the to-do without an event of its own: the list's event re-scans it.
    let bugs = stack.list("Bugs").await.unwrap();
    stack.basecamp.set_status(bugs, "archived", bc::VICTOR).await.unwrap();
    wait_detached(&stack, todo, Some("todo_archived")).await;
    stack.basecamp.set_status(bugs, "active", bc::VICTOR).await.unwrap();
    wait_detached(&stack, todo, None).await;

    let notices = jira_notices(&stack, &key).await;
    assert_eq!(notices.len(), 4, "{notices:#?}");
    assert!(notices[0].contains("moved to the trash"), "{notices:?}");
    assert!(notices[1].contains("back in the route"), "{notices:?}");
    assert!(notices[2].contains("archived"), "{notices:?}");
    assert!(notices[3].contains("back in the route"), "{notices:?}");
    assert_eq!(issue_creates(&stack), 1);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_todo_is_final_shown_as_gone_and_nothing_is_recreated() {
    let stack = start("deleted-todo", |_| {}).await;
    let (todo, key) = synced(&stack, "Sprint 1", "Drop the legacy API").await;
    stack.basecamp.set_status(todo, "trashed", bc::ANNIE).await.unwrap();
    wait_detached(&stack, todo, Some("todo_trashed")).await;
    stack.basecamp.delete_recording(todo, bc::ANNIE).await.unwrap();
    wait_detached(&stack, todo, Some("todo_deleted")).await;

    let notices = jira_notices(&stack, &key).await;
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices[1].contains("was deleted") && notices[1].contains("creates nothing"), "{notices:?}");
    assert!(stack.jira.issue(&key).await.is_some(), "the issue stays for the developers");
    let report = status(&stack).await;
    assert!(report.detached.iter().any(|d| d.gone && d.reason == "todo_deleted"), "{report:?}");
    assert!(ops::status::render(&report).contains("GONE"));

    // A developer keeps working on the issue: nothing reaches Basecamp, nothing is recreated.
    stack.jira.transition_issue(&key, "Done", jira::JARED).await.unwrap();
    stack.settle().await.unwrap();
    stack.reconcile().await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(issue_creates(&stack), 1);
    assert_eq!(jira_notices(&stack, &key).await.len(), 2);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_todo_is_synced_as_a_new_todo() {
    let stack = start("copied", |_| {}).await;
    let (todo, key) = synced(&stack, "Sprint 1", "Write the release notes").await;
    let bugs = stack.list("Bugs").await.unwrap();
    let copy = stack.basecamp.copy_todo(todo, bugs, bc::ANNIE).await.unwrap();
    let copied = stack.wait_issue(copy).await.unwrap();
    stack.settle().await.unwrap();
    assert_ne!(copied["key"].as_str().unwrap(), key);
    assert_eq!(summary(&copied), "[BC][WEB] Write the release notes");
    let labels: Vec<&str> = copied["fields"]["labels"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(labels.contains(&"bug") && labels.contains(&format!("bc-{copy}").as_str()), "{labels:?}");
    assert_eq!(issue_creates(&stack), 2, "the copy gets its own issue, the original keeps its");
    assert_eq!(stack.item_of(todo).await.unwrap().display_name(), key);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_issue_leaves_one_comment_on_the_todo_and_is_never_recreated() {
    let stack = start("deleted-issue", |_| {}).await;
    let (todo, key) = synced(&stack, "Sprint 1", "Localise the checkout").await;
    stack.jira.delete_issue(&key, jira::JARED).await.unwrap();
    wait_detached(&stack, todo, Some("issue_deleted")).await;
    let notices = basecamp_notices(&stack, todo).await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains(&key) && notices[0].contains("will not create another issue"), "{notices:?}");

    // The to-do lives on in Basecamp: edits and a reconcile pass create nothing and say nothing more.
    let edit = bc::TodoEdit { content: Some("Localise the checkout (FR)".into()), ..Default::default() };
    stack.basecamp.edit_todo(todo, edit, bc::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    stack.reconcile().await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(issue_creates(&stack), 1, "nothing recreated");
    assert_eq!(basecamp_notices(&stack, todo).await.len(), 1);
    let report = status(&stack).await;
    assert!(report.detached.iter().any(|d| d.gone && d.reason == "issue_deleted" && d.item == key), "{report:?}");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_moved_to_another_project_stops_syncing_and_moving_it_back_resumes() {
    let stack = start("moved-issue", |_| {}).await;
    let (todo, key) = synced(&stack, "Sprint 1", "Tune the CDN cache").await;
    let moved = stack.jira.move_issue(&key, "OPS", jira::JARED).await.unwrap();
    wait_detached(&stack, todo, Some("issue_moved")).await;
    assert_eq!(stack.item_of(todo).await.unwrap().display_name(), moved, "the pair knows the new key");
    let notices = basecamp_notices(&stack, todo).await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains(&key) && notices[0].contains(&moved), "{notices:?}");

    // Edits on either side stay where they are while the issue is elsewhere.
    let edit = bc::TodoEdit { content: Some("Tune the CDN cache TTL".into()), ..Default::default() };
    stack.basecamp.edit_todo(todo, edit, bc::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(summary(&stack.jira.issue(&moved).await.unwrap()), "[BC][WEB] Tune the CDN cache");

    // Back in WEB (a new key again): one comment, and the title edited meanwhile crosses over.
    let back = stack.jira.move_issue(&moved, "WEB", jira::JARED).await.unwrap();
    wait_detached(&stack, todo, None).await;
    stack
        .wait_for("the summary", 20, || async {
            (summary(&stack.jira.issue(&back).await?) == "[BC][WEB] Tune the CDN cache TTL").then_some(())
        })
        .await
        .unwrap();
    assert_eq!(stack.item_of(todo).await.unwrap().display_name(), back);
    let notices = basecamp_notices(&stack, todo).await;
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices[1].contains("back in the route"), "{notices:?}");
    assert_eq!(issue_creates(&stack), 1);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_list_into_the_route_rescans_its_todos() {
    let stack = start("list-rename", |_| {}).await;
    let backlog = stack.list("Backlog").await.unwrap();
    let todo = stack.basecamp.create_todo(backlog, write("Plan the offsite"), bc::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(issue_creates(&stack), 0, "Backlog is not routed");

    // The rename fires `todolist_title_updated` only; the list's to-do is found by re-scanning the list.
    stack.basecamp.rename_todolist(backlog, "Sprint 2", bc::VICTOR).await.unwrap();
    let issue = stack.wait_issue(todo).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(summary(&issue), "[BC][WEB] Plan the offsite");
    assert_eq!(issue_creates(&stack), 1);

    // Renamed out of the route again: the pair detaches, with one comment on the issue.
    stack.basecamp.rename_todolist(backlog, "Someday", bc::VICTOR).await.unwrap();
    wait_detached(&stack, todo, Some("todo_unrouted")).await;
    let key = issue["key"].as_str().unwrap();
    assert_eq!(jira_notices(&stack, key).await.len(), 1);
    assert_eq!(json!(issue_creates(&stack)), json!(1));
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_list_detaches_the_pairs_of_its_todos_for_good() {
    let stack = start("list-deleted", |_| {}).await;
    let (todo, key) = synced(&stack, "Bugs", "Crash on empty cart").await;
    let bugs = stack.list("Bugs").await.unwrap();
    stack.basecamp.set_status(bugs, "trashed", bc::VICTOR).await.unwrap();
    wait_detached(&stack, todo, Some("todo_trashed")).await;
    // Purged with its list: the list's event finds no list, so its pairs are walked; each finds its to-do gone.
    stack.basecamp.delete_recording(bugs, bc::VICTOR).await.unwrap();
    wait_detached(&stack, todo, Some("todo_deleted")).await;
    let notices = jira_notices(&stack, &key).await;
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices[1].contains("was deleted"), "{notices:?}");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_todo_trashed_while_its_webhook_was_lost_is_detached_by_the_reconcile_pass() {
    use campbridge_simulators::common::faults::{Faults, WebhookFaults};
    let stack = start("trash-lost", |_| {}).await;
    let (todo, key) = synced(&stack, "Sprint 1", "Archive old invoices").await;
    stack
        .basecamp
        .set_faults(Faults { webhook: WebhookFaults { drop_next: 1, ..Default::default() }, ..Default::default() });
    stack.basecamp.set_status(todo, "trashed", bc::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(detached_reason(&stack, todo).await, None, "the webhook was lost");
    stack.reconcile().await.unwrap();
    wait_detached(&stack, todo, Some("todo_trashed")).await;
    assert_eq!(jira_notices(&stack, &key).await.len(), 1);
    stack.stop().await.unwrap();
}
