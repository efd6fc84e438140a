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
        status: crate::domain::RecordingStatus::Active,
    }
}

pub mod contract;
pub mod fakes;

use crate::domain::TrackerTarget;
use crate::domain::{
    ConflictPolicy, DescriptionTemplate, Filter, Glob, JiraAccountId, JiraProjectKey, ListMapping, Owner, Ownership,
    PersonId, Route, RouteId, StatusStrategy, TitleTemplate, User, UserTable,
};

/// Jane (Basecamp 1049715930 ⇄ Jira `acc-jane`), Ana (1049715913 ⇄ `acc-ana`), Tri the triage account.
pub fn users() -> UserTable {
    let user = |name: &str, bc: i64, jira: &str| User {
        name: name.into(),
        basecamp: Some(PersonId(bc)),
        jira: Some(JiraAccountId(jira.into())),
    };
    UserTable {
        users: vec![
            user("Jane Cole", 1_049_715_930, "acc-jane"),
            user("Ana Diaz", 1_049_715_913, "acc-ana"),
            user("Tri Age", 1_049_715_999, "acc-triage"),
        ],
    }
}

/// Route `web`: project [`PROJECT`] → Jira `WEB`, lists `Sprint *` and `Bugs`, `Bugs` labelled `bug`,
/// triage `acc-triage`, title `both`, assignee `basecamp`, dev-owned status, last-writer-wins.
#[allow(clippy::unwrap_used)] // constant inputs that always parse; test support only
pub fn route() -> Route {
    Route {
        id: RouteId("web".into()),
        project: PROJECT,
        target: TrackerTarget::Jira { project: JiraProjectKey::parse("WEB").unwrap(), issue_type: "Task".into() },
        code: "WEB".into(),
        title: TitleTemplate::parse(TitleTemplate::DEFAULT, "WEB").unwrap(),
        description: DescriptionTemplate::default(),
        filter: Filter { todolists: vec![Glob::new("Sprint *"), Glob::new("Bugs")], marker: None },
        lists: vec![ListMapping {
            list: Glob::new("Bugs"),
            labels: vec!["bug".into()],
            components: vec!["Web".into()],
        }],
        escalation_label: "escalated".into(),
        triage: Some(JiraAccountId("acc-triage".into())),
        ownership: Ownership { title: Owner::Both, assignee: Owner::Basecamp },
        status: StatusStrategy::DevOwned,
        conflict_policy: ConflictPolicy::LastWriterWins,
        dev_comment_prefix: Some("DEV:".into()),
        pm_comment_prefix: Some("PM:".into()),
        build_signals: crate::domain::BuildSignals::FailedOnly,
        complete_on_merge: false,
        default_priority: crate::domain::Priority::Medium,
        create_fields: Default::default(),
        webhook_token: None,
    }
}
pub mod world;
