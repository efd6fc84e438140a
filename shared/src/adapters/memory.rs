//! In-memory adapters (unit tests, benchmarks).
