//! Routing one unit of work (a simple query, an extended batch) and getting a
//! backend on the chosen node (settling the session once it is ready again:
//! `settle`), and what a backend that failed under a unit costs the session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgrw_core::classification::Effect;
use pgrw_core::classification::SessionEffects;
use pgrw_core::route::{Balancing, Consistency, NodeId, RouteRequest, Target, route};
use pgrw_core::sql::classify::Classification;
use pgrw_core::{Reason, RouteHint, StatementClass};

use super::Session;
use super::in_flight::bounded;
use crate::backend::BackendError;
use crate::pool::{CheckoutError, Pool, PooledBackend};
use crate::protocol::backend::{NoticeFields, Severity, encode_error_response};
use crate::protocol::sqlstate;
use crate::stats::{ReasonKind, StaleAvoidance};
use crate::unknown_writes::Resolved;

/// What the router needs to know of a unit of work.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unit {
    /// Its class (for a batch: the strictest of its statements).
    pub(super) class: StatementClass,
    /// A hint written in it.
    pub(super) hint: Option<RouteHint>,
    /// The session state it changes.
    pub(super) effects: SessionEffects,
    /// It may show the transaction's start time (`now()`, …): in a deferred
    /// transaction it opens the transaction on the primary.
    pub(super) transaction_time: bool,
    /// It only reads, data and the state of the session's own backend
    /// (`pg_prepared_statements`, …; its class is a write so that the
    /// primary answers): in a deferred transaction with a read leg it runs
    /// on the leg, the backend its client's statements live on.
    pub(super) reads_session_backend: bool,
    /// It reads the state of the session's own backend, whatever else it
    /// does (see `Classification::reads_backend_state`): the backend it runs
    /// on is first made to hold this client's statements and no other.
    pub(super) shows_backend_state: bool,
}

impl Unit {
    /// Whether, in a deferred transaction, this unit opens the transaction on
    /// the primary even if it only reads: it shows the transaction's start
    /// time, or has a session effect (a cursor it declares, which must live
    /// where the transaction goes on).
    pub(super) fn opens_deferred_as_a_write(&self) -> bool {
        self.transaction_time || self.effects != SessionEffects::NONE
    }
}

/// Whether a statement only reads, data and its session's own backend
/// state (see [`Unit::reads_session_backend`]).
pub(super) fn reads_session_backend(classification: &Classification) -> bool {
    classification.class == StatementClass::Write
        && matches!(classification.reason, Reason::SessionBackendState(_))
}

/// The unit running now, for `SHOW STATS` and `/metrics`: its node, the
/// reason it went there, and when it was checked out.
#[derive(Debug, Clone, Copy)]
pub(super) struct UnitTimer {
    node: NodeId,
    reason: ReasonKind,
    started: Instant,
}

/// What routing a unit said beyond its node, counted once it is checked out.
#[derive(Debug, Clone, Copy)]
struct RouteNote {
    reason: ReasonKind,
    stale: Option<StaleAvoidance>,
}

/// One try at routing and checking out.
enum Attempt {
    /// A backend on the chosen node.
    CheckedOut(PooledBackend, RouteNote),
    /// No node can take the unit; the error is written.
    Refused,
    /// The chosen node could not be reached.
    Unreachable(NodeId, CheckoutError),
}

impl Session {
    /// Routes `unit` and returns a backend on the chosen node. `None`: no node
    /// can take it, and an ErrorResponse is already written (the caller ends
    /// the exchange with ReadyForQuery).
    pub(super) async fn acquire(&mut self, unit: &Unit) -> Option<PooledBackend> {
        // Its command tag (`SELECT n` for `CREATE UNLOGGED TABLE … AS`) may
        // not say that the catalog changed: reload it once the transaction ends.
        self.catalog_changed |= unit.effects.contains(Effect::UNLOGGED_RELATION);
        // Whatever runs, a read-only transaction on a replica may not move
        // any more (`simple_query` keeps it for a SET TRANSACTION).
        self.fresh_read_only = None;
        self.wait_while_paused().await;
        let mut backend = self.route_and_check_out(unit).await?;
        self.set_cancel_target(&mut backend);
        let state = self.state.clone();
        let node = backend.node();
        let target = backend.connection().cancel_target.clone();
        if let Err(error) = bounded(&state, node, target, self.replay_settings(&mut backend)).await
        {
            self.failed_before_unit(backend, error);
            return None;
        }
        let mut backend = self.enter_deferred(backend).await?;
        if unit.shows_backend_state {
            let target = backend.connection().cancel_target.clone();
            let shown = self.show_own_statements(&mut backend);
            if let Err(error) = bounded(&state, node, target, shown).await {
                self.failed_before_unit(backend, error);
                return None;
            }
        }
        Some(backend)
    }

