//! What [`crate::route::route`] decides: a [`Route`] (target and reason), and
//! how it reads to a user (`replica2: read, least_outstanding, lag 0 B`).
//!
//! Reasons are small `Copy` enums rendered only when someone looks, so routing
//! builds no strings.

use std::fmt;
use std::time::Duration;

use crate::classification::TxAccess;
use crate::lsn::Lsn;
use crate::route::policy::{Balancing, PrimaryReads};
use crate::route::session::PinReason;
use crate::route::topology::{Health, NoPrimary, NodeId, Topology};

/// Where a statement goes, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// The node, the wait, or why there is none.
    pub target: Target,
    /// The rule that decided it.
    pub reason: RouteReason,
    /// How the node was picked among several, for balanced reads.
    pub pick: Option<Pick>,
}

/// Where a statement goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Run it on this node.
    Node(NodeId),
    /// Wait until a replica has replayed `lsn` (a newer topology shows it),
    /// then route again; at `until` (monotonic time), route again with
    /// [`crate::route::RouteRequest::waited_until`] and the read goes to the
    /// primary (or, for a session pinned to a replica, is refused).
    WaitForReplica {
        /// The position the read must see.
        lsn: Lsn,
        /// The deadline for waiting.
        until: Duration,
        /// The replica that must replay it: `None` for any, `Some` for the
        /// one the session is pinned to.
        node: Option<NodeId>,
    },
    /// Wait until the topology knows the primary's position as of a probe
    /// begun at or after `since` (linearizable reads, monotonic reads that
    /// must move off their node, a proxy that has not learned the primary's
    /// position since it started), then route again; at `until`, route again
    /// with [`crate::route::RouteRequest::waited_until`].
    AwaitPrimaryPosition {
        /// The earliest start of a primary probe that answers the question.
        since: Duration,
        /// The deadline for waiting.
        until: Duration,
    },
    /// No node can run it.
    Unavailable(Unavailable),
}

/// Why no node can run a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unavailable {
    /// It needs the primary and there is no usable one.
    NoPrimary(NoPrimary),
    /// A read, no replica can serve it, and the policy keeps reads off the primary.
    NoReplica,
    /// The session's transaction or pin holds it to a node that is not up.
    HeldNodeNotUp(NodeId, Health),
    /// The session's transaction or pin names a node the topology no longer has.
    HeldNodeMissing(NodeId),
    /// A write in a read-write transaction whose node is no longer the primary.
    HeldNodeNotPrimary(NodeId),
    /// A read in a session pinned to this replica, which has not replayed
    /// the position the session must see within the wait.
    PinnedReplicaBehind(NodeId, Lsn),
}

/// The rule that decided a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteReason {
    /// Writes (and anything the classifier was unsure of) go to the primary.
    Write,
    /// A read, spread over the candidates.
    Read,
    /// A read, with a `/* pgrw:replica */` hint: replicas only.
    ReplicaHint,
    /// A read in a session with `pgrw.route = replica`: replicas only.
    ReplicaMode,
    /// `/* pgrw:primary */` hint.
    PrimaryHint,
    /// The session has `pgrw.route = primary`.
    PrimaryMode,
    /// `BEGIN READ ONLY`: the whole transaction may run on a replica.
    ReadOnlyTransaction,
    /// `BEGIN` (read write, or the session default): the primary.
    Transaction(TxAccess),
    /// Inside a transaction: its node.
    InTransaction,
    /// A plain read in a deferred `READ COMMITTED` transaction, before its
    /// first write: a replica (its read leg).
    ReadInTransaction,
    /// The first statement of a deferred transaction that is not a plain
    /// read: the transaction opens on the primary.
    OpensTransaction,
    /// The session's state lives on one node.
    Pinned(PinReason),
    /// Session state (`SET`, `DEALLOCATE`, …) outside a transaction: the primary.
    SessionStatement,
    /// `COMMIT`, `ROLLBACK`, `SAVEPOINT` or `SET TRANSACTION` with no
    /// transaction open: harmless anywhere, sent to the primary.
    TransactionControl,
    /// Nothing to run.
    Empty,
    /// A read with no replica able to serve it: the primary.
    NoEligibleReplica,
    /// No replica has replayed the position the session must see.
    ReadYourWrites(Lsn),
    /// Waited, and still no replica replayed the position in time.
    WaitedForReplica(Lsn),
    /// A read (or `BEGIN READ ONLY`) in a session whose default isolation is
    /// serializable, which a hot standby refuses: the primary.
    SerializableSession,
    /// The read must see where the primary stands now (linearizable, a move
    /// off the node of the session's last read, a proxy just started), and
    /// that is not known yet.
    PrimaryPosition,
}

/// How a balanced read picked its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pick {
    /// The balancing method.
    pub balancing: Balancing,
    /// The chosen replica's lag in bytes (none shown for the primary).
    pub lag_bytes: Option<u64>,
}

impl Route {
    /// The node to run on, when the route names one.
    pub fn node(&self) -> Option<NodeId> {
        match self.target {
            Target::Node(id) => Some(id),
            _ => None,
        }
    }

