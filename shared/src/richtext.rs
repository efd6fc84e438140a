//! Rich text between Basecamp's HTML and Jira's Atlassian Document Format (ADF).
//!
//! Both directions go through one small document model: what both sides can hold. Basecamp keeps only
//! `div`, `h1`, `br`, `strong`, `em`, `strike`, `a`, `pre`, `ol`, `ul`, `li` and `blockquote`; Atlassian's
//! ADF schema forbids some nestings Basecamp allows. So the model has paragraphs, one heading level,
//! nested bullet and ordered lists, code blocks and block quotes; text with link/strong/em/strike marks
//! and hard breaks — and [`normalize_blocks`] flattens what ADF cannot nest: a quote inside a quote or a
//! list item gives up its quote, a heading inside a quote or list item becomes a bold paragraph. Rules and
//! inline code have no Basecamp tag and are dropped (a rule still separates paragraphs); other ADF nodes
//! keep their text. Every document either side produces is therefore valid ADF and Basecamp-only HTML,
//! and a round trip reaches a fixed point at once. Mentions on either side become the person's name as
//! text (`@Jane Cole`): a Basecamp mention cannot name a Jira account and a Jira mention cannot ping a
//! Basecamp person.
//!
//! The HTML that [`adf_to_html`] emits is *canonical*: parsing it back gives the same document, so
//! [`canonical_html`] is idempotent and the engine can compare descriptions as strings. Whitespace
//! follows HTML rendering rules (runs collapse to one space, none at the edges of a block), so two
//! inputs that render the same compare equal.

use scraper::{ElementRef, Html, Node};
use serde_json::{Value, json};

/// Converts Basecamp rich text (HTML) to an ADF document (`{"type":"doc","version":1,...}`).
pub fn html_to_adf(html: &str) -> Value {
    doc_to_adf(&parse_html(html))
}

/// Renders an ADF document as canonical Basecamp-style HTML. Unknown nodes contribute their text.
pub fn adf_to_html(adf: &Value) -> String {
    let mut out = String::new();
    render_blocks(&parse_adf(adf), &mut out);
    out
}

/// The canonical form of Basecamp HTML: what a round trip through ADF produces.
pub fn canonical_html(html: &str) -> String {
    let mut out = String::new();
    render_blocks(&parse_html(html), &mut out);
    out
}

/// Plain text of Basecamp HTML: one line per block, `<br>` as a newline, list items as `- ` lines,
/// mentions as `@Name`. For summaries and prefix checks (`DEV:`), not for display.
pub fn html_to_text(html: &str) -> String {
    blocks_to_text(&parse_html(html))
}

/// Plain text of an ADF document (same rules as [`html_to_text`]).
pub fn adf_to_text(adf: &Value) -> String {
    blocks_to_text(&parse_adf(adf))
}

/// Canonical HTML for plain text (a Jira v2 or webhook string): blank lines separate paragraphs,
/// single newlines become `<br>`.
pub fn text_to_html(text: &str) -> String {
    let normalized = text.replace("\r\n", "\n");
    let mut html = String::new();
    for para in normalized.split("\n\n") {
        if para.trim().is_empty() {
            continue;
        }
        html.push_str("<div>");
        let lines: Vec<String> = para.split('\n').map(escape_text).collect();
        html.push_str(&lines.join("<br>"));
        html.push_str("</div>");
    }
    canonical_html(&html)
}

/// How long a document is for a tracker's rich-text limit: its ADF as JSON, in UTF-16 code units (Jira
/// checks 32,767 characters per rich-text field; counting the markup as well as the text never
/// undercounts, whatever Jira measures).
pub fn adf_length(adf: &Value) -> usize {
    serde_json::to_string(adf).map_or(usize::MAX, |s| s.encode_utf16().count())
}

/// `html` (canonical), then `footer`, with an ADF no longer than `limit` ([`adf_length`]). A body that
/// does not fit is cut on a character boundary and ends with "… continued in Basecamp" linking to
/// `continued_url`, so nothing is silently lost and the write is never refused for its length.
pub fn fit_html(html: &str, footer: &str, limit: usize, continued_url: &str) -> String {
    let body = parse_html(html);
    let footer = parse_html(footer);
    let with_footer = |mut blocks: Vec<Block>| {
        blocks.extend(footer.iter().cloned());
        blocks
    };
    let whole = with_footer(body.clone());
    if adf_length(&doc_to_adf(&whole)) <= limit {
        let mut out = String::new();
        render_blocks(&whole, &mut out);
        return out;
    }
    let continued = Block::Paragraph(vec![
        Inline::Text("… ".to_owned(), Marks::default()),
        Inline::Text(
            "continued in Basecamp".to_owned(),
            Marks { link: (!continued_url.is_empty()).then(|| continued_url.to_owned()), ..Marks::default() },
        ),
    ]);
    let cut = |keep: usize| {
        let mut budget = keep;
        let mut blocks = normalize_blocks(truncate_blocks(&body, &mut budget), Place::Top);
        blocks.push(continued.clone());
        with_footer(blocks)
    };
    // The most text that fits: the length grows with the text kept, so a binary search finds it.
    let (mut lo, mut hi) = (0usize, text_chars(&body));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if adf_length(&doc_to_adf(&cut(mid))) <= limit { lo = mid } else { hi = mid - 1 }
    }
    let mut out = String::new();
    render_blocks(&cut(lo), &mut out);
    out
}

/// Characters of text in `blocks` (a break counts as one).
fn text_chars(blocks: &[Block]) -> usize {
    let run_chars = |run: &[Inline]| -> usize {
        run.iter()
            .map(|i| match i {
                Inline::Text(t, _) => t.chars().count(),
                Inline::Break => 1,
            })
            .sum()
    };
    blocks
        .iter()
        .map(|b| match b {
            Block::Paragraph(run) | Block::Heading(run) => run_chars(run),
            Block::Code(text) => text.chars().count(),
            Block::Bullet(items) | Block::Ordered(items) => items.iter().map(|i| text_chars(i)).sum(),
            Block::Quote(inner) => text_chars(inner),
        })
        .sum()
}

