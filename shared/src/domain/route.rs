//! A [`Route`]'s rules: which to-dos it takes, how they look on the tracker, and who owns each field.
//! Everything here is pure; the config module builds routes from `campbridge.toml`.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ids::{JiraAccountId, PersonId, ProjectId, RouteId};
use super::model::{DevItem, Field, Fields, Priority, Todo};
use super::target::TrackerTarget;

/// Declares a closed set of kebab-case words with a readable parse error naming what was expected.
macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $word)] $variant),+
        }

        impl $name {
            pub const WORDS: &'static [&'static str] = &[$($word),+];
            pub const WHAT: &'static str = $what;
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $word),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok(Self::$variant),)+
                    _ => Err(UnknownWord { what: $what, got: s.to_owned(), expected: Self::WORDS }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A word outside a closed set, e.g. `unknown status strategy "dev_owned" (expected dev-owned, …)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {got:?} (expected {})", expected.join(", "))]
pub struct UnknownWord {
    pub what: &'static str,
    pub got: String,
    pub expected: &'static [&'static str],
}

word_enum!(
    /// Which side's value wins for a field.
    Owner, "owner" {
        Basecamp = "basecamp",
        Tracker = "tracker",
        /// Either side may change it; a change on both since the snapshot is a conflict.
        Both = "both",
    }
);

word_enum!(
    /// How a conflict on a `both` field is settled. Every conflict is logged whatever the policy.
    ConflictPolicy, "conflict policy" {
        /// The side whose record was updated last wins (Basecamp on a tie).
        LastWriterWins = "last-writer-wins",
        BasecampWins = "basecamp-wins",
        TrackerWins = "tracker-wins",
        /// Neither side is overwritten; the field stops syncing until a person resolves the conflict.
        Manual = "manual",
    }
);

word_enum!(
    /// Which build statuses reach the to-do.
    BuildSignals, "build signal setting" {
        /// A failure once per (commit, build), and "fixed" when it passes again.
        FailedOnly = "failed-only",
        /// Failures, fixes, and a note when a build passes on a commit.
        All = "all",
        Off = "off",
    }
);

word_enum!(
    /// Who moves status.
    StatusStrategy, "status strategy" {
        /// Tracker done → to-do completed; reopened → uncompleted. Basecamp completion is put back.
        DevOwned = "dev-owned",
        /// To-do completed → tracker transitioned to done; uncompleted → back to a new status.
        PmOwned = "pm-owned",
        /// Both ways, with the conflict policy.
        Bidirectional = "bidirectional",
    }
);

impl StatusStrategy {
    pub fn owner(self) -> Owner {
        match self {
            Self::DevOwned => Owner::Tracker,
            Self::PmOwned => Owner::Basecamp,
            Self::Bidirectional => Owner::Both,
        }
    }
}

/// A `*`/`?` glob over to-do list names, matched case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Glob(String);

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Self(pattern.to_owned())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn matches(&self, text: &str) -> bool {
        let p: Vec<char> = self.0.to_lowercase().chars().collect();
        let t: Vec<char> = text.to_lowercase().chars().collect();
        // Iterative wildcard match with single-star backtracking: linear in practice, no recursion.
        let (mut pi, mut ti) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&c) if c == '?' || c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

/// The tracker summary template, e.g. `[BC][{code}] {title}`. It contains `{title}` exactly once, so
/// [`TitleTemplate::extract`] undoes [`TitleTemplate::render`] for any title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TitleTemplate {
    prefix: String,
    suffix: String,
}

/// A template that cannot round-trip titles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("title template {template:?} must contain {{title}} exactly once")]
pub struct TemplateError {
    pub template: String,
}

impl TitleTemplate {
    pub const DEFAULT: &'static str = "[BC][{code}] {title}";

    /// Builds the template for one route, substituting `{code}` now.
    pub fn parse(template: &str, code: &str) -> Result<Self, TemplateError> {
        let filled = template.replace("{code}", code);
        match filled.split_once("{title}") {
            Some((prefix, suffix)) if !suffix.contains("{title}") => {
                Ok(Self { prefix: prefix.to_owned(), suffix: suffix.to_owned() })
            }
            _ => Err(TemplateError { template: template.to_owned() }),
        }
    }

    pub fn render(&self, title: &str) -> String {
        format!("{}{}{}", self.prefix, title, self.suffix)
    }

    /// The title inside a summary. A summary someone rewrote without the template is taken whole; the
    /// bare template (`[BC][WEB]`, Jira trims the space after it) holds no title: `""`.
    pub fn extract<'a>(&self, summary: &'a str) -> &'a str {
        if let Some(title) =
            summary.strip_prefix(self.prefix.as_str()).and_then(|rest| rest.strip_suffix(self.suffix.as_str()))
        {
            return title;
        }
        if summary.trim() == format!("{}{}", self.prefix, self.suffix).trim() {
            return "";
        }
        summary
    }
}

/// The tracker description template. Placeholders: `{context}`, `{description}`, `{link}`, `{due}`,
/// `{artifacts}`, `{project}`, `{list}`, `{creator}`, `{title}`. Values are HTML-escaped except
/// `{description}`, which is already Basecamp rich text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DescriptionTemplate(String);

impl Default for DescriptionTemplate {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

impl DescriptionTemplate {
    pub const DEFAULT: &'static str = concat!(
        "<p><strong>Context:</strong> {context}</p>",
        "{description}",
        "<p><strong>Basecamp:</strong> <a href=\"{link}\">{link}</a></p>",
        "<p><strong>Due:</strong> {due}</p>",
        "<p><strong>Artifacts:</strong></p>{artifacts}",
    );
    pub const PLACEHOLDERS: &'static [&'static str] =
        &["context", "description", "link", "due", "artifacts", "project", "list", "creator", "title"];

    pub fn new(template: &str) -> Self {
        Self(template.to_owned())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Placeholders in the template that are not known, for config validation.
    pub fn unknown_placeholders(&self) -> Vec<String> {
        let mut unknown = Vec::new();
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find('{') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('}') else { break };
            let name = &after[..end];
            if !Self::PLACEHOLDERS.contains(&name) {
                unknown.push(name.to_owned());
            }
            rest = &after[end + 1..];
        }
        unknown
    }

    pub fn render(&self, todo: &Todo) -> String {
        let context = format!(
            "{} › {} (added by {})",
            escape_html(&todo.project_name),
            escape_html(&todo.todolist_name),
            escape_html(&todo.creator_name)
        );
        let due = todo.due_on.map_or_else(|| "none".to_owned(), |d| d.to_string());
        let artifacts = if todo.artifacts.is_empty() {
            "<p>none</p>".to_owned()
        } else {
            let items: String = todo
                .artifacts
                .iter()
                .map(|a| format!("<li><a href=\"{}\">{}</a></li>", escape_html(&a.url), escape_html(&a.name)))
                .collect();
            format!("<ul>{items}</ul>")
        };
        let description = if todo.description.trim().is_empty() { String::new() } else { todo.description.clone() };
        // One pass over the template, so text inside substituted values is never re-interpreted.
        let mut out = String::with_capacity(self.0.len() + description.len() + 128);
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let value = after.find('}').and_then(|end| {
                let v = match &after[..end] {
                    "context" => context.clone(),
                    "description" => description.clone(),
                    "link" => escape_html(&todo.app_url),
                    "due" => due.clone(),
                    "artifacts" => artifacts.clone(),
                    "project" => escape_html(&todo.project_name),
                    "list" => escape_html(&todo.todolist_name),
                    "creator" => escape_html(&todo.creator_name),
                    "title" => escape_html(&todo.title),
                    _ => return None,
                };
                Some((v, end))
            });
            match value {
                Some((v, end)) => {
                    out.push_str(&v);
                    rest = &after[end + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Escapes text for inclusion in HTML.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Which to-dos a route takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Filter {
    /// To-do list name globs; empty means every list.
    pub todolists: Vec<Glob>,
    /// An opt-in marker (e.g. `#dev`) that must appear in the title or description.
    pub marker: Option<String>,
}

