//! Client tests against a scripted local server serving the real fixture bodies. Every test builds its
//! client from a base URL only, so the same scenarios can be pointed at the API simulators.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod basecamp;
mod basecamp_conformance;
mod bitbucket;
mod contract;
mod jira;
mod server;