/// The first `budget` characters of text of `blocks`, in document order; what is left of `budget` after.
fn truncate_blocks(blocks: &[Block], budget: &mut usize) -> Vec<Block> {
    fn run(run: &[Inline], budget: &mut usize) -> Vec<Inline> {
        let mut out = Vec::new();
        for item in run {
            if *budget == 0 {
                break;
            }
            match item {
                Inline::Break => {
                    *budget -= 1;
                    out.push(Inline::Break);
                }
                Inline::Text(t, m) => {
                    let kept: String = t.chars().take(*budget).collect();
                    *budget -= kept.chars().count();
                    out.push(Inline::Text(kept, m.clone()));
                }
            }
        }
        normalize_inlines(out)
    }
    let mut out = Vec::new();
    for block in blocks {
        if *budget == 0 {
            break;
        }
        match block {
            Block::Paragraph(r) => out.push(Block::Paragraph(run(r, budget))),
            Block::Heading(r) => out.push(Block::Heading(run(r, budget))),
            Block::Code(text) => {
                let kept: String = text.chars().take(*budget).collect();
                *budget -= kept.chars().count();
                out.push(Block::Code(kept));
            }
            Block::Bullet(items) | Block::Ordered(items) => {
                let mut kept = Vec::new();
                for item in items {
                    if *budget == 0 {
                        break;
                    }
                    kept.push(normalize_item(truncate_blocks(item, budget)));
                }
                if !kept.is_empty() {
                    out.push(if matches!(block, Block::Bullet(_)) {
                        Block::Bullet(kept)
                    } else {
                        Block::Ordered(kept)
                    });
                }
            }
            Block::Quote(inner) => out.push(Block::Quote(truncate_blocks(inner, budget))),
        }
    }
    out.retain(|b| match b {
        Block::Paragraph(r) | Block::Heading(r) => !r.is_empty(),
        _ => true,
    });
    out
}

// ---------------------------------------------------------------------------------------------
// The document model.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Paragraph(Vec<Inline>),
    /// Basecamp has one heading level (`h1`); every ADF level reads as it.
    Heading(Vec<Inline>),
    Bullet(Vec<Vec<Block>>),
    Ordered(Vec<Vec<Block>>),
    Code(String),
    Quote(Vec<Block>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Inline {
    Text(String, Marks),
    Break,
}

/// Marks in a fixed order, so equal mark sets compare and render identically.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Marks {
    link: Option<String>,
    strong: bool,
    em: bool,
    strike: bool,
}

fn is_html_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_space = false;
    for c in s.chars() {
        if is_html_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

fn merge_adjacent(run: Vec<Inline>) -> Vec<Inline> {
    let mut out: Vec<Inline> = Vec::with_capacity(run.len());
    for item in run {
        match (out.last_mut(), item) {
            (Some(Inline::Text(prev, prev_marks)), Inline::Text(text, marks)) if *prev_marks == marks => {
                prev.push_str(&text)
            }
            (_, item) => out.push(item),
        }
    }
    out
}

/// Applies HTML's rendering rules to an inline run: whitespace runs collapse to one space (also across
/// mark boundaries), no space at the start or end of a line, no empty text, equal neighbours merged.
fn normalize_inlines(run: Vec<Inline>) -> Vec<Inline> {
    let run: Vec<Inline> = merge_adjacent(run)
        .into_iter()
        .map(|i| match i {
            Inline::Text(t, m) => Inline::Text(collapse_spaces(&t), m),
            Inline::Break => Inline::Break,
        })
        .collect();

    // Forward: drop a space that follows a space, a line start or a break.
    let mut forward = Vec::with_capacity(run.len());
    let mut after_space = true;
    for item in run {
        match item {
            Inline::Break => {
                after_space = true;
                forward.push(Inline::Break);
            }
            Inline::Text(mut t, m) => {
                if after_space && t.starts_with(' ') {
                    t.remove(0);
                }
                if t.is_empty() {
                    continue;
                }
                after_space = t.ends_with(' ');
                forward.push(Inline::Text(t, m));
            }
        }
    }

    // Backward: drop a space before a break or the line end.
    let mut backward = Vec::with_capacity(forward.len());
    let mut at_line_end = true;
    for item in forward.into_iter().rev() {
        match item {
            Inline::Break => {
                at_line_end = true;
                backward.push(Inline::Break);
            }
            Inline::Text(mut t, m) => {
                if at_line_end && t.ends_with(' ') {
                    t.pop();
                }
                if t.is_empty() {
                    continue;
                }
                at_line_end = false;
                backward.push(Inline::Text(t, m));
            }
        }
    }
    backward.reverse();
    merge_adjacent(backward)
}

/// Where a block sits, for what ADF lets it hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    Quote,
    Item,
}

/// Flattens what ADF cannot nest (see the module docs): quotes inside quotes or list items are spliced
/// into their parent, headings inside them become bold paragraphs, empty quotes disappear, and every list
/// item starts the way [`normalize_item`] says. Idempotent.
fn normalize_blocks(blocks: Vec<Block>, place: Place) -> Vec<Block> {
    let mut out = Vec::with_capacity(blocks.len());
    for block in blocks {
        match block {
            Block::Heading(run) if place != Place::Top => out.push(Block::Paragraph(emphasized(run))),
            Block::Quote(inner) if place != Place::Top => out.extend(normalize_blocks(inner, place)),
            Block::Quote(inner) => {
                let inner = normalize_blocks(inner, Place::Quote);
                if !inner.is_empty() {
                    out.push(Block::Quote(inner));
                }
            }
            Block::Bullet(items) => out.push(Block::Bullet(normalize_items(items))),
            Block::Ordered(items) => out.push(Block::Ordered(normalize_items(items))),
            other => out.push(other),
        }
    }
    out
}

