//! The code host's vocabularies: a pull request's state and a build (commit status) state, as Bitbucket
//! spells them on its webhooks, its REST API and our queue messages. One type each, shared by webhook
//! parsing, the client, jobs and stored signal keys.
//!
//! Both read any string: a state Bitbucket adds later is kept verbatim as `Other` (and written back as it
//! came), never rejected, so a new state reaches the signals as "nothing to post" rather than as a poison
//! message. Their serde form is the bare string (`"MERGED"`), the form jobs on the queue always had.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A pull request's `state`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PullRequestState {
    Open,
    Merged,
    Declined,
    Superseded,
    /// A state this version does not know, verbatim.
    Other(String),
}

impl PullRequestState {
    /// The states Bitbucket documents, in its order.
    pub const KNOWN: [Self; 4] = [Self::Open, Self::Merged, Self::Declined, Self::Superseded];

    /// The state as Bitbucket spells it (`OPEN`, `MERGED`, …).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Open => "OPEN",
            Self::Merged => "MERGED",
            Self::Declined => "DECLINED",
            Self::Superseded => "SUPERSEDED",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for PullRequestState {
    fn from(s: &str) -> Self {
        Self::KNOWN.into_iter().find(|k| k.as_str() == s).unwrap_or_else(|| Self::Other(s.to_owned()))
    }
}

/// A build status's `state`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BuildState {
    Successful,
    Failed,
    InProgress,
    Stopped,
    /// A state this version does not know, verbatim.
    Other(String),
}

impl BuildState {
    /// The states Bitbucket documents.
    pub const KNOWN: [Self; 4] = [Self::Successful, Self::Failed, Self::InProgress, Self::Stopped];

    /// The state as Bitbucket spells it (`SUCCESSFUL`, `FAILED`, `INPROGRESS`, `STOPPED`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Successful => "SUCCESSFUL",
            Self::Failed => "FAILED",
            Self::InProgress => "INPROGRESS",
            Self::Stopped => "STOPPED",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for BuildState {
    fn from(s: &str) -> Self {
        Self::KNOWN.into_iter().find(|k| k.as_str() == s).unwrap_or_else(|| Self::Other(s.to_owned()))
    }
}

/// `Display`, `FromStr` (infallible) and the bare-string serde form, the same for both states.
macro_rules! string_form {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = Infallible;
            fn from_str(s: &str) -> Result<Self, Infallible> {
                Ok(Self::from(s))
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                Ok(Self::from(s.as_ref()))
            }
        }
    };
}

string_form!(PullRequestState);
string_form!(BuildState);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_states_read_as_themselves_and_unknown_ones_verbatim() {
        assert_eq!(PullRequestState::from("MERGED"), PullRequestState::Merged);
        assert_eq!(PullRequestState::from("merged"), PullRequestState::Other("merged".into()));
        assert_eq!(BuildState::from("INPROGRESS"), BuildState::InProgress);
        assert_eq!(BuildState::from("PAUSED"), BuildState::Other("PAUSED".into()));
    }

    #[test]
    fn states_travel_as_bare_strings_as_queued_jobs_always_did() {
        assert_eq!(serde_json::to_string(&BuildState::Failed).ok().as_deref(), Some(r#""FAILED""#));
        assert_eq!(serde_json::from_str::<PullRequestState>(r#""DECLINED""#).ok(), Some(PullRequestState::Declined));
        assert_eq!(
            serde_json::from_str::<PullRequestState>(r#""QUEUED""#).ok(),
            Some(PullRequestState::Other("QUEUED".into()))
        );
    }

    proptest! {
        #[test]
        fn any_state_string_round_trips(s in "\\PC{0,16}") {
            prop_assert_eq!(PullRequestState::from(s.as_str()).to_string(), s.clone());
            prop_assert_eq!(BuildState::from(s.as_str()).to_string(), s);
        }
    }
}
