//! PostgreSQL's lexical rules. (Stub: to be written.)