fn normalize_items(items: Vec<Vec<Block>>) -> Vec<Vec<Block>> {
    items.into_iter().map(|item| normalize_item(normalize_blocks(item, Place::Item))).collect()
}

/// A heading's text where no heading may stand: bold, so it still stands out.
fn emphasized(run: Vec<Inline>) -> Vec<Inline> {
    let run = run
        .into_iter()
        .map(|i| match i {
            Inline::Text(t, m) => Inline::Text(t, Marks { strong: true, ..m }),
            Inline::Break => Inline::Break,
        })
        .collect();
    normalize_inlines(run)
}

/// A list item always starts with a paragraph in ADF; one that starts with a nested list gets an
/// empty one (rendered as nothing in HTML).
fn normalize_item(mut blocks: Vec<Block>) -> Vec<Block> {
    match blocks.first() {
        None | Some(Block::Bullet(_) | Block::Ordered(_)) => blocks.insert(0, Block::Paragraph(Vec::new())),
        _ => {}
    }
    blocks
}

// ---------------------------------------------------------------------------------------------
// HTML → model.

fn parse_html(html: &str) -> Vec<Block> {
    let fragment = Html::parse_fragment(html);
    let mut builder = BlockBuilder::default();
    walk_children(fragment.root_element(), &mut builder, &Marks::default());
    normalize_blocks(builder.finish(), Place::Top)
}

#[derive(Default)]
struct BlockBuilder {
    blocks: Vec<Block>,
    run: Vec<Inline>,
    /// Inside a heading: block structure is flattened into the heading's text.
    inline_only: bool,
}

impl BlockBuilder {
    fn inline_only() -> Self {
        Self { inline_only: true, ..Self::default() }
    }
    fn flush(&mut self) {
        let run = normalize_inlines(std::mem::take(&mut self.run));
        if !run.is_empty() {
            self.blocks.push(Block::Paragraph(run));
        }
    }
    fn push_block(&mut self, block: Block) {
        self.flush();
        self.blocks.push(block);
    }
    fn finish(mut self) -> Vec<Block> {
        self.flush();
        self.blocks
    }
    fn finish_inline(self) -> Vec<Inline> {
        normalize_inlines(self.run)
    }
}

const TRANSPARENT_BLOCKS: &[&str] = &[
    "div",
    "p",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "aside",
    "nav",
    "figure",
    "figcaption",
    "address",
    "details",
    "summary",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
    "dl",
    "dt",
    "dd",
    "li",
    "center",
];

fn walk_children(el: ElementRef<'_>, b: &mut BlockBuilder, marks: &Marks) {
    for child in el.children() {
        match child.value() {
            Node::Text(text) => b.run.push(Inline::Text(text.to_string(), marks.clone())),
            Node::Element(_) => {
                if let Some(child_el) = ElementRef::wrap(child) {
                    walk_element(child_el, b, marks);
                }
            }
            _ => {}
        }
    }
}

fn walk_element(el: ElementRef<'_>, b: &mut BlockBuilder, marks: &Marks) {
    let name = el.value().name();
    match name {
        "br" => b.run.push(Inline::Break),
        "strong" | "b" => walk_children(el, b, &Marks { strong: true, ..marks.clone() }),
        "em" | "i" => walk_children(el, b, &Marks { em: true, ..marks.clone() }),
        "strike" | "s" | "del" => walk_children(el, b, &Marks { strike: true, ..marks.clone() }),
        "a" => match el.value().attr("href").filter(|h| !h.is_empty()) {
            Some(href) => walk_children(el, b, &Marks { link: Some(href.to_owned()), ..marks.clone() }),
            None => walk_children(el, b, marks),
        },
        "bc-attachment" => attachment(el, b, marks),
        "script" | "style" | "template" | "head" | "title" | "img" => {}
        _ if b.inline_only => {
            if name == "pre" {
                b.run.push(Inline::Text(pre_text(el), marks.clone()));
            } else {
                walk_children(el, b, marks)
            }
        }
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
            let mut inner = BlockBuilder::inline_only();
            walk_children(el, &mut inner, marks);
            let run = inner.finish_inline();
            b.flush();
            if !run.is_empty() {
                b.blocks.push(Block::Heading(run));
            }
        }
        "ul" | "ol" => {
            let items = list_items(el, marks);
            b.flush();
            if !items.is_empty() {
                b.blocks.push(if name == "ul" { Block::Bullet(items) } else { Block::Ordered(items) });
            }
        }
        "pre" => b.push_block(Block::Code(pre_text(el))),
        "blockquote" => {
            let mut inner = BlockBuilder::default();
            walk_children(el, &mut inner, marks);
            let blocks = inner.finish();
            b.flush();
            if !blocks.is_empty() {
                b.blocks.push(Block::Quote(blocks));
            }
        }
        // No Basecamp tag: a rule only separates what is around it.
        "hr" => b.flush(),
        _ if TRANSPARENT_BLOCKS.contains(&name) => {
            b.flush();
            walk_children(el, b, marks);
            b.flush();
        }
        _ => walk_children(el, b, marks),
    }
}

fn list_items(list: ElementRef<'_>, marks: &Marks) -> Vec<Vec<Block>> {
    let mut items = Vec::new();
    for child in list.children() {
        let mut inner = BlockBuilder::default();
        match child.value() {
            Node::Text(text) if text.chars().all(is_html_space) => continue,
            Node::Text(text) => inner.run.push(Inline::Text(text.to_string(), marks.clone())),
            Node::Element(e) if e.name() == "li" => {
                if let Some(li) = ElementRef::wrap(child) {
                    walk_children(li, &mut inner, marks);
                }
            }
            Node::Element(_) => {
                if let Some(other) = ElementRef::wrap(child) {
                    walk_element(other, &mut inner, marks);
                }
            }
            _ => continue,
        }
        items.push(normalize_item(inner.finish()));
    }
    items
}

