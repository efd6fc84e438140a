//! Atlassian Document Format helpers: validation (v3 requires a document), plain-text projection
//! (what v2 webhook bodies carry) and wrapping text as a one-paragraph document.

use serde_json::{Value, json};

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
