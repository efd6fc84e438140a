//! Bitbucket's webhook receiver: the input's first byte picks an event key (every one the parser
//! follows, and one it ignores), the rest is the body, signed correctly so the parser is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use shared::webhook::{bitbucket, verify};

const EVENT_KEYS: &[&str] = &[
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "repo:commit_status_created",
    "repo:commit_status_updated",
    "repo:push",
    "pr:opened",
    "pr:merged",
    "pr:declined",
    "pr:modified",
    "issue:created",
];

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else { return };
    let event_key = EVENT_KEYS[usize::from(*first) % EVENT_KEYS.len()];
    let secret = SecretString::from("fuzz-bitbucket-webhook-secret");
    let signed = verify::sign(&secret, body);
    let headers = [
        (verify::SIGNATURE_HEADER, signed.as_str()),
        (bitbucket::EVENT_HEADER, event_key),
        (bitbucket::DELIVERY_HEADER, "fuzz-delivery"),
    ];
    let _parsed = bitbucket::ingest(&headers[..], body, &secret);
});
