//! The server's log at INFO tells the story in words: a story through the demo stack (receivers → queue →
//! mapper → simulators) with the log captured as `serve` writes it (fmt, `info`, no colour), then read
//! back: one line per pair created, title change, completion, conflict and pull-request signal; no lease
//! contention; no credential. Its own test binary: the capturing subscriber is process-wide.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns panic on setup failure by design

use std::io::Write;
use std::sync::{Arc, Mutex};

use campbridge::demo;
use campbridge_simulators::{basecamp as bc_sim, bitbucket as bb_sim, jira as jira_sim};

/// A writer into a shared buffer: what the server would have printed on stderr.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The one INFO line containing every one of `needles` (panics with the whole log otherwise).
fn info_line<'a>(log: &'a str, needles: &[&str]) -> &'a str {
    log.lines()
        .find(|l| l.contains(" INFO ") && needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no INFO line with {needles:?} in:\n{log}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_logs_tell_the_story_in_words_without_contention_or_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    // As `serve` sets it up (main.rs `init_logs` with its default `info`), writing to a buffer.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let stack = demo::start_in_temp("campbridge-logs", "story", |o| o.reconcile_every = "off").await.unwrap();
    let sprint = stack.list("Sprint 1").await.unwrap();
    let write = |title: &str| bc_sim::TodoWrite { content: Some(title.into()), ..Default::default() };
    let long_title = format!("Fix login redirect {}", "and more ".repeat(20));
    let todo = stack.basecamp.create_todo(sprint, write(&long_title), bc_sim::ANNIE).await.unwrap();
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();
    let rename = bc_sim::TodoEdit { content: Some("Fix login redirect on Safari".into()), ..Default::default() };
    stack.basecamp.edit_todo(todo, rename, bc_sim::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    stack.edit_title_on_both_sides(todo, &key, "PM title", "Dev title").await.unwrap();
    let branch = format!("feature/{}-login", key.to_lowercase());
    stack.bitbucket.open_pullrequest(&format!("Fix login ({key})"), "", &branch, "jared").await.unwrap();
    stack.settle().await.unwrap();
    stack.jira.transition_issue(&key, "Done", jira_sim::JARED).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(stack.basecamp.record("todos", todo).await.unwrap()["completed"], true);
    let (bitbucket_token, jira_token) = (stack.bitbucket.credentials().1, stack.jira.credentials().1);
    stack.stop().await.unwrap();

    let log = captured.text();
    let to_do = format!("to-do {todo}");
    // The pair created, its title clipped.
    let created = info_line(&log, &[&key, "created from", &to_do, "\"Fix login redirect and more"]);
    assert!(created.contains("…\"") && !created.contains(long_title.trim_end()), "{created}");
    // The title change, Basecamp → Jira.
    info_line(&log, &[&format!("{key} ← {to_do}: title \"Fix login redirect on Safari\"")]);
    // The conflict: field, both values' kinds, the policy and its resolution — not the values.
    let conflict = info_line(&log, &[&format!("conflict on {key} ({to_do}): title changed on both sides")]);
    assert!(
        conflict.contains("Basecamp: a title of 8 chars; Jira: a title of 9 chars")
            && conflict.contains("policy last-writer-wins kept the Jira value"),
        "{conflict}"
    );
    assert!(!conflict.contains("PM title") && !conflict.contains("Dev title"), "{conflict}");
    // The completion, Jira → Basecamp.
    info_line(&log, &[&format!("{to_do} completed from {key} (Done)")]);
    // The pull request's signal on the to-do, and its link on the issue.
    info_line(&log, &[&format!("{to_do} ← PR "), " opened by ", &format!("\"Fix login ({key})\"")]);
    info_line(&log, &[&format!("{key} ← PR "), "linked"]);

    // Routine contention stays at DEBUG: nothing at INFO (or above) about leases, busy pairs or deliveries
    // in progress elsewhere.
    for line in log.lines() {
        let lower = line.to_lowercase();
        for word in ["lease", "busy", "in progress elsewhere", "kept changing", "held"] {
            assert!(!lower.contains(word), "contention above DEBUG: {line}");
        }
    }
    // No credential the simulators or the demo hand out.
    for secret in [
        bc_sim::ACCESS_TOKEN,
        bc_sim::REFRESH_TOKEN,
        bc_sim::CLIENT_SECRET,
        jira_sim::API_TOKEN,
        jira_token.as_str(),
        bb_sim::API_TOKEN,
        bb_sim::ACCESS_TOKEN,
        bitbucket_token.as_str(),
        "demo-webhook-key",
        "demo-jira-webhook-secret",
        "demo-bitbucket-webhook-secret",
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}
