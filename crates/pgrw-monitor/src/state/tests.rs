//! The monitor's state: what each outcome does to health, lag, orphans and the topology.

use super::*;
use pgrw_core::route::{HealthPolicy, WalReceiver};

fn state_of(names: &[&str]) -> MonitorState {
    let addresses = names
        .iter()
        .map(|name| NodeAddress::from_dsn(name, "user=u").expect("a valid DSN"))
        .collect();
    MonitorState::new(addresses, MonitorConfig::default())
}

fn primary_at(lsn: u64) -> Outcome {
    primary_on(1, lsn)
}

fn primary_on(timeline: u32, lsn: u64) -> Outcome {
    Outcome::Answered(Reading::Primary {
        current_lsn: Lsn(lsn),
        timeline: Some(timeline),
    })
}

/// A replica streaming timeline 1, having received and replayed `lsn`.
fn replica_at(lsn: u64) -> Outcome {
    replica_with(lsn, streaming(1, lsn))
}

fn replica_with(lsn: u64, receiver: WalReceiver) -> Outcome {
    Outcome::Answered(Reading::Replica {
        replay_lsn: Lsn(lsn),
        receiver,
        upstream: Some(Arc::from("127.0.0.1:5432")),
    })
}

fn streaming(timeline: u32, received: u64) -> WalReceiver {
    WalReceiver::Running {
        streaming: true,
        timeline: Some(timeline),
        received_lsn: Lsn(received),
    }
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A primary on timeline 1 at 1000 and two replicas streaming it, caught up.
fn healthy_cluster() -> MonitorState {
    let state = state_of(&["primary", "replica1", "replica2"]);
    state.record_at(NodeId(0), primary_at(1_000), ms(0));
    state.record_at(NodeId(1), replica_at(1_000), ms(10));
    state.record_at(NodeId(2), replica_at(1_000), ms(20));
    state
}

fn topology(state: &MonitorState) -> Arc<Topology> {
    Arc::clone(&state.topology.borrow())
}

#[test]
fn before_any_probe_every_node_is_down_with_an_unknown_role() {
    let state = state_of(&["primary", "replica1"]);
    let topology = topology(&state);
    assert!(
        topology
            .nodes
            .iter()
            .all(|node| node.role == Role::Unknown && node.health == Health::Down)
    );
    assert!(!state.is_ready());
    assert_eq!(state.unprobed(), ["primary", "replica1"]);
}

#[test]
fn a_replica_lags_by_the_bytes_and_the_time_since_the_primary_passed_its_replay_position() {
    let state = state_of(&["primary", "replica1"]);
    state.record_at(NodeId(0), primary_at(400), ms(0));
    state.record_at(NodeId(0), primary_at(1_000), ms(100));
    state.record_at(NodeId(1), replica_at(400), ms(350));
    let topology = topology(&state);
    let replica = &topology.nodes[1];
    assert_eq!((replica.role, replica.health), (Role::Replica, Health::Up));
    assert_eq!(replica.replay_lsn, Lsn(400));
    assert_eq!(
        replica.lag,
        Lag {
            bytes: Some(600),
            millis: Some(250)
        }
    );
    assert_eq!(topology.primary_lsn, Lsn(1_000));
    assert!(state.is_ready());
}

#[test]
fn a_replica_stuck_where_it_is_lags_more_with_every_probe_though_it_replayed_all_it_received() {
    let state = state_of(&["primary", "replica1"]);
    state.record_at(NodeId(0), primary_at(1_000), ms(0));
    state.record_at(NodeId(0), primary_at(2_000), ms(100));
    // Replayed all it received: its own replay age would read 0.
    let stuck = || replica_with(1_000, streaming(1, 1_000));
    state.record_at(NodeId(1), stuck(), ms(1_100));
    assert_eq!(topology(&state).nodes[1].lag.millis, Some(1_000));
    state.record_at(NodeId(1), stuck(), ms(3_100));
    assert_eq!(topology(&state).nodes[1].lag.millis, Some(3_000));
}

#[test]
fn a_replica_that_has_replayed_the_primarys_position_has_no_lag() {
    let state = healthy_cluster();
    state.record_at(NodeId(1), replica_at(1_000), ms(60_000));
    assert_eq!(topology(&state).nodes[1].lag, Lag::NONE);
}

#[test]
fn a_replica_over_the_time_limit_is_banned() {
    let addresses = ["primary", "replica1"]
        .iter()
        .map(|name| NodeAddress::from_dsn(name, "user=u").expect("a valid DSN"))
        .collect();
    let config = MonitorConfig {
        health: HealthPolicy {
            max_lag: Some(Duration::from_secs(5)),
            ..HealthPolicy::default()
        },
        ..MonitorConfig::default()
    };
    let state = MonitorState::new(addresses, config);
    state.record_at(NodeId(0), primary_at(1_000), ms(0));
    state.record_at(NodeId(1), replica_at(1_000), ms(0));
    state.record_at(NodeId(0), primary_at(2_000), ms(100));
    state.record_at(NodeId(1), replica_at(1_000), ms(5_100));
    assert!(
        topology(&state).nodes[1].is_up(),
        "5 s behind: at the limit"
    );
    state.record_at(NodeId(1), replica_at(1_000), ms(5_200));
    assert!(matches!(
        topology(&state).nodes[1].health,
        Health::Banned { .. }
    ));
}

#[test]
fn a_replica_seen_before_any_primary_has_no_lag_yet() {
    let state = state_of(&["replica1", "primary"]);
    state.record(NodeId(0), replica_at(400));
    assert_eq!(topology(&state).nodes[0].lag, Lag::default());
}

#[test]
fn replicas_streaming_the_primary_follow_it() {
    let state = healthy_cluster();
    let topology = topology(&state);
    assert!(
        topology.nodes.iter().all(Node::follows_primary),
        "{topology:?}"
    );
}

#[test]
fn after_a_promotion_the_replica_left_without_an_upstream_is_an_orphan() {
    let state = healthy_cluster();
    state.record_at(NodeId(0), Outcome::ConnectFailed("refused".into()), ms(100));
    // Both replicas lose their upstream; with no primary, nothing to follow.
    state.record_at(NodeId(1), replica_with(1_000, WalReceiver::Absent), ms(110));
    state.record_at(NodeId(2), replica_with(1_000, WalReceiver::Absent), ms(120));
    assert!(topology(&state).nodes.iter().all(Node::follows_primary));
    // replica1 is promoted to timeline 2.
    state.record_at(NodeId(1), primary_on(2, 1_200), ms(200));
    state.record_at(NodeId(2), replica_with(1_000, WalReceiver::Absent), ms(220));
    let topology = topology(&state);
    assert_eq!(topology.writable_primary(), Ok(NodeId(1)));
    assert_eq!(topology.nodes[2].orphan, Some(Orphan::NotStreaming));
    assert!(topology.nodes[2].is_up(), "up, but an orphan");
}

#[test]
fn a_replica_is_judged_again_when_the_primary_changes_without_probing_it() {
    let state = healthy_cluster();
    state.record_at(NodeId(0), Outcome::ConnectFailed("refused".into()), ms(100));
    state.record_at(NodeId(2), replica_with(1_000, WalReceiver::Absent), ms(120));
    state.record_at(NodeId(1), primary_on(2, 1_200), ms(200));
    assert_eq!(topology(&state).nodes[2].orphan, Some(Orphan::NotStreaming));
}

#[test]
fn a_replica_streaming_an_old_timeline_is_an_orphan_and_follows_again_once_it_switches() {
    let state = healthy_cluster();
    state.record_at(NodeId(0), Outcome::ConnectFailed("refused".into()), ms(100));
    state.record_at(NodeId(1), primary_on(2, 1_200), ms(200));
    state.record_at(NodeId(2), replica_with(1_000, streaming(1, 1_000)), ms(220));
    assert_eq!(
        topology(&state).nodes[2].orphan,
        Some(Orphan::OtherTimeline {
            replica: 1,
            primary: 2
        })
    );
    state.record_at(NodeId(2), replica_with(1_200, streaming(2, 1_200)), ms(320));
    assert_eq!(topology(&state).nodes[2].orphan, None);
}

#[test]
fn a_streaming_replica_that_receives_nothing_of_the_primarys_wal_is_an_orphan() {
    let state = healthy_cluster();
    state.record_at(NodeId(0), primary_at(2_000), ms(100));
    let stalled = || replica_with(1_000, streaming(1, 1_000));
    state.record_at(NodeId(1), stalled(), ms(5_000));
    assert_eq!(topology(&state).nodes[1].orphan, None);
    state.record_at(NodeId(1), stalled(), ms(5_200));
    assert_eq!(
        topology(&state).nodes[1].orphan,
        Some(Orphan::ReceiveStalled)
    );
}

#[test]
fn a_restarted_old_primary_still_banned_makes_writes_ambiguous_at_its_first_answer() {
    let state = healthy_cluster();
    state.record_at(NodeId(0), Outcome::ConnectFailed("refused".into()), ms(100));
    state.record_at(NodeId(1), primary_on(2, 1_200), ms(200));
    assert_eq!(topology(&state).writable_primary(), Ok(NodeId(1)));
    // The old primary starts again, within its ban.
    state.record_at(NodeId(0), primary_on(1, 1_000), ms(300));
    let topology = topology(&state);
    assert!(matches!(topology.nodes[0].health, Health::Banned { .. }));
    assert_eq!(
        topology.writable_primary(),
        Err(NoPrimary::Ambiguous(NodeId(0), NodeId(1)))
    );
    // Stopped again: one primary.
    state.record_at(NodeId(0), Outcome::ConnectFailed("refused".into()), ms(400));
    assert_eq!(self::topology(&state).writable_primary(), Ok(NodeId(1)));
}

#[test]
fn a_replica_whose_receiver_details_are_hidden_is_judged_by_its_lag_alone() {
    let state = healthy_cluster();
    state.record_at(NodeId(1), replica_with(1_000, WalReceiver::Hidden), ms(50));
    let replica = &topology(&state).nodes[1];
    assert_eq!((replica.orphan, replica.lag), (None, Lag::NONE));
}

#[test]
fn an_unchanged_reading_publishes_no_new_topology() {
    let state = state_of(&["primary"]);
    let mut updates = state.topology.subscribe();
    state.record(NodeId(0), primary_at(1_000));
    assert!(updates.has_changed().unwrap());
    updates.mark_unchanged();
    state.record(NodeId(0), primary_at(1_000));
    assert!(!updates.has_changed().unwrap());
    state.record(NodeId(0), primary_at(1_001));
    assert!(
        updates.has_changed().unwrap(),
        "an LSN advance is published"
    );
}

#[test]
fn a_driver_failure_bans_without_counting_as_a_probe() {
    let state = state_of(&["primary"]);
    state.record(NodeId(0), Outcome::DriverFailed("refused".to_string()));
    assert!(matches!(
        topology(&state).nodes[0].health,
        Health::Banned { .. }
    ));
    assert_eq!(state.unprobed(), ["primary"]);
}

#[test]
fn two_primaries_up_leave_no_writable_primary() {
    let state = state_of(&["primary", "replica1"]);
    state.record(NodeId(0), primary_at(1_000));
    state.record(NodeId(1), primary_at(2_000));
    let topology = topology(&state);
    assert_eq!(
        topology.writable_primary(),
        Err(NoPrimary::Ambiguous(NodeId(0), NodeId(1)))
    );
    assert_eq!(topology.primary_lsn, Lsn(2_000), "the furthest primary");
}

#[test]
fn failed_probes_in_a_row_keep_the_last_role_but_take_the_node_down() {
    let state = state_of(&["primary", "replica1"]);
    state.record(NodeId(1), replica_at(400));
    for _ in 0..HealthPolicy::default().probe_failures_before_down {
        state.record(NodeId(1), Outcome::ProbeFailed("closed".to_string()));
    }
    let replica = &topology(&state).nodes[1];
    assert_eq!(
        (replica.role, replica.health),
        (Role::Replica, Health::Down)
    );
}

#[test]
fn an_operators_ban_holds_over_healthy_probes_until_it_is_lifted() {
    let state = healthy_cluster();
    assert!(state.set_operator_ban(NodeId(1), true));
    state.record_at(NodeId(1), replica_at(1_000), ms(5_000));
    let banned = topology(&state);
    assert_eq!(
        banned.node(NodeId(1)).map(|node| node.health),
        Some(Health::Banned {
            until: OPERATOR_BAN_UNTIL
        })
    );
    assert!(state.operator_banned(NodeId(1)));
    assert!(!state.operator_banned(NodeId(2)));

    assert!(state.set_operator_ban(NodeId(1), false));
    assert_eq!(
        topology(&state).node(NodeId(1)).map(|node| node.health),
        Some(Health::Up)
    );
}

#[test]
fn an_operator_cannot_ban_a_node_the_monitor_does_not_have() {
    let state = healthy_cluster();
    assert!(!state.set_operator_ban(NodeId(9), true));
}

#[test]
fn a_node_added_gets_the_next_id_and_is_down_until_probed() {
    let state = healthy_cluster();
    let address = NodeAddress::from_dsn("replica3", "user=u").expect("a valid DSN");
    assert_eq!(state.add(address), Some(NodeId(3)));
    let added = &topology(&state).nodes[3];
    assert_eq!(added.role, Role::Unknown);
    assert!(!added.is_up());
    state.record_at(NodeId(3), replica_at(1_000), ms(30));
    let added = &topology(&state).nodes[3];
    assert!(added.is_up() && added.follows_primary());
}

#[test]
fn a_draining_replica_stays_up_for_what_is_on_it_but_follows_nothing() {
    let state = healthy_cluster();
    assert!(state.drain(NodeId(1)));
    state.record_at(NodeId(1), replica_at(1_000), ms(100));
    let replica = &topology(&state).nodes[1];
    assert!(replica.is_up(), "a transaction on it carries on");
    assert_eq!(
        replica.orphan,
        Some(Orphan::Removed),
        "no new read goes to it"
    );
}

#[test]
fn a_retired_node_keeps_its_id_down_and_unknown_and_the_next_node_gets_a_new_one() {
    let state = healthy_cluster();
    assert!(state.retire(NodeId(1)));
    assert!(!state.retire(NodeId(1)), "retired once");
    // A late probe of it changes nothing.
    state.record_at(NodeId(1), replica_at(1_000), ms(100));
    let topology_now = topology(&state);
    assert_eq!(topology_now.nodes.len(), 3);
    assert_eq!(topology_now.nodes[1].role, Role::Unknown);
    assert!(!topology_now.nodes[1].is_up());
    assert!(!state.drain(NodeId(1)) && state.address(NodeId(1)).is_none());
    assert!(state.is_ready(), "a retired node is not waited for");
    let address = NodeAddress::from_dsn("replica1", "user=u").expect("a valid DSN");
    assert_eq!(state.add(address), Some(NodeId(3)), "ids are never reused");
}
