//! [`Monitor`]: the handle drivers hold. It starts one task per node and
//! answers from the latest topology without waiting.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgrw_core::Lsn;
use pgrw_core::route::{NodeId, Role, Topology};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::MonitorConfig;
use crate::address::NodeAddress;
use crate::node_task::watch_node;
use crate::state::{MonitorState, Outcome};

/// How often [`Monitor::wait_for_replay`] asks the replicas for a fresh probe.
const EAGER_PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// The node monitor: probes every node in the background and publishes the
/// [`Topology`] routing reads from.
///
/// Cheap to clone (an `Arc` inside); the tasks stop on [`Monitor::shutdown`] or
/// when the last clone is dropped.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use pgrw_monitor::{Monitor, MonitorConfig, NodeAddress};
///
/// let nodes = vec![
///     NodeAddress::from_dsn("primary", "postgres://postgres:pw@127.0.0.1:5432/postgres")?,
///     NodeAddress::from_dsn("replica1", "postgres://postgres:pw@127.0.0.1:5433/postgres")?,
/// ];
/// let monitor = Monitor::start(nodes, MonitorConfig::default());
/// monitor.ready(Duration::from_secs(5)).await?;
/// println!("{:?}", monitor.topology().writable_primary());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Monitor {
    running: Arc<Running>,
}

/// What the clones share; stops the tasks when the last clone goes.
struct Running {
    state: Arc<MonitorState>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        abort_all(&self.tasks);
    }
}

fn abort_all(tasks: &Mutex<Vec<JoinHandle<()>>>) {
    let mut tasks = tasks
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for task in tasks.drain(..) {
        task.abort();
    }
}

