//! Deferred `READ COMMITTED` transactions (`transaction_reads = replica`):
//! which transactions may be deferred, and where each statement of one goes.

mod route_support;

use pgrw_core::classification::DefaultIsolation;
use pgrw_core::route::{
    Deferred, PinReason, Policy, RouteMode, RouteReason, SessionState, Target, TransactionReads,
};
use pgrw_core::{StatementClass, TxAccess};
use route_support::*;
use std::time::Duration;

use pgrw_core::route::{Balancer, RouteRequest, route};

fn mode_on() -> Policy {
    Policy {
        transaction_reads: TransactionReads::Replica,
        ..Policy::default()
    }
}

fn deferred() -> SessionState {
    let mut session = SessionState::new();
    session.defer();
    session
}

#[test]
fn only_a_read_committed_transaction_of_an_unpinned_session_is_deferred_with_the_mode_on() {
    let session = SessionState::new();
    assert!(!session.may_defer(&Policy::default(), false), "mode off");
    assert!(session.may_defer(&mode_on(), false));
    let mut repeatable = SessionState::new();
    repeatable.change_default_isolation(DefaultIsolation::RepeatableRead);
    assert!(!repeatable.may_defer(&mode_on(), false));
    assert!(
        repeatable.may_defer(&mode_on(), true),
        "an explicit READ COMMITTED overrides the default"
    );
    let mut login = SessionState::new();
    login.set_login_isolation(DefaultIsolation::Serializable);
    assert!(!login.may_defer(&mode_on(), false));
    let mut pinned = SessionState::new();
    pinned.pin(PRIMARY, PinReason::TempTable);
    assert!(!pinned.may_defer(&mode_on(), true));
    let mut primary_mode = SessionState::new();
    primary_mode.route_mode = RouteMode::Primary;
    assert!(!primary_mode.may_defer(&mode_on(), true));
}

#[test]
fn the_first_read_of_a_deferred_transaction_goes_to_a_replica() {
    let decided = decide(StatementClass::Read, &deferred(), &cluster(), &mode_on());
    assert_eq!(decided.reason, RouteReason::ReadInTransaction);
    assert_ne!(decided.node(), Some(PRIMARY));
    assert!(
        decided
            .explain(&cluster())
            .to_string()
            .contains("read in transaction, before its first write")
    );
}

#[test]
fn later_reads_stay_on_the_read_leg_and_anything_else_opens_the_primary() {
    let mut session = deferred();
    session.open_read_leg(REPLICA2);
    let topology = cluster();
    let read = decide(StatementClass::Read, &session, &topology, &mode_on());
    assert_eq!(read.target, Target::Node(REPLICA2));
    for class in [
        StatementClass::Write,
        StatementClass::Savepoint,
        StatementClass::Session,
        StatementClass::SetTransaction(TxAccess::Unspecified),
        StatementClass::Begin(TxAccess::Unspecified),
    ] {
        let decided = decide(class, &session, &topology, &mode_on());
        assert_eq!(decided.target, Target::Node(PRIMARY), "{class:?}");
        assert_eq!(decided.reason, RouteReason::OpensTransaction, "{class:?}");
    }
    for class in [StatementClass::Commit, StatementClass::Rollback] {
        let decided = decide(class, &session, &topology, &mode_on());
        assert_eq!(
            decided.target,
            Target::Node(REPLICA2),
            "{class:?} ends the leg"
        );
    }
}

#[test]
fn a_read_the_leg_has_not_replayed_goes_to_the_primary() {
    let mut session = session_that_wrote("0/3000060");
    session.defer();
    session.open_read_leg(REPLICA1);
    let topology = with_replay(cluster(), REPLICA1, "0/3000000");
    let decided = decide(
        StatementClass::Read,
        &session,
        &topology,
        &Policy {
            transaction_reads: TransactionReads::Replica,
            ..Policy::default()
        },
    );
    assert_eq!(decided.target, Target::Node(PRIMARY));
}

#[test]
fn after_a_failed_read_everything_goes_to_the_leg() {
    let mut session = deferred();
    session.open_read_leg(REPLICA1);
    session.deferred = Some(Deferred { failed: true });
    let decided = decide(StatementClass::Write, &session, &cluster(), &mode_on());
    assert_eq!(decided.target, Target::Node(REPLICA1));
}

#[test]
fn the_transaction_opened_on_the_primary_is_an_ordinary_one() {
    let mut session = deferred();
    session.open_read_leg(REPLICA1);
    session.leave_read_leg();
    session.open_deferred(PRIMARY, TxAccess::Unspecified);
    assert_eq!(session.deferred, None);
    let decided = decide(StatementClass::Read, &session, &cluster(), &mode_on());
    assert_eq!(decided.target, Target::Node(PRIMARY));
    assert_eq!(decided.reason, RouteReason::InTransaction);
    session.end_transaction();
    assert_eq!((session.transaction, session.deferred), (None, None));
}

#[test]
fn a_question_about_the_sessions_own_backend_goes_to_the_leg_unwaited() {
    let mut session = session_that_wrote("0/3000060");
    session.defer();
    session.open_read_leg(REPLICA1);
    // The leg has not replayed the session's write: a read would wait, then
    // go to the primary; the statements its client prepared are on the leg.
    let topology = with_replay(cluster(), REPLICA1, "0/3000000");
    let request = RouteRequest {
        session_backend: true,
        ..RouteRequest::new(StatementClass::Write, None, Duration::ZERO)
    };
    let decided = route(
        &request,
        &session,
        &topology,
        &mode_on(),
        &mut Balancer::with_seed(1),
    );
    assert_eq!(decided.target, Target::Node(REPLICA1));
    // Without a leg, it is a question about the server: the primary's.
    let decided = route(
        &request,
        &deferred(),
        &cluster(),
        &mode_on(),
        &mut Balancer::with_seed(1),
    );
    assert_eq!(decided.target, Target::Node(PRIMARY));
}
