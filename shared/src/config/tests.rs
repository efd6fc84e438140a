//! Config tests: the example parses, defaults apply, and every kind of problem reads `file:line: message`.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;

use super::*;
use crate::domain::TrackerTarget;
use crate::domain::{
    ConflictPolicy, DescriptionTemplate, Filter, Glob, JiraProjectKey, Owner, Ownership, PersonId, ProjectId,
    StatusStrategy,
};

const EXAMPLE: &str = include_str!("../../../campbridge.example.toml");

/// The smallest config with one route; tests append to it or replace lines in it.
const MINIMAL: &str = r#"[server]
webhook_key = { secret = "hook-key" }

[basecamp]
account_id = 42
user_agent = "campbridge (ops@example.com)"
access_token = { secret = "bc-token" }

[jira]
site = "https://team.atlassian.net"
email = "bot@example.com"
api_token = { secret = "jira-token" }
webhook_secret = { secret = "jira-hook" }

[[users]]
name = "ana"
basecamp = 7
jira = "acc-ana"

[[routes]]
id = "web"
basecamp_project = 100
jira_project = "WEB"
"#;

/// Every problem reported for `text`, one string per problem.
fn problems(text: &str) -> Vec<String> {
    match Config::parse(text, "campbridge.toml") {
        Ok(_) => Vec::new(),
        Err(errors) => errors.errors().iter().map(ToString::to_string).collect(),
    }
}

fn parse_ok(text: &str) -> Config {
    match Config::parse(text, "campbridge.toml") {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid config, got:\n{errors}"),
    }
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).unwrap()].matches('\n').count() + 1
}

#[test]
fn the_example_config_parses_with_two_routes_and_a_user_table() {
    let config = parse_ok(EXAMPLE);
    assert_eq!(config.routes.len(), 2);
    assert_eq!(config.users.users.len(), 3);
    assert_eq!(config.users.jira_for(PersonId(1_049_715_913)), Some(&JiraAccountId("5b10ac8d82e05b22cc7d4ef5".into())));
    assert_eq!(config.user_contacts[0].bitbucket.as_deref(), Some("ana-dev"));
    assert!(config.bitbucket.as_ref().is_some_and(|b| b.repos.len() == 2));
    assert!(config.basecamp.as_ref().is_some_and(|b| b.refresh.is_some()));

    let web = &config.routes[0];
    assert_eq!(web.id.as_str(), "web");
    assert_eq!(web.project, ProjectId(2_085_958_499));
    assert_eq!(web.title.render("Fix login"), "[BC][WEB] Fix login");
    assert_eq!(web.triage, Some(JiraAccountId("5b109f2e9729b51b54dc274d".into())));
    assert_eq!(web.lists.len(), 2);
    assert_eq!(web.lists[0].components, vec!["Web".to_owned()]);
    assert!(web.webhook_token.is_none());

    let mobile = &config.routes[1];
    assert_eq!(mobile.title.render("Crash"), "[BC][APP] Crash");
    assert_eq!(mobile.filter.todolists, vec![Glob::new("Release *"), Glob::new("Crashes")]);
    assert_eq!(mobile.filter.marker.as_deref(), Some("#dev"));
    assert_eq!(mobile.triage, Some(JiraAccountId("5b10ac8d82e05b22cc7d4ef5".into())));
    assert_eq!(mobile.status, StatusStrategy::PmOwned);
    assert_eq!(mobile.conflict_policy, ConflictPolicy::Manual);
    assert_eq!(mobile.ownership, Ownership { title: Owner::Basecamp, assignee: Owner::Both });
    assert_eq!(
        mobile.target,
        TrackerTarget::Jira { project: JiraProjectKey::parse("MOB").unwrap(), issue_type: "Bug".into() }
    );
}

