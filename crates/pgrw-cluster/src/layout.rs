//! Where a cluster keeps its things on disk, and the state file that records it.
//!
//! ```text
//! <dir>/cluster.json        ports, replica count, binaries, password (mode 0600)
//! <dir>/data/<node>/        one PostgreSQL data directory per node
//! <dir>/log/<node>.log      each node's server log (pg_ctl -l)
//! ```

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ClusterError, Result};

/// The name of the primary node; replicas are `replica1`, `replica2`, ….
pub const PRIMARY_NAME: &str = "primary";

/// What `up` decided once and every later command reads back.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The primary's port; replica `i` listens on `base_port + i`.
    pub base_port: u16,
    /// How many replicas were created.
    pub replicas: usize,
    /// The PostgreSQL binary directory the cluster was created with.
    pub pg_bin: PathBuf,
    /// The password of the `postgres` role.
    pub password: String,
}

impl std::fmt::Debug for ClusterState {
    /// Like the derived form, without the password (debug output ends up in logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterState")
            .field("base_port", &self.base_port)
            .field("replicas", &self.replicas)
            .field("pg_bin", &self.pg_bin)
            .finish_non_exhaustive()
    }
}

/// One node's fixed facts: name, port and where its files are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeLayout {
    /// `primary` or `replicaN`.
    pub name: String,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its server log.
    pub log_file: PathBuf,
}

impl NodeLayout {
    /// True for the node created as the primary (it may since have been demoted by events).
    pub fn is_original_primary(&self) -> bool {
        self.name == PRIMARY_NAME
    }

    /// The node's `postmaster.pid`, present while a server runs (or after a crash).
    pub fn pid_file(&self) -> PathBuf {
        self.data_dir.join("postmaster.pid")
    }
}

/// The paths of a cluster directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLayout {
    dir: PathBuf,
}

impl ClusterLayout {
    /// The layout rooted at `dir`, made absolute: the PostgreSQL programs run
    /// from another working directory than the caller's.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        ClusterLayout {
            dir: std::path::absolute(&dir).unwrap_or(dir),
        }
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("cluster.json")
    }

    /// The directory holding every node's data directory.
    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The directory holding the server logs.
    pub fn log_root(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// Every node of a cluster with `state`, primary first.
    pub fn nodes(&self, state: &ClusterState) -> Vec<NodeLayout> {
        (0..=state.replicas)
            .map(|index| {
                let name = if index == 0 {
                    PRIMARY_NAME.to_string()
                } else {
                    format!("replica{index}")
                };
                NodeLayout {
                    port: state.base_port + index as u16,
                    data_dir: self.data_root().join(&name),
                    log_file: self.log_root().join(format!("{name}.log")),
                    name,
                }
            })
            .collect()
    }

    /// Reads the state file; `None` when there is no cluster here.
    pub fn read_state(&self) -> Result<Option<ClusterState>> {
        let path = self.state_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(ClusterError::io(
                    format!("reading {}", path.display()),
                    error,
                ));
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| ClusterError::State {
                path,
                detail: error.to_string(),
            })
    }

    /// Writes the state file, readable by its owner only (it holds the password).
    pub fn write_state(&self, state: &ClusterState) -> Result<()> {
        let path = self.state_file();
        let fail = |error| ClusterError::io(format!("writing {}", path.display()), error);
        let json = serde_json::to_string_pretty(state).map_err(|error| ClusterError::State {
            path: path.clone(),
            detail: error.to_string(),
        })?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(fail)?;
        file.write_all(json.as_bytes()).map_err(fail)?;
        file.write_all(b"\n").map_err(fail)
    }
}
