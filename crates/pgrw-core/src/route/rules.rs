//! The routing rules: one pure function from (statement, session, topology,
//! policy, balancer state) to a [`Route`].
//!
//! In order: a deferred transaction (`transaction_reads = replica`) reads on
//! its read leg and opens on the primary at its first other statement; an
//! open transaction keeps everything on its node; a pin keeps the
//! session on its node (except writes, which only the primary takes; and a
//! read pinned to a replica waits until it has replayed the session's writes); a
//! session whose default isolation is serializable reads on the primary (a hot
//! standby refuses serializable transactions); a
//! primary hint or `pgrw.route = primary` sends anything to the primary;
//! then by class: reads (and `BEGIN READ ONLY`) to an eligible replica,
//! everything else to the primary.
//!
//! A session is pinned where a pinning statement ran, and the classifier makes
//! every pinning statement a write (`DECLARE … WITH HOLD`, `PREPARE`, `LISTEN`,
//! temp tables, advisory locks): outside a transaction a pin is therefore
//! always made on the primary, where the session's later writes can follow it.

use std::time::Duration;

use crate::classification::{RouteHint, StatementClass, TxAccess};
use crate::lsn::Lsn;
use crate::route::balance::Balancer;
use crate::route::decision::{Pick, Route, RouteReason, Target, Unavailable};
use crate::route::policy::{Balancing, Policy, PrimaryReads, StaleRead};
use crate::route::session::{Deferred, Pin, RouteMode, SessionState};
use crate::route::topology::{Lag, Node, NodeId, Role, Topology};

/// One statement to route, and the time it is routed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRequest {
    /// What the classifier says the statement is.
    pub class: StatementClass,
    /// A hint written in the statement.
    pub hint: Option<RouteHint>,
    /// Monotonic time now (from an origin the driver chooses).
    pub now: Duration,
    /// When routing again after a [`Target::WaitForReplica`]: the deadline it
    /// gave. Past it, the read stops waiting and goes to the primary.
    pub waited_until: Option<Duration>,
    /// For a read that must see every write acknowledged before this
    /// (monotonic) time, anywhere: linearizable reads, and a proxy that has
    /// not yet learned where the primary stood when it started. The read
    /// requires the primary's position as of a probe begun at or after it.
    pub fresh_since: Option<Duration>,
    /// The statement asks only about the session's own backend (the
    /// statements and cursors its client made there: `pg_prepared_statements`,
    /// `pg_cursors`), beside reads. In a deferred transaction with a read
    /// leg it goes to the leg as it is, without waiting for replay: what it
    /// must show is that backend's, which no other node has.
    pub session_backend: bool,
}

impl RouteRequest {
    /// A statement of `class` with `hint`, routed at monotonic time `now`.
    pub fn new(class: StatementClass, hint: Option<RouteHint>, now: Duration) -> RouteRequest {
        RouteRequest {
            class,
            hint,
            now,
            waited_until: None,
            fresh_since: None,
            session_backend: false,
        }
    }
}

/// Where the statement or session asks to go.
#[derive(Clone, Copy)]
enum Preference {
    Primary(RouteReason),
    Replica(RouteReason),
    None,
}

