//! A small cluster and helpers shared by the routing rule tests.

#![allow(dead_code)]

use std::time::Duration;

use pgrw_core::route::{
    self, Balancer, Health, Lag, Node, NodeId, Policy, Role, Route, RouteRequest, SessionState,
    Topology,
};
use pgrw_core::{Lsn, StatementClass};

pub const PRIMARY: NodeId = NodeId(0);
pub const REPLICA1: NodeId = NodeId(1);
pub const REPLICA2: NodeId = NodeId(2);

pub fn lsn(text: &str) -> Lsn {
    text.parse().expect("test LSNs are valid")
}

/// A primary at 0/3000060 and two replicas that have replayed all of it.
pub fn cluster() -> Topology {
    let mut replica1 = Node::new("replica1", Role::Replica);
    replica1.replay_lsn = lsn("0/3000060");
    let mut replica2 = replica1.clone();
    replica2.name = "replica2".into();
    Topology::new(
        vec![Node::new("primary", Role::Primary), replica1, replica2],
        lsn("0/3000060"),
    )
}

pub fn with_replay(mut topology: Topology, node: NodeId, replay: &str) -> Topology {
    let primary_lsn = topology.primary_lsn;
    let replica = &mut topology.nodes[node.index()];
    replica.replay_lsn = lsn(replay);
    replica.lag = Lag::of_replica(primary_lsn, replica.replay_lsn, Some(50));
    topology
}

pub fn with_health(mut topology: Topology, node: NodeId, health: Health) -> Topology {
    topology.nodes[node.index()].health = health;
    topology
}

pub fn decide(
    class: StatementClass,
    session: &SessionState,
    topology: &Topology,
    policy: &Policy,
) -> Route {
    let request = RouteRequest::new(class, None, Duration::ZERO);
    route::route(
        &request,
        session,
        topology,
        policy,
        &mut Balancer::with_seed(1),
    )
}

pub fn explain(
    class: StatementClass,
    session: &SessionState,
    topology: &Topology,
    policy: &Policy,
) -> String {
    decide(class, session, topology, policy)
        .explain(topology)
        .to_string()
}

pub fn session_that_wrote(at: &str) -> SessionState {
    let mut session = SessionState::new();
    session.record_write(lsn(at));
    session
}
