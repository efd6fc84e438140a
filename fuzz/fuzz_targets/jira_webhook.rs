//! Jira's webhook receiver: every body signed correctly (so the parser behind the signature check is
//! reached), and the same body with a signature header made from the input's first line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use shared::webhook::{jira, verify};

fuzz_target!(|data: &[u8]| {
    let secret = SecretString::from("fuzz-jira-webhook-secret");
    let signed = verify::sign(&secret, data);
    let headers = [(verify::SIGNATURE_HEADER, signed.as_str()), (jira::DELIVERY_HEADER, "fuzz-delivery")];
    let _parsed = jira::ingest(&headers[..], data, &secret);

    let (line, body) = data.split_at(data.iter().position(|b| *b == b'\n').unwrap_or(data.len()));
    let header = String::from_utf8_lossy(line);
    let forged = [(verify::SIGNATURE_HEADER, header.as_ref()), (jira::DELIVERY_HEADER, "fuzz-delivery")];
    let _refused = jira::ingest(&forged[..], body, &secret);
});
