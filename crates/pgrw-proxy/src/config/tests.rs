//! The configuration's defaults and every refusal, with the key it names.

use super::*;
use pgrw_core::route::{Balancing, Consistency, Policy, PrimaryReads, StaleRead};

const MINIMAL: &str = r#"
    [[nodes]]
    name = "primary"
    port = 5432

    [[users]]
    name = "postgres"
    password = "secret"
"#;

fn parse(text: &str) -> Result<ProxyConfig, ConfigError> {
    ProxyConfig::from_toml("pgrw.toml", text)
}

fn error_text(text: &str) -> String {
    parse(text).expect_err("the config is refused").to_string()
}

#[test]
fn a_minimal_config_gets_the_documented_defaults() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.listen, "127.0.0.1:6432");
    assert_eq!(config.login_timeout(), Duration::from_secs(60));
    assert_eq!(config.max_client_connections, 10_000);
    assert_eq!(config.shutdown_timeout(), Duration::from_secs(30));
    assert_eq!(config.pool.stall_timeout(), Duration::from_secs(10));
    assert_eq!(config.nodes[0].host, "127.0.0.1");
    assert_eq!(config.users[0].auth, AuthMethod::ScramSha256);
    assert_eq!(config.pool, PoolConfig::default());
    assert_eq!(config.pool.size, 20);
    assert_eq!(config.pool.idle_timeout(), Duration::from_secs(300));
    assert_eq!(config.pool.mode, PoolMode::Transaction);
    // The core's policy, except that a read waits a little for a replica to
    // replay what it must see (under a write load, nearly every read must).
    assert_eq!(
        config.policy.policy(),
        Policy {
            stale_read: StaleRead::Wait(Duration::from_millis(50)),
            ..Policy::default()
        }
    );
    assert_eq!(config.policy.consistency(), Consistency::Proxy);
}

#[test]
fn the_consistency_scopes_are_spelled_in_snake_case() {
    for (spelling, scope) in [
        ("proxy", Consistency::Proxy),
        ("connection", Consistency::Connection),
        ("bounded", Consistency::Bounded),
        ("linearizable", Consistency::Linearizable),
    ] {
        let config = parse(&format!(
            "{MINIMAL}\n[policy]\nconsistency = \"{spelling}\"\n"
        ))
        .unwrap();
        assert_eq!(config.policy.consistency(), scope);
        assert_eq!(
            config.policy.policy().read_your_writes,
            scope != Consistency::Bounded
        );
    }
    let older = parse(&format!("{MINIMAL}\n[policy]\nread_your_writes = false\n")).unwrap();
    assert_eq!(older.policy.consistency(), Consistency::Bounded);
    assert!(
        error_text(&format!("{MINIMAL}\n[policy]\nconsistency = \"strong\"\n"))
            .contains("consistency")
    );
}

#[test]
fn every_section_can_be_set() {
    let config = parse(&format!(
        "{MINIMAL}
        [pool]
        size = 5
        mode = \"session\"
        idle_timeout_secs = 10
        [policy]
        balancing = \"round_robin\"
        primary_reads = \"never\"
        max_lag_bytes = 1000
        read_your_writes_wait_ms = 50
        "
    ))
    .unwrap();
    assert_eq!((config.pool.size, config.pool.mode), (5, PoolMode::Session));
    let policy = config.policy.policy();
    assert_eq!(policy.balancing, Balancing::RoundRobin);
    assert_eq!(policy.primary_reads, PrimaryReads::Never);
    assert_eq!(policy.max_lag_bytes, Some(1000));
    assert_eq!(
        policy.stale_read,
        StaleRead::Wait(Duration::from_millis(50))
    );
}

#[test]
fn the_auth_methods_are_spelled_as_in_pg_hba() {
    for (spelling, method) in [
        ("scram-sha-256", AuthMethod::ScramSha256),
        ("md5", AuthMethod::Md5),
        ("trust", AuthMethod::Trust),
    ] {
        let text = MINIMAL.replace(
            "password = \"secret\"",
            &format!("password = \"secret\"\nauth = \"{spelling}\""),
        );
        assert_eq!(parse(&text).unwrap().users[0].auth, method);
    }
}

#[test]
fn an_unknown_key_is_named() {
    let text = error_text(&format!("{MINIMAL}\n[pool]\nsise = 3\n"));
    assert!(text.contains("sise"), "{text}");
}

#[test]
fn a_config_without_nodes_says_how_to_add_one() {
    let text = error_text("[[users]]\nname = \"a\"\npassword = \"b\"\n");
    assert!(
        text.contains("`nodes`") && text.contains("[[nodes]]"),
        "{text}"
    );
}

#[test]
fn a_config_without_users_says_how_to_add_one() {
    let text = error_text("[[nodes]]\nname = \"p\"\nport = 5432\n");
    assert!(
        text.contains("`users`") && text.contains("[[users]]"),
        "{text}"
    );
}

#[test]
fn a_pool_size_of_zero_is_refused_with_the_key() {
    let text = error_text(&format!("{MINIMAL}\n[pool]\nsize = 0\n"));
    assert!(
        text.contains("`pool.size`") && text.contains("fix"),
        "{text}"
    );
}