#[test]
fn defaults_apply_to_everything_left_out() {
    let config = parse_ok(MINIMAL);
    assert_eq!(config.server.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(config.server.public_url, None);
    assert!(!config.server.allow_insecure_loopback_upstreams);
    assert_eq!(config.server.reconcile_every, Some(std::time::Duration::from_secs(300)));
    assert_eq!(config.store, StoreConfig::Sqlite { path: PathBuf::from("campbridge.db") });
    let basecamp = config.basecamp.unwrap();
    assert_eq!(basecamp.base_url.as_str(), "https://3.basecampapi.com");
    assert_eq!(basecamp.refresh, None);
    assert_eq!(config.jira.unwrap().base_url.as_str(), "https://team.atlassian.net");
    assert_eq!(config.bitbucket, None);

    let route = &config.routes[0];
    assert_eq!(route.code, "WEB");
    assert_eq!(route.title.render("T"), "[BC][WEB] T");
    assert_eq!(
        route.target,
        TrackerTarget::Jira { project: JiraProjectKey::parse("WEB").unwrap(), issue_type: "Task".into() }
    );
    assert_eq!(route.description, DescriptionTemplate::default());
    assert_eq!(route.filter, Filter::default());
    assert!(route.lists.is_empty());
    assert_eq!(route.escalation_label, "escalated");
    assert_eq!(route.triage, None);
    assert_eq!(route.status, StatusStrategy::DevOwned);
    assert_eq!(route.conflict_policy, ConflictPolicy::LastWriterWins);
    assert_eq!(route.ownership, Ownership { title: Owner::Both, assignee: Owner::Basecamp });
}

#[test]
fn an_empty_file_is_a_valid_config_without_routes() {
    let config = parse_ok("");
    assert!(config.routes.is_empty());
    assert_eq!(config.basecamp, None);
}

#[test]
fn an_unknown_status_strategy_names_the_file_the_line_and_the_route() {
    let text = format!("{MINIMAL}status_strategy = \"dev_owned\"\n");
    let line = line_of(&text, "status_strategy");
    assert_eq!(
        problems(&text),
        vec![format!(
            "campbridge.toml:{line}: route \"web\": unknown status strategy \"dev_owned\" (expected dev-owned, pm-owned, bidirectional)"
        )]
    );
}

#[test]
fn an_unknown_conflict_policy_is_reported_with_the_expected_words() {
    let text = format!("{MINIMAL}conflict_policy = \"newest\"\n");
    let line = line_of(&text, "conflict_policy");
    assert_eq!(
        problems(&text),
        vec![format!(
            "campbridge.toml:{line}: route \"web\": unknown conflict policy \"newest\" (expected last-writer-wins, basecamp-wins, tracker-wins, manual)"
        )]
    );
}

#[test]
fn an_unknown_key_is_reported_with_the_nearest_known_key() {
    let text = format!("{MINIMAL}stauts_strategy = \"dev-owned\"\n");
    let line = line_of(&text, "stauts_strategy");
    assert_eq!(
        problems(&text),
        vec![format!(
            "campbridge.toml:{line}: unknown key \"stauts_strategy\" in route \"web\" (did you mean \"status_strategy\"?)"
        )]
    );
}

#[test]
fn unknown_sections_and_far_off_keys_are_reported_without_a_guess() {
    let text = format!("{MINIMAL}\n[rotues]\nx = 1\n[basecamp2]\n");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].ends_with("unknown key \"rotues\" in the top level (did you mean \"routes\"?)"), "{p:?}");
    let text = MINIMAL.replace("account_id = 42", "account_id = 42\ncolour = \"blue\"");
    assert_eq!(problems(&text), vec!["campbridge.toml:6: unknown key \"colour\" in [basecamp]".to_owned()]);
}

