//! Whether a replica follows the current primary, and how far behind the
//! primary it is in time: pure decisions over the monitor's readings, with the
//! time passed in.
//!
//! A replica can be up, answer every probe, and still serve ever older data:
//! after a failover, a replica left following the dead old primary has
//! replayed all it ever received, so it looks caught up by its own measure.
//! Two things catch it here, both measured against the *primary*:
//!
//! - [`follows`]: its WAL receiver streams, on the primary's timeline, and
//!   receives what the primary writes (an [`Orphan`] otherwise);
//! - [`PrimaryProgress`]: a short history of the primary's WAL position, which
//!   says since when the primary has had WAL a replica has not replayed (its
//!   lag in time, growing for a replica that is paused or orphaned).

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::lsn::Lsn;

/// What a replica's `pg_stat_wal_receiver` showed at one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalReceiver {
    /// No row: no WAL receiver runs (its upstream is gone and it is waiting
    /// to retry, or it is not configured to stream at all).
    Absent,
    /// A receiver runs, but the monitor's login may not read its details
    /// (PostgreSQL shows them to roles with `pg_read_all_stats` only):
    /// whether it follows the primary is judged by its time lag alone.
    Hidden,
    /// A receiver runs.
    Running {
        /// Whether its status is `streaming` (not `starting`, `waiting`,
        /// `restarting`, `stopping`).
        streaming: bool,
        /// `received_tli`: the timeline of the WAL it last received.
        timeline: Option<u32>,
        /// `written_lsn`: how far it has received (and written) the WAL.
        received_lsn: Lsn,
    },
}

/// Why a replica does not follow the current primary (and gets no reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Orphan {
    /// Its WAL receiver is not running or not streaming: it receives nothing.
    NotStreaming,
    /// It streams another timeline than the primary's (it follows an old
    /// primary, or another promoted node).
    OtherTimeline {
        /// The timeline it receives.
        replica: u32,
        /// The primary's timeline.
        primary: u32,
    },
    /// It streams, but has not received WAL the primary wrote longer ago
    /// than [`FollowLimits::max_receive_stall`] (its upstream is not the primary,
    /// or the stream is stuck).
    ReceiveStalled,
    /// A reload removed it from the configuration: it takes no new unit, and
    /// a transaction or pin already on it finishes there.
    Removed,
}

impl fmt::Display for Orphan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Orphan::NotStreaming => f.write_str("its WAL receiver is not streaming"),
            Orphan::OtherTimeline { replica, primary } => write!(
                f,
                "it streams timeline {replica}, the primary is on timeline {primary}"
            ),
            Orphan::ReceiveStalled => f.write_str("it has not received the primary's recent WAL"),
            Orphan::Removed => f.write_str("a reload removed it from the configuration"),
        }
    }
}

/// The primary a replica should follow, as the monitor sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CurrentPrimary {
    /// Its timeline (from `pg_walfile_name(pg_current_wal_lsn())`), when known.
    pub timeline: Option<u32>,
}

/// How long a streaming replica may go without receiving the primary's WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FollowLimits {
    /// A replica that has not received WAL the primary wrote this long ago
    /// is an [`Orphan::ReceiveStalled`].
    pub max_receive_stall: Duration,
}

/// Whether a replica follows `primary`, from its WAL receiver at monotonic
/// time `now`.
///
/// With no primary answering there is nothing to follow: every replica is as
/// fresh as any node can be, and none is an orphan (reads go on while the
/// primary is down). Otherwise a replica must stream, on the primary's
/// timeline, and have received what the primary wrote up to
/// `limits.max_receive_stall` ago. A receiver whose details are hidden is
/// given the benefit of the doubt here; its time lag still bounds it.
pub fn follows(
    receiver: WalReceiver,
    primary: Option<CurrentPrimary>,
    progress: &PrimaryProgress,
    now: Duration,
    limits: &FollowLimits,
) -> Result<(), Orphan> {
    let Some(primary) = primary else {
        return Ok(());
    };
    let (timeline, received_lsn) = match receiver {
        WalReceiver::Hidden => return Ok(()),
        WalReceiver::Absent
        | WalReceiver::Running {
            streaming: false, ..
        } => return Err(Orphan::NotStreaming),
        WalReceiver::Running {
            streaming: true,
            timeline,
            received_lsn,
        } => (timeline, received_lsn),
    };
    if let (Some(replica), Some(primary)) = (timeline, primary.timeline)
        && replica != primary
    {
        return Err(Orphan::OtherTimeline { replica, primary });
    }
    let stalled = progress
        .behind_for(received_lsn, now)
        .is_some_and(|behind| behind > limits.max_receive_stall);
    if stalled {
        return Err(Orphan::ReceiveStalled);
    }
    Ok(())
}

