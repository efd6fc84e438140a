//! Local mode's [`SecretStore`]: secret `name` comes from the environment variable
//! `CAMPBRIDGE_SECRET_<NAME>` (upper-cased, `-` → `_`; `basecamp-token` → `CAMPBRIDGE_SECRET_BASECAMP_TOKEN`).
//!
//! This is the one place besides configuration loading that reads environment variables: secrets are kept
//! out of `campbridge.toml` on purpose, and the environment is where local secret managers put them.
//!
//! A process cannot change its parent's environment, so local mode cannot persist a value written with
//! [`SecretStore::put`] (a refreshed OAuth token, say). `put` keeps it as an in-process override that wins
//! over the environment until the process exits; after a restart the environment's value applies again
//! (and an expired Basecamp token is refreshed again). Errors name the variable, never its value.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::ports::{SecretError, SecretStore};

/// The environment variable prefix for secrets.
pub const PREFIX: &str = "CAMPBRIDGE_SECRET_";

/// The environment variable that holds secret `name`.
pub fn var_name(name: &str) -> String {
    format!("{PREFIX}{}", name.to_uppercase().replace('-', "_"))
}

/// Where a variable is looked up: the process environment, or a fixed table in tests.
type Lookup = Box<dyn Fn(&str) -> Result<Option<String>, VarUnreadable> + Send + Sync>;

type Overrides = HashMap<String, (String, SecretString)>;

/// The variable exists but is not valid UTF-8 (its bytes are not kept).
#[derive(Debug)]
struct VarUnreadable;

/// Secrets from `CAMPBRIDGE_SECRET_*` environment variables, with in-process overrides from `put`.
pub struct EnvSecrets {
    lookup: Lookup,
    /// name → (request token, value) of the latest `put`.
    overrides: Mutex<Overrides>,
}

impl std::fmt::Debug for EnvSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvSecrets").finish_non_exhaustive()
    }
}

impl Default for EnvSecrets {
    fn default() -> Self {
        Self::from_env()
    }
}

impl EnvSecrets {
    /// Reads the process environment at each `get` (so a variable set before start-up is always seen).
    pub fn from_env() -> Self {
        Self::with_lookup(Box::new(|var| match std::env::var(var) {
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(VarUnreadable),
        }))
    }

    /// Reads from a fixed table of (variable, value) instead of the environment, for tests.
    pub fn from_vars<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let table: HashMap<String, String> = vars.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        Self::with_lookup(Box::new(move |var| Ok(table.get(var).cloned())))
    }

    fn with_lookup(lookup: Lookup) -> Self {
        Self { lookup, overrides: Mutex::new(HashMap::new()) }
    }

    fn overrides(&self) -> Result<MutexGuard<'_, Overrides>, SecretError> {
        self.overrides.lock().map_err(|_| SecretError::Unexpected(anyhow::anyhow!("secret override lock poisoned")))
    }
}

#[async_trait]
impl SecretStore for EnvSecrets {
    /// The in-process override if `put` wrote one, else the environment variable. An empty variable
    /// counts as missing.
    async fn get(&self, name: &str) -> Result<SecretString, SecretError> {
        if let Some((_, value)) = self.overrides()?.get(name) {
            return Ok(SecretString::from(value.expose_secret()));
        }
        let var = var_name(name);
        match (self.lookup)(&var) {
            Ok(Some(value)) if !value.is_empty() => Ok(SecretString::from(value)),
            Ok(_) => Err(SecretError::Missing(name.to_owned())),
            Err(VarUnreadable) => {
                Err(SecretError::Unexpected(anyhow::anyhow!("environment variable {var} is not valid UTF-8")))
            }
        }
    }

    /// Keeps `value` in this process only (see the module docs). A second `put` with the same request
    /// token as the current override is a no-op.
    async fn put(&self, name: &str, value: &SecretString, request_token: &str) -> Result<(), SecretError> {
        let mut g = self.overrides()?;
        if g.get(name).is_some_and(|(token, _)| !request_token.is_empty() && token == request_token) {
            return Ok(());
        }
        g.insert(name.to_owned(), (request_token.to_owned(), SecretString::from(value.expose_secret())));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testkit::contract::{Fixture, clock};

    crate::secret_store_contract_tests!(Fixture::<dyn SecretStore>::new(Arc::new(EnvSecrets::from_vars([])), clock()));

    #[test]
    fn secret_names_map_to_upper_case_variables() {
        assert_eq!(var_name("basecamp-token"), "CAMPBRIDGE_SECRET_BASECAMP_TOKEN");
        assert_eq!(var_name("jira_webhook-secret"), "CAMPBRIDGE_SECRET_JIRA_WEBHOOK_SECRET");
    }

    #[tokio::test]
    async fn a_secret_is_read_from_its_variable_and_an_empty_one_is_missing() {
        let store = EnvSecrets::from_vars([
            ("CAMPBRIDGE_SECRET_JIRA_TOKEN", "atl-token-value"),
            ("CAMPBRIDGE_SECRET_BASECAMP_TOKEN", ""),
        ]);
        let token = store.get("jira-token").await.map(|s| s.expose_secret().to_owned());
        assert_eq!(token.ok().as_deref(), Some("atl-token-value"));
        let missing = store.get("basecamp-token").await;
        assert!(matches!(missing, Err(SecretError::Missing(ref n)) if n == "basecamp-token"));
        assert!(!format!("{store:?}").contains("atl-token-value"));
    }

    #[tokio::test]
    async fn a_put_overrides_the_environment_in_process() {
        let store = EnvSecrets::from_vars([("CAMPBRIDGE_SECRET_BASECAMP_TOKEN", "old-access-token")]);
        let refreshed = SecretString::from("new-access-token");
        assert!(store.put("basecamp-token", &refreshed, "refresh-1").await.is_ok());
        let now = store.get("basecamp-token").await.map(|s| s.expose_secret().to_owned());
        assert_eq!(now.ok().as_deref(), Some("new-access-token"));
    }
}