#[test]
fn a_secret_literal_is_rejected() {
    let text = MINIMAL.replace(r#"access_token = { secret = "bc-token" }"#, r#"access_token = "bc-live-1234""#);
    assert_eq!(
        problems(&text),
        vec![
            "campbridge.toml:7: [basecamp] access_token must be a secret reference like { secret = \"name\" }, \
             not a literal — secrets never live in this file"
                .to_owned()
        ]
    );
}

#[test]
fn the_secret_value_is_never_echoed_in_a_problem() {
    let text = MINIMAL.replace(r#"{ secret = "jira-token" }"#, r#""s3cr3t-value""#);
    let p = problems(&text).join("\n");
    assert!(p.contains("api_token must be a secret reference"), "{p}");
    assert!(!p.contains("s3cr3t-value"), "{p}");
}

#[test]
fn a_malformed_secret_reference_is_reported() {
    let text = MINIMAL.replace(r#"{ secret = "jira-token" }"#, r#"{ secrte = "jira-token" }"#);
    let line = line_of(&text, "secrte");
    assert_eq!(
        problems(&text),
        vec![
            format!("campbridge.toml:{line}: unknown key \"secrte\" in [jira] api_token (did you mean \"secret\"?)"),
            format!("campbridge.toml:{line}: [jira] api_token secret is required"),
        ]
    );
}

#[test]
fn several_problems_are_all_reported_in_file_order() {
    let text = MINIMAL
        .replace("webhook_key = { secret = \"hook-key\" }", "listen = \"0.0.0.0:8080\"\nwebhook_key = \"k\"")
        .replace("account_id = 42", "account_id = \"42\"")
        .replace("jira_project = \"WEB\"", "jira_project = \"web\"\nstatus_strategy = \"dev_owned\"");
    let p = problems(&text);
    assert_eq!(p.len(), 5, "{p:#?}");
    assert!(
        p[0].starts_with("campbridge.toml:2: [server] listen \"0.0.0.0:8080\" is not a loopback address"),
        "{p:#?}"
    );
    assert!(p[1].starts_with("campbridge.toml:3: [server] webhook_key must be a secret reference"), "{p:#?}");
    assert_eq!(p[2], "campbridge.toml:6: [basecamp] account_id must be an integer, not the string \"42\"");
    assert!(p[3].starts_with("campbridge.toml:24: route \"web\": invalid Jira project key: \"web\""), "{p:#?}");
    assert!(p[4].starts_with("campbridge.toml:25: route \"web\": unknown status strategy"), "{p:#?}");
}

#[test]
fn a_toml_syntax_error_has_a_line_number() {
    let text = MINIMAL.replace("account_id = 42", "account_id = ");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("campbridge.toml:5: invalid TOML: "), "{p:?}");
}

#[test]
fn a_non_loopback_listen_address_is_rejected_and_loopback_forms_are_accepted() {
    let text = MINIMAL.replace("[server]\n", "[server]\nlisten = \"192.168.1.5:8080\"\n");
    assert_eq!(
        problems(&text),
        vec![
            "campbridge.toml:2: [server] listen \"192.168.1.5:8080\" is not a loopback address: local mode binds \
             127.0.0.1 or [::1] only (put a tunnel or proxy in front to receive webhooks)"
                .to_owned()
        ]
    );
    for (listen, expected) in
        [("127.0.0.1:0", "127.0.0.1:0"), ("[::1]:9000", "[::1]:9000"), ("localhost:8081", "127.0.0.1:8081")]
    {
        let text = MINIMAL.replace("[server]\n", &format!("[server]\nlisten = \"{listen}\"\n"));
        assert_eq!(parse_ok(&text).server.listen, expected.parse::<SocketAddr>().unwrap());
    }
}

#[test]
fn the_reconcile_interval_takes_a_unit_and_off_turns_it_off() {
    use std::time::Duration;
    for (every, expected) in [
        ("30s", Some(Duration::from_secs(30))),
        ("5m", Some(Duration::from_secs(300))),
        ("2h", Some(Duration::from_secs(7200))),
        ("off", None),
        ("0", None),
    ] {
        let text = MINIMAL.replace("[server]\n", &format!("[server]\nreconcile_every = \"{every}\"\n"));
        assert_eq!(parse_ok(&text).server.reconcile_every, expected, "{every}");
    }
    for (every, problem) in [
        ("5", "\"5\" is not a duration like \"30s\", \"5m\" or \"1h\" (\"off\" turns it off)"),
        ("5 min", "\"5 min\" is not a duration like"),
        ("-5m", "\"-5m\" is not a duration like"),
        ("5s", "\"5s\" is shorter than 10s: each pass spends Basecamp requests from the shared rate limit"),
    ] {
        let text = MINIMAL.replace("[server]\n", &format!("[server]\n# how often\nreconcile_every = \"{every}\"\n"));
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{every}: {p:#?}");
        let expected = format!("campbridge.toml:3: [server] reconcile_every {problem}");
        assert!(p[0].starts_with(&expected), "{every}: {p:#?}");
    }
    let text = MINIMAL.replace("[server]\n", "[server]\nreconcile_every = 300\n");
    assert_eq!(
        problems(&text),
        vec!["campbridge.toml:2: [server] reconcile_every must be a string, not the integer 300"]
    );
}

#[test]
fn a_duplicate_route_id_points_at_the_second_one() {
    let text = format!("{MINIMAL}\n[[routes]]\nid = \"web\"\nbasecamp_project = 101\njira_project = \"WEB\"\n");
    let second = text.rfind("id = \"web\"").map(|i| text[..i].matches('\n').count() + 1).unwrap();
    assert_eq!(
        problems(&text),
        vec![format!("campbridge.toml:{second}: route \"web\": the route id is used twice (first on line 21)")]
    );
}

#[test]
fn route_ids_and_jira_project_keys_must_be_valid() {
    let text = MINIMAL.replace("id = \"web\"", "id = \"Web Site\"").replace("\"WEB\"", "\"W-1\"");
    assert_eq!(
        problems(&text),
        vec![
            "campbridge.toml:21: route \"Web Site\": invalid route id: \"Web Site\": use lower-case letters, digits and dashes"
                .to_owned(),
            "campbridge.toml:23: route \"Web Site\": invalid Jira project key: \"W-1\": a project key is upper-case \
             letters, digits and _, like WEB"
                .to_owned(),
        ]
    );
}

#[test]
fn a_missing_key_points_at_its_table() {
    let text = MINIMAL.replace("basecamp_project = 100\n", "");
    assert_eq!(problems(&text), vec!["campbridge.toml:20: route \"web\": basecamp_project is required".to_owned()]);
}

#[test]
fn routes_need_basecamp_jira_and_a_webhook_key() {
    let text = "[[routes]]\nid = \"web\"\nbasecamp_project = 1\njira_project = \"WEB\"\n";
    assert_eq!(
        problems(text),
        vec![
            "campbridge.toml:1: routes need a [basecamp] section".to_owned(),
            "campbridge.toml:1: routes need a [jira] section".to_owned(),
            "campbridge.toml:1: routes need [server] webhook_key = { secret = \"name\" } (each route's Basecamp \
             webhook URL token is derived from it)"
                .to_owned(),
        ]
    );
    let text = MINIMAL.replace("webhook_key = { secret = \"hook-key\" }\n", "");
    assert_eq!(
        problems(&text),
        vec![
            "campbridge.toml:1: [server] webhook_key is required when routes are configured (each route's Basecamp \
             webhook URL token is derived from it)"
                .to_owned()
        ]
    );
}

#[test]
fn triage_names_a_user_or_a_raw_jira_account() {
    let config = parse_ok(&format!("{MINIMAL}triage = \"ana\"\n"));
    assert_eq!(config.routes[0].triage, Some(JiraAccountId("acc-ana".into())));
    let config = parse_ok(&format!("{MINIMAL}triage = {{ jira = \"557058:abc\" }}\n"));
    assert_eq!(config.routes[0].triage, Some(JiraAccountId("557058:abc".into())));
    let p = problems(&format!("{MINIMAL}triage = 5\n"));
    assert!(
        p[0].ends_with("route \"web\": triage must be a name from [[users]] or { jira = \"<account id>\" }"),
        "{p:?}"
    );

    let text = format!("{MINIMAL}triage = \"anna\"\n");
    let line = line_of(&text, "triage");
    assert_eq!(
        problems(&text),
        vec![format!(
            "campbridge.toml:{line}: route \"web\": triage \"anna\" is not a name from [[users]] (did you mean \"ana\"?); \
             to name a Jira account directly write triage = {{ jira = \"<account id>\" }}"
        )]
    );
}

#[test]
fn a_title_template_needs_title_exactly_once_and_known_placeholders() {
    let text = format!("{MINIMAL}title_template = \"[{{code}}] fixed\"\n");
    let line = line_of(&text, "title_template");
    assert_eq!(
        problems(&text),
        vec![format!(
            "campbridge.toml:{line}: route \"web\": title template \"[{{code}}] fixed\" must contain {{title}} exactly once"
        )]
    );
    let p = problems(&format!("{MINIMAL}title_template = \"{{title}} {{title}}\"\n"));
    assert!(p[0].ends_with("must contain {title} exactly once"), "{p:?}");
    let p = problems(&format!("{MINIMAL}title_template = \"[{{cod}}] {{title}}\"\n"));
    assert!(p[0].ends_with("title_template has unknown placeholder {cod} (known: {code}, {title})"), "{p:?}");
}

#[test]
fn a_description_template_with_an_unknown_placeholder_is_rejected() {
    let text = format!("{MINIMAL}description_template = \"{{context}} {{body}}\"\n");
    let line = line_of(&text, "description_template");
    assert_eq!(
        problems(&text),
        vec![format!(
            "campbridge.toml:{line}: route \"web\": description_template has unknown placeholder {{body}} (known: \
             {{context}}, {{description}}, {{link}}, {{due}}, {{artifacts}}, {{project}}, {{list}}, {{creator}}, {{title}})"
        )]
    );
}

#[test]
fn globs_must_not_be_empty() {
    let text = format!("{MINIMAL}todolists = [\"Bugs*\", \"  \"]\n[[routes.lists]]\nlist = \"\"\nlabels = [\"bug\"]\n");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].ends_with("route \"web\": todolists has an empty pattern"), "{p:?}");
    assert!(p[1].ends_with("route \"web\" list mapping #1: list has an empty pattern"), "{p:?}");
    let p = problems(&format!("{MINIMAL}todolists = []\n"));
    assert!(p[0].ends_with("todolists is empty; leave it out to take every to-do list"), "{p:?}");
}

#[test]
fn fields_that_flow_one_way_can_only_be_owned_by_basecamp() {
    let text =
        format!("{MINIMAL}[routes.ownership]\ntitle = \"tracker\"\ndescription = \"basecamp\"\ndue_date = \"both\"\n");
    let line = line_of(&text, "due_date");
    assert_eq!(
        problems(&text),
        vec![format!(
            "campbridge.toml:{line}: route \"web\" ownership: due_date = \"both\" is not possible: description, \
             due_date, priority, labels, components flow Basecamp → tracker only (write \"basecamp\" or leave it out)"
        )]
    );
    let config = parse_ok(&format!("{MINIMAL}[routes.ownership]\ntitle = \"tracker\"\ndescription = \"basecamp\"\n"));
    assert_eq!(config.routes[0].ownership.title, Owner::Tracker);
    let p = problems(&format!("{MINIMAL}ownership = {{ assignee = \"jira\" }}\n"));
    assert!(
        p[0].ends_with("route \"web\" ownership: assignee: unknown owner \"jira\" (expected basecamp, tracker, both)"),
        "{p:?}"
    );
}

#[test]
fn upstream_urls_must_be_https_unless_loopback_is_explicitly_allowed() {
    let local = MINIMAL.replace("https://team.atlassian.net", "http://127.0.0.1:9001");
    assert_eq!(
        problems(&local),
        vec![
            "campbridge.toml:10: [jira] site \"http://127.0.0.1:9001\" must be an https URL (http on loopback needs \
             [server] allow_insecure_loopback_upstreams = true)"
                .to_owned()
        ]
    );
    let allowed = local.replace("[server]\n", "[server]\nallow_insecure_loopback_upstreams = true\n");
    assert_eq!(parse_ok(&allowed).jira.unwrap().base_url.as_str(), "http://127.0.0.1:9001");

    let remote = allowed.replace("http://127.0.0.1:9001", "http://jira.example.com");
    assert_eq!(
        problems(&remote),
        vec!["campbridge.toml:11: [jira] site \"http://jira.example.com\" must be an https URL".to_owned()]
    );
    let creds = MINIMAL.replace("https://team.atlassian.net", "https://bot:pw@team.atlassian.net");
    assert!(problems(&creds)[0].contains("must not carry credentials"));
}

#[test]
fn a_cloud_id_sends_api_calls_through_the_gateway() {
    let text =
        MINIMAL.replace("site = \"https://team.atlassian.net\"", "cloud_id = \"11111111-2222-3333-4444-555555555555\"");
    let jira = parse_ok(&text).jira.unwrap();
    assert_eq!(jira.base_url.as_str(), "https://api.atlassian.com/ex/jira/11111111-2222-3333-4444-555555555555");
    assert_eq!(jira.base_url.join("/rest/api/3/myself"), format!("{}/rest/api/3/myself", jira.base_url));
    assert_eq!(jira.site, None);
    let p = problems(&MINIMAL.replace("site = \"https://team.atlassian.net\"\n", ""));
    assert_eq!(
        p,
        vec!["campbridge.toml:9: [jira] needs site (https://your-team.atlassian.net) or cloud_id (for scoped API tokens)"
            .to_owned()]
    );
}

#[test]
fn a_user_agent_without_a_contact_is_rejected() {
    let text = MINIMAL.replace("\"campbridge (ops@example.com)\"", "\"campbridge\"");
    assert_eq!(
        problems(&text),
        vec![
            "campbridge.toml:6: [basecamp] user_agent \"campbridge\" must name the app and a contact in parentheses, \
             e.g. \"campbridge (ops@example.com)\" — Basecamp requires it"
                .to_owned()
        ]
    );
}

#[test]
fn token_refresh_needs_all_three_keys() {
    let text = MINIMAL.replace("account_id = 42", "account_id = 42\nclient_id = \"abc\"");
    let p = problems(&text);
    assert_eq!(
        p,
        vec![
            "campbridge.toml:6: [basecamp] refreshing the access token needs client_id, client_secret and \
              refresh_token together (missing client_secret, refresh_token)"
                .to_owned()
        ]
    );
}

#[test]
fn user_names_people_and_accounts_are_each_mapped_once() {
    let text = format!("{MINIMAL}\n[[users]]\nname = \"ana\"\nbasecamp = 7\njira = \"acc-ana\"\n");
    let p = problems(&text);
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(p[0].ends_with("user \"ana\": the name \"ana\" is used twice (first on line 16)"), "{p:#?}");
    assert!(p[1].ends_with("user \"ana\": basecamp person 7 is mapped twice (first on line 17)"), "{p:#?}");
    assert!(p[2].ends_with("user \"ana\": jira account \"acc-ana\" is mapped twice (first on line 18)"), "{p:#?}");
}

#[test]
fn the_dynamodb_store_needs_a_table_and_a_fifo_queue() {
    let text = format!(
        "{MINIMAL}[store]\nkind = \"dynamodb\"\ntable = \"campbridge\"\nqueue_url = \"https://sqs.eu-west-1.amazonaws.com/123456789012/campbridge.fifo\"\n"
    );
    let store = parse_ok(&text).store;
    assert!(matches!(store, StoreConfig::DynamoDb { ref table, .. } if table == "campbridge"));

    let text = format!("{MINIMAL}[store]\nkind = \"dynamodb\"\npath = \"x.db\"\n");
    let p = problems(&text);
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(p.iter().any(|e| e.ends_with("unknown key \"path\" in [store]")), "{p:#?}");
    assert!(p.iter().any(|e| e.ends_with("[store] table is required")), "{p:#?}");
    assert!(p.iter().any(|e| e.ends_with("[store] queue_url is required")), "{p:#?}");

    let p = problems(&format!("{MINIMAL}[store]\nkind = \"postgres\"\n"));
    assert!(p[0].ends_with("[store] unknown store kind \"postgres\" (expected sqlite, dynamodb)"), "{p:?}");
}

#[test]
fn bitbucket_needs_exactly_one_kind_of_token() {
    let base = format!(
        "{MINIMAL}[bitbucket]\nworkspace = \"team\"\nwebhook_secret = {{ secret = \"bb-hook\" }}\nrepos = [\"team/web\"]\n"
    );
    let p = problems(&base);
    assert!(p[0].ends_with("[bitbucket] needs api_token (with email) or access_token"), "{p:?}");
    let config = parse_ok(&format!("{base}access_token = {{ secret = \"bb-token\" }}\n"));
    assert_eq!(config.bitbucket.unwrap().auth, BitbucketAuth::AccessToken(SecretRef::parse("bb-token").unwrap()));
    let p = problems(&format!("{base}api_token = {{ secret = \"bb-token\" }}\n"));
    assert!(p[0].ends_with("[bitbucket] api_token needs email (Basic email:token)"), "{p:?}");
    let p = problems(&format!("{base}repos = [\"web\"]\n").replace("repos = [\"team/web\"]\n", ""));
    assert!(p.iter().any(|e| e.contains("invalid Bitbucket repository (workspace/repo): \"web\"")), "{p:?}");
}

#[test]
fn problems_display_one_per_line_and_an_unreadable_file_has_no_line() {
    let err = Config::parse("[jira]\nsite = 1\n", "c.toml").unwrap_err();
    assert_eq!(err.to_string().lines().count(), err.errors().len());
    let missing = Config::from_file("/nonexistent/campbridge.toml").unwrap_err();
    assert_eq!(missing.errors()[0].line, None);
    assert!(missing.to_string().starts_with("/nonexistent/campbridge.toml: cannot read: "), "{missing}");
}

#[test]
fn the_example_file_loads_from_disk() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../campbridge.example.toml");
    assert!(Config::from_file(path).is_ok());
}

