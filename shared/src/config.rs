//! `campbridge.toml`.
