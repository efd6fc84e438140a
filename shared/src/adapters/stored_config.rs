//! [`StoredConfig`]: a stack's `campbridge.toml` in Secrets Manager, `<stack>/campbridge.toml` (why there:
//! docs/decisions/0012-config-transport.md).
//!
//! - **Validated before it is stored**: [`StoredConfig::push`] parses the text as every runtime does and
//!   refuses a config with problems, or one over [`MAX_CONFIG_BYTES`], before any request.
//! - **Versioned by content**: a version's id is the SHA-256 of its text ([`config_version_id`]), passed as
//!   the `ClientRequestToken`, so pushing the same text again creates nothing, and the pushed version
//!   becomes `AWSCURRENT` (also when it is an older one pushed back: a rollback).
//! - **Read once per cold start**: a function reads exactly the version its stack was deployed with
//!   (`CAMPBRIDGE_CONFIG_VERSION`) and checks the text against that id.
//!
//! Errors name the secret and the version, never the text.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;

use crate::config::{Config, ConfigErrors};
use crate::deploy::{CONFIG_SECRET, MAX_CONFIG_BYTES, config_version_id};

/// The stage Secrets Manager gives the version a plain read returns.
const CURRENT: &str = "AWSCURRENT";

/// Why the stored configuration could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoredConfigError {
    #[error("the configuration has problems; nothing was stored:\n{0}")]
    Invalid(ConfigErrors),
    #[error(
        "the configuration is {bytes} bytes; Secrets Manager stores at most {max} bytes (split long \
         description templates, or drop comments)",
        max = MAX_CONFIG_BYTES
    )]
    TooLarge { bytes: usize },
    #[error("no configuration is stored in {secret}: run `campbridge config push`")]
    NotPushed { secret: String },
    #[error("{secret} has no version {version}: push that configuration (`campbridge config push`) and deploy again")]
    NoSuchVersion { secret: String, version: String },
    #[error("{secret} version {version} does not hold the text that version id names (was it written by hand?)")]
    NotItsVersion { secret: String, version: String },
    #[error("not allowed to {doing} {secret}: {detail}")]
    AccessDenied { secret: String, doing: &'static str, detail: String },
    #[error("failed to {doing} {secret}: {detail}")]
    Unexpected { secret: String, doing: &'static str, detail: String },
}

/// One stored version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredText {
    pub version: String,
    pub text: String,
}

/// What [`StoredConfig::push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The version id (give it to the stack as `ConfigVersion`).
    pub version: String,
    /// The secret did not exist yet (a stack's first push).
    pub created: bool,
    /// This text was not stored before.
    pub new_version: bool,
    /// The version was not `AWSCURRENT` before this push (new, or an older one pushed back).
    pub made_current: bool,
}

/// A stack's stored configuration.
#[derive(Debug, Clone)]
pub struct StoredConfig {
    client: Client,
    secret: String,
}

impl StoredConfig {
    /// The configuration of the stack whose secrets are named `<prefix><name>` (prefix `<stack>/`).
    pub fn new(client: Client, prefix: &str) -> Self {
        Self { client, secret: format!("{prefix}{CONFIG_SECRET}") }
    }

    /// The Secrets Manager name it lives under.
    pub fn secret_id(&self) -> &str {
        &self.secret
    }

    /// Reads version `version` (the one a function was deployed with) and checks that its text is the one
    /// the id names; without a version, the current one.
    pub async fn read(&self, version: Option<&str>) -> Result<StoredText, StoredConfigError> {
        let request = self.client.get_secret_value().secret_id(&self.secret);
        // AWSCURRENT is the default; named, because moto answers a plain read with the version created last.
        let request = match version {
            Some(v) => request.version_id(v),
            None => request.version_stage(CURRENT),
        };
        let out = request.send().await.map_err(|e| match (e.code(), version) {
            (Some("ResourceNotFoundException"), Some(v)) => {
                StoredConfigError::NoSuchVersion { secret: self.secret.clone(), version: v.to_owned() }
            }
            (Some("ResourceNotFoundException"), None) => StoredConfigError::NotPushed { secret: self.secret.clone() },
            _ => self.error("read", e.code(), e.message(), status(&e)),
        })?;
        let text = out.secret_string.ok_or_else(|| StoredConfigError::NotPushed { secret: self.secret.clone() })?;
        let version = out.version_id.unwrap_or_default();
        if version != config_version_id(&text) {
            return Err(StoredConfigError::NotItsVersion { secret: self.secret.clone(), version });
        }
        Ok(StoredText { version, text })
    }

