//! What each database's catalog says to the classifier: its user functions
//! (volatility, overloads and shadows of built-in names) and its unlogged
//! relations. The proxy serves many databases whose catalogs differ, so each
//! has its own [`CatalogSlot`]: a snapshot loaded from the primary
//! (`session::catalog`) and swapped whole, that sessions read without a lock.
//!
//! Until a database's first load, the built-in catalog serves it. After DDL
//! commits through the proxy a reload is requested, and until a load begun
//! after that request is published the slot *doubts*: sessions classify with
//! [`FunctionCatalog::doubting`], which sends every call not qualified with
//! `pg_catalog` to the primary (the DDL may have shadowed a built-in name).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pgrw_core::FunctionCatalog;
use tokio::sync::{Notify, watch};

/// A catalog as sessions use it: trusted, and its doubting copy.
#[derive(Debug, Clone)]
struct Snapshot {
    trusted: Arc<FunctionCatalog>,
    doubting: Arc<FunctionCatalog>,
}

impl Snapshot {
    fn of(catalog: FunctionCatalog) -> Snapshot {
        Snapshot {
            doubting: Arc::new(catalog.doubting()),
            trusted: Arc::new(catalog),
        }
    }
}

/// Every database's catalog slot, made at its first session.
pub(crate) struct DatabaseCatalogs {
    /// The built-in (and configured) knowledge every database starts from.
    base: Arc<FunctionCatalog>,
    slots: Mutex<HashMap<String, Arc<CatalogSlot>>>,
}

