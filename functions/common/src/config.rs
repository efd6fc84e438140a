//! The functions' settings, read once per cold start. The only place that reads the environment.
//!
//! - `QUEUE_URL`: the SQS FIFO queue's URL.
//! - `DEAD_LETTER_QUEUE_URL` (the mapper): its dead-letter queue, where the mapper files a job that failed
//!   on its last allowed receive, with the error (optional: without it the queue's redrive policy moves
//!   such a job, without the error).
//! - `TABLE_NAME`: the DynamoDB table (the mapper and the reconciler; receivers never touch it).
//! - `SECRET_PREFIX`: prepended to secret names to form Secrets Manager ids (`<stack name>/`).
//! - `CAMPBRIDGE_CONFIG_VERSION`: the version of `<prefix>campbridge.toml` this deployment runs (the
//!   stack's `ConfigVersion`); the text itself is read from Secrets Manager ([`crate::start`]), because
//!   Lambda caps all of a function's variables at 4 KB together.
//! - `PACING_SHARE`: how many function instances split each upstream's `[pacing]` budget (the mapper's
//!   maximum concurrency plus the reconciler; default 1). See docs/decisions/0014.
//! - `AWS_LAMBDA_LOG_LEVEL` / `AWS_LAMBDA_LOG_FORMAT`: what Lambda sets from the function's
//!   `LoggingConfig` (`ApplicationLogLevel`, `LogFormat`); `RUST_LOG` when they are absent.
//! - `CAMPBRIDGE_INSECURE_LOOPBACK_UPSTREAMS_FOR_TESTS`: tests only; without it (`1`) a config with
//!   `[server] allow_insecure_loopback_upstreams = true` is refused. The SAM template never sets it.
//!
//! Region, credentials and emulator endpoints are the AWS SDK's own variables (`AWS_REGION`,
//! `AWS_ENDPOINT_URL_*`), read by the SDK.

use shared::config::{Config, LOOPBACK_OPT_IN_VAR};
use shared::deploy::is_config_version_id;

/// The environment of a function, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaEnv {
    pub queue_url: String,
    pub dead_letter_queue_url: Option<String>,
    pub table: Option<String>,
    pub secret_prefix: String,
    pub config_version: String,
    /// The test opt-in for a config's loopback allowance ([`LOOPBACK_OPT_IN_VAR`]).
    pub loopback_opt_in: bool,
    /// How many instances split each upstream's budget (`PACING_SHARE`); `None` keeps the config's.
    pub pacing_share: Option<u32>,
}

/// Everything a function needs to know: its environment and the configuration it was deployed with.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    pub campbridge: Config,
    pub queue_url: String,
    pub dead_letter_queue_url: Option<String>,
    pub table: Option<String>,
    pub secret_prefix: String,
    pub config_version: String,
}

