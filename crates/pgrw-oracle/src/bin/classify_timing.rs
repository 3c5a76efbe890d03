//! Prints the median classification time per statement, pgrw vs pg_query, over
//! the corpus's typical ORM statements (≤ 300 bytes): the figure to record.
//!
//! `cargo run -p pgrw-oracle --release --bin classify_timing`

use pgrw_oracle::timing::{
    MAX_STATEMENT_BYTES, pg_query_median_ns, pgrw_median_ns, typical_orm_statements,
};

fn main() {
    let statements = typical_orm_statements();
    let pgrw = pgrw_median_ns(&statements, 20_000);
    let pg_query = pg_query_median_ns(&statements, 500);
    println!(
        "{} ORM statements of at most {MAX_STATEMENT_BYTES} bytes, median time per statement:",
        statements.len()
    );
    println!("  pgrw classify     {pgrw:>10.0} ns");
    println!("  pg_query::parse   {pg_query:>10.0} ns");
    println!("  ratio             {:>10.1}x", pg_query / pgrw);
}
