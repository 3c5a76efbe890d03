//! A snapshot of the nodes pgrw can route to: role, health, replay position,
//! lag and weight, as the node monitor last saw them (the load on each node,
//! which changes with every statement, is the driver's: see
//! [`crate::route::Balancer::set_load`]).
//!
//! The monitor builds a new [`Topology`] when something changes and the drivers
//! share it behind an `Arc`, swapping it whole; routing only reads it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::lsn::Lsn;
use crate::route::replication::Orphan;

/// A node's place in its [`Topology`]: a small copyable index.
///
/// Ids are positions in [`Topology::nodes`]; the monitor keeps a node at the
/// same position in every snapshot it publishes, so an id held by a session
/// (its transaction's node, its pinned node) stays meaningful across swaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u16);

impl NodeId {
    /// The position of the node in [`Topology::nodes`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node#{}", self.0)
    }
}

/// What a node is, from `pg_is_in_recovery()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Not in recovery: accepts writes.
    Primary,
    /// In recovery (a streaming standby): reads only.
    Replica,
    /// Not known yet (never probed): neither writes nor reads go there.
    Unknown,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Unknown => "unknown",
        })
    }
}

/// Whether a node may be routed to, as decided by [`crate::route::NodeHealth`].
///
/// Times are monotonic, measured from an origin the driver chooses (for
/// example `Instant::now()` when it starts) and passed in as a [`Duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Answering probes: routable.
    Up,
    /// Its last probe failed: not routable until a probe succeeds.
    Down,
    /// Excluded (a connection failed, or its lag went over the limit) at least
    /// until `until`, and after that until a probe finds it healthy.
    Banned {
        /// The earliest time it may be let back.
        until: Duration,
    },
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Up => f.write_str("up"),
            Health::Down => f.write_str("down"),
            Health::Banned { until } => write!(f, "banned until {}ms", until.as_millis()),
        }
    }
}

/// How far a replica is behind the primary, when the monitor knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lag {
    /// WAL bytes between the primary's current LSN and the replica's replay LSN.
    pub bytes: Option<u64>,
    /// Milliseconds since the primary first had WAL the replica has not
    /// replayed (see [`crate::route::PrimaryProgress`]): 0 when it has replayed
    /// everything the primary has written, and growing for a replica that is
    /// paused or follows nothing, whether or not the primary writes.
    pub millis: Option<u64>,
}

impl Lag {
    /// No lag at all (the primary, or a replica that is fully caught up).
    pub const NONE: Lag = Lag {
        bytes: Some(0),
        millis: Some(0),
    };

    /// A replica's lag from the monitor's readings: the primary's
    /// `pg_current_wal_lsn()`, the replica's `pg_last_wal_replay_lsn()`, and
    /// how long the primary has had WAL past that position, in milliseconds
    /// ([`crate::route::PrimaryProgress::behind_for`]).
    ///
    /// A replica that has replayed all of the primary's WAL counts as 0 ms
    /// behind, however long ago its last replayed transaction committed.
    pub fn of_replica(primary_lsn: Lsn, replay_lsn: Lsn, behind_ms: Option<u64>) -> Lag {
        let bytes = primary_lsn.bytes_since(replay_lsn);
        let millis = if bytes == 0 { Some(0) } else { behind_ms };
        Lag {
            bytes: Some(bytes),
            millis,
        }
    }
}

/// One node as the monitor last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The name users see in routes and logs (`primary`, `replica2`).
    pub name: Arc<str>,
    /// Primary, replica, or not yet known.
    pub role: Role,
    /// Whether it may be routed to.
    pub health: Health,
    /// For a replica, `pg_last_wal_replay_lsn()`; [`Lsn::INVALID`] when unknown.
    pub replay_lsn: Lsn,
    /// For a replica, how far behind the primary it is.
    pub lag: Lag,
    /// Relative share of reads under weighted balancing (0: only when no other
    /// candidate has weight).
    pub weight: u32,
    /// Whether its last probe answered, whatever its health. A banned node
    /// that answers as primary (an old primary restarted, still serving a
    /// ban from its outage) makes writes ambiguous at once.
    pub answering: bool,
    /// For a replica, why it does not follow the current primary (no reads
    /// go to it); `None` when it follows, or when that is not known.
    pub orphan: Option<Orphan>,
}

