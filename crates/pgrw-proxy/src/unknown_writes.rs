//! Writes the proxy acknowledged without knowing their position: the ones
//! made before it started (through an earlier instance, another proxy, or
//! straight to the primary), and a write whose node failed between its commit
//! and the proxy's `pg_current_wal_lsn()`. Reads must not run on a replica
//! that lacks them, so until a probe of the primary begun after them answers,
//! reads wait for one; its position then stands for them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pgrw_core::Lsn;
use pgrw_core::route::Topology;

/// The earliest monitor time after which the primary's position covers every
/// write of unknown position, if any is unknown (lock-free: sessions of every
/// client read it per statement).
#[derive(Debug)]
pub struct UnknownWrites(
    /// 0 when none, else 1 + that time in nanoseconds.
    AtomicU64,
);

/// What [`UnknownWrites::resolve`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// No write of unknown position.
    None,
    /// Reads must see the primary's position as of a probe begun after this.
    Waiting(Duration),
    /// The topology knows such a position: the last write is at least there.
    Known(Lsn),
}

impl UnknownWrites {
    /// At start: the writes made before the proxy, which its first probe of
    /// the primary covers.
    pub fn at_start() -> UnknownWrites {
        UnknownWrites(AtomicU64::new(1))
    }

    /// None unknown yet (a session's own writes, in the `connection` scope).
    pub fn none() -> UnknownWrites {
        UnknownWrites(AtomicU64::new(0))
    }

    /// Records a write acknowledged at monitor time `at` without its position;
    /// of several, the latest is the one a probe must follow.
    pub fn lose(&self, at: Duration) {
        let encoded = u64::try_from(at.as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        self.0.fetch_max(encoded, Ordering::AcqRel);
    }

    /// Whether a write of unknown position is pending in `topology`; once the
    /// topology knows the primary's position after it, it is forgotten
    /// (unless a later one was lost meanwhile) and that position returned.
    pub fn resolve(&self, topology: &Topology) -> Resolved {
        let encoded = self.0.load(Ordering::Acquire);
        let Some(nanos) = encoded.checked_sub(1) else {
            return Resolved::None;
        };
        let since = Duration::from_nanos(nanos);
        match topology.primary_lsn_since(since) {
            None => Resolved::Waiting(since),
            Some(lsn) => {
                // A loss recorded since keeps its own, later, time.
                let _ = self
                    .0
                    .compare_exchange(encoded, 0, Ordering::AcqRel, Ordering::Acquire);
                Resolved::Known(lsn)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(lsn: u64, probed_at_ms: u64) -> Topology {
        Topology::new(Vec::new(), Lsn(lsn)).with_primary_lsn_at(Duration::from_millis(probed_at_ms))
    }

    #[test]
    fn at_start_reads_wait_for_the_first_primary_probe() {
        let unknown = UnknownWrites::at_start();
        assert_eq!(
            unknown.resolve(&Topology::default()),
            Resolved::Waiting(Duration::ZERO)
        );
        assert_eq!(
            unknown.resolve(&topology(500, 0)),
            Resolved::Known(Lsn(500))
        );
        assert_eq!(unknown.resolve(&topology(600, 5)), Resolved::None);
    }

    #[test]
    fn a_lost_position_waits_for_a_probe_begun_after_it() {
        let unknown = UnknownWrites::at_start();
        unknown.resolve(&topology(100, 0));
        unknown.lose(Duration::from_millis(50));
        assert_eq!(
            unknown.resolve(&topology(200, 40)),
            Resolved::Waiting(Duration::from_millis(50)),
            "a probe begun before the write says nothing of it"
        );
        assert_eq!(
            unknown.resolve(&topology(300, 50)),
            Resolved::Known(Lsn(300))
        );
        assert_eq!(unknown.resolve(&topology(300, 60)), Resolved::None);
    }

    #[test]
    fn the_latest_loss_is_the_one_waited_for() {
        let unknown = UnknownWrites::at_start();
        unknown.lose(Duration::from_millis(80));
        unknown.lose(Duration::from_millis(30));
        assert_eq!(
            unknown.resolve(&topology(200, 50)),
            Resolved::Waiting(Duration::from_millis(80))
        );
    }
}
