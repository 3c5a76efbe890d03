//! Counters by route reason, statement time per node (a histogram with
//! fixed buckets), errors, and what reads that had to see a position got:
//! what `SHOW STATS` and `/metrics` report beyond units routed.
//!
//! As the rest of [`super::ProxyStats`]: relaxed atomics made at startup, one
//! `fetch_add` each, no lock and no allocation on the statement's path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pgrw_core::route::{NodeId, RouteReason};

/// A route reason without its data: the label it is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonKind {
    /// [`RouteReason::Write`].
    Write,
    /// [`RouteReason::Read`].
    Read,
    /// [`RouteReason::ReplicaHint`].
    ReplicaHint,
    /// [`RouteReason::ReplicaMode`].
    ReplicaMode,
    /// [`RouteReason::PrimaryHint`].
    PrimaryHint,
    /// [`RouteReason::PrimaryMode`].
    PrimaryMode,
    /// [`RouteReason::ReadOnlyTransaction`].
    ReadOnlyTransaction,
    /// [`RouteReason::Transaction`].
    Transaction,
    /// [`RouteReason::InTransaction`].
    InTransaction,
    /// [`RouteReason::ReadInTransaction`].
    ReadInTransaction,
    /// [`RouteReason::OpensTransaction`].
    OpensTransaction,
    /// [`RouteReason::Pinned`].
    Pinned,
    /// [`RouteReason::SessionStatement`].
    SessionStatement,
    /// [`RouteReason::TransactionControl`].
    TransactionControl,
    /// [`RouteReason::Empty`].
    Empty,
    /// [`RouteReason::NoEligibleReplica`].
    NoEligibleReplica,
    /// [`RouteReason::ReadYourWrites`].
    ReadYourWrites,
    /// [`RouteReason::WaitedForReplica`].
    WaitedForReplica,
    /// [`RouteReason::SerializableSession`].
    SerializableSession,
    /// [`RouteReason::PrimaryPosition`].
    PrimaryPosition,
}