impl Node {
    /// A node with the given name and role, up, with no lag, weight 1 and no load.
    pub fn new(name: &str, role: Role) -> Node {
        Node {
            name: Arc::from(name),
            role,
            health: Health::Up,
            replay_lsn: Lsn::INVALID,
            lag: Lag::NONE,
            weight: 1,
            answering: true,
            orphan: None,
        }
    }

    /// Whether its health lets anything be routed to it.
    pub fn is_up(&self) -> bool {
        self.health == Health::Up
    }

    /// Whether it follows the current primary (see [`Node::orphan`]).
    pub fn follows_primary(&self) -> bool {
        self.orphan.is_none()
    }

    /// Whether it says it is the primary and is alive: up, or banned but
    /// still answering probes. Two such nodes are a split brain.
    pub fn claims_primary(&self) -> bool {
        self.role == Role::Primary
            && (self.is_up() || (self.answering && matches!(self.health, Health::Banned { .. })))
    }
}

/// All nodes at one moment, and the primary's current WAL position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    /// The nodes; a node's [`NodeId`] is its position here.
    pub nodes: Vec<Node>,
    /// The primary's `pg_current_wal_lsn()` when last probed.
    pub primary_lsn: Lsn,
    /// When the probe that read [`Topology::primary_lsn`] began (monotonic
    /// time, the monitor's clock); `None` before any primary answered. Every
    /// write acknowledged before that instant is at or before `primary_lsn`:
    /// what linearizable reads and monotonic reads measure against.
    pub primary_lsn_at: Option<Duration>,
}

/// Why a topology has no primary to write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoPrimary {
    /// No node has the primary role.
    NoneConfigured,
    /// The only primary is not up.
    NotUp(NodeId, Health),
    /// More than one live node says it is the primary (a promotion with the
    /// old primary still running, even one still banned from its outage):
    /// writing to either could lose data.
    Ambiguous(NodeId, NodeId),
}

impl Topology {
    /// A topology of `nodes`, with the primary at `primary_lsn`.
    pub fn new(nodes: Vec<Node>, primary_lsn: Lsn) -> Topology {
        Topology {
            nodes,
            primary_lsn,
            primary_lsn_at: None,
        }
    }

    /// The same topology, with its primary LSN read by a probe that began at `at`.
    pub fn with_primary_lsn_at(mut self, at: Duration) -> Topology {
        self.primary_lsn_at = Some(at);
        self
    }

    /// The primary's position as of a probe begun at or after `since`, when
    /// the topology knows one.
    pub fn primary_lsn_since(&self, since: Duration) -> Option<Lsn> {
        self.primary_lsn_at
            .filter(|at| *at >= since)
            .map(|_| self.primary_lsn)
    }

