//! Adapters for the storage ports, named after their technology.

pub mod memory;
pub mod sqlite;
