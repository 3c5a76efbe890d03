//! Differential tests on every corpus statement: pgrw's lexer and classifier
//! against PostgreSQL's own parser (issue #3, "Done when").

use pgrw_core::FunctionCatalog;
use pgrw_oracle::corpus::{Expected, corpus_path, parse_corpus};
use pgrw_oracle::differential::{Outcome, check, has_replica_hint, pgrw_verdict};
use pgrw_oracle::tokens::compare_tokens;
use pgrw_oracle::{Effect, judge, load_corpus};

/// Fails listing every offender, one per line.
fn assert_none(what: &str, offenders: &[String]) {
    assert!(
        offenders.is_empty(),
        "{} {what}:\n{}",
        offenders.len(),
        offenders.join("\n")
    );
}

#[test]
fn every_corpus_line_is_an_entry_and_there_are_at_least_450() {
    let text = std::fs::read_to_string(corpus_path()).expect("corpus file readable");
    let entries = parse_corpus(&text).unwrap_or_else(|e| panic!("line {}: {}", e.line, e.message));
    assert!(
        entries.len() >= 450,
        "only {} corpus statements",
        entries.len()
    );
    let blank: Vec<String> = entries
        .iter()
        .filter(|e| e.sql.trim().is_empty() || e.source.is_empty())
        .map(|e| format!("{e:?}"))
        .collect();
    assert_none("entries with an empty sql or source", &blank);
}

#[test]
fn no_statement_postgres_sees_writing_is_replica_eligible() {
    let catalog = FunctionCatalog::builtin();
    // Hints included: `check` excuses a replica hint only on calls of functions
    // the judge cannot know, never on a definite write.
    let offenders: Vec<String> = load_corpus()
        .iter()
        .filter_map(|entry| match check(entry.sql.as_bytes(), &catalog) {
            Outcome::Unsafe(finding) => Some(finding.to_string()),
            Outcome::ClassifierPanicked => Some(format!("{:?}: classifier panicked", entry.sql)),
            Outcome::NotSql | Outcome::Agree { .. } => None,
        })
        .collect();
    assert_none(
        "statements PostgreSQL sees writing, locking or changing the session were replica-eligible",
        &offenders,
    );
}

#[test]
fn at_least_95_percent_of_pure_reads_are_replica_eligible() {
    let catalog = FunctionCatalog::builtin();
    let reads: Vec<String> = load_corpus()
        .into_iter()
        .filter(|entry| {
            !entry.is_hint() && judge(&entry.sql).is_ok_and(|effect| effect == Effect::Read)
        })
        .map(|entry| entry.sql)
        .collect();
    let kept_on_primary: Vec<String> = reads
        .iter()
        .filter_map(|sql| match pgrw_verdict(sql.as_bytes(), &catalog) {
            Some((true, _)) => None,
            Some((false, verdict)) => Some(format!("{sql:?}\n    pgrw: {verdict}")),
            None => Some(format!("{sql:?}: classifier panicked")),
        })
        .collect();
    let eligible = reads.len() - kept_on_primary.len();
    let share = 100.0 * eligible as f64 / reads.len().max(1) as f64;
    println!(
        "{eligible} of {} pure reads replica-eligible: {share:.1}%",
        reads.len()
    );
    for sql in &kept_on_primary {
        println!("kept on the primary: {sql}");
    }
    assert!(
        reads.len() >= 200,
        "only {} pure reads in the corpus",
        reads.len()
    );
    assert!(
        share >= 95.0,
        "{share:.1}% of pure reads replica-eligible (need 95%):\n{}",
        kept_on_primary.join("\n")
    );
}

#[test]
fn token_boundaries_agree_with_postgres_scanner() {
    let offenders: Vec<String> = load_corpus()
        .iter()
        .filter_map(|entry| match compare_tokens(&entry.sql) {
            Ok(None) => None,
            Ok(Some(mismatch)) => Some(format!("{:?}: {mismatch}", entry.sql)),
            Err(error) => Some(format!(
                "{:?}: PostgreSQL's scanner rejects it: {error}",
                entry.sql
            )),
        })
        .collect();
    assert_none("statements whose tokens differ", &offenders);
}

#[test]
fn expectations_agree_with_pgrw() {
    let catalog = FunctionCatalog::builtin();
    let offenders: Vec<String> = load_corpus()
        .iter()
        .filter_map(|entry| {
            let verdict = pgrw_verdict(entry.sql.as_bytes(), &catalog);
            let expected_replica = entry.expect == Expected::Replica;
            match verdict {
                Some((eligible, _)) if eligible == expected_replica => None,
                Some((_, why)) => Some(format!(
                    "[{}] {:?} expected {:?}, pgrw: {why}",
                    entry.source, entry.sql, entry.expect
                )),
                None => Some(format!("{:?}: classifier panicked", entry.sql)),
            }
        })
        .collect();
    assert_none("corpus expectations pgrw disagrees with", &offenders);
}

#[test]
fn expectations_agree_with_the_judge() {
    let offenders: Vec<String> = load_corpus()
        .iter()
        .filter(|entry| !entry.is_hint())
        .filter_map(|entry| match (judge(&entry.sql), entry.expect) {
            (Ok(Effect::Read), Expected::Replica)
            | (Ok(Effect::Primary(_) | Effect::MaybeWrites(_)), Expected::Primary) => None,
            // A replica hint vouches for functions the judge cannot know.
            (Ok(Effect::MaybeWrites(_)), Expected::Replica) if has_replica_hint(&entry.sql) => None,
            // Transaction control follows its transaction; the corpus says where.
            (Ok(Effect::Neutral(_)), _) => None,
            (Ok(effect), expect) => Some(format!(
                "{:?} expected {expect:?}, judge: {effect:?}",
                entry.sql
            )),
            (Err(error), _) => Some(format!("{:?}: PostgreSQL rejects it: {error}", entry.sql)),
        })
        .collect();
    assert_none("corpus expectations the judge disagrees with", &offenders);
}
