//! Password authentication, both ways: the proxy checking its clients (server
//! side) and logging in to nodes (client side), as sans-I/O code.
//!
//! [`scram`] is SCRAM-SHA-256 (PostgreSQL's default) and [`md5`] the legacy md5
//! challenge. [`StoredPassword`] is a user's secret as the proxy knows it — the
//! plaintext, or the hash PostgreSQL keeps in `pg_authid.rolpassword` — and
//! checks cleartext and md5 answers against it. Salts and nonces are passed in.

pub mod md5;
pub mod scram;
mod stored;

pub use stored::StoredPassword;
