//! Waiting for a node's answer to a statement in flight, and giving up on it
//! when waiting has no point: the node hangs, the client left, or the proxy's
//! shutdown deadline passed. Each way out cancels the statement on the node
//! (a CancelRequest) so that the node does not keep working for nobody.
//!
//! A hung node is told from a long query by asking the node itself: after
//! `pool.stall_timeout_ms` without a byte from the backend, the proxy opens a
//! new connection to the node and sends an SSLRequest, which the postmaster
//! answers at once, before any login. A node that answers is alive, busy with
//! a long statement, and the wait goes on; one that does not answer within
//! the stall timeout either is hung (stopped, swapping, its machine frozen).
//!
//! A backend that ends with a FATAL mid-statement is lost too
//! ([`Session::ended_mid_statement`]): the client is told `08006`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pgrw_core::route::NodeId;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::Session;
use super::relay::Exchange;
use super::settings;
use crate::backend::BackendError;
use crate::cancel::{CancelTarget, send_cancel, spawn_cancel};
use crate::pool::PooledBackend;
use crate::protocol::Message;
use crate::protocol::backend::{BackendMessage, TransactionStatus, tag};
use crate::protocol::sqlstate;
use crate::server::ProxyState;

/// How much of the client's input the proxy reads ahead while a statement
/// runs (to notice that the client left); past it, the client's socket is
/// left alone, so that a client pipelining more than this feels backpressure.
const CLIENT_READ_AHEAD: usize = 64 * 1024;

/// How long a backend whose client left may take to answer the cancel
/// before it is closed instead of going back to its pool.
const RECLAIM_GRACE: Duration = Duration::from_secs(5);

/// The silence of one backend during one exchange.
pub(super) struct Stall<'t> {
    limit: Duration,
    last_heard: Instant,
    /// Pinned on the relay's stack: no allocation per statement. It joins
    /// the timer wheel only if the relay ever has to wait.
    timer: Pin<&'t mut Sleep>,
}

impl<'t> Stall<'t> {
    /// Starts counting now; the backend may stay silent `limit`. `timer`
    /// is any sleep, reset here.
    pub(super) fn new(limit: Duration, mut timer: Pin<&'t mut Sleep>) -> Stall<'t> {
        let now = Instant::now();
        timer.as_mut().reset(now + limit);
        Stall {
            limit,
            last_heard: now,
            timer,
        }
    }

    /// The backend sent bytes.
    fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// Resolves once the backend has been silent for the limit (cancel-safe:
    /// the deadline lives in the timer, moved on as bytes arrive).
    async fn silent(&mut self) {
        loop {
            self.timer.as_mut().await;
            let due = self.last_heard + self.limit;
            if Instant::now() >= due {
                return;
            }
            self.timer.as_mut().reset(due);
        }
    }

    /// Waits a whole limit more before the next question.
    fn rearm(&mut self) {
        self.timer.as_mut().reset(Instant::now() + self.limit);
    }
}

/// How a wait for the backend ended.
pub(super) enum Waited {
    /// The backend sent bytes.
    Filled,
    /// The client sent bytes (COPY data during COPY FROM STDIN).
    ClientSent,
    /// The backend's connection failed.
    Failed(BackendError),
    /// The node hangs: the statement is cancelled, the backend must be
    /// closed, the monitor is told; the error says so.
    Hung(BackendError),
    /// The client closed its connection.
    ClientGone,
    /// The proxy's shutdown deadline passed.
    Closing,
}

impl Session {
    /// A FATAL (or PANIC) from the backend mid-statement, unless the session
    /// is pinned to it: the backend is ending, but the client's connection
    /// is not (another backend serves it next), so the client gets `08006`
    /// from [`Session::backend_lost`], not a FATAL that would make a driver
    /// drop its connection. A pinned session ends with the node's FATAL, as
    /// a direct connection does (its state died with the backend).
    pub(super) fn ended_mid_statement(
        &self,
        backend: &mut PooledBackend,
        message: &Message,
    ) -> Option<BackendError> {
        let node = backend.node();
        if self.routing.pin.is_some_and(|pin| pin.node == node) {
            return None;
        }
        let Ok(BackendMessage::ErrorResponse(fields)) = BackendMessage::decode(message.view())
        else {
            return None;
        };
        if fields.severity != "FATAL" && fields.severity != "PANIC" {
            return None;
        }
        Some(BackendError::Ended {
            node: backend.connection().node_name().to_owned(),
            code: fields.code,
            message: fields.message,
        })
    }

    /// Waits until the backend sends bytes, or something else makes the wait
    /// end (see [`Waited`]). During COPY FROM STDIN (`copying`) the client's
    /// data ends the wait too; otherwise what the client sends is only read
    /// ahead, for the session loop.
    pub(super) async fn wait_for_backend(
        &mut self,
        backend: &mut PooledBackend,
        stall: &mut Stall<'_>,
        copying: bool,
    ) -> Waited {
        loop {
            let watch_client = copying || self.client.input_len() < CLIENT_READ_AHEAD;
            tokio::select! {
                filled = backend.connection().fill() => {
                    stall.heard();
                    return match filled {
                        Ok(()) => Waited::Filled,
                        Err(error) => Waited::Failed(error),
                    };
                }
                read = self.client.fill(), if watch_client => match read {
                    Ok(0) | Err(_) => return Waited::ClientGone,
                    Ok(_) if copying => return Waited::ClientSent,
                    Ok(_) => {}
                },
                () = stall.silent() => {
                    if let Some(error) = self.hung(backend, stall.limit).await {
                        return Waited::Hung(error);
                    }
                    stall.rearm();
                }
                () = self.shutdown.closing() => return Waited::Closing,
            }
        }
    }