/// Decides where one statement runs, and why.
///
/// Guarantees, whatever the inputs: the route never names a node that is not
/// up (down or banned); a write never goes to a node that is not the up
/// primary, except inside a `READ ONLY` transaction already open on a replica
/// (where PostgreSQL rejects it as it would on the primary); outside a
/// transaction, a read never goes to a replica that has not replayed
/// [`SessionState::required_lsn`] (one pinned to a replica waits for it, or
/// is refused).
pub fn route(
    request: &RouteRequest,
    session: &SessionState,
    topology: &Topology,
    policy: &Policy,
    balancer: &mut Balancer,
) -> Route {
    let class = request.class;
    if let Some(deferred) = session.deferred {
        return deferred_route(request, session, deferred, topology, policy, balancer);
    }
    if let Some(transaction) = session.transaction {
        let primary_only =
            class == StatementClass::Write && transaction.access != TxAccess::ReadOnly;
        return on_held_node(
            transaction.node,
            RouteReason::InTransaction,
            primary_only,
            topology,
        );
    }
    if let Some(pin) = session.pin {
        let needs_primary = matches!(
            class,
            StatementClass::Write
                | StatementClass::Begin(TxAccess::ReadWrite | TxAccess::Unspecified)
        );
        let pinned_to_primary = topology.writable_primary() == Ok(pin.node);
        if pinned_to_primary {
            return on_held_node(pin.node, RouteReason::Pinned(pin.reason), false, topology);
        }
        if !needs_primary {
            return pinned_replica_read(request, session, pin, topology, policy);
        }
    }
    // A hot standby refuses serializable transactions, whatever a hint says.
    if session.serializable_default
        && matches!(
            class,
            StatementClass::Read | StatementClass::Begin(TxAccess::ReadOnly)
        )
    {
        return to_primary(RouteReason::SerializableSession, topology);
    }
    let preference = match (request.hint, session.route_mode) {
        (Some(RouteHint::Primary), _) => Preference::Primary(RouteReason::PrimaryHint),
        (Some(RouteHint::Replica), _) => Preference::Replica(RouteReason::ReplicaHint),
        (None, RouteMode::Primary) => Preference::Primary(RouteReason::PrimaryMode),
        (None, RouteMode::Replica) => Preference::Replica(RouteReason::ReplicaMode),
        (None, RouteMode::Auto) => Preference::None,
    };
    if let Preference::Primary(reason) = preference {
        return to_primary(reason, topology);
    }
    let replicas_only = matches!(preference, Preference::Replica(_));
    let read = ReadPlacement {
        request,
        session,
        topology,
        policy,
        replicas_only,
    };
    match class {
        StatementClass::Read => {
            let reason = match preference {
                Preference::Replica(reason) => reason,
                _ => RouteReason::Read,
            };
            read.route(reason, balancer)
        }
        StatementClass::Begin(TxAccess::ReadOnly) => {
            read.route(RouteReason::ReadOnlyTransaction, balancer)
        }
        StatementClass::Begin(access) => to_primary(RouteReason::Transaction(access), topology),
        StatementClass::Write => to_primary(RouteReason::Write, topology),
        StatementClass::SetTransaction(_)
        | StatementClass::Commit
        | StatementClass::Rollback
        | StatementClass::Savepoint => to_primary(RouteReason::TransactionControl, topology),
        StatementClass::Session => to_primary(RouteReason::SessionStatement, topology),
        StatementClass::Empty => to_primary(RouteReason::Empty, topology),
    }
}

/// A statement in a deferred transaction ([`Deferred`]): a plain read on its
/// read leg (or, for the first, a replica placed as any read is, which
/// becomes the leg); `COMMIT`/`ROLLBACK`, a question about the session's
/// own backend ([`RouteRequest::session_backend`]), and everything once the
/// leg failed, on the leg; anything else on the primary, where the transaction
/// then opens. A read that must see more than the leg has replayed waits for
/// it as the policy says, then goes to the primary (the leg's node never
/// serves a later read an older state than an earlier one: it is one backend).
fn deferred_route(
    request: &RouteRequest,
    session: &SessionState,
    deferred: Deferred,
    topology: &Topology,
    policy: &Policy,
    balancer: &mut Balancer,
) -> Route {
    let class = request.class;
    let leg = session.transaction.map(|transaction| transaction.node);
    if let Some(node) = leg
        && (deferred.failed
            || request.session_backend
            || matches!(class, StatementClass::Commit | StatementClass::Rollback))
    {
        return on_held_node(node, RouteReason::InTransaction, false, topology);
    }
    // Nothing to run (a batch that only closes statements) needs no primary.
    let plain_read = matches!(class, StatementClass::Read | StatementClass::Empty)
        && request.hint != Some(RouteHint::Primary)
        && session.route_mode != RouteMode::Primary;
    if !plain_read {
        return to_primary(RouteReason::OpensTransaction, topology);
    }
    let replicas_only =
        request.hint == Some(RouteHint::Replica) || session.route_mode == RouteMode::Replica;
    let read = ReadPlacement {
        request,
        session,
        topology,
        policy,
        replicas_only,
    };
    match leg {
        None => read.route(RouteReason::ReadInTransaction, balancer),
        Some(node) => read.on_read_leg(node),
    }
}

