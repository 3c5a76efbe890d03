//! Live reload (SIGHUP, or `RELOAD` on the admin console): `pgrw.toml` is
//! read again and checked whole; a file that is invalid, or that changes
//! what cannot change while clients are connected, is refused with the
//! reason and the configuration in use stays. Otherwise it applies at once,
//! without dropping a client:
//!
//! - `[policy]`: every statement routed after the reload.
//! - `[[users]]`: added, removed, passwords and `admin`, for logins after it
//!   (a connected client stays logged in); pools of a user whose password
//!   changed are made afresh for new clients.
//! - `[pool]` sizes and timeouts (`mode`, `stall_timeout_ms` excepted): pools
//!   are made afresh for clients that connect after it; connected clients
//!   keep the pools they have until they leave.
//! - `[[nodes]]` (see [`node_changes`]): a node of the same name reached the
//!   same way keeps its id and takes its new `weight`; a new node gets a new
//!   id (never one a removed node had), is probed, and gets reads once it is
//!   up and has replayed what each read requires, as every replica; a node
//!   gone (or reached another way: `host`, `port`, `sslmode`, `sslrootcert`)
//!   gets no new unit, its idle backends are closed, a client's transaction
//!   or pin on it finishes there, and it leaves `SHOW NODES` and `/metrics`.
//!   A node last seen as the primary is never removed: such a file is refused.
//!
//! Refused: `listen`, `[tls]`, `[admin]`, `[limits]`, `pool.mode`,
//! `pool.stall_timeout_ms` and the top-level timeouts and limits: those need
//! a restart.

mod node_changes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rand::RngCore;

use crate::auth::scram::{self, ScramVerifier};
use crate::config::{PoolConfig, ProxyConfig};
use crate::server::ProxyState;

/// The configuration in force and what is made from it, swapped whole.
pub(crate) struct Live {
    /// The configuration.
    pub(crate) config: Arc<ProxyConfig>,
    /// SCRAM verifiers, one per user.
    verifiers: HashMap<String, ScramVerifier>,
}

/// The configuration a reload may change, and the file it comes from.
pub(crate) struct LiveConfig {
    live: RwLock<Arc<Live>>,
    /// Moved on by every reload that applied: sessions keep a copy of the
    /// configuration and look at this (one relaxed load) before each unit.
    generation: AtomicU64,
    /// The file `RELOAD` and SIGHUP read; none for a proxy made from text.
    path: Mutex<Option<PathBuf>>,
}

impl LiveConfig {
    /// `config`, with its verifiers made.
    pub(crate) fn new(config: &ProxyConfig) -> LiveConfig {
        LiveConfig {
            live: RwLock::new(Arc::new(Live::of(config.clone(), None))),
            generation: AtomicU64::new(0),
            path: Mutex::new(None),
        }
    }

