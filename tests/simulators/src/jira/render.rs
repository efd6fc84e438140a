//! Jira JSON: v3 REST representations (ADF bodies) and v2 webhook representations (string
//! bodies, `/rest/api/2/` self URLs), built from the fixtures in `tests/fixtures/jira/`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::adf;
use super::state::{Comment, DONE, Edge, Issue, PRIORITIES, Project, RESOLUTIONS, STATUSES, State, User};
use crate::common::json::{first, fixture, obj, only_keys_of};

pub const ISSUE_V2: &str = include_str!("../../../fixtures/jira/cloud-rest-issue-get.v2-capture.json");
pub const ISSUE_V3: &str = include_str!("../../../fixtures/jira/cloud-rest-issue-get.v3.docs-example.json");
pub const TRANSITIONS: &str = include_str!("../../../fixtures/jira/cloud-rest-transitions.json");
pub const USER_SEARCH: &str = include_str!("../../../fixtures/jira/cloud-rest-user-search.docs-example.json");
pub const COMMENT: &str = include_str!("../../../fixtures/jira/cloud-rest-comment-add-response.docs-example.json");
pub const CREATE_RESPONSE: &str =
    include_str!("../../../fixtures/jira/cloud-rest-issue-create-response.docs-example.json");
pub const SEARCH_REMOVED: &str = include_str!("../../../fixtures/jira/cloud-rest-error-410-search-removed.json");
pub const WEBHOOK_ISSUE: &str = include_str!("../../../fixtures/jira/cloud-webhook-issue-created.json");
pub const WEBHOOK_COMMENT: &str = include_str!("../../../fixtures/jira/cloud-webhook-comment-created.json");