impl ReasonKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [ReasonKind; 20] = [
        ReasonKind::Write,
        ReasonKind::Read,
        ReasonKind::ReplicaHint,
        ReasonKind::ReplicaMode,
        ReasonKind::PrimaryHint,
        ReasonKind::PrimaryMode,
        ReasonKind::ReadOnlyTransaction,
        ReasonKind::Transaction,
        ReasonKind::InTransaction,
        ReasonKind::ReadInTransaction,
        ReasonKind::OpensTransaction,
        ReasonKind::Pinned,
        ReasonKind::SessionStatement,
        ReasonKind::TransactionControl,
        ReasonKind::Empty,
        ReasonKind::NoEligibleReplica,
        ReasonKind::ReadYourWrites,
        ReasonKind::WaitedForReplica,
        ReasonKind::SerializableSession,
        ReasonKind::PrimaryPosition,
    ];

    /// The kind of `reason`.
    pub fn of(reason: RouteReason) -> ReasonKind {
        match reason {
            RouteReason::Write => ReasonKind::Write,
            RouteReason::Read => ReasonKind::Read,
            RouteReason::ReplicaHint => ReasonKind::ReplicaHint,
            RouteReason::ReplicaMode => ReasonKind::ReplicaMode,
            RouteReason::PrimaryHint => ReasonKind::PrimaryHint,
            RouteReason::PrimaryMode => ReasonKind::PrimaryMode,
            RouteReason::ReadOnlyTransaction => ReasonKind::ReadOnlyTransaction,
            RouteReason::Transaction(_) => ReasonKind::Transaction,
            RouteReason::InTransaction => ReasonKind::InTransaction,
            RouteReason::ReadInTransaction => ReasonKind::ReadInTransaction,
            RouteReason::OpensTransaction => ReasonKind::OpensTransaction,
            RouteReason::Pinned(_) => ReasonKind::Pinned,
            RouteReason::SessionStatement => ReasonKind::SessionStatement,
            RouteReason::TransactionControl => ReasonKind::TransactionControl,
            RouteReason::Empty => ReasonKind::Empty,
            RouteReason::NoEligibleReplica => ReasonKind::NoEligibleReplica,
            RouteReason::ReadYourWrites(_) => ReasonKind::ReadYourWrites,
            RouteReason::WaitedForReplica(_) => ReasonKind::WaitedForReplica,
            RouteReason::SerializableSession => ReasonKind::SerializableSession,
            RouteReason::PrimaryPosition => ReasonKind::PrimaryPosition,
        }
    }

    /// Its label in `SHOW STATS` and `/metrics` (`read_your_writes`, …).
    pub fn label(self) -> &'static str {
        match self {
            ReasonKind::Write => "write",
            ReasonKind::Read => "read",
            ReasonKind::ReplicaHint => "replica_hint",
            ReasonKind::ReplicaMode => "replica_mode",
            ReasonKind::PrimaryHint => "primary_hint",
            ReasonKind::PrimaryMode => "primary_mode",
            ReasonKind::ReadOnlyTransaction => "read_only_transaction",
            ReasonKind::Transaction => "transaction",
            ReasonKind::InTransaction => "in_transaction",
            ReasonKind::ReadInTransaction => "read_in_transaction",
            ReasonKind::OpensTransaction => "opens_transaction",
            ReasonKind::Pinned => "pinned",
            ReasonKind::SessionStatement => "session_statement",
            ReasonKind::TransactionControl => "transaction_control",
            ReasonKind::Empty => "empty",
            ReasonKind::NoEligibleReplica => "no_eligible_replica",
            ReasonKind::ReadYourWrites => "read_your_writes",
            ReasonKind::WaitedForReplica => "waited_for_replica",
            ReasonKind::SerializableSession => "serializable_session",
            ReasonKind::PrimaryPosition => "primary_position",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What a read that had a position to see (read-your-writes, a token, a
/// proxy-wide write) got: the stale reads pgrw avoided, and at what cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StaleAvoidance {
    /// A replica had already replayed the position: served there at once.
    ReplicaServed,
    /// The read waited (at most `read_your_writes_wait_ms`) and a replica
    /// caught up: served there.
    WaitedThenReplica,
    /// No replica had the position in time: the primary served it.
    PrimaryFallback,
}

impl StaleAvoidance {
    /// Every outcome, in report order.
    pub const ALL: [StaleAvoidance; 3] = [
        StaleAvoidance::ReplicaServed,
        StaleAvoidance::WaitedThenReplica,
        StaleAvoidance::PrimaryFallback,
    ];

    /// Its label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            StaleAvoidance::ReplicaServed => "replica_served",
            StaleAvoidance::WaitedThenReplica => "waited_then_replica",
            StaleAvoidance::PrimaryFallback => "primary_fallback",
        }
    }
}

/// The upper bounds of the statement-time histogram's buckets, in
/// microseconds (Prometheus' `le`; the last bucket, `+Inf`, is implied).
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Statements, errors and time under one label.
#[derive(Debug, Default)]
struct Tally {
    statements: AtomicU64,
    errors: AtomicU64,
    time_us: AtomicU64,
}

/// One node's statement times, alone on their cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct NodeTiming {
    tally: Tally,
    /// Not cumulative: bucket `i` counts times in (`LATENCY_BUCKETS_US[i-1]`,
    /// `LATENCY_BUCKETS_US[i]`]; the last one, everything above.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
}

/// Statements, errors and total time, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TallySnapshot {
    /// Statements (units of work) finished.
    pub statements: u64,
    /// Of them, those answered with an error.
    pub errors: u64,
    /// Their time, from checkout to ReadyForQuery, in microseconds.
    pub time_us: u64,
}

/// One node's statement times, as read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeTimingSnapshot {
    /// Statements, errors and total time.
    pub tally: TallySnapshot,
    /// Cumulative counts at each of [`LATENCY_BUCKETS_US`], then `+Inf`.
    pub cumulative_buckets: Vec<u64>,
}

/// The route counters of one proxy.
#[derive(Debug)]
pub struct RouteStats {
    reasons: [Tally; ReasonKind::ALL.len()],
    nodes: Box<[NodeTiming]>,
    stale: [AtomicU64; StaleAvoidance::ALL.len()],
}

