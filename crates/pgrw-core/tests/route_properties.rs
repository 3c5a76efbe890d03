//! Properties of routing over random topologies, sessions and policies: the
//! guarantees no input may break.

use std::time::Duration;

use pgrw_core::route::{
    self, Balancer, Balancing, Deferred, Health, Lag, LastRead, Node, NodeId, Orphan, Pin,
    PinReason, Policy, PrimaryReads, Role, Route, RouteMode, RouteRequest, SessionState, StaleRead,
    Target, Topology, Transaction, TransactionReads,
};
use pgrw_core::{Lsn, RouteHint, StatementClass, TxAccess};
use proptest::prelude::*;

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![2 => Just(Role::Primary), 5 => Just(Role::Replica), 1 => Just(Role::Unknown)]
}

fn health() -> impl Strategy<Value = Health> {
    prop_oneof![
        4 => Just(Health::Up),
        1 => Just(Health::Down),
        1 => (0u64..10_000).prop_map(|ms| Health::Banned { until: Duration::from_millis(ms) }),
    ]
}

fn lsn() -> impl Strategy<Value = Lsn> {
    (0u64..1_000).prop_map(Lsn)
}

fn node() -> impl Strategy<Value = Node> {
    let lag = (
        proptest::option::of(0u64..2_000),
        proptest::option::of(0u64..2_000),
    )
        .prop_map(|(bytes, millis)| Lag { bytes, millis });
    let orphan = proptest::option::weighted(
        0.2,
        prop_oneof![
            Just(Orphan::NotStreaming),
            Just(Orphan::ReceiveStalled),
            Just(Orphan::OtherTimeline {
                replica: 1,
                primary: 2
            }),
        ],
    );
    let follow = (any::<bool>(), orphan);
    (role(), health(), lsn(), lag, 0u32..5, follow).prop_map(
        |(role, health, replay_lsn, lag, weight, (answering, orphan))| Node {
            health,
            replay_lsn,
            lag,
            weight,
            answering,
            orphan,
            ..Node::new("node", role)
        },
    )
}

fn topology() -> impl Strategy<Value = Topology> {
    (
        proptest::collection::vec(node(), 0..6),
        lsn(),
        proptest::option::of(0u64..10_000),
    )
        .prop_map(|(nodes, primary_lsn, at)| {
            let topology = Topology::new(nodes, primary_lsn);
            match at {
                Some(ms) => topology.with_primary_lsn_at(Duration::from_millis(ms)),
                None => topology,
            }
        })
}

fn access() -> impl Strategy<Value = TxAccess> {
    prop_oneof![
        Just(TxAccess::Unspecified),
        Just(TxAccess::ReadOnly),
        Just(TxAccess::ReadWrite)
    ]
}

fn pin_reason() -> impl Strategy<Value = PinReason> {
    prop_oneof![
        Just(PinReason::TempTable),
        Just(PinReason::AdvisoryLock),
        Just(PinReason::Listen),
        Just(PinReason::HoldCursor),
        Just(PinReason::PreparedStatement),
    ]
}

fn session() -> impl Strategy<Value = SessionState> {
    let transaction = proptest::option::weighted(
        0.2,
        (0u16..7, access()).prop_map(|(id, access)| Transaction {
            node: NodeId(id),
            access,
        }),
    );
    let pin = proptest::option::weighted(
        0.2,
        (0u16..7, pin_reason()).prop_map(|(id, reason)| Pin {
            node: NodeId(id),
            reason,
        }),
    );
    let mode = prop_oneof![3 => Just(RouteMode::Auto), 1 => Just(RouteMode::Primary), 1 => Just(RouteMode::Replica)];
    let last_read = proptest::option::weighted(
        0.5,
        (0u16..7, 0u64..10_000).prop_map(|(id, ms)| LastRead {
            node: NodeId(id),
            at: Duration::from_millis(ms),
        }),
    );
    (
        transaction,
        pin,
        lsn(),
        prop_oneof![Just(Lsn::INVALID), lsn()],
        prop_oneof![Just(Lsn::INVALID), lsn()],
        mode,
        last_read,
        proptest::bool::weighted(0.2),
    )
        .prop_map(
            |(
                transaction,
                pin,
                last_write_lsn,
                min_lsn,
                shared_lsn,
                route_mode,
                last_read,
                serializable,
            )| {
                SessionState {
                    transaction,
                    pin,
                    last_write_lsn,
                    min_lsn,
                    shared_lsn,
                    route_mode,
                    last_read,
                    serializable_default: serializable,
                    serializable_at_login: false,
                    deferred: None,
                    snapshot_default: serializable,
                    snapshot_at_login: false,
                }
            },
        )
}