/// Why [`Monitor::ready`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// How long it waited.
    pub waited: Duration,
    /// The nodes no probe had finished on.
    pub unprobed: Vec<String>,
    /// Whether a primary that is up was found.
    pub primary_found: bool,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the node monitor was not ready after {:?}", self.waited)?;
        if !self.unprobed.is_empty() {
            write!(f, "; not probed yet: {}", self.unprobed.join(", "))?;
        }
        if !self.primary_found {
            f.write_str(
                "; no primary is up (check that one node is out of recovery and that its address and login are right)",
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for NotReady {}

impl Monitor {
    /// Starts probing `nodes`; node `i` is [`NodeId`]`(i)` in every topology.
    ///
    /// Must be called inside a tokio runtime (it spawns one task per node).
    /// Until the first probes finish, every node is down with an unknown role.
    ///
    /// # Panics
    /// With more than 65,535 nodes (a [`NodeId`] is 16 bits).
    pub fn start(nodes: Vec<NodeAddress>, config: MonitorConfig) -> Monitor {
        assert!(
            nodes.len() <= usize::from(u16::MAX),
            "a topology holds at most {} nodes",
            u16::MAX
        );
        let count = nodes.len();
        let state = Arc::new(MonitorState::new(nodes, config));
        let tasks = (0..count)
            .map(|index| tokio::spawn(watch_node(Arc::clone(&state), NodeId(index as u16))))
            .collect();
        Monitor {
            running: Arc::new(Running {
                state,
                tasks: Mutex::new(tasks),
            }),
        }
    }

    /// The latest topology (no waiting).
    pub fn topology(&self) -> Arc<Topology> {
        Arc::clone(&self.running.state.topology.borrow())
    }

    /// A receiver that sees each new topology as it is published (only when
    /// something changed: a role, a health, an LSN or a lag).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Topology>> {
        self.running.state.topology.subscribe()
    }

    /// The nodes, in [`NodeId`] order (those removed by
    /// [`Monitor::remove_node`] included: ids are never reused).
    pub fn addresses(&self) -> Vec<NodeAddress> {
        self.running.state.addresses()
    }

    /// The address of `node`, if the monitor has it (and it was not removed).
    pub fn address(&self, node: NodeId) -> Option<NodeAddress> {
        self.running.state.address(node)
    }

    /// Starts probing a node at the next [`NodeId`] (never one a removed node
    /// had). It is down with an unknown role until its first probe answers,
    /// then judged as every node: a replica gets reads once it is up,
    /// follows the primary and has replayed what a read requires.
    /// `None` when every id is taken.
    ///
    /// Must be called inside a tokio runtime (it spawns the node's task).
    pub fn add_node(&self, address: NodeAddress) -> Option<NodeId> {
        let mut tasks = self
            .running
            .tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let id = self.running.state.add(address)?;
        let task = tokio::spawn(watch_node(Arc::clone(&self.running.state), id));
        // Tasks are kept by id: pad for ids given before this handle existed.
        while tasks.len() < id.index() {
            tasks.push(tokio::spawn(async {}));
        }
        tasks.push(task);
        Some(id)
    }

    /// Takes `node` out of routing while what runs on it finishes: it is
    /// still probed, but every topology shows it as not following the
    /// primary ([`pgrw_core::route::Orphan::Removed`]), so no new read goes
    /// to it, while a transaction or pin already on it carries on. End with
    /// [`Monitor::remove_node`]. False for a node the monitor does not have
    /// or removed already.
    pub fn drain_node(&self, node: NodeId) -> bool {
        self.running.state.drain(node)
    }

    /// Stops probing `node` for good: from the next topology on it is down
    /// with an unknown role, so nothing is routed to it, and its id is never
    /// given to another node. False for a node the monitor does not have or
    /// removed already.
    pub fn remove_node(&self, node: NodeId) -> bool {
        let tasks = self
            .running
            .tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(task) = tasks.get(node.index()) {
            task.abort();
        }
        drop(tasks);
        self.running.state.retire(node)
    }

    /// Waits until every node has been probed once (up or not) and a primary
    /// is up, or `timeout` passes.
    pub async fn ready(&self, timeout: Duration) -> Result<(), NotReady> {
        let state = &self.running.state;
        let mut probes = state.probes.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            while !state.is_ready() {
                if probes.changed().await.is_err() {
                    // Cannot happen while `state` is alive; wait out the timeout.
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        waited.map_err(|_| NotReady {
            waited: timeout,
            unprobed: state.unprobed(),
            primary_found: self
                .topology()
                .nodes
                .iter()
                .any(|node| node.role == Role::Primary && node.is_up()),
        })
    }

    /// Monotonic time since the monitor started: the `now` pgrw-core's routing
    /// and health functions take, and the clock of every `until` in a
    /// [`Topology`] or route.
    pub fn now(&self) -> Duration {
        self.running.state.now()
    }

    /// Tells the monitor a driver could not connect to (or talk to) `node`:
    /// the node is banned at once, as for a failed connection, and probed
    /// again soon. `what` says what failed, for the log.
    pub fn report_failure(&self, node: NodeId, what: &str) {
        let state = &self.running.state;
        state.record(node, Outcome::DriverFailed(what.to_string()));
        state.wake(node);
    }

    /// Bans `node` on an operator's word (the admin console's `BAN`): no
    /// read or write is routed to it until [`Monitor::operator_unban`],
    /// whatever its probes find. False for a node the monitor does not have.
    pub fn operator_ban(&self, node: NodeId) -> bool {
        self.running.state.set_operator_ban(node, true)
    }

    /// Lifts an operator's ban of `node`: its probes decide its health again.
    /// False for a node the monitor does not have.
    pub fn operator_unban(&self, node: NodeId) -> bool {
        let known = self.running.state.set_operator_ban(node, false);
        self.running.state.wake(node);
        known
    }

    /// Sets `node`'s weight under weighted balancing (a reload changed it):
    /// the next topology has it.
    pub fn set_weight(&self, node: NodeId, weight: u32) {
        self.running.state.set_weight(node, weight);
    }

    /// Whether an operator banned `node`.
    pub fn operator_banned(&self, node: NodeId) -> bool {
        self.running.state.operator_banned(node)
    }

    /// Tells the monitor one connection to `node` failed mid-use: the node
    /// is probed now, and banned only if the probe fails. One backend ending
    /// (`pg_terminate_backend`, an out-of-memory kill, `idle_session_timeout`)
    /// says nothing of the node, and must not move every session off it.
    pub fn report_suspect(&self, node: NodeId) {
        self.running.state.wake(node);
    }

    /// Probes every node now, without waiting for the interval. A node the
    /// monitor cannot connect to is tried at its own pace (every interval, or
    /// up to 1 s apart while its server refuses the login).
    pub fn refresh(&self) {
        for (id, _) in self.topology().iter() {
            self.running.state.wake(id);
        }
    }

    /// Waits until some replica that is up (`node`, when given) has replayed
    /// `lsn`, probing the replicas eagerly meanwhile. `deadline` is a monitor
    /// time (see [`Monitor::now`]), as in core's `Target::WaitForReplica`.
    ///
    /// True when such a replica is seen before the deadline; false at it.
    pub async fn wait_for_replay(
        &self,
        lsn: Lsn,
        deadline: Duration,
        node: Option<NodeId>,
    ) -> bool {
        self.probe_eagerly_until(deadline, Role::Primary, |topology| {
            replica_has_replayed(topology, lsn, node)
        })
        .await
    }

    /// Waits until the topology knows the primary's position as of a probe
    /// begun at or after `since` (a monitor time), probing the primary at
    /// once meanwhile: every read waiting at the same moment shares that one
    /// probe. `deadline` is a monitor time, as in core's
    /// `Target::AwaitPrimaryPosition`.
    ///
    /// True when such a position is known before the deadline; false at it.
    pub async fn await_primary_position(&self, since: Duration, deadline: Duration) -> bool {
        self.probe_eagerly_until(deadline, Role::Replica, |topology| {
            topology.primary_lsn_since(since).is_some()
        })
        .await
    }

    /// Waits until `seen` holds of a published topology or `deadline` (a
    /// monitor time) passes, waking every node not known to be `other`
    /// every [`EAGER_PROBE_INTERVAL`] meanwhile. True when `seen` held.
    async fn probe_eagerly_until(
        &self,
        deadline: Duration,
        other: Role,
        seen: impl Fn(&Topology) -> bool,
    ) -> bool {
        let mut topology = self.subscribe();
        loop {
            if seen(&topology.borrow_and_update()) {
                return true;
            }
            let now = self.now();
            if now >= deadline {
                return false;
            }
            self.probe_all_but(other);
            let tick = deadline.saturating_sub(now).min(EAGER_PROBE_INTERVAL);
            if let Ok(Err(_)) = tokio::time::timeout(tick, topology.changed()).await {
                // The sender lives as long as `self`: not reached, but never spin.
                tokio::time::sleep(tick).await;
            }
        }
    }

    /// Waits until a new topology is published or `deadline` (a monitor
    /// time) passes.
    pub async fn topology_changed(&self, deadline: Duration) {
        let mut topology = self.subscribe();
        topology.mark_unchanged();
        let left = deadline.saturating_sub(self.now());
        if let Ok(Err(_)) = tokio::time::timeout(left, topology.changed()).await {
            tokio::time::sleep(left).await;
        }
    }

    /// Stops probing. The last topology stays readable.
    pub fn shutdown(&self) {
        abort_all(&self.running.tasks);
    }

    /// Wakes the tasks of the nodes whose role is not `other` (or not known).
    fn probe_all_but(&self, other: Role) {
        let topology = self.topology();
        for (id, node) in topology.iter() {
            if node.role != other {
                self.running.state.wake(id);
            }
        }
    }
}

/// Whether a replica that is up (and follows the primary) has replayed `lsn`.
fn replica_has_replayed(topology: &Topology, lsn: Lsn, only: Option<NodeId>) -> bool {
    topology.iter().any(|(id, node)| {
        only.is_none_or(|only| only == id)
            && node.role == Role::Replica
            && node.is_up()
            && node.follows_primary()
            && node.replay_lsn >= lsn
    })
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("nodes", &self.running.state.addresses())
            .field("topology", &self.topology())
            .finish()
    }
}