/// [`RouteStats`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteStatsSnapshot {
    /// By reason, in [`ReasonKind::ALL`] order.
    pub reasons: Vec<(ReasonKind, TallySnapshot)>,
    /// By node index.
    pub nodes: Vec<NodeTimingSnapshot>,
    /// By outcome, in [`StaleAvoidance::ALL`] order.
    pub stale: Vec<(StaleAvoidance, u64)>,
}

impl RouteStats {
    /// Zeroed counters for `nodes` nodes.
    pub fn new(nodes: usize) -> RouteStats {
        RouteStats {
            reasons: Default::default(),
            nodes: (0..nodes).map(|_| NodeTiming::default()).collect(),
            stale: Default::default(),
        }
    }

    /// Counts one unit that ran on `node` for `reason`, for `elapsed`,
    /// answered with an error or not.
    pub fn record_finished(
        &self,
        node: NodeId,
        reason: ReasonKind,
        elapsed: Duration,
        errored: bool,
    ) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.reasons[reason.index()].add(micros, errored);
        if let Some(timing) = self.nodes.get(node.index()) {
            timing.tally.add(micros, errored);
            let bucket = LATENCY_BUCKETS_US.partition_point(|&bound| bound < micros);
            timing.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts what a read with a position to see got.
    pub fn record_stale_avoidance(&self, outcome: StaleAvoidance) {
        self.stale[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> RouteStatsSnapshot {
        RouteStatsSnapshot {
            reasons: ReasonKind::ALL
                .iter()
                .map(|&kind| (kind, self.reasons[kind.index()].snapshot()))
                .collect(),
            nodes: self
                .nodes
                .iter()
                .map(|timing| {
                    let mut total = 0;
                    let cumulative_buckets = timing
                        .buckets
                        .iter()
                        .map(|bucket| {
                            total += bucket.load(Ordering::Relaxed);
                            total
                        })
                        .collect();
                    NodeTimingSnapshot {
                        tally: timing.tally.snapshot(),
                        cumulative_buckets,
                    }
                })
                .collect(),
            stale: StaleAvoidance::ALL
                .iter()
                .map(|&outcome| {
                    (
                        outcome,
                        self.stale[outcome as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
        }
    }
}

impl Tally {
    fn add(&self, micros: u64, errored: bool) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.time_us.fetch_add(micros, Ordering::Relaxed);
        if errored {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> TallySnapshot {
        TallySnapshot {
            statements: self.statements.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            time_us: self.time_us.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgrw_core::Lsn;

    #[test]
    fn a_reason_with_data_counts_under_its_kind() {
        let stats = RouteStats::new(1);
        stats.record_finished(
            NodeId(0),
            ReasonKind::of(RouteReason::ReadYourWrites(Lsn(5))),
            Duration::from_millis(2),
            true,
        );
        let snapshot = stats.snapshot();
        let (_, tally) = snapshot
            .reasons
            .iter()
            .find(|(kind, _)| *kind == ReasonKind::ReadYourWrites)
            .copied()
            .expect("every kind is reported");
        assert_eq!(
            tally,
            TallySnapshot {
                statements: 1,
                errors: 1,
                time_us: 2_000
            }
        );
    }

    #[test]
    fn statement_times_fall_in_cumulative_buckets_with_the_bound_inclusive() {
        let stats = RouteStats::new(1);
        for millis in [1, 3, 20_000] {
            stats.record_finished(
                NodeId(0),
                ReasonKind::Read,
                Duration::from_millis(millis),
                false,
            );
        }
        let buckets = &stats.snapshot().nodes[0].cumulative_buckets;
        assert_eq!(buckets.len(), LATENCY_BUCKETS_US.len() + 1);
        assert_eq!(buckets[0], 0, "500 µs");
        assert_eq!(buckets[1], 1, "1 ms: its bound is inclusive");
        assert_eq!(buckets[3], 2, "5 ms");
        assert_eq!(buckets[LATENCY_BUCKETS_US.len() - 1], 2, "10 s");
        assert_eq!(buckets[LATENCY_BUCKETS_US.len()], 3, "+Inf");
    }

    #[test]
    fn every_kind_has_its_own_label_and_index() {
        let labels: std::collections::HashSet<_> =
            ReasonKind::ALL.iter().map(|kind| kind.label()).collect();
        assert_eq!(labels.len(), ReasonKind::ALL.len());
        for (index, kind) in ReasonKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), index);
        }
    }
}
