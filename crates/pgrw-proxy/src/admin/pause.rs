//! `PAUSE` / `RESUME`: while paused, a client that starts a unit of work
//! outside a transaction waits before it is routed; one inside a transaction
//! (or pinned to a backend) carries on, so that what is in progress finishes.
//! Around a planned switchover, no new transaction begins on the old primary.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Whether new transactions are held.
pub(crate) struct Pause {
    /// Read on every unit of work: one relaxed load when not paused.
    paused: AtomicBool,
    changes: watch::Sender<bool>,
}

impl Default for Pause {
    fn default() -> Pause {
        Pause {
            paused: AtomicBool::new(false),
            changes: watch::Sender::new(false),
        }
    }
}

impl Pause {
    /// Holds new transactions from now on; false if they already were.
    pub(crate) fn pause(&self) -> bool {
        self.set(true)
    }

    /// Lets held clients go; false if nothing was paused.
    pub(crate) fn resume(&self) -> bool {
        self.set(false)
    }

    fn set(&self, paused: bool) -> bool {
        let changed = self.paused.swap(paused, Ordering::AcqRel) != paused;
        self.changes.send_replace(paused);
        changed
    }

    /// Whether new transactions are held now.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Waits until resumed (at once when not paused; cancel-safe).
    pub(crate) async fn resumed(&self) {
        let mut changes = self.changes.subscribe();
        // The sender lives in the proxy's state, as long as any session.
        let _ = changes.wait_for(|paused| !paused).await;
    }
}
