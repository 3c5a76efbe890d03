//! pgrw-oracle: PostgreSQL's own parser (`pg_query`) as the judge of pgrw's
//! SQL lexer and classifier. Test-only and outside the default build: it links
//! libpg_query (C, built with libclang) and is run on purpose with
//! `cargo test -p pgrw-oracle`.

pub mod corpus;
pub mod differential;
pub mod functions;
pub mod judge;
pub mod mutate;
pub mod timing;
pub mod tokens;

pub use corpus::{CorpusEntry, Expected, load_corpus};
pub use judge::{Effect, judge};