fn policy() -> impl Strategy<Value = Policy> {
    let balancing = prop_oneof![
        Just(Balancing::Random),
        Just(Balancing::RoundRobin),
        Just(Balancing::LeastOutstanding),
        Just(Balancing::Weighted),
    ];
    let primary_reads = prop_oneof![
        Just(PrimaryReads::Never),
        Just(PrimaryReads::Always),
        Just(PrimaryReads::WhenNoReplica)
    ];
    let stale_read = prop_oneof![
        Just(StaleRead::Primary),
        (0u64..500).prop_map(|ms| StaleRead::Wait(Duration::from_millis(ms)))
    ];
    let limit = proptest::option::of(0u64..2_000);
    (
        balancing,
        primary_reads,
        limit.clone(),
        limit,
        any::<bool>(),
        stale_read,
    )
        .prop_map(
            |(
                balancing,
                primary_reads,
                max_lag_bytes,
                max_lag_ms,
                read_your_writes,
                stale_read,
            )| Policy {
                balancing,
                primary_reads,
                max_lag_bytes,
                max_lag: max_lag_ms.map(Duration::from_millis),
                read_your_writes,
                stale_read,
                transaction_reads: TransactionReads::Replica,
            },
        )
}

fn class() -> impl Strategy<Value = StatementClass> {
    prop_oneof![
        3 => Just(StatementClass::Read),
        3 => Just(StatementClass::Write),
        1 => access().prop_map(StatementClass::Begin),
        1 => access().prop_map(StatementClass::SetTransaction),
        1 => Just(StatementClass::Commit),
        1 => Just(StatementClass::Rollback),
        1 => Just(StatementClass::Savepoint),
        1 => Just(StatementClass::Session),
        1 => Just(StatementClass::Empty),
    ]
}

fn request() -> impl Strategy<Value = RouteRequest> {
    let hint = proptest::option::weighted(
        0.3,
        prop_oneof![Just(RouteHint::Primary), Just(RouteHint::Replica)],
    );
    (
        class(),
        hint,
        0u64..10_000,
        proptest::option::of(0u64..10_000),
        proptest::option::weighted(0.3, 0u64..10_000),
    )
        .prop_map(|(class, hint, now, waited, fresh)| RouteRequest {
            class,
            hint,
            now: Duration::from_millis(now),
            waited_until: waited.map(Duration::from_millis),
            fresh_since: fresh.map(Duration::from_millis),
            session_backend: false,
        })
}

fn case() -> impl Strategy<Value = (RouteRequest, SessionState, Topology, Policy, u64)> {
    (request(), session(), topology(), policy(), any::<u64>())
}

fn decide(
    request: &RouteRequest,
    session: &SessionState,
    topology: &Topology,
    policy: &Policy,
    seed: u64,
) -> Route {
    // The seed also gives the load on each node (0 to 15 requests in flight).
    let mut balancer = Balancer::with_seed(seed);
    balancer.set_load((0..6).map(|node| ((seed >> (node * 4)) & 0xF) as u32));
    route::route(request, session, topology, policy, &mut balancer)
}

