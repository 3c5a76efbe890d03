//! What the monitor knows about every node, shared by the node tasks and the
//! [`crate::Monitor`] handles: each outcome goes through core's
//! [`NodeHealth`], then a new [`Topology`] is published if anything changed.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pgrw_core::Lsn;
use pgrw_core::route::{
    Health, Lag, NoPrimary, Node, NodeHealth, NodeId, Observation, Role, Topology,
};
use tokio::sync::{Notify, watch};

use crate::MonitorConfig;
use crate::address::NodeAddress;
use crate::probe::Reading;

/// What happened when a node was probed or used.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The probe answered.
    Answered(Reading),
    /// Connected, but the probe failed or timed out.
    ProbeFailed(String),
    /// The monitor could not connect.
    ConnectFailed(String),
    /// A driver (proxy, library) could not connect or talk to it.
    DriverFailed(String),
}

/// One node as the monitor tracks it.
#[derive(Debug, Default)]
struct NodeState {
    health: NodeHealth,
    /// Whether any probe has finished, whatever its outcome.
    probed: bool,
    /// The last successful probe.
    last: Option<Reading>,
    /// When the probe running now (or the last one) began.
    probe_began: Duration,
}

impl NodeState {
    fn role(&self) -> Role {
        self.last.map_or(Role::Unknown, |reading| reading.role())
    }
}

/// Everything behind the lock.
#[derive(Debug)]
struct Nodes {
    states: Vec<NodeState>,
    /// The highest `pg_current_wal_lsn()` of the primaries that are up, or
    /// the last one seen while none is.
    primary_lsn: Lsn,
    /// When the probe that read `primary_lsn` began; `None` before any did.
    primary_lsn_at: Option<Duration>,
    /// Whether the last topology had two primaries up.
    split_brain: bool,
}

/// The state the node tasks feed and the handles read.
pub(crate) struct MonitorState {
    /// The origin of [`MonitorState::now`].
    epoch: Instant,
    pub(crate) config: MonitorConfig,
    pub(crate) addresses: Vec<NodeAddress>,
    names: Vec<Arc<str>>,
    nodes: Mutex<Nodes>,
    /// The latest topology.
    pub(crate) topology: watch::Sender<Arc<Topology>>,
    /// Bumped after every finished probe, for [`crate::Monitor::ready`].
    pub(crate) probes: watch::Sender<u64>,
    /// One per node: wakes its task to probe now.
    wakes: Vec<Notify>,
}

impl MonitorState {
    /// The state of `addresses`, none probed yet (all down, roles unknown).
    pub(crate) fn new(addresses: Vec<NodeAddress>, config: MonitorConfig) -> MonitorState {
        let names: Vec<Arc<str>> = addresses
            .iter()
            .map(|address| Arc::from(address.name.as_str()))
            .collect();
        let nodes = Nodes {
            states: addresses.iter().map(|_| NodeState::default()).collect(),
            primary_lsn: Lsn::INVALID,
            primary_lsn_at: None,
            split_brain: false,
        };
        let state = MonitorState {
            epoch: Instant::now(),
            config,
            wakes: addresses.iter().map(|_| Notify::new()).collect(),
            addresses,
            names,
            nodes: Mutex::new(nodes),
            topology: watch::Sender::new(Arc::default()),
            probes: watch::Sender::new(0),
        };
        let first = state.topology_of(&state.lock());
        state.topology.send_replace(Arc::new(first));
        state
    }

    /// Monotonic time since the monitor started.
    pub(crate) fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Asks `node`'s task to probe now (a no-op for an unknown node).
    pub(crate) fn wake(&self, node: NodeId) {
        if let Some(wake) = self.wakes.get(node.index()) {
            wake.notify_one();
        }
    }

