//! The routing policy: how reads are spread, whether the primary serves them,
//! how much lag is tolerated, and what a read does when no replica has
//! replayed what its session must see.

use std::fmt;
use std::time::Duration;

/// How a read picks among the nodes that may serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Balancing {
    /// Uniformly at random (the origin's `random.choice`).
    Random,
    /// Each candidate in turn.
    RoundRobin,
    /// The candidate with the fewest requests in flight, as the driver counts
    /// them ([`crate::route::Balancer::set_load`]); ties at random. The default:
    /// with no load it is `Random`, and under load it keeps every replica
    /// equally busy, so fewer server processes take turns.
    #[default]
    LeastOutstanding,
    /// At random, in proportion to each node's weight.
    Weighted,
}

impl fmt::Display for Balancing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Balancing::Random => "random",
            Balancing::RoundRobin => "round_robin",
            Balancing::LeastOutstanding => "least_outstanding",
            Balancing::Weighted => "weighted",
        })
    }
}

/// Whether the primary serves reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PrimaryReads {
    /// Never: with no replica able to serve, a read has nowhere to go
    /// (except the read-your-writes fallback, which the policy asks for
    /// separately with [`StaleRead::Primary`]).
    Never,
    /// Always: the primary is one more read candidate.
    Always,
    /// Only when no replica can serve the read. The default.
    #[default]
    WhenNoReplica,
}

impl fmt::Display for PrimaryReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrimaryReads::Never => "never",
            PrimaryReads::Always => "always",
            PrimaryReads::WhenNoReplica => "when_no_replica",
        })
    }
}

/// What a read does when replicas are up but none has replayed the position
/// its session requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StaleRead {
    /// Go to the primary at once. The default.
    #[default]
    Primary,
    /// Wait up to this long for a replica to catch up, then go to the primary.
    Wait(Duration),
}

/// What a read must see: the consistency scope a driver enforces.
///
/// Whatever the scope, a session's reads are monotonic (a later read never
/// runs on a node behind what an earlier one saw) and a token the client
/// gives (`SET pgrw.min_lsn`) is honoured; lag limits bound everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Consistency {
    /// Every write committed through this proxy (on any connection) before
    /// the read began. The default: an application that writes on one pooled
    /// connection and reads on another sees its write.
    #[default]
    Proxy,
    /// Only the same client connection's writes.
    Connection,
    /// No read-your-writes: only the lag limits.
    Bounded,
    /// Every write committed before the read began, anywhere (through any
    /// proxy or straight to the primary): the read waits for a replica that
    /// has replayed the primary's position as of a probe begun after it.
    Linearizable,
}

impl Consistency {
    /// Whether a session's own writes bind its reads.
    pub fn own_writes(self) -> bool {
        self != Consistency::Bounded
    }

    /// Whether every write committed through this proxy binds every read.
    pub fn proxy_writes(self) -> bool {
        matches!(self, Consistency::Proxy | Consistency::Linearizable)
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Consistency::Proxy => "proxy",
            Consistency::Connection => "connection",
            Consistency::Bounded => "bounded",
            Consistency::Linearizable => "linearizable",
        })
    }
}

/// Where the reads of a `READ COMMITTED` transaction run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TransactionReads {
    /// The whole transaction on the primary, from its `BEGIN`. The default.
    #[default]
    Primary,
    /// Its leading reads on one replica, in a read-only transaction there; the
    /// first statement that is not a plain read opens the transaction on the
    /// primary, where the rest of it runs (see [`crate::route::Deferred`]).
    Replica,
}

impl fmt::Display for TransactionReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransactionReads::Primary => "primary",
            TransactionReads::Replica => "replica",
        })
    }
}

/// The default [`Policy::max_lag`]: a replica whose data is more than 5 s
/// older than the primary's serves no reads. A healthy streaming replica is
/// milliseconds behind; one 5 s behind is paused, held back by a query
/// conflicting with replay (PostgreSQL waits up to `max_standby_streaming_delay`,
/// 30 s by default), or left following nothing. Readers that did not ask for
/// read-your-writes still never see data older than this.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(5);

/// The routing policy.
///
/// Defaults: least-outstanding balancing (ties, as among idle replicas,
/// broken at random: the origin's `random.choice` until load differs), the
/// primary reads only when no replica can,
/// a replica more than [`DEFAULT_MAX_LAG`] behind serves no reads (no limit in
/// bytes), read-your-writes on, and a read no replica can serve
/// consistently goes to the primary; transactions run whole on the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    /// How reads pick among candidates.
    pub balancing: Balancing,
    /// Whether the primary serves reads.
    pub primary_reads: PrimaryReads,
    /// A replica further behind than this many WAL bytes serves no reads.
    pub max_lag_bytes: Option<u64>,
    /// A replica further behind than this serves no reads.
    pub max_lag: Option<Duration>,
    /// Whether a session's reads must see its own writes.
    pub read_your_writes: bool,
    /// What a read does when no replica has replayed what it must see.
    pub stale_read: StaleRead,
    /// Where a `READ COMMITTED` transaction's leading reads run.
    pub transaction_reads: TransactionReads,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            balancing: Balancing::LeastOutstanding,
            primary_reads: PrimaryReads::WhenNoReplica,
            max_lag_bytes: None,
            max_lag: Some(DEFAULT_MAX_LAG),
            read_your_writes: true,
            stale_read: StaleRead::Primary,
            transaction_reads: TransactionReads::Primary,
        }
    }
}
