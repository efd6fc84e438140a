//! `[[users]]` and `[[routes]]`: the user table and the routes, built into the domain's own types.

use std::collections::HashMap;

use toml_edit::Item;

use super::UserContact;
use super::reader::{Ctx, Scope, Section, Span, Spanned, suggest};
use super::sections::{email, jira_account};
use crate::domain::TrackerTarget;
use crate::domain::{
    ConflictPolicy, DescriptionTemplate, Filter, Glob, JiraAccountId, JiraProjectKey, ListMapping, Owner, Ownership,
    PersonId, Priority, ProjectId, Route, RouteId, StatusStrategy, TitleTemplate, User, UserTable,
};

const USER_KEYS: &[&str] = &["name", "basecamp", "jira", "email", "bitbucket"];

const ROUTE_KEYS: &[&str] = &[
    "id",
    "basecamp_project",
    "jira_project",
    "issue_type",
    "code",
    "title_template",
    "description_template",
    "todolists",
    "marker",
    "lists",
    "escalation_label",
    "dev_comment_prefix",
    "pm_comment_prefix",
    "build_signals",
    "complete_on_merge",
    "triage",
    "status_strategy",
    "conflict_policy",
    "ownership",
    "default_priority",
    "create_fields",
];

/// Fields campbridge sets on every create itself; `create_fields` may not name them.
const SET_BY_CAMPBRIDGE: &[&str] =
    &["project", "issuetype", "summary", "description", "labels", "assignee", "priority", "duedate", "components"];

/// Fields whose direction is fixed: Basecamp → tracker (docs/decisions/0002-field-ownership.md).
const BASECAMP_ONLY_FIELDS: &[&str] = &["description", "due_date", "priority", "labels", "components"];

/// The user table plus what routes need to resolve `triage` names.
pub(super) struct Users {
    pub table: UserTable,
    pub contacts: Vec<UserContact>,
    jira_by_name: HashMap<String, JiraAccountId>,
}

/// The line a value sits on, for "first defined on line N" hints.
fn first_line(ctx: &Ctx, span: &Span) -> String {
    ctx.line_of(span).map_or_else(String::new, |l| format!(" (first on line {l})"))
}

/// `[[users]]`: names, Basecamp person ids and Jira account ids are each unique.
pub(super) fn users(ctx: &mut Ctx, root: &Section<'_>) -> Users {
    let mut users = Users { table: UserTable::default(), contacts: Vec::new(), jira_by_name: HashMap::new() };
    let mut seen_names: HashMap<String, Span> = HashMap::new();
    let mut seen_people: HashMap<i64, Span> = HashMap::new();
    let mut seen_accounts: HashMap<String, Span> = HashMap::new();
    for (i, (table, span)) in root.tables(ctx, "users").into_iter().enumerate() {
        let scope = match table.get("name").and_then(Item::as_str).filter(|s| !s.trim().is_empty()) {
            Some(name) => Scope::named("user", name),
            None => Scope::numbered("user", i + 1),
        };
        let sec = Section::new(table, span, scope);
        sec.check_keys(ctx, USER_KEYS);

        let name = sec.non_empty_str(ctx, "name", true);
        if let Some(n) = &name {
            if let Some(first) = seen_names.get(&n.value) {
                let hint = first_line(ctx, first);
                ctx.error(&n.span, sec.scope.say(format!("the name {:?} is used twice{hint}", n.value)));
            } else {
                seen_names.insert(n.value.clone(), n.span.clone());
            }
        }
        let person = sec.required_int(ctx, "basecamp").and_then(|id| {
            if id.value <= 0 {
                ctx.error(&id.span, sec.scope.say(format!("basecamp {} must be a positive person id", id.value)));
                return None;
            }
            if let Some(first) = seen_people.get(&id.value) {
                let hint = first_line(ctx, first);
                ctx.error(&id.span, sec.scope.say(format!("basecamp person {} is mapped twice{hint}", id.value)));
            } else {
                seen_people.insert(id.value, id.span.clone());
            }
            Some(PersonId(id.value))
        });
        let account = sec.non_empty_str(ctx, "jira", true).and_then(|text| {
            let account = jira_account(ctx, &sec, "jira", &text)?;
            if let Some(first) = seen_accounts.get(&account.0) {
                let hint = first_line(ctx, first);
                ctx.error(&text.span, sec.scope.say(format!("jira account {:?} is mapped twice{hint}", account.0)));
            } else {
                seen_accounts.insert(account.0.clone(), text.span.clone());
            }
            Some(account)
        });
        let mail = sec.non_empty_str(ctx, "email", false).and_then(|e| email(ctx, &sec, "email", e));
        let bitbucket = sec.non_empty_str(ctx, "bitbucket", false).map(|b| b.value.trim().to_owned());

        if let (Some(name), Some(person), Some(account)) = (name, person, account) {
            users.jira_by_name.insert(name.value.clone(), account.clone());
            users.contacts.push(UserContact { name: name.value.clone(), email: mail, bitbucket });
            users.table.users.push(User { name: name.value, basecamp: Some(person), jira: Some(account) });
        }
    }
    users
}

