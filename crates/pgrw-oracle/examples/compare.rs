//! Shows pgrw's verdict next to the judge's for each SQL argument:
//! `cargo run -p pgrw-oracle --example compare -- "SELECT …" …`

use pgrw_core::FunctionCatalog;
use pgrw_core::sql::classify::classify;
use pgrw_oracle::differential::{Outcome, check};
use pgrw_oracle::tokens::compare_tokens;

fn main() {
    let catalog = FunctionCatalog::builtin();
    for sql in std::env::args().skip(1) {
        let classification = classify(sql.as_bytes(), &catalog);
        println!("{sql:?}");
        println!(
            "  pgrw:   replica-eligible {} — {:?}: {}",
            classification.replica_eligible(),
            classification.class,
            classification.reason
        );
        println!("  judge:  {:?}", pgrw_oracle::judge(&sql));
        println!("  tokens: {:?}", compare_tokens(&sql));
        if let Outcome::Unsafe(finding) = check(sql.as_bytes(), &catalog) {
            println!("  UNSAFE: {finding}");
        }
    }
}
