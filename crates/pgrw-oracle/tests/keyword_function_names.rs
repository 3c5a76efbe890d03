//! Every PostgreSQL keyword tried as a function name, in the shapes where the
//! grammar accepts it: unqualified (unreserved and type/function-name
//! keywords) and schema-qualified (any keyword after a dot is a `ColLabel`).
//! Whatever PostgreSQL parses as a call of an unknown function must not be
//! replica-eligible.

use pg_query::protobuf::Token;
use pgrw_core::FunctionCatalog;
use pgrw_oracle::differential::{Outcome, check};

/// PostgreSQL's keywords, lower case, from pg_query's token table.
fn postgres_keywords() -> Vec<String> {
    (258..1000)
        .filter_map(|code| Token::try_from(code).ok())
        .map(|token| {
            token
                .as_str_name()
                .trim_end_matches("_P")
                .to_ascii_lowercase()
        })
        .filter(|word| {
            pg_query::scan(word).is_ok_and(|scanned| {
                scanned.tokens.len() == 1 && scanned.tokens[0].keyword_kind != 0
            })
        })
        .collect()
}

fn unsafe_for(shape: &str) -> Vec<String> {
    let catalog = FunctionCatalog::builtin();
    postgres_keywords()
        .iter()
        .map(|keyword| shape.replace("{}", keyword))
        .filter(|sql| {
            matches!(
                check(sql.as_bytes(), &catalog),
                Outcome::Unsafe(_) | Outcome::ClassifierPanicked
            )
        })
        .collect()
}

#[test]
fn the_keyword_table_is_complete_enough_to_mean_something() {
    assert!(
        postgres_keywords().len() > 400,
        "only {} keywords",
        postgres_keywords().len()
    );
}

#[test]
fn keywords_called_as_functions_are_not_replica_eligible() {
    let offenders = unsafe_for("SELECT {}(1)");
    assert!(
        offenders.is_empty(),
        "{} replica-eligible:\n{}",
        offenders.len(),
        offenders.join("\n")
    );
}

#[test]
fn keywords_called_as_set_returning_functions_are_not_replica_eligible() {
    let offenders = unsafe_for("SELECT * FROM {}(1)");
    assert!(
        offenders.is_empty(),
        "{} replica-eligible:\n{}",
        offenders.len(),
        offenders.join("\n")
    );
}

#[test]
fn schema_qualified_keywords_called_as_functions_are_not_replica_eligible() {
    let offenders = unsafe_for("SELECT app.{}(1)");
    assert!(
        offenders.is_empty(),
        "{} replica-eligible:\n{}",
        offenders.len(),
        offenders.join("\n")
    );
}
