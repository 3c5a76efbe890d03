//! `workers = N`: N threads serve clients, each a one-thread tokio runtime
//! with its own listener on the same address (`SO_REUSEPORT`: the kernel
//! spreads new connections over the listeners), all sharing one
//! [`ProxyState`].
//!
//! The thread that runs [`crate::Proxy::serve_until`] is worker 0 (it also
//! drives the node monitor and the metrics listener); workers 1.. are threads
//! it starts and stops. A socket belongs to the runtime that opened it (its
//! readiness comes from that runtime's reactor): a backend connection opened
//! on worker A and used by a session on worker B would cost a cross-thread
//! wakeup for every answer, and stop working once A's runtime stops. So each
//! worker has its own share of every pool ([`crate::pool`]: its part of
//! `size`, its idle connections). What sessions share
//! — the last write's position and the other read-your-writes state, stats,
//! the monitor, the configuration in force, cancel keys, the admin state —
//! is behind atomics and mutexes already, so a write through a connection on
//! one worker is seen by a read through a connection on another.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::server::{ProxyState, admit, drain};
use crate::shutdown::Phase;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The worker the calling thread is (0 outside the proxy's own threads).
pub(crate) fn current() -> usize {
    WORKER.with(Cell::get)
}

/// How many connections the kernel may queue on each listener.
const BACKLOG: u32 = 1024;

/// Listens on `address` so that more listeners may share it (every worker's
/// listener is bound this way when there are several).
pub(crate) fn listen_shared(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// The listeners of workers 1.., bound with worker 0's (so that a busy port
/// stops the proxy before it serves), not yet attached to any runtime.
pub(crate) fn bind_others(
    address: SocketAddr,
    workers: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    (1..workers)
        .map(|_| listen_shared(address)?.into_std())
        .collect()
}

/// Workers 1.., serving.
pub(crate) struct Workers {
    threads: Vec<(JoinHandle<()>, oneshot::Receiver<()>)>,
    /// `true` (or dropped): end every session at once.
    stop: watch::Sender<bool>,
}

impl Workers {
    /// Starts one thread per listener; worker `i` serves `listeners[i - 1]`.
    pub(crate) fn start(listeners: Vec<std::net::TcpListener>, state: &Arc<ProxyState>) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let threads = listeners
            .into_iter()
            .enumerate()
            .filter_map(|(index, listener)| {
                let worker = index + 1;
                let (done, finished) = oneshot::channel();
                let state = state.clone();
                let stopped = stopped.clone();
                let thread = std::thread::Builder::new()
                    .name(format!("pgrw-worker-{worker}"))
                    .spawn(move || {
                        WORKER.with(|current| current.set(worker));
                        serve(listener, &state, stopped);
                        let _ = done.send(());
                    });
                match thread {
                    Ok(thread) => Some((thread, finished)),
                    Err(error) => {
                        tracing::warn!(worker, "starting a worker thread failed: {error}");
                        None
                    }
                }
            })
            .collect();
        Workers { threads, stop }
    }

    /// Waits until every worker has drained (the proxy's phase moved on
    /// from serving), or ends them all at once when `stop_now` completes
    /// (`stopped`: it already did).
    pub(crate) async fn finish(
        mut self,
        stopped: bool,
        stop_now: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) {
        if stopped {
            let _ = self.stop.send(true);
        }
        let mut handles = Vec::new();
        let mut finished = Vec::new();
        for (handle, done) in std::mem::take(&mut self.threads) {
            handles.push(handle);
            finished.push(done);
        }
        let wait_all = async {
            for done in finished {
                let _ = done.await;
            }
        };
        tokio::pin!(wait_all);
        if stopped {
            wait_all.await;
        } else {
            tokio::select! {
                () = &mut wait_all => {}
                () = stop_now => {
                    let _ = self.stop.send(true);
                    wait_all.await;
                }
            }
        }
        for handle in handles {
            let _ = handle.join();
        }
    }
}

/// One worker's life: accept until the proxy stops serving, then drain its
/// own sessions as worker 0 drains its (see [`crate::Proxy::serve_until`]).
fn serve(
    listener: std::net::TcpListener,
    state: &Arc<ProxyState>,
    mut stopped: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::warn!(
                worker = current(),
                "starting a worker's runtime failed: {error}"
            );
            return;
        }
    };
    runtime.block_on(async {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(worker = current(), "a worker's listener failed: {error}");
                return;
            }
        };
        let mut sessions = JoinSet::new();
        let mut phase = state.shutdown.watch();
        let stop_now = async {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stop_now);
        while phase.phase() == Phase::Serving {
            tokio::select! {
                _ = phase.changed() => {}
                () = &mut stop_now => {
                    sessions.shutdown().await;
                    return;
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => admit(stream, peer, state, &mut sessions),
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        drop(listener);
        drain(state, &mut sessions, stop_now.as_mut()).await;
        sessions.shutdown().await;
    });
}
