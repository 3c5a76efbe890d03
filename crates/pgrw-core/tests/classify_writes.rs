//! Statements that must go to the primary (DESIGN.md, "Routing rules").

use pgrw_core::sql::classify::{Effect, classify};
use pgrw_core::{Classification, FunctionCatalog, Reason, StatementClass};

fn verdict(sql: &str) -> Classification {
    classify(sql.as_bytes(), &FunctionCatalog::builtin())
}

fn assert_primary(sql: &str, reason: &str) {
    let c = verdict(sql);
    assert_eq!(c.class, StatementClass::Write, "{sql}: {c:?}");
    assert!(!c.replica_eligible(), "{sql}");
    assert_eq!(c.reason.to_string(), reason, "{sql}");
}

#[test]
fn insert_goes_to_primary() {
    assert_primary("INSERT INTO users (name) VALUES ('a')", "writes: INSERT");
}

#[test]
fn update_goes_to_primary() {
    assert_primary("update users set name = 'b' where id = 1", "writes: UPDATE");
}

#[test]
fn delete_goes_to_primary() {
    assert_primary("DELETE FROM users WHERE id = $1", "writes: DELETE");
}

#[test]
fn merge_goes_to_primary() {
    assert_primary(
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        "writes: MERGE",
    );
}

#[test]
fn writable_cte_goes_to_primary() {
    assert_primary(
        "WITH moved AS (DELETE FROM a RETURNING *) SELECT * FROM moved",
        "writable CTE",
    );
}

#[test]
fn cte_followed_by_insert_goes_to_primary() {
    assert_primary(
        "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
        "writes: INSERT",
    );
}

#[test]
fn select_into_goes_to_primary() {
    assert_primary(
        "SELECT * INTO new_table FROM users",
        "SELECT … INTO creates a table",
    );
}

#[test]
fn select_into_temp_creates_a_temp_table() {
    let c = verdict("SELECT * INTO TEMP t FROM users");
    assert!(c.effects.contains(Effect::TEMP_TABLE));
    assert!(c.effects.pins_session());
}

#[test]
fn for_update_goes_to_primary() {
    assert_primary(
        "SELECT * FROM users WHERE id = 1 FOR UPDATE",
        "locks: FOR UPDATE",
    );
}

#[test]
fn for_no_key_update_goes_to_primary() {
    assert_primary(
        "SELECT * FROM users FOR NO KEY UPDATE SKIP LOCKED",
        "locks: FOR NO KEY UPDATE",
    );
}

#[test]
fn for_share_goes_to_primary() {
    assert_primary("SELECT * FROM users FOR SHARE", "locks: FOR SHARE");
}

#[test]
fn for_key_share_goes_to_primary() {
    assert_primary(
        "SELECT * FROM users FOR KEY SHARE OF users",
        "locks: FOR KEY SHARE",
    );
}

#[test]
fn ddl_goes_to_primary() {
    assert_primary("CREATE TABLE t (id int)", "DDL: CREATE");
    assert_primary("ALTER TABLE t ADD COLUMN x int", "DDL: ALTER");
    assert_primary("DROP TABLE t", "DDL: DROP");
    assert_primary("TRUNCATE t", "DDL: TRUNCATE");
    assert_primary("GRANT SELECT ON t TO r", "DDL: GRANT");
}

#[test]
fn create_temp_table_pins_the_session() {
    let c = verdict("CREATE TEMP TABLE scratch (id int)");
    assert_eq!(c.class, StatementClass::Write);
    assert!(c.effects.contains(Effect::TEMP_TABLE));
}

#[test]
fn create_function_with_atomic_body_is_one_statement() {
    let c = verdict(
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
    );
    assert_eq!(c.reason, Reason::Ddl("CREATE"));
    assert!(!c.effects.contains(Effect::TRANSACTION_CONTROL));
}

#[test]
fn copy_from_goes_to_primary() {
    assert_primary(
        "COPY users FROM STDIN WITH (FORMAT csv)",
        "primary-only command: COPY FROM",
    );
}

#[test]
fn copy_to_a_server_file_goes_to_primary() {
    assert_primary(
        "COPY users TO '/tmp/x.csv'",
        "primary-only command: COPY TO a server file or program",
    );
}

#[test]
fn call_do_lock_vacuum_analyze_go_to_primary() {
    assert_primary("CALL do_work(1)", "primary-only command: CALL");
    assert_primary("DO $$ BEGIN PERFORM 1; END $$", "primary-only command: DO");
    assert_primary("LOCK TABLE t IN SHARE MODE", "primary-only command: LOCK");
    assert_primary("VACUUM (VERBOSE) t", "primary-only command: VACUUM");
    assert_primary("ANALYZE t", "primary-only command: ANALYZE");
}

#[test]
fn listen_notify_unlisten_go_to_primary() {
    assert_primary("LISTEN jobs", "primary-only command: LISTEN");
    assert_primary("NOTIFY jobs, 'x'", "primary-only command: NOTIFY");
    assert_primary("UNLISTEN *", "primary-only command: UNLISTEN");
    assert!(verdict("LISTEN jobs").effects.contains(Effect::LISTEN));
    assert!(verdict("UNLISTEN jobs").effects.contains(Effect::UNLISTEN));
}

#[test]
fn two_phase_commit_commands_go_to_primary() {
    assert_primary(
        "PREPARE TRANSACTION 'tx1'",
        "primary-only command: PREPARE TRANSACTION",
    );
    assert_primary(
        "COMMIT PREPARED 'tx1'",
        "primary-only command: COMMIT PREPARED",
    );
    assert_primary(
        "ROLLBACK PREPARED 'tx1'",
        "primary-only command: ROLLBACK PREPARED",
    );
}

#[test]
fn explain_analyze_of_a_write_goes_to_primary() {
    assert_primary("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", "writes: INSERT");
    assert_primary("EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t", "writes: DELETE");
}

#[test]
fn explain_analyze_false_of_a_write_only_plans() {
    let c = verdict("EXPLAIN (ANALYZE false) DELETE FROM t");
    assert_eq!(c.class, StatementClass::Read);
}

#[test]
fn multi_statement_string_with_a_write_goes_to_primary() {
    assert_primary("SELECT 1; UPDATE t SET a = 1; SELECT 2", "writes: UPDATE");
}

#[test]
fn temp_schema_use_goes_to_primary() {
    assert_primary("SELECT * FROM pg_temp.scratch", "uses a temporary table");
}

#[test]
fn unknown_statement_goes_to_primary() {
    assert_primary(
        "FROBNICATE t",
        "unrecognised: statement does not start with a known keyword",
    );
}

#[test]
fn unterminated_string_goes_to_primary() {
    assert_primary("SELECT 'abc", "unrecognised: unterminated string");
}

#[test]
fn unterminated_comment_goes_to_primary() {
    assert_primary("SELECT 1 /* note", "unrecognised: unterminated comment");
}

#[test]
fn scanner_rejected_text_goes_to_primary() {
    assert_primary(
        "SELECT 123abc",
        "unrecognised: text PostgreSQL's scanner rejects",
    );
}

#[test]
fn unbalanced_parenthesis_goes_to_primary() {
    assert_primary("SELECT 1)", "unrecognised: unbalanced parenthesis");
}

#[test]
fn execute_of_a_prepared_statement_goes_to_primary() {
    let c = verdict("EXECUTE q(1)");
    assert_eq!(c.class, StatementClass::Write);
    assert!(c.effects.contains(Effect::EXECUTE));
}