/// The most positions a [`PrimaryProgress`] keeps: at one probe per 100 ms of
/// a primary that writes all the time, a little under 7 minutes.
const PROGRESS_CAPACITY: usize = 4096;

/// The primary's WAL position over time: when the monitor first saw it at or
/// past each position. A replica is as stale as the time since the primary
/// first had WAL the replica has not replayed.
///
/// Positions are kept while they are younger than the window (plus the one
/// just before it), at most [`PROGRESS_CAPACITY`] of them: a replica further
/// behind than that is reported at least the window behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryProgress {
    /// (monotonic time first seen, position), both strictly increasing.
    seen: VecDeque<(Duration, Lsn)>,
    window: Duration,
}

impl PrimaryProgress {
    /// An empty history keeping about `window` of it.
    pub fn new(window: Duration) -> PrimaryProgress {
        PrimaryProgress {
            seen: VecDeque::new(),
            window,
        }
    }

    /// Notes the primary at `lsn` at monotonic time `now`.
    ///
    /// A position lower than the last one (a promoted replica that had not
    /// received all of the old primary's WAL) drops the positions past it:
    /// that WAL is not on the current timeline, and replicas are measured
    /// against the new primary.
    pub fn record(&mut self, now: Duration, lsn: Lsn) {
        if !lsn.is_valid() {
            return;
        }
        while self.seen.back().is_some_and(|&(_, last)| last > lsn) {
            self.seen.pop_back();
        }
        if self.seen.back().is_some_and(|&(_, last)| last == lsn) {
            return;
        }
        self.seen.push_back((now, lsn));
        let horizon = now.saturating_sub(self.window);
        while self.seen.len() > PROGRESS_CAPACITY
            || self.seen.get(1).is_some_and(|&(time, _)| time <= horizon)
        {
            self.seen.pop_front();
        }
    }

    /// The primary's last recorded position.
    pub fn latest(&self) -> Option<Lsn> {
        self.seen.back().map(|&(_, lsn)| lsn)
    }

