//! `pgrw up` as a user runs it, its output piped: the connection string, a
//! status block per node whose routed counts follow real queries, and a clean
//! stop of proxy and cluster on SIGINT.

#[path = "support/pgrw_process.rs"]
mod pgrw_process;
#[path = "support/temp_cluster.rs"]
mod temp_cluster;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgrw_cluster::testing::free_port_range;
use pgrw_process::{Pgrw, postgres_processes_in};
use temp_cluster::temp_cluster_dir;

const PASSWORD: &str = "up-status-test";
/// initdb and two base backups on a busy 2-core machine.
const STARTUP_DEADLINE: Duration = Duration::from_secs(180);
const DEADLINE: Duration = Duration::from_secs(30);

/// One node's line of a status block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeLine {
    name: String,
    role: String,
    health: String,
    routed: u64,
}

/// `pgrw up` running with stdout piped, its lines collected as they come.
struct Up {
    child: Child,
    dir: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Up {
    fn start(dir: &Path, cluster_port: u16, proxy_port: u16) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pgrw"))
            .args(["up", "--dir"])
            .arg(dir)
            .args(["--cluster-port", &cluster_port.to_string()])
            .args(["--port", &proxy_port.to_string()])
            .args(["--replicas", "2", "--password", PASSWORD])
            .args(["--status-refresh-ms", "100"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run pgrw up");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push(line);
            }
        });
        Up {
            child,
            dir: dir.to_path_buf(),
            lines,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// Polls the output until `found` returns something, or panics at `deadline`.
    fn wait_for<T>(
        &mut self,
        deadline: Duration,
        what: &str,
        found: impl Fn(&[String]) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(value) = found(&self.lines()) {
                return value;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "pgrw up exited ({status}) before {what}:\n{}",
                    self.lines().join("\n")
                );
            }
            assert!(
                start.elapsed() < deadline,
                "no {what} within {deadline:?}; output so far:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    /// On a failed test: kill `pgrw up` and the cluster it left behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if self.dir.exists() {
            let _ = Command::new(env!("CARGO_BIN_EXE_pgrw"))
                .args(["cluster", "down", "--purge", "--dir"])
                .arg(&self.dir)
                .output();
        }
    }
}

/// Every complete status block in `lines` (a header, then one line per node).
fn status_blocks(lines: &[String], nodes: usize) -> Vec<Vec<NodeLine>> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.starts_with("nodes (") && line.contains("client connection"))
        .filter_map(|(at, _)| {
            let block: Vec<NodeLine> = lines
                .get(at + 1..at + 1 + nodes)?
                .iter()
                .map(|line| node_line(line))
                .collect::<Option<_>>()?;
            Some(block)
        })
        .collect()
}

/// `  replica1  127.0.0.1:5433  replica  up  lag 0 B, 0 ms  routed 4  1.0/s`.
fn node_line(line: &str) -> Option<NodeLine> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let routed_at = words.iter().position(|word| *word == "routed")?;
    Some(NodeLine {
        name: words.first()?.to_string(),
        role: words.get(2)?.to_string(),
        health: words.get(3)?.to_string(),
        routed: words.get(routed_at + 1)?.parse().ok()?,
    })
}

fn routed_to_replicas(block: &[NodeLine]) -> u64 {
    block
        .iter()
        .filter(|node| node.role == "replica")
        .map(|node| node.routed)
        .sum()
}

fn run_reads_through_proxy(proxy_port: u16, count: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{proxy_port}/postgres");
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect through the proxy");
        let connection = tokio::spawn(connection);
        for _ in 0..count {
            client
                .simple_query("SELECT 1")
                .await
                .expect("SELECT 1 through the proxy");
        }
        drop(client);
        let _ = connection.await;
    });
}