#[test]
fn completing_on_merge_under_dev_owned_status_is_refused_with_the_reason() {
    let text = format!("{MINIMAL}complete_on_merge = true\n");
    let line = line_of(&text, "complete_on_merge");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(&format!("campbridge.toml:{line}: route \"web\": complete_on_merge needs")),
        "{}",
        found[0]
    );
    let allowed = format!("{MINIMAL}status_strategy = \"pm-owned\"\ncomplete_on_merge = true\n");
    assert!(problems(&allowed).is_empty());
}

#[test]
fn upstream_urls_naming_non_public_addresses_are_refused_with_their_line() {
    for (url, class) in [
        ("https://169.254.169.254/", "link-local"),
        ("https://169.254.169.254./", "link-local"),
        ("https://0xa9fea9fe/", "link-local"),
        ("https://0251.0376.0251.0376/", "link-local"),
        ("https://2852039166/", "link-local"),
        ("https://127.0.0.1/", "loopback"),
        ("https://0x7f.1/", "loopback"),
        ("https://127.1/", "loopback"),
        ("https://2130706433/", "loopback"),
        ("https://0177.0.0.1/", "loopback"),
        ("https://localhost/", "loopback"),
        ("https://api.localhost/", "loopback"),
        ("https://10.1.2.3/", "private"),
        ("https://172.16.0.1/", "private"),
        ("https://192.168.0.1/", "private"),
        ("https://100.64.0.1/", "carrier-grade NAT"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://192.0.2.1/", "documentation"),
        ("https://198.18.0.1/", "benchmarking"),
        ("https://224.0.0.1/", "multicast"),
        ("https://255.255.255.255/", "reserved"),
        ("https://[::1]/", "loopback"),
        ("https://[::]/", "unspecified"),
        ("https://[fe80::1]/", "link-local"),
        ("https://[fec0::1]/", "site-local"),
        ("https://[fd00::1]/", "unique-local"),
        ("https://[::127.0.0.1]/", "IPv4-compatible"),
        ("https://[::ffff:127.0.0.1]/", "loopback"),
        ("https://[::ffff:a9fe:a9fe]/", "link-local"),
        ("https://[64:ff9b::10.0.0.1]/", "private"),
        ("https://[64:ff9b:1::1]/", "local-use NAT64"),
        ("https://[2002:7f00:1::1]/", "6to4"),
        ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
        ("https://[2001:db8::1]/", "documentation"),
        ("https://[ff02::1]/", "multicast"),
    ] {
        let text = MINIMAL.replace("https://team.atlassian.net", url);
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{url}: {p:?}");
        assert!(p[0].starts_with(&format!("campbridge.toml:10: [jira] site {url:?}")), "{url}: {p:?}");
        assert!(p[0].contains(class), "{url} should be {class}: {p:?}");
    }
    // Public addresses pass, written as addresses or names.
    for url in ["https://93.184.215.14/", "https://[2606:4700::1111]/", "https://[64:ff9b::5db8:d70e]/"] {
        parse_ok(&MINIMAL.replace("https://team.atlassian.net", url));
    }
    // The test allowance lets loopback in, and nothing else.
    let allowed = |url: &str| {
        MINIMAL
            .replace("https://team.atlassian.net", url)
            .replace("[server]\n", "[server]\nallow_insecure_loopback_upstreams = true\n")
    };
    parse_ok(&allowed("https://127.0.0.1:9001"));
    parse_ok(&allowed("https://localhost:9001"));
    assert!(problems(&allowed("https://169.254.169.254/"))[0].contains("link-local"));
    assert!(problems(&allowed("https://[::ffff:10.0.0.1]/"))[0].contains("private"));
}

#[test]
fn a_route_sets_its_default_priority_and_values_for_required_create_fields() {
    let text = format!(
        "{MINIMAL}default_priority = \"Low\"\n\n[routes.create_fields]\ncustomfield_10050 = {{ value = \"Team A\" }}\n\
         environment = \"production\"\ncustomfield_10060 = [{{ id = \"3\" }}]\n"
    );
    let config = parse_ok(&text);
    let route = &config.routes[0];
    assert_eq!(route.default_priority, crate::domain::Priority::Low);
    assert_eq!(route.create_fields["customfield_10050"], serde_json::json!({"value": "Team A"}));
    assert_eq!(route.create_fields["environment"], serde_json::json!("production"));
    assert_eq!(route.create_fields["customfield_10060"], serde_json::json!([{"id": "3"}]));
    assert_eq!(parse_ok(MINIMAL).routes[0].default_priority, crate::domain::Priority::Medium, "medium by default");
}

#[test]
fn create_fields_that_campbridge_sets_or_that_json_cannot_hold_are_refused_with_their_lines() {
    let text = format!(
        "{MINIMAL}default_priority = \"urgent\"\n\n[routes.create_fields]\nsummary = \"x\"\nCustom-Field = 1\n\
         customfield_1 = 2026-01-01\n"
    );
    let found = problems(&text);
    let expect = [
        (line_of(&text, "default_priority"), "default_priority \"urgent\" is not a priority"),
        (line_of(&text, "summary ="), "summary is set by campbridge itself"),
        (line_of(&text, "Custom-Field"), "\"Custom-Field\" is not a Jira field id"),
        (line_of(&text, "customfield_1 ="), "customfield_1 must be a string, number, boolean, array or table"),
    ];
    for (line, message) in expect {
        assert!(
            found.iter().any(|p| p.starts_with(&format!("campbridge.toml:{line}:")) && p.contains(message)),
            "{line}: {message} in {found:#?}"
        );
    }
}

/// The warnings for `text` (which must be valid), one string per warning.
fn warnings(text: &str) -> Vec<String> {
    match Config::parse_with_warnings(text, "campbridge.toml") {
        Ok((_, warnings)) => warnings.iter().map(ToString::to_string).collect(),
        Err(errors) => panic!("expected a valid config, got:\n{errors}"),
    }
}

#[test]
fn the_example_and_a_minimal_config_have_no_warnings() {
    assert_eq!(warnings(EXAMPLE), Vec::<String>::new());
    assert_eq!(warnings(MINIMAL), Vec::<String>::new());
}

#[test]
fn two_routes_on_one_project_that_can_take_the_same_todo_are_warned_about_with_their_lines() {
    let second =
        "\n[[routes]]\nid = \"ops\"\nbasecamp_project = 100\njira_project = \"OPS\"\ntodolists = [\"Sprint 1\"]\n";
    // The first route takes every list, so it overlaps any other route on project 100.
    let text = format!("{MINIMAL}{second}");
    let found = warnings(&text);
    let line = line_of(&text, "id = \"ops\"") - 1;
    let first = line_of(&text, "id = \"web\"") - 1;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(&format!("campbridge.toml:{line}: route \"ops\" overlaps route \"web\" (line {first})")),
        "{found:?}"
    );
    assert!(found[0].contains("every to-do list") && found[0].contains("\"Sprint 1\""), "{found:?}");

    // Disjoint lists, other projects and different markers are fine; overlapping globs are not.
    let with_lists = |a: &str, b: &str| {
        let text = MINIMAL.replace("jira_project = \"WEB\"\n", &format!("jira_project = \"WEB\"\n{a}\n"));
        format!("{text}\n[[routes]]\nid = \"ops\"\nbasecamp_project = 100\njira_project = \"OPS\"\n{b}\n")
    };
    assert!(warnings(&with_lists("todolists = [\"Bugs\"]", "todolists = [\"Sprint *\"]")).is_empty());
    assert!(warnings(&with_lists("marker = \"#web\"", "marker = \"#ops\"")).is_empty());
    assert_eq!(warnings(&with_lists("todolists = [\"Sprint 1*\"]", "todolists = [\"*2\"]")).len(), 1);
    assert_eq!(warnings(&with_lists("marker = \"#dev\"", "marker = \"#DEV\"")).len(), 1);
    assert!(warnings(&format!("{MINIMAL}{}", second.replace("100", "200"))).is_empty());
}

