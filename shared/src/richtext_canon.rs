//! The canonical form of rich text both sides are compared in.
//!
//! Descriptions travel Basecamp HTML → Jira ADF → back to HTML when read. Comparing raw strings would
//! see that round trip as a change and write again (an echo loop), so every description is compared in
//! the form a round trip produces.

/// The canonical HTML for `html`.
pub fn canonical_html(html: &str) -> String {
    html.trim().to_owned()
}