    /// How long the primary has had WAL past `lsn`, at monotonic time `now`:
    /// zero when `lsn` is at or past the last position seen, `None` when no
    /// position has been seen (or `lsn` is invalid: nothing replayed yet).
    pub fn behind_for(&self, lsn: Lsn, now: Duration) -> Option<Duration> {
        if !lsn.is_valid() {
            return None;
        }
        let (_, latest) = *self.seen.back()?;
        if lsn >= latest {
            return Some(Duration::ZERO);
        }
        let first_past = self.seen.partition_point(|&(_, seen)| seen <= lsn);
        let (since, _) = self.seen[first_past];
        Some(now.saturating_sub(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    const LIMITS: FollowLimits = FollowLimits {
        max_receive_stall: Duration::from_secs(5),
    };
    const PRIMARY_ON_2: Option<CurrentPrimary> = Some(CurrentPrimary { timeline: Some(2) });

    fn streaming(timeline: u32, received: u64) -> WalReceiver {
        WalReceiver::Running {
            streaming: true,
            timeline: Some(timeline),
            received_lsn: Lsn(received),
        }
    }

    fn progress(points: &[(u64, u64)]) -> PrimaryProgress {
        let mut progress = PrimaryProgress::new(Duration::from_secs(300));
        for &(at, lsn) in points {
            progress.record(ms(at), Lsn(lsn));
        }
        progress
    }

    #[test]
    fn a_replica_streaming_the_primarys_timeline_and_keeping_up_follows() {
        let progress = progress(&[(0, 100), (100, 200)]);
        let result = follows(streaming(2, 200), PRIMARY_ON_2, &progress, ms(150), &LIMITS);
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn a_replica_with_no_wal_receiver_is_an_orphan() {
        let result = follows(
            WalReceiver::Absent,
            PRIMARY_ON_2,
            &progress(&[(0, 100)]),
            ms(0),
            &LIMITS,
        );
        assert_eq!(result, Err(Orphan::NotStreaming));
    }

    #[test]
    fn a_replica_whose_receiver_is_not_streaming_is_an_orphan() {
        let receiver = WalReceiver::Running {
            streaming: false,
            timeline: Some(2),
            received_lsn: Lsn(100),
        };
        let result = follows(receiver, PRIMARY_ON_2, &progress(&[]), ms(0), &LIMITS);
        assert_eq!(result, Err(Orphan::NotStreaming));
    }

    #[test]
    fn a_replica_on_another_timeline_than_the_primary_is_an_orphan() {
        let result = follows(
            streaming(1, 100),
            PRIMARY_ON_2,
            &progress(&[]),
            ms(0),
            &LIMITS,
        );
        assert_eq!(
            result,
            Err(Orphan::OtherTimeline {
                replica: 1,
                primary: 2
            })
        );
    }

    #[test]
    fn with_no_primary_answering_no_replica_is_an_orphan() {
        let result = follows(WalReceiver::Absent, None, &progress(&[]), ms(0), &LIMITS);
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn a_replica_whose_receiver_details_are_hidden_is_not_judged_by_them() {
        let result = follows(
            WalReceiver::Hidden,
            PRIMARY_ON_2,
            &progress(&[]),
            ms(0),
            &LIMITS,
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn a_streaming_replica_that_receives_nothing_while_the_primary_writes_is_an_orphan() {
        let progress = progress(&[(0, 100), (1_000, 200), (2_000, 300)]);
        let stuck = streaming(2, 100);
        assert_eq!(
            follows(stuck, PRIMARY_ON_2, &progress, ms(6_000), &LIMITS),
            Ok(())
        );
        assert_eq!(
            follows(stuck, PRIMARY_ON_2, &progress, ms(6_001), &LIMITS),
            Err(Orphan::ReceiveStalled),
            "the primary has had WAL past 100 since 1 s, over 5 s ago"
        );
    }

    #[test]
    fn an_unknown_primary_timeline_skips_only_the_timeline_check() {
        let primary = Some(CurrentPrimary { timeline: None });
        let result = follows(
            streaming(7, 100),
            primary,
            &progress(&[(0, 100)]),
            ms(0),
            &LIMITS,
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn a_replica_at_the_primarys_last_position_is_not_behind() {
        let progress = progress(&[(0, 100), (500, 300)]);
        assert_eq!(
            progress.behind_for(Lsn(300), ms(90_000)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            progress.behind_for(Lsn(400), ms(90_000)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn a_replica_is_behind_since_the_primary_was_first_seen_past_its_position() {
        let progress = progress(&[(0, 100), (500, 300), (900, 400)]);
        assert_eq!(progress.behind_for(Lsn(100), ms(1_000)), Some(ms(500)));
        assert_eq!(progress.behind_for(Lsn(299), ms(1_000)), Some(ms(500)));
        assert_eq!(progress.behind_for(Lsn(300), ms(1_000)), Some(ms(100)));
        assert_eq!(
            progress.behind_for(Lsn(50), ms(1_000)),
            Some(ms(1_000)),
            "before the first position seen: at least since then"
        );
    }

    #[test]
    fn a_paused_replicas_lag_grows_with_time_while_the_primary_is_idle() {
        let progress = progress(&[(0, 100), (200, 150)]);
        assert_eq!(progress.behind_for(Lsn(100), ms(1_000)), Some(ms(800)));
        assert_eq!(progress.behind_for(Lsn(100), ms(31_000)), Some(ms(30_800)));
    }

    #[test]
    fn an_unchanged_position_keeps_the_time_it_was_first_seen() {
        let progress = progress(&[(0, 100), (100, 200), (5_000, 200)]);
        assert_eq!(progress.behind_for(Lsn(100), ms(6_000)), Some(ms(5_900)));
    }

    #[test]
    fn nothing_seen_or_nothing_replayed_is_an_unknown_lag() {
        assert_eq!(progress(&[]).behind_for(Lsn(100), ms(0)), None);
        assert_eq!(progress(&[(0, 100)]).behind_for(Lsn::INVALID, ms(0)), None);
    }

    #[test]
    fn a_primary_behind_the_last_one_replaces_the_positions_past_it() {
        // The old primary reached 500; the promoted replica had received 300.
        let progress = progress(&[(0, 100), (100, 500), (2_000, 300), (2_100, 350)]);
        assert_eq!(progress.latest(), Some(Lsn(350)));
        assert_eq!(progress.behind_for(Lsn(300), ms(2_200)), Some(ms(100)));
        assert_eq!(
            progress.behind_for(Lsn(350), ms(2_200)),
            Some(Duration::ZERO)
        );
        assert_eq!(progress.behind_for(Lsn(100), ms(2_200)), Some(ms(200)));
    }

    #[test]
    fn positions_older_than_the_window_are_dropped_but_still_bound_the_lag() {
        let mut progress = PrimaryProgress::new(Duration::from_secs(10));
        for second in 0..=30u64 {
            progress.record(Duration::from_secs(second), Lsn(100 + second));
        }
        assert!(progress.seen.len() <= 12, "{}", progress.seen.len());
        let lag = progress
            .behind_for(Lsn(100), Duration::from_secs(30))
            .unwrap();
        assert!(lag >= Duration::from_secs(10), "{lag:?}");
    }

    #[test]
    fn the_history_holds_a_bounded_number_of_positions() {
        let mut progress = PrimaryProgress::new(Duration::from_secs(3_600));
        for step in 0..(PROGRESS_CAPACITY as u64 * 2) {
            progress.record(ms(step), Lsn(1 + step));
        }
        assert_eq!(progress.seen.len(), PROGRESS_CAPACITY);
    }
}