    /// `backend` failed in the proxy's own work before the unit ran on it
    /// (settings replayed, the deferred transaction opened, the client's
    /// statements shown): it is dropped, its node probed at once, and the
    /// client told why.
    pub(super) fn failed_before_unit(&mut self, backend: PooledBackend, error: BackendError) {
        let node = backend.node();
        drop(backend);
        self.state.monitor.report_suspect(node);
        self.error(sqlstate::CONNECTION_FAILURE, format!("pgrw: {error}"));
    }

    /// Routes and checks out; a node that cannot be reached is reported to
    /// the monitor (which bans it at once) and the unit is routed again, unless
    /// a transaction or pin holds the session to that node.
    async fn route_and_check_out(&mut self, unit: &Unit) -> Option<PooledBackend> {
        let attempts = self.state.nodes.ids_given().max(1);
        for attempt in 1..=attempts {
            match self.route_and_check_out_once(unit).await {
                Attempt::CheckedOut(backend, note) => {
                    // Counted where it runs, once, even after a reroute.
                    self.state.stats.record_routed(backend.node(), unit.class);
                    if unit.class == StatementClass::Read
                        && self.routing.deferred.is_some()
                        && self
                            .routing
                            .read_leg()
                            .is_none_or(|leg| leg == backend.node())
                        && self.state.topology().writable_primary() != Ok(backend.node())
                    {
                        self.state.stats.record_read_in_transaction(backend.node());
                    }
                    if let Some(outcome) = note.stale {
                        self.state.stats.routes.record_stale_avoidance(outcome);
                    }
                    self.unit_timer = Some(UnitTimer {
                        node: backend.node(),
                        reason: note.reason,
                        started: Instant::now(),
                    });
                    return Some(backend);
                }
                Attempt::Refused => return None,
                Attempt::Unreachable(node, error) => {
                    self.state.monitor.report_failure(node, &error.to_string());
                    let held = self.routing.transaction.is_some() || self.routing.pin.is_some();
                    if held || attempt == attempts {
                        self.error(
                            sqlstate::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                            format!("pgrw: {error}"),
                        );
                        return None;
                    }
                }
            }
        }
        None
    }