/// Why a to-do was not taken by a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum FilteredOut {
    OtherProject { project: ProjectId },
    ListNotRouted { list: String },
    MarkerMissing { marker: String },
    Inactive,
}

impl fmt::Display for FilteredOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherProject { project } => write!(f, "project {project} is not this route's"),
            Self::ListNotRouted { list } => write!(f, "to-do list {list:?} matches none of the route's lists"),
            Self::MarkerMissing { marker } => write!(f, "the opt-in marker {marker:?} is missing"),
            Self::Inactive => f.write_str("the to-do is trashed or archived"),
        }
    }
}

/// Labels/components a to-do list adds on the tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMapping {
    pub list: Glob,
    pub labels: Vec<String>,
    pub components: Vec<String>,
}

/// Per-field ownership for the fields that may be configured. Description, due date, priority, labels
/// and components always flow Basecamp → tracker (see docs/decisions/0002-field-ownership.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    pub title: Owner,
    pub assignee: Owner,
}

impl Default for Ownership {
    fn default() -> Self {
        Self { title: Owner::Both, assignee: Owner::Basecamp }
    }
}

/// One person known on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub basecamp: Option<PersonId>,
    pub jira: Option<JiraAccountId>,
}

/// The user table: Basecamp people ⇄ Jira accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UserTable {
    pub users: Vec<User>,
}