/// `[[routes]]`, in file order. A route with any problem is left out (and the config refused).
pub(super) fn routes(ctx: &mut Ctx, root: &Section<'_>, users: &Users) -> Vec<Route> {
    let mut routes: Vec<(Route, Span)> = Vec::new();
    let mut seen_ids: HashMap<String, Span> = HashMap::new();
    for (i, (table, span)) in root.tables(ctx, "routes").into_iter().enumerate() {
        let scope = match table.get("id").and_then(Item::as_str).filter(|s| !s.trim().is_empty()) {
            Some(id) => Scope::named("route", id),
            None => Scope::numbered("route", i + 1),
        };
        let sec = Section::new(table, span.clone(), scope);
        if let Some(route) = route(ctx, &sec, users, &mut seen_ids) {
            warn_overlaps(ctx, &routes, &route, &span);
            routes.push((route, span));
        }
    }
    routes.into_iter().map(|(route, _)| route).collect()
}

/// Warns when `route` can take a to-do an earlier route on the same Basecamp project takes too: both would
/// create an issue for it. Routes with different opt-in markers are a deliberate split and not reported.
fn warn_overlaps(ctx: &mut Ctx, earlier: &[(Route, Span)], route: &Route, span: &Span) {
    for (other, other_span) in earlier.iter().filter(|(o, _)| o.project == route.project) {
        let (a, b) = (&other.filter, &route.filter);
        if let (Some(ma), Some(mb)) = (&a.marker, &b.marker)
            && !ma.eq_ignore_ascii_case(mb)
        {
            continue;
        }
        let lists = |f: &crate::domain::Filter| {
            if f.todolists.is_empty() {
                "every to-do list".to_owned()
            } else {
                f.todolists.iter().map(|g| format!("{:?}", g.as_str())).collect::<Vec<_>>().join(", ")
            }
        };
        let shared = if a.todolists.is_empty() || b.todolists.is_empty() {
            true
        } else {
            a.todolists.iter().any(|ga| b.todolists.iter().any(|gb| globs_overlap(ga.as_str(), gb.as_str())))
        };
        if shared {
            let at = ctx.line_of(other_span).map(|l| format!(" (line {l})")).unwrap_or_default();
            ctx.warn(
                span,
                format!(
                    "route {:?} overlaps route {:?}{at} on Basecamp project {}: a to-do in a list both take ({} / {}) \
                     would get an issue from each; make the to-do lists disjoint or give each route its own marker",
                    route.id.to_string(),
                    other.id.to_string(),
                    route.project,
                    lists(a),
                    lists(b),
                ),
            );
        }
    }
}