    async fn route_and_check_out_once(&mut self, unit: &Unit) -> Attempt {
        let config = self.live_config();
        let policy = config.policy.policy();
        let consistency = config.policy.consistency();
        if policy.balancing == Balancing::LeastOutstanding {
            self.balancer.set_load(self.state.pools.in_flight());
        }
        let state = Arc::clone(&self.state);
        let monitor = &state.monitor;
        // In a deferred transaction, a read of the transaction's start time,
        // or one with a session effect (a cursor it declares, which must live
        // where the transaction goes on), opens it on the primary as a write does.
        let class = self.routed_class(unit);
        let mut request = RouteRequest::new(class, unit.hint, monitor.now());
        request.session_backend = unit.reads_session_backend;
        let began = request.now;
        let mut waited = None;
        let (decided, topology) = loop {
            let topology = self.state.topology();
            if consistency.proxy_writes() {
                // Every write committed through the proxy, on any connection.
                self.routing.shared_lsn = self.state.last_write_lsn();
            }
            request.fresh_since = match consistency {
                Consistency::Linearizable => Some(began),
                // Writes acknowledged whose position is unknown (made before
                // the proxy started, or whose LSN could not be read): the
                // primary's position as of a probe begun after them.
                Consistency::Proxy => self.state.unknown_writes_since(&topology),
                Consistency::Connection => self.unknown_write_since(&topology),
                Consistency::Bounded => None,
            };
            let decided = route(
                &request,
                &self.routing,
                &topology,
                &policy,
                &mut self.balancer,
            );
            let until = match decided.target {
                Target::WaitForReplica { lsn, until, node } => {
                    if waited == Some(decided.target) {
                        // The monitor saw a replica there, yet the route still
                        // waits (a lag limit excludes it): wait for news.
                        monitor.topology_changed(until).await;
                    } else {
                        monitor.wait_for_replay(lsn, until, node).await;
                    }
                    until
                }
                Target::AwaitPrimaryPosition { since, until } => {
                    if waited == Some(decided.target) {
                        monitor.topology_changed(until).await;
                    } else {
                        monitor.await_primary_position(since, until).await;
                    }
                    until
                }
                _ => break (decided, topology),
            };
            waited = Some(decided.target);
            request.now = monitor.now();
            request.waited_until = Some(until);
        };
        // `%` renders the route only when debug is enabled: no string otherwise.
        if unit.class != StatementClass::Empty {
            tracing::debug!(
                node = decided
                    .node()
                    .and_then(|id| topology.node(id))
                    .map_or("none", |node| &*node.name),
                route = %decided.explain(&topology),
                class = ?unit.class,
                "statement routed"
            );
        }
        let Some(node) = decided.node() else {
            let explained = decided.explain(&topology).to_string();
            self.error(sqlstate::CANNOT_CONNECT_NOW, format!("pgrw: {explained}"));
            self.last_route = Some((decided, topology));
            return Attempt::Refused;
        };
        // Rendered only if the client asks (`SHOW pgrw.route`): no string per
        // statement. A unit with no statement (a batch of Close messages, as
        // drivers send when they drop a prepared statement) is not one to report.
        let note = RouteNote {
            reason: ReasonKind::of(decided.reason),
            stale: stale_avoidance(
                unit.class,
                &decided,
                &topology,
                self.routing.required_lsn(&policy).is_valid(),
                waited.is_some(),
            ),
        };
        if unit.class != StatementClass::Empty {
            self.last_route = Some((decided, topology));
        }
        if let Some(index) = self.held.iter().position(|backend| backend.node() == node) {
            return Attempt::CheckedOut(self.held.swap_remove(index), note);
        }
        let Some(pool) = self.pool(node) else {
            self.error(
                sqlstate::INTERNAL_ERROR,
                format!("pgrw: the route names node {node:?}, which pgrw.toml does not list"),
            );
            return Attempt::Refused;
        };
        match pool.checkout().await {
            Ok(backend) => Attempt::CheckedOut(backend, note),
            Err(error @ CheckoutError::Timeout { .. }) => {
                self.error(sqlstate::TOO_MANY_CONNECTIONS, format!("pgrw: {error}"));
                Attempt::Refused
            }
            Err(error) => Attempt::Unreachable(node, error),
        }
    }

    /// While the proxy is paused (`PAUSE` on the admin console), holds a unit
    /// that would start a transaction: one inside a transaction, pinned to a
    /// backend or holding one carries on, so that what is in progress ends.
    /// A shutdown ends the wait too.
    async fn wait_while_paused(&mut self) {
        if !self.state.pause.is_paused()
            || self.routing.transaction.is_some()
            || self.routing.pin.is_some()
            || !self.held.is_empty()
        {
            return;
        }
        let state = self.state.clone();
        let mut shutdown = self.shutdown.clone();
        self.registered.set_held(true);
        tokio::select! {
            () = state.pause.resumed() => {}
            _ = shutdown.changed() => {}
        }
        self.registered.set_held(false);
    }

    /// Counts the unit that ran (its node, reason, time; `errored`).
    pub(super) fn unit_finished(&mut self, errored: bool) {
        if let Some(timer) = self.unit_timer.take() {
            self.state.stats.routes.record_finished(
                timer.node,
                timer.reason,
                timer.started.elapsed(),
                errored,
            );
        }
    }

    /// This client's pool on `node`: found in the proxy's map on first use,
    /// then kept, so routing a statement allocates nothing.
    fn pool(&mut self, node: NodeId) -> Option<Arc<Pool>> {
        let index = node.index();
        if let Some(Some(pool)) = self.pools.get(index) {
            return Some(pool.clone());
        }
        let pool = self.state.pool(node, &self.user, &self.database)?;
        if self.pools.len() <= index {
            self.pools.resize(index + 1, None);
        }
        self.pools[index] = Some(pool.clone());
        Some(pool)
    }

