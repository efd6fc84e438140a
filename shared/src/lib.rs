//! campbridge's library: everything the Lambda functions and the `campbridge` command share.
//!
//! - [`domain`]: identifiers, normalized records, pairs, jobs and route rules (pure).
//! - [`sync`]: the engine — a pure `decide` and an executor that applies its plan through the ports.
//! - [`ports`]: one trait per external capability, with written contracts.
//! - [`adapters`]: memory and SQLite implementations of the storage ports.
//! - [`config`]: `campbridge.toml`, validated with line-numbered errors.

pub mod adapters;
pub mod clients;
pub mod config;
pub mod doctor;
pub mod domain;
pub mod ingest;
pub mod ports;
pub mod richtext;
pub mod sync;
pub mod webhook;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
