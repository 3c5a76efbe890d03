//! Placing one statement: route it with the core's pure [`route`] function
//! against the monitor's latest topology, wait (bounded) when the route says
//! so, and when a node cannot be reached, report it to the monitor and route
//! again without it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgrw_core::route::{
    Balancer, Balancing, Health, NodeId, Role, Route, RouteRequest, SessionState, Target, Topology,
    route,
};
use pgrw_core::{RouteHint, StatementClass};
use sqlx::Postgres;
use sqlx::pool::PoolConnection;

use crate::pool::{Shared, unroutable};

static SEEDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // One balancer per thread (never shared behind a lock); seeds differ per
    // thread and per process.
    static BALANCER: RefCell<Balancer> = RefCell::new(Balancer::with_seed(seed()));
}

fn seed() -> u64 {
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    let order = SEEDS.fetch_add(1, Ordering::Relaxed);
    clock ^ order.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id())
}

/// Where a statement was placed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    /// The node to run on.
    pub(crate) node: NodeId,
    /// Whether the node was a replica when routed (reads there may be retried
    /// elsewhere when it cannot be reached).
    pub(crate) on_replica: bool,
}

/// One statement being placed: its class, the session state it is routed
/// with, and the nodes found unreachable so far.
pub(crate) struct Placement<'a> {
    shared: &'a Shared,
    class: StatementClass,
    hint: Option<RouteHint>,
    session: SessionState,
    excluded: Vec<NodeId>,
}