    /// Makes a CancelRequest from this client reach `backend`.
    pub(super) fn set_cancel_target(&mut self, backend: &mut PooledBackend) {
        let target = backend.connection().cancel_target.clone();
        if let Ok(mut slot) = self.cancel.slot.lock() {
            *slot = Some(target);
        }
    }

    /// When this session acknowledged a write of unknown position, if the
    /// topology does not yet know the primary's position after it (see
    /// [`Session::lose_write_position`]); once it does, that is the session's
    /// last write.
    fn unknown_write_since(&mut self, topology: &pgrw_core::route::Topology) -> Option<Duration> {
        match self.unknown_write.resolve(topology) {
            Resolved::None => None,
            Resolved::Waiting(since) => Some(since),
            Resolved::Known(lsn) => {
                self.routing.record_write(lsn);
                None
            }
        }
    }

    /// A backend failed mid-exchange: it is closed, the session leaves any
    /// transaction it had there, and the client gets an error and ReadyForQuery.
    /// The node is probed at once, not banned: one backend ending (killed by
    /// `pg_terminate_backend`, say) must not move every other session off a
    /// healthy node; a node that is down fails the probe and is banned then.
    pub(super) fn backend_failed(&mut self, backend: PooledBackend, message: String) {
        self.backend_failed_with(backend, message, None);
    }

    /// As [`Session::backend_failed`], for a relay that failed with `error`:
    /// a backend that ended with its own FATAL is reported as lost (`08006`),
    /// the node's words as the detail.
    pub(super) fn backend_lost(&mut self, backend: PooledBackend, error: BackendError) {
        match error {
            BackendError::Ended {
                node,
                code,
                message,
            } => self.backend_failed_with(
                backend,
                format!("the backend was lost mid-statement: node {node} ended the connection"),
                Some(format!("{message} (SQLSTATE {code})")),
            ),
            other => self.backend_failed(backend, other.to_string()),
        }
    }

    fn backend_failed_with(
        &mut self,
        backend: PooledBackend,
        message: String,
        detail: Option<String>,
    ) {
        let node = backend.node();
        drop(backend);
        self.unit_finished(true);
        self.state.monitor.report_suspect(node);
        if self.routing.transaction.is_some_and(|t| t.node == node) {
            self.routing.end_transaction();
        }
        self.pending_write = false;
        if let Some(pin) = self.routing.pin.filter(|pin| pin.node == node) {
            // The pinned state (temp tables, locks, listens, cursors) died with
            // the backend and cannot be rebuilt elsewhere: end the connection,
            // as PostgreSQL ends a direct one, rather than carry on without it.
            self.routing.unpin();
            let message = format!("pgrw: this session's {} is lost: {message}", pin.reason);
            let mut fields =
                NoticeFields::new(Severity::Fatal, sqlstate::CONNECTION_FAILURE, message);
            fields.detail = detail;
            encode_error_response(&mut self.client.out, &fields);
            self.must_end = true;
            return;
        }
        let mut fields = NoticeFields::new(
            Severity::Error,
            sqlstate::CONNECTION_FAILURE,
            format!("pgrw: {message}"),
        );
        fields.detail = detail;
        encode_error_response(&mut self.client.out, &fields);
        self.ready();
    }
}

/// What a read that had a position to see (`required`) got, if it was one:
/// a replica at once, a replica after waiting, or the primary because no
/// replica had it in time.
fn stale_avoidance(
    class: StatementClass,
    decided: &pgrw_core::route::Route,
    topology: &pgrw_core::route::Topology,
    required: bool,
    waited: bool,
) -> Option<StaleAvoidance> {
    use pgrw_core::route::{Role, RouteReason};
    if class != StatementClass::Read || !required {
        return None;
    }
    if matches!(
        decided.reason,
        RouteReason::ReadYourWrites(_) | RouteReason::WaitedForReplica(_)
    ) {
        return Some(StaleAvoidance::PrimaryFallback);
    }
    let on_replica = decided
        .node()
        .and_then(|node| topology.node(node))
        .is_some_and(|node| node.role == Role::Replica);
    match (on_replica, waited) {
        (true, false) => Some(StaleAvoidance::ReplicaServed),
        (true, true) => Some(StaleAvoidance::WaitedThenReplica),
        (false, _) => None,
    }
}
