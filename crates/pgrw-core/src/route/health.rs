//! A node's health as a small state machine, fed by the node monitor.
//!
//! The monitor probes each node (`pg_is_in_recovery()`, LSNs, replay time) and
//! feeds the outcome and the current monotonic time to [`NodeHealth::observe`],
//! which decides [`Health`]: a failed connection or too much lag bans the node
//! for a while (doubling on each ban in a row, up to a short limit); a few
//! failed probes in a row mark it down (one slow probe on a loaded node does
//! not); a healthy probe after the ban has run out lets it back and forgets
//! the bans before it. However long a node was away, it serves again within
//! the longest ban (1 s) of answering healthily.

use std::time::Duration;

use crate::route::policy::Policy;
use crate::route::replication::FollowLimits;
use crate::route::topology::{Health, Lag, Role};

/// How long bans last, what lag bans a replica, and when a streaming replica
/// counts as not following the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HealthPolicy {
    /// The first ban's length (default 500 ms).
    pub ban_for: Duration,
    /// The longest ban, however many come in a row (default 1 s): a node
    /// healthy again serves within this, whatever its outage. A healthy
    /// probe after a ban starts the next one from `ban_for` again.
    pub max_ban_for: Duration,
    /// A replica further behind than this many WAL bytes is banned (default:
    /// no limit, as [`Policy::default`]).
    pub max_lag_bytes: Option<u64>,
    /// A replica further behind than this is banned (default
    /// [`crate::route::policy::DEFAULT_MAX_LAG`], as [`Policy::default`]).
    pub max_lag: Option<Duration>,
    /// A streaming replica that has not received WAL the primary wrote this
    /// long ago does not follow it (default 5 s; see
    /// [`crate::route::Orphan::ReceiveStalled`]).
    pub max_receive_stall: Duration,
    /// Failed probes in a row (on a connection that was open) before the node
    /// is down (default 3). A node that refuses connections is banned at once
    /// instead; this only spares a live node one slow answer under load.
    pub probe_failures_before_down: u32,
}

impl Default for HealthPolicy {
    fn default() -> HealthPolicy {
        let routing = Policy::default();
        HealthPolicy {
            ban_for: Duration::from_millis(500),
            max_ban_for: Duration::from_secs(1),
            max_lag_bytes: routing.max_lag_bytes,
            max_lag: routing.max_lag,
            max_receive_stall: Duration::from_secs(5),
            probe_failures_before_down: 3,
        }
    }
}

impl HealthPolicy {
    /// The default bans, with the routing policy's lag limits.
    pub fn with_lag_limits_of(policy: &Policy) -> HealthPolicy {
        HealthPolicy::default().lag_limits_of(policy)
    }

    /// These bans, with the routing policy's lag limits: the monitor bans a
    /// replica over the same limits routing excludes it at.
    pub fn lag_limits_of(self, policy: &Policy) -> HealthPolicy {
        HealthPolicy {
            max_lag_bytes: policy.max_lag_bytes,
            max_lag: policy.max_lag,
            ..self
        }
    }

    /// What [`crate::route::follows`] judges a replica's WAL receiver by.
    pub fn follow_limits(&self) -> FollowLimits {
        FollowLimits {
            max_receive_stall: self.max_receive_stall,
        }
    }

    fn lag_is_over_limit(&self, lag: Lag) -> bool {
        let over = |value: Option<u64>, limit: Option<u64>| matches!((value, limit), (Some(v), Some(l)) if v > l);
        over(lag.bytes, self.max_lag_bytes)
            || over(
                lag.millis,
                self.max_lag.map(|limit| limit.as_millis() as u64),
            )
    }
}

/// What one probe of a node found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Observation {
    /// The node answered: its role and, for a replica, its lag.
    ProbeOk {
        /// From `pg_is_in_recovery()`.
        role: Role,
        /// How far behind the primary it is (see [`Lag::of_replica`]).
        lag: Lag,
    },
    /// Connected, but the probe query failed or timed out.
    ProbeFailed,
    /// Could not connect at all.
    ConnectFailed,
}