fn route_to(target: Target, reason: RouteReason) -> Route {
    Route {
        target,
        reason,
        pick: None,
    }
}

fn to_primary(reason: RouteReason, topology: &Topology) -> Route {
    match topology.writable_primary() {
        Ok(id) => route_to(Target::Node(id), reason),
        Err(why) => route_to(Target::Unavailable(Unavailable::NoPrimary(why)), reason),
    }
}

/// How long a read pinned to a replica waits for it to replay the session's
/// writes when the policy asks for no wait ([`StaleRead::Primary`]): it cannot
/// go to the primary instead, as its session's state is on the replica. A
/// waiting policy's own wait applies otherwise (a replica far behind is
/// banned by the lag limit anyway, 5 s by default).
pub const PINNED_REPLICA_WAIT: Duration = Duration::from_secs(5);

/// A read in a session pinned to a replica (a hold cursor, a SQL prepared
/// statement or an advisory lock made inside `BEGIN READ ONLY` there): it runs
/// there, once the replica has replayed what the session must see; until
/// then it waits, and past the wait it is refused rather than read stale.
fn pinned_replica_read(
    request: &RouteRequest,
    session: &SessionState,
    pin: Pin,
    topology: &Topology,
    policy: &Policy,
) -> Route {
    let reason = RouteReason::Pinned(pin.reason);
    let now = request.now;
    let until = request.waited_until.unwrap_or(match policy.stale_read {
        StaleRead::Wait(wait) => now.saturating_add(wait),
        StaleRead::Primary => now.saturating_add(PINNED_REPLICA_WAIT),
    });
    let mut required = session.required_lsn(policy);
    if let Some(since) = request.fresh_since {
        match topology.primary_lsn_since(since) {
            Some(lsn) => required = required.max(lsn),
            None if now < until => {
                return route_to(Target::AwaitPrimaryPosition { since, until }, reason);
            }
            None => {
                let behind = Unavailable::PinnedReplicaBehind(pin.node, required);
                return route_to(Target::Unavailable(behind), reason);
            }
        }
    }
    let behind = topology.node(pin.node).is_some_and(|node| {
        node.role != Role::Primary
            && node.is_up()
            && required.is_valid()
            && node.replay_lsn < required
    });
    if !behind {
        return on_held_node(pin.node, reason, false, topology);
    }
    let target = if now < until {
        Target::WaitForReplica {
            lsn: required,
            until,
            node: Some(pin.node),
        }
    } else {
        Target::Unavailable(Unavailable::PinnedReplicaBehind(pin.node, required))
    };
    route_to(target, reason)
}

/// The node a transaction or pin holds the session to, if it can take the statement.
fn on_held_node(id: NodeId, reason: RouteReason, primary_only: bool, topology: &Topology) -> Route {
    let target = match topology.node(id) {
        None => Target::Unavailable(Unavailable::HeldNodeMissing(id)),
        Some(node) if !node.is_up() => {
            Target::Unavailable(Unavailable::HeldNodeNotUp(id, node.health))
        }
        Some(_) if primary_only && topology.writable_primary() != Ok(id) => {
            Target::Unavailable(Unavailable::HeldNodeNotPrimary(id))
        }
        Some(_) => Target::Node(id),
    };
    route_to(target, reason)
}

/// Whether a replica's lag is within the policy's limits; an unknown lag is
/// not, when there is a limit.
fn lag_within_limits(lag: Lag, policy: &Policy) -> bool {
    let within = |value: Option<u64>, limit: Option<u64>| match limit {
        None => true,
        Some(limit) => value.is_some_and(|value| value <= limit),
    };
    within(lag.bytes, policy.max_lag_bytes)
        && within(
            lag.millis,
            policy.max_lag.map(|limit| limit.as_millis() as u64),
        )
}

