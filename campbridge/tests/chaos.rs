//! The chaos convergence harness on SQLite (`tests/harness`): people editing both sides through the
//! simulators while deliveries are duplicated, reordered and delayed, upstreams answer 5xx and 429, and
//! the mapper process is killed at every step boundary and restarted on the same store; afterwards every
//! record must hold what its owner rule says, with nothing duplicated, lost, echoed or dead-lettered.
//! `make test` runs a short slice; `make chaos` the full 10,000-event run. Also the two weather tests:
//! a sustained 429 storm and a 60-second outage leave no dead letter and converge.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test set-up panics on failure by design

mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::world::{Backend, ScaledClock};
use harness::{Scale, assert_holds, chaos, outage, storm, weather};

fn sqlite(name: &str) -> impl FnOnce(Arc<ScaledClock>) -> Backend {
    let dir = campbridge::demo::fresh_dir(&std::env::temp_dir().join("campbridge-chaos"), name);
    move |clock| Backend::sqlite(&dir, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_every_record_converges_with_nothing_duplicated_lost_echoed_or_dead_lettered() {
    let scale = Scale::from_env(600, 40);
    let report = chaos(&scale, sqlite("chaos")).await;
    assert_holds(&report);
    for step in harness::crash::Step::ALL {
        let n = report.crashes_by_step.get(step.name()).copied().unwrap_or(0);
        assert!(n > 0, "the process was never killed at {}:\n{}", step.name(), report.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_429_storm_leaves_no_dead_letter_and_converges() {
    let scale = Scale::from_env(150, 12);
    let report = weather("429 storm", &scale, storm(), Duration::from_secs(180), sqlite("storm")).await;
    assert_holds(&report);
    assert!(report.max_attempt >= 5, "a job met five 429s in a row (dead-lettered before 0008):\n{}", report.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_second_upstream_outage_leaves_no_dead_letter_and_converges() {
    let scale = Scale::from_env(150, 12);
    let report = weather("60-second outage", &scale, outage(), Duration::from_secs(60), sqlite("outage")).await;
    assert_holds(&report);
    assert!(
        report.max_attempt >= 5,
        "a job was postponed five times in a row (dead-lettered before 0008):\n{}",
        report.text
    );
}
