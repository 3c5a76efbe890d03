//! Backend pools, one per (node, database, user): at most `size` connections,
//! idle ones reused newest first, stale ones closed, and an RAII checkout
//! guard that closes a connection nobody gave back cleanly.
//!
//! With `workers = N` each worker thread has its own share of the pool: its
//! part of `size` (split evenly, at least 1 each) and its own idle
//! connections, since a connection's socket belongs to the runtime of the
//! thread that opened it (see [`crate::workers`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pgrw_core::route::NodeId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::backend::{BackendConnection, BackendError, BackendLogin};
use crate::config::PoolConfig;
use crate::protocol::backend::TransactionStatus;

/// Why no connection could be checked out.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// Every connection stayed busy for the whole checkout timeout.
    #[error("no free connection to node {node} within {millis} ms (pool size {size})")]
    Timeout {
        /// The node.
        node: String,
        /// The checkout timeout.
        millis: u64,
        /// The pool size.
        size: usize,
    },
    /// Connecting timed out.
    #[error("connecting to node {node} timed out after {millis} ms")]
    ConnectTimeout {
        /// The node.
        node: String,
        /// The connect timeout.
        millis: u64,
    },
    /// Connecting or logging in failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The connections to one node as one user, to one database.
pub struct Pool {
    login: BackendLogin,
    node: NodeId,
    config: PoolConfig,
    /// By worker (one with the default `workers = 1`).
    shares: Box<[Share]>,
    /// The connections checked out on this node, over all its pools.
    in_flight: Arc<AtomicU32>,
    /// Clients waiting for a free slot now (`cl_waiting`).
    waiting: AtomicU32,
    /// Its node was removed by a reload: connections given back are closed.
    retired: AtomicBool,
}

impl Pool {
    /// An empty pool that logs in with `login` and counts its checkouts in
    /// `in_flight` (shared by every pool of the node), for `workers` worker
    /// threads.
    pub fn new(
        node: NodeId,
        login: BackendLogin,
        config: PoolConfig,
        in_flight: Arc<AtomicU32>,
        workers: usize,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            shares: share_sizes(config.size, workers)
                .map(|size| Share {
                    size,
                    permits: Arc::new(Semaphore::new(size)),
                    idle: Mutex::new(Vec::new()),
                })
                .collect(),
            login,
            node,
            config,
            in_flight,
            waiting: AtomicU32::new(0),
            retired: AtomicBool::new(false),
        })
    }

    /// The node it connects to.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// How many idle connections it holds now.
    pub fn idle_count(&self) -> usize {
        self.shares
            .iter()
            .map(|share| share.idle.lock().map(|idle| idle.len()).unwrap_or(0))
            .sum()
    }

    /// Who it logs in as, and where.
    pub fn login(&self) -> &BackendLogin {
        &self.login
    }

    /// What it holds now, for the admin console and metrics.
    pub fn usage(&self) -> PoolUsage {
        PoolUsage {
            size: self.config.size,
            checked_out: self.shares.iter().map(Share::checked_out).sum(),
            idle: self.idle_count(),
            waiting: self.waiting.load(Ordering::Relaxed) as usize,
        }
    }

    /// Closes its idle connections (checked-out ones stay with their clients).
    pub fn close_idle(&self) {
        for share in &self.shares {
            let closing = share
                .idle
                .lock()
                .map(|mut idle| std::mem::take(&mut *idle))
                .unwrap_or_default();
            drop(closing);
        }
    }

    /// Its idle connections: backend process id and age.
    pub fn idle_connections(&self) -> Vec<(i32, std::time::Duration)> {
        let mut connections = Vec::new();
        for share in &self.shares {
            let Ok(idle) = share.idle.lock() else {
                continue;
            };
            connections.extend(idle.iter().map(|connection| {
                (
                    connection.cancel_target.process_id,
                    connection.opened_at.elapsed(),
                )
            }));
        }
        connections
    }

    /// A connection for exclusive use: an idle one if any is fresh enough,
    /// else a new one; waits at most the checkout timeout for a free slot.
    pub async fn checkout(self: &Arc<Self>) -> Result<PooledBackend, CheckoutError> {
        // A free slot is the common case: take it without arming a timer.
        let worker = self.worker();
        let permits = &self.shares[worker].permits;
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let _waiting = Waiting::on(&self.waiting);
                tokio::time::timeout(
                    self.config.checkout_timeout(),
                    permits.clone().acquire_owned(),
                )
                .await
            }
            .map_err(|_| {
                tracing::warn!(
                    node = %self.login.node_name,
                    pool_size = self.config.size,
                    checkout_timeout_ms = self.config.checkout_timeout_ms,
                    "pool exhausted: no free connection within checkout_timeout_ms"
                );
                CheckoutError::Timeout {
                    node: self.login.node_name.clone(),
                    millis: self.config.checkout_timeout_ms,
                    size: self.config.size,
                }
            })?
            .expect("the pool's semaphore is never closed"),
        };
        if let Some(connection) = self.take_idle(worker) {
            return Ok(PooledBackend::new(self, connection, permit, worker));
        }
        let connection = tokio::time::timeout(
            self.config.connect_timeout(),
            BackendConnection::connect(&self.login),
        )
        .await
        .map_err(|_| CheckoutError::ConnectTimeout {
            node: self.login.node_name.clone(),
            millis: self.config.connect_timeout_ms,
        })??;
        Ok(PooledBackend::new(
            self,
            Box::new(connection),
            permit,
            worker,
        ))
    }

    /// The share of the calling thread's worker.
    fn worker(&self) -> usize {
        crate::workers::current().min(self.shares.len() - 1)
    }

    fn take_idle(&self, worker: usize) -> Option<Box<BackendConnection>> {
        let mut idle = self.shares[worker].idle.lock().ok()?;
        let now = Instant::now();
        // Newest first; anything idle too long, too old or closed by the node
        // is dropped.
        while let Some(connection) = idle.pop() {
            if self.fresh(&connection, now) {
                return Some(connection);
            }
        }
        None
    }

    fn fresh(&self, connection: &BackendConnection, now: Instant) -> bool {
        now.duration_since(connection.idle_since) < self.config.idle_timeout()
            && now.duration_since(connection.opened_at) < self.config.max_lifetime()
            && connection.looks_alive()
    }

    fn give_back(&self, mut connection: Box<BackendConnection>, worker: usize) {
        let now = Instant::now();
        if connection.status != TransactionStatus::Idle
            || self.retired.load(Ordering::Relaxed)
            || connection.tainted
            || connection.has_settings
            || !self.fresh(&connection, now)
        {
            return;
        }
        connection.idle_since = now;
        // Its next client starts replaying its own settings from the first.
        connection.settings_applied = 0;
        if let Ok(mut idle) = self.shares[worker].idle.lock() {
            idle.push(connection);
        }
    }
}

