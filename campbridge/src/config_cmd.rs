//! `campbridge config check [--stack NAME]`, `campbridge config push --stack NAME` and
//! `campbridge secrets set --stack NAME SECRET`: the configuration and secrets of a deployed stack.
//!
//! A stack named `NAME` keeps its configuration in Secrets Manager as `NAME/campbridge.toml` (versioned by
//! content, see `shared::adapters::stored_config`) and its secrets as `NAME/<secret>`
//! (`shared::deploy::STACK_SECRETS`). AWS credentials and region are the SDK's usual ones.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use shared::adapters::stored_config::StoredConfig;
use shared::config::Config;
use shared::deploy::{CONFIG_SECRET, STACK_SECRETS, secret_warnings, stack_secret};

/// Why a stack command failed (nothing secret is ever part of one).
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("{0}")]
    Stored(#[from] shared::adapters::stored_config::StoredConfigError),
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{0}")]
    Refused(String),
    #[error("secret {secret}: {detail}")]
    Secret { secret: String, detail: String },
}

/// The Secrets Manager prefix of stack `name`.
pub fn prefix(stack: &str) -> String {
    format!("{stack}/")
}

async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    let sdk = shared::adapters::aws_sdk::load().await;
    aws_sdk_secretsmanager::Client::new(&sdk)
}

fn read(path: &Path) -> Result<String, StackError> {
    std::fs::read_to_string(path).map_err(|error| StackError::Read { path: path.display().to_string(), error })
}

/// Validates the file (every problem as `file:line: message`, exit 1 if any) and warns about secret names
/// the stack does not create. With a stack, also checks that the stack's stored configuration is this
/// file and that every secret it names is filled.
pub fn check(path: &Path, stack: Option<&str>) -> ExitCode {
    let text = match read(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let file = path.display().to_string();
    let (config, warnings) = match Config::parse_with_warnings(&text, &file) {
        Ok(parsed) => parsed,
        Err(errors) => {
            for e in errors.errors() {
                eprintln!("{e}");
            }
            eprintln!("{} problem(s) found", errors.errors().len());
            return ExitCode::FAILURE;
        }
    };
    println!("{file}: ok — {} route(s), {} user(s)", config.routes.len(), config.users.users.len());
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
    for w in secret_warnings(&text, &file) {
        eprintln!("{w}");
    }
    let Some(stack) = stack else { return ExitCode::SUCCESS };
    run_stack(async move { check_stack(&text, &file, stack).await })
}

/// The stack half of `config check --stack`: `Ok(false)` when something does not match.
async fn check_stack(text: &str, file: &str, stack: &str) -> Result<bool, StackError> {
    let client = secrets_client().await;
    let stored = StoredConfig::new(client.clone(), &prefix(stack));
    let mut ok = true;
    match stored.read(None).await {
        Ok(s) if s.text == text => {
            println!("✓ {} (version {}) is {file}", stored.secret_id(), s.version);
        }
        Ok(s) => {
            ok = false;
            println!(
                "✗ {} (version {}) is not {file}: run `campbridge config push --stack {stack} {file}`, then deploy",
                stored.secret_id(),
                s.version
            );
        }
        Err(shared::adapters::stored_config::StoredConfigError::NotPushed { secret }) => {
            ok = false;
            println!("✗ {secret} does not exist: run `campbridge config push --stack {stack} {file}`");
        }
        Err(e) => return Err(e.into()),
    }
    for name in named_secrets(text) {
        let id = format!("{}{name}", prefix(stack));
        let Some(known) = stack_secret(&name) else {
            ok = false;
            println!("✗ secret {name}: the stack does not create it; use one of the names in docs/deploy.md");
            continue;
        };
        match client.describe_secret().secret_id(&id).send().await {
            Ok(out) if out.version_ids_to_stages.as_ref().is_some_and(|v| !v.is_empty()) => {
                println!("✓ secret {id} is set");
            }
            Ok(_) if known.generated => {
                ok = false;
                println!("✗ secret {id} has no value yet; the stack generates it: is the stack created?");
            }
            Ok(_) => {
                ok = false;
                println!("✗ secret {id} is empty: `campbridge secrets set --stack {stack} {name}` (value on stdin)");
            }
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                ok = false;
                println!("✗ secret {id} does not exist: is stack {stack} deployed?");
            }
            Err(e) => {
                return Err(StackError::Secret { secret: id, detail: e.message().unwrap_or("no detail").to_owned() });
            }
        }
    }
    Ok(ok)
}