#[test]
fn glob_overlap_is_decided_for_stars_and_question_marks() {
    use super::routes::globs_overlap;
    assert!(globs_overlap("Sprint *", "Sprint 1"));
    assert!(globs_overlap("sprint ?", "SPRINT 2"));
    assert!(globs_overlap("Sprint 1*", "*2"));
    assert!(globs_overlap("*", "Bugs"));
    assert!(globs_overlap("a*b", "*c*"));
    assert!(!globs_overlap("Bugs", "Sprint *"));
    assert!(!globs_overlap("Sprint ?", "Sprint 10"));
    assert!(!globs_overlap("a*b", "*c"));
    assert!(!globs_overlap("Release ?", "Release"));
}

#[test]
fn regex_like_list_patterns_are_warned_about_with_the_glob_they_likely_meant() {
    let text = MINIMAL.replace(
        "jira_project = \"WEB\"\n",
        "jira_project = \"WEB\"\ntodolists = [\"Release.*\", \"^Bugs$\", \"[Client] Tasks\"]\n",
    );
    let found = warnings(&text);
    let line = line_of(&text, "Release.*");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with(&format!(
            "campbridge.toml:{line}: route \"web\": todolists pattern \"Release.*\" looks like a regular expression"
        )),
        "{found:?}"
    );
    assert!(found[0].contains("did you mean \"Release*\"?"), "{found:?}");
    assert!(found[1].contains("did you mean \"Bugs\"?"), "{found:?}");
    let classes = MINIMAL.replace(
        "jira_project = \"WEB\"\n",
        "jira_project = \"WEB\"\n\n[[routes.lists]]\nlist = \"Sprint [0-9]+\"\nlabels = [\"sprint\"]\n",
    );
    let found = warnings(&classes);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("list pattern \"Sprint [0-9]+\"") && !found[0].contains("did you mean"), "{found:?}");
}