impl UserTable {
    pub fn jira_for(&self, person: PersonId) -> Option<&JiraAccountId> {
        self.users.iter().find(|u| u.basecamp == Some(person)).and_then(|u| u.jira.as_ref())
    }
    pub fn basecamp_for(&self, account: &JiraAccountId) -> Option<PersonId> {
        self.users.iter().find(|u| u.jira.as_ref() == Some(account)).and_then(|u| u.basecamp)
    }
    pub fn name_for_person(&self, person: PersonId) -> Option<&str> {
        self.users.iter().find(|u| u.basecamp == Some(person)).map(|u| u.name.as_str())
    }
}

/// One configured link from a Basecamp project to a tracker target, with its rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub id: RouteId,
    pub project: ProjectId,
    pub target: TrackerTarget,
    /// The short code in titles (`WEB` in `[BC][WEB] …`).
    pub code: String,
    pub title: TitleTemplate,
    pub description: DescriptionTemplate,
    pub filter: Filter,
    pub lists: Vec<ListMapping>,
    /// Added with the highest priority for `!P1`/`urgent`.
    pub escalation_label: String,
    /// Who gets items whose to-do has no mapped assignee.
    pub triage: Option<JiraAccountId>,
    pub ownership: Ownership,
    pub status: StatusStrategy,
    pub conflict_policy: ConflictPolicy,
    /// Basecamp comments starting with this prefix are mirrored to the tracker (`*` = every comment;
    /// `None` = none). Default `DEV:`.
    pub dev_comment_prefix: Option<String>,
    /// Tracker comments starting with this prefix are mirrored to the to-do (`*` = all; `None` = none).
    /// Default `PM:`.
    pub pm_comment_prefix: Option<String>,
    pub build_signals: BuildSignals,
    /// The priority of items whose to-do title has no priority marker (and after a marker is removed).
    pub default_priority: Priority,
    /// Extra values for the create request's `fields` (for fields the project's create screen requires
    /// and campbridge does not set), sent as written.
    pub create_fields: std::collections::BTreeMap<String, serde_json::Value>,
    /// Complete the to-do when a pull request naming it merges (needs a status strategy in which
    /// Basecamp's completion counts: `pm-owned` or `bidirectional`).
    pub complete_on_merge: bool,
    /// Secret token in this route's Basecamp webhook URL (derived, never configured by hand).
    #[serde(skip)]
    pub webhook_token: Option<String>,
}

/// The priority and escalation a to-do's title asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityMarker {
    pub priority: Priority,
    pub escalate: bool,
}

/// Reads `!P1`…`!P3` and `urgent` from a title (case-insensitive, whole words). The strongest wins.
pub fn priority_marker(title: &str) -> Option<PriorityMarker> {
    let mut best: Option<PriorityMarker> = None;
    for word in title.split(|c: char| c.is_whitespace() || ",;:()[]".contains(c)) {
        let found = match word.to_ascii_lowercase().trim_end_matches(['.', '!']) {
            "!p1" | "urgent" => Some(PriorityMarker { priority: Priority::Highest, escalate: true }),
            "!p2" => Some(PriorityMarker { priority: Priority::High, escalate: false }),
            "!p3" => Some(PriorityMarker { priority: Priority::Medium, escalate: false }),
            _ => None,
        };
        if let Some(f) = found.filter(|f| best.is_none_or(|b| f.priority < b.priority)) {
            best = Some(f);
        }
    }
    best
}

/// Jira rejects summaries over 255 characters and summaries with line breaks.
pub const MAX_SUMMARY_CHARS: usize = 255;

