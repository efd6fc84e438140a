//! Finding the to-dos a pull request or build belongs to: Jira keys of routed projects (`WEB-12`) and
//! `BC-<to-do id>` markers (for teams without Jira), in a PR's title, description and source branch.

use std::collections::BTreeSet;

use crate::domain::{JiraKey, TodoId};

/// One reference found in a text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    Issue(JiraKey),
    Todo(TodoId),
}

/// Every distinct reference in `texts`, in a stable order. Only keys of `projects` count, so
/// `UTF-8` or `ISO-9001` in prose are not mistaken for issues. Matching is case-insensitive for branch
/// names like `feature/web-12-login`; a key must stand alone (not inside a longer word or number).
pub fn find_references(texts: &[&str], projects: &[&str]) -> Vec<Reference> {
    let mut found = BTreeSet::new();
    for text in texts {
        let upper = text.to_ascii_uppercase();
        let bytes = upper.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let starts_word = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
            if starts_word && bytes[i].is_ascii_alphabetic() {
                let end_word = (i..bytes.len())
                    .find(|&j| !(bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_'))
                    .unwrap_or(bytes.len());
                let project = &upper[i..end_word];
                if end_word < bytes.len() && bytes[end_word] == b'-' {
                    let digits_end =
                        (end_word + 1..bytes.len()).find(|&j| !bytes[j].is_ascii_digit()).unwrap_or(bytes.len());
                    let number = &upper[end_word + 1..digits_end];
                    let ends_clean = digits_end == bytes.len() || !bytes[digits_end].is_ascii_alphanumeric();
                    if !number.is_empty() && ends_clean {
                        let reference = if project == "BC" {
                            TodoId::parse(number).ok().map(Reference::Todo)
                        } else if projects.contains(&project) {
                            JiraKey::parse(&format!("{project}-{number}")).ok().map(Reference::Issue)
                        } else {
                            None
                        };
                        found.extend(reference);
                    }
                }
                i = end_word.max(i + 1);
            } else {
                i += 1;
            }
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(refs: &[Reference]) -> Vec<String> {
        refs.iter()
            .map(|r| match r {
                Reference::Issue(k) => k.to_string(),
                Reference::Todo(t) => format!("BC-{t}"),
            })
            .collect()
    }

    #[test]
    fn keys_of_routed_projects_are_found_in_title_description_and_branch() {
        let refs = find_references(&["Fix login (WEB-12)", "Also closes WEB-13.", "feature/web-14-login"], &["WEB"]);
        assert_eq!(keys(&refs), ["WEB-12", "WEB-13", "WEB-14"]);
    }

    #[test]
    fn keys_of_other_projects_and_lookalikes_are_not_references() {
        let refs = find_references(&["UTF-8 ISO-9001 OPS-3 WEB-0x WEBS-4 XWEB-5 WEB-12a"], &["WEB"]);
        assert!(refs.is_empty(), "{refs:?}");
    }

    #[test]
    fn bc_markers_name_todos_directly_and_duplicates_count_once() {
        let refs = find_references(&["BC-1069480015 and WEB-2", "bugfix/bc-1069480015"], &["WEB"]);
        assert_eq!(keys(&refs), ["WEB-2", "BC-1069480015"]);
    }
}
