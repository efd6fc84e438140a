//! Jira's records and rules: issues with a three-status workflow, v3 field validation (ADF,
//! required summary, assignability), comments, remote links upserted by `globalId`, entity
//! properties and admin webhooks. Every change returns the webhook events it fires.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::adf;

/// A Jira error answer (`ErrorCollection`).
#[derive(Clone, Debug)]
pub struct JiraError(pub StatusCode, pub Value);

impl JiraError {
    /// 400 with a per-field error.
    pub fn field(field: &str, message: &str) -> Self {
        Self(StatusCode::BAD_REQUEST, json!({"errorMessages": [], "errors": {field: message}}))
    }
    /// An error with top-level messages.
    pub fn messages(status: StatusCode, message: &str) -> Self {
        Self(status, json!({"errorMessages": [message], "errors": {}}))
    }
    /// 404 for an issue.
    pub fn no_issue() -> Self {
        Self::messages(StatusCode::NOT_FOUND, "Issue does not exist or you do not have permission to see it.")
    }
}

/// The exact v3 answer to a plain-string rich-text value.
pub const ADF_REQUIRED: &str = "Operation value must be an Atlassian Document (see the Atlassian Document Format)";

/// Jira's answer to a rich-text value over [`adf::MAX_RICH_TEXT`].
pub const TOO_LONG: &str = "The entered text is too long. It exceeds the allowed limit of 32,767 characters.";

/// Checks a v3 rich-text value for `field` the way Jira does: a document (a string is refused with
/// [`ADF_REQUIRED`]), valid against Atlassian's ADF schema (else `INVALID_INPUT`), within the length limit.
pub fn check_rich_text(field: &str, value: &Value) -> Result<(), JiraError> {
    if !adf::is_doc(value) {
        return Err(JiraError::field(field, ADF_REQUIRED));
    }
    if let Err(why) = adf::validate(value) {
        tracing::info!(field, why, "refused a document the ADF schema does not accept");
        return Err(JiraError::field(field, "INVALID_INPUT"));
    }
    if adf::stored_length(value) > adf::MAX_RICH_TEXT {
        return Err(JiraError::field(field, TOO_LONG));
    }
    Ok(())
}

/// Longest label, summary and remote-link `globalId` Jira takes.
pub const MAX_SHORT_TEXT: usize = 255;

/// Statuses: (id, name, category key, category id, colour).
pub const STATUSES: [(&str, &str, &str, u8, &str); 3] = [
    ("10100", "To Do", "new", 2, "blue-gray"),
    ("3", "In Progress", "indeterminate", 4, "yellow"),
    ("10101", "Done", "done", 3, "green"),
];
pub const TO_DO: usize = 0;
pub const IN_PROGRESS: usize = 1;
pub const DONE: usize = 2;

/// A workflow edge.
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    pub id: &'static str,
    pub name: &'static str,
    pub from: &'static [usize],
    pub to: usize,
}

/// The workflow: To Do ⇄ In Progress → Done, To Do → Done (unless strict), Done → To Do (Reopen).
pub const EDGES: [Edge; 4] = [
    Edge { id: "11", name: "To Do", from: &[IN_PROGRESS], to: TO_DO },
    Edge { id: "21", name: "In Progress", from: &[TO_DO], to: IN_PROGRESS },
    Edge { id: "31", name: "Done", from: &[TO_DO, IN_PROGRESS], to: DONE },
    Edge { id: "41", name: "Reopen", from: &[DONE], to: TO_DO },
];

/// Priorities (id, name).
pub const PRIORITIES: [(&str, &str); 5] =
    [("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"), ("5", "Lowest")];

/// Resolutions (id, name).
pub const RESOLUTIONS: [(&str, &str); 4] =
    [("10000", "Done"), ("10001", "Won't Do"), ("10002", "Duplicate"), ("10003", "Cannot Reproduce")];

/// Runtime-switchable behaviour.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// How long a write takes to reach `/search/jql` (Jira's index lags: "recent updates might not be
    /// immediately visible"); until then searches see the issue as it was, or not at all. On by default.
    pub search_lag_ms: u64,
    /// The Done transition has a screen requiring `fields.resolution`.
    pub require_resolution: bool,
    /// To Do → Done is not allowed directly (must pass In Progress).
    pub strict_workflow: bool,
    /// Account ids that cannot be assigned issues.
    pub unassignable: BTreeSet<String>,
    /// Answer assignments of unassignable users with 403 instead of 400.
    pub unassignable_forbidden: bool,
    /// The next N issue creations are stored and then answered 500, as when the connection breaks
    /// after Jira committed the write (the client cannot know the issue exists).
    pub lose_create_responses: u32,
    /// Custom fields the create screen requires (field id → name, e.g. `customfield_10050` → `Team`).
    pub create_required: BTreeMap<String, String>,
    /// Fields left off the create screen (e.g. `duedate`): setting one on create is refused.
    pub create_absent: BTreeSet<String>,
    /// Fields left off the edit screen: setting one by an edit is refused, naming every such field.
    pub edit_absent: BTreeSet<String>,
    /// Jira's per-issue write limit: more writes to one issue than this within the window → 429 with
    /// `RateLimit-Reason: jira-per-issue-on-write` and `Retry-After`. Off unless set.
    pub per_issue_writes: Option<RateWindow>,
    /// The per-second burst limit per endpoint and method → 429 `jira-burst-based`. Off unless set.
    pub burst: Option<RateWindow>,
}

