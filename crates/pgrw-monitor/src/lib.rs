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
    /// How long a probe on an open connection may take before it counts as
    /// failed (default 1 s): a hung node is banned this soon.
    pub probe_timeout: Duration,
    /// How long opening a probe connection (TCP, TLS, login, preparing the
    /// probe) may take (default 5 s). Longer than a probe: a busy server can
    /// take over a second to fork and authenticate a backend, and a node
    /// whose every attempt is cut short never answers at all. A node that is
    /// down refuses at once, whatever this is; one that hangs was already
    /// banned by its last probe.
    pub connect_timeout: Duration,
    /// Ban lengths and lag limits, applied by core's health state machine.
    pub health: HealthPolicy,
}

impl Default for MonitorConfig {
    fn default() -> MonitorConfig {
        MonitorConfig {
            interval: Duration::from_millis(100),
            probe_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
            health: HealthPolicy::default(),
        }
    }
}
