//! The probe: one connection per node and one cheap query that says what the
//! node is (`pg_is_in_recovery()`), where its WAL stands, and for a replica,
//! what its WAL receiver streams.

use std::sync::Arc;
use std::time::Duration;

use pgrw_core::Lsn;
use pgrw_core::route::{Role, WalReceiver};
use rustls::ClientConfig;
use tokio_postgres::{Client, NoTls, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::address::NodeAddress;

/// Role, WAL positions, timeline and WAL receiver in one round trip.
///
/// `pg_current_wal_lsn()` and `pg_walfile_name()` fail during recovery, so
/// they are only called on a primary; the replay function returns NULL there.
/// The primary's timeline is the first 8 hex digits of its current WAL file's
/// name (PostgreSQL 15 names it by the timeline WAL is inserted on). A replica's
/// WAL receiver is `pg_stat_wal_receiver`, no row when none runs; roles without
/// `pg_read_all_stats` see only its pid.
const PROBE_SQL: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END, \
     pg_last_wal_replay_lsn()::text, \
     CASE WHEN pg_is_in_recovery() THEN NULL \
          ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END, \
     receiver.pid, receiver.status, receiver.received_tli, receiver.written_lsn::text, \
     receiver.sender_host, receiver.sender_port \
     FROM (VALUES (1)) AS one LEFT JOIN pg_stat_wal_receiver AS receiver ON true";

/// What one successful probe read from a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Not in recovery.
    Primary {
        /// `pg_current_wal_lsn()`.
        current_lsn: Lsn,
        /// The timeline it writes, when it could be read.
        timeline: Option<u32>,
    },
    /// In recovery (a standby).
    Replica {
        /// `pg_last_wal_replay_lsn()`.
        replay_lsn: Lsn,
        /// Its WAL receiver.
        receiver: WalReceiver,
        /// Where its WAL receiver streams from (`host:port`), for the logs.
        upstream: Option<Arc<str>>,
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
            Reading::Primary { current_lsn, .. } => current_lsn,
            Reading::Replica { replay_lsn, .. } => replay_lsn,
        }
    }
}

/// Why a probe did not produce a [`Reading`].
#[derive(Debug)]
pub(crate) enum ProbeError {
    /// No connection (refused, timed out, authentication failed).
    Connect {
        /// What failed.
        why: String,
        /// Whether the server itself said no (a login refused, too many
        /// connections): asking again at once would only fill its log. Not
        /// for a server starting up or down (57P03), nor for nothing listening.
        refused_by_server: bool,
    },
    /// Connected, but the query failed or timed out.
    Query(String),
}

impl ProbeError {
    /// Whether to wait longer before connecting again (see `refused_by_server`).
    pub(crate) fn calls_for_backoff(&self) -> bool {
        matches!(
            self,
            ProbeError::Connect {
                refused_by_server: true,
                ..
            }
        )
    }
}

/// The SQLSTATE of a server starting up, shutting down or not yet
/// accepting connections: it will, soon.
const CANNOT_CONNECT_NOW: &str = "57P03";

/// A monitor connection to one node, with the probe prepared on it.
pub(crate) struct ProbeConnection {
    client: Client,
    statement: Statement,
}

