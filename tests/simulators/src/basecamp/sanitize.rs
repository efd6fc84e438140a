//! Rich text as Basecamp stores it: only `div`, `h1`, `br`, `strong`, `em`, `strike`, `a` (with `href`),
//! `pre`, `ol`, `ul`, `li` and `blockquote` survive, plus `<bc-attachment>`; any other tag is removed and
//! its text kept (rich_text.md, "Allowed HTML tags", as of bc-api d6b63a5; reference/basecamp-api.md
//! §11). Attributes go too, except `href` on links (http, https, mailto or relative) and the attributes
//! of `<bc-attachment>`. Script and style elements are dropped with their content. The result is
//! well-formed, and sanitising it again changes nothing.

use scraper::{Html, Node};

/// The standard tags Basecamp keeps.
pub const ALLOWED_TAGS: [&str; 12] =
    ["div", "h1", "br", "strong", "em", "strike", "a", "pre", "ol", "ul", "li", "blockquote"];

/// Basecamp's inline attachment element, kept with its attributes.
const ATTACHMENT: &str = "bc-attachment";

/// Elements dropped together with everything inside them.
const DROPPED: [&str; 5] = ["script", "style", "template", "noscript", "iframe"];

/// `html` as Basecamp would store it.
pub fn rich_text(html: &str) -> String {
    if !html.contains(['<', '&', '>']) {
        return html.to_owned();
    }
    let fragment = Html::parse_fragment(html);
    let mut out = String::with_capacity(html.len());
    for child in fragment.root_element().children() {
        write_node(child, &mut out);
    }
    out
}

/// True when the HTML holds no text and no attachment (Basecamp refuses such a comment as blank).
pub fn is_blank(html: &str) -> bool {
    if html.contains("<bc-attachment") {
        return false;
    }
    let fragment = Html::parse_fragment(html);
    fragment.root_element().text().all(|t| t.trim().is_empty())
}

fn write_node(node: ego_tree::NodeRef<'_, Node>, out: &mut String) {
    match node.value() {
        Node::Text(text) => escape_text(text, out),
        Node::Element(element) => {
            let name = element.name();
            if DROPPED.contains(&name) {
                return;
            }
            let kept = ALLOWED_TAGS.contains(&name) || name == ATTACHMENT;
            if kept {
                out.push('<');
                out.push_str(name);
                for (attr, value) in element.attrs() {
                    let keep = match name {
                        ATTACHMENT => true,
                        "a" => attr == "href" && safe_href(value),
                        _ => false,
                    };
                    if keep {
                        out.push(' ');
                        out.push_str(attr);
                        out.push_str("=\"");
                        escape_attr(value, out);
                        out.push('"');
                    }
                }
                out.push('>');
                if name == "br" {
                    return;
                }
            }
            for child in node.children() {
                write_node(child, out);
            }
            if kept {
                out.push_str("</");
                out.push_str(name);
                out.push('>');
            }
        }
        // Comments, doctypes and processing instructions are not content.
        _ => {}
    }
}

fn safe_href(href: &str) -> bool {
    let lower = href.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        Some((scheme, _)) if !scheme.contains('/') && !scheme.contains('?') && !scheme.contains('#') => {
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => true,
    }
}

fn escape_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_tags_stay_and_others_leave_their_text() {
        let html = "<div>a <b>bold</b> <strong>strong</strong><p>para</p><h2>head</h2></div>";
        assert_eq!(rich_text(html), "<div>a bold <strong>strong</strong>parahead</div>");
    }

    #[test]
    fn attributes_go_except_safe_hrefs_and_attachment_attributes() {
        let html = r#"<div class="x" style="color:red"><a href="https://e.com/?a=1&amp;b=2" target="_blank" onclick="x()">l</a><a href="javascript:alert(1)">j</a><bc-attachment sgid="S1" caption="c"></bc-attachment></div>"#;
        assert_eq!(
            rich_text(html),
            r#"<div><a href="https://e.com/?a=1&amp;b=2">l</a><a>j</a><bc-attachment caption="c" sgid="S1"></bc-attachment></div>"#
        );
    }

    #[test]
    fn scripts_vanish_with_their_content_and_text_is_escaped() {
        assert_eq!(rich_text("<div>1 &lt; 2<script>alert(1)</script></div>"), "<div>1 &lt; 2</div>");
        assert_eq!(rich_text("a<br>b<br/>c"), "a<br>b<br>c");
    }

    #[test]
    fn sanitising_twice_changes_nothing() {
        for html in [
            "<div><p>x</p><ul><li><p>y</p><table><tr><td>z</td></tr></table></li></ul></div>",
            "plain & simple",
            "<blockquote><blockquote><pre>code <i>x</i></pre></blockquote></blockquote>",
            "<a href=\"/relative\">r</a><img src=\"https://e.com/i.png\">",
        ] {
            let once = rich_text(html);
            assert_eq!(rich_text(&once), once, "{html}");
        }
    }

    #[test]
    fn blank_means_no_text_and_no_attachment() {
        assert!(is_blank("<div> <br></div>"));
        assert!(!is_blank("<div>x</div>"));
        assert!(!is_blank("<bc-attachment sgid=\"s\"></bc-attachment>"));
    }
}