    /// The route as users read it, with node names from `topology`
    /// (`replica2: read, least_outstanding, lag 0 B`, `primary: write`).
    pub fn explain<'a>(&'a self, topology: &'a Topology) -> Explained<'a> {
        Explained {
            route: self,
            topology,
        }
    }
}

/// A [`Route`] with the topology that names its nodes; `Display` renders it.
#[derive(Debug, Clone, Copy)]
pub struct Explained<'a> {
    route: &'a Route,
    topology: &'a Topology,
}

struct Name<'a>(NodeId, &'a Topology);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1.node(self.0) {
            Some(node) => f.write_str(&node.name),
            None => self.0.fmt(f),
        }
    }
}

impl fmt::Display for Explained<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |id| Name(id, self.topology);
        let Route {
            target,
            reason,
            pick,
        } = self.route;
        match target {
            Target::Node(id) => write!(f, "{}: {reason}", name(*id))?,
            Target::WaitForReplica {
                lsn,
                until,
                node: None,
            } => write!(
                f,
                "wait until {}ms for a replica to replay {lsn}, else primary (read-your-writes)",
                until.as_millis()
            )?,
            Target::WaitForReplica {
                lsn,
                until,
                node: Some(id),
            } => write!(
                f,
                "wait until {}ms for {} to replay {lsn} ({reason})",
                until.as_millis(),
                name(*id)
            )?,
            Target::AwaitPrimaryPosition { until, .. } => write!(
                f,
                "wait until {}ms to learn the primary's current position ({reason})",
                until.as_millis()
            )?,
            Target::Unavailable(why) => {
                match why {
                    Unavailable::NoPrimary(NoPrimary::NoneConfigured) => {
                        f.write_str("no primary available: no node is primary")
                    }
                    Unavailable::NoPrimary(NoPrimary::NotUp(id, health)) => {
                        write!(f, "no primary available: {} is {health}", name(*id))
                    }
                    Unavailable::NoPrimary(NoPrimary::Ambiguous(a, b)) => write!(
                        f,
                        "no primary available: both {} and {} claim to be primary",
                        name(*a),
                        name(*b)
                    ),
                    Unavailable::NoReplica => write!(
                        f,
                        "no replica available (primary_reads = {})",
                        PrimaryReads::Never
                    ),
                    Unavailable::HeldNodeNotUp(id, health) => {
                        write!(f, "{} unavailable: it is {health}", name(*id))
                    }
                    Unavailable::HeldNodeMissing(id) => {
                        write!(f, "{} unavailable: no longer in the topology", name(*id))
                    }
                    Unavailable::HeldNodeNotPrimary(id) => {
                        write!(f, "{} unavailable: no longer the primary", name(*id))
                    }
                    Unavailable::PinnedReplicaBehind(id, lsn) => write!(
                        f,
                        "{} has not replayed {lsn}, which this session's reads must see, and \
                         the session's state (made in a read-only transaction there) keeps its \
                         reads on it; retry, or end that state (CLOSE, DEALLOCATE, unlock)",
                        name(*id)
                    ),
                }?;
                write!(f, " ({reason})")?;
            }
        }
        if let Some(Pick {
            balancing,
            lag_bytes,
        }) = pick
        {
            write!(f, ", {balancing}")?;
            if let Some(bytes) = lag_bytes {
                write!(f, ", lag {bytes} B")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for RouteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteReason::Write => f.write_str("write"),
            RouteReason::Read => f.write_str("read"),
            RouteReason::ReplicaHint => f.write_str("read, hint pgrw:replica"),
            RouteReason::ReplicaMode => f.write_str("read, pgrw.route = replica"),
            RouteReason::PrimaryHint => f.write_str("hint pgrw:primary"),
            RouteReason::PrimaryMode => f.write_str("pgrw.route = primary"),
            RouteReason::ReadOnlyTransaction => f.write_str("BEGIN READ ONLY"),
            RouteReason::Transaction(TxAccess::ReadWrite) => f.write_str("BEGIN READ WRITE"),
            RouteReason::Transaction(_) => f.write_str("BEGIN"),
            RouteReason::InTransaction => f.write_str("in transaction"),
            RouteReason::ReadInTransaction => {
                f.write_str("read in transaction, before its first write")
            }
            RouteReason::OpensTransaction => f.write_str(
                "in transaction, its first statement that is not a plain read (the transaction opens on the primary)",
            ),
            RouteReason::Pinned(why) => write!(f, "pinned ({why})"),
            RouteReason::SessionStatement => f.write_str("session statement"),
            RouteReason::TransactionControl => {
                f.write_str("transaction control outside a transaction")
            }
            RouteReason::Empty => f.write_str("empty statement"),
            RouteReason::NoEligibleReplica => f.write_str("read, no eligible replica"),
            RouteReason::ReadYourWrites(lsn) => {
                write!(f, "read-your-writes, no replica has replayed {lsn}")
            }
            RouteReason::WaitedForReplica(lsn) => {
                write!(f, "read-your-writes, no replica replayed {lsn} in time")
            }
            RouteReason::SerializableSession => {
                f.write_str("read, default isolation serializable (a hot standby refuses it)")
            }
            RouteReason::PrimaryPosition => {
                f.write_str("the primary's current position must be seen")
            }
        }
    }
}
