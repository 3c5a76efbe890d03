//! The probe: one connection per node and one cheap query that says what the
//! node is (`pg_is_in_recovery()`) and where its WAL stands.

use std::time::Duration;

use pgrw_core::Lsn;
use pgrw_core::route::Role;
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::address::NodeAddress;

/// Role, WAL positions and replay age in one round trip. `pg_current_wal_lsn()`
/// fails during recovery, so it is only called on a primary; the receive and
/// replay functions return NULL there.
const PROBE_SQL: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END, \
     pg_last_wal_receive_lsn()::text, \
     pg_last_wal_replay_lsn()::text, \
     (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::bigint";

/// What one successful probe read from a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Not in recovery.
    Primary {
        /// `pg_current_wal_lsn()`.
        current_lsn: Lsn,
    },
    /// In recovery (a streaming standby).
    Replica {
        /// `pg_last_wal_replay_lsn()`.
        replay_lsn: Lsn,
        /// Milliseconds since the last replayed transaction committed, or 0
        /// when the replica has replayed all it has received.
        replay_age_ms: Option<u64>,
    },
}

impl Reading {
    /// The role the reading shows.
    pub(crate) fn role(&self) -> Role {
        match self {
            Reading::Primary { .. } => Role::Primary,
            Reading::Replica { .. } => Role::Replica,
        }
    }

    /// The position the node has applied: a primary's current LSN, a replica's replay LSN.
    pub(crate) fn applied_lsn(&self) -> Lsn {
        match *self {
            Reading::Primary { current_lsn } => current_lsn,
            Reading::Replica { replay_lsn, .. } => replay_lsn,
        }
    }
}

/// Why a probe did not produce a [`Reading`].
#[derive(Debug)]
pub(crate) enum ProbeError {
    /// No connection (refused, timed out, authentication failed).
    Connect(String),
    /// Connected, but the query failed or timed out.
    Query(String),
}

/// A monitor connection to one node, with the probe prepared on it.
pub(crate) struct ProbeConnection {
    client: Client,
    statement: Statement,
}

impl ProbeConnection {
    /// Connects to `address` and prepares the probe, all within `timeout`.
    pub(crate) async fn open(
        address: &NodeAddress,
        timeout: Duration,
    ) -> Result<ProbeConnection, ProbeError> {
        let mut config = address.connect_config();
        config.connect_timeout(timeout);
        let opened = tokio::time::timeout(timeout, async {
            let (client, connection) = config.connect(NoTls).await?;
            // Runs until the client is dropped or the server goes away.
            tokio::spawn(connection);
            let statement = client.prepare(PROBE_SQL).await?;
            Ok::<_, tokio_postgres::Error>(ProbeConnection { client, statement })
        })
        .await;
        match opened {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(ProbeError::Connect(error.to_string())),
            Err(_) => Err(ProbeError::Connect(format!(
                "no connection within {timeout:?}"
            ))),
        }
    }

    /// Whether the server has closed the connection (it must be reopened).
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Runs the probe once, within `timeout`.
    pub(crate) async fn probe(&self, timeout: Duration) -> Result<Reading, ProbeError> {
        match tokio::time::timeout(timeout, self.client.query_one(&self.statement, &[])).await {
            Ok(Ok(row)) => reading_of(&row).map_err(ProbeError::Query),
            Ok(Err(error)) => Err(ProbeError::Query(error.to_string())),
            Err(_) => Err(ProbeError::Query(format!("no answer within {timeout:?}"))),
        }
    }
}

/// Decodes the probe's row.
fn reading_of(row: &Row) -> Result<Reading, String> {
    let column = |index: usize| -> Result<Option<Lsn>, String> {
        let text: Option<String> = row.try_get(index).map_err(|error| error.to_string())?;
        text.map(|text| text.parse::<Lsn>().map_err(|error| error.to_string()))
            .transpose()
    };
    let in_recovery: bool = row.try_get(0).map_err(|error| error.to_string())?;
    let current_lsn = column(1)?;
    let receive_lsn = column(2)?;
    let replay_lsn = column(3)?;
    let replay_age_ms: Option<i64> = row.try_get(4).map_err(|error| error.to_string())?;
    // Clocks can disagree by a little: a timestamp from "the future" is no age.
    let replay_age_ms = replay_age_ms.map(|age| age.max(0) as u64);
    match (in_recovery, current_lsn) {
        // Promoted between the two pg_is_in_recovery() calls: a primary now.
        (_, Some(current_lsn)) => Ok(Reading::Primary { current_lsn }),
        (false, None) => Err("a primary returned no pg_current_wal_lsn()".to_string()),
        (true, None) => {
            let replay_lsn = replay_lsn.unwrap_or(Lsn::INVALID);
            let caught_up = receive_lsn.is_some_and(|receive| replay_lsn >= receive);
            Ok(Reading::Replica {
                replay_lsn,
                replay_age_ms: if caught_up { Some(0) } else { replay_age_ms },
            })
        }
    }
}