impl Route {
    /// The tracker summary for a to-do title: the template applied, on one line, cut to the tracker's
    /// limit (on a character boundary).
    pub fn summary_for(&self, title: &str) -> String {
        let rendered = self.title.render(title.trim());
        let one_line: String = rendered.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
        one_line.chars().take(MAX_SUMMARY_CHARS).collect::<String>().trim_end().to_owned()
    }

    /// The title the tracker will show for `title` once written (see [`Route::summary_for`]).
    pub fn tracker_title(&self, title: &str) -> String {
        self.title.extract(&self.summary_for(title)).trim().to_owned()
    }

    /// The owner of `field` on this route.
    pub fn owner(&self, field: Field) -> Owner {
        match field {
            Field::Title => self.ownership.title,
            Field::Assignee => self.ownership.assignee,
            Field::Status => self.status.owner(),
            Field::Description | Field::DueDate | Field::Priority | Field::Labels | Field::Components => {
                Owner::Basecamp
            }
        }
    }

    /// Whether this route takes `todo` (only asked before a pair exists; paired to-dos keep syncing).
    pub fn admits(&self, todo: &Todo) -> Result<(), FilteredOut> {
        if todo.project != self.project {
            return Err(FilteredOut::OtherProject { project: todo.project });
        }
        if !todo.is_active() {
            return Err(FilteredOut::Inactive);
        }
        if !self.filter.todolists.is_empty() && !self.filter.todolists.iter().any(|g| g.matches(&todo.todolist_name)) {
            return Err(FilteredOut::ListNotRouted { list: todo.todolist_name.clone() });
        }
        if let Some(marker) = &self.filter.marker {
            let m = marker.to_lowercase();
            if !todo.title.to_lowercase().contains(&m) && !todo.description.to_lowercase().contains(&m) {
                return Err(FilteredOut::MarkerMissing { marker: marker.clone() });
            }
        }
        Ok(())
    }

    /// Every label this route may set; only these are compared and changed on the tracker.
    pub fn managed_labels(&self) -> BTreeSet<String> {
        let mut set: BTreeSet<String> = self.lists.iter().flat_map(|m| m.labels.iter().cloned()).collect();
        set.insert(self.escalation_label.clone());
        set
    }

    /// Every component this route may set.
    pub fn managed_components(&self) -> BTreeSet<String> {
        self.lists.iter().flat_map(|m| m.components.iter().cloned()).collect()
    }

    /// The Jira account a new item for `todo` is assigned to: the first mapped assignee, else triage.
    pub fn assignee_for(&self, users: &UserTable, todo: &Todo) -> Option<JiraAccountId> {
        self.synced_assignee(todo.assignees.iter().find_map(|p| users.jira_for(*p)).cloned())
            .or_else(|| self.triage.clone())
    }

    /// Assignees as the sync compares them: the triage account means "nobody in particular", so it
    /// counts as unassigned on both sides (an unassigned to-do's item sits with triage).
    pub fn synced_assignee(&self, account: Option<JiraAccountId>) -> Option<JiraAccountId> {
        account.filter(|a| Some(a) != self.triage.as_ref())
    }

    /// The to-do's values as the tracker should hold them.
    pub fn project_todo(&self, users: &UserTable, todo: &Todo) -> Fields {
        let marker = priority_marker(&todo.title);
        let mut labels = BTreeSet::new();
        let mut components = BTreeSet::new();
        for m in self.lists.iter().filter(|m| m.list.matches(&todo.todolist_name)) {
            labels.extend(m.labels.iter().cloned());
            components.extend(m.components.iter().cloned());
        }
        if marker.is_some_and(|m| m.escalate) {
            labels.insert(self.escalation_label.clone());
        }
        Fields {
            title: todo.title.trim().to_owned(),
            // Cut to the tracker's limit with a link to the to-do, so a long description is never refused.
            description: crate::richtext::fit_html(
                &self.description.render(todo),
                "",
                self.target.rich_text_limit(),
                &todo.app_url,
            ),
            done: todo.completed,
            assignee: self.synced_assignee(todo.assignees.iter().find_map(|p| users.jira_for(*p)).cloned()),
            due: todo.due_on,
            priority: Some(marker.map_or(self.default_priority, |m| m.priority)),
            labels,
            components,
        }
    }

