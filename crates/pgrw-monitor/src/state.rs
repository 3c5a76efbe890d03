//! What the monitor knows about every node, shared by the node tasks and the
//! [`crate::Monitor`] handles: each outcome goes through core's
//! [`NodeHealth`]; every replica is judged against the current primary (core's
//! [`follows`], and its lag in time against the [`PrimaryProgress`] kept
//! here); then a new [`Topology`] is published if anything changed.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pgrw_core::Lsn;
use pgrw_core::route::{
    CurrentPrimary, Health, Lag, NoPrimary, Node, NodeHealth, NodeId, Observation, Orphan,
    PrimaryProgress, Role, Topology, follows,
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
#[derive(Debug)]
struct NodeState {
    /// Where it is; fixed for the life of its [`NodeId`].
    address: NodeAddress,
    /// Its name, shared by every topology.
    name: Arc<str>,
    /// Wakes its task to probe now.
    wake: Arc<Notify>,
    /// Removed by a reload, still probed while what is on it finishes: every
    /// topology shows it as [`Orphan::Removed`], so nothing new goes to it.
    draining: bool,
    /// Removed by a reload: no task probes it, every topology shows it down
    /// with an unknown role, and its [`NodeId`] is never given to another node.
    retired: bool,
    health: NodeHealth,
    /// Whether any probe has finished, whatever its outcome.
    probed: bool,
    /// The last successful probe.
    last: Option<Reading>,
    /// When the probe running now (or the last one) began.
    probe_began: Duration,
    /// For a replica that answers, why it does not follow the current primary.
    orphan: Option<Orphan>,
    /// Banned by an operator (`BAN node` on the admin console) until an
    /// `UNBAN`: probes go on, but do not lift it.
    operator_banned: bool,
    /// Its weight, when a reload changed the configured one.
    weight: Option<u32>,
}

impl NodeState {
    /// A node at `address`, not probed yet (down, role unknown).
    fn new(address: NodeAddress) -> NodeState {
        NodeState {
            name: Arc::from(address.name.as_str()),
            address,
            wake: Arc::new(Notify::new()),
            draining: false,
            retired: false,
            health: NodeHealth::default(),
            probed: false,
            last: None,
            probe_began: Duration::ZERO,
            orphan: None,
            operator_banned: false,
            weight: None,
        }
    }

    fn role(&self) -> Role {
        self.last.as_ref().map_or(Role::Unknown, Reading::role)
    }

    /// Whether it says it is the primary and is alive (up, or banned but
    /// answering), as [`Node::claims_primary`].
    fn claims_primary(&self) -> bool {
        self.role() == Role::Primary
            && match self.health.health() {
                Health::Up => true,
                Health::Banned { .. } => self.health.answering(),
                Health::Down => false,
            }
    }
}

/// The `until` of an operator's ban in a published topology: never reached
/// (about a century of monitor time), so routing keeps away until `UNBAN`.
pub(crate) const OPERATOR_BAN_UNTIL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How much of the primary's progress is kept at least: replicas further
/// behind are reported at least this far behind.
const PROGRESS_WINDOW: Duration = Duration::from_secs(300);

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
    /// When the primary was first seen at each position: the replicas' lag
    /// in time is measured against it.
    progress: PrimaryProgress,
}

impl Nodes {
    /// `node`'s state, unless the monitor does not have it or retired it.
    fn in_use(&mut self, node: NodeId) -> Option<&mut NodeState> {
        self.states
            .get_mut(node.index())
            .filter(|state| !state.retired)
    }
}

/// The state the node tasks feed and the handles read.
pub(crate) struct MonitorState {
    /// The origin of [`MonitorState::now`].
    epoch: Instant,
    pub(crate) config: MonitorConfig,
    nodes: Mutex<Nodes>,
    /// The latest topology.
    pub(crate) topology: watch::Sender<Arc<Topology>>,
    /// Bumped after every finished probe, for [`crate::Monitor::ready`].
    pub(crate) probes: watch::Sender<u64>,
}

impl MonitorState {
    /// The state of `addresses`, none probed yet (all down, roles unknown).
    pub(crate) fn new(addresses: Vec<NodeAddress>, config: MonitorConfig) -> MonitorState {
        let window = [
            PROGRESS_WINDOW,
            config.health.max_lag.unwrap_or_default() * 2,
            config.health.max_receive_stall * 2,
        ]
        .into_iter()
        .max()
        .unwrap_or(PROGRESS_WINDOW);
        let nodes = Nodes {
            states: addresses.into_iter().map(NodeState::new).collect(),
            primary_lsn: Lsn::INVALID,
            primary_lsn_at: None,
            split_brain: false,
            progress: PrimaryProgress::new(window),
        };
        let state = MonitorState {
            epoch: Instant::now(),
            config,
            nodes: Mutex::new(nodes),
            topology: watch::Sender::new(Arc::default()),
            probes: watch::Sender::new(0),
        };
        let first = state.topology_of(&state.lock(), Duration::ZERO);
        state.topology.send_replace(Arc::new(first));
        state
    }

