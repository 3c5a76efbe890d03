//! Pooling seen from clients: session pooling keeps a client's backends,
//! transaction pooling shares them; the pool's size, checkout timeout and idle
//! timeout. Backends are told apart by `pg_backend_pid()`, nodes by
//! `inet_server_port()`.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;
#[path = "support/raw_client.rs"]
mod raw_client;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pgrw_cluster::testing::TEST_PASSWORD;
use pgrw_proxy::protocol::frontend;
use proxy_cluster::ProxiedCluster;
use raw_client::RawClient;

/// The node port and backend pid that served one read.
async fn served_by(client: &tokio_postgres::Client) -> (i32, i32) {
    let row = client
        // A question about the server goes to the primary unless a replica
        // is asked on purpose: these reads are to be spread over replicas.
        .query_one(
            "/* pgrw:replica */ SELECT inet_server_port(), pg_backend_pid()",
            &[],
        )
        .await
        .expect("a read through the proxy");
    (row.get(0), row.get(1))
}

/// Backend pids per node port over `reads` reads.
async fn backends_per_node(
    client: &tokio_postgres::Client,
    reads: usize,
) -> BTreeMap<i32, BTreeSet<i32>> {
    let mut seen: BTreeMap<i32, BTreeSet<i32>> = BTreeMap::new();
    for _ in 0..reads {
        let (port, pid) = served_by(client).await;
        seen.entry(port).or_default().insert(pid);
    }
    seen
}

/// A session straight to the primary, bypassing the proxy.
async fn direct_to_primary(proxied: &ProxiedCluster) -> tokio_postgres::Client {
    let dsn = format!(
        "host=127.0.0.1 port={} user=postgres password={TEST_PASSWORD} dbname=postgres",
        proxied.cluster.port("primary")
    );
    let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("connecting to the primary directly");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn session_pooling_keeps_one_backend_per_node_for_the_whole_session() {
    let proxied = ProxiedCluster::start(2, "[pool]\nmode = \"session\"").await;
    let client = proxied.connect().await;
    // A connection's back-to-back reads stay on one replica (monotonic
    // reads): hinted reads on the primary make the session use two nodes.
    let mut seen = backends_per_node(&client, 15).await;
    for _ in 0..15 {
        let row = client
            .query_one(
                "/* pgrw:primary */ SELECT inet_server_port(), pg_backend_pid()",
                &[],
            )
            .await
            .expect("a read through the proxy");
        seen.entry(row.get(0)).or_default().insert(row.get(1));
    }
    for (port, pids) in backends_per_node(&client, 15).await {
        seen.entry(port).or_default().extend(pids);
    }
    assert!(
        seen.len() >= 2,
        "reads on a replica and on the primary touched only {seen:?}"
    );
    for (port, pids) in &seen {
        assert_eq!(
            pids.len(),
            1,
            "node {} served one session from several backends: {pids:?}",
            proxied.node_at(*port)
        );
    }
}

#[tokio::test]
async fn session_pooling_never_lends_a_clients_backend_to_another_client() {
    let proxied = ProxiedCluster::start(0, "[pool]\nmode = \"session\"").await;
    let first = proxied.connect().await;
    let second = proxied.connect().await;
    let mut first_pids = BTreeSet::new();
    let mut second_pids = BTreeSet::new();
    for _ in 0..10 {
        first_pids.insert(served_by(&first).await.1);
        second_pids.insert(served_by(&second).await.1);
    }
    assert!(
        first_pids.is_disjoint(&second_pids),
        "two live session-pooled clients shared a backend: {first_pids:?} / {second_pids:?}"
    );
}

#[tokio::test]
async fn transaction_pooling_shares_one_backend_between_clients_in_turn() {
    let proxied = ProxiedCluster::start(0, "[pool]\nsize = 1").await;
    let first = proxied.connect().await;
    let second = proxied.connect().await;
    let (_, first_pid) = served_by(&first).await;
    let (_, second_pid) = served_by(&second).await;
    assert_eq!(
        first_pid, second_pid,
        "with one connection per pool both clients must be served by it"
    );
}

#[tokio::test]
async fn a_full_session_pool_refuses_the_next_client_with_53300_until_a_client_leaves() {
    let proxied = ProxiedCluster::start(
        0,
        "[pool]\nmode = \"session\"\nsize = 1\ncheckout_timeout_ms = 300",
    )
    .await;
    let holder = proxied.connect().await;
    served_by(&holder).await;
    let waiter = proxied.connect().await;
    let started = Instant::now();
    let error = waiter
        .query_one("SELECT 1", &[])
        .await
        .expect_err("the only backend is held by the other session");
    assert_eq!(error.code().map(|code| code.code()), Some("53300"));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "refused after {:?}, before the checkout timeout",
        started.elapsed()
    );
    drop(holder);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match waiter.query_one("SELECT 1", &[]).await {
            Ok(_) => break,
            Err(error) if Instant::now() < deadline => {
                assert_eq!(error.code().map(|code| code.code()), Some("53300"));
            }
            Err(error) => panic!("the backend never came back after its client left: {error}"),
        }
    }
}

