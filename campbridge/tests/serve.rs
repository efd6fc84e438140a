//! `serve` under hostile or unlucky conditions: slow clients, too many connections, a media type that is
//! not JSON, a database locked by another process, and SIGTERM on the real binary. Every wait here is
//! bounded (a hung server fails the test instead of hanging it); none of them is a speed goal.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns panic on setup failure by design

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use campbridge::demo::{self, Stack, StackOptions};
use campbridge::server::Limits;
use shared::ports::QueueOperator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for any honest wait on a loaded 2-core machine; only a hung server reaches it.
const HUNG: Duration = Duration::from_secs(30);

async fn start(name: &str, edit: impl FnOnce(&mut StackOptions)) -> Stack {
    demo::start_in_temp("campbridge-serve", name, edit).await.expect("stack starts")
}

fn addr(stack: &Stack) -> String {
    stack.server_url.trim_start_matches("http://").to_owned()
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Everything the server sends until it closes the connection.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(HUNG, stream.read_to_end(&mut out)).await.expect("the server closes the connection").ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_after_the_header_and_body_timeouts() {
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let stack = start("slow", |o| o.limits = limits).await;
    // Headers that never finish (slow loris): the connection is closed.
    let mut loris = TcpStream::connect(addr(&stack)).await.unwrap();
    loris.write_all(b"POST /jira HTTP/1.1\r\nHost: campbridge\r\nContent-Type: application").await.unwrap();
    let answer = read_to_close(&mut loris).await;
    assert!(!answer.contains("202"), "{answer}");
    // A connection that never sends anything is closed too.
    let mut idle = TcpStream::connect(addr(&stack)).await.unwrap();
    assert_eq!(read_to_close(&mut idle).await, "");
    // A body that stops halfway: 408, and nothing was enqueued.
    let mut slow = TcpStream::connect(addr(&stack)).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: campbridge\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"id\":",
        stack.urls[0].1.trim_start_matches(&stack.server_url)
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(stack.store.depth().await.unwrap(), 0);
    // The server still serves everyone else.
    let ok = reqwest::get(format!("{}/healthz", stack.server_url)).await.unwrap();
    assert_eq!(ok.status(), 200);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503_with_retry_after_until_one_frees_up() {
    let limits = Limits { max_connections: 3, header_read_timeout: HUNG, ..Limits::default() };
    let stack = start("too-many", |o| o.limits = limits).await;
    // Three keep-alive connections, each proven accepted by an answered request, then left open.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(addr(&stack)).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: campbridge\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(HUNG, c.read(&mut buf)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(c);
    }
    let mut extra = TcpStream::connect(addr(&stack)).await.unwrap();
    extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: campbridge\r\n\r\n").await.unwrap();
    let answer = read_to_close(&mut extra).await.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    // One closes; its place is free again (the server notices the close on its own schedule).
    held.pop();
    let mut freed = false;
    for _ in 0..100 {
        let mut c = TcpStream::connect(addr(&stack)).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: campbridge\r\nConnection: close\r\n\r\n").await.unwrap();
        if read_to_close(&mut c).await.starts_with("HTTP/1.1 200") {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "a freed connection slot is used again");
    drop(held);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_gets_415_and_changes_nothing() {
    let stack = start("media-type", |_| {}).await;
    let http = reqwest::Client::new();
    let event = fixture("basecamp/webhook-event-todo-completed.json");
    let token_url = stack.urls[0].1.clone();
    for (content_type, to) in [
        (Some("text/plain"), token_url.clone()),
        (Some("application/x-www-form-urlencoded"), format!("{}/jira", stack.server_url)),
        (Some("application/jsonx"), format!("{}/bitbucket", stack.server_url)),
        (None, token_url.clone()),
    ] {
        let mut request = http.post(&to).body(event.clone());
        if let Some(ct) = content_type {
            request = request.header("Content-Type", ct);
        }
        let reply = request.send().await.unwrap();
        assert_eq!(reply.status(), 415, "{content_type:?}");
        let body: serde_json::Value = reply.json().await.unwrap();
        assert_eq!(body["error"], "Content-Type must be application/json");
    }
    assert_eq!(stack.store.depth().await.unwrap(), 0, "nothing enqueued");
    // What the senders really send passes: Basecamp's and Bitbucket's `application/json`, Jira's with a
    // charset (here refused further on, for its missing signature, not for its media type).
    for ct in ["application/json", "Application/JSON"] {
        let reply = http.post(&token_url).header("Content-Type", ct).body(event.clone()).send().await.unwrap();
        assert_eq!(reply.status(), 202, "{ct}");
    }
    let jira = fixture("jira/cloud-webhook-issue-updated-status.json");
    let reply = http
        .post(format!("{}/jira", stack.server_url))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(jira)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_another_process_holds_the_database_write_lock() {
    let stack = start("locked", |o| o.workers = 2).await;
    // Another process (here: another connection) takes the write lock and keeps it.
    let db = rusqlite::Connection::open(stack_db(&stack)).unwrap();
    db.execute_batch("BEGIN IMMEDIATE; INSERT INTO cursors (name, at) VALUES ('lock-holder', 0);").unwrap();
    // A webhook now waits for the lock (up to the store's busy timeout), as do both workers' queue polls.
    let event = fixture("basecamp/webhook-event-todo-completed.json");
    let token_url = stack.urls[0].1.clone();
    let posted = Arc::new(AtomicBool::new(false));
    let done = posted.clone();
    let waiting = tokio::spawn(async move {
        let status = reqwest::Client::new()
            .post(token_url)
            .header("Content-Type", "application/json")
            .body(event)
            .send()
            .await
            .map(|r| r.status().as_u16());
        done.store(true, Ordering::SeqCst);
        status
    });
    // Give both workers time to poll the queue (every 500 ms when idle) and meet the lock.
    tokio::time::sleep(Duration::from_millis(700)).await;
    // While the lock is held and that webhook still waits: /healthz answers. (When store work ran on the
    // async workers, it answered only after the webhook had given up.) The probe runs on its own OS thread,
    // so a stalled runtime cannot stall the probe too.
    let at = addr(&stack);
    let probed = posted.clone();
    let answers = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut answers = Vec::new();
        for _ in 0..3 {
            let mut c = std::net::TcpStream::connect(&at).unwrap();
            c.set_read_timeout(Some(HUNG)).unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: campbridge\r\nConnection: close\r\n\r\n").unwrap();
            let mut answer = String::new();
            let read = c.read_to_string(&mut answer).map(|_| answer).map_err(|e| e.to_string());
            answers.push((read, probed.load(Ordering::SeqCst)));
            std::thread::sleep(Duration::from_millis(200));
        }
        answers
    })
    .await
    .unwrap();
    for (answer, webhook_done) in answers {
        let answer = answer.expect("healthz answers");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(!webhook_done, "healthz answered only after the webhook waiting on the lock gave up");
    }
    assert_ne!(waiting.await.unwrap().ok(), Some(202), "nothing was enqueued past the lock");
    db.execute_batch("ROLLBACK").unwrap();
    stack.stop().await.unwrap();
}

fn stack_db(stack: &Stack) -> std::path::PathBuf {
    match &stack.config.store {
        shared::config::StoreConfig::Sqlite { path } => path.clone(),
        other => panic!("the stack runs on SQLite, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_cleanly() {
    // The real binary, on the stack's simulators, its own SQLite file and port, with the test opt-in.
    let stack = start("sigterm", |o| o.reconcile_every = "off").await;
    let dir = std::env::temp_dir().join(format!("campbridge-serve-sigterm-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = stack
        .config_text
        .replace(&stack_db(&stack).display().to_string(), &dir.join("campbridge.db").display().to_string());
    let config = dir.join("campbridge.toml");
    std::fs::write(&config, text).unwrap();
    let secrets = stack.secrets();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_campbridge"));
    cmd.args(["serve", "--config", config.to_str().unwrap(), "--port", "0"])
        .env(shared::config::LOOPBACK_OPT_IN_VAR, "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in [
        "webhook-key",
        "basecamp-access-token",
        "basecamp-client-secret",
        "basecamp-refresh-token",
        "jira-api-token",
        "jira-webhook-secret",
        "bitbucket-api-token",
        "bitbucket-webhook-secret",
    ] {
        use secrecy::ExposeSecret;
        let value = secrets.get(name).await.unwrap();
        cmd.env(shared::adapters::env_secrets::var_name(name), value.expose_secret());
    }
    let mut child = cmd.spawn().unwrap();
    // `campbridge serving on http://127.0.0.1:<port>; webhook URLs to register:` then the URLs.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = Vec::new();
    while printed.len() < 2 {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let out = child.wait_with_output().unwrap();
            panic!("serve exited early: {:?}\n{printed:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        printed.push(line);
    }
    let server = printed[0].split_whitespace().find(|w| w.starts_with("http://")).unwrap().trim_end_matches(';');
    let server = server.to_owned();
    let route = printed[1].split_whitespace().find(|w| w.contains("/basecamp/")).unwrap();
    let route = route.trim_start_matches(&server).to_owned();

    // A request in flight: headers and half the body sent.
    let body = fixture("basecamp/webhook-event-todo-completed.json");
    let mut inflight = TcpStream::connect(server.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST {route} HTTP/1.1\r\nHost: campbridge\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    inflight.write_all(head.as_bytes()).await.unwrap();
    inflight.write_all(&body[..body.len() / 2]).await.unwrap();

    let terminated = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(terminated.success());
    // The server stops accepting (new connections are refused once the listener is closed)...
    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(server.trim_start_matches("http://")).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(refused, "the listener closes on SIGTERM");
    // ...but the request in flight is finished and answered.
    inflight.write_all(&body[body.len() / 2..]).await.unwrap();
    let answer = read_to_close(&mut inflight).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let status = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "exit {:?}: {stderr}", status.status);
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(stderr.contains("stopping workers after their current batch"), "{stderr}");
    stack.stop().await.unwrap();
}

/// One sample of the Prometheus text `GET /metrics` answered: `name{labels}` exactly as printed (0 when
/// absent, as Prometheus reads a series not yet seen).
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0, |v| v.parse().unwrap())
}

async fn get(stack: &Stack, path: &str) -> (u16, String) {
    let reply = reqwest::get(format!("{}{path}", stack.server_url)).await.unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_story_count_deliveries_changes_echoes_conflicts_and_upstream_calls() {
    use campbridge_simulators::{basecamp as bc_sim, jira as jira_sim};
    let stack = start("metrics", |o| o.reconcile_every = "off").await;
    let (bc_before, jira_before) = (stack.basecamp.calls().total(), stack.jira.calls().total());
    // The story (every wait reads the simulators directly, so every API call counted is the server's):
    // a to-do is created and paired, renamed, retitled on both sides (a conflict), done in Jira; another
    // goes to a list the route does not take.
    let sprint = stack.list("Sprint 1").await.unwrap();
    let write = |title: &str| bc_sim::TodoWrite { content: Some(title.into()), ..Default::default() };
    let todo = stack.basecamp.create_todo(sprint, write("Fix login redirect"), bc_sim::ANNIE).await.unwrap();
    let key = stack.wait_issue(todo).await.unwrap()["key"].as_str().unwrap().to_owned();
    stack.settle().await.unwrap();
    let rename = bc_sim::TodoEdit { content: Some("Fix login redirect on Safari".into()), ..Default::default() };
    stack.basecamp.edit_todo(todo, rename, bc_sim::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    stack.edit_title_on_both_sides(todo, &key, "PM title", "Dev title").await.unwrap();
    stack.jira.transition_issue(&key, "Done", jira_sim::JARED).await.unwrap();
    stack.settle().await.unwrap();
    let backlog = stack.list("Backlog").await.unwrap();
    stack.basecamp.create_todo(backlog, write("Update the brochure"), bc_sim::ANNIE).await.unwrap();
    stack.settle().await.unwrap();
    assert_eq!(stack.basecamp.record("todos", todo).await.unwrap()["completed"], true);

    let (status, text) = get(&stack, "/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE campbridge_deliveries_total counter"), "{text}");
    for source in ["basecamp", "jira"] {
        let accepted =
            sample(&text, &format!("campbridge_deliveries_total{{source=\"{source}\",outcome=\"accepted\"}}"));
        assert!(accepted > 0, "{source} deliveries: {text}");
    }
    // One pair created; the to-do in the unrouted list filtered, not created.
    assert_eq!(sample(&text, "campbridge_changes_total{kind=\"created\"}"), 1, "{text}");
    assert!(sample(&text, "campbridge_changes_total{kind=\"updated\"}") >= 3, "rename, conflict, done: {text}");
    assert_eq!(sample(&text, "campbridge_skips_total{reason=\"filtered\"}"), 1, "{text}");
    // Echoes: the same count as the server's own tally.
    let echoes = stack.stats.echoes.load(Ordering::Relaxed) as u64;
    assert!(echoes > 0);
    assert_eq!(sample(&text, "campbridge_echoes_total"), echoes, "{text}");
    assert_eq!(sample(&text, "campbridge_conflicts_total"), 1, "{text}");
    // What it costs: every request the simulators answered came from this server.
    let jira_calls = stack.jira.calls().total() - jira_before;
    let bc_calls = stack.basecamp.calls().total() - bc_before;
    assert_eq!(sample(&text, "campbridge_upstream_calls_total{service=\"jira\"}"), jira_calls, "{text}");
    assert_eq!(sample(&text, "campbridge_upstream_calls_total{service=\"basecamp\"}"), bc_calls, "{text}");
    assert_eq!(sample(&text, "campbridge_upstream_throttled_total{service=\"basecamp\"}"), 0, "{text}");
    // Latency: one observation per delivery synced; the queue is empty and nothing failed or died.
    let synced = ["created", "updated", "recorded"]
        .iter()
        .map(|k| sample(&text, &format!("campbridge_changes_total{{kind=\"{k}\"}}")))
        .sum::<u64>();
    assert!(sample(&text, "campbridge_sync_latency_seconds_count") >= synced, "{text}");
    assert_eq!(sample(&text, "campbridge_queue_depth"), 0, "{text}");
    assert_eq!(sample(&text, "campbridge_dead_letters"), 0, "{text}");
    assert_eq!(sample(&text, "campbridge_failed_total"), 0, "{text}");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_names_the_store_and_queue_when_the_database_is_gone_and_recovers_when_it_is_back() {
    let stack = start("health", |o| o.reconcile_every = "off").await;
    assert_eq!(get(&stack, "/healthz").await, (200, "ok".to_owned()));
    // The database file disappears (a volume unmounted, a file moved away): the server's open connection
    // still works, but nothing new reaches the store.
    let db = stack_db(&stack);
    let aside = db.with_extension("aside");
    std::fs::rename(&db, &aside).unwrap();
    let (status, body) = get(&stack, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "unhealthy");
    let down: Vec<&str> = body["down"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert_eq!(down.len(), 2, "{down:?}");
    assert!(down[0].starts_with("store: cannot open") && down[0].contains("campbridge.db"), "{down:?}");
    assert!(down[1].starts_with("queue: cannot open"), "{down:?}");
    std::fs::rename(&aside, &db).unwrap();
    assert_eq!(get(&stack, "/healthz").await, (200, "ok".to_owned()));
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_ready_while_serving_and_draining_during_the_drain_delay() {
    let limits = Limits { drain_delay: Duration::from_secs(2), ..Limits::default() };
    let stack = start("ready", |o| {
        o.reconcile_every = "off";
        o.limits = limits;
    })
    .await;
    let server_url = stack.server_url.clone();
    assert_eq!(get(&stack, "/readyz").await, (200, "ready".to_owned()));
    assert_eq!(get(&stack, "/healthz").await, (200, "ok".to_owned()));
    let stopping = tokio::spawn(stack.stop());
    // During the drain delay new connections are still served: not ready, but alive.
    let mut answers = Vec::new();
    for _ in 0..40 {
        let reply = reqwest::get(format!("{server_url}/readyz")).await.unwrap();
        answers.push((reply.status().as_u16(), reply.text().await.unwrap()));
        if answers.last().is_some_and(|(s, _)| *s == 503) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(answers.last(), Some(&(503, "draining".to_owned())), "{answers:?}");
    let health = reqwest::get(format!("{server_url}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "draining is not unhealthy");
    tokio::time::timeout(HUNG, stopping).await.unwrap().unwrap().unwrap();
    assert!(reqwest::get(format!("{server_url}/readyz")).await.is_err(), "closed after the delay");
}
