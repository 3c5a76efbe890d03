//! `[policy]`: the routing policy as written in the file, and the core's
//! [`Policy`] made of it.

use std::time::Duration;

use pgrw_core::route::{Balancing, Consistency, Policy, PrimaryReads, StaleRead, TransactionReads};
use serde::Deserialize;

/// How reads are balanced, in the file's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BalancingConfig {
    /// Uniformly at random.
    Random,
    /// Each replica in turn.
    RoundRobin,
    /// Fewest connections checked out (ties at random). The default.
    #[default]
    LeastOutstanding,
    /// At random by node weight.
    Weighted,
}

/// Whether the primary serves reads, in the file's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PrimaryReadsConfig {
    /// Never.
    Never,
    /// As one more candidate.
    Always,
    /// Only when no replica can.
    #[default]
    WhenNoReplica,
}

/// What a read must see (`consistency`), in the file's spelling; see
/// [`Consistency`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyConfig {
    /// Every write committed through this proxy. The default.
    #[default]
    Proxy,
    /// Only the same client connection's writes.
    Connection,
    /// Only the lag limits.
    Bounded,
    /// Every write committed anywhere before the read began.
    Linearizable,
}

/// Where a `READ COMMITTED` transaction's leading reads run
/// (`transaction_reads`), in the file's spelling; see [`TransactionReads`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TransactionReadsConfig {
    /// The whole transaction on the primary. The default.
    #[default]
    Primary,
    /// Its reads before its first write on a replica.
    Replica,
}

/// The routing policy as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// How reads pick a replica.
    pub balancing: BalancingConfig,
    /// Whether the primary serves reads.
    pub primary_reads: PrimaryReadsConfig,
    /// A replica further behind than this many WAL bytes serves no reads
    /// (default: no limit in bytes; 0 is no limit too).
    pub max_lag_bytes: Option<u64>,
    /// A replica whose data is older than the primary's by more than this
    /// many milliseconds serves no reads (default 5000; 0 is no limit).
    pub max_lag_ms: Option<u64>,
    /// What a read must see (default `proxy`: every write committed through
    /// this proxy before it began).
    pub consistency: ConsistencyConfig,
    /// `false` is `consistency = "bounded"` (the older spelling; default true).
    pub read_your_writes: bool,
    /// How long a read waits for a replica to replay what it must see before
    /// it goes to the primary (default 50: on a healthy replica that takes
    /// about a millisecond, and it is what keeps reads on the replicas under
    /// a write load).
    pub read_your_writes_wait_ms: u64,
    /// Where a `READ COMMITTED` transaction's reads before its first write
    /// run (default `primary`: the whole transaction on the primary).
    pub transaction_reads: TransactionReadsConfig,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            balancing: BalancingConfig::LeastOutstanding,
            primary_reads: PrimaryReadsConfig::WhenNoReplica,
            max_lag_bytes: None,
            max_lag_ms: Policy::default()
                .max_lag
                .map(|limit| limit.as_millis() as u64),
            consistency: ConsistencyConfig::Proxy,
            read_your_writes: true,
            read_your_writes_wait_ms: DEFAULT_READ_YOUR_WRITES_WAIT_MS,
            transaction_reads: TransactionReadsConfig::Primary,
        }
    }
}

/// The default `read_your_writes_wait_ms`.
pub const DEFAULT_READ_YOUR_WRITES_WAIT_MS: u64 = 50;

impl PolicyConfig {
    /// The core's [`Policy`].
    pub fn policy(&self) -> Policy {
        Policy {
            balancing: match self.balancing {
                BalancingConfig::Random => Balancing::Random,
                BalancingConfig::RoundRobin => Balancing::RoundRobin,
                BalancingConfig::LeastOutstanding => Balancing::LeastOutstanding,
                BalancingConfig::Weighted => Balancing::Weighted,
            },
            primary_reads: match self.primary_reads {
                PrimaryReadsConfig::Never => PrimaryReads::Never,
                PrimaryReadsConfig::Always => PrimaryReads::Always,
                PrimaryReadsConfig::WhenNoReplica => PrimaryReads::WhenNoReplica,
            },
            // 0 turns a limit off, as in ProxySQL and MaxScale.
            max_lag_bytes: self.max_lag_bytes.filter(|&limit| limit > 0),
            max_lag: self
                .max_lag_ms
                .filter(|&limit| limit > 0)
                .map(Duration::from_millis),
            read_your_writes: self.consistency().own_writes(),
            stale_read: match self.read_your_writes_wait_ms {
                0 => StaleRead::Primary,
                wait => StaleRead::Wait(Duration::from_millis(wait)),
            },
            transaction_reads: match self.transaction_reads {
                TransactionReadsConfig::Primary => TransactionReads::Primary,
                TransactionReadsConfig::Replica => TransactionReads::Replica,
            },
        }
    }
}

impl PolicyConfig {
    /// What a read must see.
    pub fn consistency(&self) -> Consistency {
        match (self.read_your_writes, self.consistency) {
            (false, _) | (_, ConsistencyConfig::Bounded) => Consistency::Bounded,
            (true, ConsistencyConfig::Proxy) => Consistency::Proxy,
            (true, ConsistencyConfig::Connection) => Consistency::Connection,
            (true, ConsistencyConfig::Linearizable) => Consistency::Linearizable,
        }
    }
}
