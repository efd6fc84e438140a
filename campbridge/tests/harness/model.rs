//! The workload and its model: people editing both sides, and what each field must hold afterwards.
//!
//! Records are to-dos (nine in ten in a routed list, the rest in `Backlog`, which creates nothing) and,
//! once synced, their Jira issues. Each event is one person's action through a simulator's control API:
//! Basecamp — create, retitle, describe, assign, set a due date, complete/uncomplete, comment (`DEV:` or
//! plain); Jira — retitle, describe, reassign, transition, comment (`PM:` or plain); Bitbucket — open a
//! pull request naming the issue, push to it, merge it, post a build status. The model records what each
//! person did; [`verify`] then checks every field against the route's rules (title: both sides, last
//! writer wins; description, assignee, due date: Basecamp owns; status: Jira owns) and counts every
//! duplicate.

use std::collections::{BTreeMap, BTreeSet};

use campbridge_simulators::{basecamp as bc, bitbucket as bb, jira};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use shared::domain::{DevItemRef, Field, PairKey, TodoId};
use shared::ports::{DeliveryClaim, Resolution};

use super::world::World;

const TITLE_PREFIX: &str = "[BC][WEB] ";
/// Basecamp people and the Jira account the config's user table maps each to (`None`: unassigned → triage).
const PEOPLE: [(Option<i64>, &str); 4] =
    [(Some(bc::ANNIE), jira::ANNIE), (Some(bc::JARED), jira::JARED), (Some(bc::VICTOR), jira::EMMA), (None, jira::MIA)];
const JIRA_PEOPLE: [&str; 3] = [jira::ANNIE, jira::JARED, jira::EMMA];

/// One pull request on a record's issue.
#[derive(Debug, Clone)]
struct Pr {
    id: u64,
    branch: String,
    merged: bool,
    /// Commits that got a FAILED status / a SUCCESSFUL one.
    failed: BTreeSet<String>,
    passed: BTreeSet<String>,
}

/// What people did to one to-do and its issue.
#[derive(Debug, Clone)]
struct Rec {
    todo: i64,
    routed: bool,
    item: Option<DevItemRef>,
    /// Title edits with their global sequence number, per side.
    bc_titles: Vec<(u64, String)>,
    jira_titles: Vec<(u64, String)>,
    description: String,
    assignee: Option<i64>,
    due: Option<String>,
    status: &'static str,
    dev_comments: Vec<String>,
    bc_plain: Vec<String>,
    pm_comments: Vec<String>,
    jira_plain: Vec<String>,
    prs: Vec<Pr>,
}

/// The people, the records, and what happened.
pub struct Workload {
    rng: StdRng,
    recs: Vec<Rec>,
    seq: u64,
    pub events: BTreeMap<&'static str, u64>,
    sprint: i64,
    backlog: i64,
    records: usize,
    /// The run's length in events (records are created over its first half).
    length: u64,
    /// What a person found that the model says cannot be (reported as lost updates).
    anomalies: Vec<String>,
}

/// The invariants after a run.
#[derive(Debug, Default)]
pub struct Verdict {
    pub records: usize,
    pub routed: usize,
    pub issues: usize,
    pub duplicates: Vec<String>,
    pub fields_checked: usize,
    pub lost_updates: Vec<String>,
    pub deliveries_accepted: usize,
    pub deliveries_not_completed: Vec<String>,
    pub dead_letters: usize,
    pub echo_writes: u64,
    pub final_pass_jobs: usize,
    pub conflicts_logged: usize,
}

impl Verdict {
    pub fn holds(&self) -> bool {
        self.duplicates.is_empty()
            && self.lost_updates.is_empty()
            && self.deliveries_not_completed.is_empty()
            && self.dead_letters == 0
            && self.echo_writes == 0
    }
}

fn strip(summary: &str) -> &str {
    summary.strip_prefix(TITLE_PREFIX).unwrap_or(summary)
}

fn adf(text: &str) -> Value {
    json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]})
}

impl Workload {
    pub async fn new(world: &World, seed: u64, records: usize, length: u64) -> Self {
        let sprint = world.basecamp.list_id("Sprint 1").await.expect("the seeded Sprint 1");
        let backlog = world.basecamp.list_id("Backlog").await.expect("the seeded Backlog");
        Self {
            rng: StdRng::seed_from_u64(seed),
            recs: Vec::new(),
            seq: 0,
            events: BTreeMap::new(),
            sprint,
            backlog,
            records,
            length,
            anomalies: Vec::new(),
        }
    }

