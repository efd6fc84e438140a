//! Identifier newtypes. Each parses from the text form the sources use and prints back the same way.
//!
//! Basecamp ids are 64-bit integers that already exceed 2^53 (see the fixtures), so they are `i64`,
//! never `f64`, and serialize as JSON numbers without loss.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A malformed identifier: what was expected and what arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {value:?}")]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
}

macro_rules! basecamp_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// Parses a positive decimal id.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                match s.trim().parse::<i64>() {
                    Ok(v) if v > 0 => Ok(Self(v)),
                    _ => Err(IdError { what: $what, value: s.to_owned() }),
                }
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

basecamp_id!(
    /// A Basecamp account (the number after the host in every API URL).
    AccountId,
    "Basecamp account id"
);
basecamp_id!(
    /// A Basecamp project (a "bucket" in API payloads).
    ProjectId,
    "Basecamp project id"
);
basecamp_id!(
    /// A Basecamp to-do list (the `parent` of a to-do).
    TodolistId,
    "Basecamp to-do list id"
);
basecamp_id!(
    /// A Basecamp to-do (a recording of type `Todo`).
    TodoId,
    "Basecamp to-do id"
);
basecamp_id!(
    /// A Basecamp comment.
    BasecampCommentId,
    "Basecamp comment id"
);
basecamp_id!(
    /// A Basecamp person.
    PersonId,
    "Basecamp person id"
);

/// Jira's numeric issue id (stable across moves and renames).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JiraIssueId(String);

impl JiraIssueId {
    /// Jira sends ids as decimal strings (`"10002"`).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let t = s.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(t.to_owned()))
        } else {
            Err(IdError { what: "Jira issue id", value: s.to_owned() })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JiraIssueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Jira issue key, `PROJECT-123`. Keys change when an issue moves project; the id does not.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JiraKey(String);

impl JiraKey {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let err = || IdError { what: "Jira issue key", value: s.to_owned() };
        let (project, number) = s.split_once('-').ok_or_else(err)?;
        let project_ok = JiraProjectKey::parse(project).is_ok();
        let number_ok = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) && !number.starts_with('0');
        if project_ok && number_ok { Ok(Self(s.to_owned())) } else { Err(err()) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The project part of the key (`WEB` in `WEB-12`).
    pub fn project(&self) -> &str {
        self.0.split_once('-').map_or(self.0.as_str(), |(p, _)| p)
    }
}

impl TryFrom<String> for JiraKey {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<JiraKey> for String {
    fn from(k: JiraKey) -> Self {
        k.0
    }
}
impl fmt::Display for JiraKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Jira project key: an upper-case letter, then upper-case letters, digits or underscores.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JiraProjectKey(String);

impl JiraProjectKey {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let mut bytes = s.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_uppercase());
        let rest_ok = bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if first_ok && rest_ok && s.len() <= 255 {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError { what: "Jira project key", value: s.to_owned() })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for JiraProjectKey {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<JiraProjectKey> for String {
    fn from(k: JiraProjectKey) -> Self {
        k.0
    }
}
impl fmt::Display for JiraProjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Jira user (`accountId` on Cloud).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JiraAccountId(pub String);

impl fmt::Display for JiraAccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Jira comment id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JiraCommentId(pub String);

/// A Bitbucket repository: `workspace/repo_slug`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RepoRef {
    pub workspace: String,
    pub repo_slug: String,
}

impl RepoRef {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let err = || IdError { what: "Bitbucket repository (workspace/repo)", value: s.to_owned() };
        let (w, r) = s.split_once('/').ok_or_else(err)?;
        let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok(w) && ok(r) { Ok(Self { workspace: w.to_owned(), repo_slug: r.to_owned() }) } else { Err(err()) }
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.workspace, self.repo_slug)
    }
}

/// A Bitbucket pull request within a repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PullRequestRef {
    pub repo: RepoRef,
    pub id: u64,
}

impl PullRequestRef {
    /// Reads the `workspace/repo#id` form [`Display`](fmt::Display) writes.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let err = || IdError { what: "Bitbucket pull request (workspace/repo#id)", value: s.to_owned() };
        let (repo, id) = s.rsplit_once('#').ok_or_else(err)?;
        let id = id.parse().ok().filter(|_| id.bytes().all(|b| b.is_ascii_digit())).ok_or_else(err)?;
        Ok(Self { repo: RepoRef::parse(repo).map_err(|_| err())?, id })
    }
}

impl fmt::Display for PullRequestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.repo, self.id)
    }
}

/// A configured route's id (`web` in `[[routes]] id = "web"`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RouteId(pub String);

impl RouteId {
    /// Lower-case letters, digits and dashes; it appears in URLs, keys and logs.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok { Ok(Self(s.to_owned())) } else { Err(IdError { what: "route id", value: s.to_owned() }) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One inbound webhook request, named by the source's own id (`X-Request-UUID`,
/// `X-Atlassian-Webhook-Identifier`, or the Basecamp event id), prefixed with the source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(pub String);

impl DeliveryId {
    pub fn basecamp(event_id: i64) -> Self {
        Self(format!("basecamp:{event_id}"))
    }
    pub fn jira(identifier: &str) -> Self {
        Self(format!("jira:{identifier}"))
    }
    pub fn bitbucket(request_uuid: &str) -> Self {
        Self(format!("bitbucket:{request_uuid}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basecamp_ids_beyond_two_to_the_53_survive_a_json_round_trip() {
        let id = TodoId(9_007_199_254_741_210);
        let json = serde_json::to_string(&id).unwrap_or_default();
        assert_eq!(json, "9007199254741210");
        let back: TodoId = serde_json::from_str(&json).unwrap_or(TodoId(0));
        assert_eq!(back, id);
    }

    #[test]
    fn a_non_positive_basecamp_id_is_rejected() {
        assert!(TodoId::parse("0").is_err());
        assert!(TodoId::parse("-5").is_err());
        assert!(TodoId::parse("12a").is_err());
        assert_eq!(TodoId::parse("1069480015").ok(), Some(TodoId(1_069_480_015)));
    }

    #[test]
    fn jira_keys_parse_and_name_their_project() {
        let key = JiraKey::parse("WEB-12").ok();
        assert_eq!(key.as_ref().map(JiraKey::project), Some("WEB"));
        for bad in ["web-12", "WEB-", "WEB-012", "-12", "WEB12", "WEB-1x"] {
            assert!(JiraKey::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn repository_refs_need_a_workspace_and_a_slug() {
        assert_eq!(RepoRef::parse("team/web-app").map(|r| r.to_string()).ok().as_deref(), Some("team/web-app"));
        assert!(RepoRef::parse("team").is_err());
        assert!(RepoRef::parse("team/").is_err());
        assert!(RepoRef::parse("te am/x").is_err());
    }

    #[test]
    fn route_ids_are_url_safe() {
        assert!(RouteId::parse("web").is_ok());
        assert!(RouteId::parse("Web").is_err());
        assert!(RouteId::parse("a b").is_err());
        assert!(RouteId::parse("").is_err());
    }
}
