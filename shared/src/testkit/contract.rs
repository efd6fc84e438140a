//! The port contract suite: every adapter of a port passes the same tests.
