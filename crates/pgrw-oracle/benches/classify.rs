//! Criterion benchmark: classifying the corpus's typical ORM statements
//! (≤ 300 bytes) with pgrw's `classify` and with `pg_query::parse`, side by
//! side. Throughput is per statement, so criterion's "elem/s" is statements/s.
//!
//! `cargo bench -p pgrw-oracle --bench classify`

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use pgrw_core::FunctionCatalog;
use pgrw_core::sql::classify::classify;
use pgrw_oracle::timing::typical_orm_statements;

fn classification(c: &mut Criterion) {
    let statements = typical_orm_statements();
    let catalog = FunctionCatalog::builtin();
    let mut group = c.benchmark_group("orm_statements");
    group.throughput(Throughput::Elements(statements.len() as u64));
    group.bench_function("pgrw_classify", |b| {
        b.iter(|| {
            for sql in &statements {
                black_box(classify(black_box(sql.as_bytes()), &catalog));
            }
        })
    });
    group.bench_function("pg_query_parse", |b| {
        b.iter(|| {
            for sql in &statements {
                let _ = black_box(pg_query::parse(black_box(sql)));
            }
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    classification(&mut criterion);
    criterion.final_summary();
}