#[test]
fn a_jira_site_with_a_path_is_warned_about_with_its_line() {
    let text = MINIMAL.replace("https://team.atlassian.net", "https://team.atlassian.net/jira/software/projects");
    let found = warnings(&text);
    let line = line_of(&text, "site =");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with(&format!("campbridge.toml:{line}: [jira] site")), "{found:?}");
    assert!(found[0].contains("has a path (/jira/software/projects)"), "{found:?}");
    assert!(warnings(&MINIMAL.replace("atlassian.net\"", "atlassian.net/\"")).is_empty(), "a bare slash is no path");
}

#[test]
fn the_redirect_uri_must_be_plain_http_on_loopback_with_a_port() {
    let config = parse_ok(MINIMAL);
    assert_eq!(config.basecamp.unwrap().redirect_uri.as_str(), DEFAULT_REDIRECT_URI);
    let with = |uri: &str| {
        MINIMAL.replace(
            "access_token = { secret = \"bc-token\" }",
            &format!("access_token = {{ secret = \"bc-token\" }}\nredirect_uri = {uri:?}"),
        )
    };
    let ok = parse_ok(&with("http://localhost:7777/oauth/done"));
    assert_eq!(ok.basecamp.unwrap().redirect_uri.port(), Some(7777));
    for (uri, problem) in [
        ("https://127.0.0.1:7777/cb", "must be http"),
        ("http://example.com:7777/cb", "must be on 127.0.0.1"),
        ("http://10.0.0.1:7777/cb", "must be on 127.0.0.1"),
        ("http://127.0.0.1/cb", "needs an explicit port"),
        ("not a url", "is not a URL"),
    ] {
        let text = with(uri);
        let found = problems(&text);
        let line = line_of(&text, "redirect_uri");
        assert_eq!(found.len(), 1, "{uri}: {found:?}");
        assert!(found[0].starts_with(&format!("campbridge.toml:{line}: [basecamp] redirect_uri")), "{found:?}");
        assert!(found[0].contains(problem), "{uri}: {found:?}");
    }
}

