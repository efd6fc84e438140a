//! Signals → Basecamp: pull requests and builds that name a paired item reach its to-do as one comment
//! per (pull request, state) and per (commit, build) — never a firehose. Each signal is claimed on the
//! pair (a version-conditioned write) before posting, so retries and duplicate webhooks post nothing
//! twice, on every store; a claim found on a retry is checked against the to-do's comments first.

use std::collections::BTreeMap;

use crate::domain::{
    Build, BuildNote, BuildSignals, BuildState, Job, Pair, PairKey, PullRequest, PullRequestState, Signal, SignalKey,
    TrackerTarget, escape_html,
};
use crate::ports::RemoteLink;

use super::engine::{Engine, Outcome, SyncError};
use super::plan::{Side, Skip};
use super::references::{Reference, find_references};

/// One comment (or link) a signal should leave on one to-do.
struct Post {
    key: SignalKey,
    /// `None`: no comment, only the mark (and, for a PR, the tracker link).
    html: Option<String>,
    /// Text a retry looks for among the to-do's comments to tell whether the post happened.
    needle: String,
    /// The mark left after posting (usually `Posted`; `Failing` for a failed build).
    after: Option<Signal>,
    /// Marks removed after posting (a fixed build clears its failure).
    clears: Vec<SignalKey>,
}

fn pr_verb(state: &PullRequestState) -> Option<&'static str> {
    match state {
        PullRequestState::Open => Some("opened"),
        PullRequestState::Merged => Some("merged"),
        PullRequestState::Declined => Some("declined"),
        PullRequestState::Superseded => Some("superseded"),
        PullRequestState::Other(_) => None,
    }
}

fn pr_posts(pr: &PullRequest, state: &PullRequestState) -> Vec<Post> {
    let Some(verb) = pr_verb(state) else { return Vec::new() };
    // The needle names this pull request and this state: a to-do can carry the notes of several PRs.
    let needle = format!("PR #{} “{}” {verb} by", pr.pr.id, escape_html(&pr.title));
    let html = format!(
        "<p>{needle} {} → <a href=\"{}\">{}</a></p>",
        escape_html(&pr.author),
        escape_html(&pr.url),
        escape_html(&pr.url)
    );
    let key = SignalKey::PullRequest { pr: pr.pr.clone(), state: state.clone() };
    vec![Post { key, html: Some(html), needle, after: None, clears: Vec::new() }]
}

fn build_posts(build: &Build, setting: BuildSignals, signals: &BTreeMap<SignalKey, Signal>) -> Vec<Post> {
    let short = build.commit.get(..7).unwrap_or(&build.commit);
    let branch = build.branch.as_deref().unwrap_or("?");
    let failing_key = SignalKey::build_failing(build);
    let link =
        |text: &str| format!("<p>{text} → <a href=\"{}\">{}</a></p>", escape_html(&build.url), escape_html(&build.url));
    let name = escape_html(&build.name);
    match (setting, &build.state) {
        (BuildSignals::Off, _) => Vec::new(),
        // Each needle names its commit: a to-do carries the notes of every build of its branches.
        (_, BuildState::Failed) => vec![Post {
            key: SignalKey::build(build, BuildNote::Failed),
            html: Some(link(&format!("Build failed: {name} on {} (commit {short})", escape_html(branch)))),
            needle: format!("Build failed: {name} on {} (commit {short})", escape_html(branch)),
            after: Some(Signal::Failing(build.commit.clone())),
            clears: Vec::new(),
        }],
        (_, BuildState::Successful) if signals.contains_key(&failing_key) => vec![Post {
            key: SignalKey::build(build, BuildNote::Fixed),
            html: Some(link(&format!("Build fixed: {name} passes again on {} (commit {short})", escape_html(branch)))),
            needle: format!("Build fixed: {name} passes again on {} (commit {short})", escape_html(branch)),
            after: None,
            clears: vec![failing_key],
        }],
        (BuildSignals::All, BuildState::Successful) => vec![Post {
            key: SignalKey::build(build, BuildNote::Passed),
            html: Some(link(&format!("Build passed: {name} on {} (commit {short})", escape_html(branch)))),
            needle: format!("Build passed: {name} on {} (commit {short})", escape_html(branch)),
            after: None,
            clears: Vec::new(),
        }],
        _ => Vec::new(),
    }
}

