//! Where writes, transactions, pinned sessions, hints and `pgrw.route` go,
//! with the reason users read.

mod route_support;

use std::time::Duration;

use pgrw_core::route::{
    self, Balancer, Health, NoPrimary, PinReason, Policy, PrimaryReads, Role, RouteMode,
    RouteReason, RouteRequest, SessionState, Target, Unavailable,
};
use pgrw_core::{RouteHint, StatementClass, TxAccess};
use route_support::*;

#[test]
fn a_write_goes_to_the_primary() {
    let topology = cluster();
    let shown = explain(
        StatementClass::Write,
        &SessionState::new(),
        &topology,
        &Policy::default(),
    );
    assert_eq!(shown, "primary: write");
}

#[test]
fn a_write_gets_no_primary_available_when_the_primary_is_down() {
    let topology = with_health(cluster(), PRIMARY, Health::Down);
    let decided = decide(
        StatementClass::Write,
        &SessionState::new(),
        &topology,
        &Policy::default(),
    );
    assert_eq!(
        decided.target,
        Target::Unavailable(Unavailable::NoPrimary(NoPrimary::NotUp(
            PRIMARY,
            Health::Down
        )))
    );
    assert_eq!(
        decided.explain(&topology).to_string(),
        "no primary available: primary is down (write)"
    );
}

#[test]
fn a_write_refuses_two_nodes_claiming_to_be_primary() {
    let mut topology = cluster();
    topology.nodes[REPLICA1.index()].role = Role::Primary;
    let decided = decide(
        StatementClass::Write,
        &SessionState::new(),
        &topology,
        &Policy::default(),
    );
    assert_eq!(
        decided.target,
        Target::Unavailable(Unavailable::NoPrimary(NoPrimary::Ambiguous(
            PRIMARY, REPLICA1
        )))
    );
}

#[test]
fn begin_read_write_and_plain_begin_go_to_the_primary() {
    let topology = cluster();
    for access in [TxAccess::ReadWrite, TxAccess::Unspecified] {
        let decided = decide(
            StatementClass::Begin(access),
            &SessionState::new(),
            &topology,
            &Policy::default(),
        );
        assert_eq!(decided.node(), Some(PRIMARY));
    }
}

#[test]
fn begin_read_only_may_go_to_a_replica() {
    let topology = cluster();
    let decided = decide(
        StatementClass::Begin(TxAccess::ReadOnly),
        &SessionState::new(),
        &topology,
        &Policy::default(),
    );
    assert_ne!(decided.node(), Some(PRIMARY));
    assert_eq!(decided.reason, RouteReason::ReadOnlyTransaction);
}

#[test]
fn inside_a_transaction_everything_goes_to_its_node() {
    let topology = cluster();
    let mut session = SessionState::new();
    session.begin(PRIMARY, TxAccess::Unspecified);
    for class in [
        StatementClass::Read,
        StatementClass::Write,
        StatementClass::Commit,
    ] {
        assert_eq!(
            explain(class, &session, &topology, &Policy::default()),
            "primary: in transaction"
        );
    }
}

#[test]
fn a_read_only_transaction_on_a_replica_keeps_its_statements_there() {
    let topology = cluster();
    let mut session = SessionState::new();
    session.begin(REPLICA2, TxAccess::ReadOnly);
    for class in [
        StatementClass::Read,
        StatementClass::Write,
        StatementClass::Rollback,
    ] {
        assert_eq!(
            decide(class, &session, &topology, &Policy::default()).node(),
            Some(REPLICA2)
        );
    }
}

#[test]
fn a_write_in_a_read_write_transaction_whose_node_was_demoted_is_refused() {
    let mut topology = cluster();
    topology.nodes[PRIMARY.index()].role = Role::Replica;
    let mut session = SessionState::new();
    session.begin(PRIMARY, TxAccess::ReadWrite);
    let decided = decide(
        StatementClass::Write,
        &session,
        &topology,
        &Policy::default(),
    );
    assert_eq!(
        decided.target,
        Target::Unavailable(Unavailable::HeldNodeNotPrimary(PRIMARY))
    );
}

#[test]
fn a_transaction_whose_node_went_down_is_unavailable() {
    let topology = with_health(cluster(), REPLICA1, Health::Down);
    let mut session = SessionState::new();
    session.begin(REPLICA1, TxAccess::ReadOnly);
    let shown = explain(
        StatementClass::Read,
        &session,
        &topology,
        &Policy::default(),
    );
    assert_eq!(shown, "replica1 unavailable: it is down (in transaction)");
}

#[test]
fn a_pinned_session_stays_on_its_node_with_the_pin_reason() {
    let topology = cluster();
    let mut session = SessionState::new();
    session.pin(REPLICA1, PinReason::TempTable);
    let shown = explain(
        StatementClass::Read,
        &session,
        &topology,
        &Policy::default(),
    );
    assert_eq!(shown, "replica1: pinned (temp table)");
}

