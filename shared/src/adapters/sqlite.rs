//! SQLite adapters: the embedded default.
