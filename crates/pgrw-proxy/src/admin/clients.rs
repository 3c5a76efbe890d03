//! The registry of logged-in clients that `SHOW CLIENTS` and `SHOW SERVERS`
//! read: a client is entered once after login and removed when its session
//! ends (one lock each time); while it runs, only its cancel slot, which the
//! session sets per statement anyway, says what it is doing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::cancel::{CancelSlot, CancelTarget};

/// One logged-in client, as the console shows it.
#[derive(Debug)]
pub(crate) struct ClientEntry {
    /// The process id the client was given (its BackendKeyData): what
    /// `pg_backend_pid()` cannot tell it, the console can.
    pub(crate) process_id: i32,
    /// The user it logged in as.
    pub(crate) user: String,
    /// The database it asked for.
    pub(crate) database: String,
    /// Its address, when the socket knew it.
    pub(crate) peer: Option<SocketAddr>,
    /// When it logged in.
    pub(crate) connected_at: SystemTime,
    /// Whether its connection is TLS.
    pub(crate) tls: bool,
    /// The backend its statement runs on now, if one runs.
    pub(crate) slot: CancelSlot,
    /// Whether `PAUSE` holds its next transaction now.
    pub(crate) held: AtomicBool,
}

impl ClientEntry {
    /// `active` (a statement runs), `waiting` (held by `PAUSE`) or `idle`.
    pub(crate) fn state(&self) -> &'static str {
        if self.held.load(Ordering::Relaxed) {
            "waiting"
        } else if self.running_on().is_some() {
            "active"
        } else {
            "idle"
        }
    }

    /// The backend running this client's statement now.
    pub(crate) fn running_on(&self) -> Option<Arc<CancelTarget>> {
        self.slot.lock().ok()?.clone()
    }
}

type Entries = Arc<Mutex<HashMap<u64, Arc<ClientEntry>>>>;

/// Every logged-in client.
#[derive(Default)]
pub(crate) struct ClientRegistry {
    next: AtomicU64,
    entries: Entries,
}

impl ClientRegistry {
    /// Enters `entry` until the returned guard is dropped.
    pub(crate) fn register(&self, entry: ClientEntry) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(entry);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(id, entry.clone());
        }
        Registered {
            id,
            entry,
            entries: self.entries.clone(),
        }
    }

    /// Every client now, oldest first.
    pub(crate) fn all(&self) -> Vec<Arc<ClientEntry>> {
        let Ok(entries) = self.entries.lock() else {
            return Vec::new();
        };
        let mut all: Vec<_> = entries
            .iter()
            .map(|(id, entry)| (*id, entry.clone()))
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all.into_iter().map(|(_, entry)| entry).collect()
    }
}

/// A client's place in the registry; dropping it removes the client.
#[must_use = "the client leaves the registry when this is dropped"]
pub(crate) struct Registered {
    id: u64,
    entry: Arc<ClientEntry>,
    entries: Entries,
}

impl Registered {
    /// Marks the client held by `PAUSE` (or no longer).
    pub(crate) fn set_held(&self, held: bool) {
        self.entry.held.store(held, Ordering::Relaxed);
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&self.id);
        }
    }
}