/// `requests` per `window_ms`; a refused request is told to come back after `retry_after_secs`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct RateWindow {
    pub requests: u32,
    pub window_ms: u64,
    pub retry_after_secs: u64,
}

/// The fields on the seeded create screen: (id, name, required). `project`, `issuetype` and `summary` are
/// required, as on every Jira create screen.
pub const CREATE_SCREEN: [(&str, &str, bool); 11] = [
    ("project", "Project", true),
    ("issuetype", "Issue Type", true),
    ("summary", "Summary", true),
    ("description", "Description", false),
    ("reporter", "Reporter", false),
    ("assignee", "Assignee", false),
    ("priority", "Priority", false),
    ("labels", "Labels", false),
    ("components", "Components", false),
    ("duedate", "Due date", false),
    ("customfield_10021", "Flagged", false),
];

/// The search-index lag every simulator starts with: about what Jira Cloud shows on a quiet site.
pub const DEFAULT_SEARCH_LAG_MS: u64 = 1_000;

impl Default for Config {
    fn default() -> Self {
        Self {
            search_lag_ms: DEFAULT_SEARCH_LAG_MS,
            require_resolution: false,
            strict_workflow: false,
            unassignable: BTreeSet::new(),
            unassignable_forbidden: false,
            lose_create_responses: 0,
            create_required: BTreeMap::new(),
            create_absent: BTreeSet::new(),
            edit_absent: BTreeSet::new(),
            per_issue_writes: None,
            burst: None,
        }
    }
}

/// A user.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub account_id: String,
    pub display_name: String,
    pub email: String,
    /// Whether the profile shows the e-mail address.
    pub email_visible: bool,
    pub time_zone: String,
}

/// A project.
#[derive(Clone, Debug, Serialize)]
pub struct Project {
    pub id: String,
    pub key: String,
    pub name: String,
    pub components: Vec<(String, String)>,
    pub next_number: u64,
}

/// A comment.
#[derive(Clone, Debug, Serialize)]
pub struct Comment {
    pub id: u64,
    pub body: Value,
    pub author: String,
    pub update_author: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A remote link.
#[derive(Clone, Debug, Serialize)]
pub struct RemoteLink {
    pub id: u64,
    pub body: Value,
}

/// An issue.
#[derive(Clone, Debug, Serialize)]
pub struct Issue {
    pub id: u64,
    pub key: String,
    pub project_key: String,
    pub issuetype: String,
    pub summary: String,
    pub description: Option<Value>,
    pub status: usize,
    pub resolution: Option<usize>,
    pub resolution_date: Option<DateTime<Utc>>,
    pub status_changed: DateTime<Utc>,
    pub assignee: Option<String>,
    pub reporter: String,
    pub priority: String,
    pub labels: Vec<String>,
    pub components: Vec<String>,
    pub duedate: Option<String>,
    pub flagged: bool,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub comments: Vec<Comment>,
    pub remote_links: Vec<RemoteLink>,
    pub properties: BTreeMap<String, Value>,
    /// Values of custom fields the create screen required.
    pub custom: BTreeMap<String, Value>,
}

impl Issue {
    pub fn status_name(&self) -> &'static str {
        STATUSES[self.status].1
    }
    pub fn status_id(&self) -> &'static str {
        STATUSES[self.status].0
    }
    pub fn status_category(&self) -> &'static str {
        STATUSES[self.status].2
    }
}

/// An admin webhook registered through the control API.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminHook {
    #[serde(default)]
    pub id: u64,
    pub url: String,
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
    /// Subscribed `webhookEvent`s; empty = the issue and comment families.
    #[serde(default)]
    pub events: Vec<String>,
    /// Optional JQL filter.
    #[serde(default)]
    pub jql: Option<String>,
}

/// A webhook-worthy change.
#[derive(Clone, Debug)]
pub struct Event {
    pub webhook_event: &'static str,
    pub type_name: Option<&'static str>,
    pub issue_id: u64,
    pub actor: String,
    pub changelog: Vec<Value>,
    pub comment_id: Option<u64>,
}

