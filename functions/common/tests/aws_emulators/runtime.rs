//! Every function on cargo-lambda's runtime emulator: `cargo lambda invoke <function> --data-file
//! events/<function>/<event>` for each envelope in events/, asserting the response, what the queue
//! holds afterwards and, for the mapper, the issues Jira holds. A new function is new rows in [`CASES`]
//! (and its envelopes in events/).
//!
//! The rows run in order in one world, so later rows see what earlier ones did: the mapper's batches
//! share delivery ids (a delivery already applied is acknowledged again and changes nothing), and the
//! reconciler's second run finds the cursors its first run stored in the table.

use std::collections::BTreeSet;

use serde_json::Value;
use shared::domain::Queued;

use crate::world::World;

/// One envelope, what the function must answer, and the jobs it must leave on the queue.
struct Case {
    function: &'static str,
    /// A file in events/<function>/.
    event: &'static str,
    /// How often it is invoked (2 = a retried delivery); every answer must match.
    times: usize,
    /// What the response must contain, as JSON: objects match when every expected key matches, other
    /// values when equal. A function URL response's `body` is compared parsed.
    response: &'static str,
    /// The jobs on the queue afterwards, as (kind, message group, delivery = deduplication id).
    queued: &'static [(&'static str, &'static str, &'static str)],
    /// How many issues Jira holds afterwards (`None`: not looked at).
    jira_issues: Option<usize>,
}

const CASES: &[Case] = &[
    Case {
        function: "basecamp-webhook",
        event: "todo-completed.json",
        times: 2,
        response: r#"{"statusCode": 202, "body": {"status": "accepted", "delivery": "basecamp:1052473966"}}"#,
        queued: &[("todo_changed", "bc-todo-1069480405", "basecamp:1052473966")],
        jira_issues: None,
    },
    Case {
        function: "basecamp-webhook",
        event: "wrong-token.json",
        times: 1,
        response: r#"{"statusCode": 404, "body": {"error": "not found"}}"#,
        queued: &[],
        jira_issues: None,
    },
    Case {
        function: "basecamp-webhook",
        event: "message-created.json",
        times: 1,
        response: r#"{"statusCode": 202, "body": {"status": "ignored"}}"#,
        queued: &[],
        jira_issues: None,
    },
    Case {
        function: "jira-webhook",
        event: "issue-updated.json",
        times: 1,
        response: r#"{"statusCode": 202, "body": {"status": "accepted", "delivery": "jira:1a2b3c4d-0000-4000-8000-00000000000a"}}"#,
        queued: &[("issue_changed", "jira-issue-10040", "jira:1a2b3c4d-0000-4000-8000-00000000000a")],
        jira_issues: None,
    },
    Case {
        function: "jira-webhook",
        event: "bad-signature.json",
        times: 1,
        response: r#"{"statusCode": 401, "body": {"error": "bad signature"}}"#,
        queued: &[],
        jira_issues: None,
    },
    Case {
        function: "jira-webhook",
        event: "issue-updated-unrouted.json",
        times: 1,
        response: r#"{"statusCode": 202, "body": {"status": "ignored"}}"#,
        queued: &[],
        jira_issues: None,
    },
    Case {
        function: "bitbucket-webhook",
        event: "pullrequest-created.json",
        times: 1,
        response: r#"{"statusCode": 202, "body": {"status": "accepted", "delivery": "bitbucket:2f4e1c9a-1111-4a2b-9c3d-000000000001"}}"#,
        queued: &[(
            "pull_request_changed",
            "bb-pr-amuniz-test-repos-735",
            "bitbucket:2f4e1c9a-1111-4a2b-9c3d-000000000001",
        )],
        jira_issues: None,
    },
    Case {
        function: "bitbucket-webhook",
        event: "bad-signature.json",
        times: 1,
        response: r#"{"statusCode": 401, "body": {"error": "bad signature"}}"#,
        queued: &[],
        jira_issues: None,
    },
    Case {
        function: "bitbucket-webhook",
        event: "repo-push.json",
        times: 1,
        response: r#"{"statusCode": 202, "body": {"status": "ignored"}}"#,
        queued: &[],
        jira_issues: None,
    },
    // The mapper, on the two to-dos the batches name. Every message fine: one issue per to-do, nothing
    // reported; the same batch again (a retried invocation) is acknowledged and creates nothing.
    Case {
        function: "sync-mapper",
        event: "todo-burst.json",
        times: 2,
        response: r#"{"batchItemFailures": []}"#,
        queued: &[],
        jira_issues: Some(2),
    },
    // The poison message (an unknown wire version) is the only one reported.
    Case {
        function: "sync-mapper",
        event: "batch-with-poison.json",
        times: 1,
        response: r#"{"batchItemFailures": [{"itemIdentifier": "5fea7756-0ea4-451a-a703-a558b933e272"}]}"#,
        queued: &[],
        jira_issues: Some(2),
    },
    // A job for a route the deployment no longer has fails (reported: it comes back first in its group);
    // the later job of its to-do is put back behind it as a fresh copy (FIFO order, without counting a
    // receive against it); the other to-do's group goes ahead.
    Case {
        function: "sync-mapper",
        event: "failing-group.json",
        times: 1,
        response: r#"{"batchItemFailures": [{"itemIdentifier": "5fea7756-0ea4-451a-a703-a558b933e271"}]}"#,
        queued: &[("todo_changed", "bc-todo-9007199254750007", "basecamp:1052473012")],
        jira_issues: Some(2),
    },
    // The reconciler's first run stores its cursors and turns our deactivated webhook back on.
    Case {
        function: "reconciler",
        event: "scheduled.json",
        times: 1,
        response: r#"{"basecamp": {"initialized": true}, "jira": {"initialized": true}, "webhooks": {"ours": 1, "reenabled": 1, "missing": 0}, "pending_retried": 0, "failures": []}"#,
        queued: &[],
        jira_issues: None,
    },
    // The next run polls from those cursors: it lists the two to-dos and their issues, which the mapper
    // has already synced, so it enqueues nothing.
    Case {
        function: "reconciler",
        event: "scheduled.json",
        times: 1,
        response: r#"{"basecamp": {"initialized": false, "gap": false, "seen": 2, "up_to_date": 2, "enqueued": 0}, "jira": {"initialized": false, "seen": 2, "up_to_date": 2, "enqueued": 0}, "webhooks": {"ours": 1, "reenabled": 0}, "failures": []}"#,
        queued: &[],
        jira_issues: Some(2),
    },
];

