//! The functions' configuration, read once per cold start. The only place that reads the environment.
//!
//! - `CAMPBRIDGE_CONFIG`: the `campbridge.toml` text (routes, users, upstreams; secrets are named, not
//!   included), validated exactly as local mode validates it.
//! - `QUEUE_URL`: the SQS FIFO queue's URL.
//! - `TABLE_NAME`: the DynamoDB table (the mapper and the reconciler; receivers never touch it).
//! - `SECRET_PREFIX`: prepended to secret names to form Secrets Manager ids (default `campbridge/`).
//! - `CAMPBRIDGE_INSECURE_LOOPBACK_UPSTREAMS_FOR_TESTS`: tests only; without it (`1`) a config with
//!   `[server] allow_insecure_loopback_upstreams = true` is refused. The SAM template never sets it.
//!
//! Region, credentials and emulator endpoints are the AWS SDK's own variables (`AWS_REGION`,
//! `AWS_ENDPOINT_URL_*`), read by the SDK.

use shared::config::{Config, LOOPBACK_OPT_IN_VAR};

/// Everything a function needs to know, typed.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    pub campbridge: Config,
    pub queue_url: String,
    pub table: Option<String>,
    pub secret_prefix: String,
}

/// A missing or invalid setting; names the variable, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("CAMPBRIDGE_CONFIG is not a valid campbridge.toml:\n{0}")]
    Invalid(String),
}

impl LambdaConfig {
    /// Reads the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a table in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = lookup("CAMPBRIDGE_CONFIG").ok_or(ConfigError::Missing("CAMPBRIDGE_CONFIG"))?;
        let campbridge = Config::parse(&text, "CAMPBRIDGE_CONFIG").map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let opted_in = lookup(LOOPBACK_OPT_IN_VAR).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        campbridge.check_loopback_opt_in(opted_in).map_err(ConfigError::Invalid)?;
        let queue_url = lookup("QUEUE_URL").ok_or(ConfigError::Missing("QUEUE_URL"))?;
        let table = lookup("TABLE_NAME").filter(|t| !t.is_empty());
        let secret_prefix = lookup("SECRET_PREFIX").unwrap_or_else(|| "campbridge/".to_owned());
        Ok(Self { campbridge, queue_url, table, secret_prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_variable_is_named() {
        let err = LambdaConfig::from_lookup(|_| None).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("environment variable CAMPBRIDGE_CONFIG is not set"));
    }

    #[test]
    fn an_empty_config_with_a_queue_is_accepted() {
        let c = LambdaConfig::from_lookup(|n| match n {
            "CAMPBRIDGE_CONFIG" => Some(String::new()),
            "QUEUE_URL" => Some("http://127.0.0.1:5000/123456789012/jobs.fifo".into()),
            _ => None,
        });
        let c = c.ok();
        assert_eq!(c.as_ref().map(|c| c.secret_prefix.as_str()), Some("campbridge/"));
        assert_eq!(c.and_then(|c| c.table), None);
    }

    #[test]
    fn the_loopback_test_allowance_is_refused_without_the_opt_in() {
        let text = "[server]\nallow_insecure_loopback_upstreams = true\n";
        let read = |opt_in: Option<&str>| {
            LambdaConfig::from_lookup(|n| match n {
                "CAMPBRIDGE_CONFIG" => Some(text.to_owned()),
                "QUEUE_URL" => Some("https://sqs.eu-west-1.amazonaws.com/123456789012/jobs.fifo".into()),
                LOOPBACK_OPT_IN_VAR => opt_in.map(str::to_owned),
                _ => None,
            })
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
