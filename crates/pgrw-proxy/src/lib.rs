//! pgrw-proxy: the PostgreSQL wire-protocol proxy of pgrw.
//!
//! Its job: frame and decode the wire protocol cheaply (rows are forwarded as
//! bytes, never decoded), authenticate clients and log in to nodes (SCRAM-SHA-256,
//! md5, cleartext), and — later — drive client sessions over pooled backends.
//!
//! Everything here is sans-I/O so far: [`protocol`] turns buffered bytes into
//! frames and frames into the few messages the proxy inspects, and [`auth`] holds
//! the login state machines, with randomness passed in. The session, pool and
//! routing shell that owns sockets comes later and drives this code.

pub mod auth;
pub mod protocol;
