//! Statements that may run on a replica, and transaction starts.

use pgrw_core::sql::classify::{Effect, classify};
use pgrw_core::{Classification, FunctionCatalog, Reason, StatementClass, TxAccess};

fn verdict(sql: &str) -> Classification {
    classify(sql.as_bytes(), &FunctionCatalog::builtin())
}

fn assert_read(sql: &str) {
    let c = verdict(sql);
    assert_eq!(c.class, StatementClass::Read, "{sql}: {c:?}");
    assert!(c.replica_eligible(), "{sql}");
}

#[test]
fn plain_select_is_read() {
    assert_read("SELECT id, name FROM users WHERE email = 'a@b.c' LIMIT 1");
    assert_eq!(verdict("SELECT 1").reason.to_string(), "read");
}

#[test]
fn orm_shaped_select_is_read() {
    assert_read(
        r#"SELECT "t1"."id", "t1"."name", "t1"."email" FROM "user" AS "t1" WHERE ("t1"."email" = 'x@y.z') LIMIT 1 OFFSET 0"#,
    );
}

#[test]
fn values_table_show_are_read() {
    assert_read("VALUES (1, 'a'), (2, 'b')");
    assert_read("TABLE users");
    assert_read("SHOW search_path");
}

#[test]
fn parenthesised_union_is_read() {
    assert_read("(SELECT 1) UNION ALL (SELECT 2) ORDER BY 1");
}

#[test]
fn read_only_cte_is_read() {
    assert_read(
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT sum(n) FROM t",
    );
}

#[test]
fn cte_column_list_with_literals_is_not_taken_for_a_cte() {
    let c = verdict("WITH t(1) AS (SELECT 1) SELECT * FROM t");
    assert_eq!(c.class, StatementClass::Write);
}

#[test]
fn aggregates_and_builtin_functions_are_read() {
    assert_read(
        "SELECT count(*), max(id), coalesce(lower(name), '') FROM users GROUP BY 1 HAVING count(*) > 1",
    );
    assert_read("SELECT now(), random(), gen_random_uuid(), clock_timestamp()");
    assert_read("SELECT pg_catalog.lower('A')");
}

#[test]
fn grammar_with_parentheses_is_not_a_call() {
    assert_read(
        "SELECT CAST(x AS numeric(10, 2)), x::varchar(20) FROM t WHERE y IN (1, 2) AND EXISTS (SELECT 1)",
    );
    assert_read("SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t");
    assert_read("SELECT * FROM generate_series(1, 3) AS g(x)");
    assert_read("SELECT count(*) FILTER (WHERE a > 1) FROM t");
}

#[test]
fn json_operators_are_read() {
    assert_read("SELECT data->>'name', data @> '{\"a\":1}' FROM docs WHERE tags && ARRAY['x']");
}

#[test]
fn words_in_strings_and_comments_do_not_count() {
    assert_read("SELECT 'INSERT INTO t; DELETE' /* UPDATE t */ FROM t -- FOR UPDATE");
    assert_read("SELECT $$ nextval('s') $$");
}

#[test]
fn column_named_like_a_keyword_after_a_dot_is_read() {
    assert_read("SELECT t.update, t.delete FROM t");
}

#[test]
fn column_named_like_a_dml_keyword_after_select_or_comma_is_read() {
    assert_read("SELECT insert FROM t");
    assert_read("SELECT a, update, delete FROM t");
}

#[test]
fn plain_explain_is_read() {
    assert_read("EXPLAIN SELECT * FROM users");
}

#[test]
fn explain_of_a_write_without_analyze_is_read() {
    let c = verdict("EXPLAIN UPDATE users SET name = 'x'");
    assert_eq!(c.class, StatementClass::Read);
    assert_eq!(c.reason, Reason::ExplainWithoutAnalyze);
}

#[test]
fn explain_analyze_of_a_read_is_read() {
    assert_read("EXPLAIN ANALYZE SELECT * FROM users");
    assert_read("EXPLAIN (ANALYZE, FORMAT JSON) SELECT 1");
}

#[test]
fn copy_query_to_stdout_is_read() {
    assert_read("COPY (SELECT id FROM users) TO STDOUT WITH (FORMAT csv)");
}

#[test]
fn copy_table_to_stdout_is_read() {
    assert_read("COPY users (id, name) TO STDOUT");
}

#[test]
fn copy_of_a_writing_query_goes_to_primary() {
    let c = verdict("COPY (DELETE FROM t RETURNING *) TO STDOUT");
    assert_eq!(c.class, StatementClass::Write);
}

#[test]
fn multi_statement_reads_are_read() {
    assert_read("SELECT 1; SELECT 2;");
}

