//! Where reads go: replicas that may serve them, read-your-writes, waiting,
//! and the primary as a fallback, with the reason users read.

mod route_support;

use std::time::Duration;

use pgrw_core::StatementClass;
use pgrw_core::route::{
    self, Balancer, Balancing, ConsistencyToken, Health, Policy, PrimaryReads, RouteReason,
    RouteRequest, SessionState, StaleRead, Target, Unavailable,
};
use route_support::*;

#[test]
fn a_read_goes_to_a_replica_with_balancing_and_lag_in_the_reason() {
    let topology = cluster();
    let shown = explain(
        StatementClass::Read,
        &SessionState::new(),
        &topology,
        &Policy::default(),
    );
    assert!(
        shown == "replica1: read, least_outstanding, lag 0 B"
            || shown == "replica2: read, least_outstanding, lag 0 B",
        "{shown}"
    );
}

#[test]
fn a_read_after_a_write_skips_replicas_that_have_not_replayed_it() {
    let topology = with_replay(cluster(), REPLICA1, "0/3000000");
    let session = session_that_wrote("0/3000060");
    for seed in 0..20 {
        let request = RouteRequest::new(StatementClass::Read, None, Duration::ZERO);
        let mut balancer = Balancer::with_seed(seed);
        let decided = route::route(
            &request,
            &session,
            &topology,
            &Policy::default(),
            &mut balancer,
        );
        assert_eq!(decided.node(), Some(REPLICA2));
    }
}

#[test]
fn a_read_no_replica_has_caught_up_with_goes_to_the_primary_by_default() {
    let topology = with_replay(
        with_replay(cluster(), REPLICA1, "0/3000000"),
        REPLICA2,
        "0/2000000",
    );
    let shown = explain(
        StatementClass::Read,
        &session_that_wrote("0/3000060"),
        &topology,
        &Policy::default(),
    );
    assert_eq!(
        shown,
        "primary: read-your-writes, no replica has replayed 0/3000060"
    );
}

#[test]
fn read_your_writes_off_lets_a_lagging_replica_serve_the_session() {
    let topology = with_replay(
        with_replay(cluster(), REPLICA1, "0/3000000"),
        REPLICA2,
        "0/2000000",
    );
    let policy = Policy {
        read_your_writes: false,
        ..Policy::default()
    };
    let decided = decide(
        StatementClass::Read,
        &session_that_wrote("0/3000060"),
        &topology,
        &policy,
    );
    assert_ne!(decided.node(), Some(PRIMARY));
}

#[test]
fn a_consistency_token_from_another_connection_holds_even_with_read_your_writes_off() {
    let topology = with_replay(cluster(), REPLICA1, "0/3000000");
    let mut session = SessionState::new();
    session.require(ConsistencyToken(lsn("0/3000060")));
    let policy = Policy {
        read_your_writes: false,
        balancing: Balancing::RoundRobin,
        ..Policy::default()
    };
    let mut balancer = Balancer::default();
    for _ in 0..4 {
        let request = RouteRequest::new(StatementClass::Read, None, Duration::ZERO);
        let decided = route::route(&request, &session, &topology, &policy, &mut balancer);
        assert_eq!(decided.node(), Some(REPLICA2));
    }
}

#[test]
fn waiting_policy_asks_to_wait_for_a_replica_until_the_deadline() {
    let topology = with_replay(
        with_replay(cluster(), REPLICA1, "0/3000000"),
        REPLICA2,
        "0/2000000",
    );
    let policy = Policy {
        stale_read: StaleRead::Wait(Duration::from_millis(200)),
        ..Policy::default()
    };
    let request = RouteRequest::new(StatementClass::Read, None, Duration::from_millis(1000));
    let session = session_that_wrote("0/3000060");
    let decided = route::route(
        &request,
        &session,
        &topology,
        &policy,
        &mut Balancer::default(),
    );
    let expected = Target::WaitForReplica {
        lsn: lsn("0/3000060"),
        until: Duration::from_millis(1200),
        node: None,
    };
    assert_eq!(decided.target, expected);
    assert_eq!(
        decided.explain(&topology).to_string(),
        "wait until 1200ms for a replica to replay 0/3000060, else primary (read-your-writes)"
    );
}

#[test]
fn after_the_wait_deadline_the_read_goes_to_the_primary() {
    let topology = with_replay(
        with_replay(cluster(), REPLICA1, "0/3000000"),
        REPLICA2,
        "0/2000000",
    );
    let policy = Policy {
        stale_read: StaleRead::Wait(Duration::from_millis(200)),
        ..Policy::default()
    };
    let request = RouteRequest {
        waited_until: Some(Duration::from_millis(1200)),
        ..RouteRequest::new(StatementClass::Read, None, Duration::from_millis(1200))
    };
    let session = session_that_wrote("0/3000060");
    let decided = route::route(
        &request,
        &session,
        &topology,
        &policy,
        &mut Balancer::default(),
    );
    assert_eq!(decided.node(), Some(PRIMARY));
    assert_eq!(
        decided.reason,
        RouteReason::WaitedForReplica(lsn("0/3000060"))
    );
}

