//! pgrw's node monitor: the I/O shell around pgrw-core's node health and topology.
//! One task per PostgreSQL node probes its role, WAL position, timeline and WAL
//! receiver; the [`Monitor`] publishes the resulting [`Topology`] that the proxy and
//! the library route by.
//!
//! - [`address`]: where a node is ([`NodeAddress`], read from a connection string).
//! - [`tls`]: TLS to a node (`sslmode`, `sslrootcert`) and Unix socket paths,
//!   shared with the proxy's backend connections.
//! - [`Monitor`]: start it, read or subscribe to the topology, report failures,
//!   wait for a replica to replay a position.
//!
//! Every probe is one query (`pg_is_in_recovery()`; `pg_current_wal_lsn()` and the
//! timeline on a primary; the replay LSN and `pg_stat_wal_receiver` on a replica);
//! its outcome goes through [`pgrw_core::route::NodeHealth`], which bans and unbans.
//! Each replica's lag in time is measured against the primary's progress, and
//! core's [`pgrw_core::route::follows`] says whether it follows the current primary
//! (an orphan gets no reads).

pub mod address;
mod monitor;
mod node_task;
mod probe;
mod state;
pub mod tls;

use std::time::Duration;

pub use address::{DsnError, NodeAddress};
pub use monitor::{Monitor, NotReady};
pub use pgrw_core::route::{HealthPolicy, NodeId, Topology};
pub use probe::connect;
pub use tls::{NodeTls, NodeTlsClient, NodeTlsError, SslMode};

/// How often and how patiently the monitor probes, and what bans a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Time between two probes of a node (default 100 ms).
    pub interval: Duration,
    /// How long a connection attempt or a probe may take before it counts as
    /// failed (default 1 s).
    pub probe_timeout: Duration,
    /// Ban lengths and lag limits, applied by core's health state machine.
    pub health: HealthPolicy,
}

impl Default for MonitorConfig {
    fn default() -> MonitorConfig {
        MonitorConfig {
            interval: Duration::from_millis(100),
            probe_timeout: Duration::from_secs(1),
            health: HealthPolicy::default(),
        }
    }
}
