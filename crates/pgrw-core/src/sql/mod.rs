//! SQL text: a lexer for PostgreSQL's lexical rules and the statement classifier.

pub mod classify;
pub mod lexer;