/// A missing or invalid setting; names the variable or the stored config, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error(
        "CAMPBRIDGE_CONFIG_VERSION {0:?} is not a configuration version (64 hex digits from `campbridge config push`)"
    )]
    BadVersion(String),
    #[error(transparent)]
    Stored(#[from] shared::adapters::stored_config::StoredConfigError),
    #[error("the stored configuration is not a valid campbridge.toml:\n{0}")]
    Invalid(String),
    #[error("environment variable {0} must be a whole number of at least 1, not {1:?}")]
    NotACount(&'static str, String),
}

impl LambdaEnv {
    /// Reads the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a table in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let queue_url = lookup("QUEUE_URL").ok_or(ConfigError::Missing("QUEUE_URL"))?;
        let dead_letter_queue_url = lookup("DEAD_LETTER_QUEUE_URL").filter(|u| !u.is_empty());
        let table = lookup("TABLE_NAME").filter(|t| !t.is_empty());
        let secret_prefix = lookup("SECRET_PREFIX").ok_or(ConfigError::Missing("SECRET_PREFIX"))?;
        let config_version =
            lookup("CAMPBRIDGE_CONFIG_VERSION").ok_or(ConfigError::Missing("CAMPBRIDGE_CONFIG_VERSION"))?;
        if !is_config_version_id(&config_version) {
            return Err(ConfigError::BadVersion(config_version));
        }
        let loopback_opt_in = lookup(LOOPBACK_OPT_IN_VAR).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        let pacing_share = match lookup("PACING_SHARE") {
            Some(v) => Some(
                v.trim().parse::<u32>().ok().filter(|n| *n >= 1).ok_or(ConfigError::NotACount("PACING_SHARE", v))?,
            ),
            None => None,
        };
        Ok(Self {
            queue_url,
            dead_letter_queue_url,
            table,
            secret_prefix,
            config_version,
            loopback_opt_in,
            pacing_share,
        })
    }

    /// The configuration `text` (read from version [`Self::config_version`]) validated as every runtime
    /// validates it.
    pub fn with_config(self, text: &str) -> Result<LambdaConfig, ConfigError> {
        let mut campbridge =
            Config::parse(text, shared::deploy::CONFIG_SECRET).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        campbridge.check_loopback_opt_in(self.loopback_opt_in).map_err(ConfigError::Invalid)?;
        if let Some(share) = self.pacing_share {
            campbridge.pacing.share = share;
        }
        Ok(LambdaConfig {
            campbridge,
            queue_url: self.queue_url,
            dead_letter_queue_url: self.dead_letter_queue_url,
            table: self.table,
            secret_prefix: self.secret_prefix,
            config_version: self.config_version,
        })
    }
}

/// How a function logs: Lambda's `AWS_LAMBDA_LOG_LEVEL` / `AWS_LAMBDA_LOG_FORMAT` (set from the template's
/// `LoggingConfig`), else `RUST_LOG`, else `info` in JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// A `tracing_subscriber::filter::Targets` list: a level, `target=level` pairs, comma-separated.
    pub filter: String,
    pub json: bool,
}

impl LogSettings {
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        // Lambda's levels; FATAL has no tracing level of its own.
        let lambda_level = lookup("AWS_LAMBDA_LOG_LEVEL").and_then(|l| match l.to_ascii_uppercase().as_str() {
            "TRACE" => Some("trace"),
            "DEBUG" => Some("debug"),
            "INFO" => Some("info"),
            "WARN" => Some("warn"),
            "ERROR" | "FATAL" => Some("error"),
            _ => None,
        });
        let filter = match lambda_level {
            Some(level) => level.to_owned(),
            None => lookup("RUST_LOG").filter(|f| !f.is_empty()).unwrap_or_else(|| "info".to_owned()),
        };
        let json = !lookup("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("text"));
        Self { filter, json }
    }

