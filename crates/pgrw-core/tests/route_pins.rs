//! Statements that pin a session to its backend (a `WITH HOLD` cursor, SQL
//! `PREPARE`, `LISTEN`, temp tables, advisory locks) are routed to the
//! primary, so the pin is where the session's later writes run too.

mod route_support;

use std::time::Duration;

use pgrw_core::route::{
    self, Balancer, PinReason, Policy, RouteMode, RouteRequest, SessionState, Target,
};
use pgrw_core::sql::classify::{Classification, classify};
use pgrw_core::{FunctionCatalog, Reason, RouteHint, StatementClass, TxAccess};
use proptest::prelude::*;
use route_support::*;

fn verdict(sql: &str) -> Classification {
    classify(sql.as_bytes(), &FunctionCatalog::builtin())
}

/// Where `sql` runs in `session`, with the hint the classifier kept.
fn target_of(sql: &str, session: &SessionState) -> Target {
    let classified = verdict(sql);
    let request = RouteRequest::new(classified.class, classified.hint, Duration::ZERO);
    route::route(
        &request,
        session,
        &cluster(),
        &Policy::default(),
        &mut Balancer::with_seed(3),
    )
    .target
}

const WITH_HOLD: &str =
    "DECLARE numbers CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 10) g";

#[test]
fn a_with_hold_cursor_declared_outside_a_transaction_is_declared_on_the_primary() {
    assert_eq!(
        target_of(WITH_HOLD, &SessionState::new()),
        Target::Node(PRIMARY)
    );
}

#[test]
fn a_replica_hint_does_not_move_a_with_hold_cursor_to_a_replica() {
    let hinted = format!("/* pgrw:replica */ {WITH_HOLD}");
    let classified = verdict(&hinted);
    assert_eq!(classified.class, StatementClass::Write);
    assert!(matches!(
        classified.reason,
        Reason::ReplicaHintIgnored(ref inner) if **inner == Reason::PinsSession("WITH HOLD cursor")
    ));
    assert_eq!(
        target_of(&hinted, &SessionState::new()),
        Target::Node(PRIMARY)
    );
}

#[test]
fn route_replica_mode_does_not_move_a_with_hold_cursor_to_a_replica() {
    let session = SessionState {
        route_mode: RouteMode::Replica,
        ..SessionState::new()
    };
    assert_eq!(target_of(WITH_HOLD, &session), Target::Node(PRIMARY));
}

#[test]
fn a_with_hold_cursor_over_an_unknown_function_stays_on_the_primary_under_a_replica_hint() {
    let classified =
        verdict("/* pgrw:replica */ DECLARE c CURSOR WITH HOLD FOR SELECT my_report()");
    assert_eq!(classified.class, StatementClass::Write);
    assert_eq!(classified.hint, None);
}

#[test]
fn a_read_write_transaction_after_a_with_hold_cursor_runs_where_the_cursor_is() {
    let mut session = SessionState::new();
    let Target::Node(declared_on) = target_of(WITH_HOLD, &session) else {
        panic!("the cursor is declared on a node");
    };
    session.pin(declared_on, PinReason::HoldCursor);
    assert_eq!(target_of("BEGIN", &session), Target::Node(declared_on));
    session.begin(declared_on, TxAccess::Unspecified);
    assert_eq!(
        target_of("FETCH 100 FROM numbers", &session),
        Target::Node(declared_on)
    );
    assert_eq!(
        target_of("INSERT INTO note VALUES (1)", &session),
        Target::Node(declared_on)
    );
}

// --- A pin on a replica: made inside `BEGIN READ ONLY` there -------------

/// A session pinned to replica1 by a hold cursor, that then wrote at `wrote`.
fn pinned_to_replica1_after_a_write(wrote: &str) -> SessionState {
    let mut session = session_that_wrote(wrote);
    session.pin(REPLICA1, PinReason::HoldCursor);
    session
}

fn route_at(
    class: StatementClass,
    session: &SessionState,
    topology: &pgrw_core::route::Topology,
    policy: &Policy,
    now_ms: u64,
    waited_until_ms: Option<u64>,
) -> pgrw_core::route::Route {
    let request = RouteRequest {
        waited_until: waited_until_ms.map(Duration::from_millis),
        ..RouteRequest::new(class, None, Duration::from_millis(now_ms))
    };
    route::route(
        &request,
        session,
        topology,
        policy,
        &mut Balancer::with_seed(3),
    )
}