/// Whether some list name matches both globs (`*` any text, `?` one character, case-insensitive, as
/// [`crate::domain::Glob::matches`]).
pub(super) fn globs_overlap(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // can[i][j]: the suffixes a[i..] and b[j..] match a common string.
    let mut can = vec![vec![false; b.len() + 1]; a.len() + 1];
    for i in (0..=a.len()).rev() {
        for j in (0..=b.len()).rev() {
            can[i][j] = match (a.get(i), b.get(j)) {
                (None, None) => true,
                (Some('*'), _) if can[i + 1][j] => true,
                (_, Some('*')) if can[i][j + 1] => true,
                // A star takes one more character of the other side's next token.
                (Some('*'), Some(&c)) if c != '*' => can[i][j + 1],
                (Some(&c), Some('*')) if c != '*' => can[i + 1][j],
                (Some(&x), Some(&y)) if x != '*' && y != '*' => (x == '?' || y == '?' || x == y) && can[i + 1][j + 1],
                _ => false,
            };
        }
    }
    can[0][0]
}

/// A pattern that reads like a regular expression (`Release.*`, `^Bugs$`, `Sprint [0-9]+`), with the glob it
/// probably meant when there is an obvious one.
pub(super) fn regex_like(pattern: &str) -> Option<Option<String>> {
    // A bracket with a range inside (`[0-9]`, `[a-z]+`) is a character class; `[Client] Tasks` is a name.
    let class =
        pattern.split('[').skip(1).any(|rest| rest.split_once(']').is_some_and(|(inside, _)| inside.contains('-')));
    let regexy = ["\\", ".*", ".+", "|", "(?"].iter().any(|t| pattern.contains(t))
        || class
        || pattern.starts_with('^')
        || pattern.ends_with('$');
    if !regexy {
        return None;
    }
    let glob = pattern.trim_start_matches('^').trim_end_matches('$').replace(".*", "*").replace(".+", "?*");
    let plain = !class && !["\\", "|", "(?"].iter().any(|t| glob.contains(t));
    Some(plain.then_some(glob))
}

/// A route needs `[basecamp]`, `[jira]` and a webhook key; each missing one is reported once.
pub(super) fn check_route_prerequisites(ctx: &mut Ctx, root: &Section<'_>, has_webhook_key: bool) {
    let has_routes =
        root.table.get("routes").is_some_and(|r| r.is_array_of_tables() || r.as_array().is_some_and(|a| !a.is_empty()));
    if !has_routes {
        return;
    }
    let routes_span = root.table.get("routes").and_then(Item::span);
    for section in ["basecamp", "jira"] {
        if !root.has(section) {
            ctx.error(&routes_span, format!("routes need a [{section}] section"));
        }
    }
    if has_webhook_key || root.table.get("server").is_some_and(|s| s.get("webhook_key").is_some()) {
        // Present (a broken value was reported where it is written).
        return;
    }
    let why = "(each route's Basecamp webhook URL token is derived from it)";
    match root.table.get("server") {
        Some(server) => {
            ctx.error(&server.span(), format!("[server] webhook_key is required when routes are configured {why}"))
        }
        None => ctx.error(&routes_span, format!("routes need [server] webhook_key = {{ secret = \"name\" }} {why}")),
    }
}

