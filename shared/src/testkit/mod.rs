//! Test support shared with other packages' tests (feature `testkit`): record builders, in-memory
//! upstream fakes and the port contract suite.

use chrono::{DateTime, TimeZone, Utc};

use crate::domain::{ProjectId, Todo, TodoId, TodolistId};

/// The project every builder uses.
pub const PROJECT: ProjectId = ProjectId(2_085_958_505);

/// A fixed instant for tests (2026-07-20T12:00:00Z) plus `secs`.
pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_784_548_800 + secs, 0).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// An active, open, unassigned to-do in list "Sprint 1" of [`PROJECT`].
pub fn todo(id: i64, title: &str) -> Todo {
    Todo {
        id: TodoId(id),
        project: PROJECT,
        project_name: "The Leto Laptop & Co".into(),
        todolist: TodolistId(1_069_480_012),
        todolist_name: "Sprint 1".into(),
        title: title.into(),
        description: String::new(),
        completed: false,
        assignees: Vec::new(),
        due_on: None,
        creator_name: "Annie Bryan".into(),
        app_url: format!("https://3.basecamp.com/195539477/buckets/{}/todos/{id}", PROJECT.0),
        updated_at: at(0),
        artifacts: Vec::new(),
        active: true,
    }
}

pub mod contract;
pub mod fakes;