#[test]
fn a_write_of_a_session_pinned_to_a_replica_goes_to_the_primary() {
    let session = pinned_to_replica1_after_a_write("0/3000000");
    let topology = with_replay(cluster(), REPLICA1, "0/1000000");
    let decided = route_at(
        StatementClass::Write,
        &session,
        &topology,
        &Policy::default(),
        0,
        None,
    );
    assert_eq!(decided.target, Target::Node(PRIMARY));
}

#[test]
fn a_read_pinned_to_a_caught_up_replica_runs_there() {
    let session = pinned_to_replica1_after_a_write("0/3000000");
    let topology = with_replay(cluster(), REPLICA1, "0/3000000");
    let decided = route_at(
        StatementClass::Read,
        &session,
        &topology,
        &Policy::default(),
        0,
        None,
    );
    assert_eq!(decided.target, Target::Node(REPLICA1));
}

#[test]
fn a_read_pinned_to_a_replica_behind_the_sessions_write_waits_for_that_replica() {
    let session = pinned_to_replica1_after_a_write("0/3000000");
    // replica2 has caught up, but the session's state is on replica1.
    let topology = with_replay(
        with_replay(cluster(), REPLICA1, "0/2000000"),
        REPLICA2,
        "0/3000000",
    );
    let decided = route_at(
        StatementClass::Read,
        &session,
        &topology,
        &Policy::default(),
        1000,
        None,
    );
    assert_eq!(
        decided.target,
        Target::WaitForReplica {
            lsn: lsn("0/3000000"),
            until: Duration::from_millis(1000) + route::rules::PINNED_REPLICA_WAIT,
            node: Some(REPLICA1),
        }
    );
    // A waiting policy's own wait applies instead.
    for (wait, until) in [(200, 1200), (8000, 9000)] {
        let policy = Policy {
            stale_read: pgrw_core::route::StaleRead::Wait(Duration::from_millis(wait)),
            ..Policy::default()
        };
        let decided = route_at(
            StatementClass::Read,
            &session,
            &topology,
            &policy,
            1000,
            None,
        );
        assert!(
            matches!(
                decided.target,
                Target::WaitForReplica { until: at, node: Some(REPLICA1), .. } if at == Duration::from_millis(until)
            ),
            "{decided:?}"
        );
    }
}

#[test]
fn a_read_pinned_to_a_replica_still_behind_after_the_wait_is_refused_not_read_stale() {
    let session = pinned_to_replica1_after_a_write("0/3000000");
    let topology = with_replay(cluster(), REPLICA1, "0/2000000");
    let decided = route_at(
        StatementClass::Read,
        &session,
        &topology,
        &Policy::default(),
        6000,
        Some(6000),
    );
    assert_eq!(
        decided.target,
        Target::Unavailable(pgrw_core::route::Unavailable::PinnedReplicaBehind(
            REPLICA1,
            lsn("0/3000000")
        ))
    );
    let explained = decided.explain(&topology).to_string();
    assert!(
        explained.starts_with("replica1 has not replayed 0/3000000") && explained.contains("retry"),
        "{explained}"
    );
}

#[test]
fn fetch_outside_a_transaction_follows_the_pin_to_the_primary() {
    let mut session = SessionState::new();
    session.pin(PRIMARY, PinReason::HoldCursor);
    assert_eq!(
        target_of("FETCH 100 FROM numbers", &session),
        Target::Node(PRIMARY)
    );
}

#[test]
fn sql_prepare_and_execute_both_run_on_the_primary() {
    assert_eq!(
        target_of("PREPARE q AS SELECT 1", &SessionState::new()),
        Target::Node(PRIMARY)
    );
    let mut session = SessionState::new();
    session.pin(PRIMARY, PinReason::PreparedStatement);
    assert_eq!(target_of("EXECUTE q", &session), Target::Node(PRIMARY));
}

#[test]
fn a_replica_hint_does_not_move_sql_prepare_to_a_replica() {
    assert_eq!(
        target_of(
            "/* pgrw:replica */ PREPARE q AS SELECT 1",
            &SessionState::new()
        ),
        Target::Node(PRIMARY)
    );
}

#[test]
fn a_read_string_that_also_declares_a_with_hold_cursor_is_a_write() {
    let classified = verdict(&format!("SELECT 1; {WITH_HOLD}"));
    assert_eq!(classified.class, StatementClass::Write);
    assert_eq!(classified.reason, Reason::PinsSession("WITH HOLD cursor"));
}

