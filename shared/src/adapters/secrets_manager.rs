//! [`SecretsManagerSecrets`]: the secret store on AWS Secrets Manager (AWS mode).
//!
//! Secret `name` is the Secrets Manager secret `<prefix><name>` (the SAM template creates them empty,
//! named `<stack>/<name>`). A value is fetched once per process — once per Lambda cold start — and
//! cached; [`SecretStore::put`] writes a new version and updates the cache.
//!
//! Writes are idempotent per request token: the port's token is hashed into the `ClientRequestToken`
//! (Secrets Manager wants 32–64 characters), and Secrets Manager creates one version per token. The
//! Basecamp client derives the token from the refreshed value, so two functions that write back the
//! same refresh produce one version instead of forking the token history; a repeated write of the same
//! token that the service reports as already existing is treated as done.
//!
//! A secret that exists but has no value yet (created empty by the template) reads as
//! [`SecretError::Missing`], like an absent one. Errors name the secret, never its value.
//! Endpoints come from the SDK configuration (`AWS_ENDPOINT_URL_SECRETS_MANAGER` for an emulator).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::ports::{SecretError, SecretStore};

/// Secrets from Secrets Manager, cached for the life of the process.
pub struct SecretsManagerSecrets {
    client: Client,
    prefix: String,
    cache: Mutex<HashMap<String, SecretString>>,
}

impl std::fmt::Debug for SecretsManagerSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerSecrets").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl SecretsManagerSecrets {
    /// Secret `name` is read from `<prefix><name>` (e.g. prefix `campbridge/`).
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self { client, prefix: prefix.into(), cache: Mutex::new(HashMap::new()) }
    }

    fn id(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// The port's request token as a valid, deterministic `ClientRequestToken` (64 hex characters).
fn client_request_token(request_token: &str) -> String {
    hex::encode(Sha256::digest(request_token.as_bytes()))
}

fn not_found(code: Option<&str>) -> bool {
    code == Some("ResourceNotFoundException")
}

#[async_trait]
impl SecretStore for SecretsManagerSecrets {
    async fn get(&self, name: &str) -> Result<SecretString, SecretError> {
        let mut cache = self.cache.lock().await;
        if let Some(v) = cache.get(name) {
            return Ok(v.clone());
        }
        let result = self.client.get_secret_value().secret_id(self.id(name)).send().await;
        let out = match result {
            Ok(out) => out,
            Err(e) if not_found(e.code()) => return Err(SecretError::Missing(name.to_owned())),
            // The service's code and message name the problem (AccessDeniedException: the role may not read
            // it); a GetSecretValue error carries no secret value.
            Err(e) => return Err(sm_error(name, "read", e.code(), e.message(), status(&e))),
        };
        let value = out.secret_string.filter(|v| !v.is_empty()).ok_or_else(|| SecretError::Missing(name.to_owned()))?;
        let value = SecretString::from(value);
        cache.insert(name.to_owned(), value.clone());
        Ok(value)
    }

    async fn put(&self, name: &str, value: &SecretString, request_token: &str) -> Result<(), SecretError> {
        let mut cache = self.cache.lock().await;
        let token = client_request_token(request_token);
        let result = self
            .client
            .put_secret_value()
            .secret_id(self.id(name))
            .secret_string(value.expose_secret())
            .client_request_token(&token)
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if not_found(e.code()) => {
                self.client
                    .create_secret()
                    .name(self.id(name))
                    .secret_string(value.expose_secret())
                    .client_request_token(&token)
                    .send()
                    .await
                    // Only the error's code and message are kept: a request error could echo input.
                    .map_err(|e| sm_error(name, "create", e.code(), e.message(), status(&e)))?;
            }
            // The same token was written already (a concurrent refresher won): one version, as asked.
            Err(e) if e.code() == Some("ResourceExistsException") => {}
            Err(e) => return Err(sm_error(name, "write", e.code(), e.message(), status(&e))),
        }
        cache.insert(name.to_owned(), SecretString::from(value.expose_secret()));
        Ok(())
    }
}

fn sm_error(name: &str, doing: &str, code: Option<&str>, message: Option<&str>, status: Option<u16>) -> SecretError {
    let detail = match (code, message, status) {
        (Some(c), Some(m), _) => format!("{c}: {m}"),
        (Some(c), None, _) => c.to_owned(),
        (None, _, Some(s)) => format!("HTTP {s} without an error code"),
        (None, _, None) => "no response".to_owned(),
    };
    SecretError::Unexpected(anyhow::anyhow!("failed to {doing} secret {name:?} ({detail})"))
}

/// The HTTP status of the service's answer, when there was one.
fn status<E>(
    e: &aws_sdk_secretsmanager::error::SdkError<E, aws_sdk_secretsmanager::config::http::HttpResponse>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_tokens_become_valid_deterministic_client_request_tokens() {
        let t = client_request_token("token-1");
        assert_eq!(t.len(), 64);
        assert_eq!(t, client_request_token("token-1"));
        assert_ne!(t, client_request_token("token-2"));
    }
}
