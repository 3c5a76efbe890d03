//! What the proxy has done so far, per node: units of work routed there, by
//! kind, and statements given up on because the node hung; statements
//! cancelled because their client left; reads a replica refused and the
//! primary ran again, by reason; reads made in a deferred transaction before
//! its first write; and client connections, open and in all;
//! by route reason, statement time per node and stale reads avoided
//! ([`routes`]). For the admin console, `/metrics`, status displays (`pgrw up`) and tests.
//!
//! Counting is on the hot path, so it is one relaxed `fetch_add` on a counter
//! made at startup: no lock, no allocation. The counters are independent, so a
//! [`StatsSnapshot`] is not one instant but each number in it is exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod routes;

pub use routes::{
    LATENCY_BUCKETS_US, NodeTimingSnapshot, ReasonKind, RouteStats, RouteStatsSnapshot,
    StaleAvoidance, TallySnapshot,
};

use pgrw_core::StatementClass;
use pgrw_core::route::NodeId;

/// The live counters of one proxy.
#[derive(Debug)]
pub struct ProxyStats {
    /// One entry per configured node, at the node's [`NodeId`] index.
    nodes: Box<[NodeCounters]>,
    /// Client connections accepted and not yet closed.
    connections_open: AtomicU64,
    /// Client connections accepted since start.
    connections_total: AtomicU64,
    /// Statements given up on because their client left mid-statement.
    abandoned: AtomicU64,
    lost_write_positions: AtomicU64,
    /// Reads rerun on the primary, by [`RerunReason`] (its index).
    reruns: [AtomicU64; 3],
    /// Statement shapes learned to run only on the primary.
    shapes_learned: AtomicU64,
    /// By route reason, statement time per node, stale reads avoided.
    pub routes: RouteStats,
}

/// Why a read a replica refused before answering anything was run again on
/// the primary (docs/proxy.md, "Self-healing routes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RerunReason {
    /// `25006`: it writes (a function the classifier took for read-only).
    ReadOnlyTransaction,
    /// `0A000`: it reads an unlogged (or another session's temporary)
    /// relation, which a node in recovery cannot access.
    RecoveryRelation,
    /// It was cancelled by a conflict with the replica's WAL replay.
    RecoveryConflict,
}

impl RerunReason {
    fn index(self) -> usize {
        match self {
            RerunReason::ReadOnlyTransaction => 0,
            RerunReason::RecoveryRelation => 1,
            RerunReason::RecoveryConflict => 2,
        }
    }

    /// Whether the statement's shape should be remembered: true when it can
    /// never run on a replica, false for a conflict, which is a matter of
    /// timing.
    pub fn is_lasting(self) -> bool {
        !matches!(self, RerunReason::RecoveryConflict)
    }
}

/// Reads rerun on the primary, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reruns {
    /// [`RerunReason::ReadOnlyTransaction`].
    pub read_only_transaction: u64,
    /// [`RerunReason::RecoveryRelation`].
    pub recovery_relation: u64,
    /// [`RerunReason::RecoveryConflict`].
    pub recovery_conflict: u64,
}

impl Reruns {
    /// Every rerun.
    pub fn total(&self) -> u64 {
        self.read_only_transaction + self.recovery_relation + self.recovery_conflict
    }
}

/// One node's counters, alone on their cache line: sessions routing to
/// different nodes do not slow each other down.
#[derive(Debug, Default)]
#[repr(align(128))]
struct NodeCounters {
    reads: AtomicU64,
    writes: AtomicU64,
    other: AtomicU64,
    stalled: AtomicU64,
    reads_in_transaction: AtomicU64,
}

/// Units of work routed to one node, by how the classifier saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeRouted {
    /// Reads ([`StatementClass::Read`]).
    pub reads: u64,
    /// Writes ([`StatementClass::Write`]).
    pub writes: u64,
    /// Transaction control, savepoints and session statements (`BEGIN`,
    /// `COMMIT`, `SET`, …): they run wherever the session is.
    pub other: u64,
}

