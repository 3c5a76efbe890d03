//! Routing hints written in comments.

use pgrw_core::sql::classify::{Reason, classify, statements};
use pgrw_core::sql::lexer::StringEscapes;
use pgrw_core::{Classification, FunctionCatalog, RouteHint, StatementClass, TxAccess};

fn verdict(sql: &str) -> Classification {
    classify(sql.as_bytes(), &FunctionCatalog::builtin())
}

#[test]
fn primary_hint_sends_a_read_to_primary() {
    let c = verdict("/* pgrw:primary */ SELECT * FROM users");
    assert_eq!(c.class, StatementClass::Write);
    assert_eq!(c.hint, Some(RouteHint::Primary));
    assert_eq!(c.reason.to_string(), "hint pgrw:primary");
}

#[test]
fn line_comment_hint_anywhere_in_the_statement() {
    assert_eq!(
        verdict("SELECT 1 -- pgrw:primary").hint,
        Some(RouteHint::Primary)
    );
}

#[test]
fn replica_hint_overrides_an_unknown_function() {
    let c = verdict("SELECT my_report() /* pgrw:replica */");
    assert_eq!(c.class, StatementClass::Read);
    assert_eq!(c.hint, Some(RouteHint::Replica));
}

#[test]
fn replica_hint_on_a_definite_write_is_dropped_with_a_reason() {
    let c = verdict("/* pgrw:replica */ INSERT INTO t VALUES (1)");
    assert_eq!(c.class, StatementClass::Write);
    assert_eq!(c.hint, None);
    assert_eq!(
        c.reason,
        Reason::ReplicaHintIgnored(Box::new(Reason::Writes("INSERT")))
    );
    assert_eq!(
        c.reason.to_string(),
        "hint pgrw:replica ignored on a definite write (writes: INSERT)"
    );
}

#[test]
fn replica_hint_does_not_override_a_builtin_writing_function() {
    assert_eq!(
        verdict("/* pgrw:replica */ SELECT nextval('s')").class,
        StatementClass::Write
    );
}

#[test]
fn replica_hint_does_not_override_unreadable_text() {
    assert_eq!(
        verdict("/* pgrw:replica */ SELECT 'abc").class,
        StatementClass::Write
    );
}

#[test]
fn hint_inside_a_string_is_not_a_hint() {
    assert_eq!(
        verdict("SELECT '/* pgrw:primary */'").class,
        StatementClass::Read
    );
}

#[test]
fn hint_on_begin_is_carried_for_the_policy() {
    let c = verdict("/* pgrw:primary */ BEGIN READ ONLY");
    assert_eq!(c.class, StatementClass::Begin(TxAccess::ReadOnly));
    assert_eq!(c.hint, Some(RouteHint::Primary));
}

#[test]
fn backslash_string_whose_readings_disagree_goes_to_primary() {
    // With standard_conforming_strings off, the string swallows `' ; DELETE …`.
    let c = verdict(r"SELECT 'a\'; DELETE FROM t; SELECT '");
    assert_eq!(c.class, StatementClass::Write);
    let c = verdict(r"SELECT 'a\' /* pgrw:replica */ ; SELECT my_f() -- '");
    assert_eq!(c.reason, Reason::AmbiguousEscapes);
}

#[test]
fn backslash_string_whose_readings_agree_is_read() {
    assert_eq!(
        verdict(r"SELECT 'C:\path' FROM t").class,
        StatementClass::Read
    );
}

#[test]
fn statements_iterator_classifies_each_statement_with_its_own_hint() {
    let sql = b"SELECT 1; /* pgrw:primary */ SELECT 2; ; INSERT INTO t VALUES (1)";
    let catalog = FunctionCatalog::builtin();
    let each: Vec<_> = statements(sql, &catalog, StringEscapes::Standard).collect();
    assert_eq!(each.len(), 3);
    assert_eq!(each[0].classification.class, StatementClass::Read);
    assert_eq!(each[1].classification.hint, Some(RouteHint::Primary));
    assert_eq!(each[2].classification.class, StatementClass::Write);
    assert_eq!(&sql[each[0].start..each[0].end], b"SELECT 1");
}

#[test]
fn replica_hint_does_not_hide_a_builtin_write_after_an_unknown_function() {
    let c = verdict("/* pgrw:replica */ SELECT my_report(), nextval('s')");
    assert_eq!(c.class, StatementClass::Write);
}

#[test]
fn replica_hint_does_not_override_a_string_with_session_commands() {
    let c = verdict("/* pgrw:replica */ SELECT lock(1); SET search_path TO app");
    assert_eq!(c.class, StatementClass::Write);
}