    /// The item's values, limited to what this route manages.
    pub fn project_item(&self, item: &DevItem) -> Fields {
        let managed_labels = self.managed_labels();
        let managed_components = self.managed_components();
        Fields {
            title: self.title.extract(&item.summary).trim().to_owned(),
            description: item.description.clone(),
            done: item.status.is_done(),
            assignee: self.synced_assignee(item.assignee.clone()),
            due: item.due,
            priority: item.priority,
            labels: item.labels.intersection(&managed_labels).cloned().collect(),
            components: item.components.intersection(&managed_components).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_title_template_renders_and_strips_the_prefix() {
        let t = TitleTemplate::parse(TitleTemplate::DEFAULT, "WEB").ok();
        let t = t.as_ref();
        assert_eq!(t.map(|t| t.render("Fix login")).as_deref(), Some("[BC][WEB] Fix login"));
        assert_eq!(t.map(|t| t.extract("[BC][WEB] Fix login")), Some("Fix login"));
    }

    #[test]
    fn the_bare_template_holds_no_title() {
        let t = TitleTemplate::parse(TitleTemplate::DEFAULT, "WEB").ok();
        assert_eq!(t.as_ref().map(|t| t.extract("[BC][WEB]")), Some(""));
        assert_eq!(t.as_ref().map(|t| t.extract(" [BC][WEB]  ")), Some(""));
    }

    #[test]
    fn a_summary_rewritten_without_the_prefix_is_taken_whole() {
        let t = TitleTemplate::parse(TitleTemplate::DEFAULT, "WEB").ok();
        assert_eq!(t.map(|t| t.extract("Fix login").to_owned()).as_deref(), Some("Fix login"));
    }

    #[test]
    fn a_title_template_without_exactly_one_title_placeholder_is_rejected() {
        assert!(TitleTemplate::parse("[BC] {code}", "WEB").is_err());
        assert!(TitleTemplate::parse("{title} {title}", "WEB").is_err());
    }

    #[test]
    fn globs_match_list_names_case_insensitively() {
        assert!(Glob::new("Sprint *").matches("sprint 12"));
        assert!(Glob::new("Bug?").matches("Bugs"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("*ops*").matches("DevOps backlog"));
        assert!(!Glob::new("Sprint *").matches("Backlog"));
        assert!(!Glob::new("Bug?").matches("Bug"));
        assert!(Glob::new("a*b*c").matches("aXXbYYc"));
        assert!(!Glob::new("a*b*c").matches("aXXbYY"));
    }

    #[test]
    fn p1_and_urgent_mean_highest_with_escalation_and_the_strongest_marker_wins() {
        assert_eq!(priority_marker("Fix it !P1"), Some(PriorityMarker { priority: Priority::Highest, escalate: true }));
        assert_eq!(
            priority_marker("URGENT: checkout down"),
            Some(PriorityMarker { priority: Priority::Highest, escalate: true })
        );
        assert_eq!(priority_marker("later !p3"), Some(PriorityMarker { priority: Priority::Medium, escalate: false }));
        assert_eq!(priority_marker("!P3 and !P2"), Some(PriorityMarker { priority: Priority::High, escalate: false }));
        assert_eq!(priority_marker("non-urgent tidy-up"), None);
        assert_eq!(priority_marker("plain"), None);
    }

    #[test]
    fn the_description_template_escapes_values_but_keeps_rich_text() {
        let todo = crate::testkit::todo(1, "Fix <login>");
        let html =
            DescriptionTemplate::default().render(&Todo { description: "<p>Steps <b>here</b></p>".into(), ..todo });
        assert!(html.contains("<p>Steps <b>here</b></p>"), "{html}");
        assert!(html.contains("Leto Laptop &amp; Co"), "{html}");
        assert!(html.contains("<p><strong>Due:</strong> none</p>"), "{html}");
    }

    #[test]
    fn unknown_description_placeholders_are_reported() {
        assert_eq!(DescriptionTemplate::new("{context} {bogus}").unknown_placeholders(), vec!["bogus".to_owned()]);
        assert!(DescriptionTemplate::default().unknown_placeholders().is_empty());
    }

    #[test]
    fn an_unknown_word_names_what_was_expected() {
        let err = "dev_owned".parse::<StatusStrategy>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(r#"unknown status strategy "dev_owned" (expected dev-owned, pm-owned, bidirectional)"#)
        );
    }
}
