//! The domain: identifiers, normalized records, pairs, jobs and route rules. No I/O.

mod digest;
mod ids;
mod job;
mod model;
mod pair;
mod route;
mod signal_key;
mod states;
mod target;

pub use digest::digest;
pub use ids::*;
pub use job::*;
pub use model::*;
pub use pair::*;
pub use route::*;
pub use signal_key::*;
pub use states::*;
pub use target::*;
