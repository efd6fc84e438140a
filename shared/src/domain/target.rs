//! [`TrackerTarget`]: where a route's dev items live. A domain value the route rules, the ports and the
//! adapters all name; it says nothing about how the tracker is reached.

use super::ids::JiraProjectKey;

/// Where a route's dev items live.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrackerTarget {
    Jira { project: JiraProjectKey, issue_type: String },
}

impl TrackerTarget {
    /// The longest rich-text value (description, comment) the tracker takes, as
    /// [`crate::richtext::adf_length`] measures it: Jira's 32,767 characters per rich-text field.
    pub fn rich_text_limit(&self) -> usize {
        match self {
            Self::Jira { .. } => 32_767,
        }
    }
}

impl std::fmt::Display for TrackerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Jira { project, issue_type } => write!(f, "Jira project {project} ({issue_type} issues)"),
        }
    }
}
