//! Live reload (`RELOAD`, as SIGHUP): a changed `pgrw.toml` applies while a
//! client keeps running queries; an invalid one is refused with the reason
//! and the old configuration stays. Nodes come and go by reload: a new
//! replica gets reads once it has replayed what they require, a removed one
//! gets none, and no running client sees an error.

#[path = "support/admin_console.rs"]
mod admin_console;
#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use admin_console::{cell, console, http_get, rows, samples};
use pgrw_cluster::testing::{TEST_PASSWORD, TestCluster, wait_until};
use pgrw_core::route::Role;
use pgrw_proxy::ProxyHandle;

/// Bounds every wait in these tests; far above what each should take.
const DEADLINE: Duration = Duration::from_secs(30);

/// A config for `cluster`: user `postgres` with `user_extra` keys, then `tail`.
fn config_text(cluster: &TestCluster, user_extra: &str, tail: &str) -> String {
    proxy_cluster::config_text(cluster, "", &format!("{user_extra}\n{tail}"))
}

/// The SQLSTATE and message `RELOAD` is refused with.
async fn refused_reload(admin: &tokio_postgres::Client) -> (String, String) {
    let refused = admin
        .simple_query("RELOAD")
        .await
        .expect_err("a refused file");
    let error = refused.as_db_error().expect("an error from the console");
    (error.code().code().to_string(), error.message().to_string())
}

