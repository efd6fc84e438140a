//! `campbridge config check`.

use std::path::Path;
use std::process::ExitCode;

use shared::config::Config;

/// Prints a summary of a valid config, or every problem with its line; exit code 1 on problems.
pub fn check(path: &Path) -> ExitCode {
    match Config::from_file(path) {
        Ok(config) => {
            println!("{}: ok — {} route(s), {} user(s)", path.display(), config.routes.len(), config.users.users.len());
            for route in &config.routes {
                println!("  route {:<12} Basecamp project {} → {:?}", route.id, route.project, route.target);
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