/// Everything one Jira simulator holds.
#[derive(Debug)]
pub struct State {
    pub users: Vec<User>,
    pub projects: BTreeMap<String, Project>,
    pub issues: BTreeMap<u64, Issue>,
    pub hooks: BTreeMap<u64, AdminHook>,
    pub config: Config,
    /// What `/search/jql` sees: each issue as of its last write that reached the index.
    pub index: BTreeMap<u64, Issue>,
    /// Writes on their way to the index: (visible from, issue id, the issue then; `None` = deleted).
    pending: Vec<(std::time::Instant, u64, Option<Issue>)>,
    next_issue_id: u64,
    next_id: u64,
    last_ts: DateTime<Utc>,
}

fn item(field: &str, field_id: &str, from: Value, from_s: Value, to: Value, to_s: Value) -> Value {
    // Custom fields say so in the changelog (`"fieldtype": "custom"`); system fields say `jira`.
    let fieldtype = if field_id.starts_with("customfield_") { "custom" } else { "jira" };
    json!({"field": field, "fieldtype": fieldtype, "fieldId": field_id,
           "from": from, "fromString": from_s, "to": to, "toString": to_s})
}

fn opt(text: &Option<String>) -> Value {
    text.clone().map(Value::from).unwrap_or(Value::Null)
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        Self {
            users: Vec::new(),
            projects: BTreeMap::new(),
            issues: BTreeMap::new(),
            hooks: BTreeMap::new(),
            config: Config::default(),
            index: BTreeMap::new(),
            pending: Vec::new(),
            next_issue_id: 10_000,
            next_id: 10_000,
            last_ts: DateTime::<Utc>::MIN_UTC,
        }
    }

    /// A fresh id for comments, links, changelogs and hooks.
    pub fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Strictly increasing timestamps, so `updated` orders every change.
    pub fn tick(&mut self) -> DateTime<Utc> {
        let now = Utc::now().max(self.last_ts + chrono::Duration::milliseconds(1));
        self.last_ts = now;
        now
    }

    /// The user with `account_id`.
    pub fn user(&self, account_id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.account_id == account_id)
    }

    /// Finds an issue by numeric id or (case-insensitive) key.
    pub fn find(&self, id_or_key: &str) -> Option<u64> {
        if let Ok(id) = id_or_key.parse::<u64>() {
            return self.issues.contains_key(&id).then_some(id);
        }
        self.issues.values().find(|i| i.key.eq_ignore_ascii_case(id_or_key)).map(|i| i.id)
    }

    fn issue_mut(&mut self, id: u64) -> Result<&mut Issue, JiraError> {
        self.issues.get_mut(&id).ok_or_else(JiraError::no_issue)
    }

    fn display(&self, account_id: &Option<String>) -> Value {
        account_id
            .as_ref()
            .and_then(|a| self.user(a))
            .map(|u| Value::from(u.display_name.clone()))
            .unwrap_or(Value::Null)
    }

    fn check_assignee(&self, value: &Value) -> Result<Option<String>, JiraError> {
        if value.is_null() {
            return Ok(None);
        }
        let account = value
            .get("accountId")
            .or_else(|| value.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| JiraError::field("assignee", "expected 'accountId' property to be a string"))?;
        if account == "-1" {
            return Ok(None);
        }
        if self.user(account).is_none() {
            return Err(JiraError::field("assignee", &format!("User '{account}' does not exist.")));
        }
        if self.config.unassignable.contains(account) {
            if self.config.unassignable_forbidden {
                return Err(JiraError::messages(StatusCode::FORBIDDEN, "You do not have permission to assign issues."));
            }
            return Err(JiraError::field("assignee", &format!("User '{account}' cannot be assigned issues.")));
        }
        Ok(Some(account.to_owned()))
    }

    fn component_name(&self, project: &str, value: &Value) -> Result<String, JiraError> {
        let components = self.projects.get(project).map(|p| p.components.clone()).unwrap_or_default();
        let found = if let Some(name) = value.get("name").and_then(Value::as_str) {
            components.iter().find(|(_, n)| n.eq_ignore_ascii_case(name))
        } else if let Some(id) = value.get("id").and_then(Value::as_str) {
            components.iter().find(|(i, _)| i == id)
        } else {
            None
        };
        found.map(|(_, n)| n.clone()).ok_or_else(|| {
            let shown = value.get("name").or_else(|| value.get("id")).cloned().unwrap_or(Value::Null);
            JiraError::field("components", &format!("Component name '{}' is not valid", shown.as_str().unwrap_or("?")))
        })
    }

    fn label(value: &Value) -> Result<String, JiraError> {
        let label = value.as_str().ok_or_else(|| JiraError::field("labels", "labels must be strings"))?;
        if label.contains(char::is_whitespace) {
            return Err(JiraError::field("labels", &format!("The label '{label}' contains spaces which is invalid.")));
        }
        if label.is_empty() || label.chars().count() > MAX_SHORT_TEXT {
            return Err(JiraError::field("labels", "A label must be between 1 and 255 characters."));
        }
        Ok(label.to_owned())
    }

    /// Sets one field on `issue` (by id) from a `fields` value, recording changelog items.
    fn set_field(&mut self, id: u64, field: &str, value: &Value, items: &mut Vec<Value>) -> Result<(), JiraError> {
        let project = self.issues.get(&id).map(|i| i.project_key.clone()).unwrap_or_default();
        match field {
            "summary" => {
                let summary = value.as_str().unwrap_or_default().trim().to_owned();
                if summary.is_empty() {
                    return Err(JiraError::field("summary", "You must specify a summary of the issue."));
                }
                if summary.chars().count() > MAX_SHORT_TEXT {
                    return Err(JiraError::field("summary", "Summary can't exceed 255 characters."));
                }
                if summary.contains(['\n', '\r']) {
                    return Err(JiraError::field(
                        "summary",
                        "The summary is invalid because it contains newline characters.",
                    ));
                }
                let issue = self.issue_mut(id)?;
                if issue.summary != summary {
                    items.push(item(
                        "summary",
                        "summary",
                        Value::Null,
                        issue.summary.clone().into(),
                        Value::Null,
                        summary.clone().into(),
                    ));
                    issue.summary = summary;
                }
            }
            "description" => {
                if !value.is_null() {
                    check_rich_text("description", value)?;
                }
                let issue = self.issue_mut(id)?;
                let new = if value.is_null() { None } else { Some(value.clone()) };
                if issue.description != new {
                    let text =
                        |d: &Option<Value>| d.as_ref().map(|d| Value::from(adf::to_text(d))).unwrap_or(Value::Null);
                    items.push(item(
                        "description",
                        "description",
                        Value::Null,
                        text(&issue.description),
                        Value::Null,
                        text(&new),
                    ));
                    issue.description = new;
                }
            }
            "labels" => {
                let labels = value
                    .as_array()
                    .ok_or_else(|| JiraError::field("labels", "labels must be an array"))?
                    .iter()
                    .map(Self::label)
                    .collect::<Result<Vec<_>, _>>()?;
                self.set_labels(id, labels, items)?;
            }
            "components" => {
                let names = value
                    .as_array()
                    .ok_or_else(|| JiraError::field("components", "components must be an array"))?
                    .iter()
                    .map(|c| self.component_name(&project, c))
                    .collect::<Result<Vec<_>, _>>()?;
                self.set_components(id, names, items)?;
            }
            "priority" => {
                let wanted = value.get("name").or_else(|| value.get("id")).and_then(Value::as_str).unwrap_or_default();
                let (pid, name) = PRIORITIES
                    .iter()
                    .find(|(i, n)| *i == wanted || n.eq_ignore_ascii_case(wanted))
                    .ok_or_else(|| JiraError::field("priority", "The priority selected is invalid."))?;
                let issue = self.issue_mut(id)?;
                if issue.priority != *name {
                    let old = PRIORITIES.iter().find(|(_, n)| *n == issue.priority).map(|(i, _)| *i).unwrap_or("3");
                    items.push(item(
                        "priority",
                        "priority",
                        old.into(),
                        issue.priority.clone().into(),
                        (*pid).into(),
                        (*name).into(),
                    ));
                    issue.priority = (*name).to_owned();
                }
            }
            "assignee" => {
                let account = self.check_assignee(value)?;
                let (from_s, to_s) =
                    (self.display(&self.issues.get(&id).and_then(|i| i.assignee.clone())), self.display(&account));
                let issue = self.issue_mut(id)?;
                if issue.assignee != account {
                    let mut entry = item("assignee", "assignee", opt(&issue.assignee), from_s, opt(&account), to_s);
                    entry["tmpFromAccountId"] = opt(&issue.assignee);
                    entry["tmpToAccountId"] = opt(&account);
                    items.push(entry);
                    issue.assignee = account;
                }
            }
            "duedate" => {
                let due = match value {
                    Value::Null => None,
                    Value::String(s) if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => Some(s.clone()),
                    _ => {
                        return Err(JiraError::field(
                            "duedate",
                            "Error parsing date string. Expected format is yyyy-MM-dd.",
                        ));
                    }
                };
                let issue = self.issue_mut(id)?;
                if issue.duedate != due {
                    items.push(item(
                        "duedate",
                        "duedate",
                        opt(&issue.duedate),
                        opt(&issue.duedate),
                        opt(&due),
                        opt(&due),
                    ));
                    issue.duedate = due;
                }
            }
            "customfield_10021" => {
                let flagged = value.as_array().is_some_and(|a| !a.is_empty());
                let issue = self.issue_mut(id)?;
                if issue.flagged != flagged {
                    let show = |f: bool| if f { Value::from("Impediment") } else { Value::Null };
                    items.push(item(
                        "Flagged",
                        "customfield_10021",
                        Value::Null,
                        show(issue.flagged),
                        Value::Null,
                        show(flagged),
                    ));
                    issue.flagged = flagged;
                }
            }
            "project" | "issuetype" | "reporter" => {}
            custom if self.config.create_required.contains_key(custom) => {
                let issue = self.issue_mut(id)?;
                issue.custom.insert(custom.to_owned(), value.clone());
            }
            other => {
                return Err(JiraError::field(
                    other,
                    &format!("Field '{other}' cannot be set. It is not on the appropriate screen, or unknown."),
                ));
            }
        }
        Ok(())
    }

    fn set_labels(&mut self, id: u64, labels: Vec<String>, items: &mut Vec<Value>) -> Result<(), JiraError> {
        let mut labels: Vec<String> = labels.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
        labels.sort();
        let issue = self.issue_mut(id)?;
        if issue.labels != labels {
            items.push(item(
                "labels",
                "labels",
                Value::Null,
                issue.labels.join(" ").into(),
                Value::Null,
                labels.join(" ").into(),
            ));
            issue.labels = labels;
        }
        Ok(())
    }

    fn set_components(&mut self, id: u64, names: Vec<String>, items: &mut Vec<Value>) -> Result<(), JiraError> {
        let names: Vec<String> = names.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
        let issue = self.issue_mut(id)?;
        if issue.components != names {
            items.push(item(
                "Component",
                "components",
                Value::Null,
                issue.components.join(", ").into(),
                Value::Null,
                names.join(", ").into(),
            ));
            issue.components = names;
        }
        Ok(())
    }

    /// Applies `update` verbs (`set`, `add`, `remove`) for one field.
    fn apply_ops(&mut self, id: u64, field: &str, ops: &Value, items: &mut Vec<Value>) -> Result<(), JiraError> {
        let ops = ops.as_array().ok_or_else(|| JiraError::field(field, "update operations must be an array"))?;
        let project = self.issues.get(&id).map(|i| i.project_key.clone()).unwrap_or_default();
        for op in ops {
            let Some((verb, value)) = op.as_object().and_then(|o| o.iter().next()) else { continue };
            match (field, verb.as_str()) {
                (_, "set") => self.set_field(id, field, value, items)?,
                ("labels", "add" | "remove") => {
                    let label = Self::label(value)?;
                    let mut labels = self.issues.get(&id).map(|i| i.labels.clone()).unwrap_or_default();
                    if verb == "add" {
                        labels.push(label);
                    } else {
                        labels.retain(|l| *l != label);
                    }
                    self.set_labels(id, labels, items)?;
                }
                ("components", "add" | "remove") => {
                    let name = self.component_name(&project, value)?;
                    let mut names = self.issues.get(&id).map(|i| i.components.clone()).unwrap_or_default();
                    if verb == "add" {
                        names.push(name);
                    } else {
                        names.retain(|n| *n != name);
                    }
                    self.set_components(id, names, items)?;
                }
                ("comment", "add") => {}
                _ => {
                    return Err(JiraError::field(
                        field,
                        &format!("Operation '{verb}' is not supported for field '{field}'."),
                    ));
                }
            }
        }
        Ok(())
    }

    fn apply_edit(&mut self, id: u64, body: &Value, items: &mut Vec<Value>) -> Result<(), JiraError> {
        let fields = body.get("fields").and_then(Value::as_object).cloned().unwrap_or_default();
        let update = body.get("update").and_then(Value::as_object).cloned().unwrap_or_default();
        if let Some(both) = fields.keys().find(|k| update.contains_key(*k)) {
            return Err(JiraError::field(both, &format!("Field '{both}' cannot be set in both fields and update.")));
        }
        // Validate everything before changing anything: Jira edits are all-or-nothing.
        let snapshot = self.issues.get(&id).cloned().ok_or_else(JiraError::no_issue)?;
        let result = (|| {
            for (field, value) in &fields {
                self.set_field(id, field, value, items)?;
            }
            for (field, ops) in &update {
                self.apply_ops(id, field, ops, items)?;
            }
            Ok(())
        })();
        if result.is_err() {
            self.issues.insert(id, snapshot);
            items.clear();
        }
        result
    }

    /// `POST /rest/api/3/issue`.
    pub fn create_issue(&mut self, body: &Value, actor: &str) -> Result<(u64, Vec<Event>), JiraError> {
        let fields = body.get("fields").and_then(Value::as_object).cloned().unwrap_or_default();
        let project_ref = fields.get("project").cloned().unwrap_or(Value::Null);
        let wanted =
            project_ref.get("key").or_else(|| project_ref.get("id")).and_then(Value::as_str).unwrap_or_default();
        let project_key = self
            .projects
            .values()
            .find(|p| p.key.eq_ignore_ascii_case(wanted) || p.id == wanted)
            .map(|p| p.key.clone())
            .ok_or_else(|| JiraError::field("project", "Specify a valid project ID or key"))?;
        let issuetype =
            fields.get("issuetype").and_then(|v| v.get("name").or_else(|| v.get("id"))).and_then(Value::as_str);
        let issuetype_name = match issuetype {
            None => return Err(JiraError::field("issuetype", "Specify an issue type")),
            Some("10001") => "Task",
            Some("10002") => "Bug",
            Some("10003") => "Story",
            Some(name) => ["Task", "Bug", "Story"]
                .into_iter()
                .find(|t| t.eq_ignore_ascii_case(name))
                .ok_or_else(|| JiraError::field("issuetype", "The issue type selected is invalid."))?,
        }
        .to_owned();
        let summary_given = fields.get("summary").and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty());
        if !summary_given {
            return Err(JiraError::messages(StatusCode::BAD_REQUEST, "Field 'summary' is required"));
        }
        // The create screen: what it lacks cannot be set, what it requires must be given (all errors at once).
        let mut screen_errors = Map::new();
        for key in fields.keys() {
            let on_screen =
                CREATE_SCREEN.iter().any(|(id, _, _)| id == key) || self.config.create_required.contains_key(key);
            if !on_screen || self.config.create_absent.contains(key) {
                screen_errors.insert(
                    key.clone(),
                    format!("Field '{key}' cannot be set. It is not on the appropriate screen, or unknown.").into(),
                );
            }
        }
        for (key, name) in &self.config.create_required {
            if fields.get(key).is_none_or(|v| v.is_null() || v.as_str().is_some_and(str::is_empty)) {
                screen_errors.insert(key.clone(), format!("{name} is required.").into());
            }
        }
        if !screen_errors.is_empty() {
            return Err(JiraError(StatusCode::BAD_REQUEST, json!({"errorMessages": [], "errors": screen_errors})));
        }
        let now = self.tick();
        let id = self.next_issue_id;
        let number = self.projects.get(&project_key).map(|p| p.next_number + 1).unwrap_or(1);
        let key = format!("{project_key}-{number}");
        self.issues.insert(
            id,
            Issue {
                id,
                key,
                project_key,
                issuetype: issuetype_name,
                summary: String::new(),
                description: None,
                status: TO_DO,
                resolution: None,
                resolution_date: None,
                status_changed: now,
                assignee: None,
                reporter: actor.to_owned(),
                priority: "Medium".to_owned(),
                labels: Vec::new(),
                components: Vec::new(),
                duedate: None,
                flagged: false,
                created: now,
                updated: now,
                comments: Vec::new(),
                remote_links: Vec::new(),
                properties: BTreeMap::new(),
                custom: BTreeMap::new(),
            },
        );
        let mut items = Vec::new();
        if let Err(error) = self.apply_edit(id, body, &mut items) {
            self.issues.remove(&id);
            return Err(error);
        }
        self.next_issue_id += 1;
        if let Some(project) = self.projects.get_mut(&project_key_of(&self.issues, id)) {
            project.next_number = number;
        }
        let reporter = self.display(&Some(actor.to_owned()));
        let mut entry = item("reporter", "reporter", Value::Null, Value::Null, actor.into(), reporter);
        entry["tmpFromAccountId"] = Value::Null;
        entry["tmpToAccountId"] = actor.into();
        items.push(entry);
        items.push(item(
            "Status",
            "status",
            Value::Null,
            Value::Null,
            STATUSES[TO_DO].0.into(),
            STATUSES[TO_DO].1.into(),
        ));
        let mut events = vec![Event {
            webhook_event: "jira:issue_created",
            type_name: Some("issue_created"),
            issue_id: id,
            actor: actor.to_owned(),
            changelog: items,
            comment_id: None,
        }];
        if let Some(properties) = body.get("properties").and_then(Value::as_array) {
            for property in properties {
                if let (Some(key), Some(value)) = (property.get("key").and_then(Value::as_str), property.get("value")) {
                    self.issue_mut(id)?.properties.insert(key.to_owned(), value.clone());
                }
            }
        }
        if body.get("transition").is_some() {
            events.extend(self.transition(id, body, actor)?);
        }
        Ok((id, events))
    }

    /// `PUT /rest/api/3/issue/{idOrKey}`: partial; fires one `jira:issue_updated` when anything changed.
    pub fn edit_issue(&mut self, id: u64, body: &Value, actor: &str) -> Result<Vec<Event>, JiraError> {
        // The edit screen: a field it lacks cannot be set (Jira names every such field, changes nothing).
        let mut screen_errors = Map::new();
        for part in ["fields", "update"] {
            for key in body.get(part).and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
                if self.config.edit_absent.contains(key) {
                    let message =
                        format!("Field '{key}' cannot be set. It is not on the appropriate screen, or unknown.");
                    screen_errors.insert(key.clone(), message.into());
                }
            }
        }
        if !screen_errors.is_empty() {
            return Err(JiraError(StatusCode::BAD_REQUEST, json!({"errorMessages": [], "errors": screen_errors})));
        }
        let mut items = Vec::new();
        self.apply_edit(id, body, &mut items)?;
        let mut events = Vec::new();
        if !items.is_empty() {
            let now = self.tick();
            self.issue_mut(id)?.updated = now;
            let only_assignee = items.iter().all(|i| i["fieldId"] == "assignee");
            events.push(Event {
                webhook_event: "jira:issue_updated",
                type_name: Some(if only_assignee { "issue_assigned" } else { "issue_updated" }),
                issue_id: id,
                actor: actor.to_owned(),
                changelog: items,
                comment_id: None,
            });
        }
        if let Some(comments) = body.pointer("/update/comment").and_then(Value::as_array) {
            for add in comments.iter().filter_map(|c| c.get("add")) {
                let (_, more) = self.add_comment(id, add.get("body").unwrap_or(&Value::Null), actor)?;
                events.extend(more);
            }
        }
        Ok(events)
    }

    /// The transitions available from the issue's status.
    pub fn available(&self, id: u64) -> Vec<Edge> {
        let Some(issue) = self.issues.get(&id) else { return Vec::new() };
        EDGES
            .iter()
            .filter(|e| e.from.contains(&issue.status))
            .filter(|e| !(self.config.strict_workflow && e.id == "31" && issue.status == TO_DO))
            .copied()
            .collect()
    }

    /// `POST /rest/api/3/issue/{idOrKey}/transitions`.
    pub fn transition(&mut self, id: u64, body: &Value, actor: &str) -> Result<Vec<Event>, JiraError> {
        let wanted = body.pointer("/transition/id").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let Some(wanted) = wanted else {
            return Err(JiraError::messages(StatusCode::BAD_REQUEST, "Missing 'transition' identifier"));
        };
        let edge = self.available(id).into_iter().find(|e| e.id == wanted).ok_or_else(|| {
            JiraError::messages(
                StatusCode::BAD_REQUEST,
                &format!("Transition id '{wanted}' is not valid for this issue."),
            )
        })?;
        let has_screen = edge.to == DONE && self.config.require_resolution;
        let mut fields = body.get("fields").and_then(Value::as_object).cloned().unwrap_or_default();
        let resolution_value = fields.remove("resolution");
        let resolution = match (&resolution_value, has_screen) {
            (None, true) => return Err(JiraError::field("resolution", "Field 'resolution' is required")),
            (Some(_), false) => {
                return Err(JiraError::field(
                    "resolution",
                    "Field 'resolution' cannot be set. It is not on the appropriate screen, or unknown.",
                ));
            }
            (Some(value), true) => {
                let name = value.get("name").or_else(|| value.get("id")).and_then(Value::as_str).unwrap_or_default();
                Some(
                    RESOLUTIONS
                        .iter()
                        .position(|(i, n)| *i == name || n.eq_ignore_ascii_case(name))
                        .ok_or_else(|| JiraError::field("resolution", "The resolution selected is invalid."))?,
                )
            }
            (None, false) => (edge.to == DONE).then_some(0),
        };
        let mut items = Vec::new();
        if !fields.is_empty() {
            let edit = json!({"fields": Value::Object(fields)});
            self.apply_edit(id, &edit, &mut items)?;
        }
        let now = self.tick();
        let issue = self.issue_mut(id)?;
        let from = issue.status;
        if from != edge.to {
            items.push(item(
                "status",
                "status",
                STATUSES[from].0.into(),
                STATUSES[from].1.into(),
                STATUSES[edge.to].0.into(),
                STATUSES[edge.to].1.into(),
            ));
            issue.status = edge.to;
            issue.status_changed = now;
        }
        if issue.resolution != resolution {
            let show = |r: Option<usize>| r.map(|r| (Value::from(RESOLUTIONS[r].0), Value::from(RESOLUTIONS[r].1)));
            let (old_id, old_name) = show(issue.resolution).unwrap_or((Value::Null, Value::Null));
            let (new_id, new_name) = show(resolution).unwrap_or((Value::Null, Value::Null));
            items.push(item("resolution", "resolution", old_id, old_name, new_id, new_name));
            issue.resolution = resolution;
            issue.resolution_date = resolution.map(|_| now);
        }
        issue.updated = now;
        let mut events = vec![Event {
            webhook_event: "jira:issue_updated",
            type_name: Some("issue_generic"),
            issue_id: id,
            actor: actor.to_owned(),
            changelog: items,
            comment_id: None,
        }];
        if let Some(comments) = body.pointer("/update/comment").and_then(Value::as_array) {
            for add in comments.iter().filter_map(|c| c.get("add")) {
                let (_, more) = self.add_comment(id, add.get("body").unwrap_or(&Value::Null), actor)?;
                events.extend(more);
            }
        }
        Ok(events)
    }

    /// Adds an ADF comment; fires `comment_created` and `jira:issue_updated` (`issue_commented`).
    pub fn add_comment(&mut self, id: u64, body: &Value, actor: &str) -> Result<(u64, Vec<Event>), JiraError> {
        if body.is_null() || (adf::is_doc(body) && adf::to_text(body).trim().is_empty()) {
            return Err(JiraError::field("comment", "Comment body can not be empty!"));
        }
        check_rich_text("comment", body)?;
        let comment_id = self.fresh_id();
        let now = self.tick();
        let issue = self.issue_mut(id)?;
        issue.comments.push(Comment {
            id: comment_id,
            body: body.clone(),
            author: actor.to_owned(),
            update_author: actor.to_owned(),
            created: now,
            updated: now,
        });
        issue.updated = now;
        let event = |webhook_event, type_name| Event {
            webhook_event,
            type_name,
            issue_id: id,
            actor: actor.to_owned(),
            changelog: Vec::new(),
            comment_id: Some(comment_id),
        };
        Ok((comment_id, vec![event("comment_created", None), event("jira:issue_updated", Some("issue_commented"))]))
    }

    /// Replaces a comment's body; fires `comment_updated` and `jira:issue_updated` (`issue_comment_edited`).
    pub fn update_comment(
        &mut self,
        id: u64,
        comment_id: u64,
        body: &Value,
        actor: &str,
    ) -> Result<Vec<Event>, JiraError> {
        check_rich_text("comment", body)?;
        let now = self.tick();
        let issue = self.issue_mut(id)?;
        let comment = issue
            .comments
            .iter_mut()
            .find(|c| c.id == comment_id)
            .ok_or_else(|| JiraError::messages(StatusCode::NOT_FOUND, "Can not find a comment for the id."))?;
        comment.body = body.clone();
        comment.update_author = actor.to_owned();
        comment.updated = now;
        issue.updated = now;
        let event = |webhook_event, type_name| Event {
            webhook_event,
            type_name,
            issue_id: id,
            actor: actor.to_owned(),
            changelog: Vec::new(),
            comment_id: Some(comment_id),
        };
        Ok(vec![event("comment_updated", None), event("jira:issue_updated", Some("issue_comment_edited"))])
    }

    /// Upserts a remote link by `globalId` (omitted fields become null); returns (id, created).
    pub fn upsert_remote_link(&mut self, id: u64, body: &Value) -> Result<(u64, bool), JiraError> {
        if body.pointer("/object/title").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(JiraError::field("title", "'title' is required."));
        }
        if body.pointer("/object/url").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(JiraError::field("url", "'url' is required."));
        }
        let global_id = body.get("globalId").and_then(Value::as_str).map(str::to_owned);
        if global_id.as_ref().is_some_and(|g| g.chars().count() > MAX_SHORT_TEXT) {
            return Err(JiraError::field("globalId", "The global ID must be 255 characters or fewer."));
        }
        let mut stored = Map::new();
        for key in ["globalId", "application", "relationship", "object"] {
            stored.insert(key.to_owned(), body.get(key).cloned().unwrap_or(Value::Null));
        }
        let fresh = self.fresh_id();
        let issue = self.issue_mut(id)?;
        if let Some(existing) = global_id
            .as_ref()
            .and_then(|g| issue.remote_links.iter_mut().find(|l| l.body["globalId"].as_str() == Some(g)))
        {
            existing.body = Value::Object(stored);
            return Ok((existing.id, false));
        }
        issue.remote_links.push(RemoteLink { id: fresh, body: Value::Object(stored) });
        Ok((fresh, true))
    }

    /// Removes an issue; the caller renders the `jira:issue_deleted` payload first.
    pub fn delete_issue(&mut self, id: u64) -> Option<Issue> {
        let gone = self.issues.remove(&id);
        self.reindex(id);
        gone
    }

    /// Queues the issue's current state (or its deletion) for the search index, visible after the lag.
    pub fn reindex(&mut self, id: u64) {
        let at = std::time::Instant::now() + std::time::Duration::from_millis(self.config.search_lag_ms);
        let snapshot = self.issues.get(&id).cloned();
        self.pending.push((at, id, snapshot));
    }

    /// Moves every queued write whose time has come (all of them with `everything`) into the index.
    pub fn refresh_index(&mut self, everything: bool) {
        let now = std::time::Instant::now();
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().partition(|(at, _, _)| everything || *at <= now);
        self.pending = later;
        for (_, id, snapshot) in due {
            match snapshot {
                Some(issue) => self.index.insert(id, issue),
                None => self.index.remove(&id),
            };
        }
    }
}

fn project_key_of(issues: &BTreeMap<u64, Issue>, id: u64) -> String {
    issues.get(&id).map(|i| i.project_key.clone()).unwrap_or_default()
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}
