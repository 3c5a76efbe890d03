//! Session commands and the effects they report.

use pgrw_core::sql::classify::{
    DefaultIsolation, Effect, RouteSetting, RouteSettingChange, classify,
};
use pgrw_core::{Classification, FunctionCatalog, Reason, StatementClass, TxAccess};

fn verdict(sql: &str) -> Classification {
    classify(sql.as_bytes(), &FunctionCatalog::builtin())
}

#[test]
fn set_is_a_session_command() {
    let c = verdict("SET search_path TO app, public");
    assert_eq!(c.class, StatementClass::Session);
    assert!(c.effects.contains(Effect::SET));
    assert_eq!(c.reason.to_string(), "session state: SET");
}

#[test]
fn set_local_is_transaction_scoped() {
    let c = verdict("SET LOCAL statement_timeout = '5s'");
    assert!(c.effects.contains(Effect::SET_LOCAL));
    assert!(!c.effects.contains(Effect::SET));
}

#[test]
fn set_session_characteristics_is_a_session_set() {
    let c = verdict("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
    assert_eq!(c.class, StatementClass::Session);
    assert!(c.effects.contains(Effect::SET));
}

#[test]
fn set_transaction_snapshot_is_set_transaction() {
    assert_eq!(
        verdict("SET TRANSACTION SNAPSHOT '00000003-0000001B-1'").class,
        StatementClass::SetTransaction(TxAccess::Unspecified)
    );
}

#[test]
fn reset_and_reset_all() {
    assert!(verdict("RESET search_path").effects.contains(Effect::RESET));
    let all = verdict("RESET ALL");
    assert!(all.effects.contains(Effect::RESET_ALL));
    assert_eq!(
        all.effects.route_setting.map(|c| c.setting),
        Some(RouteSetting::Auto)
    );
}

#[test]
fn discard_kinds() {
    assert!(verdict("DISCARD ALL").effects.contains(Effect::DISCARD_ALL));
    assert!(
        verdict("DISCARD PLANS")
            .effects
            .contains(Effect::DISCARD_PLANS)
    );
    assert!(
        verdict("DISCARD SEQUENCES")
            .effects
            .contains(Effect::DISCARD_SEQUENCES)
    );
    assert!(
        verdict("DISCARD TEMP")
            .effects
            .contains(Effect::DISCARD_TEMP)
    );
    assert_eq!(verdict("DISCARD EVERYTHING").class, StatementClass::Write);
}

#[test]
fn set_pgrw_route_changes_the_route_setting() {
    let c = verdict("SET pgrw.route = replica");
    assert_eq!(c.class, StatementClass::Session);
    assert_eq!(
        c.effects.route_setting,
        Some(RouteSettingChange {
            setting: RouteSetting::Replica,
            local: false
        })
    );
    let quoted = verdict("set session PGRW.ROUTE to 'primary'");
    assert_eq!(
        quoted.effects.route_setting.map(|c| c.setting),
        Some(RouteSetting::Primary)
    );
    let local = verdict("SET LOCAL pgrw.route = auto");
    assert_eq!(
        local.effects.route_setting,
        Some(RouteSettingChange {
            setting: RouteSetting::Auto,
            local: true
        })
    );
}

#[test]
fn set_pgrw_route_to_an_unknown_value_goes_to_primary() {
    assert_eq!(
        verdict("SET pgrw.route = sideways").class,
        StatementClass::Write
    );
}

#[test]
fn reset_pgrw_route_returns_to_auto() {
    assert_eq!(
        verdict("RESET pgrw.route")
            .effects
            .route_setting
            .map(|c| c.setting),
        Some(RouteSetting::Auto)
    );
}

#[test]
fn sql_prepare_pins_the_session_on_the_primary_like_execute() {
    let c = verdict("PREPARE q (int) AS SELECT * FROM t WHERE id = $1");
    assert_eq!(c.class, StatementClass::Write);
    assert_eq!(c.reason, Reason::PinsSession("PREPARE"));
    assert_eq!(verdict("EXECUTE q (1)").class, StatementClass::Write);
    assert!(c.effects.contains(Effect::PREPARE));
    assert!(c.effects.pins_session());
}

#[test]
fn deallocate_and_deallocate_all() {
    assert!(verdict("DEALLOCATE q").effects.contains(Effect::DEALLOCATE));
    assert!(
        verdict("DEALLOCATE PREPARE ALL")
            .effects
            .contains(Effect::DEALLOCATE_ALL)
    );
}

#[test]
fn close_cursor_is_reported() {
    assert!(verdict("CLOSE ALL").effects.contains(Effect::CLOSE_CURSOR));
}

#[test]
fn session_commands_mixed_with_reads_go_to_primary() {
    let c = verdict("SET a.b = 1; SELECT 1");
    assert_eq!(c.class, StatementClass::Write);
    assert!(c.effects.contains(Effect::SET));
}

#[test]
fn effects_print_as_labels() {
    let c = verdict("SELECT pg_advisory_lock(1), nextval('s')");
    assert_eq!(
        c.effects.to_string(),
        "session advisory lock, sequence state"
    );
}

#[test]
fn a_serializable_transaction_never_starts_on_a_replica() {
    // psycopg2's set_session(readonly=True, isolation_level=SERIALIZABLE).
    for sql in [
        "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
        "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
        "begin transaction read only isolation level serializable deferrable",
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY",
    ] {
        let c = verdict(sql);
        assert_eq!(
            c.class,
            StatementClass::Begin(TxAccess::Unspecified),
            "{sql}"
        );
        assert!(!c.replica_eligible(), "{sql}");
    }
    let c = verdict("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY");
    assert!(!c.replica_eligible());
    // Other levels may run on a standby.
    assert!(verdict("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").replica_eligible());
}

#[test]
fn setting_the_default_isolation_is_an_effect() {
    let cases = [
        (
            "SET default_transaction_isolation = 'serializable'",
            Some(DefaultIsolation::Serializable),
        ),
        (
            "SET SESSION default_transaction_isolation TO SERIALIZABLE",
            Some(DefaultIsolation::Serializable),
        ),
        (
            "SET default_transaction_isolation = 'SERIALIZABLE'",
            Some(DefaultIsolation::Serializable),
        ),
        (
            "SET default_transaction_isolation = E'serializable'",
            Some(DefaultIsolation::Serializable),
        ),
        (
            "SET default_transaction_isolation = 'read committed'",
            Some(DefaultIsolation::Other),
        ),
        (
            "SET default_transaction_isolation TO 'repeatable read'",
            Some(DefaultIsolation::RepeatableRead),
        ),
        (
            "SET default_transaction_isolation TO DEFAULT",
            Some(DefaultIsolation::LoginDefault),
        ),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            Some(DefaultIsolation::Serializable),
        ),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY, ISOLATION LEVEL READ COMMITTED",
            Some(DefaultIsolation::Other),
        ),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            Some(DefaultIsolation::RepeatableRead),
        ),
        ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", None),
        (
            "RESET default_transaction_isolation",
            Some(DefaultIsolation::LoginDefault),
        ),
        ("RESET ALL", Some(DefaultIsolation::LoginDefault)),
        ("DISCARD ALL", Some(DefaultIsolation::LoginDefault)),
        (
            "SET LOCAL default_transaction_isolation = 'serializable'",
            None,
        ),
        ("SET search_path = public", None),
    ];
    for (sql, expected) in cases {
        let c = verdict(sql);
        assert_eq!(c.class, StatementClass::Session, "{sql}");
        assert_eq!(c.effects.default_isolation, expected, "{sql}");
    }
}