#[test]
fn a_replica_that_caught_up_during_the_wait_serves_the_read() {
    let topology = with_replay(cluster(), REPLICA1, "0/3000000");
    let policy = Policy {
        stale_read: StaleRead::Wait(Duration::from_millis(200)),
        ..Policy::default()
    };
    let request = RouteRequest {
        waited_until: Some(Duration::from_millis(1200)),
        ..RouteRequest::new(StatementClass::Read, None, Duration::from_millis(1100))
    };
    let session = session_that_wrote("0/3000060");
    let decided = route::route(
        &request,
        &session,
        &topology,
        &policy,
        &mut Balancer::default(),
    );
    assert_eq!(decided.node(), Some(REPLICA2));
}

#[test]
fn reads_go_to_the_primary_when_no_replica_is_up() {
    let topology = with_health(
        with_health(cluster(), REPLICA1, Health::Down),
        REPLICA2,
        Health::Down,
    );
    let shown = explain(
        StatementClass::Read,
        &SessionState::new(),
        &topology,
        &Policy::default(),
    );
    assert_eq!(shown, "primary: read, no eligible replica");
}

#[test]
fn reads_fail_with_a_reason_when_no_replica_is_up_and_the_primary_never_reads() {
    let topology = with_health(
        with_health(cluster(), REPLICA1, Health::Down),
        REPLICA2,
        Health::Down,
    );
    let policy = Policy {
        primary_reads: PrimaryReads::Never,
        ..Policy::default()
    };
    let decided = decide(
        StatementClass::Read,
        &SessionState::new(),
        &topology,
        &policy,
    );
    assert_eq!(decided.target, Target::Unavailable(Unavailable::NoReplica));
    assert_eq!(
        decided.explain(&topology).to_string(),
        "no replica available (primary_reads = never) (read)"
    );
}

#[test]
fn a_banned_replica_serves_no_reads() {
    let banned = Health::Banned {
        until: Duration::from_secs(5),
    };
    let topology = with_health(cluster(), REPLICA1, banned);
    for seed in 0..20 {
        let request = RouteRequest::new(StatementClass::Read, None, Duration::from_secs(9));
        let mut balancer = Balancer::with_seed(seed);
        let decided = route::route(
            &request,
            &SessionState::new(),
            &topology,
            &Policy::default(),
            &mut balancer,
        );
        assert_eq!(decided.node(), Some(REPLICA2));
    }
}

#[test]
fn a_replica_over_the_byte_lag_limit_serves_no_reads() {
    let topology = with_replay(cluster(), REPLICA1, "0/2000000");
    let policy = Policy {
        max_lag_bytes: Some(1024),
        ..Policy::default()
    };
    for seed in 0..20 {
        let request = RouteRequest::new(StatementClass::Read, None, Duration::ZERO);
        let mut balancer = Balancer::with_seed(seed);
        let decided = route::route(
            &request,
            &SessionState::new(),
            &topology,
            &policy,
            &mut balancer,
        );
        assert_eq!(decided.node(), Some(REPLICA2));
    }
}

#[test]
fn a_replica_with_unknown_lag_serves_no_reads_under_a_time_limit() {
    let mut topology = cluster();
    topology.nodes[REPLICA1.index()].lag.millis = None;
    topology.nodes[REPLICA2.index()].lag.millis = Some(2000);
    let policy = Policy {
        max_lag: Some(Duration::from_secs(1)),
        ..Policy::default()
    };
    let decided = decide(
        StatementClass::Read,
        &SessionState::new(),
        &topology,
        &policy,
    );
    assert_eq!(decided.node(), Some(PRIMARY));
}

#[test]
fn a_primary_that_always_reads_is_one_more_candidate() {
    let topology = cluster();
    let policy = Policy {
        primary_reads: PrimaryReads::Always,
        balancing: Balancing::RoundRobin,
        ..Policy::default()
    };
    let mut balancer = Balancer::default();
    let nodes: Vec<_> = (0..3)
        .map(|_| {
            let request = RouteRequest::new(StatementClass::Read, None, Duration::ZERO);
            route::route(
                &request,
                &SessionState::new(),
                &topology,
                &policy,
                &mut balancer,
            )
            .node()
        })
        .collect();
    assert_eq!(nodes, [Some(PRIMARY), Some(REPLICA1), Some(REPLICA2)]);
}