impl NodeRouted {
    /// Every unit routed to the node.
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.other
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Per node, at the node's [`NodeId`] index.
    pub nodes: Vec<NodeRouted>,
    /// Client connections open now.
    pub connections_open: u64,
    /// Client connections accepted since the proxy started.
    pub connections_total: u64,
    /// Per node, at the node's [`NodeId`] index: statements given up on
    /// because the node sent nothing for `pool.stall_timeout_ms` and did not
    /// answer a liveness check either.
    pub stalled: Vec<u64>,
    /// Statements cancelled because their client disconnected while they ran.
    pub abandoned: u64,
    /// Writes acknowledged whose commit position could not be read (their
    /// node failing right after the commit): reads then waited for the
    /// primary's next position.
    pub lost_write_positions: u64,
    /// Reads a replica refused before answering anything, run again on the primary.
    pub reruns: Reruns,
    /// Statement shapes learned to run only on the primary (each once).
    pub shapes_learned: u64,
    /// Per node, at the node's [`NodeId`] index: the reads (among
    /// [`NodeRouted::reads`]) made in a deferred transaction before its
    /// first write (`transaction_reads = "replica"`).
    pub reads_in_transaction: Vec<u64>,
    /// By route reason, statement time per node, stale reads avoided.
    pub routes: RouteStatsSnapshot,
}

impl StatsSnapshot {
    /// What was routed to `node` (zero for a node the proxy does not know).
    pub fn node(&self, node: NodeId) -> NodeRouted {
        self.nodes.get(node.index()).copied().unwrap_or_default()
    }
}

impl ProxyStats {
    /// Zeroed counters for `nodes` nodes.
    pub fn new(nodes: usize) -> ProxyStats {
        ProxyStats {
            nodes: (0..nodes).map(|_| NodeCounters::default()).collect(),
            connections_open: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            lost_write_positions: AtomicU64::new(0),
            reruns: Default::default(),
            shapes_learned: AtomicU64::new(0),
            routes: RouteStats::new(nodes),
        }
    }

