//! The config reader on any text: a `Config` or line-numbered problems, never a panic (toml_edit 0.23
//! panicked on `={[]\n.`, which is in this target's corpus).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(errors) = shared::config::Config::parse(&text, "campbridge.toml") {
        assert!(!errors.errors().is_empty());
    }
});
