//! Structure-aware variant of `classify_bytes`: the fuzzer's bytes seed the
//! corpus mutator (splices, wraps, inserted writes/locks/comments/strings), so
//! most inputs are SQL PostgreSQL parses. Same failure rule.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pgrw_core::FunctionCatalog;
use pgrw_oracle::differential::{Outcome, check};
use pgrw_oracle::mutate::{Rng, mutate};

static CATALOG: OnceLock<FunctionCatalog> = OnceLock::new();
static CORPUS: OnceLock<Vec<String>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let catalog = CATALOG.get_or_init(FunctionCatalog::builtin);
    let corpus = CORPUS.get_or_init(|| {
        pgrw_oracle::load_corpus()
            .into_iter()
            .map(|e| e.sql)
            .collect()
    });
    let mut seed = [0u8; 8];
    for (slot, byte) in seed.iter_mut().zip(data) {
        *slot = *byte;
    }
    let mut rng = Rng::new(u64::from_le_bytes(seed));
    let base = &corpus[rng.below(corpus.len())];
    let other = &corpus[rng.below(corpus.len())];
    let mutant = mutate(&mut rng, base, other);
    match check(mutant.as_bytes(), catalog) {
        Outcome::Unsafe(finding) => panic!("unsafe replica routing: {finding}"),
        Outcome::ClassifierPanicked => panic!("pgrw's classifier panicked on {mutant:?}"),
        Outcome::NotSql | Outcome::Agree { .. } => {}
    }
});