/// The secret names a config text refers to, each once, in section order ([`Config::secrets`]).
fn named_secrets(text: &str) -> Vec<String> {
    let Ok(config) = Config::parse(text, CONFIG_SECRET) else { return Vec::new() };
    config.secrets().into_iter().map(|(_, secret)| secret.name().to_owned()).collect()
}

/// `config push`: validates the file and stores it as the stack's current configuration. Prints the
/// version id alone on stdout (for `make deploy`), what happened on stderr. A config the functions would
/// refuse (the loopback test allowance without `loopback_for_tests`) is refused here already.
pub fn push(path: &Path, stack: &str, loopback_for_tests: bool) -> ExitCode {
    run_stack(async move {
        let text = read(path)?;
        let file = path.display().to_string();
        if let Ok(config) = Config::parse(&text, &file) {
            config
                .check_loopback_opt_in(loopback_for_tests)
                .map_err(|e| StackError::Refused(format!("{file}: {e}; nothing was stored")))?;
        }
        let warnings = secret_warnings(&text, &file);
        for w in &warnings {
            eprintln!("{w}");
        }
        if !warnings.is_empty() {
            return Err(StackError::Refused(format!(
                "{file} names secrets the stack does not create; a deployed function could not start. Nothing was stored."
            )));
        }
        let stored = StoredConfig::new(secrets_client().await, &prefix(stack));
        let pushed = stored.push(&text, &file).await?;
        let what = match (pushed.created, pushed.new_version, pushed.made_current) {
            (true, _, _) => "created with this first version",
            (false, true, _) => "new version, now current",
            (false, false, true) => "an earlier version, current again",
            (false, false, false) => "unchanged, already current",
        };
        eprintln!("{file} → {} version {} ({what})", stored.secret_id(), pushed.version);
        println!("{}", pushed.version);
        Ok(true)
    })
}

/// `secrets set`: reads one secret's value from stdin (a trailing newline is dropped) and stores it as
/// the stack's `<stack>/<name>`. Only the names the stack creates, and not the one it generates.
pub fn set_secret(stack: &str, name: &str) -> ExitCode {
    run_stack(async move {
        let Some(known) = stack_secret(name) else {
            return Err(StackError::Refused(format!(
                "the stack creates no secret {name:?}; its secrets are: {}",
                STACK_SECRETS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
            )));
        };
        if known.generated {
            return Err(StackError::Refused(format!(
                "{name} is generated by the stack (a random value); campbridge never sets it"
            )));
        }
        let mut value = String::new();
        std::io::stdin()
            .read_to_string(&mut value)
            .map_err(|e| StackError::Refused(format!("cannot read the value from stdin: {e}")))?;
        let value = value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v)).unwrap_or(&value);
        if value.is_empty() {
            return Err(StackError::Refused(format!("no value on stdin for {name}; nothing was stored")));
        }
        let id = format!("{}{name}", prefix(stack));
        secrets_client().await.put_secret_value().secret_id(&id).secret_string(value).send().await.map_err(|e| {
            StackError::Secret {
                secret: id.clone(),
                detail: match e.code() {
                    Some("ResourceNotFoundException") => format!("does not exist: is stack {stack} deployed?"),
                    _ => e.message().or(e.code()).unwrap_or("could not be written").to_owned(),
                },
            }
        })?;
        eprintln!("stored a new version of {id} ({} characters)", value.chars().count());
        Ok(true)
    })
}

/// Runs a stack command: `Ok(false)` (something does not match) and errors exit 1.
fn run_stack(fut: impl std::future::Future<Output = Result<bool, StackError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secrets_a_config_names_are_listed_once_each() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../campbridge.example.toml");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let names = named_secrets(&text);
        assert_eq!(
            names,
            [
                "webhook-key",
                "basecamp-access-token",
                "basecamp-client-secret",
                "basecamp-refresh-token",
                "jira-api-token",
                "jira-webhook-secret",
                "bitbucket-api-token",
                "bitbucket-webhook-secret"
            ]
        );
        assert!(names.iter().all(|n| stack_secret(n).is_some()));
    }
}