#[test]
fn a_cursor_without_hold_still_reads_on_a_replica() {
    let classified = verdict("DECLARE c CURSOR FOR SELECT * FROM t");
    assert_eq!(classified.class, StatementClass::Read);
    assert!(!classified.effects.pins_session());
}

#[test]
fn the_reason_says_what_pins_the_session() {
    assert_eq!(
        verdict(WITH_HOLD).reason.to_string(),
        "pins the session to the primary: WITH HOLD cursor"
    );
}

fn pinning_sqlish() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(&b"SELECT "[..]),
        Just(&b"DECLARE c CURSOR WITH HOLD FOR "[..]),
        Just(&b"DECLARE c CURSOR FOR "[..]),
        Just(&b"PREPARE p AS "[..]),
        Just(&b"EXECUTE p"[..]),
        Just(&b"LISTEN ch"[..]),
        Just(&b"CREATE TEMP TABLE x "[..]),
        Just(&b"pg_advisory_lock(1)"[..]),
        Just(&b"setseed(0.5)"[..]),
        Just(&b"my_report()"[..]),
        Just(&b"/* pgrw:replica */"[..]),
        Just(&b"/* pgrw:primary */"[..]),
        Just(&b"EXPLAIN "[..]),
        Just(&b"BEGIN READ ONLY"[..]),
        Just(&b"FROM t "[..]),
        Just(&b"("[..]),
        Just(&b")"[..]),
        Just(&b"; "[..]),
        Just(&b"1 "[..]),
    ];
    prop::collection::vec(fragment, 0..12).prop_map(|parts| parts.concat())
}

fn pinning_statement() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(&b"DECLARE c CURSOR WITH HOLD FOR SELECT 1 "[..]),
        Just(&b"PREPARE p AS SELECT 1 "[..]),
        Just(&b"SELECT pg_advisory_lock(1) "[..]),
        Just(&b"SELECT setseed(0.5) "[..]),
        Just(&b"LISTEN ch "[..]),
        Just(&b"CREATE TEMP TABLE x (a int) "[..]),
    ]
    .prop_map(<[u8]>::to_vec)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_string_that_pins_the_session_is_never_replica_eligible(sql in pinning_sqlish()) {
        let classified = classify(&sql, &FunctionCatalog::builtin());
        if classified.effects.pins_session() {
            prop_assert!(
                !classified.replica_eligible(),
                "{}: {:?}", String::from_utf8_lossy(&sql), classified
            );
        }
    }

    #[test]
    fn a_pinning_string_outside_a_transaction_is_routed_only_to_the_primary(
        sql in (pinning_sqlish(), pinning_statement(), pinning_sqlish())
            .prop_map(|(before, pinning, after)| [before, b"; ".to_vec(), pinning, after].concat()),
        mode in prop_oneof![Just(RouteMode::Auto), Just(RouteMode::Primary), Just(RouteMode::Replica)],
        seed in any::<u64>(),
    ) {
        let classified = classify(&sql, &FunctionCatalog::builtin());
        prop_assume!(classified.effects.pins_session());
        let session = SessionState { route_mode: mode, ..SessionState::new() };
        let request = RouteRequest::new(classified.class, classified.hint, Duration::ZERO);
        let decided = route::route(
            &request, &session, &cluster(), &Policy::default(), &mut Balancer::with_seed(seed),
        );
        prop_assert_eq!(classified.class, StatementClass::Write);
        prop_assert_eq!(
            decided.target, Target::Node(PRIMARY),
            "{}: {:?}", String::from_utf8_lossy(&sql), classified
        );
    }
}

#[test]
fn a_replica_hint_alone_never_routes_a_pinning_statement_to_a_replica() {
    for sql in [
        WITH_HOLD,
        "PREPARE q AS SELECT 1",
        "LISTEN jobs",
        "SELECT pg_advisory_lock(1)",
        "CREATE TEMP TABLE scratch (id int)",
        "SELECT setseed(0.5)",
    ] {
        let hinted = format!("/* pgrw:replica */ {sql}");
        let classified = verdict(&hinted);
        assert!(classified.effects.pins_session(), "{sql}");
        assert_ne!(classified.hint, Some(RouteHint::Replica), "{sql}");
        assert_eq!(
            target_of(&hinted, &SessionState::new()),
            Target::Node(PRIMARY),
            "{sql}"
        );
    }
}