#[test]
fn the_silence_bound_takes_a_duration_and_is_off_by_default() {
    assert_eq!(parse_ok(MINIMAL).server.max_silence, None);
    let with = |v: &str| MINIMAL.replace("[server]\n", &format!("[server]\nmax_silence = {v:?}\n"));
    assert_eq!(parse_ok(&with("6h")).server.max_silence, Some(Duration::from_secs(6 * 3600)));
    assert_eq!(parse_ok(&with("2d")).server.max_silence, Some(Duration::from_secs(2 * 86_400)));
    assert_eq!(parse_ok(&with("off")).server.max_silence, None);
    for bad in ["6", "0h", "soon"] {
        let found = problems(&with(bad));
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert!(found[0].starts_with("campbridge.toml:2: [server] max_silence"), "{found:?}");
    }
}

#[test]
fn every_secret_the_config_names_is_listed_once_with_its_purpose() {
    let config = parse_ok(EXAMPLE);
    let names: Vec<(&str, &str)> = config.secrets().into_iter().map(|(what, r)| (what, r.name())).collect();
    assert_eq!(
        names,
        [
            ("webhook key", "webhook-key"),
            ("Basecamp access token", "basecamp-access-token"),
            ("Basecamp OAuth client secret", "basecamp-client-secret"),
            ("Basecamp refresh token", "basecamp-refresh-token"),
            ("Jira API token", "jira-api-token"),
            ("Jira webhook secret", "jira-webhook-secret"),
            ("Bitbucket API token", "bitbucket-api-token"),
            ("Bitbucket webhook secret", "bitbucket-webhook-secret"),
        ]
    );
}