    /// Waits until someone calls [`MonitorState::wake`] for `node`.
    pub(crate) async fn woken(&self, node: NodeId) {
        match self.wakes.get(node.index()) {
            Some(wake) => wake.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Whether every node has been probed and a primary is up.
    pub(crate) fn is_ready(&self) -> bool {
        let nodes = self.lock();
        nodes.states.iter().all(|state| state.probed)
            && nodes
                .states
                .iter()
                .any(|state| state.role() == Role::Primary && state.health.health() == Health::Up)
    }

    /// The names of the nodes not probed yet.
    pub(crate) fn unprobed(&self) -> Vec<String> {
        let nodes = self.lock();
        self.addresses
            .iter()
            .zip(&nodes.states)
            .filter(|(_, state)| !state.probed)
            .map(|(address, _)| address.name.clone())
            .collect()
    }

    /// Takes one outcome for `node` at the current time: updates its health,
    /// logs what changed, and publishes the new topology if it differs.
    pub(crate) fn record(&self, node: NodeId, outcome: Outcome) {
        let Some(name) = self.names.get(node.index()).cloned() else {
            tracing::warn!(%node, ?outcome, "outcome for a node the monitor does not have");
            return;
        };
        let now = self.now();
        let mut nodes = self.lock();
        let before_health = nodes.states[node.index()].health.health();
        let before_role = nodes.states[node.index()].role();
        let probed = !matches!(outcome, Outcome::DriverFailed(_));
        let (observation, reason) = match outcome {
            Outcome::Answered(reading) => {
                nodes.states[node.index()].last = Some(reading);
                if let Reading::Primary { .. } = reading {
                    nodes.primary_lsn = primary_lsn(&nodes);
                    // Only one primary's position is the question's answer:
                    // with two up, writes stop and so does the answer.
                    let began = nodes.states[node.index()].probe_began;
                    nodes.primary_lsn_at = nodes.primary_lsn_at.max(Some(began));
                }
                let lag = lag_of(reading, nodes.primary_lsn);
                (
                    Observation::ProbeOk {
                        role: reading.role(),
                        lag,
                    },
                    None,
                )
            }
            Outcome::ProbeFailed(why) => (Observation::ProbeFailed, Some(why)),
            Outcome::ConnectFailed(why) => (Observation::ConnectFailed, Some(why)),
            Outcome::DriverFailed(why) => (
                Observation::ConnectFailed,
                Some(format!("reported by a driver: {why}")),
            ),
        };
        let state = &mut nodes.states[node.index()];
        let health = state.health.observe(observation, now, &self.config.health);
        let first_probe = !state.probed;
        state.probed |= probed;
        let role = state.role();
        log_change(
            &name,
            (before_health, health),
            (before_role, role),
            reason,
            first_probe,
        );
        if health == Health::Up && before_health != Health::Up {
            // A primary coming back counts for the primary LSN again.
            nodes.primary_lsn = primary_lsn(&nodes);
        }
        let topology = self.topology_of(&nodes);
        self.note_split_brain(&mut nodes, &topology);
        self.topology.send_if_modified(|current| {
            let changed = **current != topology;
            if changed {
                *current = Arc::new(topology);
            }
            changed
        });
        drop(nodes);
        if probed {
            self.probes.send_modify(|count| *count += 1);
        }
    }

    /// Logs entering and leaving a state with two primaries up.
    fn note_split_brain(&self, nodes: &mut Nodes, topology: &Topology) {
        let split = match topology.writable_primary() {
            Err(NoPrimary::Ambiguous(first, second)) => Some((first, second)),
            _ => None,
        };
        match (split, nodes.split_brain) {
            (Some((first, second)), false) => tracing::warn!(
                first = %self.names[first.index()],
                second = %self.names[second.index()],
                "two nodes are primary: writes are refused until one is demoted or stopped"
            ),
            (None, true) => tracing::info!("one primary again: writes are accepted"),
            _ => {}
        }
        nodes.split_brain = split.is_some();
    }

    /// The topology the nodes' states make, each node at its [`NodeId`].
    fn topology_of(&self, nodes: &Nodes) -> Topology {
        let topology_nodes = nodes
            .states
            .iter()
            .zip(&self.addresses)
            .zip(&self.names)
            .map(|((state, address), name)| {
                let (replay_lsn, lag) = match state.last {
                    Some(reading) => (reading.applied_lsn(), lag_of(reading, nodes.primary_lsn)),
                    None => (Lsn::INVALID, Lag::default()),
                };
                Node {
                    name: Arc::clone(name),
                    role: state.role(),
                    health: state.health.health(),
                    replay_lsn,
                    lag,
                    weight: address.weight,
                }
            })
            .collect();
        let topology = Topology::new(topology_nodes, nodes.primary_lsn);
        match nodes.primary_lsn_at {
            Some(at) => topology.with_primary_lsn_at(at),
            None => topology,
        }
    }

    /// Notes that a probe of `node` begins now: a primary's answer to it
    /// bounds every write acknowledged before this instant.
    pub(crate) fn probe_begins(&self, node: NodeId) {
        let now = self.now();
        if let Some(state) = self.lock().states.get_mut(node.index()) {
            state.probe_began = now;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Nodes> {
        // A panic while holding the lock leaves consistent data (every update
        // is a few assignments): keep serving it.
        self.nodes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The primary LSN replicas' byte lag is measured against.
fn primary_lsn(nodes: &Nodes) -> Lsn {
    nodes
        .states
        .iter()
        .filter(|state| state.health.health() == Health::Up)
        .filter_map(|state| match state.last {
            Some(Reading::Primary { current_lsn }) => Some(current_lsn),
            _ => None,
        })
        .max()
        .unwrap_or(nodes.primary_lsn)
}

/// A node's lag: none for a primary; for a replica, measured against the
/// primary's LSN when one is known (bytes unknown otherwise).
fn lag_of(reading: Reading, primary_lsn: Lsn) -> Lag {
    match reading {
        Reading::Primary { .. } => Lag::NONE,
        Reading::Replica {
            replay_lsn,
            replay_age_ms,
        } if primary_lsn.is_valid() && replay_lsn.is_valid() => {
            Lag::of_replica(primary_lsn, replay_lsn, replay_age_ms)
        }
        Reading::Replica { replay_age_ms, .. } => Lag {
            bytes: None,
            millis: replay_age_ms,
        },
    }
}

/// Logs a node's health or role changing.
fn log_change(
    name: &str,
    (before, after): (Health, Health),
    (role_before, role): (Role, Role),
    reason: Option<String>,
    first_probe: bool,
) {
    let reason = reason.unwrap_or_default();
    if role != role_before && role_before != Role::Unknown {
        tracing::warn!(node = name, from = %role_before, to = %role, "node changed role");
    }
    match after {
        Health::Up if before == Health::Up => {}
        Health::Up if matches!(before, Health::Banned { .. }) => {
            tracing::info!(node = name, %role, "node unbanned")
        }
        Health::Up => tracing::info!(node = name, %role, "node up"),
        Health::Down if before != Health::Down || first_probe => {
            tracing::warn!(node = name, %reason, "node down")
        }
        Health::Banned { until } if before != after => {
            tracing::warn!(node = name, until_ms = until.as_millis() as u64, %reason, "node banned")
        }
        Health::Down | Health::Banned { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgrw_core::route::HealthPolicy;

    fn state_of(names: &[&str]) -> MonitorState {
        let addresses = names
            .iter()
            .map(|name| NodeAddress::from_dsn(name, "user=u").expect("a valid DSN"))
            .collect();
        MonitorState::new(addresses, MonitorConfig::default())
    }

    fn primary_at(lsn: u64) -> Outcome {
        Outcome::Answered(Reading::Primary {
            current_lsn: Lsn(lsn),
        })
    }

    fn replica_at(lsn: u64, replay_age_ms: u64) -> Outcome {
        Outcome::Answered(Reading::Replica {
            replay_lsn: Lsn(lsn),
            replay_age_ms: Some(replay_age_ms),
        })
    }

    fn topology(state: &MonitorState) -> Arc<Topology> {
        Arc::clone(&state.topology.borrow())
    }

    #[test]
    fn before_any_probe_every_node_is_down_with_an_unknown_role() {
        let state = state_of(&["primary", "replica1"]);
        let topology = topology(&state);
        assert!(
            topology
                .nodes
                .iter()
                .all(|node| node.role == Role::Unknown && node.health == Health::Down)
        );
        assert!(!state.is_ready());
        assert_eq!(state.unprobed(), ["primary", "replica1"]);
    }

    #[test]
    fn a_replica_lags_by_the_bytes_between_the_primary_and_its_replay_position() {
        let state = state_of(&["primary", "replica1"]);
        state.record(NodeId(0), primary_at(1_000));
        state.record(NodeId(1), replica_at(400, 250));
        let topology = topology(&state);
        let replica = &topology.nodes[1];
        assert_eq!((replica.role, replica.health), (Role::Replica, Health::Up));
        assert_eq!(replica.replay_lsn, Lsn(400));
        assert_eq!(
            replica.lag,
            Lag {
                bytes: Some(600),
                millis: Some(250)
            }
        );
        assert_eq!(topology.primary_lsn, Lsn(1_000));
        assert!(state.is_ready());
    }

    #[test]
    fn a_replica_seen_before_any_primary_has_no_byte_lag_yet() {
        let state = state_of(&["replica1", "primary"]);
        state.record(NodeId(0), replica_at(400, 0));
        assert_eq!(topology(&state).nodes[0].lag.bytes, None);
    }

    #[test]
    fn an_unchanged_reading_publishes_no_new_topology() {
        let state = state_of(&["primary"]);
        let mut updates = state.topology.subscribe();
        state.record(NodeId(0), primary_at(1_000));
        assert!(updates.has_changed().unwrap());
        updates.mark_unchanged();
        state.record(NodeId(0), primary_at(1_000));
        assert!(!updates.has_changed().unwrap());
        state.record(NodeId(0), primary_at(1_001));
        assert!(
            updates.has_changed().unwrap(),
            "an LSN advance is published"
        );
    }

    #[test]
    fn a_driver_failure_bans_without_counting_as_a_probe() {
        let state = state_of(&["primary"]);
        state.record(NodeId(0), Outcome::DriverFailed("refused".to_string()));
        assert!(matches!(
            topology(&state).nodes[0].health,
            Health::Banned { .. }
        ));
        assert_eq!(state.unprobed(), ["primary"]);
    }

    #[test]
    fn two_primaries_up_leave_no_writable_primary() {
        let state = state_of(&["primary", "replica1"]);
        state.record(NodeId(0), primary_at(1_000));
        state.record(NodeId(1), primary_at(2_000));
        let topology = topology(&state);
        assert_eq!(
            topology.writable_primary(),
            Err(NoPrimary::Ambiguous(NodeId(0), NodeId(1)))
        );
        assert_eq!(topology.primary_lsn, Lsn(2_000), "the furthest primary");
    }

    #[test]
    fn failed_probes_in_a_row_keep_the_last_role_but_take_the_node_down() {
        let state = state_of(&["primary", "replica1"]);
        state.record(NodeId(1), replica_at(400, 0));
        for _ in 0..HealthPolicy::default().probe_failures_before_down {
            state.record(NodeId(1), Outcome::ProbeFailed("closed".to_string()));
        }
        let replica = &topology(&state).nodes[1];
        assert_eq!(
            (replica.role, replica.health),
            (Role::Replica, Health::Down)
        );
    }
}
