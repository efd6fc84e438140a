//! Stateful simulators of the Basecamp, Jira Cloud and Bitbucket Cloud APIs for campbridge's tests
//! and demo. Each one serves JSON shaped like the real payloads in `tests/fixtures/`, enforces the
//! quirks the sync must survive (rate limits, full-replacement PUTs, ADF, transitions, signed and
//! unsigned webhooks), counts calls per endpoint and takes faults and "act as a person" commands
//! through a control API under `/_control/…` and equivalent Rust methods.
//!
//! The simulators deliberately do not depend on the `shared` crate: they model the services, not
//! campbridge's view of them.

pub mod basecamp;
pub mod bitbucket;
pub mod common;
pub mod jira;

pub use common::{Calls, DeliveryRecord, Faults, Forced429, SimError, WebhookFaults};