/// Jira's date-time format: `2024-12-29T08:41:23.303+0000`.
pub fn ts(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

fn set(map: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    map.insert(key.to_owned(), value.into());
}

/// A user as REST returns it (`v` = 2 or 3 in self URLs).
pub fn user(origin: &str, user: &User, v: u8) -> Value {
    let mut map = obj(first(fixture(USER_SEARCH)));
    set(&mut map, "accountId", user.account_id.clone());
    set(&mut map, "active", true);
    set(&mut map, "displayName", user.display_name.clone());
    set(&mut map, "self", format!("{origin}/rest/api/{v}/user?accountId={}", user.account_id));
    if user.email_visible {
        set(&mut map, "emailAddress", user.email.clone());
    }
    Value::Object(map)
}

/// A user reference by account id (`null` when absent).
pub fn user_ref(origin: &str, state: &State, account: &Option<String>, v: u8) -> Value {
    account.as_ref().and_then(|a| state.user(a)).map(|u| user(origin, u, v)).unwrap_or(Value::Null)
}

/// A status object (shape of `cloud-rest-transitions.json`'s `to`).
pub fn status(origin: &str, index: usize, v: u8) -> Value {
    let (id, name, key, category_id, colour) = STATUSES[index];
    json!({
        "description": "", "iconUrl": format!("{origin}/images/icons/statuses/generic.png"), "id": id, "name": name,
        "self": format!("{origin}/rest/api/{v}/status/{id}"),
        "statusCategory": {"colorName": colour, "id": category_id, "key": key, "name": name,
                           "self": format!("{origin}/rest/api/{v}/statuscategory/{category_id}")},
    })
}

/// A project reference (the `project` field).
pub fn project_ref(origin: &str, project: &Project, v: u8) -> Value {
    let template = fixture(ISSUE_V3);
    let mut map = obj(template["fields"]["project"].clone());
    map.remove("insight");
    map.remove("projectCategory");
    set(&mut map, "id", project.id.clone());
    set(&mut map, "key", project.key.clone());
    set(&mut map, "name", project.name.clone());
    set(&mut map, "self", format!("{origin}/rest/api/{v}/project/{}", project.id));
    set(&mut map, "projectTypeKey", "software");
    Value::Object(map)
}

/// A v3 comment (ADF body) or v2 comment (string body).
pub fn comment(origin: &str, state: &State, issue: &Issue, comment: &Comment, v: u8) -> Value {
    let mut map = obj(fixture(COMMENT));
    map.remove("visibility");
    set(&mut map, "id", comment.id.to_string());
    set(&mut map, "self", format!("{origin}/rest/api/{v}/issue/{}/comment/{}", issue.id, comment.id));
    set(&mut map, "author", user_ref(origin, state, &Some(comment.author.clone()), v));
    set(&mut map, "updateAuthor", user_ref(origin, state, &Some(comment.update_author.clone()), v));
    let body = if v == 2 { Value::from(adf::to_text(&comment.body)) } else { comment.body.clone() };
    set(&mut map, "body", body);
    set(&mut map, "created", ts(&comment.created));
    set(&mut map, "updated", ts(&comment.updated));
    set(&mut map, "jsdPublic", true);
    Value::Object(map)
}

fn priority(origin: &str, name: &str, v: u8) -> Value {
    let id = PRIORITIES.iter().find(|(_, n)| *n == name).map(|(i, _)| *i).unwrap_or("3");
    json!({"self": format!("{origin}/rest/api/{v}/priority/{id}"), "iconUrl": format!("{origin}/images/icons/priorities/{}.svg", name.to_lowercase()), "name": name, "id": id})
}

fn issuetype(origin: &str, name: &str, v: u8) -> Value {
    let id = match name {
        "Bug" => "10002",
        "Story" => "10003",
        _ => "10001",
    };
    json!({"self": format!("{origin}/rest/api/{v}/issuetype/{id}"), "id": id, "description": "", "iconUrl": format!("{origin}/images/icons/issuetypes/{}.svg", name.to_lowercase()), "name": name, "subtask": false, "avatarId": 10318, "hierarchyLevel": 0})
}

/// Every field value the simulator models, in version `v` (3 = ADF, 2 = strings).
pub fn fields(origin: &str, state: &State, issue: &Issue, v: u8) -> Map<String, Value> {
    let mut map = Map::new();
    let project = state.projects.get(&issue.project_key);
    set(&mut map, "summary", issue.summary.clone());
    let description = match (&issue.description, v) {
        (None, _) => Value::Null,
        (Some(doc), 2) => adf::to_text(doc).into(),
        (Some(doc), _) => doc.clone(),
    };
    set(&mut map, "description", description);
    set(&mut map, "status", status(origin, issue.status, v));
    set(&mut map, "statuscategorychangedate", ts(&issue.status_changed));
    let resolution = issue.resolution.map(|r| {
        let (id, name) = RESOLUTIONS[r];
        json!({"self": format!("{origin}/rest/api/{v}/resolution/{id}"), "id": id, "description": "", "name": name})
    });
    set(&mut map, "resolution", resolution.unwrap_or(Value::Null));
    set(&mut map, "resolutiondate", issue.resolution_date.as_ref().map(ts).map(Value::from).unwrap_or(Value::Null));
    set(&mut map, "assignee", user_ref(origin, state, &issue.assignee, v));
    set(&mut map, "reporter", user_ref(origin, state, &Some(issue.reporter.clone()), v));
    set(&mut map, "creator", user_ref(origin, state, &Some(issue.reporter.clone()), v));
    set(&mut map, "priority", priority(origin, &issue.priority, v));
    set(&mut map, "labels", issue.labels.clone());
    let components: Vec<Value> = issue
        .components
        .iter()
        .map(|name| {
            let id = project
                .and_then(|p| p.components.iter().find(|(_, n)| n == name))
                .map(|(i, _)| i.clone())
                .unwrap_or_default();
            json!({"self": format!("{origin}/rest/api/{v}/component/{id}"), "id": id, "name": name})
        })
        .collect();
    set(&mut map, "components", components);
    set(&mut map, "duedate", issue.duedate.clone().map(Value::from).unwrap_or(Value::Null));
    set(&mut map, "created", ts(&issue.created));
    set(&mut map, "updated", ts(&issue.updated));
    if let Some(project) = project {
        set(&mut map, "project", project_ref(origin, project, v));
    }
    set(&mut map, "issuetype", issuetype(origin, &issue.issuetype, v));
    let flagged = issue.flagged.then(|| {
        json!([{"self": format!("{origin}/rest/api/{v}/customFieldOption/10019"), "value": "Impediment", "id": "10019"}])
    });
    set(&mut map, "customfield_10021", flagged.unwrap_or(Value::Null));
    set(
        &mut map,
        "watches",
        json!({"self": format!("{origin}/rest/api/{v}/issue/{}/watchers", issue.key), "watchCount": 1, "isWatching": true}),
    );
    set(
        &mut map,
        "votes",
        json!({"self": format!("{origin}/rest/api/{v}/issue/{}/votes", issue.key), "votes": 0, "hasVoted": false}),
    );
    map
}

/// `GET /rest/api/3/issue/{idOrKey}`; `selected` limits the fields (`None` = all).
pub fn issue_v3(origin: &str, state: &State, issue: &Issue, selected: Option<&[String]>) -> Value {
    let template = fixture(ISSUE_V2);
    let mut all = obj(template["fields"].clone());
    all.extend(fields(origin, state, issue, 3));
    let comments: Vec<Value> = issue.comments.iter().map(|c| comment(origin, state, issue, c, 3)).collect();
    let total = comments.len();
    set(&mut all, "comment", json!({"comments": comments, "maxResults": total, "startAt": 0, "total": total}));
    let fields = match selected {
        None => all,
        Some(names) => select(all, names),
    };
    let mut map = obj(template);
    set(&mut map, "expand", "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations");
    set(&mut map, "id", issue.id.to_string());
    set(&mut map, "key", issue.key.clone());
    set(&mut map, "self", format!("{origin}/rest/api/3/issue/{}", issue.id));
    set(&mut map, "fields", Value::Object(fields));
    Value::Object(map)
}

/// Applies a `fields=` selection (`*all`, `*navigable`, names, `-name` exclusions).
pub fn select(all: Map<String, Value>, names: &[String]) -> Map<String, Value> {
    let wants_all = names.iter().any(|n| n == "*all" || n == "*navigable");
    let excluded: Vec<&str> = names.iter().filter_map(|n| n.strip_prefix('-')).collect();
    all.into_iter()
        .filter(|(k, _)| (wants_all || names.iter().any(|n| n == k)) && !excluded.contains(&k.as_str()))
        .collect()
}

/// The v2 issue webhooks carry: the capture's field set, string description, and the real
/// `…/rest/api/2/{id}` self URL quirk (no `/issue/`).
pub fn issue_v2_webhook(origin: &str, state: &State, issue: &Issue, template_issue: &Value) -> Value {
    let mut all = obj(template_issue["fields"].clone());
    let ours = fields(origin, state, issue, 2);
    for (key, value) in ours {
        if all.contains_key(&key) {
            all.insert(key, value);
        }
    }
    let mut map = obj(template_issue.clone());
    set(&mut map, "id", issue.id.to_string());
    set(&mut map, "self", format!("{origin}/rest/api/2/{}", issue.id));
    set(&mut map, "key", issue.key.clone());
    set(&mut map, "fields", Value::Object(all));
    Value::Object(map)
}

/// The transitions list (`cloud-rest-transitions.json` shape).
pub fn transitions(origin: &str, edges: &[Edge], require_resolution: bool, with_fields: bool) -> Value {
    let template = fixture(TRANSITIONS);
    let entry_template = first(template["transitions"].clone());
    let items: Vec<Value> = edges
        .iter()
        .map(|edge| {
            let mut map = obj(entry_template.clone());
            let screen = edge.to == DONE && require_resolution;
            set(&mut map, "id", edge.id);
            set(&mut map, "name", edge.name);
            set(&mut map, "hasScreen", screen);
            set(&mut map, "isGlobal", false);
            set(&mut map, "isAvailable", true);
            set(&mut map, "to", status(origin, edge.to, 3));
            if with_fields {
                let fields = if screen {
                    json!({"resolution": {"required": true, "name": "Resolution", "key": "resolution",
                        "operations": ["set"], "schema": {"type": "resolution", "system": "resolution"},
                        "allowedValues": RESOLUTIONS.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>()}})
                } else {
                    json!({})
                };
                set(&mut map, "fields", fields);
            }
            Value::Object(map)
        })
        .collect();
    json!({"expand": "transitions", "transitions": items})
}

/// The issue subset comment webhooks carry.
pub fn trimmed_issue(origin: &str, state: &State, issue: &Issue) -> Value {
    let template = fixture(WEBHOOK_COMMENT);
    let full = issue_v2_webhook(origin, state, issue, &fixture(WEBHOOK_ISSUE)["issue"]);
    let mut map = obj(full.clone());
    if let Value::Object(fields) = &full["fields"] {
        map.insert("fields".into(), Value::Object(only_keys_of(fields, &template["issue"]["fields"])));
    }
    Value::Object(map)
}
