//! What the console's `SHOW NODES` and the `/metrics` endpoint both say of
//! each node, gathered once from the topology, the pools and the counters.

use std::time::{Duration, SystemTime};

use pgrw_core::Lsn;
use pgrw_core::route::{Health, NodeId, Role};

use crate::server::ProxyState;
use crate::stats::{NodeRouted, StatsSnapshot};

/// One node now.
#[derive(Debug, Clone)]
pub(crate) struct NodeReport {
    /// Its id (stats are kept by it).
    pub(crate) id: NodeId,
    /// Its configured name.
    pub(crate) name: String,
    /// `host:port`.
    pub(crate) address: String,
    /// Its role, as the last probe found it.
    pub(crate) role: Role,
    /// Its health as routing sees it.
    pub(crate) health: Health,
    /// Whether an operator banned it (`BAN`).
    pub(crate) operator_banned: bool,
    /// When a timed ban ends, in wall-clock time.
    pub(crate) banned_until: Option<SystemTime>,
    /// Its replayed (replica) or current (primary) WAL position, if known.
    pub(crate) lsn: Option<Lsn>,
    /// WAL bytes behind the primary (a replica, when known).
    pub(crate) lag_bytes: Option<u64>,
    /// How long its data is older than the primary's (a replica, when known).
    pub(crate) lag_ms: Option<u64>,
    /// For a replica that answers but does not follow the primary: why.
    pub(crate) orphan: Option<String>,
    /// Units routed to it.
    pub(crate) routed: NodeRouted,
    /// Units answered with an error, and statements given up on (hung).
    pub(crate) errors: u64,
    /// Backend connections checked out on it now, over all pools.
    pub(crate) in_use: u64,
    /// Idle backend connections kept for it, over all pools.
    pub(crate) idle: u64,
}

impl NodeReport {
    /// `up`, `down`, `banned` or `banned by operator`.
    pub(crate) fn health_label(&self) -> &'static str {
        match (self.operator_banned, self.health) {
            (true, _) => "banned by operator",
            (false, Health::Up) => "up",
            (false, Health::Down) => "down",
            (false, Health::Banned { .. }) => "banned",
        }
    }
}

/// Every configured node, in order, with `stats` read by the caller.
pub(crate) fn node_reports(state: &ProxyState, stats: &StatsSnapshot) -> Vec<NodeReport> {
    let topology = state.topology();
    let now = state.monitor.now();
    let wall_now = SystemTime::now();
    let in_flight: Vec<u32> = state.pools.in_flight().collect();
    let mut idle = vec![0u64; state.nodes.capacity()];
    for pool in state.pools.all() {
        if let Some(count) = idle.get_mut(pool.node().index()) {
            *count += pool.usage().idle as u64;
        }
    }
    state
        .nodes
        .live()
        .into_iter()
        .map(|(id, config)| {
            let index = id.index();
            let node = topology.node(id);
            let operator_banned = state.monitor.operator_banned(id);
            let health = node.map_or(Health::Down, |node| node.health);
            let banned_until = match health {
                Health::Banned { until } if !operator_banned => {
                    Some(wall_now + until.saturating_sub(now))
                }
                _ => None,
            };
            let timing = stats.routes.nodes.get(index);
            NodeReport {
                id,
                name: config.name.clone(),
                address: format!("{}:{}", config.host, config.port),
                role: node.map_or(Role::Unknown, |node| node.role),
                health,
                operator_banned,
                banned_until,
                lsn: node
                    .map(|node| node.replay_lsn)
                    .filter(|lsn| lsn.is_valid()),
                lag_bytes: node.and_then(|node| node.lag.bytes),
                lag_ms: node.and_then(|node| node.lag.millis),
                orphan: node.and_then(|node| node.orphan).map(|why| why.to_string()),
                routed: stats.node(id),
                errors: timing.map_or(0, |timing| timing.tally.errors)
                    + stats.stalled.get(index).copied().unwrap_or(0),
                in_use: in_flight.get(index).copied().map_or(0, u64::from),
                idle: idle.get(index).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// A time `ago` before now, in wall-clock time.
pub(crate) fn since(ago: Duration) -> SystemTime {
    SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}
