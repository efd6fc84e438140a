//! Selective comment mirroring. Basecamp → tracker: a comment that starts with the route's prefix
//! (`DEV:` by default) becomes a tracker comment without the prefix, attributed to its author; the pair
//! records each one, so duplicates and echoes create nothing and an edit updates the twin. Tracker →
//! Basecamp: a comment starting `PM:` becomes a to-do comment, posted once like a signal. Comments
//! campbridge wrote itself are never mirrored back.

use crate::domain::{Backlink, CommentLink, Pair, Route, Signal, SignalKey, digest, escape_html};
use crate::ports::{TodoComment, TrackerComment};
use crate::richtext::{html_to_text, text_to_html};

/// What to do about one Basecamp comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentPlan {
    Skip(&'static str),
    /// Post a new twin with this HTML.
    Create {
        html: String,
        digest: String,
    },
    /// Replace the twin's body.
    Update {
        link: CommentLink,
        html: String,
        digest: String,
    },
}

/// Decides what a Basecamp comment means for the tracker. Pure.
pub fn decide_comment(route: &Route, pair: &Pair, comment: &TodoComment) -> CommentPlan {
    if pair.backlink == Backlink::Posted(comment.id) {
        return CommentPlan::Skip("our own link comment");
    }
    if pair.signals.values().any(|s| *s == Signal::Posted(comment.id)) {
        return CommentPlan::Skip("a comment campbridge posted");
    }
    let Some(prefix) = route.dev_comment_prefix.as_deref() else {
        return CommentPlan::Skip("comment mirroring is off for this route");
    };
    let text = html_to_text(&comment.content).trim().to_owned();
    let body = if prefix == "*" { Some(text.as_str()) } else { strip_prefix_ci(&text, prefix).map(str::trim_start) };
    let existing = pair.comments.iter().find(|l| l.basecamp == comment.id);
    let Some(body) = body.filter(|b| !b.is_empty()) else {
        // Without the prefix (or emptied): not for the tracker. A twin made earlier is left as it is.
        return CommentPlan::Skip("no prefix: stays in Basecamp");
    };
    let d = digest(&text);
    let html = render(body, &comment.author_name, &comment.app_url, route.target.rich_text_limit());
    match existing {
        Some(link) if link.digest == d => CommentPlan::Skip("unchanged since mirrored"),
        Some(link) if link.tracker.is_some() => CommentPlan::Update { link: link.clone(), html, digest: d },
        // A twin whose post was started but not recorded: the executor looks for it first.
        Some(_) | None => CommentPlan::Create { html, digest: d },
    }
}

/// What to do about one tracker comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToTodo {
    /// Post it on the to-do (claimed as signal `key`; `needle` tells a retry whether the post landed).
    Post { key: SignalKey, html: String, needle: String, digest: String },
    /// Its twin exists and the text changed: replace the twin's content.
    Update { twin: crate::domain::BasecampCommentId, html: String, digest: String },
}

/// Decides whether a tracker comment goes to the to-do. Pure. `item_url` is where the issue opens.
pub fn decide_tracker_comment(route: &Route, pair: &Pair, comment: &TrackerComment, item_url: &str) -> Option<ToTodo> {
    let key = SignalKey::PmComment(comment.id.clone());
    let mirrored = match pair.signals.get(&key) {
        Some(Signal::Posted(twin)) => Some(*twin),
        _ => None,
    };
    // Our own twins of Basecamp comments (recorded, or still being recorded: they carry our attribution).
    let ours = pair.comments.iter().any(|l| l.tracker.as_ref() == Some(&comment.id))
        || (comment.html.contains("via <a href=") && comment.html.contains(">Basecamp</a>"));
    if ours && mirrored.is_none() {
        return None;
    }
    let prefix = route.pm_comment_prefix.as_deref()?;
    let text = html_to_text(&comment.html).trim().to_owned();
    let body = if prefix == "*" { Some(text.as_str()) } else { strip_prefix_ci(&text, prefix).map(str::trim_start) };
    // Without the prefix (or emptied): not for Basecamp. A twin made earlier is left as it is.
    let body = body.filter(|b| !b.is_empty())?;
    let by = if comment.author_name.is_empty() { "someone".to_owned() } else { escape_html(&comment.author_name) };
    let marker = format!("{item_url}?focusedCommentId={}", comment.id.0);
    let html = format!("{}<p>— {by} via <a href=\"{}\">Jira</a></p>", text_to_html(body), escape_html(&marker));
    let d = digest(&text);
    match mirrored {
        Some(twin) => {
            let unchanged = pair.comments.iter().any(|l| l.basecamp == twin && l.digest == d);
            (!unchanged).then_some(ToTodo::Update { twin, html, digest: d })
        }
        None => Some(ToTodo::Post { key, html, needle: format!("focusedCommentId={}", comment.id.0), digest: d }),
    }
}

