//! Basecamp client.