impl ProbeConnection {
    /// Connects to `address` (over TLS with `tls`, the node's configuration
    /// built once) and prepares the probe, all within `timeout`.
    pub(crate) async fn open(
        address: &NodeAddress,
        tls: Option<&Arc<ClientConfig>>,
        timeout: Duration,
    ) -> Result<ProbeConnection, ProbeError> {
        let opened = tokio::time::timeout(timeout, async {
            let client = connect_client(address, tls, timeout).await?;
            let statement = client.prepare(PROBE_SQL).await?;
            Ok::<_, tokio_postgres::Error>(ProbeConnection { client, statement })
        })
        .await;
        match opened {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(ProbeError::Connect {
                refused_by_server: error
                    .as_db_error()
                    .is_some_and(|db| db.code().code() != CANNOT_CONNECT_NOW),
                why: describe_connect_error(address, &error),
            }),
            Err(_) => Err(ProbeError::Connect {
                why: format!("no connection within {timeout:?}"),
                refused_by_server: true,
            }),
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

/// A tokio-postgres connection to `address`, over TLS with `tls`; its
/// connection task runs until the client is dropped or the server goes away.
async fn connect_client(
    address: &NodeAddress,
    tls: Option<&Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<Client, tokio_postgres::Error> {
    let mut config = address.connect_config();
    config.connect_timeout(timeout);
    match tls {
        None => {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(connection);
            Ok(client)
        }
        Some(tls) => {
            let tls = MakeRustlsConnect::new(ClientConfig::clone(tls));
            let (client, connection) = config.connect(tls).await?;
            tokio::spawn(connection);
            Ok(client)
        }
    }
}

/// Connects to `address` as the monitor does (its `sslmode`, its socket
/// directory), within `timeout`: for tools that ask a node more than the
/// probe does (`pgrw check`). The error says why, naming the CA file when
/// the node's certificate was refused.
pub async fn connect(address: &NodeAddress, timeout: Duration) -> Result<Client, String> {
    let tls =
        crate::tls::NodeTlsClient::new(address.tls.clone()).map_err(|error| error.to_string())?;
    match tokio::time::timeout(timeout, connect_client(address, tls.config(), timeout)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(error)) => Err(describe_connect_error(address, &error)),
        Err(_) => Err(format!("no connection within {timeout:?}")),
    }
}

/// A failed connection in words: tokio-postgres's, with the CA file named
/// when the node's certificate was refused.
fn describe_connect_error(address: &NodeAddress, error: &tokio_postgres::Error) -> String {
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|tls| tls.downcast_ref::<rustls::Error>().is_some())
        {
            return address.tls.describe_handshake_failure(io);
        }
        source = inner.source();
    }
    // tokio-postgres's own message ("error connecting to server") leaves
    // out why: the causes follow it.
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        let cause = inner.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = inner.source();
    }
    text
}

/// Decodes the probe's row.
fn reading_of(row: &Row) -> Result<Reading, String> {
    let text = |index: usize| -> Result<Option<String>, String> {
        row.try_get(index).map_err(|error| error.to_string())
    };
    let lsn = |index: usize| -> Result<Option<Lsn>, String> {
        text(index)?
            .map(|text| text.parse::<Lsn>().map_err(|error| error.to_string()))
            .transpose()
    };
    let int = |index: usize| -> Result<Option<i32>, String> {
        row.try_get(index).map_err(|error| error.to_string())
    };
    let in_recovery: bool = row.try_get(0).map_err(|error| error.to_string())?;
    let current_lsn = lsn(1)?;
    let replay_lsn = lsn(2)?;
    let timeline = text(3)?.and_then(|name| u32::from_str_radix(&name, 16).ok());
    let receiver_pid = int(4)?;
    let status = text(5)?;
    let received_tli = int(6)?;
    let written_lsn = lsn(7)?;
    let sender_host = text(8)?;
    let sender_port = int(9)?;
    match (in_recovery, current_lsn) {
        // Promoted between the two pg_is_in_recovery() calls: a primary now.
        (_, Some(current_lsn)) => Ok(Reading::Primary {
            current_lsn,
            timeline,
        }),
        (false, None) => Err("a primary returned no pg_current_wal_lsn()".to_string()),
        (true, None) => {
            let receiver = match (receiver_pid, status) {
                (None, _) => WalReceiver::Absent,
                (Some(_), None) => WalReceiver::Hidden,
                (Some(_), Some(status)) => WalReceiver::Running {
                    streaming: status == "streaming",
                    timeline: received_tli.and_then(|tli| u32::try_from(tli).ok()),
                    received_lsn: written_lsn.unwrap_or(Lsn::INVALID),
                },
            };
            let upstream = sender_host.map(|host| match sender_port {
                Some(port) => Arc::from(format!("{host}:{port}")),
                None => Arc::from(host),
            });
            Ok(Reading::Replica {
                replay_lsn: replay_lsn.unwrap_or(Lsn::INVALID),
                receiver,
                upstream,
            })
        }
    }
}
