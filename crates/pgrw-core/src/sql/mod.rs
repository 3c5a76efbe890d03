//! SQL text: a lexer for PostgreSQL's lexical rules and the statement classifier.

pub mod classify;
pub(crate) mod hints;
pub(crate) mod keywords;
pub mod lexer;
pub mod shape;
pub mod transaction;
pub(crate) mod wordtable;
