//! JSON helpers: parsing the embedded fixtures used as response templates, and key-set views.

use serde_json::{Map, Value};

/// Parses an embedded fixture. The fixtures are checked in and parsed by tests, so a failure here is
/// a build defect; it degrades to `null` rather than panicking on a request path.
pub fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// The object behind `value`, or an empty one.
pub fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The first element of an array fixture, or `null`.
pub fn first(value: Value) -> Value {
    match value {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        _ => Value::Null,
    }
}

/// Keeps only the keys of `map` that `template` also has (used to thin full records down to the
/// shapes webhooks carry).
pub fn only_keys_of(map: &Map<String, Value>, template: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Value::Object(keys) = template {
        for key in keys.keys() {
            if let Some(value) = map.get(key) {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out
}

/// Current time as `2026-07-21T01:05:29.829Z` (Basecamp, Bitbucket style).
pub fn now_utc_millis() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