    /// The backend has been silent for `limit`: whether its node is hung
    /// (see the module doc). If so, the statement is cancelled, the monitor
    /// told, the give-up logged and counted, and the error returned.
    async fn hung(&mut self, backend: &mut PooledBackend, limit: Duration) -> Option<BackendError> {
        let target = backend.connection().cancel_target.clone();
        if node_alive(&self.state, backend.node(), &target, limit).await {
            return None;
        }
        Some(give_up(&self.state, backend.node(), target, limit))
    }

    /// The client left while `backend` ran its statement: the node is asked
    /// to cancel it, and the backend goes back to its pool once the cancel
    /// has visibly taken effect (a 57014 error, then ReadyForQuery outside a
    /// transaction), so that a late cancel can never hit the next client's
    /// statement. Otherwise (a transaction, a COPY, an answer that does not
    /// come within [`RECLAIM_GRACE`]) it is closed, and the node rolls back.
    pub(super) async fn abandon(
        &mut self,
        mut backend: PooledBackend,
        exchange: &Exchange,
        copying: bool,
    ) {
        self.state.stats.record_abandoned();
        tracing::debug!(
            node = %backend.connection().node_name(),
            "the client left mid-statement: cancelling it"
        );
        let target = backend.connection().cancel_target.clone();
        if copying || exchange.ready_left == 0 {
            spawn_cancel(target);
            return;
        }
        send_cancel(&target).await;
        let mut ready_left = exchange.ready_left;
        let drained = tokio::time::timeout(RECLAIM_GRACE, async {
            let mut canceled = false;
            loop {
                let message = backend.connection().receive().await?;
                match message.tag() {
                    tag::ERROR_RESPONSE => {
                        if let Ok(BackendMessage::ErrorResponse(fields)) =
                            BackendMessage::decode(message.view())
                        {
                            canceled |= fields.code == sqlstate::QUERY_CANCELED;
                        }
                    }
                    tag::READY_FOR_QUERY => {
                        ready_left -= 1;
                        if ready_left == 0 {
                            let status = match BackendMessage::decode(message.view()) {
                                Ok(BackendMessage::ReadyForQuery(status)) => status,
                                _ => TransactionStatus::Failed,
                            };
                            return Ok::<_, BackendError>((canceled, status));
                        }
                    }
                    _ => {}
                }
            }
        })
        .await;
        if let Ok(Ok((true, TransactionStatus::Idle))) = drained {
            backend.connection().status = TransactionStatus::Idle;
            settings::undo_settings_and_release(backend).await;
        }
    }
}

/// Runs `exchange`, a short query the proxy runs itself on a backend of
/// `node` (replaying settings, reading the commit LSN), bounded as a
/// statement is: past each `pool.stall_timeout_ms` the node must answer a
/// liveness check, or the exchange ends with [`BackendError::Hung`] (the
/// backend must then be closed). No timer is armed if `exchange` does not
/// wait.
pub(super) async fn bounded<T>(
    state: &ProxyState,
    node: NodeId,
    target: Arc<CancelTarget>,
    exchange: impl Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    let limit = state.config.pool.stall_timeout();
    let mut exchange = std::pin::pin!(exchange);
    loop {
        match tokio::time::timeout(limit, exchange.as_mut()).await {
            Ok(result) => return result,
            Err(_elapsed) if node_alive(state, node, &target, limit).await => {}
            Err(_elapsed) => return Err(give_up(state, node, target, limit)),
        }
    }
}

/// The node of `target` is hung: what the proxy sent it is cancelled (for
/// when it wakes), the monitor is told, the give-up is logged and counted;
/// the error for the client.
fn give_up(
    state: &ProxyState,
    node: NodeId,
    target: Arc<CancelTarget>,
    limit: Duration,
) -> BackendError {
    let node_name = state
        .config
        .nodes
        .get(node.index())
        .map(|config| config.name.clone())
        .unwrap_or_else(|| format!("{node:?}"));
    let error = BackendError::Hung {
        node: node_name.clone(),
        millis: limit.as_millis() as u64,
    };
    tracing::warn!(
        node = %node_name,
        reason = %error,
        "gave up on a statement: its node hangs"
    );
    state.stats.record_stalled(node);
    state.monitor.report_failure(node, &error.to_string());
    spawn_cancel(target);
    error
}

/// Whether `node` is alive: it answered a liveness check (its own or
/// another session's) less than `limit` ago, or answers one now.
async fn node_alive(
    state: &ProxyState,
    node: NodeId,
    target: &CancelTarget,
    limit: Duration,
) -> bool {
    let Some(answered) = state.node_answered.get(node.index()) else {
        return node_answers(target, limit).await;
    };
    let last = answered.load(Ordering::Relaxed);
    let now = state.monitor.now().as_millis() as u64;
    if last != 0 && now.saturating_sub(last) < limit.as_millis() as u64 {
        return true;
    }
    if !node_answers(target, limit).await {
        return false;
    }
    let now = state.monitor.now().as_millis() as u64;
    answered.fetch_max(now.max(1), Ordering::Relaxed);
    true
}

/// Whether the node at `target`'s address answers an SSLRequest on a new
/// connection within `limit`: its postmaster runs and forks, whatever one
/// of its backends is busy with. No login, so no password and no
/// `max_connections` slot; the node logs nothing for a connection that
/// closes after it.
async fn node_answers(target: &CancelTarget, limit: Duration) -> bool {
    let answered = tokio::time::timeout(limit, async {
        let mut stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
        // SSLRequest: length 8, code 80877103.
        stream.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).await?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await?;
        Ok::<_, std::io::Error>(())
    })
    .await;
    matches!(answered, Ok(Ok(())))
}