    /// Validates `text` (named `file` in its problems) and stores it as the current version.
    pub async fn push(&self, text: &str, file: &str) -> Result<Pushed, StoredConfigError> {
        Config::parse(text, file).map_err(StoredConfigError::Invalid)?;
        if text.len() > MAX_CONFIG_BYTES {
            return Err(StoredConfigError::TooLarge { bytes: text.len() });
        }
        let version = config_version_id(text);
        let before = self.stages().await?;
        let created = before.is_none();
        let before = before.unwrap_or_default();
        let new_version = !before.iter().any(|(v, _)| *v == version);
        if created {
            self.client
                .create_secret()
                .name(&self.secret)
                .description("campbridge.toml of this stack (campbridge config push); version id = SHA-256 of the text")
                .secret_string(text)
                .client_request_token(&version)
                .send()
                .await
                .map_err(|e| self.error("create", e.code(), e.message(), status(&e)))?;
        } else if new_version {
            self.client
                .put_secret_value()
                .secret_id(&self.secret)
                .secret_string(text)
                .client_request_token(&version)
                .send()
                .await
                .map_err(|e| self.error("write", e.code(), e.message(), status(&e)))?;
        }
        let current = before.iter().find(|(_, stages)| stages.iter().any(|s| s == CURRENT)).map(|(v, _)| v.clone());
        let made_current = current.as_deref() != Some(version.as_str());
        if made_current && !created && !new_version {
            // An older version pushed back: move the current stage to it (a rollback).
            let mut update = self
                .client
                .update_secret_version_stage()
                .secret_id(&self.secret)
                .version_stage(CURRENT)
                .move_to_version_id(&version);
            if let Some(c) = &current {
                update = update.remove_from_version_id(c);
            }
            update.send().await.map_err(|e| self.error("update", e.code(), e.message(), status(&e)))?;
        }
        Ok(Pushed { version, created, new_version, made_current })
    }

    /// Each stored version and its stages; `None` when the secret does not exist.
    async fn stages(&self) -> Result<Option<Vec<(String, Vec<String>)>>, StoredConfigError> {
        match self.client.describe_secret().secret_id(&self.secret).send().await {
            Ok(out) => Ok(Some(out.version_ids_to_stages.unwrap_or_default().into_iter().collect())),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(self.error("describe", e.code(), e.message(), status(&e))),
        }
    }

    fn error(
        &self,
        doing: &'static str,
        code: Option<&str>,
        message: Option<&str>,
        status: Option<u16>,
    ) -> StoredConfigError {
        let detail = match (code, message, status) {
            (Some(c), Some(m), _) => format!("{c}: {m}"),
            (Some(c), None, _) => c.to_owned(),
            (None, _, Some(s)) => format!("HTTP {s} without an error code"),
            (None, _, None) => "no response".to_owned(),
        };
        let secret = self.secret.clone();
        if code.is_some_and(|c| c.starts_with("AccessDenied")) || status == Some(403) {
            StoredConfigError::AccessDenied { secret, doing, detail }
        } else {
            StoredConfigError::Unexpected { secret, doing, detail }
        }
    }
}

/// The HTTP status of a service's answer, when there was one.
fn status<E>(
    e: &aws_sdk_secretsmanager::error::SdkError<E, aws_sdk_secretsmanager::config::http::HttpResponse>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}