#[tokio::test]
async fn a_session_pooled_backend_returns_clean_to_the_next_client() {
    let proxied = ProxiedCluster::start(0, "[pool]\nmode = \"session\"\nsize = 1").await;
    let first = proxied.connect().await;
    first
        .batch_execute("SET statement_timeout = '4321ms'")
        .await
        .unwrap();
    let (_, first_pid) = served_by(&first).await;
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = proxied.connect().await;
    let (second_pid, timeout) = loop {
        match second.query_one("SHOW statement_timeout", &[]).await {
            Ok(row) => break (served_by(&second).await.1, row.get::<_, String>(0)),
            Err(_) if Instant::now() < deadline => continue,
            Err(error) => panic!("the next client got no backend: {error}"),
        }
    };
    assert_eq!(timeout, "0", "the first client's setting leaked");
    assert_eq!(
        second_pid, first_pid,
        "a clean backend should be reused, not closed"
    );
}

#[tokio::test]
async fn an_idle_backend_past_the_idle_timeout_is_closed_and_replaced() {
    let proxied = ProxiedCluster::start(0, "[pool]\nidle_timeout_secs = 1").await;
    let client = proxied.connect().await;
    let (_, stale_pid) = served_by(&client).await;
    // The behaviour under test is a timeout: let the backend sit idle past it.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (_, fresh_pid) = served_by(&client).await;
    assert_ne!(fresh_pid, stale_pid, "a stale backend was reused");
    let primary = direct_to_primary(&proxied).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = primary
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&stale_pid],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stale backend {stale_pid} is still connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client through the proxy whose StartupMessage carries `options`.
async fn connect_with_options(proxied: &ProxiedCluster, options: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = proxied.dsn().parse().unwrap();
    if !options.is_empty() {
        config.options(options);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("logging in through the proxy");
    tokio::spawn(connection);
    client
}

async fn statement_timeout(client: &tokio_postgres::Client) -> (String, i32) {
    let row = client
        .query_one(
            "SELECT current_setting('statement_timeout'), pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn startup_settings_stay_with_a_pooled_backend_only_for_clients_that_asked_for_them() {
    let proxied = ProxiedCluster::start(0, "[pool]\nsize = 1").await;
    let with = connect_with_options(&proxied, "-c statement_timeout=4321").await;
    let without = connect_with_options(&proxied, "").await;
    let again = connect_with_options(&proxied, "-c statement_timeout=4321").await;
    // One backend serves all three in turn, each with its own startup settings.
    let mut pids = BTreeSet::new();
    for _ in 0..3 {
        for (client, expected) in [(&with, "4321ms"), (&without, "0"), (&again, "4321ms")] {
            let (timeout, pid) = statement_timeout(client).await;
            assert_eq!(
                timeout, expected,
                "a client saw another client's startup setting"
            );
            pids.insert(pid);
        }
    }
    assert_eq!(
        pids.len(),
        1,
        "the single pooled backend was replaced: {pids:?}"
    );
}

#[tokio::test]
async fn closing_a_prepared_statement_outside_a_transaction_needs_no_backend() {
    let proxied = ProxiedCluster::start(
        0,
        "auth = \"trust\"\n[pool]\nsize = 1\ncheckout_timeout_ms = 2000",
    )
    .await;
    let mut closer = RawClient::log_in(proxied.port()).await;
    // The only backend is busy in another client's transaction.
    let holder = proxied.connect().await;
    holder.batch_execute("BEGIN").await.unwrap();

    let mut out = BytesMut::new();
    frontend::encode_close(&mut out, frontend::Target::Statement, b"cached_1");
    frontend::encode_close(&mut out, frontend::Target::Statement, b"cached_2");
    frontend::encode_sync(&mut out);
    closer.send(&out).await;
    assert_eq!(
        closer.tags_until(b'Z').await,
        "33Z",
        "two CloseComplete and ReadyForQuery, without waiting for the busy backend"
    );
    holder.batch_execute("COMMIT").await.unwrap();
}