#[tokio::test]
async fn a_changed_file_applies_and_an_invalid_one_is_refused_while_a_client_runs() {
    let cluster = TestCluster::start(1).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("pgrw.toml");
    std::fs::write(&path, config_text(&cluster, "admin = true", "")).expect("write");
    let proxy = proxy_cluster::proxy_from_file(&path).await;
    let port = proxy.local_addr().port();

    // A client runs queries all along: no reload may drop or fail it.
    let dsn = format!("postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{port}/postgres");
    let (app, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("a client");
    tokio::spawn(connection);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let runner = tokio::spawn({
        let (stop, done) = (stop.clone(), done.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                app.simple_query("SELECT 1").await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, tokio_postgres::Error>(())
        }
    });

    let admin = console(port).await.expect("an admin logs in");
    let before = rows(&admin, "SHOW CONFIG").await;
    assert_eq!(cell(&before, "key", "pool.size", "value"), Some("20"));
    assert_eq!(
        cell(&before, "key", "policy.balancing", "value"),
        Some("least_outstanding")
    );

    std::fs::write(
        &path,
        config_text(
            &cluster,
            "admin = true",
            "[pool]\nsize = 7\n[policy]\nbalancing = \"round_robin\"",
        ),
    )
    .expect("write");
    admin
        .simple_query("RELOAD")
        .await
        .expect("a valid file reloads");
    let after = rows(&admin, "SHOW CONFIG").await;
    assert_eq!(cell(&after, "key", "pool.size", "value"), Some("7"));
    assert_eq!(
        cell(&after, "key", "policy.balancing", "value"),
        Some("round_robin")
    );

    // An invalid file: refused with the key at fault, the old config kept.
    std::fs::write(
        &path,
        config_text(&cluster, "admin = true", "[pool]\nsize = 0"),
    )
    .expect("write");
    let (code, message) = refused_reload(&admin).await;
    assert_eq!(code, "F0000");
    assert!(message.contains("pool.size"), "{message}");
    // So is one that removes the primary (here: renames it, a new node).
    let moved = config_text(&cluster, "admin = true", "")
        .replace("name = \"primary\"", "name = \"renamed\"");
    std::fs::write(&path, moved).expect("write");
    let (_, message) = refused_reload(&admin).await;
    assert!(
        message.contains("`nodes`") && message.contains("primary"),
        "{message}"
    );
    let kept = rows(&admin, "SHOW CONFIG").await;
    assert_eq!(cell(&kept, "key", "pool.size", "value"), Some("7"));

    // Users reload too: without `admin`, a new console login is refused.
    std::fs::write(&path, config_text(&cluster, "", "")).expect("write");
    admin
        .simple_query("RELOAD")
        .await
        .expect("a valid file reloads");
    let refused = console(port).await.expect_err("no longer an admin");
    assert_eq!(refused.code().map(|code| code.code()), Some("42501"));

    let seen = done.load(Ordering::Relaxed);
    wait_until(DEADLINE, "the client keeps running queries", async || {
        done.load(Ordering::Relaxed) > seen + 10
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(DEADLINE, runner)
        .await
        .expect("the client stops")
        .expect("its task")
        .expect("no query failed across the reloads");
}

/// A config for `cluster` naming only the nodes in `names` (in that order),
/// user `postgres` as an admin, round-robin reads, `/metrics` served.
fn config_of(cluster: &TestCluster, names: &[&str]) -> String {
    let mut text = "listen = \"127.0.0.1:0\"\n".to_string();
    for name in names {
        text.push_str(&format!(
            "[[nodes]]\nname = \"{name}\"\nport = {}\n",
            cluster.port(name)
        ));
    }
    text.push_str(&format!(
        "[[users]]\nname = \"postgres\"\npassword = \"{TEST_PASSWORD}\"\nadmin = true\n\
         [policy]\nbalancing = \"round_robin\"\n[admin]\nmetrics_listen = \"127.0.0.1:0\"\n"
    ));
    text
}

/// Where the runners' reads went: by the reload phase they began in (the
/// test moves it on only after a `RELOAD` returned), the server ports that
/// answered and how often.
#[derive(Default)]
struct Reads {
    phase: AtomicU64,
    seen: Mutex<HashMap<(u64, u16), u64>>,
}

impl Reads {
    fn count(&self, phase: u64, port: u16) -> u64 {
        let seen = self.seen.lock().expect("not poisoned");
        seen.get(&(phase, port)).copied().unwrap_or(0)
    }

    fn total(&self, phase: u64) -> u64 {
        let seen = self.seen.lock().expect("not poisoned");
        seen.iter()
            .filter(|((seen_phase, _), _)| *seen_phase == phase)
            .map(|(_, count)| count)
            .sum()
    }
}

/// Clients reading `inet_server_port()` through the proxy until `stop`.
fn start_readers(
    dsn: &str,
    count: usize,
    reads: &Arc<Reads>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>> {
    (0..count)
        .map(|_| {
            let (dsn, reads, stop) = (dsn.to_string(), reads.clone(), stop.clone());
            tokio::spawn(async move {
                let (client, connection) =
                    tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                while !stop.load(Ordering::Relaxed) {
                    let phase = reads.phase.load(Ordering::Acquire);
                    let row = client.query_one("SELECT inet_server_port()", &[]).await?;
                    let port: i32 = row.get(0);
                    let mut seen = reads.seen.lock().expect("not poisoned");
                    *seen.entry((phase, port as u16)).or_default() += 1;
                }
                Ok(())
            })
        })
        .collect()
}

/// The port of the server that answers `client`'s next read.
async fn server_port(client: &tokio_postgres::Client) -> u16 {
    let row = client
        .query_one("SELECT inet_server_port()", &[])
        .await
        .expect("a read");
    row.get::<_, i32>(0) as u16
}

/// The nodes `/metrics` reports `pgrw_node_up` for.
async fn metrics_nodes(proxy: &ProxyHandle) -> Vec<String> {
    let address = proxy.metrics_addr().expect("a metrics listener");
    let (status, body) = http_get(address, "/metrics").await;
    assert_eq!(status, 200);
    let mut nodes: Vec<String> = samples(&body)
        .keys()
        .filter_map(|key| key.strip_prefix("pgrw_node_up{node=\""))
        .filter_map(|rest| rest.strip_suffix("\"}"))
        .map(str::to_string)
        .collect();
    nodes.sort();
    nodes
}

/// The names `SHOW NODES` lists.
async fn node_names(admin: &tokio_postgres::Client) -> Vec<String> {
    rows(admin, "SHOW NODES")
        .await
        .iter()
        .filter_map(|row| row.get("name").cloned().flatten())
        .collect()
}

#[tokio::test]
async fn a_reload_adds_a_replica_once_caught_up_and_removes_one_while_clients_run() {
    let cluster = TestCluster::start(2).await;
    let (replica1, replica2) = (cluster.port("replica1"), cluster.port("replica2"));
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("pgrw.toml");
    std::fs::write(&path, config_of(&cluster, &["primary", "replica1"])).expect("write");
    let proxy = proxy_cluster::proxy_from_file(&path).await;
    proxy_cluster::wait_for_replicas(&proxy).await;
    let port = proxy.local_addr().port();
    let dsn = format!("postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{port}/postgres");
    let admin = console(port).await.expect("an admin logs in");
    assert_eq!(node_names(&admin).await, ["primary", "replica1"]);

    let reads = Arc::new(Reads::default());
    let stop = Arc::new(AtomicBool::new(false));
    let readers = start_readers(&dsn, 3, &reads, &stop);
    wait_until(DEADLINE, "reads reach replica1", async || {
        reads.count(0, replica1) > 10
    })
    .await;

    // replica2 joins behind: its replay is paused past a write made through
    // the proxy, which every later read must see.
    cluster.pause_replay("replica2").await;
    let (writer, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("a writer");
    tokio::spawn(connection);
    writer
        .simple_query("CREATE TABLE joined_behind (id int)")
        .await
        .expect("a write");
    std::fs::write(
        &path,
        config_of(&cluster, &["primary", "replica1", "replica2"]),
    )
    .expect("write");
    admin.simple_query("RELOAD").await.expect("adding reloads");
    reads.phase.store(1, Ordering::Release);
    assert_eq!(
        node_names(&admin).await,
        ["primary", "replica1", "replica2"]
    );
    assert_eq!(
        metrics_nodes(&proxy).await,
        ["primary", "replica1", "replica2"]
    );
    // It is probed and shown, but gets no read while it has not replayed
    // the write: over many reads, none reaches it.
    let state = proxy.state();
    wait_until(DEADLINE, "the monitor probes replica2", async || {
        state
            .topology()
            .nodes
            .iter()
            .any(|node| &*node.name == "replica2" && node.is_up())
    })
    .await;
    let probed = reads.total(1);
    wait_until(DEADLINE, "reads go on while replica2 lags", async || {
        reads.total(1) > probed + 50
    })
    .await;
    assert_eq!(
        reads.count(1, replica2),
        0,
        "a read reached a replica behind"
    );

    cluster.resume_replay("replica2").await;
    wait_until(
        DEADLINE,
        "reads reach replica2 once caught up",
        async || reads.count(1, replica2) > 10,
    )
    .await;

    // A read-only transaction open on replica1 when it is removed.
    let (held, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("a client");
    tokio::spawn(connection);
    let mut on_replica1 = false;
    for _ in 0..50 {
        held.simple_query("BEGIN READ ONLY").await.expect("BEGIN");
        if server_port(&held).await == replica1 {
            on_replica1 = true;
            break;
        }
        held.simple_query("COMMIT").await.expect("COMMIT");
    }
    assert!(on_replica1, "no read-only transaction opened on replica1");

    // replica1 leaves: no read that began after the reload reaches it.
    std::fs::write(&path, config_of(&cluster, &["primary", "replica2"])).expect("write");
    admin
        .simple_query("RELOAD")
        .await
        .expect("removing reloads");
    reads.phase.store(2, Ordering::Release);
    assert_eq!(node_names(&admin).await, ["primary", "replica2"]);
    assert_eq!(metrics_nodes(&proxy).await, ["primary", "replica2"]);
    wait_until(DEADLINE, "reads go on after replica1 left", async || {
        reads.count(2, replica2) > 30
    })
    .await;
    assert_eq!(reads.count(2, replica1), 0, "a read reached a removed node");
    // The transaction on it finishes there; then the monitor lets it go.
    assert_eq!(server_port(&held).await, replica1);
    held.simple_query("COMMIT").await.expect("COMMIT");
    wait_until(DEADLINE, "replica1 is no longer probed", async || {
        state
            .topology()
            .nodes
            .iter()
            .any(|node| &*node.name == "replica1" && node.role == Role::Unknown)
    })
    .await;
    assert_ne!(server_port(&held).await, replica1);

    // A node whose CA file cannot be read is refused before anything changes.
    let replica1_table = format!("name = \"replica1\"\nport = {replica1}\n");
    let bad_ca = config_of(&cluster, &["primary", "replica2", "replica1"]).replace(
        &replica1_table,
        &format!(
            "{replica1_table}sslmode = \"verify-full\"\nsslrootcert = \"/nonexistent/ca.pem\"\n"
        ),
    );
    std::fs::write(&path, bad_ca).expect("write");
    let (_, message) = refused_reload(&admin).await;
    assert!(message.contains("nodes[2].sslrootcert"), "{message}");

    // The primary cannot be removed nor moved; the nodes in use stay.
    std::fs::write(&path, config_of(&cluster, &["replica2"])).expect("write");
    let (code, message) = refused_reload(&admin).await;
    assert_eq!(code, "F0000");
    assert!(
        message.contains("`nodes`") && message.contains("primary"),
        "{message}"
    );
    let moved = config_of(&cluster, &["primary", "replica2"]).replacen(
        &format!("port = {}", cluster.port("primary")),
        "port = 1",
        1,
    );
    std::fs::write(&path, moved).expect("write");
    let (_, message) = refused_reload(&admin).await;
    assert!(message.contains("`nodes[0].port`"), "{message}");
    assert_eq!(node_names(&admin).await, ["primary", "replica2"]);

    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        tokio::time::timeout(DEADLINE, reader)
            .await
            .expect("a reader stops")
            .expect("its task")
            .expect("no read failed across the reloads");
    }
}