    pub fn total(&self) -> u64 {
        self.events.values().sum()
    }

    /// Jared opens a pull request naming record `i`'s issue, on a branch of its own.
    async fn open_pr(&mut self, world: &World, i: usize, item: &DevItemRef, seq: u64) {
        let key = item.display_name().to_owned();
        let branch = format!("feature/{}-p{seq}", key.to_lowercase());
        let id = world
            .bitbucket
            .open_pullrequest(&format!("Fix {key} (p{seq})"), "Fixes it.", &branch, "jared")
            .await
            .unwrap();
        self.recs[i].prs.push(Pr { id, branch, merged: false, failed: BTreeSet::new(), passed: BTreeSet::new() });
        self.count("bitbucket: open PR");
    }

    fn count(&mut self, kind: &'static str) {
        *self.events.entry(kind).or_default() += 1;
    }

    /// The issue of record `i`, once the sync has paired it.
    async fn item(&mut self, world: &World, i: usize) -> Option<DevItemRef> {
        if self.recs[i].item.is_none() && self.recs[i].routed {
            let key = PairKey { route: world.route.clone(), todo: TodoId(self.recs[i].todo) };
            self.recs[i].item =
                world.pairs().get(&key).await.ok().flatten().filter(|p| p.is_linked()).and_then(|p| p.item);
        }
        self.recs[i].item.clone()
    }