/// One worker's part of a pool.
struct Share {
    /// Its part of `size`.
    size: usize,
    permits: Arc<Semaphore>,
    /// Boxed: a connection changes hands twice per statement, and moving a
    /// pointer is cheaper than moving its buffers and sets.
    #[allow(clippy::vec_box)]
    idle: Mutex<Vec<Box<BackendConnection>>>,
}

impl Share {
    fn checked_out(&self) -> usize {
        self.size - self.permits.available_permits().min(self.size)
    }
}

/// The most connections one pool of `size` holds with `workers` worker
/// threads: `size`, or one per worker when the pool is smaller.
pub fn connections_at_most(size: usize, workers: usize) -> usize {
    share_sizes(size, workers).sum()
}

/// `size` split over `workers` as evenly as it goes, at least 1 each (so
/// that a pool smaller than the workers holds one connection per worker).
fn share_sizes(size: usize, workers: usize) -> impl Iterator<Item = usize> {
    let workers = workers.max(1);
    (0..workers).map(move |worker| (size / workers + usize::from(worker < size % workers)).max(1))
}

/// What a pool holds at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Its most connections (`pool.size`).
    pub size: usize,
    /// Connections checked out by clients (`sv_active`).
    pub checked_out: usize,
    /// Idle connections kept for reuse (`sv_idle`).
    pub idle: usize,
    /// Clients waiting for a free slot (`cl_waiting`).
    pub waiting: usize,
}

/// Counts one client waiting for a slot while it lives (also when the wait
/// is given up on because the client left).
struct Waiting<'a>(&'a AtomicU32);