#[test]
fn up_shows_live_node_status_counts_routed_reads_and_stops_cleanly_on_sigint() {
    let (_parent, dir) = temp_cluster_dir();
    let base = free_port_range(4);
    let (cluster_port, proxy_port) = (base, base + 3);
    let mut up = Up::start(&dir, cluster_port, proxy_port);

    let connect = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{proxy_port}/postgres");
    up.wait_for(STARTUP_DEADLINE, "connection string", |lines| {
        lines
            .iter()
            .any(|line| line.contains(&connect))
            .then_some(())
    });
    let (seen_lines, first) = up.wait_for(DEADLINE, "status block with every node up", |lines| {
        let block = status_blocks(lines, 3).pop()?;
        let roles: Vec<&str> = block.iter().map(|node| node.role.as_str()).collect();
        let all_up = block.iter().all(|node| node.health == "up");
        (roles == ["primary", "replica", "replica"] && all_up).then_some((lines.len(), block))
    });
    let names: Vec<&str> = first.iter().map(|node| node.name.as_str()).collect();
    assert_eq!(names, ["primary", "replica1", "replica2"]);

    run_reads_through_proxy(proxy_port, 10);

    let later = up.wait_for(DEADLINE, "a later block counting the reads", |lines| {
        status_blocks(&lines[seen_lines..], 3)
            .into_iter()
            .find(|block| routed_to_replicas(block) >= routed_to_replicas(&first) + 10)
    });
    assert!(
        later
            .iter()
            .zip(&first)
            .any(|(now, before)| now.role == "replica" && now.routed > before.routed),
        "before: {first:?}\nafter: {later:?}"
    );
    assert!(
        !postgres_processes_in(&dir).is_empty(),
        "the cluster's servers should be running before SIGINT"
    );

    let interrupted = Command::new("kill")
        .args(["-INT", &up.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(interrupted.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = up.child.try_wait().expect("wait for pgrw up") {
            break status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "pgrw up still running {DEADLINE:?} after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "pgrw up exited with {status}");
    // The reader thread may still be catching up with the last lines.
    let start = Instant::now();
    while !up.lines().iter().any(|line| line == "pgrw proxy stopped") {
        assert!(
            start.elapsed() < DEADLINE,
            "no stop message; output:\n{}",
            up.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up.lines().iter().any(|line| line == "cluster stopped"));
    assert_eq!(postgres_processes_in(&dir), Vec::<String>::new());
}

#[test]
fn up_that_cannot_listen_stops_the_cluster_it_started_and_names_the_flag() {
    let (_parent, dir) = temp_cluster_dir();
    let base = free_port_range(3);
    let taken = std::net::TcpListener::bind(("127.0.0.1", base + 2)).expect("take a port");
    let proxy_port = taken.local_addr().expect("its address").port();
    // Declared first, dropped last: on a failed test, after `pgrw up` is killed.
    let _cleanup = ClusterDown(dir.clone());

    let mut up = Pgrw::spawn(&[
        "up",
        "--dir",
        dir.to_str().expect("UTF-8 path"),
        "--cluster-port",
        &base.to_string(),
        "--port",
        &proxy_port.to_string(),
        "--replicas",
        "1",
        "--password",
        PASSWORD,
    ]);
    let status = up.wait_for_exit(STARTUP_DEADLINE, "starting on a taken port");

    assert!(!status.success(), "pgrw up exited with {status}");
    up.stderr.wait_for_line_containing(DEADLINE, "pgrw: error:");
    let error = up.stderr.all().join("\n");
    assert!(
        error.contains(&format!("127.0.0.1:{proxy_port}")),
        "{error}"
    );
    assert!(error.contains("--port"), "{error}");
    assert!(error.contains("cluster it started is stopped"), "{error}");
    assert_eq!(postgres_processes_in(&dir), Vec::<String>::new());
    assert!(
        dir.join("data/primary").is_dir(),
        "the cluster was never started"
    );
    for node in ["primary", "replica1"] {
        let pid_file = dir.join("data").join(node).join("postmaster.pid");
        assert!(!pid_file.exists(), "{} is left", pid_file.display());
    }
}

/// Stops and removes the cluster in a directory when dropped (a failed test).
struct ClusterDown(PathBuf);

impl Drop for ClusterDown {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = Command::new(env!("CARGO_BIN_EXE_pgrw"))
                .args(["cluster", "down", "--purge", "--dir"])
                .arg(&self.0)
                .output();
        }
    }
}