impl Engine {
    /// The linked pairs a set of texts refers to, each once.
    async fn referenced_pairs(&self, texts: &[&str]) -> Result<Vec<Pair>, SyncError> {
        let projects: Vec<String> = self
            .settings
            .routes
            .iter()
            .map(|r| match &r.target {
                TrackerTarget::Jira { project, .. } => project.as_str().to_owned(),
            })
            .collect();
        let project_refs: Vec<&str> = projects.iter().map(String::as_str).collect();
        let mut pairs: Vec<Pair> = Vec::new();
        for reference in find_references(texts, &project_refs) {
            let found = match reference {
                Reference::Issue(key) => {
                    match self.tracker.find_item(&key).await.map_err(SyncError::upstream(Side::Tracker))? {
                        Some(item) => self.pairs.find_by_item(&item).await?.into_iter().collect(),
                        None => Vec::new(),
                    }
                }
                Reference::Todo(todo) => {
                    let mut v = Vec::new();
                    for r in &self.settings.routes {
                        if let Some(p) = self.pairs.get(&PairKey { route: r.id.clone(), todo }).await? {
                            v.push(p);
                        }
                    }
                    v
                }
            };
            for p in found.into_iter().filter(Pair::is_linked) {
                if !pairs.iter().any(|q| q.key() == p.key()) {
                    pairs.push(p);
                }
            }
        }
        Ok(pairs)
    }

    /// A build status that names no branch (`refname` null, as Jenkins sends it) is traced to one through
    /// the pull requests that contain its commit: their branches, titles and descriptions are where its
    /// references are. The first such branch is the one the signal names.
    async fn traced_build(&self, build: &Build) -> Result<(Build, Vec<String>), SyncError> {
        let Some(host) = self.code_host.as_ref().filter(|_| build.branch.is_none()) else {
            return Ok((build.clone(), build.branch.iter().cloned().collect()));
        };
        let prs = host
            .commit_pull_requests(&build.repo, &build.commit)
            .await
            .map_err(|source| SyncError::CodeHost { source })?;
        let mut traced = build.clone();
        traced.branch = prs.iter().map(|p| p.source_branch.clone()).find(|b| !b.is_empty());
        let texts = prs.into_iter().flat_map(|p| [p.source_branch, p.title, p.description]).collect();
        Ok((traced, texts))
    }

    /// Posts a pull request's or build's signal on every to-do it refers to.
    pub(super) async fn sync_signal(&self, job: &Job) -> Result<Outcome, SyncError> {
        let mut traced = None;
        let (texts, pr): (Vec<String>, Option<(&PullRequest, &PullRequestState)>) = match job {
            Job::PullRequestChanged { pull_request, state, .. } => (
                vec![pull_request.title.clone(), pull_request.description.clone(), pull_request.source_branch.clone()],
                Some((pull_request, state)),
            ),
            Job::BuildChanged { build, .. } => {
                let (build, texts) = self.traced_build(build).await?;
                traced = Some(build);
                (texts, None)
            }
            _ => return Ok(Outcome::Skipped(Skip::Unchanged)),
        };
        let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let pairs = self.referenced_pairs(&text_refs).await?;
        tracing::debug!(texts = ?text_refs, pairs = pairs.len(), "signal references");
        if pairs.is_empty() {
            return Ok(Outcome::Skipped(Skip::NotPaired));
        }
        let mut writes = 0;
        for pair in pairs {
            let Some(route) = self.settings.routes.iter().find(|r| r.id == pair.route) else { continue };
            let posts = match (job, pr) {
                (_, Some((pull_request, state))) => {
                    if *state == PullRequestState::Open {
                        writes += self.link_pull_request(&pair, pull_request).await?;
                    }
                    if *state == PullRequestState::Merged && route.complete_on_merge {
                        writes += self.complete_on_merge(&pair, pull_request, job).await?;
                    }
                    pr_posts(pull_request, state)
                }
                (Job::BuildChanged { .. }, None) => match &traced {
                    Some(build) => build_posts(build, route.build_signals, &pair.signals),
                    None => Vec::new(),
                },
                _ => Vec::new(),
            };
            for post in posts {
                writes += self.post_signal(&pair.key(), post, job).await?;
            }
        }
        Ok(if writes > 0 { Outcome::Updated { writes, conflicts: 0 } } else { Outcome::Skipped(Skip::Unchanged) })
    }

