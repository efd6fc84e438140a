//! The `campbridge` command's library: local mode (wiring, the HTTP server and workers, the demo) and
//! the operator commands. Thin over `shared`, which holds every rule.

pub mod config_cmd;
pub mod demo;
pub mod ops;
pub mod server;
pub mod wiring;
