//! Live reload (`RELOAD`, as SIGHUP): a changed `pgrw.toml` applies while a
//! client keeps running queries; an invalid one is refused with the reason
//! and the old configuration stays.

#[path = "support/admin_console.rs"]
mod admin_console;
#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use admin_console::{cell, console, rows};
use pgrw_cluster::testing::{TEST_PASSWORD, TestCluster, wait_until};

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
    // So is one that moves a node, which needs a restart.
    let moved = config_text(&cluster, "admin = true", "")
        .replace("name = \"replica1\"", "name = \"renamed\"");
    std::fs::write(&path, moved).expect("write");
    let (_, message) = refused_reload(&admin).await;
    assert!(message.contains("nodes[1].name"), "{message}");
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
