//! `campbridge config check`.

use std::path::Path;
use std::process::ExitCode;

use shared::config::Config;

/// Prints a summary of a valid config and its warnings (exit 0), or every problem with its line (exit 1).
pub fn check(path: &Path) -> ExitCode {
    match Config::from_file_with_warnings(path) {
        Ok((config, warnings)) => {
            println!("{}: ok — {} route(s), {} user(s)", path.display(), config.routes.len(), config.users.users.len());
            for route in &config.routes {
                println!("  route {:<12} Basecamp project {} → {}", route.id, route.project, route.target);
            }
            for w in &warnings {
                eprintln!("{}", warning(w));
            }
            if !warnings.is_empty() {
                eprintln!("{} warning(s): the config is valid, but check these lines", warnings.len());
            }
            if config.server.allow_insecure_loopback_upstreams {
                println!(
                    "  note: [server] allow_insecure_loopback_upstreams = true is a test setting: serve, the operator \
                     commands and the functions refuse this config unless started with {}=1",
                    shared::config::LOOPBACK_OPT_IN_VAR
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors.errors() {
                eprintln!("{e}");
            }
            eprintln!("{} problem(s) found", errors.errors().len());
            ExitCode::FAILURE
        }
    }
}

/// `file:line: warning: message`.
fn warning(w: &shared::config::ConfigError) -> String {
    match w.line {
        Some(line) => format!("{}:{line}: warning: {}", w.file, w.message),
        None => format!("{}: warning: {}", w.file, w.message),
    }
}