/// A replica the policy lets serve this session's reads.
fn eligible_replica(node: &Node, session: &SessionState, policy: &Policy) -> bool {
    let within = |value: Option<u64>, limit: Option<u64>| {
        limit.is_none_or(|limit| value.is_some_and(|v| v <= limit))
    };
    node.role == Role::Replica
        && node.health == Health::Up
        && node.orphan.is_none()
        && within(node.lag.bytes, policy.max_lag_bytes)
        && within(
            node.lag.millis,
            policy.max_lag.map(|limit| limit.as_millis() as u64),
        )
        && node.replay_lsn >= session.required_lsn(policy)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn never_routes_to_a_node_that_is_not_up((request, session, topology, policy, seed) in case()) {
        let decided = decide(&request, &session, &topology, &policy, seed);
        if let Some(id) = decided.node() {
            let node = topology.node(id);
            prop_assert!(node.is_some_and(|node| node.health == Health::Up), "{decided:?} on {node:?}");
        }
    }

    #[test]
    fn writes_go_only_to_the_up_primary_or_into_their_read_only_transaction(
        (request, session, topology, policy, seed) in case()
    ) {
        let request = RouteRequest { class: StatementClass::Write, ..request };
        let decided = decide(&request, &session, &topology, &policy, seed);
        if let Some(id) = decided.node() {
            let primary = topology.writable_primary() == Ok(id);
            let read_only_transaction = session.transaction == Some(Transaction { node: id, access: TxAccess::ReadOnly });
            prop_assert!(primary || read_only_transaction, "{decided:?}");
        }
    }

    #[test]
    fn a_deferred_transaction_runs_only_plain_reads_on_replicas_and_only_on_its_leg(
        (request, session, topology, policy, seed) in case(),
        leg in proptest::option::of(0u16..4),
    ) {
        // Before its first write, a deferred transaction reads on one replica
        // (its leg) that has replayed what the session must see; anything
        // else opens it on the primary; COMMIT/ROLLBACK end the leg.
        let transaction = leg.map(|index| Transaction { node: NodeId(index), access: TxAccess::ReadOnly });
        let session = SessionState { transaction, pin: None, deferred: Some(Deferred::default()), ..session };
        let decided = decide(&request, &session, &topology, &policy, seed);
        let Some(id) = decided.node() else { return Ok(()) };
        if topology.writable_primary() == Ok(id) {
            return Ok(());
        }
        let ends = matches!(request.class, StatementClass::Commit | StatementClass::Rollback);
        let reads = matches!(request.class, StatementClass::Read | StatementClass::Empty);
        prop_assert!(reads || (ends && transaction.is_some()), "{decided:?}");
        if let Some(leg) = transaction {
            prop_assert_eq!(leg.node, id, "{:?}", decided);
        }
        if request.class == StatementClass::Read && topology.node(id).is_some_and(|node| node.role == Role::Replica) {
            let node = topology.node(id).unwrap();
            prop_assert!(node.replay_lsn >= session.required_lsn(&policy), "{decided:?} on {node:?}");
        }
    }

    #[test]
    fn read_write_transactions_begin_only_on_the_primary((request, session, topology, policy, seed) in case()) {
        let session = SessionState { transaction: None, ..session };
        for access in [TxAccess::ReadWrite, TxAccess::Unspecified] {
            let request = RouteRequest { class: StatementClass::Begin(access), ..request };
            let decided = decide(&request, &session, &topology, &policy, seed);
            if let Some(id) = decided.node() {
                prop_assert_eq!(topology.writable_primary(), Ok(id), "{:?}", decided);
            }
        }
    }

    #[test]
    fn a_session_whose_default_isolation_is_serializable_never_starts_on_a_replica(
        (request, session, topology, policy, seed) in case()
    ) {
        // A hot standby refuses serializable transactions, whatever the hint or mode.
        let session = SessionState { transaction: None, pin: None, serializable_default: true, ..session };
        let decided = decide(&request, &session, &topology, &policy, seed);
        if let Some(id) = decided.node() {
            prop_assert_eq!(topology.writable_primary(), Ok(id), "{:?}", decided);
        }
    }

    #[test]
    fn reads_never_see_a_replica_behind_the_sessions_required_lsn(
        (request, session, topology, policy, seed) in case()
    ) {
        // Pins stay: a read pinned to a replica waits for it rather than read stale.
        let session = SessionState { transaction: None, ..session };
        let decided = decide(&request, &session, &topology, &policy, seed);
        let served_by = decided.node().and_then(|id| topology.node(id));
        if let Some(node) = served_by.filter(|node| node.role != Role::Primary) {
            prop_assert!(node.replay_lsn >= session.required_lsn(&policy), "{decided:?} on {node:?}");
        }
    }

    #[test]
    fn a_fresh_read_on_a_replica_sees_the_primary_as_of_a_probe_begun_after_it_asked(
        (request, session, topology, policy, seed) in case()
    ) {
        let session = SessionState { transaction: None, pin: None, ..session };
        let decided = decide(&request, &session, &topology, &policy, seed);
        let served_by = decided.node().and_then(|id| topology.node(id));
        if let (Some(node), Some(since)) = (served_by.filter(|node| node.role == Role::Replica), request.fresh_since)
            && request.class == StatementClass::Read
        {
            let fresh = topology.primary_lsn_since(since);
            prop_assert!(fresh.is_some_and(|lsn| node.replay_lsn >= lsn), "{decided:?} on {node:?}");
        }
    }

    #[test]
    fn a_read_moves_to_another_replica_only_once_it_is_past_what_the_last_read_saw(
        (request, session, topology, policy, seed) in case()
    ) {
        let session = SessionState { transaction: None, pin: None, ..session };
        let decided = decide(&request, &session, &topology, &policy, seed);
        let (Some(id), Some(last)) = (decided.node(), session.last_read) else {
            return Ok(());
        };
        let node = topology.node(id).expect("routes name nodes of the topology");
        if node.role == Role::Replica && id != last.node && request.class == StatementClass::Read {
            let seen = topology.primary_lsn_since(last.at);
            prop_assert!(seen.is_some_and(|seen| node.replay_lsn >= seen), "{decided:?} after {last:?}");
        }
    }

    #[test]
    fn reads_stay_off_the_primary_when_it_never_reads_and_a_replica_can_serve(
        (request, session, topology, policy, seed) in case()
    ) {
        let session = SessionState { transaction: None, pin: None, route_mode: RouteMode::Auto, last_read: None, serializable_default: false, ..session };
        let request = RouteRequest { class: StatementClass::Read, hint: None, fresh_since: None, ..request };
        let policy = Policy { primary_reads: PrimaryReads::Never, ..policy };
        let mut topology = topology;
        let mut caught_up = Node::new("caught_up", Role::Replica);
        caught_up.replay_lsn = session.required_lsn(&policy);
        topology.nodes.insert(seed as usize % (topology.nodes.len() + 1), caught_up);
        let decided = decide(&request, &session, &topology, &policy, seed);
        let node = decided.node().and_then(|id| topology.node(id));
        prop_assert!(node.is_some_and(|node| eligible_replica(node, &session, &policy)), "{decided:?}");
    }

    #[test]
    fn a_wait_is_asked_only_by_a_waiting_policy_and_ends_in_the_future(
        (request, session, topology, policy, seed) in case()
    ) {
        let decided = decide(&request, &session, &topology, &policy, seed);
        if let Target::WaitForReplica { lsn, until, node } = decided.target {
            match node {
                // Any replica: only a waiting policy waits.
                None => prop_assert!(matches!(policy.stale_read, StaleRead::Wait(_))),
                // One replica: the one a session outside a transaction is
                // pinned to, or (waiting policies only) the one it last read on.
                Some(id) => {
                    prop_assert!(session.transaction.is_none());
                    let pinned = session.pin.map(|pin| pin.node) == Some(id);
                    let last = session.last_read.map(|last| last.node) == Some(id)
                        && matches!(policy.stale_read, StaleRead::Wait(_));
                    prop_assert!(pinned || last);
                    prop_assert!(topology.node(id).is_some_and(|node| node.role != Role::Primary));
                }
            }
            prop_assert!(until > request.now);
            prop_assert!(lsn >= session.required_lsn(&policy));
        }
        if let Target::AwaitPrimaryPosition { since, until } = decided.target {
            prop_assert!(until > request.now);
            prop_assert!(topology.primary_lsn_since(since).is_none());
        }
    }

    #[test]
    fn a_read_outside_transactions_and_pins_never_goes_to_an_orphan(
        (request, session, topology, policy, seed) in case()
    ) {
        let session = SessionState { transaction: None, pin: None, ..session };
        let decided = decide(&request, &session, &topology, &policy, seed);
        if let Some(node) = decided.node().and_then(|id| topology.node(id)) {
            prop_assert!(node.role != Role::Replica || node.follows_primary(), "{decided:?} on {node:?}");
        }
    }

    #[test]
    fn writes_are_refused_while_two_live_nodes_claim_the_primary_role(
        (request, session, topology, policy, seed) in case()
    ) {
        let request = RouteRequest { class: StatementClass::Write, ..request };
        let session = SessionState { transaction: None, pin: None, ..session };
        let claimants = topology.nodes.iter().filter(|node| node.claims_primary()).count();
        let decided = decide(&request, &session, &topology, &policy, seed);
        if claimants > 1 {
            prop_assert_eq!(decided.node(), None, "{:?}", decided);
        }
    }

    #[test]
    fn every_route_explains_itself((request, session, topology, policy, seed) in case()) {
        let decided = decide(&request, &session, &topology, &policy, seed);
        prop_assert!(!decided.explain(&topology).to_string().is_empty());
    }
}