/// `expected` ⊆ `actual`: every key of an expected object matches; anything else is equal.
fn includes(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e.iter().all(|(k, v)| a.get(k).is_some_and(|av| includes(av, v))),
        _ => actual == expected,
    }
}

/// The response with a JSON `body` string parsed, so it can be matched field by field.
fn parsed_body(mut response: Value) -> Value {
    if let Some(body) = response.get("body").and_then(Value::as_str).and_then(|b| serde_json::from_str(b).ok()) {
        response["body"] = body;
    }
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_answers_its_events_and_enqueues_exactly_what_it_accepted() {
    let functions: BTreeSet<&str> = CASES.iter().map(|c| c.function).collect();
    let Some(mut world) = World::start(&functions.into_iter().collect::<Vec<_>>()).await else { return };
    let todos = world.create_todos(&["Checkout button is hidden on mobile", "Receipts show the wrong VAT"]).await;
    assert_eq!(
        todos,
        [9_007_199_254_750_007, 9_007_199_254_750_009],
        "the sync-mapper's events name the first two to-dos"
    );
    world.register_deactivated_webhook().await;
    for case in CASES {
        let what = format!("{} with events/{}/{}", case.function, case.function, case.event);
        let expected: Value = serde_json::from_str(case.response).unwrap();
        if case.function == "reconciler" {
            // Jira's search index lags behind writes (the simulator's too): the reconciler's overlap catches
            // up with it on a later pass; here the pass is asserted once the index has caught up.
            world.jira.refresh_index().await;
        }
        for attempt in 1..=case.times {
            let response = parsed_body(world.invoke(case.function, case.event).await);
            assert!(includes(&response, &expected), "{what} (invocation {attempt}) answered {response:#}");
        }
        let queued: Vec<(String, String, String)> = world
            .take_queued()
            .await
            .into_iter()
            .map(|m| {
                let queued =
                    Queued::from_wire(&m.body).unwrap_or_else(|e| panic!("{what} enqueued an unreadable job: {e}"));
                let job = queued.job;
                match queued.retry {
                    // A receiver's job is deduplicated by its delivery id.
                    None => assert_eq!(m.deduplication, job.delivery().as_str(), "{what}: deduplicated by delivery"),
                    // The mapper's copy must not be: the original's id is still in SQS's deduplication window.
                    Some(_) => {
                        assert_ne!(m.deduplication, job.delivery().as_str(), "{what}: a copy is not a duplicate")
                    }
                }
                (job.kind().to_owned(), m.group, job.delivery().as_str().to_owned())
            })
            .collect();
        let expected: Vec<(String, String, String)> =
            case.queued.iter().map(|(k, g, d)| ((*k).to_owned(), (*g).to_owned(), (*d).to_owned())).collect();
        assert_eq!(queued, expected, "{what}: the queue afterwards");
        if let Some(expected) = case.jira_issues {
            assert_eq!(world.jira_issues().await, expected, "{what}: the issues in Jira afterwards");
        }
    }
}
