//! Ports: one small trait per external capability. Use cases take `&dyn Trait`; adapters live in
//! [`crate::adapters`] (memory and SQLite here, DynamoDB/SQS/Secrets Manager beside them) and all pass
//! the same contract suite (`testkit` (feature `testkit`)).

mod polling;
mod store;
mod upstream;

pub use polling::*;
pub use store::*;
pub use upstream::*;