/// Why a node is banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BanCause {
    /// A connection to it failed.
    ConnectFailed,
    /// Its lag went over the limit.
    Lag,
}

/// One node's health, as decided from the probes seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeHealth {
    health: Health,
    cause: Option<BanCause>,
    /// Bans in a row (not separated by a healthy probe).
    strikes: u32,
    /// Failed probes since the last answer or ban.
    failed_probes: u32,
    /// Whether the last probe answered (kept over one failed probe, as the
    /// health is).
    answering: bool,
}

impl Default for NodeHealth {
    fn default() -> NodeHealth {
        NodeHealth::new()
    }
}

impl NodeHealth {
    /// A node not probed yet: down until its first healthy probe.
    pub const fn new() -> NodeHealth {
        NodeHealth {
            health: Health::Down,
            cause: None,
            strikes: 0,
            failed_probes: 0,
            answering: false,
        }
    }

    /// The current decision.
    pub const fn health(&self) -> Health {
        self.health
    }

    /// Why the node is banned, when it is.
    pub const fn ban_cause(&self) -> Option<BanCause> {
        self.cause
    }

    /// Whether the node answers probes, whatever its health: true after a
    /// probe answered, false once a connection fails or it is down.
    pub const fn answering(&self) -> bool {
        self.answering
    }

    /// Takes one probe's outcome at monotonic time `now` and returns the new health.
    pub fn observe(
        &mut self,
        observation: Observation,
        now: Duration,
        policy: &HealthPolicy,
    ) -> Health {
        self.failed_probes = match observation {
            Observation::ProbeFailed => self.failed_probes.saturating_add(1),
            _ => 0,
        };
        self.answering = match observation {
            Observation::ProbeOk { .. } => true,
            Observation::ConnectFailed => false,
            Observation::ProbeFailed => self.answering,
        };
        match observation {
            Observation::ConnectFailed => self.ban(BanCause::ConnectFailed, now, policy),
            Observation::ProbeOk {
                role: Role::Replica,
                lag,
            } if policy.lag_is_over_limit(lag) => self.ban(BanCause::Lag, now, policy),
            Observation::ProbeFailed => {
                let down = self.failed_probes >= policy.probe_failures_before_down.max(1)
                    || self.health != Health::Up;
                if down && !self.serving_ban(now) {
                    self.set(Health::Down, None);
                }
                if self.health == Health::Down {
                    self.answering = false;
                }
            }
            Observation::ProbeOk { .. } => self.healthy(now),
        }
        self.health
    }

    fn serving_ban(&self, now: Duration) -> bool {
        matches!(self.health, Health::Banned { until } if now < until)
    }

    fn ban(&mut self, cause: BanCause, now: Duration, policy: &HealthPolicy) {
        if self.serving_ban(now) {
            // Repeated failures during one ban do not lengthen the next.
            return;
        }
        let length = policy
            .ban_for
            .saturating_mul(1u32 << self.strikes.min(20))
            .min(policy.max_ban_for);
        self.strikes = self.strikes.saturating_add(1);
        self.set(
            Health::Banned {
                until: now.saturating_add(length),
            },
            Some(cause),
        );
    }

    fn healthy(&mut self, now: Duration) {
        if self.serving_ban(now) {
            return;
        }
        // Healthy again: the next ban starts short, however long this outage was.
        self.strikes = 0;
        if self.health != Health::Up {
            self.set(Health::Up, None);
        }
    }

