//! The `pgrw` binary run as a child process, its stdout and stderr lines
//! collected as they come; waits poll them until a deadline.
#![allow(dead_code)] // Each test binary uses a part.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines read from one stream of a child, by a thread of their own.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// Collects the lines of `stream` until it closes.
    pub fn read(stream: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                sink.0.lock().expect("lines").push(line);
            }
        });
        lines
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().expect("lines").clone()
    }

    /// Polls until `found` returns something, or panics at `deadline` naming `what`.
    pub fn wait_for<T>(
        &self,
        deadline: Duration,
        what: &str,
        found: impl Fn(&[String]) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            let lines = self.all();
            if let Some(value) = found(&lines) {
                return value;
            }
            assert!(
                start.elapsed() < deadline,
                "no {what} within {deadline:?}; output:\n{}",
                lines.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until a line contains `wanted`.
    pub fn wait_for_line_containing(&self, deadline: Duration, wanted: &str) {
        self.wait_for(deadline, &format!("line with {wanted:?}"), |lines| {
            lines.iter().any(|line| line.contains(wanted)).then_some(())
        })
    }

    /// Polls until a line starts with `wanted`.
    pub fn wait_for_line(&self, deadline: Duration, wanted: &str) {
        self.wait_for(deadline, &format!("line {wanted:?}"), |lines| {
            lines
                .iter()
                .any(|line| line.starts_with(wanted))
                .then_some(())
        })
    }
}

/// A running `pgrw`, its stdout and stderr piped and read.
pub struct Pgrw {
    pub child: Child,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Pgrw {
    /// Starts `pgrw ARGS…`.
    pub fn spawn(args: &[&str]) -> Pgrw {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pgrw"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pgrw");
        let stdout = Lines::read(child.stdout.take().expect("piped stdout"));
        let stderr = Lines::read(child.stderr.take().expect("piped stderr"));
        Pgrw {
            child,
            stdout,
            stderr,
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGHUP (reload the configuration).
    pub fn hangup(&self) {
        self.signal("-HUP");
    }

    fn signal(&self, flag: &str) {
        let sent = Command::new("kill")
            .args([flag, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
    }

    /// Waits for the exit, or kills it and panics at `deadline`.
    pub fn wait_for_exit(&mut self, deadline: Duration, what: &str) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for pgrw") {
                return status;
            }
            if start.elapsed() > deadline {
                let _ = self.child.kill();
                panic!(
                    "pgrw still running {deadline:?} after {what}; stderr:\n{}",
                    self.stderr.all().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pgrw {
    /// A failed test leaves no `pgrw` running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Processes whose command line names `dir` and runs `postgres`.
pub fn postgres_processes_in(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|command| command.contains("postgres") && command.contains(&dir))
        .collect()
}

/// A client logged in as `postgres` through the proxy on `port`.
pub async fn connect(port: u16) -> tokio_postgres::Client {
    let password = pgrw_cluster::testing::TEST_PASSWORD;
    let dsn = format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres");
    let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("a client logs in through the proxy");
    tokio::spawn(connection);
    client
}

/// A `pgrw.toml` for a proxy on a free port in front of every node of
/// `cluster`, with `top_level` keys; its directory (keep it alive), path and port.
pub fn proxy_config(
    cluster: &pgrw_cluster::testing::TestCluster,
    top_level: &str,
) -> (tempfile::TempDir, std::path::PathBuf, u16) {
    let port = pgrw_cluster::testing::free_port_range(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("pgrw.toml");
    let mut text = format!("listen = \"127.0.0.1:{port}\"\n{top_level}\n");
    for node in cluster.nodes() {
        text.push_str(&format!(
            "[[nodes]]\nname = \"{}\"\nport = {}\n",
            node.name, node.port
        ));
    }
    text.push_str(&format!(
        "[[users]]\nname = \"postgres\"\npassword = \"{}\"\n",
        pgrw_cluster::testing::TEST_PASSWORD
    ));
    std::fs::write(&config, text).expect("write the config");
    (dir, config, port)
}
