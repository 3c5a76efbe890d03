//! Graceful shutdown: the phases a proxy goes through after it is asked to
//! stop, and how sessions hear of them.
//!
//! On the first signal the listener closes (new connections are refused) and
//! the phase becomes [`Phase::Draining`]: a session that is idle between
//! transactions is told FATAL 57P01 and closed; one running a statement or
//! inside a transaction carries on, and is closed once it is idle. At
//! `shutdown_timeout_ms` the phase becomes [`Phase::Closing`]: every session
//! still open is told 57P01 and closed, its running statement cancelled.

use tokio::sync::{Notify, watch};

/// Where a proxy is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepting clients and serving them.
    Serving,
    /// Not accepting; sessions end as soon as they are between transactions.
    Draining,
    /// The drain's deadline passed: every session ends now.
    Closing,
}

/// The proxy's side: moves the phase on.
pub(crate) struct Shutdown {
    phase: watch::Sender<Phase>,
    /// Asked from inside (the admin console's `SHUTDOWN`).
    request: Notify,
}

impl Shutdown {
    /// Serving.
    pub(crate) fn new() -> Shutdown {
        Shutdown {
            phase: watch::Sender::new(Phase::Serving),
            request: Notify::new(),
        }
    }

    /// Moves to `phase` (never back).
    pub(crate) fn enter(&self, phase: Phase) {
        self.phase.send_if_modified(|current| {
            let later = match phase {
                Phase::Serving => false,
                Phase::Draining => *current == Phase::Serving,
                Phase::Closing => *current != Phase::Closing,
            };
            if later {
                *current = phase;
            }
            later
        });
    }

    /// Asks the listener to begin the graceful shutdown a SIGTERM begins.
    pub(crate) fn request(&self) {
        self.request.notify_one();
    }

    /// Resolves once [`Shutdown::request`] was called (cancel-safe: a
    /// request made while nobody waits is kept).
    pub(crate) async fn requested(&self) {
        self.request.notified().await;
    }

    /// A session's view of the phase.
    pub(crate) fn watch(&self) -> ShutdownWatch {
        ShutdownWatch(self.phase.subscribe())
    }
}

/// A session's view of the proxy's phase.
#[derive(Clone)]
pub(crate) struct ShutdownWatch(watch::Receiver<Phase>);

impl ShutdownWatch {
    /// The phase now.
    pub(crate) fn phase(&self) -> Phase {
        *self.0.borrow()
    }

    /// Waits until the phase moves on, and returns the new one (cancel-safe).
    pub(crate) async fn changed(&mut self) -> Phase {
        if self.0.changed().await.is_err() {
            // The proxy is gone: its tasks are being aborted anyway.
            std::future::pending::<()>().await;
        }
        *self.0.borrow_and_update()
    }

    /// Waits until the drain's deadline has passed (cancel-safe).
    pub(crate) async fn closing(&mut self) {
        if self
            .0
            .wait_for(|phase| *phase == Phase::Closing)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }
}

/// What a client is told when the proxy closes its connection on shutdown:
/// PostgreSQL's own words for a fast shutdown, which drivers and pools know
/// to reconnect on.
pub(crate) const TERMINATING: &str =
    "terminating connection due to administrator command: pgrw is shutting down";
