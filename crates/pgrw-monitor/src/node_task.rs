//! The task that watches one node: keeps a connection open (reconnecting every
//! interval, or with backoff when the server refuses the login), probes every
//! interval or when woken, and records each outcome.
//!
//! A node that is down is tried again every interval: a connection refused
//! costs nothing, and a node that comes back (a restarted old primary above
//! all) must be seen within one interval.

use std::sync::Arc;
use std::time::Duration;

use pgrw_core::route::NodeId;
use tokio::time::Instant;

use crate::address::NodeAddress;
use crate::probe::{ProbeConnection, ProbeError};
use crate::state::{MonitorState, Outcome};
use crate::tls::{NodeTlsClient, NodeTlsError};

/// The longest wait between two connection attempts to a node whose server
/// refuses the login (a wrong password, too many connections, a timeout).
pub(crate) const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// Watches `node` until the task is aborted.
pub(crate) async fn watch_node(state: Arc<MonitorState>, node: NodeId) {
    let Some(address) = state.address(node) else {
        return;
    };
    let address = &address;
    let interval = state.config.interval;
    let timeout = state.config.probe_timeout;
    // The CA file is read once; a node whose TLS settings cannot be used is
    // reported down with the reason every interval.
    let tls = NodeTlsClient::new(address.tls.clone());
    let mut connection: Option<ProbeConnection> = None;
    let mut backoff = interval;
    loop {
        let started = Instant::now();
        let open = match connection.take().filter(|open| !open.is_closed()) {
            Some(open) => open,
            None => match open_connection(address, &tls, state.config.connect_timeout).await {
                Ok(open) => {
                    backoff = interval;
                    open
                }
                Err(error) => {
                    let wait = if error.calls_for_backoff() {
                        let wait = backoff;
                        backoff = backoff.saturating_mul(2).min(MAX_RECONNECT_BACKOFF);
                        wait
                    } else {
                        backoff = interval;
                        interval
                    };
                    state.record(node, outcome_of(error));
                    // Wakes are not honoured here: a node that refuses
                    // connections is not hammered by eager callers.
                    tokio::time::sleep_until(started + wait).await;
                    continue;
                }
            },
        };
        state.probe_begins(node);
        match open.probe(timeout).await {
            Ok(reading) => {
                state.record(node, Outcome::Answered(reading));
                connection = Some(open);
            }
            // The connection is dropped: the next round opens a new one.
            Err(error) => state.record(node, outcome_of(error)),
        }
        tokio::select! {
            () = tokio::time::sleep_until(started + interval) => {}
            () = state.woken(node) => {}
        }
    }
}

async fn open_connection(
    address: &NodeAddress,
    tls: &Result<NodeTlsClient, NodeTlsError>,
    timeout: Duration,
) -> Result<ProbeConnection, ProbeError> {
    match tls {
        Ok(tls) => ProbeConnection::open(address, tls.config(), timeout).await,
        Err(error) => Err(ProbeError::Connect {
            why: error.to_string(),
            refused_by_server: true,
        }),
    }
}

fn outcome_of(error: ProbeError) -> Outcome {
    match error {
        ProbeError::Connect { why, .. } => Outcome::ConnectFailed(why),
        ProbeError::Query(why) => Outcome::ProbeFailed(why),
    }
}
