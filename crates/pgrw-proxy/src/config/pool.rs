//! `[pool]`: backend pools, one per (node, database, user).

use std::time::Duration;

use serde::Deserialize;

/// Whether a client gives its backend back after each transaction or keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PoolMode {
    /// Backends return to the pool when a transaction ends (the default).
    #[default]
    Transaction,
    /// A client keeps each backend it used until it disconnects.
    Session,
}

/// Backend pools, one per (node, database, user).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Most connections per pool (default 20).
    pub size: usize,
    /// Transaction (default) or session pooling.
    pub mode: PoolMode,
    /// An idle connection unused this long is closed (default 300).
    pub idle_timeout_secs: u64,
    /// A connection older than this is closed when returned (default 3600).
    pub max_lifetime_secs: u64,
    /// How long connecting and logging in to a node may take (default 5000).
    pub connect_timeout_ms: u64,
    /// How long a client waits for a free connection (default 5000).
    pub checkout_timeout_ms: u64,
    /// How long a statement in flight may go without a byte from its node
    /// before the proxy asks the node monitor whether the node still answers
    /// (default 10000). Only a node that also fails the monitor's probes is
    /// given up on: a long query on a healthy node is never cut short.
    pub stall_timeout_ms: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: 20,
            mode: PoolMode::Transaction,
            idle_timeout_secs: 300,
            max_lifetime_secs: 3600,
            connect_timeout_ms: 5000,
            checkout_timeout_ms: 5000,
            stall_timeout_ms: 10_000,
        }
    }
}

impl PoolConfig {
    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    /// The maximum lifetime.
    pub fn max_lifetime(&self) -> Duration {
        Duration::from_secs(self.max_lifetime_secs)
    }
    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// The checkout timeout.
    pub fn checkout_timeout(&self) -> Duration {
        Duration::from_millis(self.checkout_timeout_ms)
    }
    /// The stall timeout.
    pub fn stall_timeout(&self) -> Duration {
        Duration::from_millis(self.stall_timeout_ms)
    }
}
