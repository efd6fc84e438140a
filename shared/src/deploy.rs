//! The deployed stack's contract, declared once: the secrets `infra/template.yaml` creates, where the
//! configuration is stored, and per Lambda function the secrets and AWS actions it needs.
//!
//! The template, the docs and the code are checked against these tables, so they cannot drift apart:
//! `make test-aws`'s deploy rehearsal creates the translated template on moto and compares every
//! function role's policies with [`FUNCTIONS`] (nothing missing, nothing extra), records the calls each
//! function makes under its own role (each must be declared here, and each declared permission must be
//! used), and checks that the stack creates exactly [`STACK_SECRETS`]; `config check` warns about a
//! `{ secret = "…" }` the stack does not create ([`secret_warnings`]); docs/deploy.md carries
//! [`permissions_markdown`] verbatim (a unit test compares them).

use sha2::{Digest, Sha256};

/// The configuration's own entry in Secrets Manager: `<stack>/campbridge.toml`. `campbridge config push`
/// writes it; every function reads the version its `CAMPBRIDGE_CONFIG_VERSION` names once per cold start.
pub const CONFIG_SECRET: &str = "campbridge.toml";

/// The largest configuration that can be stored: Secrets Manager's limit for one secret value.
pub const MAX_CONFIG_BYTES: usize = 65_536;

