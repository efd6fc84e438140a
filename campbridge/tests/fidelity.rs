//! End to end against the strict Jira and Bitbucket simulators (issue 12): what the real services refuse,
//! the sync must never send, and what they do lazily (index lag, rate limits), it must outlast. Every test
//! runs the real path: simulator webhook → receiver → SQLite queue → mapper → simulator API.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns panic on setup failure by design

use campbridge::demo::{self, Stack, StackOptions};
use campbridge_simulators::{basecamp as bc, bitbucket as bb, jira};
use serde_json::Value;
use shared::ports::QueueOperator;

async fn start(name: &str, edit: impl FnOnce(&mut StackOptions)) -> Stack {
    demo::start_in_temp("campbridge-fidelity", name, edit).await.expect("stack starts")
}

fn todo_write(title: &str) -> bc::TodoWrite {
    bc::TodoWrite { content: Some(title.into()), assignee_ids: Some(Vec::new()), ..Default::default() }
}

/// `n` characters of prose in Basecamp's rich text: paragraphs of words, a list, a quote.
fn long_html(n: usize) -> String {
    let para = "The checkout page times out when the basket holds more than forty items. ";
    let mut html = String::new();
    while html.len() < n {
        html.push_str(&format!("<div>{}</div><ul><li>{para}</li></ul><blockquote>{para}</blockquote>", para.repeat(8)));
    }
    html
}