    /// Counts one unit of work of `class` routed to `node`. A unit with no
    /// statement ([`StatementClass::Empty`]: an empty query, a batch of
    /// Close messages) is not counted.
    pub fn record_routed(&self, node: NodeId, class: StatementClass) {
        let Some(counters) = self.nodes.get(node.index()) else {
            return;
        };
        let counter = match class {
            StatementClass::Empty => return,
            StatementClass::Read => &counters.reads,
            StatementClass::Write => &counters.writes,
            StatementClass::Begin(_)
            | StatementClass::SetTransaction(_)
            | StatementClass::Commit
            | StatementClass::Rollback
            | StatementClass::Savepoint
            | StatementClass::Session => &counters.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a read routed to `node` in a deferred transaction, before its
    /// first write (also counted by [`ProxyStats::record_routed`]).
    pub fn record_read_in_transaction(&self, node: NodeId) {
        if let Some(counters) = self.nodes.get(node.index()) {
            counters
                .reads_in_transaction
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a statement on `node` given up on because the node hangs.
    pub fn record_stalled(&self, node: NodeId) {
        if let Some(counters) = self.nodes.get(node.index()) {
            counters.stalled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a write acknowledged whose commit position could not be read.
    pub fn record_lost_write_position(&self) {
        self.lost_write_positions.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a statement cancelled because its client left.
    pub fn record_abandoned(&self) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a read run again on the primary for `reason`.
    pub fn record_rerun(&self, reason: RerunReason) {
        self.reruns[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a statement shape learned to run only on the primary.
    pub fn record_shape_learned(&self) {
        self.shapes_learned.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a client connection as open until the returned guard is dropped.
    pub fn connection_opened(self: &Arc<ProxyStats>) -> OpenConnection {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        let open = self.connections_open.fetch_add(1, Ordering::Relaxed) + 1;
        OpenConnection(self.clone(), open)
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            nodes: self
                .nodes
                .iter()
                .map(|counters| NodeRouted {
                    reads: counters.reads.load(Ordering::Relaxed),
                    writes: counters.writes.load(Ordering::Relaxed),
                    other: counters.other.load(Ordering::Relaxed),
                })
                .collect(),
            connections_open: self.connections_open.load(Ordering::Relaxed),
            connections_total: self.connections_total.load(Ordering::Relaxed),
            stalled: self
                .nodes
                .iter()
                .map(|counters| counters.stalled.load(Ordering::Relaxed))
                .collect(),
            abandoned: self.abandoned.load(Ordering::Relaxed),
            lost_write_positions: self.lost_write_positions.load(Ordering::Relaxed),
            reruns: Reruns {
                read_only_transaction: self.reruns[0].load(Ordering::Relaxed),
                recovery_relation: self.reruns[1].load(Ordering::Relaxed),
                recovery_conflict: self.reruns[2].load(Ordering::Relaxed),
            },
            shapes_learned: self.shapes_learned.load(Ordering::Relaxed),
            reads_in_transaction: self
                .nodes
                .iter()
                .map(|counters| counters.reads_in_transaction.load(Ordering::Relaxed))
                .collect(),
            routes: self.routes.snapshot(),
        }
    }
}

/// One open client connection; dropping it (however the session ends, also
/// when its task is aborted at shutdown) counts it as closed.
#[derive(Debug)]
#[must_use = "the connection counts as closed when this is dropped"]
pub struct OpenConnection(Arc<ProxyStats>, u64);

impl OpenConnection {
    /// How many client connections were open, this one included, when it opened.
    pub fn open_then(&self) -> u64 {
        self.1
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgrw_core::TxAccess;

    #[test]
    fn a_routed_unit_counts_on_its_node_by_kind() {
        let stats = ProxyStats::new(3);
        stats.record_routed(NodeId(1), StatementClass::Read);
        stats.record_routed(NodeId(1), StatementClass::Read);
        stats.record_routed(NodeId(0), StatementClass::Write);
        stats.record_routed(NodeId(0), StatementClass::Begin(TxAccess::Unspecified));
        stats.record_routed(NodeId(0), StatementClass::Commit);

        let snapshot = stats.snapshot();
        assert_eq!(
            snapshot.node(NodeId(0)),
            NodeRouted {
                reads: 0,
                writes: 1,
                other: 2
            }
        );
        assert_eq!(snapshot.node(NodeId(1)).reads, 2);
        assert_eq!(snapshot.node(NodeId(1)).total(), 2);
        assert_eq!(snapshot.node(NodeId(2)).total(), 0);
    }

    #[test]
    fn a_unit_with_no_statement_is_not_counted() {
        let stats = ProxyStats::new(1);
        stats.record_routed(NodeId(0), StatementClass::Empty);
        assert_eq!(stats.snapshot().node(NodeId(0)).total(), 0);
    }

    #[test]
    fn a_node_outside_the_configuration_is_ignored() {
        let stats = ProxyStats::new(1);
        stats.record_routed(NodeId(7), StatementClass::Read);
        assert_eq!(stats.snapshot().nodes, vec![NodeRouted::default()]);
        assert_eq!(stats.snapshot().node(NodeId(7)), NodeRouted::default());
    }

    #[test]
    fn a_connection_is_open_until_its_guard_drops_and_counts_in_the_total_after() {
        let stats = Arc::new(ProxyStats::new(0));
        let first = stats.connection_opened();
        let second = stats.connection_opened();
        assert_eq!(stats.snapshot().connections_open, 2);
        drop(first);
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.connections_open, snapshot.connections_total),
            (1, 2)
        );
        drop(second);
        assert_eq!(stats.snapshot().connections_open, 0);
        assert_eq!(stats.snapshot().connections_total, 2);
    }

    #[test]
    fn a_rerun_counts_under_its_reason() {
        let stats = ProxyStats::new(1);
        stats.record_rerun(RerunReason::RecoveryRelation);
        stats.record_rerun(RerunReason::RecoveryRelation);
        stats.record_rerun(RerunReason::RecoveryConflict);
        stats.record_shape_learned();
        let snapshot = stats.snapshot();
        assert_eq!(
            snapshot.reruns,
            Reruns {
                read_only_transaction: 0,
                recovery_relation: 2,
                recovery_conflict: 1,
            }
        );
        assert_eq!(snapshot.reruns.total(), 3);
        assert_eq!(snapshot.shapes_learned, 1);
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let stats = Arc::new(ProxyStats::new(2));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        stats.record_routed(NodeId(1), StatementClass::Read);
                    }
                });
            }
        });
        assert_eq!(stats.snapshot().node(NodeId(1)).reads, 4000);
    }
}