    /// Mirrors a tracker comment that starts with the route's `PM:` prefix onto the paired to-do, once.
    pub(super) async fn sync_tracker_comment(&self, job: &Job) -> Result<Outcome, SyncError> {
        let Job::IssueCommentChanged { issue, key, comment, .. } = job else {
            return Ok(Outcome::Skipped(Skip::Unchanged));
        };
        let item = crate::domain::DevItemRef::Jira { id: issue.clone(), key: key.clone() };
        let Some(pair) = self.pairs.find_by_item(&item).await? else { return Ok(Outcome::Skipped(Skip::NotPaired)) };
        if !pair.is_linked() {
            return Err(SyncError::Busy(format!("pair {} is still being created", pair.key())));
        }
        let Some(route) = self.settings.routes.iter().find(|r| r.id == pair.route) else {
            return Ok(Outcome::Skipped(Skip::NotPaired));
        };
        if route.pm_comment_prefix.is_none() {
            return Ok(Outcome::Skipped(Skip::Unchanged));
        }
        let comments = self.tracker.list_comments(&item).await.map_err(SyncError::upstream(Side::Tracker))?;
        let Some(c) = comments.into_iter().find(|c| &c.id == comment) else {
            return Ok(Outcome::Skipped(Skip::Gone(Side::Tracker)));
        };
        let url = match self.tracker.get_item(&item).await.map_err(SyncError::upstream(Side::Tracker))? {
            Some(i) => i.url,
            None => return Ok(Outcome::Skipped(Skip::Gone(Side::Tracker))),
        };
        let (twin, digest, writes) = match super::comments::decide_tracker_comment(route, &pair, &c, &url) {
            None => return Ok(Outcome::Skipped(Skip::Unchanged)),
            Some(super::comments::ToTodo::Post { key, html, needle, digest }) => {
                let post = Post { key: key.clone(), html: Some(html), needle, after: None, clears: Vec::new() };
                let writes = self.post_signal(&pair.key(), post, job).await?;
                let posted = self.pairs.get(&pair.key()).await?.and_then(|p| match p.signals.get(&key) {
                    Some(Signal::Posted(id)) => Some(*id),
                    _ => None,
                });
                let Some(twin) = posted else { return Ok(Outcome::Skipped(Skip::Unchanged)) };
                (twin, digest, writes)
            }
            Some(super::comments::ToTodo::Update { twin, html, digest }) => {
                self.basecamp
                    .update_comment(pair.project, twin, &html)
                    .await
                    .map_err(SyncError::upstream(Side::Basecamp))?;
                (twin, digest, 1)
            }
        };
        // Remember the text mirrored, so an edit updates the twin and a repeat does nothing.
        for _ in 0..3 {
            let Some(mut p) = self.pairs.get(&pair.key()).await? else { break };
            match p.comments.iter_mut().find(|l| l.basecamp == twin) {
                Some(l) if l.digest == digest => break,
                Some(l) => l.digest.clone_from(&digest),
                None => p.comments.push(crate::domain::CommentLink {
                    basecamp: twin,
                    tracker: Some(comment.clone()),
                    digest: digest.clone(),
                }),
            }
            if self.save_or_restart(&mut p).await? {
                break;
            }
        }
        Ok(if writes > 0 { Outcome::Updated { writes, conflicts: 0 } } else { Outcome::Skipped(Skip::Unchanged) })
    }

