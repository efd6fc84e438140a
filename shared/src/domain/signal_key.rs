//! [`SignalKey`]: what a pair's `signals` map is keyed by — one entry per comment, link or mark a signal
//! leaves on a to-do, so each is posted once.
//!
//! The string form is the stored form (the keys of the pair's `signals` JSON object, on every store) and
//! has not changed since pairs first carried signals; `Display` writes it and `FromStr` reads it, and
//! nothing else formats or parses one. Reading is tolerant: a string that is not a key in its canonical
//! form (one written by a newer version, say) is kept verbatim as [`SignalKey::Unknown`] and written back
//! unchanged, so an older reader never loses or rejects a pair's marks.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ids::{JiraCommentId, PullRequestRef, RepoRef};
use super::job::Build;
use super::states::PullRequestState;

/// Which note a build status leaves on a to-do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BuildNote {
    /// "Build failed" (stored `FAILED`).
    Failed,
    /// "Build fixed": a success after a failure (stored `FIXED`).
    Fixed,
    /// "Build passed" (stored `SUCCESSFUL`).
    Passed,
}

impl BuildNote {
    const ALL: [Self; 3] = [Self::Failed, Self::Fixed, Self::Passed];

    fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "FAILED",
            Self::Fixed => "FIXED",
            Self::Passed => "SUCCESSFUL",
        }
    }
}

/// One signal's key on a pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignalKey {
    /// `pr:{workspace}/{repo}#{id}:{STATE}`: the note for a pull request reaching a state.
    PullRequest { pr: PullRequestRef, state: PullRequestState },
    /// `prlink:{pr}`: the tracker item's remote link to the pull request.
    PullRequestLink(PullRequestRef),
    /// `completed-on-merge:{pr}`: the to-do was completed because the pull request merged.
    CompletedOnMerge(PullRequestRef),
    /// `build:{workspace}/{repo}:{build key}:{commit}:{note}`: a build's note for one commit.
    Build { repo: RepoRef, key: String, commit: String, note: BuildNote },
    /// `build-failing:{workspace}/{repo}:{build key}`: the build is failing (so a success posts "fixed").
    BuildFailing { repo: RepoRef, key: String },
    /// `pm-comment:{id}`: a tracker comment mirrored onto the to-do.
    PmComment(JiraCommentId),
    /// `blocked`: the "Blocked" note is up.
    Blocked,
    /// `unblocked`: the "Unblocked" note is up.
    Unblocked,
    /// A stored key this version does not read, kept verbatim.
    Unknown(String),
}

impl SignalKey {
    /// The note for `build` (its repository, key and commit).
    pub fn build(build: &Build, note: BuildNote) -> Self {
        Self::Build { repo: build.repo.clone(), key: build.key.clone(), commit: build.commit.clone(), note }
    }

    /// The "failing" mark of `build`'s key.
    pub fn build_failing(build: &Build) -> Self {
        Self::BuildFailing { repo: build.repo.clone(), key: build.key.clone() }
    }

    /// For a build's note, the "failing" mark of the same build key; `None` for any other key.
    pub fn failing_mark(&self) -> Option<Self> {
        match self {
            Self::Build { repo, key, .. } => Some(Self::BuildFailing { repo: repo.clone(), key: key.clone() }),
            _ => None,
        }
    }

    /// Reads the stored form; never fails (see the module docs).
    pub fn parse(s: &str) -> Self {
        match Self::parse_known(s) {
            // Only the canonical form is typed, so what was read is written back byte for byte.
            Some(key) if key.to_string() == s => key,
            _ => Self::Unknown(s.to_owned()),
        }
    }

    fn parse_known(s: &str) -> Option<Self> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        Some(match kind {
            "blocked" if s == kind => Self::Blocked,
            "unblocked" if s == kind => Self::Unblocked,
            "pr" => {
                // A PR reference has no ':'; the state is everything after it.
                let (pr, state) = rest.split_once(':')?;
                Self::PullRequest { pr: PullRequestRef::parse(pr).ok()?, state: PullRequestState::from(state) }
            }
            "prlink" => Self::PullRequestLink(PullRequestRef::parse(rest).ok()?),
            "completed-on-merge" => Self::CompletedOnMerge(PullRequestRef::parse(rest).ok()?),
            "build" => {
                // The repository has no ':', the commit is a hash and the note a word: the build key
                // (anything) is what lies between.
                let (rest, note) = rest.rsplit_once(':')?;
                let (rest, commit) = rest.rsplit_once(':')?;
                let (repo, key) = rest.split_once(':')?;
                let note = BuildNote::ALL.into_iter().find(|n| n.as_str() == note)?;
                if commit.is_empty() || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                Self::Build { repo: RepoRef::parse(repo).ok()?, key: key.to_owned(), commit: commit.to_owned(), note }
            }
            "build-failing" => {
                let (repo, key) = rest.split_once(':')?;
                Self::BuildFailing { repo: RepoRef::parse(repo).ok()?, key: key.to_owned() }
            }
            "pm-comment" if !rest.is_empty() => Self::PmComment(JiraCommentId(rest.to_owned())),
            _ => return None,
        })
    }
}

