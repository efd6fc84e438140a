//! Bitbucket Cloud records: one workspace and repository, pull requests, commit build statuses
//! and repository webhooks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A Bitbucket account.
#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub uuid: String,
    pub account_id: String,
    pub display_name: String,
    pub nickname: String,
}

/// A pull request.
#[derive(Clone, Debug, Serialize)]
pub struct PullRequest {
    pub id: u64,
    pub title: String,
    pub description: String,
    pub state: String,
    pub source_branch: String,
    pub source_hash: String,
    pub destination_branch: String,
    pub destination_hash: String,
    pub author: String,
    pub created_on: String,
    pub updated_on: String,
    pub merge_commit: Option<String>,
    pub closed_by: Option<String>,
    pub reason: String,
}

/// A commit build status.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BuildStatus {
    #[serde(default)]
    pub commit: String,
    pub key: String,
    pub state: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub refname: Option<String>,
    #[serde(default)]
    pub created_on: String,
    #[serde(default)]
    pub updated_on: String,
}

/// A repository webhook.
#[derive(Clone, Debug, Serialize)]
pub struct Hook {
    pub uuid: String,
    pub url: String,
    pub description: String,
    pub active: bool,
    pub events: Vec<String>,
    #[serde(skip)]
    pub secret: Option<String>,
    pub created_at: String,
}

/// Everything one simulator holds.
#[derive(Debug, Default)]
pub struct State {
    pub users: Vec<User>,
    pub pullrequests: BTreeMap<u64, PullRequest>,
    pub statuses: Vec<BuildStatus>,
    pub hooks: BTreeMap<String, Hook>,
    pub branches: BTreeMap<String, String>,
    /// Every commit made, with the branch it was made on (what `commit/{hash}/pullrequests` reads).
    pub commit_branches: BTreeMap<String, String>,
    next_commit: u64,
}

/// Bitbucket's timestamp format: `2018-09-21T14:57:59.455870+00:00`.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

impl State {
    /// A fresh 40-hex commit hash.
    pub fn fresh_hash(&mut self) -> String {
        self.next_commit += 1;
        hex::encode(Sha256::digest(format!("sim-commit-{}", self.next_commit)))[..40].to_owned()
    }

    /// The head of `branch`, creating the branch when new.
    pub fn head(&mut self, branch: &str) -> String {
        if let Some(hash) = self.branches.get(branch) {
            return hash.clone();
        }
        let hash = self.fresh_hash();
        self.set_head(branch, &hash);
        hash
    }

    /// Moves `branch` to the new commit `hash`.
    pub fn set_head(&mut self, branch: &str, hash: &str) {
        self.branches.insert(branch.to_owned(), hash.to_owned());
        self.commit_branches.insert(hash.to_owned(), branch.to_owned());
    }

    /// The branch a commit (full hash or a prefix of at least 7) was made on.
    pub fn branch_of(&self, commit: &str) -> Option<&str> {
        if commit.len() < 7 {
            return None;
        }
        self.commit_branches.iter().find(|(hash, _)| hash.starts_with(commit)).map(|(_, b)| b.as_str())
    }

    /// A user by uuid, account id or nickname.
    pub fn user(&self, who: &str) -> Option<&User> {
        self.users.iter().find(|u| u.uuid == who || u.account_id == who || u.nickname == who)
    }
}