    /// One person's action; returns its kind.
    pub async fn step(&mut self, world: &World) {
        self.seq += 1;
        let seq = self.seq;
        // Records are created over the first half of the run.
        let share = (2.0 * self.records as f64 / self.length.max(1) as f64).min(0.9);
        let creating = self.recs.len() < self.records && (self.recs.len() < 3 || self.rng.gen_bool(share));
        if creating {
            self.create(world, seq).await;
            return;
        }
        let i = self.rng.gen_range(0..self.recs.len());
        let mut roll = self.rng.gen_range(0..100);
        let item = if roll >= 50 { self.item(world, i).await } else { None };
        if roll >= 50 && item.is_none() {
            // Not synced yet (or not routed): people keep working in Basecamp.
            roll = self.rng.gen_range(0..50);
        }
        let todo = self.recs[i].todo;
        // Edits of the to-do itself never land inside the sync's read-merge-write of it (see TodoLocks).
        let _person = if roll < 37 { Some(world.locks.person(todo).await) } else { None };
        match (roll, item) {
            (0..=11, _) => {
                let title = format!("t{seq} edited in Basecamp");
                let edit = bc::TodoEdit { content: Some(title.clone()), ..Default::default() };
                world.basecamp.edit_todo(todo, edit, bc::ANNIE).await.unwrap();
                self.recs[i].bc_titles.push((seq, title));
                self.count("basecamp: retitle");
            }
            (12..=19, _) => {
                let edit =
                    bc::TodoEdit { description: Some(format!("<div>d{seq}z steps</div>")), ..Default::default() };
                world.basecamp.edit_todo(todo, edit, bc::ANNIE).await.unwrap();
                self.recs[i].description = format!("d{seq}z");
                self.count("basecamp: describe");
            }
            (20..=27, _) => {
                let (person, _) = *PEOPLE.choose(&mut self.rng).unwrap_or(&PEOPLE[0]);
                world.basecamp.assign_todo(todo, person.into_iter().collect(), bc::ANNIE).await.unwrap();
                self.recs[i].assignee = person;
                self.count("basecamp: assign");
            }
            (28..=31, _) => {
                let due = format!("2027-0{}-{:02}", self.rng.gen_range(1..=9), self.rng.gen_range(1..=28));
                let edit = bc::TodoEdit { due_on: Some(due.clone()), ..Default::default() };
                world.basecamp.edit_todo(todo, edit, bc::ANNIE).await.unwrap();
                self.recs[i].due = Some(due);
                self.count("basecamp: due date");
            }
            (32..=36, _) => {
                // The PM ticks (or unticks) the to-do: status belongs to Jira, so the sync puts it back.
                let done = world.basecamp.record("todos", todo).await.and_then(|t| t["completed"].as_bool());
                if done == Some(true) {
                    world.basecamp.uncomplete_todo(todo, bc::ANNIE).await.unwrap();
                } else {
                    world.basecamp.complete_todo(todo, bc::ANNIE).await.unwrap();
                }
                self.count("basecamp: complete/uncomplete");
            }
            (37..=43, _) => {
                let token = format!("dev{seq}z");
                world
                    .basecamp
                    .comment(todo, &format!("<div>DEV: {token} needs a look</div>"), bc::ANNIE)
                    .await
                    .unwrap();
                self.recs[i].dev_comments.push(token);
                self.count("basecamp: DEV: comment");
            }
            (44..=49, _) => {
                let token = format!("fyi{seq}z");
                world.basecamp.comment(todo, &format!("<div>{token} thanks</div>"), bc::JARED).await.unwrap();
                self.recs[i].bc_plain.push(token);
                self.count("basecamp: plain comment");
            }
            (50..=59, Some(item)) => {
                let title = format!("t{seq} edited in Jira");
                let body = json!({"fields": {"summary": format!("{TITLE_PREFIX}{title}")}});
                world.jira.edit_issue(item.display_name(), body, jira::JARED).await.unwrap();
                self.recs[i].jira_titles.push((seq, title));
                self.count("jira: retitle");
            }
            (60..=62, Some(item)) => {
                let body = json!({"fields": {"description": adf(&format!("jd{seq} overwritten by a developer"))}});
                world.jira.edit_issue(item.display_name(), body, jira::JARED).await.unwrap();
                self.count("jira: describe (not the owner)");
            }
            (63..=66, Some(item)) => {
                let who = *JIRA_PEOPLE.choose(&mut self.rng).unwrap_or(&jira::JARED);
                world.jira.assign_issue(item.display_name(), Some(who), jira::JARED).await.unwrap();
                self.count("jira: reassign (not the owner)");
            }
            (67..=76, Some(item)) => {
                // The workflow's transitions from where the developer left the issue.
                let next: &[&'static str] = match self.recs[i].status {
                    "To Do" => &["In Progress", "Done"],
                    "In Progress" => &["To Do", "Done"],
                    _ => &["To Do"],
                };
                let to = *next.choose(&mut self.rng).unwrap_or(&next[0]);
                if let Err(e) = world.jira.transition_issue(item.display_name(), to, jira::JARED).await {
                    // Only the developer moves the status: the sync must never have moved it elsewhere.
                    let actual =
                        world.jira.issue(item.display_name()).await.map(|i| i["fields"]["status"]["name"].clone());
                    self.anomalies.push(format!(
                        "{}: the developer left it {:?}, but it is {actual:?} ({e})",
                        item.display_name(),
                        self.recs[i].status
                    ));
                    return;
                }
                self.recs[i].status = to;
                self.count("jira: transition");
            }
            (77..=81, Some(item)) => {
                let token = format!("pm{seq}z");
                world
                    .jira
                    .comment_issue(item.display_name(), &format!("PM: {token} is ready for review"), jira::JARED)
                    .await
                    .unwrap();
                self.recs[i].pm_comments.push(token);
                self.count("jira: PM: comment");
            }
            (82..=84, Some(item)) => {
                let token = format!("jira{seq}z");
                world
                    .jira
                    .comment_issue(item.display_name(), &format!("{token} internal note"), jira::JARED)
                    .await
                    .unwrap();
                self.recs[i].jira_plain.push(token);
                self.count("jira: plain comment");
            }
            (85..=88, Some(item)) => self.open_pr(world, i, &item, seq).await,
            (89..=99, Some(item)) => {
                let open: Vec<usize> = (0..self.recs[i].prs.len()).filter(|p| !self.recs[i].prs[*p].merged).collect();
                let Some(&p) = open.choose(&mut self.rng) else {
                    self.open_pr(world, i, &item, seq).await;
                    return;
                };
                let id = self.recs[i].prs[p].id;
                match self.rng.gen_range(0..10) {
                    0..=1 => {
                        world.bitbucket.merge_pullrequest(id, "jared").await.unwrap();
                        self.recs[i].prs[p].merged = true;
                        self.count("bitbucket: merge PR");
                    }
                    2..=3 => {
                        world.bitbucket.update_pullrequest(id, None, None, true, "jared").await.unwrap();
                        self.count("bitbucket: push");
                    }
                    _ => {
                        let head = world.bitbucket.head_of(id).await.unwrap_or_default();
                        let state = if self.rng.gen_bool(0.5) { "FAILED" } else { "SUCCESSFUL" };
                        let status = bb::BuildStatus {
                            commit: head.clone(),
                            key: "ci".into(),
                            state: state.into(),
                            name: "CI".into(),
                            url: format!("https://ci.example.invalid/{seq}"),
                            refname: Some(self.recs[i].prs[p].branch.clone()),
                            ..Default::default()
                        };
                        world.bitbucket.post_build_status(status, "jared").await.unwrap();
                        let pr = &mut self.recs[i].prs[p];
                        if state == "FAILED" {
                            pr.failed.insert(head)
                        } else {
                            pr.passed.insert(head)
                        };
                        self.count("bitbucket: build status");
                    }
                }
            }
            (_, _) => unreachable!("every roll is covered, and an action on an unpaired record rolled again"),
        }
    }

