//! The verifiers on attacker-controlled input: an `X-Hub-Signature` value and a Basecamp route token
//! (the input's first line), against the rest of the input as the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use shared::domain::RouteId;
use shared::webhook::verify;

fuzz_target!(|data: &[u8]| {
    let (line, body) = data.split_at(data.iter().position(|b| *b == b'\n').unwrap_or(data.len()));
    let presented = String::from_utf8_lossy(line);
    let secret = SecretString::from("fuzz-secret");
    if verify::verify_signature(&secret, Some(presented.as_ref()), body).is_ok() {
        // Only the real signature of `body` may pass.
        assert_eq!(presented.trim(), verify::sign(&secret, body));
    }
    if let Ok(route) = RouteId::parse("web") {
        let _authorized = verify::authorize_route(&secret, &route, presented.as_ref());
    }
});
