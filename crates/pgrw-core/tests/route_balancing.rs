//! Balancing spreads reads in the proportions each method promises, over many
//! draws with a fixed seed.

use std::time::Duration;

use pgrw_core::StatementClass;
use pgrw_core::route::{
    self, Balancer, Balancing, Node, Policy, Role, RouteRequest, SessionState, Topology,
};

/// A primary and three replicas with weights 1, 2 and 3.
fn cluster() -> Topology {
    let mut nodes = vec![Node::new("primary", Role::Primary)];
    for weight in 1..=3 {
        let mut replica = Node::new(&format!("replica{weight}"), Role::Replica);
        replica.weight = weight;
        nodes.push(replica);
    }
    Topology::new(nodes, pgrw_core::Lsn::INVALID)
}

/// How many of `draws` reads each node served.
fn spread(topology: &Topology, policy: &Policy, draws: usize) -> Vec<usize> {
    spread_under_load(topology, policy, &[], draws)
}

/// How many of `draws` reads each node served, with `load` requests in flight.
fn spread_under_load(
    topology: &Topology,
    policy: &Policy,
    load: &[u32],
    draws: usize,
) -> Vec<usize> {
    let mut balancer = Balancer::with_seed(0xC0FFEE);
    balancer.set_load(load.iter().copied());
    let mut served = vec![0; topology.nodes.len()];
    let session = SessionState::new();
    for _ in 0..draws {
        let request = RouteRequest::new(StatementClass::Read, None, Duration::ZERO);
        let decided = route::route(&request, &session, topology, policy, &mut balancer);
        let id = decided.node().expect("a replica is always up here");
        served[id.index()] += 1;
    }
    served
}

fn assert_share(served: usize, draws: usize, expected: f64) {
    let share = served as f64 / draws as f64;
    assert!(
        (share - expected).abs() < 0.02,
        "share {share:.3}, expected {expected:.3}"
    );
}

#[test]
fn random_spreads_reads_evenly_over_the_replicas() {
    let policy = Policy {
        balancing: Balancing::Random,
        ..Policy::default()
    };
    let served = spread(&cluster(), &policy, 30_000);
    assert_eq!(served[0], 0);
    for &count in &served[1..] {
        assert_share(count, 30_000, 1.0 / 3.0);
    }
}

#[test]
fn round_robin_gives_each_replica_the_same_count() {
    let policy = Policy {
        balancing: Balancing::RoundRobin,
        ..Policy::default()
    };
    assert_eq!(spread(&cluster(), &policy, 3_000), [0, 1_000, 1_000, 1_000]);
}

#[test]
fn weighted_spreads_reads_in_proportion_to_weight() {
    let policy = Policy {
        balancing: Balancing::Weighted,
        ..Policy::default()
    };
    let served = spread(&cluster(), &policy, 60_000);
    for (replica, weight) in [(1, 1.0), (2, 2.0), (3, 3.0)] {
        assert_share(served[replica], 60_000, weight / 6.0);
    }
}

#[test]
fn least_outstanding_spreads_ties_evenly() {
    let policy = Policy {
        balancing: Balancing::LeastOutstanding,
        ..Policy::default()
    };
    let served = spread_under_load(&cluster(), &policy, &[0, 0, 0, 1], 20_000);
    assert_eq!(served[3], 0);
    assert_share(served[1], 20_000, 0.5);
    assert_share(served[2], 20_000, 0.5);
}

#[test]
fn random_with_primary_reads_always_gives_the_primary_its_share() {
    let policy = Policy {
        primary_reads: pgrw_core::route::PrimaryReads::Always,
        ..Policy::default()
    };
    let served = spread(&cluster(), &policy, 40_000);
    for &count in &served {
        assert_share(count, 40_000, 0.25);
    }
}
