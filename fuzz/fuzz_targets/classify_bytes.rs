//! Arbitrary bytes to pgrw's classifier and to PostgreSQL's parser: fails when
//! PostgreSQL parses the text and judges it writing, locking or session-
//! changing while pgrw calls it replica-eligible, or when pgrw panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pgrw_core::FunctionCatalog;
use pgrw_oracle::differential::{Outcome, check};

static CATALOG: OnceLock<FunctionCatalog> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let catalog = CATALOG.get_or_init(FunctionCatalog::builtin);
    match check(data, catalog) {
        Outcome::Unsafe(finding) => panic!("unsafe replica routing: {finding}"),
        Outcome::ClassifierPanicked => panic!("pgrw's classifier panicked on {data:?}"),
        Outcome::NotSql | Outcome::Agree { .. } => {}
    }
});