    /// A paired issue moved to a status named like "Blocked" or labelled `blocked` → one "Blocked" comment
    /// on the to-do; back out of it → one "Unblocked" note. Each transition posts once.
    pub(super) async fn check_blocker(
        &self,
        key: &PairKey,
        item: &crate::domain::DevItem,
        job: &Job,
    ) -> Result<(), SyncError> {
        let Some(pair) = self.pairs.get(key).await? else { return Ok(()) };
        let reason = if item.flagged {
            Some("flagged as an impediment".to_owned())
        } else if item.status_name.to_lowercase().contains("blocked") {
            Some(format!("status “{}”", item.status_name))
        } else if item.labels.iter().any(|l| l.eq_ignore_ascii_case("blocked")) {
            Some("labelled “blocked”".to_owned())
        } else {
            None
        };
        let name = escape_html(item.item.display_name());
        let url = escape_html(&item.url);
        let post = match (reason, pair.signals.contains_key(&SignalKey::Blocked)) {
            (Some(why), false) => Post {
                key: SignalKey::Blocked,
                html: Some(format!("<p>Blocked: <a href=\"{url}\">{name}</a> is {}</p>", escape_html(&why))),
                needle: format!("Blocked: <a href=\"{url}\">"),
                after: None,
                clears: vec![SignalKey::Unblocked],
            },
            (None, true) => Post {
                key: SignalKey::Unblocked,
                html: Some(format!("<p>Unblocked: <a href=\"{url}\">{name}</a> is moving again</p>")),
                needle: format!("Unblocked: <a href=\"{url}\">"),
                after: None,
                clears: vec![SignalKey::Blocked],
            },
            _ => return Ok(()),
        };
        self.post_signal(key, post, job).await.map(|_| ())
    }

    /// Completes the to-do when its pull request merges (route option), once per PR; the completion then
    /// syncs like any Basecamp change (a transition to done under `pm-owned`).
    async fn complete_on_merge(&self, pair: &Pair, pr: &PullRequest, job: &Job) -> Result<usize, SyncError> {
        let key = SignalKey::CompletedOnMerge(pr.pr.clone());
        if pair.signals.contains_key(&key) {
            return Ok(0);
        }
        let patch = crate::ports::TodoPatch { completed: Some(true), ..Default::default() };
        self.basecamp
            .update_todo(pair.project, pair.todo, &patch)
            .await
            .map_err(SyncError::upstream(Side::Basecamp))?;
        self.mark(&pair.key(), &key, Signal::Done, &[]).await?;
        self.record(
            Some(&pair.route),
            &pair.key().to_string(),
            Some(job.delivery()),
            "completed_on_merge",
            &format!("PR {} merged", pr.pr),
        )
        .await?;
        tracing::info!(pair = %pair.key(), "to-do {} completed: PR {} merged", pair.todo, pr.pr);
        Ok(1)
    }

    /// A remote link from the paired issue to the pull request (an idempotent upsert), once per PR.
    async fn link_pull_request(&self, pair: &Pair, pr: &PullRequest) -> Result<usize, SyncError> {
        let key = SignalKey::PullRequestLink(pr.pr.clone());
        if pair.signals.contains_key(&key) {
            return Ok(0);
        }
        let Some(item) = pair.item.as_ref() else { return Ok(0) };
        let link = RemoteLink {
            global_id: format!("system=bitbucket&pr={}", pr.pr),
            url: pr.url.clone(),
            title: format!("PR #{}: {}", pr.pr.id, pr.title),
        };
        self.tracker.upsert_remote_link(item, &link).await.map_err(SyncError::upstream(Side::Tracker))?;
        self.mark(&pair.key(), &key, Signal::Done, &[]).await?;
        tracing::info!(pair = %pair.key(), "{item} ← PR {}: linked", pr.pr);
        Ok(1)
    }

