//! The proxy's memory after a burst of large queries: `pgrw proxy` runs as a
//! child process so that its resident set (`VmRSS` in /proc) can be read,
//! and it must come back near where it was before the burst while every
//! client that sent one stays connected and idle.

#[path = "support/pgrw_process.rs"]
mod pgrw_process;

use std::time::{Duration, Instant};

use pgrw_cluster::testing::TestCluster;
use pgrw_process::{Pgrw, connect, proxy_config};

const DEADLINE: Duration = Duration::from_secs(30);

/// How many clients send a large query at once, and its size.
const CLIENTS: usize = 8;
const QUERY_BYTES: usize = 20 << 20;

/// How far above its baseline the proxy may stay once the burst is over:
/// far below what the clients sent (`CLIENTS × QUERY_BYTES`, 160 MiB).
const SLACK_BYTES: u64 = 40 << 20;

/// The resident set of process `pid`, in bytes.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_returns_near_its_baseline_after_a_burst_of_large_queries() {
    let cluster = TestCluster::start(0).await;
    // A debug build reads and classifies 160 MiB of SQL on one thread:
    // backends may wait for it well past the default timeouts.
    let slow = "[pool]\nconnect_timeout_ms = 120000\ncheckout_timeout_ms = 120000\n";
    let (dir, config, port) = proxy_config(&cluster, slow);
    let proxy = Pgrw::spawn(&["proxy", "--config", config.to_str().expect("UTF-8 path")]);
    proxy
        .stdout
        .wait_for_line(DEADLINE, "pgrw proxy listening on");
    let pid = proxy.child.id();

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let client = connect(port).await;
        client
            .simple_query("SELECT 1")
            .await
            .expect("a small query");
        clients.push(client);
    }
    let baseline = resident_bytes(pid);

    let sql = std::sync::Arc::new(format!("SELECT length('{}')", "x".repeat(QUERY_BYTES)));
    let mut burst = tokio::task::JoinSet::new();
    for client in clients {
        let sql = sql.clone();
        burst.spawn(async move {
            client
                .simple_query(&sql)
                .await
                .expect("a large query under max_message_bytes runs");
            client
        });
    }
    let clients = burst.join_all().await;
    let peak = resident_bytes(pid);

    // The clients stay connected and idle; what they sent must be given back.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = resident_bytes(pid);
        if now <= baseline + SLACK_BYTES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pgrw proxy holds {} MiB, {} MiB over its baseline of {} MiB (peak {} MiB), \
             {} s after the burst",
            now >> 20,
            (now - baseline) >> 20,
            baseline >> 20,
            peak >> 20,
            DEADLINE.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(clients);
    drop(proxy);
    drop(dir);
}
