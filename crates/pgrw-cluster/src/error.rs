//! What can go wrong while running a local cluster, worded for the person at the keyboard.

use std::path::PathBuf;

/// A failure of a cluster operation. Each variant names what a user can act on:
/// the port, the node, the binary directory, or the server log to read.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A port the cluster needs is already bound by another process.
    #[error(
        "port {port} on 127.0.0.1 is already in use (needed by {node}); \
         stop whatever listens there or choose another base port with --port"
    )]
    PortInUse {
        /// The taken port.
        port: u16,
        /// The node that would have listened on it.
        node: String,
    },
    /// The requested cluster cannot exist (e.g. its ports run past 65535).
    #[error("{0}")]
    InvalidSpec(String),
    /// No usable PostgreSQL server binaries were found.
    #[error("{0}")]
    BinariesNotFound(String),
    /// No cluster state exists in the directory.
    #[error("no cluster in {}: run `pgrw cluster up --dir {}` first", .dir.display(), .dir.display())]
    NoCluster {
        /// The directory that was searched.
        dir: PathBuf,
    },
    /// The existing cluster was created with other settings than the ones asked for.
    #[error(
        "the cluster in {} was created with {existing}, not {requested}; \
         run `pgrw cluster down --purge --dir {}` first to recreate it",
        .dir.display(), .dir.display()
    )]
    SpecMismatch {
        /// The cluster directory.
        dir: PathBuf,
        /// What the state file records.
        existing: String,
        /// What the caller asked for.
        requested: String,
    },
    /// A node name that the cluster does not have.
    #[error("no node named {name:?} in this cluster (nodes: {known})")]
    UnknownNode {
        /// The name given.
        name: String,
        /// The node names that exist, comma separated.
        known: String,
    },
    /// The operation does not apply to the node in its current role or state.
    #[error("{node}: {reason}")]
    InvalidNodeState {
        /// The node.
        node: String,
        /// Why the operation cannot run.
        reason: String,
    },
    /// A PostgreSQL program (initdb, pg_ctl, pg_basebackup) failed.
    #[error("{node}: `{program}` failed: {detail}{}", log_hint(.log))]
    ServerCommand {
        /// The node being worked on.
        node: String,
        /// The program and its first argument, e.g. `pg_ctl start`.
        program: String,
        /// Its exit status and output.
        detail: String,
        /// The server log to read for more.
        log: Option<PathBuf>,
    },
    /// A SQL query against a node failed.
    #[error("{node} (port {port}): {action}: {}{}", with_causes(.source), log_hint(&Some(.log.clone())))]
    Sql {
        /// The node.
        node: String,
        /// Its port.
        port: u16,
        /// What pgrw was doing.
        action: String,
        /// The driver's error.
        source: tokio_postgres::Error,
        /// The node's server log.
        log: PathBuf,
    },
    /// A condition was not reached before its deadline.
    #[error("timed out after {seconds}s waiting until {what}{}", log_hint(.log))]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long pgrw waited.
        seconds: u64,
        /// The server log most likely to explain it.
        log: Option<PathBuf>,
    },
    /// Running as root, but the servers cannot run as the unprivileged user.
    #[error("{0}")]
    ServerUser(String),
    /// A filesystem or process operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What pgrw was doing, with the path.
        action: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state file could not be read or written.
    #[error("cluster state file {}: {detail}", .path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
}

impl ClusterError {
    /// Wraps an I/O error with a description of the action that failed.
    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        ClusterError::Io {
            action: action.into(),
            source,
        }
    }

    /// True when the failure is another process holding one of the cluster's
    /// ports, found either before starting or by a server failing to bind.
    pub fn is_port_conflict(&self) -> bool {
        match self {
            ClusterError::PortInUse { .. } => true,
            ClusterError::ServerCommand { detail, .. } => detail.contains("Address already in use"),
            _ => false,
        }
    }
}

/// The error's message followed by those of its causes: the driver's top-level
/// message ("db error", "error connecting to server") says little on its own.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    message
}

fn log_hint(log: &Option<PathBuf>) -> String {
    match log {
        Some(path) => format!(" (server log: {})", path.display()),
        None => String::new(),
    }
}

/// The result of a cluster operation.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;