    /// Monotonic time since the monitor started.
    pub(crate) fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Asks `node`'s task to probe now (a no-op for an unknown node).
    pub(crate) fn wake(&self, node: NodeId) {
        if let Some(wake) = self.wake_of(node) {
            wake.notify_one();
        }
    }

    /// Waits until someone calls [`MonitorState::wake`] for `node`.
    pub(crate) async fn woken(&self, node: NodeId) {
        match self.wake_of(node) {
            Some(wake) => wake.notified().await,
            None => std::future::pending().await,
        }
    }

    fn wake_of(&self, node: NodeId) -> Option<Arc<Notify>> {
        let nodes = self.lock();
        Some(Arc::clone(&nodes.states.get(node.index())?.wake))
    }

    /// Every node's address, in [`NodeId`] order (retired ones included:
    /// their place keeps the ids of the others).
    pub(crate) fn addresses(&self) -> Vec<NodeAddress> {
        let nodes = self.lock();
        nodes
            .states
            .iter()
            .map(|state| state.address.clone())
            .collect()
    }

    /// The address of `node`, if the monitor has it and it is not retired.
    pub(crate) fn address(&self, node: NodeId) -> Option<NodeAddress> {
        let nodes = self.lock();
        let state = nodes.states.get(node.index())?;
        (!state.retired).then(|| state.address.clone())
    }

    /// Whether every node has been probed and a primary is up.
    pub(crate) fn is_ready(&self) -> bool {
        let nodes = self.lock();
        nodes
            .states
            .iter()
            .all(|state| state.probed || state.retired)
            && nodes
                .states
                .iter()
                .any(|state| state.role() == Role::Primary && state.health.health() == Health::Up)
    }

    /// The names of the nodes not probed yet.
    pub(crate) fn unprobed(&self) -> Vec<String> {
        let nodes = self.lock();
        nodes
            .states
            .iter()
            .filter(|state| !state.probed && !state.retired)
            .map(|state| state.address.name.clone())
            .collect()
    }

    /// Takes one outcome for `node` at the current time: updates its health,
    /// logs what changed, and publishes the new topology if it differs.
    pub(crate) fn record(&self, node: NodeId, outcome: Outcome) {
        self.record_at(node, outcome, self.now());
    }

    /// [`MonitorState::record`] at monotonic time `now`.
    fn record_at(&self, node: NodeId, outcome: Outcome, now: Duration) {
        let mut nodes = self.lock();
        let Some(name) = nodes.in_use(node).map(|state| Arc::clone(&state.name)) else {
            // A probe that ended as its node was removed, or a driver's late word.
            tracing::debug!(%node, ?outcome, "outcome for a node the monitor does not have");
            return;
        };
        let before_health = nodes.states[node.index()].health.health();
        let before_role = nodes.states[node.index()].role();
        let probed = !matches!(outcome, Outcome::DriverFailed(_));
        let answered_primary =
            matches!(&outcome, Outcome::Answered(reading) if reading.role() == Role::Primary);
        let (observation, reason) = match outcome {
            Outcome::Answered(reading) => {
                let role = reading.role();
                let is_primary = role == Role::Primary;
                nodes.states[node.index()].last = Some(reading);
                if is_primary {
                    note_primary_lsn(&mut nodes, now);
                }
                let lag = nodes.states[node.index()]
                    .last
                    .as_ref()
                    .map_or(Lag::default(), |reading| lag_of(reading, &nodes, now));
                (Observation::ProbeOk { role, lag }, None)
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
            note_primary_lsn(&mut nodes, now);
        }
        if answered_primary && health == Health::Up {
            // Its position now counts in `primary_lsn`: every write
            // acknowledged before this probe began is at or before it.
            let began = nodes.states[node.index()].probe_began;
            nodes.primary_lsn_at = nodes.primary_lsn_at.max(Some(began));
        }
        self.judge_replicas(&mut nodes, now);
        self.publish(&mut nodes, now);
        drop(nodes);
        if probed {
            self.probes.send_modify(|count| *count += 1);
        }
    }

    /// Decides for every replica that answers whether it follows the current
    /// primary, logging each replica that stops or starts again.
    fn judge_replicas(&self, nodes: &mut Nodes, now: Duration) {
        let primary = current_primary(nodes);
        let limits = self.config.health.follow_limits();
        let Nodes {
            states, progress, ..
        } = nodes;
        for state in states.iter_mut() {
            if state.draining {
                state.orphan = Some(Orphan::Removed);
                continue;
            }
            let name = &state.name;
            let judged = match &state.last {
                Some(Reading::Replica {
                    receiver, upstream, ..
                }) if state.health.answering() => {
                    let orphan = follows(*receiver, primary, progress, now, &limits).err();
                    Some((orphan, upstream.clone()))
                }
                _ => None,
            };
            let Some((orphan, upstream)) = judged else {
                // Not answering (or not a replica): not judged, and no reads anyway.
                state.orphan = None;
                continue;
            };
            let upstream = upstream.as_deref().unwrap_or("nothing");
            match (state.orphan, orphan) {
                (None, Some(why)) => tracing::warn!(
                    node = %name,
                    reason = %why,
                    upstream,
                    "replica does not follow the primary: it gets no reads"
                ),
                (Some(was), None) => tracing::warn!(
                    node = %name,
                    was = %was,
                    upstream,
                    "replica follows the primary again: it gets reads"
                ),
                (Some(was), Some(why)) if was != why => tracing::warn!(
                    node = %name,
                    reason = %why,
                    upstream,
                    "replica still does not follow the primary"
                ),
                _ => {}
            }
            state.orphan = orphan;
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
                first = %nodes.states[first.index()].name,
                second = %nodes.states[second.index()].name,
                "two nodes are primary: writes are refused until one is demoted or stopped"
            ),
            (None, true) => tracing::info!("one primary again: writes are accepted"),
            _ => {}
        }
        nodes.split_brain = split.is_some();
    }

