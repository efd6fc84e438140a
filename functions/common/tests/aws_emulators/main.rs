//! The Lambda functions against the emulators (DynamoDB Local, moto) and the API simulators: each
//! function's binary on cargo-lambda's runtime emulator with the envelopes in events/ ([`runtime`]),
//! and local mode's story replayed on the AWS adapters ([`story`]). [`world`] builds a fresh deployment
//! per test. [`rehearsal`] deploys the SAM template itself on moto with IAM enforced and runs the
//! functions under their own roles ([`proxy`], [`iam`]).
//!
//! `make test-aws` builds the functions with this test, starts the emulators on loopback inside a
//! private network namespace (scripts/emulators.sh) and runs it there. Without the emulators' endpoints
//! (a plain `cargo test`) each test prints that it did not run and returns; with
//! `CAMPBRIDGE_REQUIRE_EMULATORS=1` a missing endpoint fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod iam;
mod proxy;
mod rehearsal;
mod runtime;
mod story;
mod world;