impl fmt::Display for SignalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PullRequest { pr, state } => write!(f, "pr:{pr}:{state}"),
            Self::PullRequestLink(pr) => write!(f, "prlink:{pr}"),
            Self::CompletedOnMerge(pr) => write!(f, "completed-on-merge:{pr}"),
            Self::Build { repo, key, commit, note } => write!(f, "build:{repo}:{key}:{commit}:{}", note.as_str()),
            Self::BuildFailing { repo, key } => write!(f, "build-failing:{repo}:{key}"),
            Self::PmComment(id) => write!(f, "pm-comment:{}", id.0),
            Self::Blocked => f.write_str("blocked"),
            Self::Unblocked => f.write_str("unblocked"),
            Self::Unknown(s) => f.write_str(s),
        }
    }
}

impl FromStr for SignalKey {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(Self::parse(s))
    }
}

impl Serialize for SignalKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SignalKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn repo() -> impl Strategy<Value = RepoRef> {
        ("[a-z0-9][a-z0-9._-]{0,8}", "[A-Za-z0-9._-]{1,10}")
            .prop_map(|(workspace, repo_slug)| RepoRef { workspace, repo_slug })
    }

    fn pr() -> impl Strategy<Value = PullRequestRef> {
        (repo(), any::<u64>()).prop_map(|(repo, id)| PullRequestRef { repo, id })
    }

    fn pr_state() -> impl Strategy<Value = PullRequestState> {
        prop_oneof![
            prop::sample::select(PullRequestState::KNOWN.to_vec()),
            "\\PC{0,12}".prop_map(|s| PullRequestState::from(s.as_str())),
        ]
    }

    fn key() -> impl Strategy<Value = SignalKey> {
        prop_oneof![
            (pr(), pr_state()).prop_map(|(pr, state)| SignalKey::PullRequest { pr, state }),
            pr().prop_map(SignalKey::PullRequestLink),
            pr().prop_map(SignalKey::CompletedOnMerge),
            // Build keys are the build tool's: any text, colons included.
            (repo(), "\\PC{0,20}", "[0-9a-f]{7,40}", prop::sample::select(BuildNote::ALL.to_vec()))
                .prop_map(|(repo, key, commit, note)| SignalKey::Build { repo, key, commit, note }),
            (repo(), "\\PC{0,20}").prop_map(|(repo, key)| SignalKey::BuildFailing { repo, key }),
            "[0-9]{1,12}".prop_map(|id| SignalKey::PmComment(JiraCommentId(id))),
            Just(SignalKey::Blocked),
            Just(SignalKey::Unblocked),
        ]
    }

    proptest! {
        #[test]
        fn every_key_round_trips_through_its_stored_form(k in key()) {
            let stored = k.to_string();
            prop_assert_eq!(stored.parse::<SignalKey>().ok(), Some(k.clone()));
            let json = serde_json::to_string(&k).unwrap_or_default();
            prop_assert_eq!(serde_json::from_str::<SignalKey>(&json).ok(), Some(k));
        }

        #[test]
        fn any_stored_string_is_written_back_as_it_was_read(s in "\\PC{0,40}") {
            prop_assert_eq!(SignalKey::parse(&s).to_string(), s);
        }
    }

    #[test]
    fn the_stored_forms_read_as_their_keys() {
        let web = RepoRef { workspace: "team".into(), repo_slug: "web".into() };
        let pr = PullRequestRef { repo: web.clone(), id: 2 };
        let cases = [
            ("pr:team/web#2:OPEN", SignalKey::PullRequest { pr: pr.clone(), state: PullRequestState::Open }),
            ("prlink:team/web#2", SignalKey::PullRequestLink(pr.clone())),
            ("completed-on-merge:team/web#2", SignalKey::CompletedOnMerge(pr)),
            (
                "build:team/web:ci:main:43f670e:FAILED",
                SignalKey::Build {
                    repo: web.clone(),
                    key: "ci:main".into(),
                    commit: "43f670e".into(),
                    note: BuildNote::Failed,
                },
            ),
            ("build-failing:team/web:ci:main", SignalKey::BuildFailing { repo: web, key: "ci:main".into() }),
            ("pm-comment:10050", SignalKey::PmComment(JiraCommentId("10050".into()))),
            ("blocked", SignalKey::Blocked),
            ("unblocked", SignalKey::Unblocked),
        ];
        for (stored, key) in cases {
            assert_eq!(SignalKey::parse(stored), key, "{stored}");
        }
    }

    #[test]
    fn non_canonical_or_unknown_keys_are_kept_verbatim() {
        for s in ["pr:team/web#02:OPEN", "build:team/web:ci:zz:FAILED", "reviewed:team/web#2", "blocked:x", ""] {
            assert_eq!(SignalKey::parse(s), SignalKey::Unknown(s.to_owned()), "{s}");
        }
    }

    #[test]
    fn a_builds_note_names_its_failing_mark() {
        let note = SignalKey::parse("build:team/web:ci:43f670e:FAILED");
        assert_eq!(note.failing_mark().map(|k| k.to_string()).as_deref(), Some("build-failing:team/web:ci"));
        assert_eq!(SignalKey::Blocked.failing_mark(), None);
    }
}