fn pre_text(el: ElementRef<'_>) -> String {
    fn collect(el: ElementRef<'_>, out: &mut String) {
        for child in el.children() {
            match child.value() {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) if e.name() == "br" => out.push('\n'),
                Node::Element(_) => {
                    if let Some(c) = ElementRef::wrap(child) {
                        collect(c, out);
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = String::new();
    collect(el, &mut out);
    out
}

const MENTION_CONTENT_TYPE: &str = "application/vnd.basecamp.mention";

/// A `<bc-attachment>`: a mention becomes `@Name`; a file or embed becomes a link with its caption.
fn attachment(el: ElementRef<'_>, b: &mut BlockBuilder, marks: &Marks) {
    let attr = |n: &str| el.value().attr(n).map(str::trim).filter(|v| !v.is_empty());
    let caption = el
        .descendants()
        .filter_map(ElementRef::wrap)
        .find(|e| e.value().name() == "figcaption")
        .map(|e| collapse_spaces(&e.text().collect::<String>()).trim().to_owned())
        .filter(|t| !t.is_empty());
    if attr("content-type") == Some(MENTION_CONTENT_TYPE) {
        let text = collapse_spaces(&el.text().collect::<String>()).trim().to_owned();
        let name = caption.or_else(|| (!text.is_empty()).then_some(text));
        if let Some(name) = name {
            let name = name.trim_start_matches('@');
            b.run.push(Inline::Text(format!("@{name}"), marks.clone()));
        }
        return;
    }
    let label = caption.or_else(|| attr("caption").map(str::to_owned)).or_else(|| attr("filename").map(str::to_owned));
    let href = attr("href").or_else(|| attr("url"));
    match (label, href) {
        (Some(label), Some(href)) => {
            b.run.push(Inline::Text(label, Marks { link: Some(href.to_owned()), ..marks.clone() }))
        }
        (Some(label), None) => b.run.push(Inline::Text(label, marks.clone())),
        (None, Some(href)) => {
            b.run.push(Inline::Text(href.to_owned(), Marks { link: Some(href.to_owned()), ..marks.clone() }))
        }
        (None, None) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// ADF → model.

fn node_type(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}

fn node_content(v: &Value) -> &[Value] {
    v.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn parse_adf(adf: &Value) -> Vec<Block> {
    let blocks = match adf {
        Value::Object(_) if node_type(adf) == "doc" => parse_blocks(node_content(adf)),
        Value::Object(_) => parse_blocks(std::slice::from_ref(adf)),
        Value::Array(items) => parse_blocks(items),
        Value::String(s) => return parse_html(&text_to_html(s)),
        _ => Vec::new(),
    };
    normalize_blocks(blocks, Place::Top)
}

const INLINE_TYPES: &[&str] = &["text", "hardBreak", "mention", "emoji", "inlineCard", "status", "date"];

fn parse_blocks(nodes: &[Value]) -> Vec<Block> {
    let mut b = BlockBuilder::default();
    for node in nodes {
        let kind = node_type(node);
        if INLINE_TYPES.contains(&kind) {
            parse_inline(node, &Marks::default(), &mut b.run);
            continue;
        }
        match kind {
            "paragraph" => {
                b.flush();
                b.run = parse_inlines(node_content(node));
                b.flush();
            }
            "heading" => {
                let run = normalize_inlines(parse_inlines(node_content(node)));
                b.flush();
                if !run.is_empty() {
                    b.blocks.push(Block::Heading(run));
                }
            }
            "bulletList" | "orderedList" => {
                let items: Vec<Vec<Block>> = node_content(node)
                    .iter()
                    .map(|item| {
                        let blocks = if node_type(item) == "listItem" {
                            parse_blocks(node_content(item))
                        } else {
                            parse_blocks(std::slice::from_ref(item))
                        };
                        normalize_item(blocks)
                    })
                    .collect();
                b.flush();
                if !items.is_empty() {
                    b.blocks.push(if kind == "bulletList" { Block::Bullet(items) } else { Block::Ordered(items) });
                }
            }
            "codeBlock" => {
                let text: String =
                    node_content(node).iter().filter_map(|t| t.get("text").and_then(Value::as_str)).collect();
                b.push_block(Block::Code(text));
            }
            "blockquote" => {
                let blocks = parse_blocks(node_content(node));
                b.flush();
                if !blocks.is_empty() {
                    b.blocks.push(Block::Quote(blocks));
                }
            }
            // No Basecamp tag: a rule only separates what is around it.
            "rule" => b.flush(),
            // Panels, expands, tables, media…: keep whatever text they hold, block by block.
            _ => {
                b.flush();
                b.blocks.extend(parse_blocks(node_content(node)));
            }
        }
    }
    b.finish()
}

fn parse_inlines(nodes: &[Value]) -> Vec<Inline> {
    let mut run = Vec::new();
    for node in nodes {
        parse_inline(node, &Marks::default(), &mut run);
    }
    run
}

fn parse_marks(node: &Value, base: &Marks) -> Marks {
    let mut marks = base.clone();
    for mark in node.get("marks").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        match node_type(mark) {
            "strong" => marks.strong = true,
            "em" => marks.em = true,
            "strike" => marks.strike = true,
            "link" => {
                marks.link = mark
                    .get("attrs")
                    .and_then(|a| a.get("href"))
                    .and_then(Value::as_str)
                    .filter(|h| !h.is_empty())
                    .map(str::to_owned)
            }
            _ => {}
        }
    }
    marks
}

fn parse_inline(node: &Value, base: &Marks, run: &mut Vec<Inline>) {
    let attr = |n: &str| node.get("attrs").and_then(|a| a.get(n)).and_then(Value::as_str).filter(|s| !s.is_empty());
    let marks = parse_marks(node, base);
    match node_type(node) {
        "text" => {
            if let Some(t) = node.get("text").and_then(Value::as_str) {
                run.push(Inline::Text(t.to_owned(), marks));
            }
        }
        "hardBreak" => run.push(Inline::Break),
        "mention" => {
            if let Some(name) = attr("text") {
                run.push(Inline::Text(format!("@{}", name.trim_start_matches('@')), marks));
            }
        }
        "emoji" => {
            if let Some(t) = attr("text").or_else(|| attr("shortName")) {
                run.push(Inline::Text(t.to_owned(), marks));
            }
        }
        "inlineCard" => {
            if let Some(url) = attr("url") {
                run.push(Inline::Text(url.to_owned(), Marks { link: Some(url.to_owned()), ..marks }));
            }
        }
        "status" => {
            if let Some(t) = attr("text") {
                run.push(Inline::Text(t.to_owned(), marks));
            }
        }
        _ => {
            for child in node_content(node) {
                parse_inline(child, &marks, run);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Model → ADF.

fn doc_to_adf(blocks: &[Block]) -> Value {
    json!({"type": "doc", "version": 1, "content": blocks.iter().map(block_to_adf).collect::<Vec<_>>()})
}

fn block_to_adf(block: &Block) -> Value {
    let items = |items: &[Vec<Block>]| -> Vec<Value> {
        items
            .iter()
            .map(|item| json!({"type": "listItem", "content": item.iter().map(block_to_adf).collect::<Vec<_>>()}))
            .collect()
    };
    match block {
        Block::Paragraph(run) => json!({"type": "paragraph", "content": inlines_to_adf(run)}),
        Block::Heading(run) => json!({"type": "heading", "attrs": {"level": 1}, "content": inlines_to_adf(run)}),
        Block::Bullet(list) => json!({"type": "bulletList", "content": items(list)}),
        Block::Ordered(list) => json!({"type": "orderedList", "content": items(list)}),
        Block::Code(text) if text.is_empty() => json!({"type": "codeBlock", "content": []}),
        Block::Code(text) => json!({"type": "codeBlock", "content": [{"type": "text", "text": text}]}),
        Block::Quote(blocks) => {
            json!({"type": "blockquote", "content": blocks.iter().map(block_to_adf).collect::<Vec<_>>()})
        }
    }
}

fn inlines_to_adf(run: &[Inline]) -> Vec<Value> {
    run.iter()
        .map(|i| match i {
            Inline::Break => json!({"type": "hardBreak"}),
            Inline::Text(text, marks) => {
                let mut list = Vec::new();
                if let Some(href) = &marks.link {
                    list.push(json!({"type": "link", "attrs": {"href": href}}));
                }
                for (on, name) in [(marks.strong, "strong"), (marks.em, "em"), (marks.strike, "strike")] {
                    if on {
                        list.push(json!({"type": name}));
                    }
                }
                if list.is_empty() {
                    json!({"type": "text", "text": text})
                } else {
                    json!({"type": "text", "text": text, "marks": list})
                }
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Model → HTML and text.

fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn escape_attr(s: &str) -> String {
    escape_text(s).replace('"', "&quot;")
}

fn render_blocks(blocks: &[Block], out: &mut String) {
    for block in blocks {
        render_block(block, out, false);
    }
}

/// `bare`: the first paragraph of a list item renders without a `<div>` around it.
fn render_block(block: &Block, out: &mut String, bare: bool) {
    match block {
        Block::Paragraph(run) if bare => render_inlines(run, out),
        Block::Paragraph(run) => {
            out.push_str("<div>");
            render_inlines(run, out);
            out.push_str("</div>");
        }
        Block::Heading(run) => {
            out.push_str("<h1>");
            render_inlines(run, out);
            out.push_str("</h1>");
        }
        Block::Bullet(items) | Block::Ordered(items) => {
            let tag = if matches!(block, Block::Bullet(_)) { "ul" } else { "ol" };
            out.push_str(&format!("<{tag}>"));
            for item in items {
                out.push_str("<li>");
                for (i, b) in item.iter().enumerate() {
                    render_block(b, out, i == 0);
                }
                out.push_str("</li>");
            }
            out.push_str(&format!("</{tag}>"));
        }
        Block::Code(text) => {
            out.push_str("<pre>");
            // An HTML parser drops one newline right after `<pre>`: give it one to drop.
            if text.starts_with('\n') {
                out.push('\n');
            }
            out.push_str(&escape_text(text));
            out.push_str("</pre>");
        }
        Block::Quote(blocks) => {
            out.push_str("<blockquote>");
            render_blocks(blocks, out);
            out.push_str("</blockquote>");
        }
    }
}

fn render_inlines(run: &[Inline], out: &mut String) {
    for item in run {
        match item {
            Inline::Break => out.push_str("<br>"),
            Inline::Text(text, marks) => {
                let mut close = Vec::new();
                if let Some(href) = &marks.link {
                    out.push_str(&format!("<a href=\"{}\">", escape_attr(href)));
                    close.push("</a>");
                }
                for (on, open, end) in [
                    (marks.strong, "<strong>", "</strong>"),
                    (marks.em, "<em>", "</em>"),
                    (marks.strike, "<strike>", "</strike>"),
                ] {
                    if on {
                        out.push_str(open);
                        close.push(end);
                    }
                }
                out.push_str(&escape_text(text));
                for end in close.iter().rev() {
                    out.push_str(end);
                }
            }
        }
    }
}

fn blocks_to_text(blocks: &[Block]) -> String {
    fn inline_text(run: &[Inline]) -> String {
        run.iter()
            .map(|i| match i {
                Inline::Text(t, _) => t.as_str(),
                Inline::Break => "\n",
            })
            .collect()
    }
    fn walk(blocks: &[Block], indent: usize, lines: &mut Vec<String>) {
        let pad = " ".repeat(indent);
        for block in blocks {
            match block {
                Block::Paragraph(run) | Block::Heading(run) => {
                    lines.extend(inline_text(run).split('\n').map(|l| format!("{pad}{l}")))
                }
                Block::Bullet(items) | Block::Ordered(items) => {
                    for (n, item) in items.iter().enumerate() {
                        let bullet =
                            if matches!(block, Block::Bullet(_)) { "- ".to_owned() } else { format!("{}. ", n + 1) };
                        let mut inner = Vec::new();
                        walk(item, 0, &mut inner);
                        let mut first = true;
                        for line in inner {
                            if first {
                                lines.push(format!("{pad}{bullet}{line}"));
                                first = false;
                            } else {
                                lines.push(format!("{pad}  {line}"));
                            }
                        }
                    }
                }
                Block::Code(text) => lines.extend(text.split('\n').map(|l| format!("{pad}{l}"))),
                Block::Quote(inner) => walk(inner, indent, lines),
            }
        }
    }
    let mut lines = Vec::new();
    walk(blocks, 0, &mut lines);
    lines.join("\n").trim().to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn basecamp_html_becomes_adf_with_marks_lists_and_breaks() {
        let html = "<div><strong>Bold</strong> and <a href=\"https://x.test/a?b=1&amp;c=2\">a link</a><br>next line</div>\
                    <ul><li>one</li><li>two<ol><li>nested</li></ol></li></ul><pre>fn main() {}\n</pre>";
        let adf = html_to_adf(html);
        assert_eq!(
            adf,
            json!({"type":"doc","version":1,"content":[
                {"type":"paragraph","content":[
                    {"type":"text","text":"Bold","marks":[{"type":"strong"}]},
                    {"type":"text","text":" and "},
                    {"type":"text","text":"a link","marks":[{"type":"link","attrs":{"href":"https://x.test/a?b=1&c=2"}}]},
                    {"type":"hardBreak"},
                    {"type":"text","text":"next line"}]},
                {"type":"bulletList","content":[
                    {"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"one"}]}]},
                    {"type":"listItem","content":[
                        {"type":"paragraph","content":[{"type":"text","text":"two"}]},
                        {"type":"orderedList","content":[
                            {"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"nested"}]}]}]}]}]},
                {"type":"codeBlock","content":[{"type":"text","text":"fn main() {}\n"}]}
            ]})
        );
    }

    #[test]
    fn adf_renders_as_canonical_html() {
        let adf = json!({"type":"doc","version":1,"content":[
            {"type":"heading","attrs":{"level":2},"content":[{"type":"text","text":"Title"}]},
            {"type":"paragraph","content":[
                {"type":"text","text":"bold","marks":[{"type":"strong"}]},
                {"type":"text","text":" and "},
                {"type":"text","text":"a link","marks":[{"type":"link","attrs":{"href":"https://3.basecamp.com/x"}}]},
                {"type":"hardBreak"},
                {"type":"text","text":"code","marks":[{"type":"code"}]}]},
            {"type":"bulletList","content":[
                {"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"item"}]}]}]},
            {"type":"codeBlock","attrs":{"language":"rust"},"content":[{"type":"text","text":"fn main() {}"}]}
        ]});
        assert_eq!(
            adf_to_html(&adf),
            "<h1>Title</h1><div><strong>bold</strong> and <a href=\"https://3.basecamp.com/x\">a link</a><br>\
             code</div><ul><li>item</li></ul><pre>fn main() {}</pre>"
        );
    }

    #[test]
    fn a_long_body_is_cut_to_the_limit_with_a_link_to_the_rest() {
        let para = "word ".repeat(2_000);
        let html = format!("<div>{para}</div><ul><li>{para}</li><li>{para}</li></ul><pre>{para}</pre>");
        let footer = "<div>— Annie via <a href=\"https://bc.test/c/1\">Basecamp</a></div>";
        let fitted = fit_html(&html, footer, 32_767, "https://bc.test/c/1");
        let adf = html_to_adf(&fitted);
        assert!(adf_length(&adf) <= 32_767, "{}", adf_length(&adf));
        assert!(adf_length(&adf) > 30_000, "as much as fits is kept: {}", adf_length(&adf));
        assert!(
            fitted.ends_with(&format!(
                "… <a href=\"https://bc.test/c/1\">continued in Basecamp</a></div>{}",
                canonical_html(footer)
            )),
            "{}",
            &fitted[fitted.len() - 300..]
        );
        assert_eq!(campbridge_simulators::jira::adf::validate(&adf), Ok(()));
        assert_eq!(canonical_html(&fitted), fitted, "the cut is canonical, so it compares equal after a round trip");
        let short = "<div>short</div>";
        assert_eq!(
            fit_html(short, "", 32_767, "https://bc.test/t/1"),
            canonical_html(short),
            "what fits is left alone"
        );
    }

    #[test]
    fn what_adf_cannot_nest_is_flattened_into_valid_adf() {
        let cases = [
            (
                "<blockquote><div>a</div><blockquote><div>b</div></blockquote></blockquote>",
                "<blockquote><div>a</div><div>b</div></blockquote>",
            ),
            (
                "<blockquote><h1>Head</h1><div>text</div></blockquote>",
                "<blockquote><div><strong>Head</strong></div><div>text</div></blockquote>",
            ),
            ("<ul><li>a<blockquote>quoted</blockquote></li></ul>", "<ul><li>a<div>quoted</div></li></ul>"),
            ("<ol><li><h1>Step</h1></li></ol>", "<ol><li><strong>Step</strong></li></ol>"),
            ("<div>a</div><hr><div>b</div><blockquote><hr></blockquote>", "<div>a</div><div>b</div>"),
            ("<div>x <code>y</code></div><h3>z</h3>", "<div>x y</div><h1>z</h1>"),
        ];
        for (html, canonical) in cases {
            assert_eq!(canonical_html(html), canonical, "{html}");
            let adf = html_to_adf(html);
            assert_eq!(campbridge_simulators::jira::adf::validate(&adf), Ok(()), "{html} → {adf}");
        }
    }

    #[test]
    fn a_basecamp_mention_becomes_the_persons_name() {
        let html = "<div>Ping <bc-attachment sgid=\"BAh7\" content-type=\"application/vnd.basecamp.mention\">\
                    <figure><img src=\"https://x.test/avatar\" class=\"avatar\"><figcaption>Jane Cole</figcaption>\
                    </figure></bc-attachment> please</div>";
        assert_eq!(canonical_html(html), "<div>Ping @Jane Cole please</div>");
        assert_eq!(html_to_text(html), "Ping @Jane Cole please");
    }

    #[test]
    fn a_jira_mention_becomes_the_persons_name() {
        let adf = json!({"type":"doc","version":1,"content":[{"type":"paragraph","content":[
            {"type":"mention","attrs":{"id":"5b10a2844c20165700ede21g","text":"@Mia Krystof","accessLevel":""}},
            {"type":"text","text":" can you look?"}]}]});
        assert_eq!(adf_to_html(&adf), "<div>@Mia Krystof can you look?</div>");
    }

    #[test]
    fn whitespace_collapses_like_a_browser_renders_it() {
        let html = "<div>  a \n\n b   <strong> c </strong> d </div>\n<div>\t</div>";
        assert_eq!(canonical_html(html), "<div>a b <strong>c </strong>d</div>");
    }

    #[test]
    fn spaces_merged_across_text_nodes_still_collapse() {
        assert_eq!(canonical_html("<span>0\t</span>\n<div></div>"), "<div>0</div>");
    }

    #[test]
    fn plain_text_keeps_lines_and_list_items() {
        let html = "<div>DEV: fix it<br>today</div><ul><li>a</li><li>b</li></ul>";
        assert_eq!(html_to_text(html), "DEV: fix it\ntoday\n- a\n- b");
        assert_eq!(html_to_text("<div>A &amp; B &lt;3</div>"), "A & B <3");
    }

    #[test]
    fn plain_strings_from_jira_v2_become_paragraphs() {
        assert_eq!(text_to_html("one\ntwo\n\nthree <x>"), "<div>one<br>two</div><div>three &lt;x&gt;</div>");
        assert_eq!(adf_to_html(&json!("example bug report")), "<div>example bug report</div>");
    }

    #[test]
    fn a_code_block_starting_with_a_newline_survives_the_round_trip() {
        let adf = html_to_adf("<pre>\n\nx</pre>");
        let html = adf_to_html(&adf);
        assert_eq!(html_to_adf(&html), adf);
    }

    #[test]
    fn the_empty_document_is_empty_html() {
        assert_eq!(adf_to_html(&html_to_adf("")), "");
        assert_eq!(html_to_adf("  "), json!({"type":"doc","version":1,"content":[]}));
    }

    // --- property tests -------------------------------------------------------------------

    fn text_strategy() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-zA-Z0-9 &<>\"'@.,:!é\u{a0}\n\t-]{0,12}").unwrap()
    }

    fn inline_html() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            4 => text_strategy().prop_map(|t| escape_text(&t)),
            1 => Just("<br>".to_owned()),
            1 => "[A-Z][a-z]{1,6} [A-Z][a-z]{1,6}".prop_map(|n| format!(
                "<bc-attachment sgid=\"x\" content-type=\"application/vnd.basecamp.mention\"><figure>\
                 <img src=\"https://x.test/a\" class=\"avatar\"><figcaption>{n}</figcaption></figure></bc-attachment>")),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            (
                prop::sample::select(vec!["strong", "em", "code", "strike", "a", "b", "i", "span"]),
                prop::collection::vec(inner, 1..3),
            )
                .prop_map(|(tag, kids)| {
                    let body = kids.concat();
                    if tag == "a" {
                        format!("<a href=\"https://x.test/?q=1&amp;r={}\">{body}</a>", body.len())
                    } else {
                        format!("<{tag}>{body}</{tag}>")
                    }
                })
        })
    }

    fn block_html() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            3 => inline_html().prop_map(|i| format!("<div>{i}</div>")),
            1 => (1u8..=6, inline_html()).prop_map(|(l, i)| format!("<h{l}>{i}</h{l}>")),
            1 => text_strategy().prop_map(|t| format!("<pre>{}</pre>", escape_text(&t))),
            1 => inline_html(),
            1 => Just("<hr>".to_owned()),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                (prop::bool::ANY, prop::collection::vec(prop::collection::vec(inner.clone(), 0..3), 1..4)).prop_map(
                    |(ordered, items)| {
                        let tag = if ordered { "ol" } else { "ul" };
                        let lis: String = items.iter().map(|kids| format!("<li>{}</li>", kids.concat())).collect();
                        format!("<{tag}>{lis}</{tag}>")
                    }
                ),
                prop::collection::vec(inner.clone(), 1..3)
                    .prop_map(|kids| format!("<blockquote>{}</blockquote>", kids.concat())),
                prop::collection::vec(inner, 1..3).prop_map(|kids| format!("<div>{}</div>", kids.concat())),
            ]
        })
    }

    fn document_html() -> impl Strategy<Value = String> {
        prop::collection::vec(block_html(), 0..5).prop_map(|blocks| blocks.join("\n"))
    }

    fn adf_inline() -> impl Strategy<Value = Value> {
        let marks = prop::collection::vec(
            prop::sample::select(vec![
                json!({"type": "strong"}),
                json!({"type": "em"}),
                json!({"type": "code"}),
                json!({"type": "strike"}),
                json!({"type": "underline"}),
                json!({"type": "link", "attrs": {"href": "https://x.test/?a=1&b=2"}}),
            ]),
            0..3,
        );
        prop_oneof![
            4 => (text_strategy(), marks).prop_map(|(t, m)| json!({"type": "text", "text": t, "marks": m})),
            1 => Just(json!({"type": "hardBreak"})),
            1 => "[A-Z][a-z]{1,6}".prop_map(|n| json!({"type": "mention", "attrs": {"id": "5b10", "text": format!("@{n}")}})),
            1 => Just(json!({"type": "emoji", "attrs": {"shortName": ":smile:", "text": "😄"}})),
        ]
    }

    fn adf_block() -> impl Strategy<Value = Value> {
        let inlines = || prop::collection::vec(adf_inline(), 0..4);
        let leaf = prop_oneof![
            3 => inlines().prop_map(|c| json!({"type": "paragraph", "content": c})),
            1 => (1u8..=6, inlines()).prop_map(|(l, c)| json!({"type": "heading", "attrs": {"level": l}, "content": c})),
            1 => text_strategy().prop_map(|t| json!({"type": "codeBlock", "content": [{"type": "text", "text": t}]})),
            1 => Just(json!({"type": "rule"})),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                (prop::bool::ANY, prop::collection::vec(prop::collection::vec(inner.clone(), 1..3), 1..3)).prop_map(
                    |(ordered, items)| {
                        let items: Vec<Value> =
                            items.into_iter().map(|c| json!({"type": "listItem", "content": c})).collect();
                        json!({"type": if ordered { "orderedList" } else { "bulletList" }, "content": items})
                    }
                ),
                prop::collection::vec(inner.clone(), 1..3).prop_map(|c| json!({"type": "blockquote", "content": c})),
                prop::collection::vec(inner, 1..3)
                    .prop_map(|c| json!({"type": "panel", "attrs": {"panelType": "info"}, "content": c})),
            ]
        })
    }

    /// Basecamp's rich-text tag set: what Basecamp keeps of any HTML it is given.
    const BASECAMP_TAGS: &[&str] =
        &["div", "h1", "br", "strong", "em", "strike", "a", "pre", "ol", "ul", "li", "blockquote"];

    /// Arbitrary HTML from Basecamp's tag set, every tag nesting any other, with text (including
    /// whitespace-only and entity-laden text) anywhere.
    fn basecamp_html() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            4 => text_strategy().prop_map(|t| escape_text(&t)),
            1 => Just("<br>".to_owned()),
            1 => Just(String::new()),
        ];
        leaf.prop_recursive(5, 48, 4, |inner| {
            (
                prop::sample::select(BASECAMP_TAGS.iter().filter(|t| **t != "br").copied().collect::<Vec<_>>()),
                prop::collection::vec(inner, 0..4),
            )
                .prop_map(|(tag, kids)| {
                    let body = kids.concat();
                    match tag {
                        "a" => format!("<a href=\"https://x.test/?q=1&amp;r={}\">{body}</a>", body.len()),
                        "ol" | "ul" => {
                            let items: String = kids_as_items(&body);
                            format!("<{tag}>{items}</{tag}>")
                        }
                        _ => format!("<{tag}>{body}</{tag}>"),
                    }
                })
        })
    }

    /// List bodies: sometimes `<li>`s, sometimes whatever was generated (browsers and Basecamp get both).
    fn kids_as_items(body: &str) -> String {
        if body.len().is_multiple_of(3) { body.to_owned() } else { format!("<li>{body}</li><li>{body}</li>") }
    }

    /// The tags in `html` (opening and closing).
    fn tags_in(html: &str) -> Vec<String> {
        let mut tags = Vec::new();
        let mut rest = html;
        while let Some(start) = rest.find('<') {
            let after = &rest[start + 1..];
            let name: String =
                after.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            tags.push(name.to_ascii_lowercase());
            rest = after;
        }
        tags
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn adf_from_any_basecamp_html_is_valid_against_atlassians_schema(html in basecamp_html()) {
            let adf = html_to_adf(&html);
            let verdict = campbridge_simulators::jira::adf::validate(&adf);
            prop_assert!(verdict.is_ok(), "input: {}\nadf: {}\n{:?}", html, adf, verdict);
        }

        #[test]
        fn basecamp_html_reaches_a_fixed_point_through_adf(html in basecamp_html()) {
            let adf = html_to_adf(&html);
            let back = html_to_adf(&adf_to_html(&adf));
            prop_assert_eq!(&adf, &back, "input: {}", html);
        }

        #[test]
        fn jira_adf_becomes_only_basecamps_tags(blocks in prop::collection::vec(adf_block(), 0..5)) {
            let adf = json!({"type": "doc", "version": 1, "content": blocks});
            let html = adf_to_html(&adf);
            for tag in tags_in(&html) {
                prop_assert!(BASECAMP_TAGS.contains(&tag.as_str()), "<{}> in {} from {}", tag, html, adf);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn html_rendered_from_any_jira_adf_is_already_canonical(blocks in prop::collection::vec(adf_block(), 0..5)) {
            let adf = json!({"type": "doc", "version": 1, "content": blocks});
            let html = adf_to_html(&adf);
            prop_assert_eq!(canonical_html(&html), html.clone(), "adf: {}", adf);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn canonical_html_is_stable_through_adf(html in document_html()) {
            let once = canonical_html(&html);
            let twice = adf_to_html(&html_to_adf(&once));
            prop_assert_eq!(&once, &twice, "input: {}", html);
        }

        #[test]
        fn adf_made_from_html_survives_html_unchanged(html in document_html()) {
            let adf = html_to_adf(&html);
            let back = html_to_adf(&adf_to_html(&adf));
            prop_assert_eq!(&adf, &back, "input: {}", html);
        }

        #[test]
        fn plain_text_is_the_same_for_html_and_its_canonical_form(html in document_html()) {
            prop_assert_eq!(html_to_text(&html), html_to_text(&canonical_html(&html)));
        }
    }
}