    /// The filter; one that does not parse logs at `info`.
    pub fn targets(&self) -> tracing_subscriber::filter::Targets {
        self.filter.parse().unwrap_or_else(|_| {
            tracing_subscriber::filter::Targets::new().with_default(tracing_subscriber::filter::LevelFilter::INFO)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSION: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn lookup(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = LambdaEnv::from_lookup(|_| None).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("environment variable QUEUE_URL is not set"));
        let err = LambdaEnv::from_lookup(lookup(&[("QUEUE_URL", "q"), ("SECRET_PREFIX", "campbridge/")]));
        assert_eq!(
            err.err().map(|e| e.to_string()).as_deref(),
            Some("environment variable CAMPBRIDGE_CONFIG_VERSION is not set")
        );
    }

    #[test]
    fn a_version_that_is_no_content_hash_is_refused() {
        let env = LambdaEnv::from_lookup(lookup(&[
            ("QUEUE_URL", "q"),
            ("SECRET_PREFIX", "campbridge/"),
            ("CAMPBRIDGE_CONFIG_VERSION", "latest"),
        ]));
        assert!(matches!(env, Err(ConfigError::BadVersion(v)) if v == "latest"));
    }

    #[test]
    fn the_environment_and_an_empty_config_make_a_function_config() {
        let env = LambdaEnv::from_lookup(lookup(&[
            ("QUEUE_URL", "http://127.0.0.1:5000/123456789012/jobs.fifo"),
            ("SECRET_PREFIX", "campbridge/"),
            ("TABLE_NAME", ""),
            ("CAMPBRIDGE_CONFIG_VERSION", VERSION),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(env.table, None, "an empty TABLE_NAME is none");
        let config = env.with_config("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.config_version, VERSION);
        assert!(config.campbridge.routes.is_empty());
    }

    #[test]
    fn the_pacing_share_splits_the_budgets_and_a_bad_one_is_named() {
        let env = |share: &'static str| {
            LambdaEnv::from_lookup(move |name| match name {
                "QUEUE_URL" => Some("q".to_owned()),
                "SECRET_PREFIX" => Some("campbridge/".to_owned()),
                "CAMPBRIDGE_CONFIG_VERSION" => Some(VERSION.to_owned()),
                "PACING_SHARE" => Some(share.to_owned()),
                _ => None,
            })
        };
        let config = env("3").and_then(|e| e.with_config("")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.campbridge.pacing.share, 3);
        let err = env("0").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("environment variable PACING_SHARE must be a whole number of at least 1, not \"0\"")
        );
    }

    #[test]
    fn lambdas_log_level_and_format_win_over_rust_log() {
        let s = LogSettings::from_lookup(lookup(&[("AWS_LAMBDA_LOG_LEVEL", "WARN"), ("RUST_LOG", "debug")]));
        assert_eq!(s, LogSettings { filter: "warn".into(), json: true });
        let s =
            LogSettings::from_lookup(lookup(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL"), ("AWS_LAMBDA_LOG_FORMAT", "Text")]));
        assert_eq!(s, LogSettings { filter: "error".into(), json: false });
        let s = LogSettings::from_lookup(lookup(&[("RUST_LOG", "shared=debug")]));
        assert_eq!(s, LogSettings { filter: "shared=debug".into(), json: true });
        assert_eq!(LogSettings::from_lookup(|_| None), LogSettings { filter: "info".into(), json: true });
    }

    #[test]
    fn the_filter_keeps_targets_and_levels_and_falls_back_to_info() {
        use tracing_subscriber::filter::LevelFilter;
        let targets = |f: &str| LogSettings { filter: f.into(), json: true }.targets();
        let t = targets("shared=debug,warn");
        assert!(t.would_enable("shared::sync", &tracing::Level::DEBUG));
        assert!(!t.would_enable("lambda_runtime", &tracing::Level::INFO));
        assert!(t.would_enable("lambda_runtime", &tracing::Level::WARN));
        assert_eq!(targets("shared=loud").default_level(), Some(LevelFilter::INFO));
        assert_eq!(targets("error").default_level(), Some(LevelFilter::ERROR));
    }

    #[test]
    fn the_loopback_test_allowance_is_refused_without_the_opt_in() {
        let text = "[server]\nallow_insecure_loopback_upstreams = true\n";
        let read = |opt_in: Option<&str>| {
            LambdaEnv::from_lookup(|n| match n {
                "QUEUE_URL" => Some("https://sqs.eu-west-1.amazonaws.com/123456789012/jobs.fifo".into()),
                "SECRET_PREFIX" => Some("campbridge/".into()),
                "CAMPBRIDGE_CONFIG_VERSION" => Some(VERSION.into()),
                LOOPBACK_OPT_IN_VAR => opt_in.map(str::to_owned),
                _ => None,
            })
            .and_then(|env| env.with_config(text))
        };
        let refused = read(None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("is a test setting"), "{refused}");
        assert!(read(Some("0")).is_err());
        assert!(read(Some("1")).is_ok());
        // The deployed functions never get the opt-in.
        let template = include_str!("../../../infra/template.yaml");
        assert!(!template.contains(LOOPBACK_OPT_IN_VAR));
        assert!(!template.contains("allow_insecure_loopback_upstreams"));
    }
}