impl DatabaseCatalogs {
    /// No database known yet; each starts from `base`.
    pub(crate) fn new(base: FunctionCatalog) -> DatabaseCatalogs {
        DatabaseCatalogs {
            base: Arc::new(base),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The knowledge every database starts from.
    pub(crate) fn base(&self) -> &FunctionCatalog {
        &self.base
    }

    /// The slot of `database`, and whether it was made now (then its loader
    /// must be started). Called once per session, at login.
    pub(crate) fn slot(&self, database: &str) -> (Arc<CatalogSlot>, bool) {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(slot) = slots.get(database) {
            return (Arc::clone(slot), false);
        }
        let slot = Arc::new(CatalogSlot::new(FunctionCatalog::clone(&self.base)));
        slots.insert(database.to_string(), Arc::clone(&slot));
        (slot, true)
    }

    /// The catalog sessions of `database` classify with now (`None` before
    /// any session of it), and how many loads of it were published.
    pub(crate) fn current(&self, database: &str) -> Option<(Arc<FunctionCatalog>, u64)> {
        let slots = self.slots.lock().ok()?;
        let slot = slots.get(database)?;
        let view = slot.view();
        Some((view.current(), slot.loads.load(Ordering::Acquire)))
    }
}

/// One database's catalog: the last snapshot loaded, and reload requests.
pub(crate) struct CatalogSlot {
    snapshot: watch::Sender<Snapshot>,
    /// Reloads requested (DDL committed) so far.
    requested: AtomicU64,
    /// The value of `requested` when the last published load began.
    loaded: AtomicU64,
    /// Loads published so far.
    loads: AtomicU64,
    reload: Notify,
}

impl CatalogSlot {
    fn new(base: FunctionCatalog) -> CatalogSlot {
        CatalogSlot {
            snapshot: watch::Sender::new(Snapshot::of(base)),
            requested: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
            loads: AtomicU64::new(0),
            reload: Notify::new(),
        }
    }

    /// A session's view of this slot.
    pub(crate) fn view(self: &Arc<Self>) -> CatalogView {
        let mut receiver = self.snapshot.subscribe();
        let current = receiver.borrow_and_update().clone();
        CatalogView {
            slot: Some(Arc::clone(self)),
            receiver: Some(receiver),
            doubting: false,
            current,
        }
    }

    /// Asks for a reload (DDL committed): until one begun after now is
    /// published, sessions doubt.
    pub(crate) fn request_reload(&self) {
        self.requested.fetch_add(1, Ordering::SeqCst);
        self.reload.notify_one();
    }

    /// The reloads requested so far: read before a load begins, and given
    /// back to [`CatalogSlot::publish`].
    pub(crate) fn requested(&self) -> u64 {
        self.requested.load(Ordering::SeqCst)
    }

    /// Publishes a catalog whose load began when `requested` reloads had
    /// been requested.
    pub(crate) fn publish(&self, catalog: FunctionCatalog, requested: u64) {
        self.snapshot.send_replace(Snapshot::of(catalog));
        self.loaded.fetch_max(requested, Ordering::SeqCst);
        self.loads.fetch_add(1, Ordering::AcqRel);
    }

    /// Waits for a reload request (one made while nobody waited counts).
    pub(crate) async fn reload_requested(&self) {
        self.reload.notified().await;
    }

    /// Whether DDL committed since the load of the published snapshot began.
    fn doubting(&self) -> bool {
        self.requested.load(Ordering::SeqCst) > self.loaded.load(Ordering::SeqCst)
    }
}

/// A session's catalog: refreshed before each client message (two atomic
/// loads; a new snapshot is taken only when one was published).
pub(crate) struct CatalogView {
    slot: Option<Arc<CatalogSlot>>,
    receiver: Option<watch::Receiver<Snapshot>>,
    doubting: bool,
    current: Snapshot,
}

impl CatalogView {
    /// A view of `catalog` alone, for a session before it knows its database.
    pub(crate) fn fixed(catalog: &FunctionCatalog) -> CatalogView {
        CatalogView {
            slot: None,
            receiver: None,
            doubting: false,
            current: Snapshot::of(catalog.clone()),
        }
    }

    /// Takes the slot's state now. Whether it doubts is read first: a load
    /// that ended the doubt was published before, so it is seen too.
    pub(crate) fn refresh(&mut self) {
        let (Some(slot), Some(receiver)) = (&self.slot, &mut self.receiver) else {
            return;
        };
        self.doubting = slot.doubting();
        if receiver.has_changed().unwrap_or(false) {
            self.current = receiver.borrow_and_update().clone();
        }
    }

    /// The catalog to classify with, as of the last [`CatalogView::refresh`].
    pub(crate) fn get(&self) -> &FunctionCatalog {
        if self.doubting {
            &self.current.doubting
        } else {
            &self.current.trusted
        }
    }

    fn current(mut self) -> Arc<FunctionCatalog> {
        self.refresh();
        if self.doubting {
            self.current.doubting
        } else {
            self.current.trusted
        }
    }

    /// Asks for a reload of this database's catalog (DDL committed).
    pub(crate) fn request_reload(&self) {
        if let Some(slot) = &self.slot {
            slot.request_reload();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgrw_core::catalog::Volatility;

    fn with_stable_price() -> FunctionCatalog {
        let mut catalog = FunctionCatalog::builtin();
        catalog.add_user_function("public", "price", Volatility::Stable);
        catalog
    }

    fn reads_price(view: &CatalogView) -> bool {
        let sql = b"SELECT price(1)";
        pgrw_core::sql::classify::classify(sql, view.get()).class == pgrw_core::StatementClass::Read
    }

    #[test]
    fn a_session_sees_a_load_published_after_it_logged_in() {
        let catalogs = DatabaseCatalogs::new(FunctionCatalog::builtin());
        let (slot, new) = catalogs.slot("app");
        assert!(new);
        let mut view = slot.view();
        assert!(!reads_price(&view));
        slot.publish(with_stable_price(), slot.requested());
        view.refresh();
        assert!(reads_price(&view));
        assert!(!catalogs.slot("app").1, "one slot per database");
        assert!(catalogs.slot("other").1);
    }

    #[test]
    fn after_a_reload_request_sessions_doubt_until_a_later_load_is_published() {
        let catalogs = DatabaseCatalogs::new(FunctionCatalog::builtin());
        let (slot, _) = catalogs.slot("app");
        slot.publish(with_stable_price(), slot.requested());
        let mut view = slot.view();
        view.refresh();
        assert!(reads_price(&view));

        let began_before = slot.requested();
        slot.request_reload();
        view.refresh();
        assert!(!reads_price(&view), "doubting after DDL");
        // A load that began before the request does not end the doubt.
        slot.publish(with_stable_price(), began_before);
        view.refresh();
        assert!(!reads_price(&view));
        slot.publish(with_stable_price(), slot.requested());
        view.refresh();
        assert!(reads_price(&view));
    }
}