    async fn create(&mut self, world: &World, seq: u64) {
        let routed = self.recs.len() % 10 != 9;
        let list = if routed { self.sprint } else { self.backlog };
        let (person, _) = PEOPLE[self.recs.len() % PEOPLE.len()];
        let title = format!("t{seq} created");
        let write = bc::TodoWrite {
            content: Some(title.clone()),
            description: Some(format!("<div>d{seq}z steps</div>")),
            assignee_ids: Some(person.into_iter().collect()),
            ..Default::default()
        };
        let todo = world.basecamp.create_todo(list, write, bc::ANNIE).await.unwrap();
        self.recs.push(Rec {
            todo,
            routed,
            item: None,
            bc_titles: vec![(seq, title)],
            jira_titles: Vec::new(),
            description: format!("d{seq}z"),
            assignee: person,
            due: None,
            status: "To Do",
            dev_comments: Vec::new(),
            bc_plain: Vec::new(),
            pm_comments: Vec::new(),
            jira_plain: Vec::new(),
            prs: Vec::new(),
        });
        self.count(if routed { "basecamp: create (routed)" } else { "basecamp: create (not routed)" });
    }

    /// Checks every record against the model (after the world has quiesced and its faults are off).
    pub async fn verify(&mut self, world: &World) -> Verdict {
        let mut v = Verdict { records: self.recs.len(), lost_updates: self.anomalies.clone(), ..Verdict::default() };
        let http = reqwest::Client::new();
        let issues = jira_issues(world).await;
        v.issues = issues.len();
        let conflicts = world.backend.conflicts.list(false, 100_000).await.unwrap();
        v.conflicts_logged = conflicts.len();
        let mut by_marker: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
        for issue in &issues {
            for label in issue["fields"]["labels"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if let Some(todo) = label.strip_prefix("bc-").and_then(|t| t.parse::<i64>().ok()) {
                    by_marker.entry(todo).or_default().push(issue);
                }
            }
        }
        for i in 0..self.recs.len() {
            let item = self.item(world, i).await;
            let rec = self.recs[i].clone();
            let todo = rec.todo;
            let found = by_marker.get(&todo).map_or(0, Vec::len);
            if !rec.routed {
                if found > 0 || item.is_some() {
                    v.duplicates.push(format!("to-do {todo} outside the route has {found} issue(s)"));
                }
                continue;
            }
            v.routed += 1;
            if found != 1 {
                v.duplicates.push(format!("to-do {todo} has {found} issues"));
            }
            let Some(item) = item else {
                v.lost_updates.push(format!("to-do {todo} was never paired"));
                continue;
            };
            let key = item.display_name().to_owned();
            let issue = world.jira.issue(&key).await.unwrap_or(Value::Null);
            let f = &issue["fields"];
            let t = world.basecamp.record("todos", todo).await.unwrap_or(Value::Null);
            let mut check = |ok: bool, what: String| {
                v.fields_checked += 1;
                if !ok {
                    v.lost_updates.push(what);
                }
            };

            // Title: both sides; equal on both, the last edit unless a logged conflict chose the other side.
            let bc_title = t["content"].as_str().unwrap_or_default().to_owned();
            let jira_title = strip(f["summary"].as_str().unwrap_or_default()).to_owned();
            check(bc_title == jira_title, format!("{key}: title {bc_title:?} in Basecamp, {jira_title:?} in Jira"));
            let last_bc = rec.bc_titles.last().cloned();
            let last_jira = rec.jira_titles.last().cloned();
            let last = match (&last_bc, &last_jira) {
                (Some(b), Some(j)) if j.0 > b.0 => j.1.clone(),
                (Some(b), _) => b.1.clone(),
                (None, Some(j)) => j.1.clone(),
                (None, None) => String::new(),
            };
            let candidates: Vec<&String> = last_bc.iter().chain(last_jira.iter()).map(|(_, t)| t).collect();
            let conflicted = conflicts
                .iter()
                .any(|c| c.pair.todo.0 == todo && c.field == Field::Title && c.resolution != Resolution::Open);
            check(
                bc_title == last || (conflicted && candidates.contains(&&bc_title)),
                format!("{key}: title {bc_title:?}, but the last edit was {last:?} (conflict logged: {conflicted})"),
            );

            // Description, assignee, due date: Basecamp's; a developer's edit is put back.
            let bc_description = t["description"].as_str().unwrap_or_default();
            check(
                bc_description.contains(&rec.description),
                format!("{key}: Basecamp description lost {}", rec.description),
            );
            let jira_description = shared::richtext::adf_to_text(&f["description"]);
            check(
                jira_description.contains(&rec.description) && !jira_description.contains("overwritten by a developer"),
                format!("{key}: Jira description {jira_description:?} lacks {} (Basecamp owns it)", rec.description),
            );
            let expected = PEOPLE.iter().find(|(p, _)| *p == rec.assignee).map_or(jira::MIA, |(_, j)| *j);
            let actual = f["assignee"]["accountId"].as_str().unwrap_or_default();
            check(actual == expected, format!("{key}: assignee {actual:?}, Basecamp says {expected:?}"));
            if let Some(due) = &rec.due {
                let actual = f["duedate"].as_str().unwrap_or_default();
                check(actual == due, format!("{key}: due {actual:?}, Basecamp says {due:?}"));
            }

            // Status: Jira's; the to-do's completion follows it, whatever the PM ticked.
            let status = f["status"]["name"].as_str().unwrap_or_default();
            check(status == rec.status, format!("{key}: status {status:?}, the developer left it {:?}", rec.status));
            let completed = t["completed"].as_bool().unwrap_or(false);
            check(completed == (rec.status == "Done"), format!("{key}: to-do completed = {completed} with {status:?}"));

            // Comments and signals: each exactly once where it belongs, nowhere else.
            let jira_comments = jira_comment_texts(world, &http, &key).await;
            let todo_comments = basecamp_comment_texts(world, &http, todo).await;
            let once = |texts: &[String], needle: &str| texts.iter().filter(|c| c.contains(needle)).count();
            let mut fixed_twice = Vec::new();
            let mut exactly = |n: usize, want: usize, what: String| {
                if n > want {
                    v.duplicates.push(format!("{what}: {n}"));
                } else if n < want {
                    v.lost_updates.push(format!("{what}: {n}"));
                }
            };
            for token in &rec.dev_comments {
                exactly(once(&jira_comments, token), 1, format!("{key}: Jira twins of DEV: {token}"));
            }
            for token in &rec.bc_plain {
                exactly(once(&jira_comments, token), 0, format!("{key}: Jira copies of plain comment {token}"));
            }
            for token in &rec.pm_comments {
                exactly(once(&todo_comments, token), 1, format!("to-do {todo}: Basecamp twins of PM: {token}"));
            }
            for token in &rec.jira_plain {
                exactly(once(&todo_comments, token), 0, format!("to-do {todo}: copies of Jira note {token}"));
            }
            exactly(once(&todo_comments, "Linked to Jira issue"), 1, format!("to-do {todo}: link comments"));
            let links = jira_get(world, &http, &format!("/rest/api/3/issue/{key}/remotelink")).await;
            let links: Vec<String> = links
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["globalId"].as_str().map(str::to_owned))
                .collect();
            let linked = |prefix: &str| links.iter().filter(|g| g.starts_with(prefix)).count();
            exactly(linked("system=basecamp&"), 1, format!("{key}: remote links to the to-do"));
            for pr in &rec.prs {
                let n = links
                    .iter()
                    .filter(|g| g.starts_with("system=bitbucket&") && g.ends_with(&format!("#{}", pr.id)))
                    .count();
                exactly(n, 1, format!("{key}: remote links to PR #{}", pr.id));
            }
            for pr in &rec.prs {
                let says = |verb: &str| {
                    todo_comments.iter().filter(|c| c.contains(&format!("PR #{} ", pr.id)) && c.contains(verb)).count()
                };
                exactly(says("opened by"), 1, format!("to-do {todo}: PR #{} opened", pr.id));
                exactly(says("merged by"), usize::from(pr.merged), format!("to-do {todo}: PR #{} merged", pr.id));
                for commit in &pr.failed {
                    let short = &commit[..commit.len().min(7)];
                    let n =
                        todo_comments.iter().filter(|c| c.contains("Build failed: CI") && c.contains(short)).count();
                    exactly(n, 1, format!("to-do {todo}: failed-build alerts for {short}"));
                }
                for commit in &pr.passed {
                    let short = &commit[..commit.len().min(7)];
                    let n = todo_comments.iter().filter(|c| c.contains("Build fixed: CI") && c.contains(short)).count();
                    if n > 1 {
                        fixed_twice.push(format!("to-do {todo}: fixed-build notes for {short}: {n}"));
                    }
                }
            }
            v.duplicates.extend(fixed_twice);
        }
        let unowned = by_marker.values().flatten().count();
        if unowned != issues.len() {
            v.duplicates.push(format!("{} issue(s) carry no to-do's marker", issues.len() - unowned));
        }
        v.dead_letters = world.backend.queue.dead_letters().await.unwrap().len();

