//! Monotonic and linearizable reads: a session's reads never go back in time,
//! and a fresh read sees where the primary stood when it began.

mod route_support;

use std::time::Duration;

use pgrw_core::StatementClass;
use pgrw_core::route::{
    self, Balancer, Policy, RouteReason, RouteRequest, SessionState, StaleRead, Target, Topology,
};
use route_support::*;

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn waiting() -> Policy {
    Policy {
        stale_read: StaleRead::Wait(ms(50)),
        ..Policy::default()
    }
}

fn read_at(
    now: Duration,
    session: &SessionState,
    topology: &Topology,
    policy: &Policy,
) -> route::Route {
    let request = RouteRequest::new(StatementClass::Read, None, now);
    route::route(
        &request,
        session,
        topology,
        policy,
        &mut Balancer::with_seed(7),
    )
}

fn fresh_read_at(
    now: Duration,
    since: Duration,
    session: &SessionState,
    topology: &Topology,
) -> route::Route {
    let request = RouteRequest {
        fresh_since: Some(since),
        ..RouteRequest::new(StatementClass::Read, None, now)
    };
    route::route(
        &request,
        session,
        topology,
        &waiting(),
        &mut Balancer::with_seed(7),
    )
}

fn session_that_read_on(node: route::NodeId, at: Duration) -> SessionState {
    let mut session = SessionState::new();
    session.record_read(node, at);
    session
}

#[test]
fn a_session_keeps_reading_on_its_replica_while_nothing_bounds_what_it_saw() {
    // The primary was last probed before the session's read: what replica1
    // showed is unknown, so replica2 (further behind) may not serve it.
    let topology = with_replay(cluster(), REPLICA2, "0/3000000").with_primary_lsn_at(ms(5));
    let session = session_that_read_on(REPLICA1, ms(10));
    for seed in 0..20 {
        let request = RouteRequest::new(StatementClass::Read, None, ms(20));
        let decided = route::route(
            &request,
            &session,
            &topology,
            &Policy::default(),
            &mut Balancer::with_seed(seed),
        );
        assert_eq!(decided.node(), Some(REPLICA1), "{decided:?}");
    }
}

#[test]
fn a_read_moves_to_another_replica_once_it_has_replayed_the_primary_as_of_after_the_last_read() {
    let topology = with_health(cluster(), REPLICA1, pgrw_core::route::Health::Down)
        .with_primary_lsn_at(ms(15));
    let session = session_that_read_on(REPLICA1, ms(10));
    let decided = read_at(ms(20), &session, &topology, &Policy::default());
    assert_eq!(decided.node(), Some(REPLICA2));
}

#[test]
fn a_read_that_must_leave_its_replica_learns_the_primary_position_first() {
    let topology =
        with_health(cluster(), REPLICA1, pgrw_core::route::Health::Down).with_primary_lsn_at(ms(5));
    let session = session_that_read_on(REPLICA1, ms(10));
    let decided = read_at(ms(20), &session, &topology, &waiting());
    assert_eq!(
        decided.target,
        Target::AwaitPrimaryPosition {
            since: ms(10),
            until: ms(70)
        }
    );
    // Without a wait, the primary (never behind what a replica showed).
    let decided = read_at(ms(20), &session, &topology, &Policy::default());
    assert_eq!(decided.node(), Some(PRIMARY));
}

#[test]
fn a_replica_behind_the_sessions_writes_is_waited_for_when_the_session_read_there() {
    let topology = with_replay(cluster(), REPLICA1, "0/3000000").with_primary_lsn_at(ms(5));
    let mut session = session_that_read_on(REPLICA1, ms(10));
    session.shared_lsn = lsn("0/3000060");
    let decided = read_at(ms(20), &session, &topology, &waiting());
    assert_eq!(
        decided.target,
        Target::WaitForReplica {
            lsn: lsn("0/3000060"),
            until: ms(70),
            node: Some(REPLICA1)
        }
    );
}

#[test]
fn a_fresh_read_waits_for_a_primary_probe_begun_after_it() {
    let topology = cluster().with_primary_lsn_at(ms(5));
    let decided = fresh_read_at(ms(20), ms(20), &SessionState::new(), &topology);
    assert_eq!(
        decided.target,
        Target::AwaitPrimaryPosition {
            since: ms(20),
            until: ms(70)
        }
    );
    assert_eq!(decided.reason, RouteReason::PrimaryPosition);
}

#[test]
fn a_fresh_read_goes_to_a_replica_that_has_replayed_the_fresh_position() {
    let topology = with_replay(cluster(), REPLICA1, "0/3000000").with_primary_lsn_at(ms(25));
    let decided = fresh_read_at(ms(30), ms(20), &SessionState::new(), &topology);
    assert_eq!(decided.node(), Some(REPLICA2));
}

#[test]
fn a_fresh_read_waits_for_a_replica_to_replay_the_fresh_position() {
    let topology = with_replay(
        with_replay(cluster(), REPLICA1, "0/3000000"),
        REPLICA2,
        "0/3000000",
    )
    .with_primary_lsn_at(ms(25));
    let decided = fresh_read_at(ms(30), ms(20), &SessionState::new(), &topology);
    assert_eq!(
        decided.target,
        Target::WaitForReplica {
            lsn: lsn("0/3000060"),
            until: ms(80),
            node: None
        }
    );
}

#[test]
fn a_write_ends_the_bound_of_earlier_reads() {
    let topology = with_replay(cluster(), REPLICA1, "0/3000000").with_primary_lsn_at(ms(5));
    let mut session = session_that_read_on(REPLICA1, ms(10));
    session.record_write(lsn("0/3000060"));
    let decided = read_at(ms(20), &session, &topology, &Policy::default());
    assert_eq!(decided.node(), Some(REPLICA2), "{decided:?}");
}

#[test]
fn a_session_on_a_crowded_replica_learns_the_primary_position_to_move() {
    let topology = cluster().with_primary_lsn_at(ms(5));
    let session = session_that_read_on(REPLICA1, ms(10));
    let read = |load: [u32; 3]| {
        let mut balancer = Balancer::with_seed(7);
        balancer.set_load(load);
        let request = RouteRequest::new(StatementClass::Read, None, ms(20));
        route::route(&request, &session, &topology, &waiting(), &mut balancer)
    };
    assert_eq!(
        read([0, 5, 1]).target,
        Target::AwaitPrimaryPosition {
            since: ms(10),
            until: ms(70)
        }
    );
    // Within the margin it stays where it reads.
    assert_eq!(read([0, 2, 1]).node(), Some(REPLICA1));
    // Once the primary's position after its read is known, the idler replica takes it.
    let known = cluster().with_primary_lsn_at(ms(15));
    let mut balancer = Balancer::with_seed(7);
    balancer.set_load([0, 5, 1]);
    let request = RouteRequest::new(StatementClass::Read, None, ms(20));
    let decided = route::route(&request, &session, &known, &waiting(), &mut balancer);
    assert_eq!(decided.node(), Some(REPLICA2));
}