/// The tracker comment: the text without the prefix, then who wrote it, linking back to the comment; a
/// body over the tracker's limit is cut, ending "… continued in Basecamp" (a link to the comment).
fn render(body: &str, author: &str, url: &str, limit: usize) -> String {
    let by = if author.is_empty() { "someone".to_owned() } else { escape_html(author) };
    let via = if url.is_empty() {
        "via Basecamp".to_owned()
    } else {
        format!("via <a href=\"{}\">Basecamp</a>", escape_html(url))
    };
    crate::richtext::fit_html(&text_to_html(body), &format!("<p>— {by} {via}</p>"), limit, url)
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BasecampCommentId, JiraCommentId, PairState};
    use crate::testkit::{at, route};

    fn pair() -> Pair {
        let mut p = Pair::pending(route().id, crate::testkit::PROJECT, crate::domain::TodoId(1), "w", at(0), at(60));
        p.state = PairState::Linked;
        p
    }

    fn comment(id: i64, html: &str) -> TodoComment {
        TodoComment {
            id: BasecampCommentId(id),
            author_name: "Jane Cole".into(),
            content: html.into(),
            app_url: format!("https://3.basecamp.com/1/buckets/2/todos/1#__recording_{id}"),
        }
    }

    #[test]
    fn a_dev_comment_becomes_an_attributed_tracker_comment_without_the_prefix() {
        let CommentPlan::Create { html, .. } =
            decide_comment(&route(), &pair(), &comment(5, "<div>DEV: the API returns 500</div>"))
        else {
            panic!("expected Create")
        };
        assert!(html.contains("the API returns 500") && !html.contains("DEV:"), "{html}");
        assert!(html.contains("— Jane Cole via <a href=\"https://3.basecamp.com/"), "{html}");
    }

    #[test]
    fn the_prefix_is_matched_case_insensitively() {
        assert!(matches!(decide_comment(&route(), &pair(), &comment(5, "dev: lower")), CommentPlan::Create { .. }));
    }

    #[test]
    fn a_comment_without_the_prefix_stays_in_basecamp() {
        assert_eq!(
            decide_comment(&route(), &pair(), &comment(5, "Thanks all!")),
            CommentPlan::Skip("no prefix: stays in Basecamp")
        );
        assert_eq!(
            decide_comment(&route(), &pair(), &comment(5, "DEVELOPERS rock")),
            CommentPlan::Skip("no prefix: stays in Basecamp"),
            "a word that merely starts like the prefix is not the prefix"
        );
    }

    #[test]
    fn a_star_prefix_mirrors_every_comment() {
        let mut r = route();
        r.dev_comment_prefix = Some("*".into());
        assert!(matches!(decide_comment(&r, &pair(), &comment(5, "Thanks all!")), CommentPlan::Create { .. }));
    }

    #[test]
    fn a_mirrored_comment_is_not_mirrored_again_but_an_edit_updates_its_twin() {
        let mut p = pair();
        let c = comment(5, "DEV: first");
        p.comments.push(CommentLink {
            basecamp: c.id,
            tracker: Some(JiraCommentId("100".into())),
            digest: digest("DEV: first"),
        });
        assert_eq!(decide_comment(&route(), &p, &c), CommentPlan::Skip("unchanged since mirrored"));
        let edited = comment(5, "DEV: second");
        assert!(matches!(decide_comment(&route(), &p, &edited), CommentPlan::Update { .. }));
    }

    #[test]
    fn our_own_link_comment_is_never_mirrored() {
        let mut p = pair();
        p.backlink = Backlink::Posted(BasecampCommentId(7));
        let mut r = route();
        r.dev_comment_prefix = Some("*".into());
        assert_eq!(decide_comment(&r, &p, &comment(7, "Linked to WEB-1")), CommentPlan::Skip("our own link comment"));
    }
}
