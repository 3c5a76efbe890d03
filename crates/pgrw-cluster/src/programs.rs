//! Running PostgreSQL's own programs (initdb, pg_ctl, pg_basebackup) for a node.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;

use crate::binaries::PgBinaries;
use crate::error::{ClusterError, Result};
use crate::layout::NodeLayout;
use crate::server_user::ServerUser;

/// Seconds pg_ctl waits for a server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// PostgreSQL programs, run as the server user from inside the cluster directory.
#[derive(Debug, Clone)]
pub struct PgPrograms {
    binaries: PgBinaries,
    user: ServerUser,
    work_dir: std::path::PathBuf,
}

impl PgPrograms {
    /// Programs from `binaries`, run as `user` with `work_dir` as current directory
    /// (the caller's may be unreadable by the server user).
    pub fn new(binaries: PgBinaries, user: ServerUser, work_dir: &Path) -> Self {
        PgPrograms {
            binaries,
            user,
            work_dir: work_dir.to_path_buf(),
        }
    }

    /// The identity the programs run as.
    pub fn user(&self) -> &ServerUser {
        &self.user
    }

    /// Creates the node's data directory with superuser `postgres`, whose
    /// password is read from `password_file`, and scram-sha-256 for TCP logins.
    pub async fn initdb(&self, node: &NodeLayout, password_file: &Path) -> Result<()> {
        let mut args = os_args(&[
            "-U",
            "postgres",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
        ]);
        // --no-sync: like the servers' fsync=off, durability is not wanted here.
        args.extend(os_args(&[
            "--encoding=UTF8",
            "--no-instructions",
            "--no-sync",
            "-D",
        ]));
        args.push(node.data_dir.clone().into());
        args.push("--pwfile".into());
        args.push(password_file.into());
        self.run(node, "initdb", &args, &[], None).await
    }

    /// Copies the primary into the node's data directory as a standby that streams
    /// from `primary` through the replication slot named after the node.
    pub async fn basebackup(
        &self,
        node: &NodeLayout,
        primary: &NodeLayout,
        password: &str,
    ) -> Result<()> {
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres application_name={}",
            primary.port, node.name
        );
        let mut args = os_args(&[
            "-d",
            &conninfo,
            "-R",
            "-S",
            &node.name,
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
            "-w",
            "-D",
        ]);
        args.push(node.data_dir.clone().into());
        // Its failures are reported by the primary, which serves the backup.
        let primary_log = Some(primary.log_file.as_path());
        self.run(
            node,
            "pg_basebackup",
            &args,
            &[("PGPASSWORD", password)],
            primary_log,
        )
        .await
    }

    /// Starts the node's server and waits until it accepts connections.
    pub async fn start(&self, node: &NodeLayout) -> Result<()> {
        let mut args = os_args(&["start", "-w", "-t", PG_CTL_TIMEOUT_SECS, "-D"]);
        args.push(node.data_dir.clone().into());
        args.push("-l".into());
        args.push(node.log_file.clone().into());
        self.run(node, "pg_ctl", &args, &[], Some(&node.log_file))
            .await
    }

    /// Stops the node's server with PostgreSQL's "fast" shutdown and waits.
    pub async fn stop(&self, node: &NodeLayout) -> Result<()> {
        let mut args = os_args(&["stop", "-w", "-t", PG_CTL_TIMEOUT_SECS, "-m", "fast", "-D"]);
        args.push(node.data_dir.clone().into());
        self.run(node, "pg_ctl", &args, &[], Some(&node.log_file))
            .await
    }

    async fn run(
        &self,
        node: &NodeLayout,
        program: &str,
        args: &[OsString],
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Result<()> {
        let mut command = tokio::process::Command::new(self.binaries.program(program));
        command
            .args(args)
            .envs(env.iter().copied())
            .env_remove("PGDATA")
            .current_dir(&self.work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        self.user.apply(&mut command);
        let name = match args.first().and_then(|arg| arg.to_str()) {
            Some(subcommand) if program == "pg_ctl" => format!("pg_ctl {subcommand}"),
            _ => program.to_string(),
        };
        let output = command
            .output()
            .await
            .map_err(|error| ClusterError::io(format!("{}: running {name}", node.name), error))?;
        if output.status.success() {
            return Ok(());
        }
        // The programs explain failures on stderr; stdout is progress chatter.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let explanation = if stderr.trim().is_empty() {
            stdout.trim()
        } else {
            stderr.trim()
        };
        let mut detail = output.status.to_string();
        if !explanation.is_empty() {
            detail.push_str(": ");
            detail.push_str(explanation);
        }
        if let Some(log) = log
            && let Some(tail) = log_tail(log, 8)
        {
            detail.push_str("\nlast lines of the server log:\n");
            detail.push_str(&tail);
        }
        Err(ClusterError::ServerCommand {
            node: node.name.clone(),
            program: name,
            detail,
            log: log.map(Path::to_path_buf),
        })
    }
}

fn os_args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// The last `lines` lines of a log file, if it can be read.
pub fn log_tail(path: &Path, lines: usize) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    (!tail.is_empty()).then_some(tail)
}