#[test]
fn set_config_of_the_default_isolation_is_followed_as_its_set() {
    let cases = [
        (
            "SELECT set_config('default_transaction_isolation', 'serializable', false)",
            Some(DefaultIsolation::Serializable),
        ),
        (
            "SELECT pg_catalog.set_config('Default_Transaction_Isolation', 'SERIALIZABLE', false)",
            Some(DefaultIsolation::Serializable),
        ),
        (
            "SELECT set_config('default_transaction_isolation', 'repeatable read', false)",
            Some(DefaultIsolation::RepeatableRead),
        ),
        (
            "SELECT set_config('default_transaction_isolation', 'read committed', false)",
            Some(DefaultIsolation::Other),
        ),
        // A value pgrw cannot read: unsure, so serializable (the primary).
        (
            "SELECT set_config('default_transaction_isolation', lower('SERIALIZABLE'), false)",
            Some(DefaultIsolation::Serializable),
        ),
        (
            "SELECT set_config('default_transaction_isolation', $1, false)",
            Some(DefaultIsolation::Serializable),
        ),
        // `is_local` true ends with the transaction, which runs on one node.
        (
            "SELECT set_config('default_transaction_isolation', 'serializable', true)",
            None,
        ),
        ("SELECT set_config('search_path', 'public', false)", None),
    ];
    for (sql, expected) in cases {
        let c = verdict(sql);
        assert_eq!(c.effects.default_isolation, expected, "{sql}");
    }
}

#[test]
fn the_sessions_own_backend_state_is_a_reason_of_its_own_only_when_nothing_else_needs_the_primary()
{
    let only_the_sessions_backend = [
        "SELECT name FROM pg_prepared_statements WHERE name != ''",
        "SELECT count(*) FROM pg_catalog.pg_cursors",
        "SELECT 1; SELECT * FROM PG_PREPARED_STATEMENTS",
        "EXPLAIN ANALYZE SELECT * FROM pg_cursors",
    ];
    let more = [
        "SELECT * FROM pg_prepared_statements, pg_locks",
        "SELECT * FROM pg_cursors WHERE nextval('s') > 0",
        "SELECT * FROM pg_prepared_statements; INSERT INTO t VALUES (1)",
        "INSERT INTO t SELECT 1 FROM pg_cursors",
        "SELECT * FROM pg_prepared_statements; SELECT * FROM pg_stat_activity",
        "SELECT * FROM pg_prepared_statements FOR UPDATE",
    ];
    let cases = (only_the_sessions_backend.iter().map(|sql| (sql, true)))
        .chain(more.iter().map(|sql| (sql, false)));
    for (sql, session_backend) in cases {
        let c = verdict(sql);
        assert_eq!(c.class, StatementClass::Write, "{sql}: {}", c.reason);
        assert_eq!(
            matches!(c.reason, Reason::SessionBackendState(_)),
            session_backend,
            "{sql}: {}",
            c.reason
        );
        // Either way it reads the session's backend, which must hold the
        // client's statements wherever it runs.
        assert!(c.reads_backend_state, "{sql}");
    }
    // So does one whose function call a doubting catalog sends to the primary.
    let doubted = classify(
        b"SELECT regexp_replace(statement, 'a', 'b') FROM pg_prepared_statements",
        &FunctionCatalog::builtin().doubting(),
    );
    assert!(!matches!(doubted.reason, Reason::SessionBackendState(_)));
    assert!(doubted.reads_backend_state);
    for sql in [
        "SELECT 1",
        "SELECT * FROM pg_stat_activity",
        "SELECT * FROM t",
    ] {
        assert!(!verdict(sql).reads_backend_state, "{sql}");
    }
}