impl<'a> Waiting<'a> {
    fn on(count: &'a AtomicU32) -> Waiting<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A checked-out connection. [`PooledBackend::release`] gives it back when it
/// is idle and clean; dropping it any other way closes the connection (so a
/// client that vanishes mid-transaction has it rolled back by the node).
///
/// While it lives it counts in its node's in-flight total.
pub struct PooledBackend {
    connection: Option<Box<BackendConnection>>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
    /// The worker whose idle list it goes back to.
    worker: usize,
}

impl Drop for PooledBackend {
    fn drop(&mut self) {
        self.pool.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PooledBackend {
    fn new(
        pool: &Arc<Pool>,
        connection: Box<BackendConnection>,
        permit: OwnedSemaphorePermit,
        worker: usize,
    ) -> PooledBackend {
        pool.in_flight.fetch_add(1, Ordering::Relaxed);
        PooledBackend {
            connection: Some(connection),
            pool: pool.clone(),
            _permit: permit,
            worker,
        }
    }

    /// The node it is connected to.
    pub fn node(&self) -> NodeId {
        self.pool.node
    }

    /// The connection.
    pub fn connection(&mut self) -> &mut BackendConnection {
        self.connection
            .as_mut()
            .expect("a checked-out backend holds its connection until released")
    }

    /// Gives the connection back to its pool (if it is idle, untainted and
    /// fresh; else closes it).
    pub fn release(mut self) {
        if let Some(connection) = self.connection.take() {
            self.pool.give_back(connection, self.worker);
        }
    }
}

/// Every pool of the proxy, created on first use, and the connections
/// checked out on each node.
pub struct Pools {
    pools: Mutex<HashMap<(NodeId, String, String), Arc<Pool>>>,
    /// By node index.
    in_flight: Box<[Arc<AtomicU32>]>,
    /// Worker threads, each with its own idle connections.
    workers: usize,
}

impl Pools {
    /// No pool yet, for `nodes` nodes and `workers` worker threads.
    pub fn new(nodes: usize, workers: usize) -> Pools {
        Pools {
            pools: Mutex::new(HashMap::new()),
            in_flight: (0..nodes).map(|_| Arc::new(AtomicU32::new(0))).collect(),
            workers,
        }
    }

    /// The connections checked out on each node now (a transaction's or a
    /// pinned session's count while they are held), by node index: the load
    /// least-outstanding balancing compares.
    pub fn in_flight(&self) -> impl Iterator<Item = u32> + '_ {
        self.in_flight
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
    }

    /// The count of connections checked out on `node` now, shared.
    pub fn in_flight_on(&self, node: NodeId) -> Option<Arc<AtomicU32>> {
        self.in_flight.get(node.index()).cloned()
    }

    /// Forgets the pools of the users `forget` says yes to: clients that
    /// hold one keep it until they leave; the next asks for a new one
    /// (made with the configuration then in force).
    pub fn forget(&self, forget: impl Fn(&str) -> bool) {
        let mut pools = self.pools.lock().expect("the pool map is never poisoned");
        pools.retain(|(_, _, user), _| !forget(user));
    }

    /// Closes the idle connections to `database` on every node (before a
    /// `DROP DATABASE` of it, which fails while anyone is connected).
    pub fn close_idle_to(&self, database: &str) {
        let pools = self.pools.lock().expect("the pool map is never poisoned");
        for ((_, pool_database, _), pool) in pools.iter() {
            if pool_database == database {
                pool.close_idle();
            }
        }
    }

    /// Forgets every pool of `node` (a reload removed it) and closes their
    /// idle connections; a connection a client holds now is closed when it
    /// is given back, so a transaction or pinned session on it ends first.
    pub fn retire_node(&self, node: NodeId) {
        let mut pools = self.pools.lock().expect("the pool map is never poisoned");
        pools.retain(|(pool_node, _, _), pool| {
            if *pool_node != node {
                return true;
            }
            pool.retired.store(true, Ordering::Relaxed);
            pool.close_idle();
            false
        });
    }

    /// Every pool made so far, ordered by node, database and user.
    pub fn all(&self) -> Vec<Arc<Pool>> {
        let pools = self.pools.lock().expect("the pool map is never poisoned");
        let mut all: Vec<_> = pools
            .iter()
            .map(|(key, pool)| (key.clone(), pool.clone()))
            .collect();
        all.sort_by(|(a, _), (b, _)| a.cmp(b));
        all.into_iter().map(|(_, pool)| pool).collect()
    }

    /// The pool for (`node`, database, user) of `login`, created when first asked.
    pub fn pool(&self, node: NodeId, login: BackendLogin, config: &PoolConfig) -> Arc<Pool> {
        let key = (node, login.database.clone(), login.user.clone());
        let mut pools = self.pools.lock().expect("the pool map is never poisoned");
        pools
            .entry(key)
            .or_insert_with(|| {
                let in_flight = self.in_flight.get(node.index()).cloned();
                Pool::new(
                    node,
                    login,
                    config.clone(),
                    in_flight.unwrap_or_default(),
                    self.workers,
                )
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::share_sizes;

    #[test]
    fn a_pool_size_is_split_over_the_workers_at_least_one_each() {
        assert_eq!(share_sizes(20, 1).collect::<Vec<_>>(), [20]);
        assert_eq!(share_sizes(20, 2).collect::<Vec<_>>(), [10, 10]);
        assert_eq!(share_sizes(7, 3).collect::<Vec<_>>(), [3, 2, 2]);
        assert_eq!(share_sizes(1, 2).collect::<Vec<_>>(), [1, 1]);
    }
}