    fn set(&mut self, health: Health, cause: Option<BanCause>) {
        self.health = health;
        self.cause = cause;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK_PRIMARY: Observation = Observation::ProbeOk {
        role: Role::Primary,
        lag: Lag::NONE,
    };
    const OK_REPLICA: Observation = Observation::ProbeOk {
        role: Role::Replica,
        lag: Lag::NONE,
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn lagging_by(bytes: u64) -> Observation {
        Observation::ProbeOk {
            role: Role::Replica,
            lag: Lag {
                bytes: Some(bytes),
                millis: Some(0),
            },
        }
    }

    #[test]
    fn a_new_node_is_down_until_its_first_healthy_probe() {
        let mut node = NodeHealth::new();
        assert_eq!(node.health(), Health::Down);
        assert_eq!(
            node.observe(OK_PRIMARY, secs(0), &HealthPolicy::default()),
            Health::Up
        );
    }

    #[test]
    fn a_failed_connection_bans_for_the_ban_length() {
        let mut node = NodeHealth::new();
        let policy = HealthPolicy::default();
        node.observe(OK_REPLICA, secs(0), &policy);
        let health = node.observe(Observation::ConnectFailed, secs(10), &policy);
        assert_eq!(
            health,
            Health::Banned {
                until: secs(10) + policy.ban_for
            }
        );
        assert_eq!(node.ban_cause(), Some(BanCause::ConnectFailed));
    }

    /// Two-second first bans, easier to read in the tests below.
    fn two_second_bans() -> HealthPolicy {
        HealthPolicy {
            ban_for: secs(2),
            max_ban_for: secs(60),
            ..HealthPolicy::default()
        }
    }

    #[test]
    fn a_healthy_probe_during_the_ban_keeps_it_banned() {
        let mut node = NodeHealth::new();
        let policy = two_second_bans();
        node.observe(Observation::ConnectFailed, secs(10), &policy);
        assert_eq!(
            node.observe(OK_REPLICA, secs(11), &policy),
            Health::Banned { until: secs(12) }
        );
        assert!(node.answering(), "banned, but answering");
    }

    #[test]
    fn a_healthy_probe_after_the_ban_lets_the_node_back() {
        let mut node = NodeHealth::new();
        let policy = two_second_bans();
        node.observe(Observation::ConnectFailed, secs(10), &policy);
        assert!(!node.answering());
        assert_eq!(node.observe(OK_REPLICA, secs(12), &policy), Health::Up);
        assert_eq!(node.ban_cause(), None);
    }

    #[test]
    fn bans_in_a_row_double_up_to_the_maximum() {
        let mut node = NodeHealth::new();
        let policy = HealthPolicy {
            ban_for: secs(2),
            max_ban_for: secs(5),
            ..HealthPolicy::default()
        };
        let mut now = secs(0);
        let mut lengths = Vec::new();
        for _ in 0..4 {
            let Health::Banned { until } = node.observe(Observation::ConnectFailed, now, &policy)
            else {
                panic!("a failed connection must ban");
            };
            lengths.push((until - now).as_secs());
            now = until;
        }
        assert_eq!(lengths, [2, 4, 5, 5]);
    }

    #[test]
    fn failures_during_a_ban_do_not_lengthen_it() {
        let mut node = NodeHealth::new();
        let policy = two_second_bans();
        node.observe(Observation::ConnectFailed, secs(0), &policy);
        let again = node.observe(Observation::ConnectFailed, secs(1), &policy);
        assert_eq!(again, Health::Banned { until: secs(2) });
    }

    #[test]
    fn one_healthy_probe_resets_the_backoff() {
        let mut node = NodeHealth::new();
        let policy = HealthPolicy {
            ban_for: secs(2),
            max_ban_for: secs(10),
            ..HealthPolicy::default()
        };
        node.observe(Observation::ConnectFailed, secs(0), &policy);
        node.observe(Observation::ConnectFailed, secs(2), &policy);
        node.observe(OK_REPLICA, secs(6), &policy);
        let health = node.observe(Observation::ConnectFailed, secs(7), &policy);
        assert_eq!(health, Health::Banned { until: secs(9) });
    }

    #[test]
    fn by_default_a_node_down_for_long_is_back_within_a_second_of_answering() {
        let policy = HealthPolicy::default();
        let mut node = NodeHealth::new();
        node.observe(OK_REPLICA, Duration::ZERO, &policy);
        // Down for 40 s, its connection refused every 100 ms.
        let mut now = Duration::ZERO;
        while now < secs(40) {
            node.observe(Observation::ConnectFailed, now, &policy);
            now += Duration::from_millis(100);
        }
        // Back: probed every 100 ms until it is up.
        let back = now;
        while node.observe(OK_REPLICA, now, &policy) != Health::Up {
            now += Duration::from_millis(100);
        }
        assert!(
            now - back <= policy.max_ban_for,
            "up {:?} after",
            now - back
        );
    }

    #[test]
    fn a_replica_over_the_lag_limit_is_banned_and_comes_back_when_caught_up() {
        let mut node = NodeHealth::new();
        let policy = HealthPolicy {
            max_lag_bytes: Some(1000),
            ..two_second_bans()
        };
        node.observe(OK_REPLICA, secs(0), &policy);
        assert_eq!(node.observe(lagging_by(1000), secs(1), &policy), Health::Up);
        assert_eq!(
            node.observe(lagging_by(1001), secs(2), &policy),
            Health::Banned { until: secs(4) }
        );
        assert_eq!(node.ban_cause(), Some(BanCause::Lag));
        assert_eq!(
            node.observe(lagging_by(5000), secs(4), &policy),
            Health::Banned { until: secs(8) }
        );
        assert_eq!(node.observe(lagging_by(10), secs(8), &policy), Health::Up);
    }

    #[test]
    fn lag_over_the_time_limit_bans_a_replica() {
        let mut node = NodeHealth::new();
        let policy = HealthPolicy {
            max_lag: Some(Duration::from_millis(500)),
            ..HealthPolicy::default()
        };
        let late = Observation::ProbeOk {
            role: Role::Replica,
            lag: Lag {
                bytes: Some(8),
                millis: Some(501),
            },
        };
        assert!(matches!(
            node.observe(late, secs(0), &policy),
            Health::Banned { .. }
        ));
    }

    #[test]
    fn failed_probes_in_a_row_mark_an_up_node_down() {
        let mut node = NodeHealth::new();
        let policy = HealthPolicy::default();
        node.observe(OK_PRIMARY, secs(0), &policy);
        assert_eq!(
            node.observe(Observation::ProbeFailed, secs(1), &policy),
            Health::Up
        );
        assert!(node.answering(), "one slow probe says nothing");
        assert_eq!(
            node.observe(Observation::ProbeFailed, secs(2), &policy),
            Health::Up
        );
        assert_eq!(
            node.observe(Observation::ProbeFailed, secs(3), &policy),
            Health::Down
        );
        assert!(!node.answering());
        assert_eq!(node.observe(OK_PRIMARY, secs(4), &policy), Health::Up);
    }

    #[test]
    fn one_slow_probe_between_answers_keeps_a_node_up() {
        let mut node = NodeHealth::new();
        let policy = HealthPolicy::default();
        for second in 0..10 {
            let observation = if second % 2 == 0 {
                OK_PRIMARY
            } else {
                Observation::ProbeFailed
            };
            assert_eq!(node.observe(observation, secs(second), &policy), Health::Up);
        }
    }

    #[test]
    fn a_failed_probe_does_not_bring_a_down_node_up() {
        let mut node = NodeHealth::new();
        let policy = HealthPolicy::default();
        assert_eq!(
            node.observe(Observation::ProbeFailed, secs(0), &policy),
            Health::Down
        );
    }

    #[test]
    fn a_refused_connection_bans_at_once_whatever_the_probe_tolerance() {
        let mut node = NodeHealth::new();
        let policy = HealthPolicy::default();
        node.observe(OK_PRIMARY, secs(0), &policy);
        assert!(matches!(
            node.observe(Observation::ConnectFailed, secs(1), &policy),
            Health::Banned { .. }
        ));
    }
}
