//! Groups the unsafe findings of a `difffuzz --findings FILE` run by cause, so
//! a ten-minute run's thousands of mutants read as a few bugs:
//! `cargo run -p pgrw-oracle --release --example triage -- FILE`

use std::collections::BTreeMap;

use pgrw_core::FunctionCatalog;
use pgrw_oracle::differential::{Outcome, check};

/// Whether `word` is one of PostgreSQL's keywords.
fn is_keyword(word: &str) -> bool {
    pg_query::scan(word).is_ok_and(|s| s.tokens.len() == 1 && s.tokens[0].keyword_kind != 0)
}

fn cause(judge_reason: &str, pgrw_verdict: &str) -> String {
    let called = judge_reason
        .split("calls ")
        .nth(1)
        .and_then(|rest| rest.split("()").next());
    match called {
        _ if pgrw_verdict.contains("hint pgrw:replica") => {
            "replica hint overrides a definite write".to_owned()
        }
        Some(name) if is_keyword(name) => "function named like a keyword".to_owned(),
        Some(name) => format!("function {name}() missed"),
        None => format!("other: {judge_reason}"),
    }
}

fn main() {
    let catalog = FunctionCatalog::builtin();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        for line in text.lines() {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if value["kind"] != "unsafe" {
                continue;
            }
            let Some(sql) = value["sql"].as_str() else {
                continue;
            };
            if let Outcome::Unsafe(finding) = check(sql.as_bytes(), &catalog) {
                groups
                    .entry(cause(&finding.judge_reason, &finding.pgrw_verdict))
                    .or_default()
                    .push(sql.to_owned());
            }
        }
    }
    for (cause, sqls) in &groups {
        println!("{:>6}  {cause}", sqls.len());
        let mut shortest = sqls.clone();
        shortest.sort_by_key(String::len);
        for sql in shortest.iter().take(3) {
            println!("          {sql:?}");
        }
    }
}