/// How many more requests in flight a session's replica must have than
/// another before a continuously reading session (held to its replica by
/// monotonic reads) pays one shared primary probe to be free to move.
pub const REBALANCE_MARGIN: u32 = 2;

/// One read (or read-only transaction) to place.
struct ReadPlacement<'a> {
    request: &'a RouteRequest,
    session: &'a SessionState,
    topology: &'a Topology,
    policy: &'a Policy,
    replicas_only: bool,
}

impl ReadPlacement<'_> {
    /// A replica that may serve reads, whatever the session requires: up,
    /// following the current primary, and within the lag limits.
    fn serves(&self, node: &Node) -> bool {
        node.role == Role::Replica
            && node.is_up()
            && node.follows_primary()
            && lag_within_limits(node.lag, self.policy)
    }

    /// What the read must see: the session's requirement and, for a fresh
    /// read, the primary's position as of a probe begun after it asked;
    /// `Err` with the route to take while that position is not known yet.
    fn required_lsn(&self) -> Result<Lsn, Route> {
        let required = self.session.required_lsn(self.policy);
        match self.request.fresh_since {
            None => Ok(required),
            Some(since) => match self.topology.primary_lsn_since(since) {
                Some(lsn) => Ok(required.max(lsn)),
                None => Err(self.await_primary_position(since)),
            },
        }
    }

    fn route(&self, reason: RouteReason, balancer: &mut Balancer) -> Route {
        let required = match self.required_lsn() {
            Ok(required) => required,
            Err(wait) => return wait,
        };
        let last_read = self.session.last_read;
        // An upper bound of what the session's last read saw, once a probe of
        // the primary that began after it has answered.
        let seen = last_read.and_then(|last| self.topology.primary_lsn_since(last.at));
        let monotonic = |id: NodeId, node: &Node| match last_read {
            None => true,
            Some(last) => last.node == id || seen.is_some_and(|seen| node.replay_lsn >= seen),
        };
        let caught_up = |node: &Node| !required.is_valid() || node.replay_lsn >= required;
        if let (Some(last), None) = (last_read, seen)
            && self.crowded(last.node, &caught_up, balancer)
            && let Ok(until) = self.wait_deadline()
        {
            // Its replica is busier than another that could serve: learn the
            // primary's position after the last read (one probe, shared), so
            // that the other becomes a candidate and the balancer may move it.
            return route_to(
                Target::AwaitPrimaryPosition {
                    since: last.at,
                    until,
                },
                RouteReason::PrimaryPosition,
            );
        }
        let primary = self.topology.writable_primary().ok();
        let primary_reads =
            !self.replicas_only && self.policy.primary_reads == PrimaryReads::Always;
        let balancing = self.policy.balancing;
        let picked = balancer.pick(balancing, self.topology, |id, node| {
            (self.serves(node) && caught_up(node) && monotonic(id, node))
                || (primary_reads && primary == Some(id))
        });
        if let Some(id) = picked {
            let lag_bytes = self
                .topology
                .node(id)
                .filter(|node| node.role == Role::Replica);
            let pick = Pick {
                balancing,
                lag_bytes: lag_bytes.and_then(|node| node.lag.bytes),
            };
            return Route {
                target: Target::Node(id),
                reason,
                pick: Some(pick),
            };
        }
        let some_replica_serves = self.topology.nodes.iter().any(|node| self.serves(node));
        if some_replica_serves && (required.is_valid() || last_read.is_some()) {
            return self.behind(required, seen);
        }
        if self.policy.primary_reads == PrimaryReads::Never {
            return route_to(Target::Unavailable(Unavailable::NoReplica), reason);
        }
        to_primary(RouteReason::NoEligibleReplica, self.topology)
    }

    /// Whether `held`, the replica a session keeps reading on (monotonic
    /// reads), has [`REBALANCE_MARGIN`] more requests in flight than another
    /// replica that could serve the read, under least-outstanding balancing.
    fn crowded(
        &self,
        held: NodeId,
        caught_up: &impl Fn(&Node) -> bool,
        balancer: &Balancer,
    ) -> bool {
        if self.policy.balancing != Balancing::LeastOutstanding {
            return false;
        }
        let Some(node) = self.topology.node(held) else {
            return false;
        };
        if !(self.serves(node) && caught_up(node)) {
            return false;
        }
        let load = balancer.load_of(held);
        self.topology.iter().any(|(id, other)| {
            id != held
                && self.serves(other)
                && caught_up(other)
                && balancer.load_of(id).saturating_add(REBALANCE_MARGIN) <= load
        })
    }

    /// The deadline of a read's wait, if the policy lets it wait and it has
    /// not passed; `Err(waited)` otherwise, `waited` saying whether it did wait.
    fn wait_deadline(&self) -> Result<Duration, bool> {
        let now = self.request.now;
        let deadline = match (self.policy.stale_read, self.request.waited_until) {
            (StaleRead::Primary, _) => None,
            (StaleRead::Wait(_), Some(until)) => Some(until),
            (StaleRead::Wait(wait), None) => Some(now.saturating_add(wait)),
        };
        match deadline {
            Some(until) if now < until => Ok(until),
            _ => Err(self.request.waited_until.is_some()),
        }
    }

    /// Replicas serve reads, but none has replayed `required` yet, or none
    /// is known to be at or past what the session's last read saw (`seen`).
    fn behind(&self, required: Lsn, seen: Option<Lsn>) -> Route {
        let until = match self.wait_deadline() {
            Ok(until) => until,
            Err(true) => return to_primary(RouteReason::WaitedForReplica(required), self.topology),
            Err(false) => return to_primary(RouteReason::ReadYourWrites(required), self.topology),
        };
        let last_read = self.session.last_read;
        let last_node_serves = last_read
            .and_then(|last| self.topology.node(last.node).map(|node| (last.node, node)))
            .filter(|(_, node)| self.serves(node))
            .map(|(id, _)| id);
        let wait = |lsn: Lsn, node: Option<NodeId>| {
            route_to(
                Target::WaitForReplica { lsn, until, node },
                RouteReason::ReadYourWrites(lsn),
            )
        };
        match (last_node_serves, last_read, seen) {
            // The replica the session last read on serves, so it is only
            // behind `required`: it is the one to wait for.
            (Some(node), _, _) => wait(required, Some(node)),
            (None, Some(last), None) => route_to(
                Target::AwaitPrimaryPosition {
                    since: last.at,
                    until,
                },
                RouteReason::PrimaryPosition,
            ),
            (None, _, seen) => wait(required.max(seen.unwrap_or(Lsn::INVALID)), None),
        }
    }

    /// A later read of a deferred transaction, on its read leg `leg`, once
    /// the leg has replayed what the read must see (the policy's wait for
    /// it); past the wait, or with the leg's node no longer serving reads,
    /// the primary, where the transaction opens.
    fn on_read_leg(&self, leg: NodeId) -> Route {
        let required = match self.required_lsn() {
            Ok(required) => required,
            Err(wait) => return wait,
        };
        let Some(node) = self.topology.node(leg).filter(|node| self.serves(node)) else {
            return to_primary(RouteReason::NoEligibleReplica, self.topology);
        };
        if !required.is_valid() || node.replay_lsn >= required {
            return route_to(Target::Node(leg), RouteReason::ReadInTransaction);
        }
        match self.wait_deadline() {
            Ok(until) => route_to(
                Target::WaitForReplica {
                    lsn: required,
                    until,
                    node: Some(leg),
                },
                RouteReason::ReadYourWrites(required),
            ),
            Err(true) => to_primary(RouteReason::WaitedForReplica(required), self.topology),
            Err(false) => to_primary(RouteReason::ReadYourWrites(required), self.topology),
        }
    }

    /// The read must see the primary's position as of a probe begun at or
    /// after `since`, and the topology has none yet: wait for one, or (when
    /// the policy does not wait, or at the deadline) read on the primary.
    fn await_primary_position(&self, since: Duration) -> Route {
        match self.wait_deadline() {
            Ok(until) => route_to(
                Target::AwaitPrimaryPosition { since, until },
                RouteReason::PrimaryPosition,
            ),
            Err(_) => to_primary(RouteReason::PrimaryPosition, self.topology),
        }
    }
}
