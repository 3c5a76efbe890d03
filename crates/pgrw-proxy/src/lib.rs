//! pgrw-proxy: the PostgreSQL wire-protocol proxy of pgrw.
//!
//! Its job: frame and decode the wire protocol cheaply (rows are forwarded as
//! bytes, never decoded), authenticate clients and log in to nodes (SCRAM-SHA-256,
//! md5, cleartext), and drive client sessions over pooled backends, routing each
//! statement or transaction to the primary or a replica.
//!
//! [`protocol`] and [`auth`] are sans-I/O: framing, the few messages the proxy
//! decodes, and the login state machines, with randomness passed in. The I/O
//! shell drives them: [`server`] listens and holds what sessions share
//! (`shutdown`: the phases a graceful stop goes through),
//! `session` runs one client (a module per protocol phase), [`pool`] and
//! [`backend`] hold the node connections, [`cancel`] routes CancelRequests,
//! [`config`] reads `pgrw.toml`, `nodes` holds each node by id, [`limits`] raises the open-file limit it needs,
//! [`tls`] loads the certificate clients see, [`unknown_writes`] holds reads
//! back after writes whose position the proxy could not learn,
//! [`stats`] counts what went to which node, `admin` is the console (the
//! virtual database `pgrw`), `metrics` serves Prometheus `/metrics` and
//! `/healthz`, and [`reload`] applies a changed `pgrw.toml` live.
//! Routing decisions come from `pgrw_core`, node state from `pgrw_monitor`.

mod admin;
mod admission;
pub mod auth;
pub mod backend;
pub mod cancel;
mod catalogs;
pub mod config;
pub mod limits;
mod metrics;
mod node_stream;
mod nodes;
pub mod pool;
pub mod protocol;
pub mod reload;
pub mod server;
pub(crate) mod session;
mod shutdown;
pub mod stats;
pub mod tls;
pub mod unknown_writes;
pub(crate) mod workers;

pub use admin::DATABASE as ADMIN_DATABASE;
pub use config::ProxyConfig;
pub use reload::reload;
pub use server::{Proxy, ProxyHandle, ProxyState, StartError};
