//! Basecamp's webhook receiver on any body: `ingest` answers Ok or a `WebhookError`, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Err(e) = shared::webhook::basecamp::ingest(body) {
        let _status = e.status();
    }
});