#[test]
fn pacing_defaults_to_each_upstreams_budget_and_takes_requests_per_window_or_off() {
    use std::time::Duration;
    let defaults = parse_ok(MINIMAL).pacing;
    assert_eq!(defaults, PacingConfig::default());
    assert_eq!(defaults.basecamp, Some(Budget::new(45, Duration::from_secs(10))), "below Basecamp's 50 / 10 s");
    assert_eq!(defaults.bitbucket, Some(Budget::new(900, Duration::from_secs(3600))), "below 1,000 / hour");
    let text = format!("{MINIMAL}\n[pacing]\nbasecamp = \"off\"\njira = \"5/1s\"\njira_issue_writes = \"2/10s\"\n");
    let pacing = parse_ok(&text).pacing;
    assert_eq!(pacing.basecamp, None);
    assert_eq!(pacing.jira, Some(Budget::new(5, Duration::from_secs(1))));
    assert_eq!(pacing.jira_issue_writes, Some(Budget::new(2, Duration::from_secs(10))));
    assert_eq!(pacing.bitbucket, defaults.bitbucket, "an absent key keeps its default");

    let text = format!("{MINIMAL}\n[pacing]\njira = \"fast\"\nbasecam = \"off\"\n");
    let line = text.lines().position(|l| l.starts_with("jira = \"fast\"")).unwrap() + 1;
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(
        p.iter().any(|e| e
            .starts_with(&format!("campbridge.toml:{line}: [pacing] jira \"fast\" is not a budget like \"45/10s\""))),
        "{p:#?}"
    );
    assert!(p.iter().any(|e| e.contains("basecam")), "an unknown key is named: {p:#?}");
}
