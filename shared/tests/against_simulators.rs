//! The real API clients against the stateful simulators in `tests/simulators` (one test binary):
//! the client contract scenarios, every port method the engine uses end to end, OAuth refresh,
//! rate limits, the reconciler end to end, and the faithfulness check that simulator responses carry
//! the fixtures' keys and deserialize into the clients' own types.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "against_simulators/basecamp.rs"]
mod basecamp;
#[path = "against_simulators/bitbucket.rs"]
mod bitbucket;
#[path = "against_simulators/contract.rs"]
mod contract;
#[path = "against_simulators/jira.rs"]
mod jira;
#[path = "against_simulators/reconcile.rs"]
mod reconcile;
#[path = "against_simulators/support.rs"]
mod support;