    /// The node with this id, if the topology has it.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.index())
    }

    /// The id of the node named `name`.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.iter()
            .find(|(_, node)| &*node.name == name)
            .map(|(id, _)| id)
    }

    /// Every node with its id.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        // Ids are u16: a topology never holds more than u16::MAX nodes.
        (0..=u16::MAX).map(NodeId).zip(self.nodes.iter())
    }

    /// The one primary that is up, or why there is none to write to.
    ///
    /// A second node that claims the primary role ([`Node::claims_primary`]:
    /// up, or banned but answering) makes it [`NoPrimary::Ambiguous`].
    pub fn writable_primary(&self) -> Result<NodeId, NoPrimary> {
        let mut claimant: Option<NodeId> = None;
        let mut not_up: Option<(NodeId, Health)> = None;
        for (id, node) in self.iter().filter(|(_, node)| node.role == Role::Primary) {
            if !node.is_up() {
                not_up.get_or_insert((id, node.health));
            }
            if !node.claims_primary() {
                continue;
            }
            if let Some(first) = claimant {
                return Err(NoPrimary::Ambiguous(first, id));
            }
            claimant = Some(id);
        }
        match (claimant, not_up) {
            (Some(id), _) if self.nodes[id.index()].is_up() => Ok(id),
            (Some(id), _) => Err(NoPrimary::NotUp(id, self.nodes[id.index()].health)),
            (None, Some((id, health))) => Err(NoPrimary::NotUp(id, health)),
            (None, None) => Err(NoPrimary::NoneConfigured),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_that_replayed_everything_has_no_time_lag_however_old_its_last_replay() {
        let lag = Lag::of_replica(Lsn(500), Lsn(500), Some(60_000));
        assert_eq!(lag, Lag::NONE);
    }

    #[test]
    fn a_replica_behind_reports_bytes_and_replay_age() {
        let lag = Lag::of_replica(Lsn(500), Lsn(200), Some(1_500));
        assert_eq!(
            lag,
            Lag {
                bytes: Some(300),
                millis: Some(1_500)
            }
        );
    }

    #[test]
    fn the_writable_primary_is_the_one_up_primary() {
        let mut old = Node::new("old", Role::Primary);
        old.health = Health::Down;
        let topology = Topology::new(
            vec![
                old,
                Node::new("replica", Role::Replica),
                Node::new("new", Role::Primary),
            ],
            Lsn::INVALID,
        );
        assert_eq!(topology.writable_primary(), Ok(NodeId(2)));
    }

    #[test]
    fn no_writable_primary_says_why() {
        let mut down = Node::new("primary", Role::Primary);
        down.health = Health::Down;
        let replica = Node::new("replica", Role::Replica);
        let topology = Topology::new(vec![replica.clone(), down], Lsn::INVALID);
        assert_eq!(
            topology.writable_primary(),
            Err(NoPrimary::NotUp(NodeId(1), Health::Down))
        );
        let topology = Topology::new(vec![replica], Lsn::INVALID);
        assert_eq!(topology.writable_primary(), Err(NoPrimary::NoneConfigured));
    }

    #[test]
    fn a_banned_primary_that_answers_beside_an_up_primary_is_a_split_brain() {
        let mut old = Node::new("old", Role::Primary);
        old.health = Health::Banned {
            until: Duration::from_secs(9),
        };
        let topology = Topology::new(
            vec![old.clone(), Node::new("new", Role::Primary)],
            Lsn::INVALID,
        );
        assert_eq!(
            topology.writable_primary(),
            Err(NoPrimary::Ambiguous(NodeId(0), NodeId(1)))
        );
        old.answering = false;
        let topology = Topology::new(vec![old, Node::new("new", Role::Primary)], Lsn::INVALID);
        assert_eq!(
            topology.writable_primary(),
            Ok(NodeId(1)),
            "a banned primary that does not answer is the dead old one"
        );
    }

    #[test]
    fn a_lone_primary_banned_but_answering_is_not_writable() {
        let mut only = Node::new("primary", Role::Primary);
        let banned = Health::Banned {
            until: Duration::from_secs(9),
        };
        only.health = banned;
        let topology = Topology::new(vec![only], Lsn::INVALID);
        assert_eq!(
            topology.writable_primary(),
            Err(NoPrimary::NotUp(NodeId(0), banned))
        );
    }

    #[test]
    fn nodes_are_found_by_name() {
        let topology = Topology::new(
            vec![
                Node::new("primary", Role::Primary),
                Node::new("replica1", Role::Replica),
            ],
            Lsn::INVALID,
        );
        assert_eq!(topology.find("replica1"), Some(NodeId(1)));
        assert_eq!(topology.find("replica9"), None);
    }
}
