//! Per-endpoint request counting. An endpoint is `METHOD pattern`, e.g. `PUT /todos/{id}.json`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// A snapshot of the request counts, keyed by `METHOD pattern`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Calls(pub BTreeMap<String, u64>);

impl Calls {
    /// Requests counted for `METHOD pattern` (0 when never called).
    pub fn count(&self, method: &str, pattern: &str) -> u64 {
        self.0.get(&format!("{method} {pattern}")).copied().unwrap_or(0)
    }

    /// Requests counted for every endpoint.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Requests counted for endpoints whose key contains `needle`.
    pub fn matching(&self, needle: &str) -> u64 {
        self.0.iter().filter(|(key, _)| key.contains(needle)).map(|(_, n)| n).sum()
    }
}

/// Shared counter; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    /// Counts one request to `METHOD pattern`.
    pub fn record(&self, method: &str, pattern: &str) {
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *map.entry(format!("{method} {pattern}")).or_default() += 1;
    }

    /// The current counts.
    pub fn snapshot(&self) -> Calls {
        Calls(self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }

    /// Forgets every count.
    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}