        // Every delivery the receivers accepted was applied or recorded: its claim is completed.
        let mut accepted = BTreeSet::new();
        for d in
            world.basecamp.deliveries().into_iter().chain(world.jira.deliveries()).chain(world.bitbucket.deliveries())
        {
            let body: Value =
                d.response_body.as_deref().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
            if body["status"] == "accepted"
                && let Some(id) = body["delivery"].as_str()
            {
                accepted.insert(id.to_owned());
            }
        }
        v.deliveries_accepted = accepted.len();
        let now = shared::ports::Clock::now(world.clock.as_ref());
        for id in &accepted {
            let claim = world
                .deliveries()
                .claim(&shared::domain::DeliveryId(id.clone()), now, std::time::Duration::from_secs(1))
                .await;
            if !matches!(claim, Ok(DeliveryClaim::Completed)) {
                v.deliveries_not_completed.push(format!("{id}: {claim:?}"));
            }
        }
        v
    }

    /// The audit trail of every record the verdict names, newest first (for a failing run's report).
    pub async fn trails(&self, world: &World, verdict: &Verdict) -> String {
        let mut out = String::new();
        let named: Vec<&String> = verdict.duplicates.iter().chain(&verdict.lost_updates).collect();
        for rec in &self.recs {
            let key = rec.item.as_ref().map(|i| i.display_name().to_owned()).unwrap_or_default();
            let todo = rec.todo.to_string();
            if !named.iter().any(|n| (!key.is_empty() && n.starts_with(&format!("{key}:"))) || n.contains(&todo)) {
                continue;
            }
            out.push_str(&format!("\n== to-do {todo} ({key}): {rec:?}\n"));
            let pair = world.pairs().get(&PairKey { route: world.route.clone(), todo: TodoId(rec.todo) }).await;
            if let Ok(Some(p)) = pair {
                out.push_str(&format!("   pair v{}: backlink {:?}, signals {:?}\n", p.version, p.backlink, p.signals));
            }
            let http = reqwest::Client::new();
            for c in basecamp_comment_texts(world, &http, rec.todo).await {
                out.push_str(&format!("   comment: {}\n", c.chars().take(120).collect::<String>()));
            }
            let subject = format!("{}/{todo}", world.route);
            for e in world.backend.stores.audit.recent(Some(&subject), 200).await.unwrap_or_default() {
                out.push_str(&format!(
                    "   {} {} [{}] {}\n",
                    e.at.format("%H:%M:%S%.3f"),
                    e.action,
                    e.delivery.map(|d| d.0).unwrap_or_default(),
                    e.detail
                ));
            }
        }
        out
    }

    /// Every to-do and every issue looked at once more, as a reconcile pass would: the sync's own writes
    /// are all in its snapshots, so this must write nothing anywhere. Returns the jobs enqueued.
    pub async fn final_pass(&mut self, world: &World) -> usize {
        let route = &world.config.routes[0];
        let now = shared::ports::Clock::now(world.clock.as_ref());
        let mut jobs = Vec::new();
        for (n, rec) in self.recs.iter().enumerate() {
            jobs.push(shared::domain::Job::TodoChanged {
                delivery: shared::domain::DeliveryId(format!("final:todo:{n}")),
                route: route.id.clone(),
                project: route.project,
                todo: TodoId(rec.todo),
                event: "poll".into(),
                received_at: now,
            });
            if let Some(DevItemRef::Jira { id, key }) = &rec.item {
                jobs.push(shared::domain::Job::IssueChanged {
                    delivery: shared::domain::DeliveryId(format!("final:issue:{n}")),
                    issue: id.clone(),
                    key: key.clone(),
                    event: "poll".into(),
                    received_at: now,
                });
            }
        }
        for job in &jobs {
            let body = job.to_wire().unwrap();
            world.backend.queue.send(&job.record().group_id(), job.delivery().as_str(), &body).await.unwrap();
        }
        jobs.len()
    }
}

