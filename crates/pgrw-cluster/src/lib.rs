//! pgrw-cluster: a real PostgreSQL primary with N streaming replicas on loopback.
//!
//! It backs `pgrw cluster …`, the quick start, the demo and every integration
//! test (through [`testing`]). [`ClusterSpec::up`] creates or starts a cluster in
//! a directory; [`Cluster`] opens it again to report [`ClusterStatus`], shut it
//! down, or inject faults (stop, start, kill, pause replay, promote).
//!
//! The servers are PostgreSQL's own (`initdb`, `pg_basebackup -R`, `pg_ctl`),
//! found by [`PgBinaries::locate`]. When pgrw runs as root they run as the
//! `postgres` user. The clusters are disposable: `fsync` is off.

mod binaries;
mod cluster;
mod connection;
mod error;
mod layout;
mod ports;
mod process;
mod programs;
mod server_user;
mod spec;
mod status;
pub mod testing;

pub use binaries::{PG_BIN_ENV, PgBinaries, REQUIRED_PROGRAMS};
pub use cluster::Cluster;
pub use connection::dsn;
pub use error::{ClusterError, Result};
pub use layout::{ClusterState, NodeLayout, PRIMARY_NAME};
pub use ports::is_free as is_port_free;
pub use spec::ClusterSpec;
pub use status::{ClusterStatus, NodeStatus, Role};