/// The version id a configuration text is stored under: the SHA-256 of its bytes in hex. Secrets Manager
/// takes it as the `ClientRequestToken` (32–64 characters), so pushing the same text twice makes one
/// version, and a function can check that the text it read is the one its stack was deployed with.
pub fn config_version_id(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether `id` has the shape of a [`config_version_id`] (what the template's `ConfigVersion` accepts).
pub fn is_config_version_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One secret the stack creates, named `<stack name>/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackSecret {
    pub name: &'static str,
    /// Its resource in infra/template.yaml.
    pub logical_id: &'static str,
    /// The stack fills it with a random value (`GenerateSecretString`); otherwise it is created empty and
    /// filled with `campbridge secrets set`.
    pub generated: bool,
    /// The `campbridge.toml` key that names it.
    pub config_key: &'static str,
    pub purpose: &'static str,
}

/// Every secret the stack creates: every secret a configuration can name. A config that names another
/// one deploys a function that cannot start.
pub const STACK_SECRETS: &[StackSecret] = &[
    StackSecret {
        name: "webhook-key",
        logical_id: "WebhookKeySecret",
        generated: true,
        config_key: "[server] webhook_key",
        purpose: "derives the secret token in each route's Basecamp webhook URL",
    },
    StackSecret {
        name: "basecamp-access-token",
        logical_id: "BasecampAccessTokenSecret",
        generated: false,
        config_key: "[basecamp] access_token",
        purpose: "Basecamp OAuth access token (rewritten when it is refreshed)",
    },
    StackSecret {
        name: "basecamp-refresh-token",
        logical_id: "BasecampRefreshTokenSecret",
        generated: false,
        config_key: "[basecamp] refresh_token",
        purpose: "Basecamp OAuth refresh token",
    },
    StackSecret {
        name: "basecamp-client-secret",
        logical_id: "BasecampClientSecret",
        generated: false,
        config_key: "[basecamp] client_secret",
        purpose: "Basecamp OAuth client secret",
    },
    StackSecret {
        name: "jira-api-token",
        logical_id: "JiraApiTokenSecret",
        generated: false,
        config_key: "[jira] api_token",
        purpose: "Atlassian API token of the integration account",
    },
    StackSecret {
        name: "jira-webhook-secret",
        logical_id: "JiraWebhookSecret",
        generated: false,
        config_key: "[jira] webhook_secret",
        purpose: "HMAC secret of the Jira admin webhook",
    },
    StackSecret {
        name: "bitbucket-api-token",
        logical_id: "BitbucketApiTokenSecret",
        generated: false,
        config_key: "[bitbucket] api_token",
        purpose: "Atlassian API token for Bitbucket (the operator commands register repository webhooks)",
    },
    StackSecret {
        name: "bitbucket-access-token",
        logical_id: "BitbucketAccessTokenSecret",
        generated: false,
        config_key: "[bitbucket] access_token",
        purpose: "Bitbucket access token, instead of an API token",
    },
    StackSecret {
        name: "bitbucket-webhook-secret",
        logical_id: "BitbucketWebhookSecret",
        generated: false,
        config_key: "[bitbucket] webhook_secret",
        purpose: "HMAC secret of the Bitbucket repository webhooks",
    },
];

/// The stack secret called `name`, if there is one.
pub fn stack_secret(name: &str) -> Option<&'static StackSecret> {
    STACK_SECRETS.iter().find(|s| s.name == name)
}

/// What a permission is granted on, resolved to an ARN from the stack's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// The SQS FIFO job queue.
    JobQueue,
    /// The job queue's dead-letter queue.
    DeadLetterQueue,
    /// The DynamoDB table.
    Table,
    /// The table's indexes (`<table ARN>/index/*`).
    TableIndexes,
    /// A stack secret, by name.
    Secret(&'static str),
    /// The stored configuration, `<stack>/campbridge.toml` (any version).
    Config,
    /// The function's own log group.
    LogGroup,
}

/// Who makes the calls a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Caller {
    /// The function's own code.
    Function,
    /// The Lambda service with the function's role: writing its logs, polling its SQS event source.
    /// (The rehearsal's harness plays this part with the same role.)
    Lambda,
}

/// Actions on one resource, and why the function needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub actions: &'static [&'static str],
    pub resource: Resource,
    pub caller: Caller,
    pub why: &'static str,
    /// Needed only with this configuration (one of two alternatives); `None`: always.
    pub only_with: Option<&'static str>,
}

/// A Lambda function of the stack and everything its role allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The package, binary and SAM `Binary` name.
    pub name: &'static str,
    /// Its `AWS::Serverless::Function` in infra/template.yaml.
    pub logical_id: &'static str,
    /// Its role (`AWS::IAM::Role`) in the template.
    pub role_logical_id: &'static str,
    /// A public receiver behind a function URL (reserved concurrency, error and throttle alarms).
    pub public: bool,
    pub grants: &'static [Grant],
}

const READ_CONFIG: Grant = Grant {
    actions: &["secretsmanager:GetSecretValue"],
    resource: Resource::Config,
    caller: Caller::Function,
    why: "reads the configuration version it was deployed with, once per cold start",
    only_with: None,
};

const WRITE_LOGS: Grant = Grant {
    actions: &["logs:CreateLogStream", "logs:PutLogEvents"],
    resource: Resource::LogGroup,
    caller: Caller::Lambda,
    why: "Lambda writes the function's log lines to its log group",
    only_with: None,
};

const ENQUEUE: Grant = Grant {
    actions: &["sqs:SendMessage"],
    resource: Resource::JobQueue,
    caller: Caller::Function,
    why: "enqueues one job per accepted delivery",
    only_with: None,
};

/// The mapper's table actions: reads, conditional puts (delivery claims, pairs with their leases and
/// versions, item lookups, audit, conflicts; single items and the create transaction's items), and
/// deletes (a released delivery claim, a dropped item lookup in a transaction).
const MAPPER_TABLE: Grant = Grant {
    actions: &["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"],
    resource: Resource::Table,
    caller: Caller::Function,
    why: "pairs, delivery claims, audit and conflicts: reads and conditional writes",
    only_with: None,
};

/// The reconciler's: its cursors and the pairs it compares with what it polled.
const RECONCILER_TABLE: Grant = Grant {
    actions: &["dynamodb:GetItem", "dynamodb:PutItem"],
    resource: Resource::Table,
    caller: Caller::Function,
    why: "reads pairs, reads and advances its cursors (conditional puts)",
    only_with: None,
};

const RECONCILER_INDEX: Grant = Grant {
    actions: &["dynamodb:Query"],
    resource: Resource::TableIndexes,
    caller: Caller::Function,
    why: "lists the pairs stuck in PENDING (index gsi1)",
    only_with: None,
};

/// Reading the Basecamp and Jira credentials, and writing back refreshed Basecamp tokens.
const API_SECRETS_READ: Grant = Grant {
    actions: &["secretsmanager:GetSecretValue"],
    resource: Resource::Secret("basecamp-client-secret"),
    caller: Caller::Function,
    why: "refreshes the Basecamp access token",
    only_with: None,
};
const JIRA_TOKEN: Grant = Grant {
    actions: &["secretsmanager:GetSecretValue"],
    resource: Resource::Secret("jira-api-token"),
    caller: Caller::Function,
    why: "calls the Jira API",
    only_with: None,
};
const BASECAMP_ACCESS: Grant = Grant {
    actions: &["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
    resource: Resource::Secret("basecamp-access-token"),
    caller: Caller::Function,
    why: "calls the Basecamp API; writes the token back when it refreshes it",
    only_with: None,
};
const BASECAMP_REFRESH: Grant = Grant {
    actions: &["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
    resource: Resource::Secret("basecamp-refresh-token"),
    caller: Caller::Function,
    why: "refreshes the access token; Basecamp may rotate the refresh token too",
    only_with: None,
};

/// Every function of the stack, with every permission its role has.
pub const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        name: "basecamp-webhook",
        logical_id: "BasecampWebhookFunction",
        role_logical_id: "BasecampWebhookRole",
        public: true,
        grants: &[
            READ_CONFIG,
            Grant {
                actions: &["secretsmanager:GetSecretValue"],
                resource: Resource::Secret("webhook-key"),
                caller: Caller::Function,
                why: "checks the route token in the URL",
                only_with: None,
            },
            ENQUEUE,
            WRITE_LOGS,
        ],
    },
    FunctionSpec {
        name: "jira-webhook",
        logical_id: "JiraWebhookFunction",
        role_logical_id: "JiraWebhookRole",
        public: true,
        grants: &[
            READ_CONFIG,
            Grant {
                actions: &["secretsmanager:GetSecretValue"],
                resource: Resource::Secret("jira-webhook-secret"),
                caller: Caller::Function,
                why: "verifies the HMAC signature",
                only_with: None,
            },
            ENQUEUE,
            WRITE_LOGS,
        ],
    },
    FunctionSpec {
        name: "bitbucket-webhook",
        logical_id: "BitbucketWebhookFunction",
        role_logical_id: "BitbucketWebhookRole",
        public: true,
        grants: &[
            READ_CONFIG,
            Grant {
                actions: &["secretsmanager:GetSecretValue"],
                resource: Resource::Secret("bitbucket-webhook-secret"),
                caller: Caller::Function,
                why: "verifies the HMAC signature",
                only_with: None,
            },
            ENQUEUE,
            WRITE_LOGS,
        ],
    },
    FunctionSpec {
        name: "sync-mapper",
        logical_id: "SyncMapperFunction",
        role_logical_id: "SyncMapperRole",
        public: false,
        grants: &[
            READ_CONFIG,
            BASECAMP_ACCESS,
            BASECAMP_REFRESH,
            API_SECRETS_READ,
            JIRA_TOKEN,
            Grant {
                actions: &["secretsmanager:GetSecretValue"],
                resource: Resource::Secret("bitbucket-api-token"),
                caller: Caller::Function,
                why: "finds the pull requests of a build's commit (Bitbucket API)",
                only_with: Some("[bitbucket] api_token"),
            },
            Grant {
                actions: &["secretsmanager:GetSecretValue"],
                resource: Resource::Secret("bitbucket-access-token"),
                caller: Caller::Function,
                why: "finds the pull requests of a build's commit (Bitbucket API)",
                only_with: Some("[bitbucket] access_token"),
            },
            MAPPER_TABLE,
            Grant {
                actions: &["sqs:DeleteMessage", "sqs:SendMessage"],
                resource: Resource::JobQueue,
                caller: Caller::Function,
                why: "a postponed job (a 429, an outage) is replaced by a fresh copy, so a delay never counts towards the dead letters",
                only_with: None,
            },
            Grant {
                actions: &["sqs:ChangeMessageVisibility"],
                resource: Resource::JobQueue,
                caller: Caller::Function,
                why: "a postponed copy received before it is due is hidden until then (SQS FIFO has no per-message delay)",
                only_with: None,
            },
            Grant {
                actions: &["sqs:SendMessage"],
                resource: Resource::DeadLetterQueue,
                caller: Caller::Function,
                why: "files a job that failed on its last allowed receive, with its error",
                only_with: None,
            },
            Grant {
                actions: &["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
                resource: Resource::JobQueue,
                caller: Caller::Lambda,
                why: "the SQS event source polls the queue and deletes what the function finished",
                only_with: None,
            },
            WRITE_LOGS,
        ],
    },
    FunctionSpec {
        name: "reconciler",
        logical_id: "ReconcilerFunction",
        role_logical_id: "ReconcilerRole",
        public: false,
        grants: &[
            READ_CONFIG,
            Grant {
                actions: &["secretsmanager:GetSecretValue"],
                resource: Resource::Secret("webhook-key"),
                caller: Caller::Function,
                why: "tells our Basecamp webhooks (their URL carries the route token) from others",
                only_with: None,
            },
            BASECAMP_ACCESS,
            BASECAMP_REFRESH,
            API_SECRETS_READ,
            JIRA_TOKEN,
            RECONCILER_TABLE,
            RECONCILER_INDEX,
            Grant {
                actions: &["sqs:SendMessage"],
                resource: Resource::JobQueue,
                caller: Caller::Function,
                why: "enqueues a job for each change the webhooks missed",
                only_with: None,
            },
            WRITE_LOGS,
        ],
    },
];

/// The function called `name`, if the stack has one.
pub fn function(name: &str) -> Option<&'static FunctionSpec> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

impl FunctionSpec {
    /// Every (action, resource) this function's role allows, each once.
    pub fn permissions(&self) -> Vec<(&'static str, Resource)> {
        let mut all: Vec<(&'static str, Resource)> =
            self.grants.iter().flat_map(|g| g.actions.iter().map(move |a| (*a, g.resource))).collect();
        all.sort();
        all.dedup();
        all
    }

    /// The (action, resource) pairs needed only with some configurations: a rehearsal with another one
    /// leaves them unused.
    pub fn conditional_permissions(&self) -> Vec<(&'static str, Resource)> {
        self.grants
            .iter()
            .filter(|g| g.only_with.is_some())
            .flat_map(|g| g.actions.iter().map(move |a| (*a, g.resource)))
            .collect()
    }

    /// The stack secrets this function reads.
    pub fn secrets(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .grants
            .iter()
            .filter_map(|g| match g.resource {
                Resource::Secret(name) => Some(name),
                _ => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// A `{ secret = "…" }` in a config that names no secret the stack creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretWarning {
    pub file: String,
    pub line: usize,
    pub name: String,
}

impl std::fmt::Display for SecretWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: warning: secret {:?} is not one the AWS stack creates, so a deployed function could not read it \
             (the stack creates: {}); local mode reads any name from CAMPBRIDGE_SECRET_*",
            self.file,
            self.line,
            self.name,
            STACK_SECRETS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
        )
    }
}

/// Every secret reference in `text` (a `campbridge.toml`) whose name the stack does not create, with its
/// line. Text that is not TOML yields nothing here (validation reports it).
pub fn secret_warnings(text: &str, file: &str) -> Vec<SecretWarning> {
    let Ok(doc) = toml_edit::Document::parse(text) else { return Vec::new() };
    let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let mut refs = Vec::new();
    collect_secret_refs(doc.as_item(), &mut refs);
    refs.into_iter()
        .filter(|(name, _)| stack_secret(name).is_none())
        .map(|(name, offset)| SecretWarning {
            file: file.to_owned(),
            line: line_starts.partition_point(|&start| start <= offset),
            name,
        })
        .collect()
}

/// `(name, byte offset)` of every `{ secret = "name" }` (inline or as a table) under `item`.
fn collect_secret_refs(item: &toml_edit::Item, out: &mut Vec<(String, usize)>) {
    fn from_table(table: &dyn toml_edit::TableLike, out: &mut Vec<(String, usize)>) {
        if table.len() == 1
            && let Some(secret) = table.get("secret")
            && let Some(v) = secret.as_value()
            && let Some(name) = v.as_str()
        {
            out.push((name.to_owned(), v.span().map_or(0, |s| s.start)));
            return;
        }
        for (_, child) in table.iter() {
            collect_secret_refs(child, out);
        }
    }
    match item {
        toml_edit::Item::Table(t) => from_table(t, out),
        toml_edit::Item::ArrayOfTables(a) => a.iter().for_each(|t| from_table(t, out)),
        toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => from_table(t, out),
        toml_edit::Item::Value(toml_edit::Value::Array(a)) => {
            for v in a.iter() {
                if let toml_edit::Value::InlineTable(t) = v {
                    from_table(t, out);
                }
            }
        }
        _ => {}
    }
}

/// The secrets and permissions tables of docs/deploy.md, generated from [`STACK_SECRETS`] and
/// [`FUNCTIONS`].
pub fn permissions_markdown() -> String {
    let mut md = String::from("| secret (`<stack>/<name>`) | named by | filled by | what for |\n|---|---|---|---|\n");
    for s in STACK_SECRETS {
        let filled = if s.generated { "the stack (random)" } else { "`campbridge secrets set`" };
        md.push_str(&format!("| `{}` | `{}` | {filled} | {} |\n", s.name, s.config_key, s.purpose));
    }
    md.push_str("\n| function | action | on | by | why |\n|---|---|---|---|---|\n");
    for f in FUNCTIONS {
        for g in f.grants {
            let on = match g.resource {
                Resource::JobQueue => "job queue".to_owned(),
                Resource::DeadLetterQueue => "dead-letter queue".to_owned(),
                Resource::Table => "table".to_owned(),
                Resource::TableIndexes => "table indexes".to_owned(),
                Resource::Secret(name) => format!("secret `{name}`"),
                Resource::Config => format!("`{CONFIG_SECRET}`"),
                Resource::LogGroup => "its log group".to_owned(),
            };
            let by = match g.caller {
                Caller::Function => "code",
                Caller::Lambda => "Lambda",
            };
            let actions = g.actions.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
            let when = g.only_with.map(|c| format!(" (with `{c}`)")).unwrap_or_default();
            md.push_str(&format!("| {} | {actions} | {on} | {by} | {}{when} |\n", f.name, g.why));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_reads_its_config_and_writes_its_logs_and_public_ones_read_one_webhook_secret() {
        for f in FUNCTIONS {
            let perms = f.permissions();
            assert!(perms.contains(&("secretsmanager:GetSecretValue", Resource::Config)), "{}", f.name);
            assert!(perms.contains(&("logs:PutLogEvents", Resource::LogGroup)), "{}", f.name);
            if f.public {
                assert_eq!(f.secrets().len(), 1, "{} reads exactly its own secret", f.name);
                assert!(f.conditional_permissions().is_empty(), "{} needs the same whatever the config", f.name);
                assert!(!perms.iter().any(|(a, _)| a.starts_with("dynamodb:")), "{} never touches the table", f.name);
            }
            for name in f.secrets() {
                assert!(stack_secret(name).is_some(), "{} reads {name}, which the stack does not create", f.name);
            }
        }
    }

    #[test]
    fn the_example_config_names_only_secrets_the_stack_creates() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../campbridge.example.toml");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        assert!(text.contains("{ secret = "), "read {path}");
        assert_eq!(secret_warnings(&text, "campbridge.example.toml"), Vec::new());
    }

    #[test]
    fn a_secret_the_stack_does_not_create_is_warned_about_with_its_line() {
        let text = "[server]\nwebhook_key = { secret = \"campbridge-webhook-key\" }\n\n[jira]\napi_token.secret = \"jira-api-token\"\n[bitbucket]\nwebhook_secret = { secret = \"bb-hook\" }\n";
        let warnings = secret_warnings(text, "campbridge.toml");
        let found: Vec<(usize, &str)> = warnings.iter().map(|w| (w.line, w.name.as_str())).collect();
        assert_eq!(found, [(2, "campbridge-webhook-key"), (7, "bb-hook")]);
        assert!(warnings[0].to_string().starts_with("campbridge.toml:2: warning: secret \"campbridge-webhook-key\""));
    }

    #[test]
    fn config_versions_are_content_hashes() {
        let a = config_version_id("[server]\n");
        assert!(is_config_version_id(&a));
        assert_eq!(a, config_version_id("[server]\n"));
        assert_ne!(a, config_version_id("[server]\n# a comment\n"));
        assert!(!is_config_version_id("not-a-version"));
    }

    #[test]
    fn docs_deploy_carries_the_generated_tables() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/deploy.md");
        let docs = std::fs::read_to_string(path).unwrap_or_default();
        let tables = permissions_markdown();
        assert!(docs.contains(&tables), "docs/deploy.md must contain, verbatim:\n{tables}");
    }
}