impl<'a> Placement<'a> {
    /// A statement of `class` with `hint`, from a session in `session`.
    pub(crate) fn new(
        shared: &'a Shared,
        class: StatementClass,
        hint: Option<RouteHint>,
        session: &SessionState,
    ) -> Placement<'a> {
        Placement {
            shared,
            class,
            hint,
            session: *session,
            excluded: Vec::new(),
        }
    }

    /// The statement's class.
    pub(crate) fn class(&self) -> StatementClass {
        self.class
    }

    /// The monitor's topology, with the nodes this statement could not reach marked down.
    fn topology(&self) -> std::sync::Arc<Topology> {
        let topology = self.shared.monitor.topology();
        if self.excluded.is_empty() {
            return topology;
        }
        let mut own = Topology::clone(&topology);
        for id in &self.excluded {
            if let Some(node) = own.nodes.get_mut(id.index()) {
                node.health = Health::Down;
            }
        }
        std::sync::Arc::new(own)
    }

    fn route_once(&self, topology: &Topology, waited_until: Option<Duration>) -> Route {
        let mut request = RouteRequest::new(self.class, self.hint, self.shared.monitor.now());
        request.waited_until = waited_until;
        BALANCER.with_borrow_mut(|balancer| {
            if self.shared.policy.balancing == Balancing::LeastOutstanding {
                // A node's connections in use (sqlx counts them; the held
                // ones of transactions and sessions among them).
                balancer.set_load(
                    self.shared
                        .nodes
                        .iter()
                        .map(|node| node.pool.size().saturating_sub(node.pool.num_idle() as u32)),
                );
            }
            route(
                &request,
                &self.session,
                topology,
                &self.shared.policy,
                balancer,
            )
        })
    }

    fn placed(&self, node: NodeId, topology: &Topology) -> Placed {
        let on_replica = topology
            .node(node)
            .is_some_and(|node| node.role == Role::Replica);
        Placed { node, on_replica }
    }

    /// Routes now; a route that says to wait for a replica is taken as
    /// "not yet": the primary, as after a wait that ran out.
    pub(crate) fn now(&self) -> Result<Placed, sqlx::Error> {
        let topology = self.topology();
        let mut route = self.route_once(&topology, None);
        if let Target::WaitForReplica { until, .. } | Target::AwaitPrimaryPosition { until, .. } =
            route.target
        {
            route = self.route_once(&topology, Some(until.min(self.shared.monitor.now())));
        }
        match route.target {
            Target::Node(node) => Ok(self.placed(node, &topology)),
            _ => Err(unroutable(route.explain(&topology).to_string())),
        }
    }

    /// The route now, as users read it.
    pub(crate) fn explain_now(&self) -> String {
        let topology = self.topology();
        self.route_once(&topology, None)
            .explain(&topology)
            .to_string()
    }

    /// Routes the statement, waiting (up to the policy's bound) for a replica
    /// to replay what the session must see when the route says to, and (up
    /// to the pool's unavailable wait) for the monitor to find a node when
    /// none can run it: a primary back up after a missed probe, a promotion.
    pub(crate) async fn decide(&self) -> Result<Placed, sqlx::Error> {
        let mut waited_until = None;
        let mut unavailable_since: Option<Duration> = None;
        // Subscribed to topology changes only once no node can run it.
        let mut topologies: Option<tokio::sync::watch::Receiver<std::sync::Arc<Topology>>> = None;
        loop {
            if let Some(receiver) = topologies.as_mut() {
                let _ = receiver.borrow_and_update();
            }
            let topology = self.topology();
            let route = self.route_once(&topology, waited_until);
            match route.target {
                Target::Node(node) => return Ok(self.placed(node, &topology)),
                Target::WaitForReplica { lsn, until, node } => {
                    self.shared.monitor.wait_for_replay(lsn, until, node).await;
                    waited_until = Some(until);
                }
                Target::AwaitPrimaryPosition { since, until } => {
                    self.shared
                        .monitor
                        .await_primary_position(since, until)
                        .await;
                    waited_until = Some(until);
                }
                Target::Unavailable(_) => {
                    let now = self.shared.monitor.now();
                    let since = *unavailable_since.get_or_insert(now);
                    let deadline = since.saturating_add(self.shared.unavailable_wait);
                    if now >= deadline {
                        return Err(unroutable(route.explain(&topology).to_string()));
                    }
                    let Some(receiver) = topologies.as_mut() else {
                        // Subscribe, then route again at once: no change is missed.
                        topologies = Some(self.shared.monitor.subscribe());
                        self.shared.monitor.refresh();
                        continue;
                    };
                    // A new topology, or the deadline: either way, route again.
                    let _ = tokio::time::timeout(deadline - now, receiver.changed()).await;
                }
            }
        }
    }

    /// Records that `placed` could not be reached (`error`): reports it to the
    /// monitor when it looks like the node's failure, and says whether the
    /// statement may be routed again without it.
    ///
    /// Only replicas are reported and left: a write has nowhere else to go,
    /// and the monitor's own probes judge the primary.
    pub(crate) fn failed(&mut self, placed: &Placed, error: &sqlx::Error) -> bool {
        if !placed.on_replica || !is_node_failure(error) {
            return false;
        }
        // No connection in time may mean a dead replica (sqlx retries refused
        // connections until the timeout) or only a busy or slow one: try
        // another node, and leave the verdict to the monitor's probes. A
        // broken or refused connection is reported: the node is banned now.
        if !matches!(error, sqlx::Error::PoolTimedOut) {
            self.shared
                .monitor
                .report_failure(placed.node, &error.to_string());
        }
        self.excluded.push(placed.node);
        self.excluded.len() < self.shared.nodes.len()
    }

    /// A connection to the node `placed` names. Replicas' pools time out
    /// after the connect timeout (see [`crate::RwPoolBuilder::connect_timeout`]),
    /// so that a dead one is left quickly.
    pub(crate) async fn connect(
        &self,
        placed: &Placed,
    ) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        self.shared.pool(placed.node).acquire().await
    }

    /// Places the statement and connects to its node, routing again without
    /// any node that cannot be reached (nothing has been sent yet).
    pub(crate) async fn acquire(
        &mut self,
    ) -> Result<(Placed, PoolConnection<Postgres>), sqlx::Error> {
        loop {
            let placed = self.decide().await?;
            match self.connect(&placed).await {
                Ok(connection) => return Ok((placed, connection)),
                Err(error) => {
                    if !self.failed(&placed, &error) {
                        return Err(error);
                    }
                }
            }
        }
    }
}

/// Whether `error` says the node (not the statement) failed: it could not be
/// reached, the connection broke, or the server is shutting down or starting.
pub(crate) fn is_node_failure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => matches!(
            database.code().as_deref(),
            // admin_shutdown, crash_shutdown, cannot_connect_now
            Some("57P01" | "57P02" | "57P03")
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_connections_and_shutdowns_are_node_failures() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(is_node_failure(&sqlx::Error::Io(refused)));
        assert!(is_node_failure(&sqlx::Error::PoolTimedOut));
    }

    #[test]
    fn statement_errors_are_not_node_failures() {
        assert!(!is_node_failure(&sqlx::Error::RowNotFound));
        assert!(!is_node_failure(&sqlx::Error::ColumnNotFound("x".into())));
    }
}
