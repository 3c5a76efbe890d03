//! The state of every node, as the servers themselves report it.

use std::collections::HashMap;
use std::path::PathBuf;

use pgrw_core::Lsn;
use serde::{Serialize, Serializer};
use tokio_postgres::Client;

use crate::connection::connect;
use crate::layout::NodeLayout;
use crate::process;

/// Whether a node currently accepts writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Not in recovery: accepts writes.
    Primary,
    /// In recovery (hot standby): read-only, replaying WAL.
    Replica,
}

/// One node's status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    /// `primary`, `replica1`, ….
    pub name: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// True when the postmaster process exists.
    pub running: bool,
    /// True when it accepted a connection and answered.
    pub up: bool,
    /// From `pg_is_in_recovery()`; `None` when down.
    pub role: Option<Role>,
    /// `pg_current_wal_lsn()` of a primary.
    #[serde(serialize_with = "as_text")]
    pub current_lsn: Option<Lsn>,
    /// `pg_last_wal_receive_lsn()` of a replica.
    #[serde(serialize_with = "as_text")]
    pub receive_lsn: Option<Lsn>,
    /// `pg_last_wal_replay_lsn()` of a replica.
    #[serde(serialize_with = "as_text")]
    pub replay_lsn: Option<Lsn>,
    /// WAL bytes the replica has yet to replay to reach the primary's current LSN.
    pub lag_bytes: Option<u64>,
    /// Seconds since the last replayed transaction while replay trails what was
    /// received; 0 when replay has caught up.
    pub lag_seconds: Option<f64>,
    /// Whether WAL replay is paused (`pg_is_wal_replay_paused()`).
    pub replay_paused: Option<bool>,
    /// The primary's view of this node's replication (`pg_stat_replication.state`
    /// of the walsender using its slot, e.g. `streaming`).
    pub replication: Option<String>,
    /// Why the node is down or could not be queried.
    pub error: Option<String>,
    /// The node's server log.
    pub log_file: PathBuf,
}

/// Every node's status, primary first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterStatus {
    /// The cluster directory.
    pub dir: PathBuf,
    /// One entry per node.
    pub nodes: Vec<NodeStatus>,
}

impl ClusterStatus {
    /// The status of the node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeStatus> {
        self.nodes.iter().find(|node| node.name == name)
    }
}

/// Queries every node; the first node not in recovery is the reference for lag.
pub(crate) async fn collect(nodes: &[NodeLayout], password: &str, dir: PathBuf) -> ClusterStatus {
    let mut clients = Vec::with_capacity(nodes.len());
    for node in nodes {
        clients.push(
            connect(node, password)
                .await
                .map_err(|error| error.to_string()),
        );
    }
    let mut reference_lsn: Option<Lsn> = None;
    let mut replication: HashMap<String, Option<String>> = HashMap::new();
    for client in clients.iter().flatten() {
        if let Ok(Some(primary)) = primary_view(client).await {
            reference_lsn = Some(primary.0);
            replication = primary.1;
            break;
        }
    }
    let mut statuses = Vec::with_capacity(nodes.len());
    for (node, client) in nodes.iter().zip(&clients) {
        let mut status = NodeStatus {
            name: node.name.clone(),
            port: node.port,
            running: process::is_running(node),
            up: false,
            role: None,
            current_lsn: None,
            receive_lsn: None,
            replay_lsn: None,
            lag_bytes: None,
            lag_seconds: None,
            replay_paused: None,
            replication: replication.get(&node.name).cloned().flatten(),
            error: None,
            log_file: node.log_file.clone(),
        };
        match client {
            Err(error) => status.error = Some(error.clone()),
            Ok(client) => match fill(&mut status, client, reference_lsn).await {
                Ok(()) => status.up = true,
                Err(error) => status.error = Some(error.to_string()),
            },
        }
        statuses.push(status);
    }
    ClusterStatus {
        dir,
        nodes: statuses,
    }
}

/// The current LSN of a node that is not in recovery and the state of the
/// walsender of each replication slot; `None` for a node in recovery.
async fn primary_view(
    client: &Client,
) -> Result<Option<(Lsn, HashMap<String, Option<String>>)>, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END",
            &[],
        )
        .await?;
    let Some(lsn) = lsn_column(&row, 0) else {
        return Ok(None);
    };
    let rows = client
        .query(
            "SELECT s.slot_name::text, r.state::text FROM pg_replication_slots s \
             LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid",
            &[],
        )
        .await?;
    let states = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    Ok(Some((lsn, states)))
}

const NODE_QUERY: &str = "\
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0::float8
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END";

async fn fill(
    status: &mut NodeStatus,
    client: &Client,
    reference_lsn: Option<Lsn>,
) -> Result<(), tokio_postgres::Error> {
    let row = client.query_one(NODE_QUERY, &[]).await?;
    let in_recovery: bool = row.get(0);
    status.role = Some(if in_recovery {
        Role::Replica
    } else {
        Role::Primary
    });
    status.current_lsn = lsn_column(&row, 1);
    status.receive_lsn = lsn_column(&row, 2);
    status.replay_lsn = lsn_column(&row, 3);
    status.replay_paused = row.get(4);
    // Against the primary's position read a moment earlier: a replica that has
    // replayed further since then has no lag, not a negative one.
    status.lag_bytes = match (reference_lsn, status.replay_lsn) {
        (Some(primary), Some(replayed)) if in_recovery => Some(primary.bytes_since(replayed)),
        _ => None,
    };
    status.lag_seconds = row.get::<_, Option<f64>>(5).map(|seconds| seconds.max(0.0));
    Ok(())
}

/// Reads a `pg_lsn` column that the query cast to text.
fn lsn_column(row: &tokio_postgres::Row, index: usize) -> Option<Lsn> {
    row.get::<_, Option<String>>(index)?.parse().ok()
}

/// LSNs appear in JSON as PostgreSQL prints them (`0/16B3748`).
fn as_text<S: Serializer>(lsn: &Option<Lsn>, serializer: S) -> Result<S::Ok, S::Error> {
    match lsn {
        Some(lsn) => serializer.collect_str(lsn),
        None => serializer.serialize_none(),
    }
}