/// Every issue in the Jira simulator (keys are numbered from 1; none is ever deleted here).
async fn jira_issues(world: &World) -> Vec<Value> {
    let mut out = Vec::new();
    let mut missing = 0;
    let mut n = 1;
    while missing < 20 {
        match world.jira.issue(&format!("WEB-{n}")).await {
            Some(issue) => {
                out.push(issue);
                missing = 0;
            }
            None => missing += 1,
        }
        n += 1;
    }
    out
}

async fn jira_get(world: &World, http: &reqwest::Client, path: &str) -> Value {
    http.get(format!("{}{path}", world.jira.base_url()))
        .basic_auth(jira::BOT_EMAIL, Some(jira::API_TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The plain text of every comment on issue `key` (all pages).
async fn jira_comment_texts(world: &World, http: &reqwest::Client, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let page =
            jira_get(world, http, &format!("/rest/api/3/issue/{key}/comment?startAt={}&maxResults=100", out.len()))
                .await;
        let comments = page["comments"].as_array().cloned().unwrap_or_default();
        if comments.is_empty() {
            return out;
        }
        out.extend(comments.iter().map(|c| shared::richtext::adf_to_text(&c["body"])));
        if page["total"].as_u64().is_some_and(|t| out.len() as u64 >= t) {
            return out;
        }
    }
}

/// The HTML of every comment on to-do `todo` (all pages, following `Link: rel="next"`).
async fn basecamp_comment_texts(world: &World, http: &reqwest::Client, todo: i64) -> Vec<String> {
    let mut out = Vec::new();
    let mut url = Some(format!("{}/recordings/{todo}/comments.json", world.basecamp.base_url()));
    while let Some(next) = url.take() {
        let response = http
            .get(&next)
            .bearer_auth(bc::ACCESS_TOKEN)
            .header("User-Agent", "campbridge chaos (tests@campbridge.invalid)")
            .send()
            .await
            .unwrap();
        url = response
            .headers()
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find(|part| part.contains("rel=\"next\""))
            .and_then(|part| part.split(';').next())
            .map(|t| t.trim().trim_start_matches('<').trim_end_matches('>').to_owned());
        let page: Value = response.json().await.unwrap();
        out.extend(page.as_array().into_iter().flatten().filter_map(|c| c["content"].as_str().map(str::to_owned)));
    }
    out
}

/// The sync's writes so far (non-GET API requests), per simulator.
pub fn writes(world: &World) -> u64 {
    let count = |calls: campbridge_simulators::common::calls::Calls| {
        calls.0.iter().filter(|(k, _)| !k.starts_with("GET ")).map(|(_, n)| n).sum::<u64>()
    };
    count(world.basecamp.calls()) + count(world.jira.calls()) + count(world.bitbucket.calls())
}

/// The queue's depth now.
pub async fn depth(world: &World) -> u64 {
    world.backend.queue.depth().await.unwrap_or(0)
}