#[test]
fn a_write_from_a_session_pinned_to_a_replica_still_goes_to_the_primary() {
    let topology = cluster();
    let mut session = SessionState::new();
    session.pin(REPLICA1, PinReason::HoldCursor);
    let decided = decide(
        StatementClass::Write,
        &session,
        &topology,
        &Policy::default(),
    );
    assert_eq!(decided.node(), Some(PRIMARY));
}

#[test]
fn a_primary_hint_sends_a_read_to_the_primary() {
    let topology = cluster();
    let request = RouteRequest::new(
        StatementClass::Read,
        Some(RouteHint::Primary),
        Duration::ZERO,
    );
    let decided = route::route(
        &request,
        &SessionState::new(),
        &topology,
        &Policy::default(),
        &mut Balancer::default(),
    );
    assert_eq!(
        decided.explain(&topology).to_string(),
        "primary: hint pgrw:primary"
    );
}

#[test]
fn a_replica_hint_never_sends_a_write_to_a_replica() {
    let topology = cluster();
    let request = RouteRequest::new(
        StatementClass::Write,
        Some(RouteHint::Replica),
        Duration::ZERO,
    );
    let decided = route::route(
        &request,
        &SessionState::new(),
        &topology,
        &Policy::default(),
        &mut Balancer::default(),
    );
    assert_eq!(decided.node(), Some(PRIMARY));
}

#[test]
fn a_replica_hint_keeps_a_read_off_the_primary_even_when_it_reads() {
    let topology = cluster();
    let policy = Policy {
        primary_reads: PrimaryReads::Always,
        ..Policy::default()
    };
    let mut balancer = Balancer::default();
    for _ in 0..50 {
        let request = RouteRequest::new(
            StatementClass::Read,
            Some(RouteHint::Replica),
            Duration::ZERO,
        );
        let decided = route::route(
            &request,
            &SessionState::new(),
            &topology,
            &policy,
            &mut balancer,
        );
        assert_ne!(decided.node(), Some(PRIMARY));
        assert_eq!(decided.reason, RouteReason::ReplicaHint);
    }
}

#[test]
fn session_route_mode_primary_sends_reads_to_the_primary() {
    let topology = cluster();
    let session = SessionState {
        route_mode: RouteMode::Primary,
        ..SessionState::new()
    };
    assert_eq!(
        explain(
            StatementClass::Read,
            &session,
            &topology,
            &Policy::default()
        ),
        "primary: pgrw.route = primary"
    );
}

#[test]
fn session_statements_and_stray_transaction_control_go_to_the_primary() {
    let topology = cluster();
    for class in [
        StatementClass::Session,
        StatementClass::Commit,
        StatementClass::Empty,
    ] {
        assert_eq!(
            decide(class, &SessionState::new(), &topology, &Policy::default()).node(),
            Some(PRIMARY)
        );
    }
}

fn serializable_session() -> SessionState {
    let mut session = SessionState::new();
    session.change_default_isolation(pgrw_core::classification::DefaultIsolation::Serializable);
    session
}

#[test]
fn a_session_whose_default_isolation_is_serializable_reads_on_the_primary() {
    let topology = cluster();
    let session = serializable_session();
    for class in [
        StatementClass::Read,
        StatementClass::Begin(TxAccess::ReadOnly),
    ] {
        let shown = explain(class, &session, &topology, &Policy::default());
        assert_eq!(
            shown,
            "primary: read, default isolation serializable (a hot standby refuses it)"
        );
    }
}

#[test]
fn a_replica_hint_does_not_send_a_serializable_session_to_a_replica() {
    let topology = cluster();
    let mut session = serializable_session();
    session.route_mode = RouteMode::Replica;
    let request = RouteRequest::new(
        StatementClass::Read,
        Some(RouteHint::Replica),
        Duration::ZERO,
    );
    let decided = route::route(
        &request,
        &session,
        &topology,
        &Policy::default(),
        &mut Balancer::with_seed(1),
    );
    assert_eq!(decided.node(), Some(PRIMARY));
    assert_eq!(decided.reason, RouteReason::SerializableSession);
}

#[test]
fn a_session_back_at_its_default_isolation_reads_on_replicas_again() {
    let topology = cluster();
    let mut session = serializable_session();
    session.change_default_isolation(pgrw_core::classification::DefaultIsolation::LoginDefault);
    let decided = decide(
        StatementClass::Read,
        &session,
        &topology,
        &Policy::default(),
    );
    assert_ne!(decided.node(), Some(PRIMARY));
    // A login whose default is serializable (startup options) comes back to it.
    session.set_login_serializable(true);
    session.change_default_isolation(pgrw_core::classification::DefaultIsolation::Other);
    assert_ne!(
        decide(
            StatementClass::Read,
            &session,
            &topology,
            &Policy::default()
        )
        .node(),
        Some(PRIMARY)
    );
    session.change_default_isolation(pgrw_core::classification::DefaultIsolation::LoginDefault);
    assert_eq!(
        decide(
            StatementClass::Read,
            &session,
            &topology,
            &Policy::default()
        )
        .node(),
        Some(PRIMARY)
    );
}
