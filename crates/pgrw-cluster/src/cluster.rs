//! An existing cluster: its nodes, status, shutdown and fault controls.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::binaries::PgBinaries;
use crate::connection::{self, connect, sql_error};
use crate::error::{ClusterError, Result};
use crate::layout::{ClusterLayout, ClusterState, NodeLayout};
use crate::process;
use crate::programs::PgPrograms;
use crate::server_user::ServerUser;
use crate::status::{self, ClusterStatus};

/// How long `up` waits for every replica to stream, and `promote` for the promotion.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `kill` waits for the orphaned backends of a crashed postmaster.
const CRASH_EXIT_TIMEOUT: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A cluster recorded in a directory, whether its servers run or not.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub(crate) layout: ClusterLayout,
    pub(crate) state: ClusterState,
    pub(crate) programs: PgPrograms,
}

impl Cluster {
    /// Opens the cluster recorded in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let layout = ClusterLayout::new(dir.as_ref());
        let state = layout
            .read_state()?
            .ok_or_else(|| ClusterError::NoCluster {
                dir: dir.as_ref().to_path_buf(),
            })?;
        Self::with_state(layout, state)
    }

    pub(crate) fn with_state(layout: ClusterLayout, state: ClusterState) -> Result<Self> {
        let binaries = PgBinaries::at(&state.pg_bin, "the cluster's state file")?;
        let programs = PgPrograms::new(binaries, ServerUser::detect()?, layout.dir());
        Ok(Cluster {
            layout,
            state,
            programs,
        })
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        self.layout.dir()
    }

    /// What the state file records.
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// Every node, primary first.
    pub fn nodes(&self) -> Vec<NodeLayout> {
        self.layout.nodes(&self.state)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<NodeLayout> {
        let nodes = self.nodes();
        nodes
            .iter()
            .find(|node| node.name == name)
            .cloned()
            .ok_or_else(|| ClusterError::UnknownNode {
                name: name.to_string(),
                known: nodes
                    .iter()
                    .map(|node| node.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// A libpq connection string for the node called `name`.
    pub fn dsn(&self, name: &str) -> Result<String> {
        Ok(connection::dsn(self.node(name)?.port, &self.state.password))
    }

    /// Connects to the node called `name` as `postgres`.
    pub async fn connect(&self, name: &str) -> Result<tokio_postgres::Client> {
        connect(&self.node(name)?, &self.state.password).await
    }

    /// Every node's status; nodes that are down are reported, not an error.
    pub async fn status(&self) -> ClusterStatus {
        status::collect(
            &self.nodes(),
            &self.state.password,
            self.dir().to_path_buf(),
        )
        .await
    }

    /// Stops every node (fast shutdown, replicas first); `purge` then deletes the directory.
    pub async fn down(&self, purge: bool) -> Result<()> {
        let mut first_error = None;
        for node in self.nodes().iter().rev() {
            if let Err(error) = self.stop_node(node).await {
                // A server that will not stop cleanly is stopped at once: `down` must not leave one behind.
                let stopped = stop_immediately(node).await;
                if !stopped {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        if purge {
            std::fs::remove_dir_all(self.dir()).map_err(|error| {
                ClusterError::io(format!("removing {}", self.dir().display()), error)
            })?;
        }
        Ok(())
    }

    /// Stops the node (fast shutdown); a node already stopped is left as it is.
    pub async fn stop(&self, name: &str) -> Result<()> {
        self.stop_node(&self.node(name)?).await
    }

    /// Starts the node and waits until it accepts connections; a running node is left as it is.
    pub async fn start(&self, name: &str) -> Result<()> {
        let node = self.node(name)?;
        if process::is_running(&node) {
            return Ok(());
        }
        crate::ports::ensure_free(std::slice::from_ref(&node))?;
        self.programs.start(&node).await
    }

    /// Kills the node's postmaster with SIGKILL, like a crash, and waits until the
    /// backends it orphaned have exited so that `start` works afterwards.
    pub async fn kill(&self, name: &str) -> Result<()> {
        let node = self.node(name)?;
        if !process::is_running(&node) {
            return Err(invalid(&node, "is not running"));
        }
        let crashed = node.clone();
        let gone =
            tokio::task::spawn_blocking(move || process::crash(&crashed, CRASH_EXIT_TIMEOUT))
                .await
                .unwrap_or(false);
        if gone {
            Ok(())
        } else {
            Err(ClusterError::Timeout {
                what: format!("the processes of {} exited after SIGKILL", node.name),
                seconds: CRASH_EXIT_TIMEOUT.as_secs(),
                log: Some(node.log_file),
            })
        }
    }

    /// Freezes the node: SIGSTOP to its postmaster and every child. Its
    /// connections stay open and its port accepts TCP connections (the
    /// kernel does that), but nothing answers: a hung node, as a stalled VM
    /// or a disk that stopped responding looks to its clients. [`Cluster::thaw`]
    /// undoes it; `stop`, `down` and `kill` work on a frozen node.
    pub async fn freeze(&self, name: &str) -> Result<()> {
        let node = self.node(name)?;
        if !process::freeze(&node) {
            return Err(invalid(&node, "is not running"));
        }
        Ok(())
    }

    /// Lets a frozen node run again (SIGCONT to every process of it).
    pub async fn thaw(&self, name: &str) -> Result<()> {
        let node = self.node(name)?;
        if !process::thaw(&node) {
            return Err(invalid(&node, "is not running"));
        }
        Ok(())
    }

    /// Pauses WAL replay on a replica: its lag grows while the primary takes writes.
    pub async fn pause_replay(&self, name: &str) -> Result<()> {
        self.on_replica(name, "SELECT pg_wal_replay_pause()", "pausing replay")
            .await
    }

    /// Resumes WAL replay on a replica.
    pub async fn resume_replay(&self, name: &str) -> Result<()> {
        self.on_replica(name, "SELECT pg_wal_replay_resume()", "resuming replay")
            .await
    }

    /// Promotes a replica to a primary and waits until it reports not-in-recovery.
    pub async fn promote(&self, name: &str) -> Result<()> {
        self.on_replica(name, "SELECT pg_promote(true, 60)", "promoting")
            .await?;
        let node = self.node(name)?;
        let client = connect(&node, &self.state.password).await?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let row = client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map_err(|source| sql_error(&node, "checking promotion", source))?;
            if !row.get::<_, bool>(0) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout {
                    what: format!("{name} left recovery after promotion"),
                    seconds: READY_TIMEOUT.as_secs(),
                    log: Some(node.log_file),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until every node in recovery streams from the primary, as seen in
    /// the primary's `pg_stat_replication` through the node's slot.
    pub async fn wait_until_streaming(&self, timeout: Duration) -> Result<()> {
        let nodes = self.nodes();
        let primary = &nodes[0];
        let mut replicas = Vec::new();
        for node in &nodes[1..] {
            let client = connect(node, &self.state.password).await?;
            let row = client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map_err(|source| sql_error(node, "checking role", source))?;
            if row.get::<_, bool>(0) {
                replicas.push(node.name.clone());
            }
        }
        let client = connect(primary, &self.state.password).await?;
        let deadline = Instant::now() + timeout;
        loop {
            let rows = client
                .query(
                    "SELECT s.slot_name::text FROM pg_replication_slots s \
                     JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE r.state = 'streaming'",
                    &[],
                )
                .await
                .map_err(|source| sql_error(primary, "reading pg_stat_replication", source))?;
            let streaming: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            let waiting: Vec<&String> = replicas
                .iter()
                .filter(|name| !streaming.contains(name))
                .collect();
            let Some(first_waiting) = waiting.first() else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                let log = self.node(first_waiting)?.log_file;
                return Err(ClusterError::Timeout {
                    what: format!(
                        "{first_waiting} streams from the primary (seen in pg_stat_replication)"
                    ),
                    seconds: timeout.as_secs(),
                    log: Some(log),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Starts every stopped node, then waits for the replicas to stream.
    pub(crate) async fn start_all(&self) -> Result<()> {
        let stopped: Vec<NodeLayout> = self
            .nodes()
            .into_iter()
            .filter(|node| !process::is_running(node))
            .collect();
        crate::ports::ensure_free(&stopped)?;
        for node in &stopped {
            self.programs.start(node).await?;
        }
        self.wait_until_streaming(READY_TIMEOUT).await
    }

    async fn stop_node(&self, node: &NodeLayout) -> Result<()> {
        if !process::is_running(node) {
            return Ok(());
        }
        // A frozen node cannot hear pg_ctl's signal: let it run first.
        process::thaw(node);
        self.programs.stop(node).await
    }

    async fn on_replica(&self, name: &str, sql: &str, action: &str) -> Result<()> {
        let node = self.node(name)?;
        let client = connect(&node, &self.state.password).await?;
        let row = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|source| sql_error(&node, "checking role", source))?;
        if !row.get::<_, bool>(0) {
            return Err(invalid(&node, "is not a replica (not in recovery)"));
        }
        client
            .execute(sql, &[])
            .await
            .map_err(|source| sql_error(&node, action, source))?;
        Ok(())
    }
}

fn invalid(node: &NodeLayout, reason: &str) -> ClusterError {
    ClusterError::InvalidNodeState {
        node: node.name.clone(),
        reason: reason.to_string(),
    }
}

/// Stops a node at once from a blocking thread; true when nothing of it remains.
pub(crate) async fn stop_immediately(node: &NodeLayout) -> bool {
    let node = node.clone();
    tokio::task::spawn_blocking(move || process::stop_immediately(&node, Duration::from_secs(10)))
        .await
        .unwrap_or(false)
}