#[test]
fn empty_string_is_empty() {
    let c = verdict(" ; -- nothing\n;");
    assert_eq!(c.class, StatementClass::Empty);
    assert!(c.replica_eligible());
}

#[test]
fn begin_read_only_is_a_read_only_begin() {
    let c = verdict("BEGIN READ ONLY");
    assert_eq!(c.class, StatementClass::Begin(TxAccess::ReadOnly));
    assert!(c.replica_eligible());
}

#[test]
fn start_transaction_with_isolation_and_read_only() {
    let c = verdict("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY, DEFERRABLE");
    assert_eq!(c.class, StatementClass::Begin(TxAccess::ReadOnly));
}

#[test]
fn begin_read_write_and_plain_begin() {
    assert_eq!(
        verdict("BEGIN TRANSACTION READ WRITE").class,
        StatementClass::Begin(TxAccess::ReadWrite)
    );
    assert_eq!(
        verdict("begin").class,
        StatementClass::Begin(TxAccess::Unspecified)
    );
    assert!(!verdict("BEGIN").replica_eligible());
}

#[test]
fn begin_with_contradictory_modes_is_unspecified() {
    assert_eq!(
        verdict("BEGIN READ ONLY, READ WRITE").class,
        StatementClass::Begin(TxAccess::Unspecified)
    );
}

#[test]
fn set_transaction_read_only() {
    assert_eq!(
        verdict("SET TRANSACTION READ ONLY").class,
        StatementClass::SetTransaction(TxAccess::ReadOnly)
    );
}

#[test]
fn commit_rollback_savepoint() {
    assert_eq!(verdict("COMMIT").class, StatementClass::Commit);
    assert_eq!(verdict("END TRANSACTION").class, StatementClass::Commit);
    assert_eq!(verdict("ROLLBACK").class, StatementClass::Rollback);
    assert_eq!(verdict("ABORT").class, StatementClass::Rollback);
    assert_eq!(verdict("SAVEPOINT a").class, StatementClass::Savepoint);
    assert_eq!(
        verdict("RELEASE SAVEPOINT a").class,
        StatementClass::Savepoint
    );
    assert_eq!(
        verdict("ROLLBACK TO SAVEPOINT a").class,
        StatementClass::Savepoint
    );
}

#[test]
fn fetch_is_a_cursor_read() {
    let c = verdict("FETCH 10 FROM c");
    assert_eq!(c.class, StatementClass::Read);
    assert!(c.effects.contains(Effect::CURSOR_USE));
}

#[test]
fn declare_with_hold_pins_the_session_on_the_primary() {
    let c = verdict("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t");
    assert_eq!(c.class, StatementClass::Write);
    assert_eq!(c.reason, Reason::PinsSession("WITH HOLD cursor"));
    assert!(c.effects.contains(Effect::HOLD_CURSOR));
    assert!(c.effects.pins_session());
}

#[test]
fn declare_of_a_locking_query_goes_to_primary() {
    assert_eq!(
        verdict("DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE").class,
        StatementClass::Write
    );
}

#[test]
fn multi_statement_with_transaction_control_goes_to_primary() {
    let c = verdict("BEGIN; SELECT 1; COMMIT");
    assert_eq!(c.class, StatementClass::Write);
    assert_eq!(c.reason, Reason::MultiStatement("transaction control"));
    assert!(c.effects.contains(Effect::TRANSACTION_CONTROL));
}

#[test]
fn a_whole_read_only_transaction_in_one_string_is_a_read() {
    for sql in [
        "BEGIN READ ONLY; SELECT 1; COMMIT",
        "START TRANSACTION READ ONLY; SELECT 1; SELECT 2; ROLLBACK;",
        "BEGIN READ ONLY; COMMIT",
    ] {
        let c = verdict(sql);
        assert_eq!(c.class, StatementClass::Read, "{sql}: {c:?}");
        assert!(c.effects.contains(Effect::TRANSACTION_CONTROL), "{sql}");
    }
    for sql in [
        "BEGIN READ ONLY; SELECT 1",
        "BEGIN; SELECT 1; COMMIT",
        "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY; SELECT 1; COMMIT",
        "BEGIN READ ONLY; SELECT 1; COMMIT; SELECT 2",
        "BEGIN READ ONLY; SELECT nextval('s'); COMMIT",
        "BEGIN READ ONLY; SET search_path = x; COMMIT",
        "/* pgrw:primary */ BEGIN READ ONLY; SELECT 1; COMMIT",
    ] {
        assert!(!verdict(sql).replica_eligible(), "{sql}");
    }
}
