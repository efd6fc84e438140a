//! `campbridge config check` as a person runs it.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn campbridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_campbridge"))
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("campbridge-config-check-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("campbridge.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_example_config_checks_clean() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../campbridge.example.toml");
    let out = campbridge().args(["config", "check", example]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn a_bad_config_prints_line_numbered_errors_and_fails() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../campbridge.example.toml")).unwrap();
    let broken = example.replacen("status_strategy = \"dev-owned\"", "status_strategy = \"dev_owned\"", 1);
    assert_ne!(broken, example, "the example sets a status strategy");
    let line = broken.lines().position(|l| l.contains("\"dev_owned\"")).unwrap() + 1;
    let path = temp_file("bad", &broken);
    let out = campbridge().args(["config", "check"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "campbridge.toml:{line}: route \"web\": unknown status strategy \"dev_owned\" (expected dev-owned, pm-owned, bidirectional)"
    );
    assert!(stderr.contains(&expected), "expected {expected:?} in:\n{stderr}");
}

#[test]
fn an_input_that_crashed_the_toml_parser_is_a_line_numbered_error() {
    // toml_edit 0.23 panicked on this ("all items have spans"): `config check` exited 101 with a
    // backtrace. It is also in the config fuzz target's seed corpus (fuzz/corpus/config/).
    let path = temp_file("toml-crash", "={[]\n.");
    let out = campbridge().args(["config", "check"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("campbridge.toml:1: invalid TOML"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_valid_config_is_summarised_in_words_not_debug_output() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../campbridge.example.toml");
    let out = campbridge().args(["config", "check", example]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("→ Jira project WEB (Task issues)"), "{stdout}");
    for debug in ["Jira {", "JiraProjectKey(", "issue_type:"] {
        assert!(!stdout.contains(debug), "{debug:?} in:\n{stdout}");
    }
}

#[test]
fn overlapping_routes_regex_globs_and_a_site_path_are_warnings_with_lines_and_the_check_passes() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../campbridge.example.toml")).unwrap();
    let text = example
        .replace("site = \"https://example-team.atlassian.net\"", "site = \"https://example-team.atlassian.net/jira\"")
        .replace("todolists = [\"Release *\", \"Crashes\"]", "todolists = [\"Release.*\", \"Crashes\"]")
        .replace("marker = \"#dev\"\n", "")
        .replace("basecamp_project = 2085958500", "basecamp_project = 2085958499");
    let line = |needle: &str| text[..text.find(needle).unwrap()].matches('\n').count() + 1;
    let path = temp_file("warnings", &text);
    let out = campbridge().args(["config", "check"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "warnings do not fail the check:\n{stderr}");
    let site = format!("campbridge.toml:{}: warning: [jira] site", line("site = "));
    let glob =
        format!("campbridge.toml:{}: warning: route \"mobile\": todolists pattern \"Release.*\"", line("Release.*"));
    let overlap =
        format!("campbridge.toml:{}: warning: route \"mobile\" overlaps route \"web\"", line("id = \"mobile\"") - 1);
    for expected in [site, glob, overlap] {
        assert!(stderr.contains(&expected), "expected {expected:?} in:\n{stderr}");
    }
    assert!(stderr.contains("3 warning(s)"), "{stderr}");
}
