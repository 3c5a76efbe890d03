//! The proxy's nodes by [`NodeId`]: how to reach each one (its `[[nodes]]`
//! table and TLS client), for the pools, the console and `/metrics`.
//!
//! Ids are given once and never reused. A reload that removes a node retires
//! its id; one that adds a node gives it the next id. Everything keyed by an
//! id — the counters in `stats`, a pool's in-flight count, a session's last
//! read node, the monitor's topology — so never mixes two nodes. The per-node
//! counters are fixed arrays read without a lock on the hot path: they are
//! made at start for the configured nodes and [`NODES_ADDED_MAX`] more, and a
//! reload that would need ids past that is refused (a restart numbers the
//! nodes afresh).

use std::sync::RwLock;

use pgrw_core::route::NodeId;
use pgrw_monitor::NodeTlsClient;

use crate::config::NodeConfig;

/// How many nodes reloads may add over a proxy's life (ids past the
/// configured nodes the per-node counters are made for).
pub(crate) const NODES_ADDED_MAX: usize = 64;

/// One id's node.
#[derive(Clone)]
struct Slot {
    config: NodeConfig,
    tls: NodeTlsClient,
    /// Removed by a reload: the id stays taken.
    retired: bool,
}

/// Every node the proxy was given, at its id.
pub(crate) struct NodeTable {
    slots: RwLock<Vec<Slot>>,
    capacity: usize,
}

impl NodeTable {
    /// The configured `nodes` (ids in order) and their TLS clients.
    pub(crate) fn new(nodes: &[NodeConfig], tls: Vec<NodeTlsClient>) -> NodeTable {
        let slots = nodes
            .iter()
            .zip(tls)
            .map(|(config, tls)| Slot {
                config: config.clone(),
                tls,
                retired: false,
            })
            .collect();
        NodeTable {
            slots: RwLock::new(slots),
            capacity: nodes.len() + NODES_ADDED_MAX,
        }
    }

    /// How many ids the per-node counters are made for.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many ids were given so far (retired ones included).
    pub(crate) fn ids_given(&self) -> usize {
        self.read().len()
    }

    /// How `node` is reached; `None` for an id never given or retired.
    pub(crate) fn get(&self, node: NodeId) -> Option<(NodeConfig, NodeTlsClient)> {
        let slots = self.read();
        let slot = slots.get(node.index()).filter(|slot| !slot.retired)?;
        Some((slot.config.clone(), slot.tls.clone()))
    }

    /// The nodes in use, by id.
    pub(crate) fn live(&self) -> Vec<(NodeId, NodeConfig)> {
        self.read()
            .iter()
            .enumerate()
            .filter(|(_, slot)| !slot.retired)
            .map(|(index, slot)| (NodeId(index as u16), slot.config.clone()))
            .collect()
    }

    /// The node in use called `name`.
    pub(crate) fn id_of(&self, name: &str) -> Option<NodeId> {
        self.read()
            .iter()
            .position(|slot| !slot.retired && slot.config.name == name)
            .map(|index| NodeId(index as u16))
    }

    /// Takes a node at `id`, which must be the next id (the monitor's).
    /// False, and nothing taken, when it is not, or past the capacity.
    pub(crate) fn add(&self, id: NodeId, config: NodeConfig, tls: NodeTlsClient) -> bool {
        let mut slots = self.write();
        if id.index() != slots.len() || id.index() >= self.capacity {
            return false;
        }
        slots.push(Slot {
            config,
            tls,
            retired: false,
        });
        true
    }

    /// Retires `node`: it is no longer reached, and its id stays taken.
    pub(crate) fn retire(&self, node: NodeId) {
        if let Some(slot) = self.write().get_mut(node.index()) {
            slot.retired = true;
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Slot>> {
        self.slots
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Slot>> {
        self.slots
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
