//! Basecamp HTML ⇄ Jira ADF on any input: the input as HTML (and plain text) one way, and as ADF JSON
//! (when it parses) the other way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::richtext;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let adf = richtext::html_to_adf(&text);
    let _back = richtext::adf_to_html(&adf);
    let _canonical = richtext::canonical_html(&text);
    let _plain = richtext::html_to_text(&text);
    let _html = richtext::text_to_html(&text);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _html = richtext::adf_to_html(&value);
        let _text = richtext::adf_to_text(&value);
    }
});