#[test]
fn a_login_timeout_of_zero_is_refused_with_the_key() {
    let text = error_text(&format!("login_timeout_ms = 0\n{MINIMAL}"));
    assert!(
        text.contains("`login_timeout_ms`") && text.contains("positive"),
        "{text}"
    );
    let config = parse(&format!("login_timeout_ms = 1500\n{MINIMAL}")).unwrap();
    assert_eq!(config.login_timeout(), Duration::from_millis(1500));
}

#[test]
fn a_stall_timeout_of_zero_is_refused_with_the_key() {
    let text = error_text(&format!("{MINIMAL}\n[pool]\nstall_timeout_ms = 0\n"));
    assert!(text.contains("`pool.stall_timeout_ms`"), "{text}");
}

#[test]
fn a_shutdown_timeout_of_zero_closes_every_client_at_once_and_is_allowed() {
    let config = parse(&format!("shutdown_timeout_ms = 0\n{MINIMAL}")).unwrap();
    assert_eq!(config.shutdown_timeout(), Duration::ZERO);
}

#[test]
fn a_bad_listen_address_is_refused_with_an_example() {
    let text = error_text(&format!("listen = \"localhost\"\n{MINIMAL}"));
    assert!(
        text.contains("`listen`") && text.contains("127.0.0.1:6432"),
        "{text}"
    );
}

#[test]
fn two_nodes_with_one_name_are_refused() {
    let text = error_text(&format!(
        "{MINIMAL}\n[[nodes]]\nname = \"primary\"\nport = 5433\n"
    ));
    assert!(text.contains("`nodes[1].name`"), "{text}");
}

#[test]
fn a_node_without_a_port_is_refused_by_name() {
    let text = error_text("[[nodes]]\nname = \"p\"\n[[users]]\nname = \"a\"\npassword = \"b\"\n");
    assert!(text.contains("port"), "{text}");
}

#[test]
fn an_unknown_auth_method_is_refused() {
    let text = error_text(&MINIMAL.replace(
        "password = \"secret\"",
        "password = \"secret\"\nauth = \"ldap\"",
    ));
    assert!(
        text.contains("ldap") && text.contains("scram-sha-256"),
        "{text}"
    );
}

#[test]
fn the_debug_form_hides_passwords() {
    let config = parse(MINIMAL).unwrap();
    assert!(!format!("{config:?}").contains("secret"));
}

#[test]
fn replicas_more_than_five_seconds_behind_serve_no_reads_unless_zero_turns_the_limit_off() {
    let default = parse(MINIMAL).unwrap().policy.policy();
    assert_eq!(default.max_lag, Some(Duration::from_secs(5)));
    assert_eq!(default.max_lag_bytes, None);
    let off = parse(&format!(
        "{MINIMAL}
        [policy]
        max_lag_ms = 0
        max_lag_bytes = 0
        "
    ))
    .unwrap()
    .policy
    .policy();
    assert_eq!((off.max_lag, off.max_lag_bytes), (None, None));
}

const NODE: &str = "[[nodes]]\nname = \"primary\"\nport = 5432\n";

#[test]
fn the_limits_have_safe_defaults() {
    let limits = parse(MINIMAL).unwrap().limits;
    assert_eq!(limits.max_message_bytes, 256 << 20);
    assert_eq!(limits.max_pending_logins, 256);
    assert_eq!(limits.idle_client_timeout(), None);
    assert_eq!(limits.idle_in_transaction_timeout(), None);
    assert_eq!(limits.max_failed_logins, 20);
}

#[test]
fn a_message_limit_outside_one_kibibyte_to_one_gibibyte_is_refused() {
    for value in ["100", "2000000000"] {
        let text = format!("{MINIMAL}\n[limits]\nmax_message_bytes = {value}\n");
        assert!(
            error_text(&text).contains("limits.max_message_bytes"),
            "{value}"
        );
    }
}

#[test]
fn a_password_is_read_from_the_environment_variable_named() {
    // PATH is set wherever tests run (setting a variable needs unsafe).
    let text = format!("{NODE}[[users]]\nname = \"u\"\npassword_env = \"PATH\"\n");
    assert_eq!(
        parse(&text).unwrap().users[0].password,
        std::env::var("PATH").unwrap()
    );
    let unset = format!("{NODE}[[users]]\nname = \"u\"\npassword_env = \"PGRW_TEST_UNSET_VAR\"\n");
    assert!(error_text(&unset).contains("users[0].password_env"));
}

#[test]
fn a_password_is_read_from_the_first_line_of_the_file_named() {
    let path = std::env::temp_dir().join(format!("pgrw-password-{}", std::process::id()));
    std::fs::write(&path, "from-file\nignored\n").unwrap();
    let text = format!(
        "{NODE}[[users]]\nname = \"u\"\npassword_file = {:?}\n",
        path.display().to_string()
    );
    let config = parse(&text);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(config.unwrap().users[0].password, "from-file");
}

#[test]
fn two_password_sources_for_one_user_are_refused() {
    let text = format!("{NODE}[[users]]\nname = \"u\"\npassword = \"a\"\npassword_env = \"B\"\n");
    assert!(error_text(&text).contains("more than once"));
}