    /// The configuration in force and its verifiers.
    pub(crate) fn now(&self) -> Arc<Live> {
        self.live
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How many reloads applied so far.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Sets the file reloads read.
    pub(crate) fn set_path(&self, path: PathBuf) {
        if let Ok(mut slot) = self.path.lock() {
            *slot = Some(path);
        }
    }

    fn path(&self) -> Option<PathBuf> {
        self.path.lock().ok()?.clone()
    }

    fn swap(&self, config: ProxyConfig) {
        let live = Live::of(config, Some(&self.now()));
        *self
            .live
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(live);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

impl Live {
    /// `config` with its verifiers: a user whose password is unchanged since
    /// `previous` keeps its verifier (no key derivation on the serving thread
    /// for users a reload did not touch).
    fn of(config: ProxyConfig, previous: Option<&Live>) -> Live {
        let unchanged = |name: &str, password: &str| {
            let previous = previous?;
            let user = previous
                .config
                .users
                .iter()
                .find(|user| user.name == name)?;
            (user.password == password)
                .then(|| previous.verifiers.get(name).cloned())
                .flatten()
        };
        let verifiers = config
            .users
            .iter()
            .map(|user| {
                if let Some(verifier) = unchanged(&user.name, &user.password) {
                    return (user.name.clone(), verifier);
                }
                // A verifier given in pgrw.toml is used as is; a password gets one
                // with a fresh salt.
                let verifier = user.scram_verifier().unwrap_or_else(|| {
                    let mut salt = [0u8; scram::DEFAULT_SALT_LEN];
                    rand::thread_rng().fill_bytes(&mut salt);
                    ScramVerifier::from_password(
                        user.password.as_bytes(),
                        &salt,
                        scram::DEFAULT_ITERATIONS,
                    )
                });
                (user.name.clone(), verifier)
            })
            .collect();
        Live {
            config: Arc::new(config),
            verifiers,
        }
    }

    /// The SCRAM verifier of `user`.
    pub(crate) fn verifier(&self, user: &str) -> Option<&ScramVerifier> {
        self.verifiers.get(user)
    }
}

/// Reads the proxy's file again and applies it (see the module's doc).
/// `Err`: why it was refused, for the log and the console; nothing changed.
pub fn reload(state: &ProxyState) -> Result<(), String> {
    let result = try_reload(state);
    match &result {
        Ok(()) => tracing::info!("configuration reloaded"),
        Err(why) => {
            tracing::warn!(reason = %why, "configuration reload refused: the old one stays")
        }
    }
    result
}

fn try_reload(state: &ProxyState) -> Result<(), String> {
    let Some(path) = state.live.path() else {
        return Err("this proxy was not started from a file: nothing to reload".to_string());
    };
    let new = ProxyConfig::load(&path).map_err(|error| error.to_string())?;
    let old = state.live.now().config.clone();
    if let Some(key) = needs_restart(&old, &new) {
        return Err(format!(
            "{}: `{key}` changed, which needs a restart; put it back to reload the rest",
            path.display()
        ));
    }
    let changes = node_changes::node_changes(&state.nodes.live(), &new.nodes);
    let ids_left = state
        .nodes
        .capacity()
        .saturating_sub(state.nodes.ids_given());
    if let Some(why) = node_changes::refusal(&changes, &state.topology(), ids_left) {
        return Err(format!("{}: {why}", path.display()));
    }
    // Every CA file is read before anything changes.
    let tls = new.node_tls().map_err(|error| error.to_string())?;
    apply_node_changes(state, &new, changes, tls);
    let changed_users: Vec<String> = old
        .users
        .iter()
        .filter(|user| new.user(&user.name) != Some(*user))
        .map(|user| user.name.clone())
        .collect();
    if new.pool != old.pool {
        state.pools.forget(|_| true);
    } else if !changed_users.is_empty() {
        state
            .pools
            .forget(|user| changed_users.iter().any(|name| name == user));
    }
    state.live.swap(new);
    Ok(())
}

/// Adds the new nodes (monitor first: a node is probed before any route
/// can name it), retires the removed ones and sets the kept ones' weights.
fn apply_node_changes(
    state: &ProxyState,
    new: &ProxyConfig,
    changes: node_changes::NodeChanges,
    mut tls: Vec<pgrw_monitor::NodeTlsClient>,
) {
    let addresses = new.node_addresses();
    for (index, config) in changes.added {
        let (Some(address), Some(tls)) = (addresses.get(index), tls.get_mut(index)) else {
            continue;
        };
        let Some(id) = state.monitor.add_node(address.clone()) else {
            continue;
        };
        if !state.nodes.add(id, config, tls.clone()) {
            // Out of step with the monitor (cannot happen: both count from
            // the start); never route to an id the table cannot reach.
            tracing::warn!(%id, "a node added by a reload has no slot: it is removed again");
            state.monitor.remove_node(id);
        }
    }
    for (id, _, _) in changes.removed {
        state.monitor.drain_node(id);
        state.nodes.retire(id);
        state.pools.retire_node(id);
        let in_flight = state.pools.in_flight_on(id);
        tokio::spawn(stop_probing_once_drained(
            state.monitor.clone(),
            id,
            in_flight,
        ));
    }
    let topology = state.topology();
    for (id, weight) in changes.kept {
        if topology.node(id).is_some_and(|node| node.weight != weight) {
            state.monitor.set_weight(id, weight);
        }
    }
}

/// How often a removed node's checked-out connections are counted.
const DRAIN_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Stops the monitor's probes of a removed `node` once no connection to it
/// is checked out (`in_flight`): until then a transaction or pin on it
/// finishes there, and is routed by its health.
async fn stop_probing_once_drained(
    monitor: pgrw_monitor::Monitor,
    node: pgrw_core::route::NodeId,
    in_flight: Option<Arc<std::sync::atomic::AtomicU32>>,
) {
    if let Some(in_flight) = in_flight {
        while in_flight.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(DRAIN_CHECK_INTERVAL).await;
        }
    }
    monitor.remove_node(node);
    tracing::info!(%node, "removed node drained");
}

/// The first key that differs between `old` and `new` and cannot change
/// while the proxy runs.
fn needs_restart(old: &ProxyConfig, new: &ProxyConfig) -> Option<String> {
    let pool = |config: &PoolConfig| (config.mode, config.stall_timeout_ms);
    [
        ("listen", old.listen == new.listen),
        ("workers", old.workers == new.workers),
        (
            "login_timeout_ms",
            old.login_timeout_ms == new.login_timeout_ms,
        ),
        (
            "max_client_connections",
            old.max_client_connections == new.max_client_connections,
        ),
        (
            "shutdown_timeout_ms",
            old.shutdown_timeout_ms == new.shutdown_timeout_ms,
        ),
        ("tls", old.tls == new.tls),
        ("admin", old.admin == new.admin),
        ("limits", old.limits == new.limits),
        (
            "pool.mode or pool.stall_timeout_ms",
            pool(&old.pool) == pool(&new.pool),
        ),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(key, _)| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> ProxyConfig {
        let text = format!(
            "[[nodes]]\nname = \"primary\"\nport = 5432\n[[nodes]]\nname = \"replica1\"\nport = 5433\n{extra}\n[[users]]\nname = \"u\"\npassword = \"p\"\n"
        );
        ProxyConfig::from_toml("pgrw.toml", &text).expect("a valid config")
    }

    #[test]
    fn policy_pool_sizes_users_and_weights_reload() {
        let old = config("");
        let mut new = config("weight = 3\n[policy]\nbalancing = \"random\"\n[pool]\nsize = 5");
        new.users[0].password = "other".into();
        assert_eq!(needs_restart(&old, &new), None);
    }

    #[test]
    fn nodes_change_without_a_restart_but_listen_needs_one() {
        let old = config("");
        let mut moved = old.clone();
        moved.nodes[1].port = 6000;
        moved.nodes.push(moved.nodes[1].clone());
        moved.nodes[2].name = "replica2".into();
        assert_eq!(needs_restart(&old, &moved), None);
        let mut listen = old.clone();
        listen.listen = "127.0.0.1:7000".into();
        assert_eq!(needs_restart(&old, &listen).as_deref(), Some("listen"));
    }
}
