//! Keeping each database's catalog loaded (see [`crate::catalogs`]): a task
//! per database, started by its first session, reads `pg_proc` and
//! `pg_class` on the primary at once, again when DDL committed through the
//! proxy asks for it, and every `catalog_refresh_ms`; sessions note DDL as
//! its CommandComplete passes and ask for the reload when their transaction
//! has ended (before that, nobody else can see the change).

use std::sync::{Arc, Weak};
use std::time::Duration;

use pgrw_core::FunctionCatalog;
use pgrw_core::catalog::{UNLOGGED_RELATIONS_QUERY, USER_FUNCTIONS_QUERY, Volatility};

use super::Session;
use super::extended::changes_relations;
use super::settings::query;
use crate::catalogs::{CatalogSlot, CatalogView};
use crate::config::UserConfig;
use crate::protocol::Message;
use crate::protocol::backend::{TransactionStatus, tag};
use crate::server::ProxyState;
use crate::shutdown::Phase;

/// How soon a load that failed (no primary, a login refused) is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The view of `database`'s catalog for a session of `user`; the first
/// session of a database starts its loader (in the background: the login
/// does not wait, and the built-in catalog serves until the first load).
pub(super) fn view(state: &Arc<ProxyState>, user: &UserConfig, database: &str) -> CatalogView {
    let (slot, new) = state.catalogs.slot(database);
    if new {
        tokio::spawn(keep_loaded(
            Arc::downgrade(state),
            Arc::clone(&slot),
            user.clone(),
            database.to_string(),
        ));
    }
    slot.view()
}

/// Loads `database`'s catalog now, then on each reload request and every
/// `catalog_refresh_ms`, until the proxy is gone or shutting down.
async fn keep_loaded(
    state: Weak<ProxyState>,
    slot: Arc<CatalogSlot>,
    user: UserConfig,
    database: String,
) {
    let Some(mut shutdown) = state.upgrade().map(|state| state.shutdown.watch()) else {
        return;
    };
    let mut failing = false;
    loop {
        let requested = slot.requested();
        let next = {
            let Some(state) = state.upgrade() else { return };
            match load(&state, &user, &database).await {
                Ok(catalog) => {
                    if failing {
                        tracing::info!(database, "catalog loaded again");
                    }
                    failing = false;
                    tracing::debug!(database, "catalog loaded");
                    slot.publish(catalog, requested);
                    state.config.catalog_refresh()
                }
                Err(reason) => {
                    if !failing {
                        tracing::warn!(
                            database,
                            "loading the catalog (functions, unlogged tables) from the \
                             primary failed: {reason}; calls of user functions go to the \
                             primary until it loads; trying again every second"
                        );
                    }
                    failing = true;
                    Some(RETRY)
                }
            }
        };
        tokio::select! {
            () = slot.reload_requested() => {}
            () = sleep_for(next) => {}
            _ = shutdown.changed() => {}
        }
        if shutdown.phase() != Phase::Serving {
            return;
        }
    }
}

async fn sleep_for(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// The built-in catalog plus what `database` says of its user functions and
/// unlogged relations, read on the primary as `user`.
async fn load(
    state: &ProxyState,
    user: &UserConfig,
    database: &str,
) -> Result<FunctionCatalog, String> {
    let primary = state
        .topology()
        .writable_primary()
        .map_err(|no_primary| format!("no primary to read it from ({no_primary:?})"))?;
    let pool = state
        .pool(primary, user, database)
        .ok_or_else(|| "the primary is not configured".to_string())?;
    let deadline = state.config.pool.stall_timeout();
    let read = async {
        let mut backend = pool.checkout().await.map_err(|error| error.to_string())?;
        let functions = query::run(backend.connection(), USER_FUNCTIONS_QUERY.as_bytes()).await;
        let functions = answered(functions)?;
        let unlogged = query::run(backend.connection(), UNLOGGED_RELATIONS_QUERY.as_bytes()).await;
        let unlogged = answered(unlogged)?;
        backend.release();
        Ok::<_, String>((functions, unlogged))
    };
    let (functions, unlogged) = tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| format!("no answer within {} ms", deadline.as_millis()))??;
    let mut catalog = state.catalogs.base().clone();
    for row in functions {
        let [Some(schema), Some(name), volatility] = row.as_slice() else {
            continue;
        };
        // A volatility pgrw does not know is the worst: volatile.
        let volatility = volatility
            .as_deref()
            .and_then(Volatility::from_provolatile)
            .unwrap_or(Volatility::Volatile);
        catalog.add_user_function(schema, name, volatility);
    }
    for row in unlogged {
        if let [Some(name)] = row.as_slice() {
            catalog.add_unlogged_relation(name);
        }
    }
    Ok(catalog)
}

/// The rows of a query the node answered, or why it did not.
fn answered(
    answer: Result<query::Answer, crate::backend::BackendError>,
) -> Result<Vec<Vec<Option<String>>>, String> {
    let answer = answer.map_err(|error| error.to_string())?;
    match answer.error {
        Some(error) => Err(format!("{} (SQLSTATE {})", error.message, error.code)),
        None => Ok(answer.rows),
    }
}

impl Session {
    /// Watches the backend's answers for DDL (which may create, replace or
    /// drop a function, a schema, an unlogged table): once the transaction
    /// that ran it has ended, the database's catalog is reloaded.
    pub(super) fn observe_catalog_change(&mut self, message: &Message) {
        match message.tag() {
            tag::COMMAND_COMPLETE if changes_relations(message.body()) => {
                self.catalog_changed = true;
            }
            tag::READY_FOR_QUERY
                if self.catalog_changed
                    && message.body().first() == Some(&TransactionStatus::Idle.byte()) =>
            {
                self.catalog_changed = false;
                self.catalog.request_reload();
            }
            _ => {}
        }
    }
}