const VERIFIER: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

#[test]
fn a_scram_verifier_checks_clients_but_is_never_sent_to_a_node() {
    let text = format!("{NODE}[[users]]\nname = \"u\"\npassword = {VERIFIER:?}\n");
    let user = parse(&text).unwrap().users.remove(0);
    assert_eq!(
        user.scram_verifier().map(|v| v.to_string()),
        Some(VERIFIER.to_string())
    );
    assert_eq!(user.node_password(), "");
}

#[test]
fn a_scram_verifier_cannot_check_md5_logins() {
    let text = format!("{NODE}[[users]]\nname = \"u\"\npassword = {VERIFIER:?}\nauth = \"md5\"\n");
    assert!(error_text(&text).contains("users[0].auth"));
}

#[test]
fn a_broken_verifier_is_refused_without_showing_it() {
    let broken = "SCRAM-SHA-256$4096:c2FsdA==$secretpart";
    let text = format!("{NODE}[[users]]\nname = \"u\"\npassword = {broken:?}\n");
    let error = error_text(&text);
    assert!(error.contains("users[0].password"), "{error}");
    assert!(!error.contains("secretpart"), "{error}");
}

#[test]
fn the_configuration_debug_form_never_shows_a_password() {
    let config = parse(MINIMAL).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("secret"), "{debug}");
    let text = format!("{NODE}[[users]]\nname = \"u\"\npassword = {VERIFIER:?}\n");
    let debug = format!("{:?}", parse(&text).unwrap());
    assert!(!debug.contains("W22ZaJ0SNY7soEsUEjb6gQ"), "{debug}");
}

#[test]
fn admins_and_the_metrics_listener_are_off_unless_configured() {
    let config = parse(MINIMAL).unwrap();
    assert!(!config.users[0].admin);
    assert_eq!(config.admin.metrics_listen, None);

    let text = format!("{MINIMAL}admin = true\n[admin]\nmetrics_listen = \"127.0.0.1:9930\"\n");
    let config = parse(&text).unwrap();
    assert!(config.users[0].admin);
    assert_eq!(
        config.admin.metrics_listen.as_deref(),
        Some("127.0.0.1:9930")
    );
}

#[test]
fn a_metrics_listener_that_is_not_an_address_is_refused_by_key() {
    let text = format!("{MINIMAL}[admin]\nmetrics_listen = \"localhost\"\n");
    assert!(error_text(&text).contains("`admin.metrics_listen`"));
}

#[test]
fn nodes_default_to_sslmode_prefer_as_libpq() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.nodes[0].sslmode, SslMode::Prefer);
    assert_eq!(config.nodes[0].sslrootcert, None);
}

#[test]
fn verify_full_without_a_ca_file_names_the_nodes_key() {
    let text =
        error_text(&MINIMAL.replace("port = 5432", "port = 5432\nsslmode = \"verify-full\""));
    assert!(
        text.contains("`nodes[0].sslrootcert`") && text.contains("fix:"),
        "{text}"
    );
}

#[test]
fn an_unknown_sslmode_is_refused_with_the_spellings() {
    let text = error_text(&MINIMAL.replace("port = 5432", "port = 5432\nsslmode = \"allow\""));
    assert!(text.contains("verify-full"), "{text}");
}

#[test]
fn a_ca_file_that_cannot_be_read_is_named_at_load() {
    let config = parse(&MINIMAL.replace(
        "port = 5432",
        "port = 5432\nsslmode = \"verify-ca\"\nsslrootcert = \"/nonexistent/ca.pem\"",
    ))
    .unwrap();
    let text = config.node_tls().unwrap_err().to_string();
    assert!(
        text.contains("`nodes[0].sslrootcert`") && text.contains("/nonexistent/ca.pem"),
        "{text}"
    );
}

const TWO_NODES: &str = r#"
[[nodes]]
name = "primary"
port = 5432

[[nodes]]
name = "replica1"
port = "5433"

[[users]]
name = "postgres"
password = "secret"
"#;

#[test]
fn a_value_of_the_wrong_type_names_its_key_path_line_and_fix() {
    let text = error_text(TWO_NODES);
    assert!(
        text.starts_with("pgrw.toml: `nodes[1].port`: invalid type")
            && text.contains("line 8")
            && text.contains("fix:"),
        "{text}"
    );
}

#[test]
fn a_missing_key_names_its_key_path() {
    let text = error_text(&TWO_NODES.replace("port = \"5433\"\n", ""));
    assert!(text.contains("`nodes[1].port`: missing field"), "{text}");
}

#[test]
fn an_unknown_key_names_its_table_and_the_keys_it_takes() {
    let text = error_text(&format!("{MINIMAL}\n[pool]\nsise = 3\n"));
    assert!(
        text.contains("`pool.sise`: unknown field") && text.contains("expected"),
        "{text}"
    );
}

#[test]
fn text_that_is_not_toml_keeps_the_parsers_line_and_caret() {
    let text = error_text("listen = \n");
    assert!(text.contains("line 1"), "{text}");
}