    /// The topology the nodes' states make at `now`, each node at its [`NodeId`].
    fn topology_of(&self, nodes: &Nodes, now: Duration) -> Topology {
        let topology_nodes = nodes
            .states
            .iter()
            .map(|state| {
                let (replay_lsn, lag) = match &state.last {
                    Some(reading) => (reading.applied_lsn(), lag_of(reading, nodes, now)),
                    None => (Lsn::INVALID, Lag::default()),
                };
                // An operator's ban shows in what routing sees only: the
                // node's own health (its bans, the primary's progress) goes on.
                let health = match state.operator_banned {
                    true => Health::Banned {
                        until: OPERATOR_BAN_UNTIL,
                    },
                    false => state.health.health(),
                };
                Node {
                    name: Arc::clone(&state.name),
                    role: state.role(),
                    health,
                    replay_lsn,
                    lag,
                    weight: state.weight.unwrap_or(state.address.weight),
                    answering: state.health.answering(),
                    orphan: state.orphan,
                }
            })
            .collect();
        let topology = Topology::new(topology_nodes, nodes.primary_lsn);
        match nodes.primary_lsn_at {
            Some(at) => topology.with_primary_lsn_at(at),
            None => topology,
        }
    }

    /// Publishes the topology the nodes make at `now`, if it changed.
    fn publish(&self, nodes: &mut Nodes, now: Duration) {
        let topology = self.topology_of(nodes, now);
        self.note_split_brain(nodes, &topology);
        self.topology.send_if_modified(|current| {
            let changed = **current != topology;
            if changed {
                *current = Arc::new(topology);
            }
            changed
        });
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

/// Recomputes the primary LSN and notes it in the primary's progress.
fn note_primary_lsn(nodes: &mut Nodes, now: Duration) {
    nodes.primary_lsn = primary_lsn(nodes);
    let lsn = nodes.primary_lsn;
    nodes.progress.record(now, lsn);
}

/// The primary LSN replicas' byte lag is measured against.
fn primary_lsn(nodes: &Nodes) -> Lsn {
    nodes
        .states
        .iter()
        .filter(|state| state.health.health() == Health::Up)
        .filter_map(|state| match state.last {
            Some(Reading::Primary { current_lsn, .. }) => Some(current_lsn),
            _ => None,
        })
        .max()
        .unwrap_or(nodes.primary_lsn)
}

/// The primary replicas must follow: `None` when no node claims the role
/// (nothing to follow). With two claimants (a split brain), the latest
/// timeline: a promotion always moves to a new, higher one.
fn current_primary(nodes: &Nodes) -> Option<CurrentPrimary> {
    let mut claimants = nodes
        .states
        .iter()
        .filter(|state| state.claims_primary())
        .map(|state| match state.last {
            Some(Reading::Primary { timeline, .. }) => timeline,
            _ => None,
        })
        .peekable();
    claimants.peek()?;
    Some(CurrentPrimary {
        timeline: claimants.flatten().max(),
    })
}

/// A node's lag at `now`: none for a primary; for a replica, the bytes to
/// the primary's LSN when one is known, and how long the primary has had WAL
/// it has not replayed.
fn lag_of(reading: &Reading, nodes: &Nodes, now: Duration) -> Lag {
    match *reading {
        Reading::Primary { .. } => Lag::NONE,
        Reading::Replica { replay_lsn, .. } => {
            let behind_ms = nodes
                .progress
                .behind_for(replay_lsn, now)
                .map(|behind| u64::try_from(behind.as_millis()).unwrap_or(u64::MAX));
            if nodes.primary_lsn.is_valid() && replay_lsn.is_valid() {
                Lag::of_replica(nodes.primary_lsn, replay_lsn, behind_ms)
            } else {
                Lag {
                    bytes: None,
                    millis: behind_ms,
                }
            }
        }
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

mod operator;
#[cfg(test)]
mod tests;