fn route(ctx: &mut Ctx, sec: &Section<'_>, users: &Users, seen_ids: &mut HashMap<String, Span>) -> Option<Route> {
    sec.check_keys(ctx, ROUTE_KEYS);
    let say = |m: String| sec.scope.say(m);

    let id = sec.non_empty_str(ctx, "id", true).and_then(|id| match RouteId::parse(&id.value) {
        Ok(route_id) => {
            if let Some(first) = seen_ids.get(&id.value) {
                let hint = first_line(ctx, first);
                ctx.error(&id.span, say(format!("the route id is used twice{hint}")));
                None
            } else {
                seen_ids.insert(id.value.clone(), id.span.clone());
                Some(route_id)
            }
        }
        Err(e) => {
            ctx.error(&id.span, say(format!("{e}: use lower-case letters, digits and dashes")));
            None
        }
    });
    let project = sec.required_int(ctx, "basecamp_project").and_then(|p| {
        if p.value > 0 {
            Some(ProjectId(p.value))
        } else {
            ctx.error(&p.span, say(format!("basecamp_project {} must be a positive project id", p.value)));
            None
        }
    });
    let jira_project =
        sec.non_empty_str(ctx, "jira_project", true).and_then(|k| match JiraProjectKey::parse(k.value.trim()) {
            Ok(key) => Some(key),
            Err(e) => {
                ctx.error(&k.span, say(format!("{e}: a project key is upper-case letters, digits and _, like WEB")));
                None
            }
        });
    let issue_type = sec.non_empty_str(ctx, "issue_type", false).map_or_else(|| "Task".to_owned(), |t| t.value);

    let code = match sec.non_empty_str(ctx, "code", false) {
        Some(c) if c.value.contains(['{', '}']) => {
            ctx.error(&c.span, say(format!("code {:?} must not contain braces", c.value)));
            None
        }
        Some(c) => Some(c.value),
        None => jira_project.as_ref().map(|k| k.as_str().to_owned()),
    };
    let title = title_template(ctx, sec, code.as_deref());
    let description = description_template(ctx, sec);
    let filter = filter(ctx, sec);
    let lists = list_mappings(ctx, sec);
    let escalation_label = match sec.non_empty_str(ctx, "escalation_label", false) {
        Some(l) => label(ctx, sec, "escalation_label", &l),
        None => Some("escalated".to_owned()),
    };
    // "" switches comment mirroring off; "*" mirrors every comment.
    let dev_comment_prefix = match sec.str(ctx, "dev_comment_prefix") {
        Some(p) if p.value.trim().is_empty() => None,
        Some(p) => Some(p.value.trim().to_owned()),
        None => Some("DEV:".to_owned()),
    };
    let pm_comment_prefix = match sec.str(ctx, "pm_comment_prefix") {
        Some(p) if p.value.trim().is_empty() => None,
        Some(p) => Some(p.value.trim().to_owned()),
        None => Some("PM:".to_owned()),
    };
    let build_signals = match sec.word::<crate::domain::BuildSignals>(ctx, "build_signals") {
        Some(b) => Some(b.value),
        None => (!sec.has("build_signals")).then_some(crate::domain::BuildSignals::FailedOnly),
    };
    let triage = triage(ctx, sec, users);
    let status = match sec.word::<StatusStrategy>(ctx, "status_strategy") {
        Some(s) => Some(s.value),
        None => (!sec.has("status_strategy")).then_some(StatusStrategy::DevOwned),
    };
    let conflict_policy = match sec.word::<ConflictPolicy>(ctx, "conflict_policy") {
        Some(p) => Some(p.value),
        None => (!sec.has("conflict_policy")).then_some(ConflictPolicy::LastWriterWins),
    };
    let ownership = ownership(ctx, sec);
    let default_priority = default_priority(ctx, sec);
    let create_fields = create_fields(ctx, sec);
    let complete_on_merge = match sec.bool(ctx, "complete_on_merge") {
        Some(flag) if flag.value && status == Some(StatusStrategy::DevOwned) => {
            ctx.error(
                &flag.span,
                sec.scope.say(
                    "complete_on_merge needs status_strategy pm-owned or bidirectional \
                     (under dev-owned, Jira's Done completes the to-do and a Basecamp completion is put back)"
                        .to_owned(),
                ),
            );
            false
        }
        Some(flag) => flag.value,
        None => false,
    };

    Some(Route {
        id: id?,
        project: project?,
        target: TrackerTarget::Jira { project: jira_project?, issue_type },
        code: code?,
        title: title?,
        description: description?,
        filter: filter?,
        lists: lists?,
        escalation_label: escalation_label?,
        triage: triage?,
        ownership: ownership?,
        status: status?,
        conflict_policy: conflict_policy?,
        dev_comment_prefix,
        pm_comment_prefix,
        build_signals: build_signals?,
        complete_on_merge,
        default_priority: default_priority?,
        create_fields: create_fields?,
        webhook_token: None,
    })
}

