//! Classification time per statement: pgrw's `classify` against
//! `pg_query::parse`, over the corpus's typical ORM statements.

use std::hint::black_box;
use std::time::Instant;

use pgrw_core::FunctionCatalog;
use pgrw_core::sql::classify::classify;

use crate::corpus::load_corpus;

/// Sources whose statements are what ORMs send on every request.
pub const ORM_SOURCES: &[&str] = &[
    "peewee",
    "sqlalchemy",
    "django",
    "rails",
    "hibernate",
    "seaorm",
    "diesel",
    "sqlx",
];

/// Longest statement in the timing set, in bytes (the bound).
pub const MAX_STATEMENT_BYTES: usize = 300;

/// The corpus's ORM statements of at most [`MAX_STATEMENT_BYTES`] bytes.
pub fn typical_orm_statements() -> Vec<String> {
    load_corpus()
        .into_iter()
        .filter(|entry| {
            ORM_SOURCES.contains(&entry.source.as_str()) && entry.sql.len() <= MAX_STATEMENT_BYTES
        })
        .map(|entry| entry.sql)
        .collect()
}

/// Median, over `statements`, of each statement's mean time per call of
/// `run` (each statement timed over `calls` calls after a warm-up), in ns.
pub fn median_ns_per_statement(
    statements: &[String],
    calls: u32,
    mut run: impl FnMut(&str),
) -> f64 {
    let mut per_statement: Vec<f64> = statements
        .iter()
        .map(|sql| {
            for _ in 0..calls / 10 + 1 {
                run(sql);
            }
            let started = Instant::now();
            for _ in 0..calls {
                run(sql);
            }
            started.elapsed().as_nanos() as f64 / f64::from(calls.max(1))
        })
        .collect();
    per_statement.sort_by(f64::total_cmp);
    per_statement
        .get(per_statement.len() / 2)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Median ns per statement of pgrw's `classify` with the built-in catalog.
pub fn pgrw_median_ns(statements: &[String], calls: u32) -> f64 {
    let catalog = FunctionCatalog::builtin();
    median_ns_per_statement(statements, calls, |sql| {
        black_box(classify(black_box(sql.as_bytes()), &catalog));
    })
}

/// Median ns per statement of `pg_query::parse`.
pub fn pg_query_median_ns(statements: &[String], calls: u32) -> f64 {
    median_ns_per_statement(statements, calls, |sql| {
        let _ = black_box(pg_query::parse(black_box(sql)));
    })
}
