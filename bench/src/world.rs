//! The bench's own deployment against the simulators, for the parts that wire the engine themselves
//! (store operations per event, the functions' configuration): three simulators on 127.0.0.1, a
//! `campbridge.toml` pointing at them, and the secrets both sides share. Local mode over HTTP uses
//! `campbridge::demo::Stack` instead.

use std::path::Path;
use std::sync::Arc;

use campbridge_simulators::{basecamp as bc_sim, bitbucket as bb_sim, jira as jira_sim};
use shared::adapters::memory::MemorySecrets;
use shared::config::Config;
use shared::ingest::Receivers;
use shared::ports::SecretStore;

/// Secrets of the bench deployment; they exist only on loopback and in memory (or in moto, inside the
/// emulators' private network namespace).
pub const WEBHOOK_KEY: &str = "bench-webhook-key";
pub const JIRA_WEBHOOK_SECRET: &str = "bench-jira-webhook-secret";
pub const BITBUCKET_WEBHOOK_SECRET: &str = "bench-bitbucket-webhook-secret";

/// The store section of the config.
pub enum Store<'a> {
    Sqlite(&'a Path),
    DynamoDb { table: &'a str, queue_url: &'a str },
}

/// The three simulators.
pub struct Sims {
    pub basecamp: bc_sim::Simulator,
    pub jira: jira_sim::Simulator,
    pub bitbucket: bb_sim::Simulator,
}

impl Sims {
    /// Starts them, without Basecamp's rate limit (the bench counts calls; it does not wait for 429s).
    pub async fn start() -> anyhow::Result<Self> {
        let basecamp = bc_sim::Simulator::start(bc_sim::Options { rate_limit: None, ..Default::default() }).await?;
        let jira = jira_sim::Simulator::start(jira_sim::Options::default()).await?;
        let bitbucket = bb_sim::Simulator::start(bb_sim::Options::default()).await?;
        Ok(Self { basecamp, jira, bitbucket })
    }

    /// Waits until every webhook the simulators queued was delivered.
    pub async fn settle(&self) {
        self.basecamp.settle().await;
        self.jira.settle().await;
        self.bitbucket.settle().await;
    }

    /// API calls so far, per simulator: (Basecamp, Jira, Bitbucket).
    pub fn calls(&self) -> (u64, u64, u64) {
        (self.basecamp.calls().total(), self.jira.calls().total(), self.bitbucket.calls().total())
    }

    /// Registers `server`'s receivers as the webhooks of all three, as `campbridge webhooks register`
    /// (through the real Basecamp client) and an admin would.
    pub async fn register(&self, server: &str, config: &Config, receivers: &Receivers) -> anyhow::Result<()> {
        let secrets: Arc<dyn SecretStore> = Arc::new(self.memory_secrets());
        let client = shared::setup::basecamp_client(config, secrets).await?;
        for r in &config.routes {
            let url = format!("{server}/basecamp/{}", receivers.route_token(&r.id));
            client.create_webhook(r.project, &url, shared::clients::basecamp::SYNC_WEBHOOK_TYPES).await?;
        }
        self.jira
            .register_webhook(jira_sim::AdminHook {
                id: 0,
                url: format!("{server}/jira"),
                secret: Some(JIRA_WEBHOOK_SECRET.to_owned()),
                events: Vec::new(),
                jql: None,
            })
            .await;
        self.bitbucket
            .register_webhook(
                &format!("{server}/bitbucket"),
                Some(BITBUCKET_WEBHOOK_SECRET),
                &[
                    "pullrequest:created",
                    "pullrequest:updated",
                    "pullrequest:fulfilled",
                    "pullrequest:rejected",
                    "repo:commit_status_created",
                    "repo:commit_status_updated",
                ],
            )
            .await;
        // The registrations are setup, not sync traffic.
        self.basecamp.reset_calls();
        Ok(())
    }

    /// The config text for `store`: the demo's deployment (`campbridge::demo::simulator_config`, default
    /// rules) on the given store.
    pub fn config_text(&self, store: Store<'_>) -> String {
        let store = match store {
            Store::Sqlite(path) => format!("kind = \"sqlite\"\npath = {:?}", path.display().to_string()),
            Store::DynamoDb { table, queue_url } => {
                format!("kind = \"dynamodb\"\ntable = {table:?}\nqueue_url = {queue_url:?}")
            }
        };
        let opts = campbridge::demo::StackOptions::new(std::env::temp_dir());
        campbridge::demo::simulator_config(&opts, &store, &self.basecamp, &self.jira, &self.bitbucket)
    }

    /// Every secret the config names, with the values the simulators accept.
    pub fn secrets(&self) -> Vec<(&'static str, String)> {
        vec![
            ("webhook-key", WEBHOOK_KEY.to_owned()),
            ("basecamp-access-token", bc_sim::ACCESS_TOKEN.to_owned()),
            ("basecamp-client-secret", bc_sim::CLIENT_SECRET.to_owned()),
            ("basecamp-refresh-token", bc_sim::REFRESH_TOKEN.to_owned()),
            ("jira-api-token", jira_sim::API_TOKEN.to_owned()),
            ("jira-webhook-secret", JIRA_WEBHOOK_SECRET.to_owned()),
            ("bitbucket-api-token", self.bitbucket.credentials().1),
            ("bitbucket-webhook-secret", BITBUCKET_WEBHOOK_SECRET.to_owned()),
        ]
    }

    pub fn memory_secrets(&self) -> MemorySecrets {
        let pairs = self.secrets();
        MemorySecrets::with(pairs.iter().map(|(k, v)| (*k, v.as_str())))
    }
}

/// Parses a config the bench wrote.
pub fn parse(text: &str) -> anyhow::Result<Config> {
    Config::parse(text, "campbridge.toml").map_err(|e| anyhow::anyhow!("bench config: {e}"))
}
