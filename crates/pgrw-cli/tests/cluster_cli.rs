//! The `pgrw cluster` command as a user runs it: the built binary, real servers.

#[path = "support/temp_cluster.rs"]
mod temp_cluster;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pgrw_cluster::testing::free_port_range;
use temp_cluster::temp_cluster_dir;

fn pgrw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgrw"))
        .args(args)
        .output()
        .expect("run pgrw")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Stops and deletes the cluster even when the test fails halfway.
struct Teardown(PathBuf);

impl Drop for Teardown {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = pgrw(&[
                "cluster",
                "down",
                "--purge",
                "--dir",
                &self.0.to_string_lossy(),
            ]);
        }
    }
}

fn path_arg(dir: &Path) -> String {
    dir.to_string_lossy().into_owned()
}

#[test]
fn cluster_up_then_status_json_then_down_purge() {
    let (_parent, dir) = temp_cluster_dir();
    let _teardown = Teardown(dir.clone());
    let port = free_port_range(2).to_string();

    let up = pgrw(&[
        "cluster",
        "up",
        "--dir",
        &path_arg(&dir),
        "--port",
        &port,
        "--replicas",
        "1",
    ]);
    assert!(up.status.success(), "up failed: {}", stderr(&up));
    assert!(stdout(&up).contains("streaming"), "{}", stdout(&up));

    let status = pgrw(&["cluster", "status", "--dir", &path_arg(&dir), "--json"]);
    assert!(
        status.status.success(),
        "status failed: {}",
        stderr(&status)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("status --json is JSON");
    assert_eq!(json["nodes"][0]["name"], "primary");
    assert_eq!(json["nodes"][0]["role"], "primary");
    assert_eq!(json["nodes"][1]["name"], "replica1");
    assert_eq!(json["nodes"][1]["replication"], "streaming");
    assert!(json["nodes"][1]["lag_bytes"].is_u64(), "{json}");

    let down = pgrw(&["cluster", "down", "--dir", &path_arg(&dir), "--purge"]);
    assert!(down.status.success(), "down failed: {}", stderr(&down));
    assert!(!dir.exists(), "down --purge left {}", dir.display());
}

#[test]
fn a_wrong_pgrw_pg_bin_fails_with_one_line_saying_how_to_install() {
    let (_parent, dir) = temp_cluster_dir();
    let empty_bin = tempfile::tempdir().expect("temp dir");
    let port = free_port_range(3).to_string();

    let up = Command::new(env!("CARGO_BIN_EXE_pgrw"))
        .args(["cluster", "up", "--dir", &path_arg(&dir), "--port", &port])
        .env("PGRW_PG_BIN", empty_bin.path())
        .output()
        .expect("run pgrw");

    assert!(!up.status.success());
    let message = stderr(&up);
    assert!(message.starts_with("pgrw: error: "), "{message}");
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(
        message.contains("PGRW_PG_BIN") && message.contains("apt-get install postgresql"),
        "{message}"
    );
    assert!(!dir.exists());
}

#[test]
fn status_without_a_cluster_says_how_to_create_one() {
    let (_parent, dir) = temp_cluster_dir();

    let status = pgrw(&["cluster", "status", "--dir", &path_arg(&dir)]);

    assert!(!status.status.success());
    assert!(
        stderr(&status).contains("run `pgrw cluster up --dir"),
        "{}",
        stderr(&status)
    );
}

/// The state letter of process `pid` in /proc (`T`: stopped by a signal).
fn process_state(pid: &str) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    let (_, rest) = stat.rsplit_once(')').expect("a stat line");
    rest.split_whitespace()
        .next()
        .expect("a state letter")
        .to_string()
}

#[test]
fn freeze_stops_every_process_of_a_node_and_thaw_resumes_them() {
    let (_parent, dir) = temp_cluster_dir();
    let _teardown = Teardown(dir.clone());
    let port = free_port_range(1).to_string();
    let up = pgrw(&[
        "cluster",
        "up",
        "--dir",
        &path_arg(&dir),
        "--port",
        &port,
        "--replicas",
        "0",
    ]);
    assert!(up.status.success(), "up failed: {}", stderr(&up));
    let pid_file = dir.join("data/primary/postmaster.pid");
    let pid = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
    let pid = pid.lines().next().expect("a pid line").trim().to_string();

    let freeze = pgrw(&["cluster", "freeze", "primary", "--dir", &path_arg(&dir)]);
    assert!(
        freeze.status.success(),
        "freeze failed: {}",
        stderr(&freeze)
    );
    assert!(stdout(&freeze).contains("frozen"), "{}", stdout(&freeze));
    assert_eq!(
        process_state(&pid),
        "T",
        "the frozen postmaster is not stopped"
    );

    let thaw = pgrw(&["cluster", "thaw", "primary", "--dir", &path_arg(&dir)]);
    assert!(thaw.status.success(), "thaw failed: {}", stderr(&thaw));
    assert_ne!(
        process_state(&pid),
        "T",
        "the thawed postmaster is still stopped"
    );
}
