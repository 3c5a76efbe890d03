//! Function calls judged by the function catalog.

use pgrw_core::catalog::Volatility;
use pgrw_core::sql::classify::{Effect, classify};
use pgrw_core::{Classification, FunctionCatalog, StatementClass};

fn verdict_with(sql: &str, catalog: &FunctionCatalog) -> Classification {
    classify(sql.as_bytes(), catalog)
}

fn verdict(sql: &str) -> Classification {
    verdict_with(sql, &FunctionCatalog::builtin())
}

#[test]
fn nextval_in_select_goes_to_primary() {
    let c = verdict("SELECT nextval('users_id_seq')");
    assert_eq!(c.class, StatementClass::Write);
    assert_eq!(c.reason.to_string(), "function nextval writes");
    assert!(c.effects.contains(Effect::SEQUENCE));
}

#[test]
fn schema_qualified_nextval_goes_to_primary() {
    assert_eq!(
        verdict("SELECT pg_catalog.nextval('s')").class,
        StatementClass::Write
    );
    assert_eq!(
        verdict(r#"SELECT "pg_catalog"."nextval"('s')"#).class,
        StatementClass::Write
    );
}

#[test]
fn uppercase_function_name_is_folded() {
    assert_eq!(
        verdict("SELECT NEXTVAL('s')").reason.to_string(),
        "function nextval writes"
    );
}

#[test]
fn currval_and_lastval_go_to_primary() {
    assert_eq!(verdict("SELECT currval('s')").class, StatementClass::Write);
    assert_eq!(verdict("SELECT lastval()").class, StatementClass::Write);
}

#[test]
fn function_in_from_clause_is_judged() {
    assert_eq!(
        verdict("SELECT * FROM nextval('s')").class,
        StatementClass::Write
    );
}

#[test]
fn session_advisory_lock_pins_the_session() {
    let c = verdict("SELECT pg_advisory_lock(42)");
    assert_eq!(c.class, StatementClass::Write);
    assert_eq!(
        c.reason.to_string(),
        "function pg_advisory_lock takes a lock"
    );
    assert!(c.effects.contains(Effect::ADVISORY_LOCK));
    assert!(c.effects.pins_session());
}

#[test]
fn transaction_advisory_lock_does_not_pin_the_session() {
    let c = verdict("SELECT pg_try_advisory_xact_lock(42)");
    assert_eq!(c.class, StatementClass::Write);
    assert!(c.effects.contains(Effect::ADVISORY_XACT_LOCK));
    assert!(!c.effects.pins_session());
}

#[test]
fn txid_current_goes_to_primary() {
    assert_eq!(
        verdict("SELECT txid_current()").class,
        StatementClass::Write
    );
    assert_eq!(
        verdict("SELECT pg_current_xact_id()").class,
        StatementClass::Write
    );
}

#[test]
fn large_object_functions_go_to_primary() {
    assert_eq!(
        verdict("SELECT lo_import('/tmp/x')").class,
        StatementClass::Write
    );
}

#[test]
fn pg_notify_goes_to_primary() {
    assert_eq!(
        verdict("SELECT pg_notify('ch', 'payload')").class,
        StatementClass::Write
    );
}

#[test]
fn set_config_for_the_session_goes_to_primary() {
    let c = verdict("SELECT set_config('search_path', 'app', false)");
    assert_eq!(c.class, StatementClass::Write);
    assert_eq!(
        c.reason.to_string(),
        "function set_config changes session state"
    );
    assert!(c.effects.contains(Effect::SET_CONFIG));
}

#[test]
fn set_config_with_computed_is_local_goes_to_primary() {
    assert_eq!(
        verdict("SELECT set_config('a.b', 'x', 1 = 1)").class,
        StatementClass::Write
    );
}

#[test]
fn set_config_local_to_the_transaction_is_read() {
    let c = verdict("SELECT set_config('app.user_id', '42', true)");
    assert_eq!(c.class, StatementClass::Read);
    assert!(c.effects.contains(Effect::SET_LOCAL));
}

#[test]
fn unknown_user_function_goes_to_primary() {
    let c = verdict("SELECT my_report(1)");
    assert_eq!(c.class, StatementClass::Write);
    assert_eq!(
        c.reason.to_string(),
        "function my_report is unknown (volatile by default)"
    );
}

#[test]
fn volatile_user_function_goes_to_primary() {
    let mut catalog = FunctionCatalog::builtin();
    catalog.add_user_function("public", "bump", Volatility::Volatile);
    assert_eq!(
        verdict_with("SELECT public.bump()", &catalog)
            .reason
            .to_string(),
        "function bump is volatile"
    );
}

#[test]
fn stable_user_function_is_read() {
    let mut catalog = FunctionCatalog::builtin();
    catalog.add_user_function("app", "price", Volatility::Stable);
    assert_eq!(
        verdict_with("SELECT app.price(id) FROM items", &catalog).class,
        StatementClass::Read
    );
}

#[test]
fn force_read_only_function_is_read() {
    let mut catalog = FunctionCatalog::builtin();
    catalog.force_read_only("my_report");
    assert_eq!(
        verdict_with("SELECT my_report(1)", &catalog).class,
        StatementClass::Read
    );
}

#[test]
fn force_primary_builtin_goes_to_primary() {
    let mut catalog = FunctionCatalog::builtin();
    catalog.force_primary("now");
    assert_eq!(
        verdict_with("SELECT now()", &catalog).class,
        StatementClass::Write
    );
}

#[test]
fn trusted_unknown_function_is_read() {
    let mut catalog = FunctionCatalog::builtin();
    catalog.trust_unknown_functions(true);
    assert_eq!(
        verdict_with("SELECT my_report(1)", &catalog).class,
        StatementClass::Read
    );
}

#[test]
fn unicode_escaped_function_name_goes_to_primary() {
    let c = verdict(r#"SELECT U&"\006Eextval"('s')"#);
    assert_eq!(c.class, StatementClass::Write);
}

#[test]
fn quoted_mixed_case_function_is_not_the_builtin() {
    assert_eq!(
        verdict(r#"SELECT "Lower"('a')"#).class,
        StatementClass::Write
    );
}

#[test]
fn nested_call_arguments_are_judged() {
    assert_eq!(
        verdict("SELECT coalesce(max(id), nextval('s')) FROM t").class,
        StatementClass::Write
    );
}

#[test]
fn insert_using_nextval_reports_the_write_and_the_sequence_effect() {
    let c = verdict("INSERT INTO t (id) VALUES (nextval('s'))");
    assert_eq!(c.reason.to_string(), "writes: INSERT");
    assert!(c.effects.contains(Effect::SEQUENCE));
}

#[test]
fn user_operator_goes_to_primary() {
    let c = verdict("SELECT a === b FROM t");
    assert_eq!(c.class, StatementClass::Write);
    assert_eq!(c.reason.to_string(), "operator === is not built in");
}

#[test]
fn allowed_extension_operator_is_read() {
    let mut catalog = FunctionCatalog::builtin();
    catalog.allow_operator("===");
    assert_eq!(
        verdict_with("SELECT a === b FROM t", &catalog).class,
        StatementClass::Read
    );
}

#[test]
fn operator_construct_with_a_user_schema_goes_to_primary() {
    let c = verdict("SELECT 1 OPERATOR(app.+) 2");
    assert_eq!(c.class, StatementClass::Write);
    assert_eq!(c.reason.to_string(), "operator app is not built in");
}

#[test]
fn operator_construct_with_a_builtin_operator_is_read() {
    assert_eq!(
        verdict("SELECT 1 OPERATOR(pg_catalog.+) 2").class,
        StatementClass::Read
    );
}

#[test]
fn txid_current_snapshot_is_read() {
    assert_eq!(
        verdict("SELECT txid_current_snapshot()").class,
        StatementClass::Read
    );
}

#[test]
fn explain_of_nextval_without_analyze_is_read() {
    assert_eq!(
        verdict("EXPLAIN SELECT nextval('s')").class,
        StatementClass::Read
    );
}

#[test]
fn named_arguments_are_not_operators() {
    assert_eq!(
        verdict("SELECT make_interval(days => 1)").class,
        StatementClass::Read
    );
}

#[test]
fn comment_between_name_and_parenthesis_does_not_hide_a_call() {
    assert_eq!(
        verdict("SELECT nextval/* x */ ('s')").class,
        StatementClass::Write
    );
}

#[test]
fn quoted_lowercase_builtin_name_is_the_builtin() {
    assert_eq!(
        verdict(r#"SELECT "set_config"('a.b', 'x', false)"#).class,
        StatementClass::Write
    );
}

#[test]
fn user_schema_qualified_builtin_name_goes_to_primary() {
    assert_eq!(
        verdict("SELECT public.nextval('s')").class,
        StatementClass::Write
    );
}

#[test]
fn call_disguised_as_a_cte_column_list_goes_to_primary() {
    let c = verdict("WITH a AS (SELECT 1), nextval ('s') AS (SELECT 2) SELECT 1");
    assert_eq!(c.class, StatementClass::Write);
}

#[test]
fn call_after_time_zone_type_is_still_a_call() {
    assert_eq!(
        verdict("SELECT x::timestamp with time zone, nextval('s') FROM t").class,
        StatementClass::Write
    );
}

#[test]
fn unreserved_keyword_followed_by_a_parenthesis_is_a_call() {
    assert_eq!(
        verdict("SELECT * FROM t WHERE recursive (1)").class,
        StatementClass::Write
    );
}

#[test]
fn qualified_reserved_word_is_a_call() {
    assert_eq!(
        verdict("SELECT t.all($1) FROM t").class,
        StatementClass::Write
    );
    assert_eq!(
        verdict("SELECT * FROM t WHERE t. IN (1)").class,
        StatementClass::Write
    );
}

#[test]
fn join_after_a_table_and_like_after_an_operand_are_grammar() {
    assert_eq!(
        verdict("SELECT * FROM a JOIN (SELECT 1) b ON true").class,
        StatementClass::Read
    );
    assert_eq!(
        verdict("SELECT * FROM a LEFT JOIN (SELECT 1) b ON true").class,
        StatementClass::Read
    );
    assert_eq!(
        verdict("SELECT * FROM t WHERE name LIKE ('a%')").class,
        StatementClass::Read
    );
}

#[test]
fn infix_keyword_in_call_position_is_a_call() {
    assert_eq!(
        verdict("SELECT * FROM t WHERE x = join(1)").class,
        StatementClass::Write
    );
}

#[test]
fn character_varying_length_is_a_type() {
    assert_eq!(
        verdict("SELECT x::character varying(20) FROM t").class,
        StatementClass::Read
    );
}

#[test]
fn infix_keyword_after_an_infix_keyword_is_a_call() {
    assert_eq!(
        verdict("SELECT * FROM t WHERE a LIKE like('a')").class,
        StatementClass::Write
    );
}

#[test]
fn grouping_sets_rollup_and_cube_in_group_by_are_grammar() {
    assert_eq!(
        verdict("SELECT * FROM t GROUP BY GROUPING SETS ((a), (b), ())").class,
        StatementClass::Read
    );
    assert_eq!(
        verdict("SELECT a FROM t GROUP BY ROLLUP (a)").class,
        StatementClass::Read
    );
    assert_eq!(
        verdict("SELECT a FROM t ORDER BY cube(a)").class,
        StatementClass::Write
    );
}

#[test]
fn a_call_right_after_an_operator_construct_is_judged() {
    assert_primary("SELECT 1 OPERATOR(pg_catalog.+) nextval('s')");
    assert_primary(
        "SELECT c.relname FROM pg_class c WHERE c.relname OPERATOR(pg_catalog.~) pg_notify('c', 'p')",
    );
}

#[test]
fn a_function_named_operator_is_a_call_not_an_operator_construct() {
    assert_primary("SELECT * FROM operator(1)");
    assert_primary("SELECT * FROM operator()");
}

#[test]
fn psql_style_operator_construct_with_a_literal_stays_a_read() {
    assert_replica(
        "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(users)$' COLLATE pg_catalog.default",
    );
}

fn assert_primary(sql: &str) {
    let c = verdict(sql);
    assert_eq!(c.class, StatementClass::Write, "{sql}: {}", c.reason);
}

fn assert_replica(sql: &str) {
    let c = verdict(sql);
    assert!(c.replica_eligible(), "{sql}: {}", c.reason);
}

#[test]
fn a_keyword_named_call_after_an_operator_construct_is_a_call() {
    assert_primary("SELECT OPERATOR(pg_catalog.+) like('a')");
    assert_primary("SELECT * FROM t WHERE a LIKE OPERATOR(pg_catalog.~) like('a')");
    assert_replica("SELECT * FROM t WHERE a LIKE ('a')");
}

#[test]
fn asking_the_server_about_itself_goes_to_the_primary() {
    for sql in [
        "SELECT pg_is_in_recovery()",
        "SELECT pg_backend_pid()",
        "SELECT pg_catalog.pg_backend_pid()",
        "SELECT pg_last_wal_replay_lsn()",
        "SELECT pg_last_xact_replay_timestamp()",
        "SELECT pg_current_wal_lsn()",
        "SELECT pg_blocking_pids(42)",
        "SELECT pg_stat_get_backend_pid(1)",
        "SELECT * FROM pg_lock_status()",
    ] {
        assert_primary(sql);
    }
    let c = verdict("SELECT pg_is_in_recovery()");
    assert_eq!(
        c.reason.to_string(),
        "function pg_is_in_recovery asks about this server (the primary answers)"
    );
}

#[test]
fn a_replica_hint_asks_a_replica_about_itself_on_purpose() {
    assert_replica("/* pgrw:replica */ SELECT pg_backend_pid()");
    assert_replica("/* pgrw:replica */ SELECT count(*) FROM pg_prepared_xacts");
    // …but never hides a write next to it.
    assert_primary("/* pgrw:replica */ SELECT pg_backend_pid(), nextval('s')");
    assert_primary("/* pgrw:replica */ SELECT * FROM pg_locks FOR UPDATE");
}

#[test]
fn where_a_statement_ran_stays_observable_on_a_replica() {
    // Tests and operators read these to see which node served a read.
    assert_replica("SELECT inet_server_port(), inet_server_addr()");
    assert_replica("SELECT current_setting('port'), inet_client_port()");
}

#[test]
fn reading_node_local_views_goes_to_the_primary() {
    for sql in [
        "SELECT count(*) FROM pg_prepared_xacts",
        "SELECT gid FROM pg_catalog.pg_prepared_xacts",
        "SELECT * FROM pg_locks WHERE locktype = 'advisory'",
        "select pid, state from PG_STAT_ACTIVITY",
        "SELECT * FROM pg_stat_replication",
        "SELECT * FROM pg_replication_slots",
        "SELECT * FROM pg_stat_wal_receiver",
        "SELECT * FROM pg_stat_user_tables",
        "SELECT * FROM pg_statio_user_tables",
        r#"SELECT * FROM "pg_locks""#,
        "SELECT name FROM pg_prepared_statements",
    ] {
        let c = verdict(sql);
        assert_eq!(c.class, StatementClass::Write, "{sql}: {}", c.reason);
        assert!(
            c.reason.to_string().starts_with("asks about this server"),
            "{sql}: {}",
            c.reason
        );
    }
    // Replicated catalogs and statistics about data are the same everywhere.
    assert_replica("SELECT * FROM pg_stats WHERE tablename = 't'");
    assert_replica("SELECT * FROM pg_statistic_ext");
    assert_replica("SELECT * FROM pg_class");
    assert_replica(r#"SELECT * FROM "PG_LOCKS""#);
}

#[test]
fn the_read_only_state_of_a_transaction_is_asked_of_the_primary() {
    assert_primary("SELECT current_setting('transaction_read_only')");
    assert_primary("SELECT pg_catalog.current_setting('TRANSACTION_READ_ONLY')");
    assert_primary("SELECT current_setting('in_hot_standby')");
    assert_primary("SELECT name, current_setting(name) FROM pg_settings");
    assert_primary("SHOW transaction_read_only");
    assert_primary("SHOW in_hot_standby");
    assert_primary("SHOW ALL");
    assert_replica("SELECT current_setting('search_path')");
    assert_replica("SHOW search_path");
}

#[test]
fn explaining_a_node_local_read_only_plans_it() {
    assert_replica("EXPLAIN SELECT * FROM pg_locks");
}

#[test]
fn a_function_named_with_unicode_escapes_is_a_write() {
    assert_primary(r#"SELECT U&"!006eextval" UESCAPE '!' ('rt_seq')"#);
    assert_primary(r#"SELECT U&"\0073etval"('rt_seq', 1)"#);
    assert_primary(r#"SELECT U&"\006Cower"('A')"#);
    assert_primary(r#"SELECT U&"pg!005fcatalog" UESCAPE '!'.nextval('s')"#);
    assert_primary(r#"SELECT U&"pg!005fcatalog" UESCAPE '!'.lower('s')"#);
    let c = verdict(r#"SELECT U&"!006eextval" UESCAPE '!' ('rt_seq')"#);
    assert!(!c.reason.hint_may_override(), "{}", c.reason);
    // An escaped column name is no call.
    assert_replica(r#"SELECT U&"d\0061ta" FROM t"#);
}

#[test]
fn a_builtin_name_qualified_to_another_schema_is_unknown() {
    assert_primary("SELECT public.lower('A')");
    assert_primary("SELECT shadow.upper(name) FROM users");
    assert_replica("SELECT pg_catalog.lower('A')");
}

/// `public.lower(int)` that inserts: an unqualified `lower(…)` may be it
/// (the classifier does not resolve overloads), so the primary runs it.
#[test]
fn a_volatile_overload_of_a_builtin_name_sends_the_call_to_the_primary() {
    let mut catalog = FunctionCatalog::builtin();
    catalog.add_user_function("public", "lower", Volatility::Volatile);
    let c = verdict_with("SELECT lower(5)", &catalog);
    assert_eq!(c.class, StatementClass::Write);
    assert_eq!(c.reason.to_string(), "function lower is volatile");
    assert_eq!(
        verdict_with("SELECT pg_catalog.lower('A')", &catalog).class,
        StatementClass::Read
    );
}

/// `shadow.upper(text)` that writes, reached through `search_path`: the
/// classifier does not know the path, so any schema's volatile `upper` counts.
#[test]
fn a_volatile_shadow_in_another_schema_sends_the_call_to_the_primary() {
    let mut catalog = FunctionCatalog::builtin();
    catalog.add_user_function("shadow", "upper", Volatility::Volatile);
    assert_eq!(
        verdict_with("SELECT upper('x')", &catalog).class,
        StatementClass::Write
    );
    assert_eq!(
        verdict_with("SELECT shadow.upper('x')", &catalog).class,
        StatementClass::Write
    );
}

#[test]
fn a_read_naming_an_unlogged_relation_goes_to_the_primary() {
    let mut catalog = FunctionCatalog::builtin();
    catalog.add_unlogged_relation("scratch");
    for sql in [
        "SELECT count(*) FROM scratch",
        "SELECT * FROM app.SCRATCH s",
        "SELECT 1 FROM t JOIN \"scratch\" USING (id)",
        "EXPLAIN SELECT * FROM scratch",
        "COPY scratch TO STDOUT",
    ] {
        let c = verdict_with(sql, &catalog);
        assert_eq!(c.class, StatementClass::Write, "{sql}");
        assert_eq!(
            c.reason.to_string(),
            "reads unlogged relation scratch (only the primary has its rows)",
            "{sql}"
        );
    }
    // A quoted name is exact: `"Scratch"` is another relation.
    assert_eq!(
        verdict_with("SELECT * FROM \"Scratch\"", &catalog).class,
        StatementClass::Read
    );
    assert_eq!(
        verdict_with("SELECT * FROM logged", &catalog).class,
        StatementClass::Read
    );
}

#[test]
fn while_the_catalog_reloads_user_and_builtin_names_go_to_the_primary() {
    let mut catalog = FunctionCatalog::builtin();
    catalog.add_user_function("public", "price_of", Volatility::Stable);
    let doubting = catalog.doubting();
    for sql in ["SELECT price_of(1)", "SELECT lower('A')"] {
        let c = verdict_with(sql, &doubting);
        assert_eq!(c.class, StatementClass::Write, "{sql}");
    }
    assert_eq!(
        verdict_with("SELECT id FROM items", &doubting).class,
        StatementClass::Read
    );
}