    /// Claims `post.key` on the pair, posts the comment, and records it. Already posted → nothing.
    async fn post_signal(&self, key: &PairKey, post: Post, job: &Job) -> Result<usize, SyncError> {
        for _ in 0..3 {
            let Some(mut pair) = self.pairs.get(key).await? else { return Ok(0) };
            match pair.signals.get(&post.key) {
                Some(Signal::Posted(_) | Signal::Done | Signal::Failing(_)) => return Ok(0),
                Some(Signal::Attempting) => {
                    // A claim from an attempt that stopped: did its comment land?
                    let comments = self
                        .basecamp
                        .list_comments(pair.project, pair.todo)
                        .await
                        .map_err(SyncError::upstream(Side::Basecamp))?;
                    if let Some(c) = comments.iter().find(|c| c.content.contains(&post.needle)) {
                        self.finish(&mut pair, &post, Some(c.id)).await?;
                        return Ok(0);
                    }
                    self.unless_attempt_in_flight(&pair)?;
                }
                None => {
                    pair.signals.insert(post.key.clone(), Signal::Attempting);
                    if !self.save_or_restart(&mut pair).await? {
                        continue;
                    }
                }
            }
            let posted = match &post.html {
                Some(html) => Some(
                    self.basecamp
                        .post_comment(pair.project, pair.todo, html)
                        .await
                        .map_err(SyncError::upstream(Side::Basecamp))?,
                ),
                None => None,
            };
            self.finish(&mut pair, &post, posted).await?;
            self.record(
                Some(&pair.route),
                &pair.key().to_string(),
                Some(job.delivery()),
                "signal",
                &format!("posted {}", post.key),
            )
            .await?;
            tracing::info!(pair = %key, "{}", super::story::signal(&pair, &post.key, job));
            return Ok(1);
        }
        Err(SyncError::Busy(format!("pair {key} kept changing while posting a signal")))
    }

    /// Records a posted signal (re-reading the pair if another worker saved it meanwhile).
    async fn finish(
        &self,
        pair: &mut Pair,
        post: &Post,
        comment: Option<crate::domain::BasecampCommentId>,
    ) -> Result<(), SyncError> {
        let state = post.after.clone().or(comment.map(Signal::Posted)).unwrap_or(Signal::Done);
        for _ in 0..3 {
            pair.signals.insert(post.key.clone(), state.clone());
            if let Some(Signal::Failing(_)) = &post.after {
                // Remember which build key is failing, for the "fixed" note.
                if let Some(failing) = post.key.failing_mark() {
                    pair.signals.insert(failing, state.clone());
                }
            }
            for k in &post.clears {
                pair.signals.remove(k);
            }
            if self.save_or_restart(pair).await? {
                return Ok(());
            }
            match self.pairs.get(&pair.key()).await? {
                Some(p) => *pair = p,
                None => return Ok(()),
            }
        }
        Err(SyncError::Busy(format!("pair {} kept changing while recording a signal", pair.key())))
    }

    async fn mark(
        &self,
        key: &PairKey,
        signal_key: &SignalKey,
        signal: Signal,
        clears: &[SignalKey],
    ) -> Result<(), SyncError> {
        for _ in 0..3 {
            let Some(mut pair) = self.pairs.get(key).await? else { return Ok(()) };
            pair.signals.insert(signal_key.clone(), signal.clone());
            for k in clears {
                pair.signals.remove(k);
            }
            if self.save_or_restart(&mut pair).await? {
                return Ok(());
            }
        }
        Err(SyncError::Busy(format!("pair {key} kept changing")))
    }
}