/// `default_priority`: a priority of Jira's default scheme (default `medium`).
fn default_priority(ctx: &mut Ctx, sec: &Section<'_>) -> Option<Priority> {
    let Some(word) = sec.str(ctx, "default_priority") else {
        return (!sec.has("default_priority")).then_some(Priority::Medium);
    };
    let found = [Priority::Highest, Priority::High, Priority::Medium, Priority::Low, Priority::Lowest]
        .into_iter()
        .find(|p| p.jira_name().eq_ignore_ascii_case(word.value.trim()));
    if found.is_none() {
        ctx.error(
            &word.span,
            sec.scope.say(format!(
                "default_priority {:?} is not a priority (expected highest, high, medium, low, lowest)",
                word.value
            )),
        );
    }
    found
}

/// `create_fields`: `field id = value` pairs added to every create request, as JSON (an inline table is an
/// object, `{ value = "Team A" }` for a select list; an array of those for a multi-select). For fields the
/// create screen requires and campbridge does not set (`campbridge doctor` lists them).
fn create_fields(ctx: &mut Ctx, sec: &Section<'_>) -> Option<std::collections::BTreeMap<String, serde_json::Value>> {
    let mut out = std::collections::BTreeMap::new();
    if !sec.has("create_fields") {
        return Some(out);
    }
    let inner = sec.table(ctx, "create_fields", sec.scope.child("create_fields"))?;
    let mut ok = true;
    for (key, item) in inner.table.iter() {
        let span = inner.table.key(key).and_then(|k| k.span()).or_else(|| inner.span.clone());
        let well_formed = key.starts_with(|c: char| c.is_ascii_lowercase())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            ctx.error(&span, inner.scope.say(format!("{key:?} is not a Jira field id (like customfield_10050)")));
            ok = false;
            continue;
        }
        if SET_BY_CAMPBRIDGE.contains(&key) {
            ctx.error(
                &span,
                inner.scope.say(format!(
                    "{key} is set by campbridge itself (from the to-do and the route); only other fields go here"
                )),
            );
            ok = false;
            continue;
        }
        match toml_json(item) {
            Some(value) => {
                out.insert(key.to_owned(), value);
            }
            None => {
                ctx.error(
                    &span,
                    inner.scope.say(format!(
                        "{key} must be a string, number, boolean, array or table (Jira field values are JSON)"
                    )),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A TOML value as JSON; `None` for what JSON cannot hold (dates and times).
fn toml_json(item: &Item) -> Option<serde_json::Value> {
    use toml_edit::Value as T;
    fn value(v: &T) -> Option<serde_json::Value> {
        Some(match v {
            T::String(s) => serde_json::Value::from(s.value().as_str()),
            T::Integer(i) => serde_json::Value::from(*i.value()),
            T::Float(f) => serde_json::Number::from_f64(*f.value()).map(serde_json::Value::Number)?,
            T::Boolean(b) => serde_json::Value::from(*b.value()),
            T::Datetime(_) => return None,
            T::Array(a) => serde_json::Value::Array(a.iter().map(value).collect::<Option<Vec<_>>>()?),
            T::InlineTable(t) => serde_json::Value::Object(
                t.iter().map(|(k, v)| Some((k.to_owned(), value(v)?))).collect::<Option<_>>()?,
            ),
        })
    }
    match item {
        Item::Value(v) => value(v),
        Item::Table(t) => Some(serde_json::Value::Object(
            t.iter().map(|(k, i)| Some((k.to_owned(), toml_json(i)?))).collect::<Option<_>>()?,
        )),
        _ => None,
    }
}

fn title_template(ctx: &mut Ctx, sec: &Section<'_>, code: Option<&str>) -> Option<TitleTemplate> {
    let text = sec.str(ctx, "title_template");
    if sec.has("title_template") && text.is_none() {
        return None;
    }
    let (template, span) = match &text {
        Some(t) => (t.value.as_str(), t.span.clone()),
        None => (TitleTemplate::DEFAULT, sec.span.clone()),
    };
    let unknown: Vec<String> = placeholders(template).filter(|p| *p != "title" && *p != "code").map(brace).collect();
    if !unknown.is_empty() {
        ctx.error(
            &span,
            sec.scope.say(format!(
                "title_template has unknown placeholder {} (known: {{code}}, {{title}})",
                unknown.join(", ")
            )),
        );
        return None;
    }
    match TitleTemplate::parse(template, code?) {
        Ok(t) => Some(t),
        Err(e) => {
            ctx.error(&span, sec.scope.say(e));
            None
        }
    }
}

fn description_template(ctx: &mut Ctx, sec: &Section<'_>) -> Option<DescriptionTemplate> {
    let Some(text) = sec.str(ctx, "description_template") else {
        return (!sec.has("description_template")).then(DescriptionTemplate::default);
    };
    let template = DescriptionTemplate::new(&text.value);
    let unknown = template.unknown_placeholders();
    if unknown.is_empty() {
        return Some(template);
    }
    let unknown: Vec<String> = unknown.iter().map(|p| brace(p)).collect();
    let known: Vec<String> = DescriptionTemplate::PLACEHOLDERS.iter().map(|p| brace(p)).collect();
    ctx.error(
        &text.span,
        sec.scope.say(format!(
            "description_template has unknown placeholder {} (known: {})",
            unknown.join(", "),
            known.join(", ")
        )),
    );
    None
}

/// The names inside `{…}` in a template.
fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

fn brace(name: &str) -> String {
    format!("{{{name}}}")
}

/// A to-do list glob: not blank. One that reads like a regular expression is kept, with a warning.
fn glob(ctx: &mut Ctx, sec: &Section<'_>, key: &str, text: &Spanned<String>) -> Option<Glob> {
    let pattern = text.value.trim();
    if pattern.is_empty() {
        ctx.error(&text.span, sec.scope.say(format!("{key} has an empty pattern")));
        return None;
    }
    if let Some(meant) = regex_like(pattern) {
        let hint = meant.map(|g| format!(" (did you mean {g:?}?)")).unwrap_or_default();
        ctx.warn(
            &text.span,
            sec.scope.say(format!(
                "{key} pattern {pattern:?} looks like a regular expression, but to-do list patterns are globs: * \
                 matches any text and ? one character, everything else itself{hint}"
            )),
        );
    }
    Some(Glob::new(pattern))
}

/// A Jira label: not blank, no spaces (Jira refuses them).
fn label(ctx: &mut Ctx, sec: &Section<'_>, key: &str, text: &Spanned<String>) -> Option<String> {
    let value = text.value.trim();
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        ctx.error(
            &text.span,
            sec.scope.say(format!("{key}: Jira labels cannot be empty or contain spaces: {value:?}")),
        );
        return None;
    }
    Some(value.to_owned())
}

fn filter(ctx: &mut Ctx, sec: &Section<'_>) -> Option<Filter> {
    let mut todolists = Vec::new();
    let mut ok = !sec.has("todolists");
    if let Some(list) = sec.str_list(ctx, "todolists") {
        ok = true;
        if list.value.is_empty() {
            ctx.error(&list.span, sec.scope.say("todolists is empty; leave it out to take every to-do list"));
            ok = false;
        }
        for pattern in &list.value {
            match glob(ctx, sec, "todolists", pattern) {
                Some(g) => todolists.push(g),
                None => ok = false,
            }
        }
    }
    let marker = sec.non_empty_str(ctx, "marker", false).map(|m| m.value.trim().to_owned());
    if sec.has("marker") && marker.is_none() {
        ok = false;
    }
    ok.then_some(Filter { todolists, marker })
}

fn list_mappings(ctx: &mut Ctx, sec: &Section<'_>) -> Option<Vec<ListMapping>> {
    let mut out = Vec::new();
    let mut ok = true;
    for (i, (table, span)) in sec.tables(ctx, "lists").into_iter().enumerate() {
        let entry = Section::new(table, span, sec.scope.child(&format!("list mapping #{}", i + 1)));
        entry.check_keys(ctx, &["list", "labels", "components"]);
        let list = entry.required_str(ctx, "list").and_then(|l| glob(ctx, &entry, "list", &l));
        let mut read = |key: &str, is_label: bool| -> Option<Vec<String>> {
            let Some(values) = entry.str_list(ctx, key) else { return (!entry.has(key)).then(Vec::new) };
            let mut out = Vec::new();
            for v in &values.value {
                let value = if is_label {
                    label(ctx, &entry, key, v)
                } else if v.value.trim().is_empty() {
                    ctx.error(&v.span, entry.scope.say(format!("{key} has an empty name")));
                    None
                } else {
                    Some(v.value.trim().to_owned())
                };
                out.push(value?);
            }
            Some(out)
        };
        let labels = read("labels", true);
        let components = read("components", false);
        if let (Some(l), Some(c)) = (&labels, &components)
            && l.is_empty()
            && c.is_empty()
        {
            ctx.error(&entry.span, entry.scope.say("adds no labels or components"));
            ok = false;
        }
        match (list, labels, components) {
            (Some(list), Some(labels), Some(components)) => out.push(ListMapping { list, labels, components }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// `triage = "name"` names a `[[users]]` entry; `triage = { jira = "<account id>" }` names an account
/// directly. Two spellings, so a mistyped name is never taken for an account id.
fn triage(ctx: &mut Ctx, sec: &Section<'_>, users: &Users) -> Option<Option<JiraAccountId>> {
    let Some(item) = sec.table.get("triage").filter(|i| !i.is_none()) else { return Some(None) };
    let span = item.span().or_else(|| sec.key_span("triage"));
    if let Some(name) = item.as_str() {
        if let Some(account) = users.jira_by_name.get(name) {
            return Some(Some(account.clone()));
        }
        let names: Vec<&str> = users.jira_by_name.keys().map(String::as_str).collect();
        let hint = suggest(name, &names).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
        ctx.error(
            &span,
            sec.scope.say(format!(
                "triage {name:?} is not a name from [[users]]{hint}; to name a Jira account directly write \
                 triage = {{ jira = \"<account id>\" }}"
            )),
        );
        return None;
    }
    let Some(table) = item.as_table_like() else {
        ctx.error(&span, sec.scope.say("triage must be a name from [[users]] or { jira = \"<account id>\" }"));
        return None;
    };
    let inner = Section::new(table, span, sec.scope.child("triage"));
    inner.check_keys(ctx, &["jira"]);
    let text = inner.non_empty_str(ctx, "jira", true)?;
    jira_account(ctx, &inner, "jira", &text).map(Some)
}

fn ownership(ctx: &mut Ctx, sec: &Section<'_>) -> Option<Ownership> {
    let mut ownership = Ownership::default();
    if !sec.has("ownership") {
        return Some(ownership);
    }
    let inner = sec.table(ctx, "ownership", sec.scope.child("ownership"))?;
    let mut known = vec!["title", "assignee", "status"];
    known.extend_from_slice(BASECAMP_ONLY_FIELDS);
    inner.check_keys(ctx, &known);
    let mut ok = true;
    for (key, slot) in [("title", &mut ownership.title), ("assignee", &mut ownership.assignee)] {
        let Some(word) = inner.str(ctx, key) else {
            ok &= !inner.has(key);
            continue;
        };
        match word.value.parse::<Owner>() {
            Ok(owner) => *slot = owner,
            Err(e) => {
                ctx.error(&word.span, inner.scope.say(format!("{key}: {e}")));
                ok = false;
            }
        }
    }
    for key in BASECAMP_ONLY_FIELDS {
        let Some(word) = inner.str(ctx, key) else {
            ok &= !inner.has(key);
            continue;
        };
        if word.value != "basecamp" {
            ctx.error(
                &word.span,
                inner.scope.say(format!(
                    "{key} = {:?} is not possible: {} flow Basecamp → tracker only (write \"basecamp\" or leave it out)",
                    word.value,
                    BASECAMP_ONLY_FIELDS.join(", ")
                )),
            );
            ok = false;
        }
    }
    if inner.has("status") {
        ctx.error(
            &inner.key_span("status"),
            inner
                .scope
                .say("status is not set here: use the route's status_strategy (dev-owned, pm-owned, bidirectional)"),
        );
        ok = false;
    }
    ok.then_some(ownership)
}
