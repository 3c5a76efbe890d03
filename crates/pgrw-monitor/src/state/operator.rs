//! What an operator or a reload changes in the monitor's nodes: a node
//! added, drained, retired, banned or unbanned, or given a weight. Each
//! change is published at once as a new topology.

use std::sync::Arc;

use pgrw_core::route::NodeId;

use super::{MonitorState, NodeState};
use crate::address::NodeAddress;

impl MonitorState {
    /// Takes a new node, not probed yet, at the next [`NodeId`]: ids are
    /// never reused, so nothing keyed by an id (stats, a session's last
    /// read) can mistake it for a node removed before. `None` when every
    /// id is taken.
    pub(crate) fn add(&self, address: NodeAddress) -> Option<NodeId> {
        let mut nodes = self.lock();
        let id = NodeId(u16::try_from(nodes.states.len()).ok()?);
        tracing::info!(node = %address.name, %id, "node added by a reload: probing it");
        nodes.states.push(NodeState::new(address));
        self.publish(&mut nodes, self.now());
        Some(id)
    }

    /// Drains `node`: still probed, but shown as [`Orphan::Removed`] from now
    /// on, so that no new unit goes to it while a transaction or pin on it
    /// finishes. False for a node the monitor does not have or retired.
    pub(crate) fn drain(&self, node: NodeId) -> bool {
        let mut nodes = self.lock();
        let Some(state) = nodes.in_use(node) else {
            return false;
        };
        if !state.draining {
            tracing::info!(node = %state.name, "node removed by a reload: no new reads or writes, what is on it finishes");
            state.draining = true;
        }
        let now = self.now();
        self.judge_replicas(&mut nodes, now);
        self.publish(&mut nodes, now);
        true
    }

    /// Retires `node`: forgotten but for its place, down with an unknown
    /// role in every topology from now on. False for a node the monitor
    /// does not have or retired already.
    pub(crate) fn retire(&self, node: NodeId) -> bool {
        let mut nodes = self.lock();
        let Some(state) = nodes.states.get_mut(node.index()) else {
            return false;
        };
        if state.retired {
            return false;
        }
        tracing::info!(node = %state.name, "node removed by a reload: no longer probed");
        let mut retired = NodeState::new(state.address.clone());
        retired.retired = true;
        retired.wake = Arc::clone(&state.wake);
        *state = retired;
        let now = self.now();
        self.judge_replicas(&mut nodes, now);
        self.publish(&mut nodes, now);
        true
    }

    /// Bans `node` (or lifts that ban) on an operator's word: while banned it
    /// is shown banned in every topology, whatever its probes find, so that
    /// nothing is routed to it. False for a node the monitor does not have.
    pub(crate) fn set_operator_ban(&self, node: NodeId, banned: bool) -> bool {
        let mut nodes = self.lock();
        let Some(state) = nodes.in_use(node) else {
            return false;
        };
        let name = Arc::clone(&state.name);
        if state.operator_banned != banned {
            state.operator_banned = banned;
            match banned {
                true => {
                    tracing::warn!(node = %name, "node banned by an operator: no reads or writes until UNBAN")
                }
                false => {
                    tracing::warn!(node = %name, "operator's ban lifted: the node's probes decide again")
                }
            }
        }
        self.publish(&mut nodes, self.now());
        true
    }

    /// Sets `node`'s weight and publishes the topology with it.
    pub(crate) fn set_weight(&self, node: NodeId, weight: u32) {
        let mut nodes = self.lock();
        if let Some(state) = nodes.states.get_mut(node.index()) {
            state.weight = Some(weight);
            self.publish(&mut nodes, self.now());
        }
    }

    /// Whether an operator banned `node`.
    pub(crate) fn operator_banned(&self, node: NodeId) -> bool {
        self.lock()
            .states
            .get(node.index())
            .is_some_and(|state| state.operator_banned)
    }
}