async fn no_dead_letters(stack: &Stack) {
    let dead = stack.store.dead_letters().await.unwrap();
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_description_over_jiras_limit_is_cut_with_a_link_to_the_todo_and_the_issue_is_made() {
    let stack = start("long-description", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let mut write = todo_write("Checkout times out with big baskets");
    write.description = Some(long_html(45_000));
    let todo = stack.basecamp.create_todo(sprint, write, bc::ANNIE).await.unwrap();
    let issue = stack.wait_issue(todo).await.unwrap();
    stack.settle().await.unwrap();

    let description = &issue["fields"]["description"];
    assert!(jira::adf::stored_length(description) <= jira::adf::MAX_RICH_TEXT);
    assert_eq!(jira::adf::validate(description), Ok(()));
    let html = shared::richtext::adf_to_html(description);
    assert!(html.contains("The checkout page times out"), "the start is kept");
    assert!(
        html.contains(&format!("/todos/{todo}\">continued in Basecamp</a>")),
        "a visible link to the rest: …{}",
        &html[html.len().saturating_sub(300)..]
    );
    assert_eq!(stack.jira.calls().count("POST", "/rest/api/3/issue"), 1, "one create, accepted");
    no_dead_letters(&stack).await;

    // An edit to the long description is cut the same way, and its echo writes nothing more.
    let edit = bc::TodoEdit { description: Some(long_html(50_000).replace("forty", "fifty")), ..Default::default() };
    stack.basecamp.edit_todo(todo, edit, bc::ANNIE).await.unwrap();
    stack
        .wait_for("the new description", 20, || async {
            let issue = stack.issue_of(todo).await?;
            shared::richtext::adf_to_text(&issue["fields"]["description"]).contains("fifty items").then_some(())
        })
        .await
        .unwrap();
    stack.settle().await.unwrap();
    let edits = stack.jira.calls().count("PUT", "/rest/api/3/issue/{key}");
    assert_eq!(edits, 1, "the edit was written once");
    stack.reconcile().await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(stack.jira.calls().count("PUT", "/rest/api/3/issue/{key}"), edits, "the cut is stable: no rewrite");
    no_dead_letters(&stack).await;
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_comment_over_jiras_limit_is_mirrored_cut_with_a_link_to_the_comment() {
    let stack = start("long-comment", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Slow search"), bc::ANNIE).await.unwrap();
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();

    let text = "Profiling shows the index is rebuilt on every keystroke. ".repeat(800);
    let comment = stack.basecamp.comment(todo, &format!("<div>DEV: {text}</div>"), bc::ANNIE).await.unwrap();
    stack
        .wait_for("the mirrored comment", 20, || async {
            let comments = stack.jira_comments(&key).await.ok()?;
            (!comments.is_empty()).then_some(())
        })
        .await
        .unwrap();
    stack.settle().await.unwrap();
    let page: Value = reqwest::Client::new()
        .get(format!("{}/rest/api/3/issue/{key}/comment", stack.jira.base_url()))
        .basic_auth(jira::BOT_EMAIL, Some(jira::API_TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = &page["comments"][0]["body"];
    assert!(jira::adf::stored_length(body) <= jira::adf::MAX_RICH_TEXT);
    let html = shared::richtext::adf_to_html(body);
    assert!(html.starts_with("<div>Profiling shows"), "{}", &html[..80]);
    assert!(html.contains("continued in Basecamp</a>"), "…{}", &html[html.len() - 400..]);
    assert!(html.contains(&format!("{comment}")), "the link points at the comment");
    assert!(html.contains("— Annie Bryan via <a href="), "attributed: …{}", &html[html.len() - 200..]);
    no_dead_letters(&stack).await;
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_priority_marker_puts_the_routes_default_priority_back_never_null() {
    let stack = start("priority", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Fix the card form !P1"), bc::ANNIE).await.unwrap();
    let issue = stack.wait_issue(todo).await.unwrap();
    assert_eq!(issue["fields"]["priority"]["name"], "Highest");
    stack.settle().await.unwrap();

    let edit = bc::TodoEdit { content: Some("Fix the card form".into()), ..Default::default() };
    stack.basecamp.edit_todo(todo, edit, bc::ANNIE).await.unwrap();
    stack
        .wait_for("the summary without the marker", 20, || async {
            let issue = stack.issue_of(todo).await?;
            (issue["fields"]["summary"] == "[BC][WEB] Fix the card form").then_some(issue)
        })
        .await
        .unwrap();
    stack.settle().await.unwrap();
    let issue = stack.issue_of(todo).await.unwrap();
    assert_eq!(issue["fields"]["priority"]["name"], "Medium", "the route's default (medium unless configured)");
    let labels = issue["fields"]["labels"].as_array().unwrap();
    assert!(!labels.iter().any(|l| l == "escalated"), "the escalation went with the marker: {labels:?}");
    no_dead_letters(&stack).await;
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_cut_to_the_bare_prefix_never_becomes_the_todos_title_and_is_written_back() {
    let stack = start("bare-prefix", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Fix login redirect"), bc::ANNIE).await.unwrap();
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();

    // Title ownership is `both` here: any other tracker rename would cross over to Basecamp.
    stack.jira.edit_issue(&key, serde_json::json!({"fields": {"summary": "[BC][WEB] "}}), jira::JARED).await.unwrap();
    stack
        .wait_for("the summary written back", 20, || async {
            let issue = stack.issue_of(todo).await?;
            (issue["fields"]["summary"] == "[BC][WEB] Fix login redirect").then_some(())
        })
        .await
        .unwrap();
    stack.settle().await.unwrap();
    assert_eq!(stack.basecamp.record("todos", todo).await.unwrap()["title"], "Fix login redirect");
    let audit = shared::ports::AuditLog::recent(&stack.store, None, 20).await.unwrap();
    assert!(audit.iter().any(|e| e.detail.contains("bare template")), "explained in the audit: {audit:#?}");
    no_dead_letters(&stack).await;
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_create_is_recovered_once_even_while_jiras_search_lags() {
    // Jira commits the issue and the answer is lost; the index takes 6 s to show it (longer than the job's
    // 5 s retry), and the engine trusts a marker search only 7 s after the claim's lease.
    let mut stack = start("lagging-takeover", |o| {
        o.jira.lose_create_responses = 1;
        o.jira.search_lag_ms = 6_000;
        o.search_settle_ms = Some(7_000);
        o.lease_secs = 1;
    })
    .await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Survive a lagging index"), bc::ANNIE).await.unwrap();
    stack
        .wait_for("Jira to create the issue", 20, || async {
            (stack.jira.calls().count("POST", "/rest/api/3/issue") == 1).then_some(())
        })
        .await
        .unwrap();
    // The worker never learned the key: the pair is still PENDING. Another worker takes the job over.
    stack.restart("local-2").await.unwrap();
    let issue = stack.wait_for("the pair to be linked", 40, || stack.issue_of(todo)).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(stack.jira.calls().count("POST", "/rest/api/3/issue"), 1, "found by its marker, not created again");
    assert_eq!(issue["key"], "WEB-1");
    let audit = shared::ports::AuditLog::recent(&stack.store, None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "recovered"), "{audit:?}");
    no_dead_letters(&stack).await;
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_status_without_refname_finds_its_branch_through_the_commits_pull_requests() {
    let stack = start("no-refname", |_| {}).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Checkout times out"), bc::ANNIE).await.unwrap();
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();
    // The branch names nothing; the pull request's title names the issue.
    let pr = stack
        .bitbucket
        .open_pullrequest(&format!("Fix the checkout timeout ({key})"), "", "feature/checkout-timeout", "jared")
        .await
        .unwrap();
    stack.settle().await.unwrap();
    let head = stack.bitbucket.head_of(pr).await.unwrap();
    // As Jenkins posts it: `refname` null (tests/fixtures/bitbucket/cloud-api-commit-build-status-get.json).
    let status = bb::BuildStatus {
        commit: head.clone(),
        key: "jenkins".into(),
        state: "FAILED".into(),
        name: "Jenkins".into(),
        url: "https://ci.example.invalid/job/7".into(),
        refname: None,
        ..Default::default()
    };
    stack.bitbucket.post_build_status(status, "jared").await.unwrap();
    let comment = stack
        .wait_for("the build signal", 20, || async {
            let comments = stack.basecamp_comments(todo).await.ok()?;
            comments.into_iter().find(|c| c.contains("Build failed"))
        })
        .await
        .unwrap();
    assert!(comment.contains("Jenkins on feature/checkout-timeout"), "{comment}");
    assert!(comment.contains(&head[..7]), "{comment}");
    assert_eq!(
        stack.bitbucket.calls().count("GET", "/2.0/repositories/{workspace}/{repo}/commit/{hash}/pullrequests"),
        1
    );
    no_dead_letters(&stack).await;
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_a_repository_access_token_with_a_repository_call_not_as_a_user() {
    use campbridge::ops::{self, PublicUrls};
    let stack = start("access-token", |_| {}).await;
    let email = format!("email = {:?}\n", stack.bitbucket.credentials().0);
    let text = stack.config_text.replace(
        &format!("{email}api_token = {{ secret = \"bitbucket-api-token\" }}"),
        "access_token = { secret = \"bitbucket-access-token\" }",
    );
    assert!(text.contains("access_token = { secret = \"bitbucket-access-token\" }"), "{text}");
    let config = shared::config::Config::parse(&text, "campbridge.toml").unwrap();
    let report = ops::doctor::run(&config, stack.secrets(), &PublicUrls::default()).await;
    let rendered = ops::doctor::render(&report);
    let line = report.checks.iter().find(|c| c.provider == "bitbucket" && c.name == "credentials").unwrap();
    assert_eq!(line.ok, Some(true), "{rendered}");
    assert!(line.detail.contains("access token works on"), "{rendered}");
    assert_eq!(stack.bitbucket.calls().count("GET", "/2.0/user"), 0, "never asked as a user: {rendered}");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reads_the_create_screen_and_a_route_gives_a_required_field_its_value() {
    use campbridge::ops::{self, PublicUrls};
    use shared::doctor::SetupCode;
    let screen = |o: &mut StackOptions| {
        o.jira.create_required = [("customfield_10050".to_owned(), "Team".to_owned())].into();
        o.jira.create_absent = ["duedate".to_owned()].into();
    };
    let stack = start("create-screen", screen).await;
    let report = ops::doctor::run(&stack.config, stack.secrets(), &PublicUrls::default()).await;
    let rendered = ops::doctor::render(&report);
    let line = report.checks.iter().find(|c| c.name.starts_with("create screen for Task in WEB")).unwrap();
    assert_eq!((line.ok, line.code), (Some(false), Some(SetupCode::ScopeUnavailable)), "{rendered}");
    assert!(line.detail.contains("required fields campbridge does not set: Team (customfield_10050)"), "{rendered}");
    assert!(!line.detail.contains("fields campbridge sets that the create screen lacks"), "{rendered}");
    assert!(line.detail.contains("set by an edit after each create"), "{rendered}");
    assert!(line.detail.ends_with(": duedate"), "{rendered}");
    stack.stop().await.unwrap();

    // The route gives Team its value: creates carry it, and doctor no longer names it.
    let stack = start("create-fields", |o| {
        screen(o);
        o.create_fields = Some("customfield_10050 = { value = \"Web\" }");
    })
    .await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let todo = stack.basecamp.create_todo(sprint, todo_write("Needs a team"), bc::ANNIE).await.unwrap();
    stack.wait_issue(todo).await.unwrap();
    stack.settle().await.unwrap();
    let report = ops::doctor::run(&stack.config, stack.secrets(), &PublicUrls::default()).await;
    let line = report.checks.iter().find(|c| c.name.starts_with("create screen for Task in WEB")).unwrap();
    assert!(!line.detail.contains("Team"), "{}", ops::doctor::render(&report));
    no_dead_letters(&stack).await;
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_date_the_create_screen_lacks_is_set_by_an_edit_after_the_create_and_nothing_dead_letters() {
    // Real Jira refuses a field that is not on the create screen (400, "Field 'duedate' cannot be set. It
    // is not on the appropriate screen, or unknown."); many projects keep the due date on the edit screen
    // only. The issue must still be made, with its due date.
    let stack = start("due-off-create-screen", |o| o.jira.create_absent = ["duedate".to_owned()].into()).await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let mut write = todo_write("Ship the invoice export");
    write.due_on = Some("2026-12-18".into());
    let todo = stack.basecamp.create_todo(sprint, write, bc::ANNIE).await.unwrap();
    let issue = stack.wait_issue(todo).await.unwrap();
    stack.settle().await.unwrap();
    let issue = stack.issue_of(todo).await.unwrap_or(issue);
    assert_eq!(issue["fields"]["duedate"], "2026-12-18", "the due date was set after the create");
    assert!(
        issue["fields"]["labels"].to_string().contains(&format!("\"bc-{todo}\"")),
        "the marker stayed on the create"
    );
    let audit = shared::ports::AuditLog::recent(&stack.store, None, 50).await.unwrap();
    assert!(
        audit.iter().any(|e| e.action == "field_deferred" && e.detail.contains("duedate")),
        "why the create left it out is audited: {audit:?}"
    );
    assert_eq!(stack.jira.calls().count("POST", "/rest/api/3/issue"), 2, "refused once, then made without it");
    no_dead_letters(&stack).await;
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_date_neither_screen_has_is_left_out_audited_and_not_sent_again() {
    let stack = start("due-off-both-screens", |o| {
        o.jira.create_absent = ["duedate".to_owned()].into();
        o.jira.edit_absent = ["duedate".to_owned()].into();
    })
    .await;
    let sprint = stack.list("Sprint 1").await.unwrap();
    let mut write = todo_write("Renew the certificates");
    write.due_on = Some("2026-12-20".into());
    let todo = stack.basecamp.create_todo(sprint, write, bc::ANNIE).await.unwrap();
    let issue = stack.wait_issue(todo).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(issue["fields"]["duedate"], Value::Null);
    let key = issue["key"].as_str().unwrap().to_owned();
    let audit = shared::ports::AuditLog::recent(&stack.store, None, 50).await.unwrap();
    assert!(
        audit.iter().any(|e| e.action == "field_refused" && e.detail.contains("duedate")),
        "the refused edit is audited: {audit:?}"
    );
    // A later change to the title syncs, and the refused due date is not sent again with it.
    let edits_before = stack.jira.calls().count("PUT", "/rest/api/3/issue/{key}");
    let edit = bc::TodoEdit { content: Some("Renew the TLS certificates".into()), ..Default::default() };
    stack.basecamp.edit_todo(todo, edit, bc::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    let issue = stack.jira.issue(&key).await.unwrap();
    assert!(
        issue["fields"]["summary"].as_str().unwrap().ends_with("Renew the TLS certificates"),
        "{}",
        issue["fields"]["summary"]
    );
    let edits = stack.jira.calls().count("PUT", "/rest/api/3/issue/{key}");
    assert_eq!(edits - edits_before, 1, "one edit, accepted the first time");
    no_dead_letters(&stack).await;
    stack.stop().await.unwrap();
}
