//! Atlassian Document Format helpers: validation against Atlassian's own JSON schema (v3 requires a
//! document, and Jira refuses one the schema does not accept), plain-text projection (what v2 webhook
//! bodies carry) and wrapping text as a one-paragraph document.
//!
//! The schema is `json-schema/v1/full.json` of the npm package named in `vendor/adf-schema/PACKAGE`
//! (Apache-2.0, `vendor/adf-schema/LICENSE`), committed byte for byte; `scripts/vendor.sh check` (run by
//! `make test`) fetches that package and proves the copy is identical.

use std::sync::OnceLock;

use serde_json::{Value, json};

/// Atlassian's ADF JSON schema (draft-04), as published.
pub const SCHEMA: &str = include_str!("../../vendor/adf-schema/full.json");

struct Compiled {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

fn compiled() -> Result<&'static Compiled, String> {
    static COMPILED: OnceLock<Result<Compiled, String>> = OnceLock::new();
    COMPILED
        .get_or_init(|| {
            let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| format!("the ADF schema is not JSON: {e}"))?;
            let mut schemas = boon::Schemas::new();
            let mut compiler = boon::Compiler::new();
            compiler.set_default_draft(boon::Draft::V4);
            compiler.add_resource("urn:adf:full.json", schema).map_err(|e| format!("{e:#}"))?;
            let index = compiler.compile("urn:adf:full.json", &mut schemas).map_err(|e| format!("{e:#}"))?;
            Ok(Compiled { schemas, index })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Checks `doc` against Atlassian's ADF schema. `Err` names the deepest place the schema refused (the
/// simulator reports it in a header; Jira's own answer is a bare `INVALID_INPUT`).
pub fn validate(doc: &Value) -> Result<(), String> {
    let compiled = compiled()?;
    match compiled.schemas.validate(doc, compiled.index) {
        Ok(()) => Ok(()),
        Err(e) => Err(deepest(&e)),
    }
}

/// The leaf error with the longest instance path: with `anyOf` over node types, the branch that got
/// furthest is the one the author meant.
fn deepest(e: &boon::ValidationError<'_, '_>) -> String {
    fn walk<'a>(e: &'a boon::ValidationError<'a, 'a>, best: &mut Option<(usize, String)>) {
        if e.causes.is_empty() {
            let at = e.instance_location.to_string();
            let depth = at.matches('/').count();
            if best.as_ref().is_none_or(|(d, _)| depth > *d) {
                *best = Some((depth, format!("at '{at}': {}", e.kind)));
            }
        }
        for c in &e.causes {
            walk(c, best);
        }
    }
    let mut best = None;
    walk(e, &mut best);
    best.map_or_else(|| e.to_string(), |(_, m)| m)
}

/// The length Jira's 32,767-character limit on a rich-text field is checked against here: the stored
/// document's JSON in UTF-16 code units (Java string length). Counting the markup too is at least as
/// strict as counting the text alone.
pub fn stored_length(doc: &Value) -> usize {
    serde_json::to_string(doc).map_or(usize::MAX, |s| s.encode_utf16().count())
}

/// Jira's limit on a rich-text field (description, comment body, environment, textarea custom fields).
pub const MAX_RICH_TEXT: usize = 32_767;

/// True when `value` looks like an ADF document (`{"type":"doc","version":1,"content":[…]}`).
pub fn is_doc(value: &Value) -> bool {
    value.get("type").and_then(Value::as_str) == Some("doc") && value.get("content").is_some_and(Value::is_array)
}

/// One paragraph per line of `text`.
pub fn from_text(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .split("\n\n")
        .map(|para| {
            let mut content = Vec::new();
            for (n, line) in para.split('\n').enumerate() {
                if n > 0 {
                    content.push(json!({"type": "hardBreak"}));
                }
                if !line.is_empty() {
                    content.push(json!({"type": "text", "text": line}));
                }
            }
            json!({"type": "paragraph", "content": content})
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

/// The document's text: blocks separated by blank lines, hard breaks as newlines.
pub fn to_text(doc: &Value) -> String {
    let blocks: Vec<String> = doc
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| blocks.iter().map(inline_text).collect())
        .unwrap_or_default();
    blocks.join("\n\n")
}

fn inline_text(node: &Value) -> String {
    match node.get("type").and_then(Value::as_str) {
        Some("text") => node.get("text").and_then(Value::as_str).unwrap_or_default().to_owned(),
        Some("hardBreak") => "\n".to_owned(),
        _ => {
            let children: Vec<String> = node
                .get("content")
                .and_then(Value::as_array)
                .map(|c| c.iter().map(inline_text).collect())
                .unwrap_or_default();
            let separator = match node.get("type").and_then(Value::as_str) {
                Some("bulletList" | "orderedList" | "listItem") => "\n",
                _ => "",
            };
            children.join(separator)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_document_is_valid() {
        let doc = json!({"type":"doc","version":1,"content":[
            {"type":"heading","attrs":{"level":2},"content":[{"type":"text","text":"Title"}]},
            {"type":"paragraph","content":[
                {"type":"text","text":"bold","marks":[{"type":"strong"}]},
                {"type":"text","text":"a link","marks":[{"type":"link","attrs":{"href":"https://3.basecamp.com/x"}}]},
                {"type":"hardBreak"},
                {"type":"text","text":"code","marks":[{"type":"code"}]}]},
            {"type":"bulletList","content":[
                {"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"item"}]}]}]},
            {"type":"codeBlock","attrs":{"language":"rust"},"content":[{"type":"text","text":"fn main() {}"}]}
        ]});
        assert_eq!(validate(&doc), Ok(()));
        assert_eq!(validate(&from_text("one\ntwo\n\nthree")), Ok(()));
    }

    #[test]
    fn what_the_schema_forbids_is_refused_with_the_place() {
        let para = |t: &str| json!({"type":"paragraph","content":[{"type":"text","text":t}]});
        let cases = [
            json!({"type":"blockquote","content":[{"type":"blockquote","content":[para("x")]}]}),
            json!({"type":"blockquote","content":[{"type":"heading","attrs":{"level":1},"content":[]}]}),
            json!({"type":"blockquote","content":[{"type":"rule"}]}),
            json!({"type":"bulletList","content":[{"type":"listItem","content":[{"type":"rule"}]}]}),
            json!({"type":"bulletList","content":[{"type":"listItem","content":[{"type":"blockquote","content":[para("x")]}]}]}),
            json!({"type":"paragraph","content":[{"type":"text","text":""}]}),
            json!({"type":"panelish","content":[para("x")]}),
            json!({"type":"paragraph","content":[{"type":"text","text":"x","marks":[{"type":"code"},{"type":"strong"}]}]}),
        ];
        for block in cases {
            let doc = json!({"type":"doc","version":1,"content":[block]});
            let err = validate(&doc).unwrap_err();
            assert!(err.starts_with("at '/content/0"), "{doc}: {err}");
        }
        assert!(validate(&json!("plain text")).is_err());
    }
}
