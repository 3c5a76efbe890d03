//! How an [`RwPool`] is configured: the nodes, the per-node pool sizes and
//! timeouts (the origin's 20 connections and 300 s idle timeout by default),
//! and the routing policy of `pgrw-core`.

use std::time::Duration;

use pgrw_core::FunctionCatalog;
use pgrw_core::route::{Balancing, Policy, StaleRead};
use pgrw_monitor::{MonitorConfig, NodeAddress};

use crate::error::BuildError;
use crate::pool::RwPool;

/// Connections per node, at most (the origin's `max_connections=20`).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 20;
/// How long an unused connection is kept (the origin's `stale_timeout=300`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a statement waits for a connection from a node's pool.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read waits for a connection to a replica before it reports the
/// replica failed and tries another node.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a statement that no node can run waits for the monitor to find one.
pub const DEFAULT_UNAVAILABLE_WAIT: Duration = Duration::from_secs(2);
/// How long [`RwPoolBuilder::connect`] waits for the monitor's first view of the nodes.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds an [`RwPool`]: start with [`RwPool::builder`].
///
/// ```no_run
/// # async fn example() -> Result<(), pgrw::BuildError> {
/// let pool = pgrw::RwPool::builder("postgres://postgres:postgres@127.0.0.1:5432/postgres")
///     .replica("postgres://postgres:postgres@127.0.0.1:5433/postgres")
///     .replica("postgres://postgres:postgres@127.0.0.1:5434/postgres")
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RwPoolBuilder {
    pub(crate) primary: String,
    pub(crate) replicas: Vec<String>,
    pub(crate) max_connections: u32,
    pub(crate) idle_timeout: Duration,
    pub(crate) acquire_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) startup_timeout: Duration,
    pub(crate) unavailable_wait: Duration,
    pub(crate) policy: Policy,
    pub(crate) catalog: FunctionCatalog,
    pub(crate) monitor: MonitorConfig,
}

impl RwPoolBuilder {
    pub(crate) fn new(primary_dsn: &str) -> RwPoolBuilder {
        RwPoolBuilder {
            primary: primary_dsn.to_owned(),
            replicas: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            unavailable_wait: DEFAULT_UNAVAILABLE_WAIT,
            // Random, as the origin's `random.choice`: sqlx gives a connection
            // back to its pool on a spawned task, so the in-use count
            // least-outstanding reads lags behind each statement.
            policy: Policy {
                balancing: Balancing::Random,
                ..Policy::default()
            },
            catalog: FunctionCatalog::builtin(),
            monitor: MonitorConfig::default(),
        }
    }

    /// Adds a replica by its connection string (`postgres://…` or `key=value`).
    /// Replicas are named `replica1`, `replica2`, … in the order added.
    pub fn replica(mut self, dsn: &str) -> RwPoolBuilder {
        self.replicas.push(dsn.to_owned());
        self
    }

    /// Adds several replicas (see [`RwPoolBuilder::replica`]).
    pub fn replicas<'a>(mut self, dsns: impl IntoIterator<Item = &'a str>) -> RwPoolBuilder {
        self.replicas.extend(dsns.into_iter().map(str::to_owned));
        self
    }

    /// Connections per node, at most (default 20).
    pub fn max_connections(mut self, max: u32) -> RwPoolBuilder {
        self.max_connections = max;
        self
    }

    /// How long an unused connection is kept open (default 300 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> RwPoolBuilder {
        self.idle_timeout = timeout;
        self
    }

    /// How long a statement waits for a connection from a node's pool,
    /// connecting included (default 10 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> RwPoolBuilder {
        self.acquire_timeout = timeout;
        self
    }

    /// How long a read waits for a connection to a replica before reporting
    /// the replica failed and trying another node (default 2 s): the acquire
    /// timeout of the replicas' pools. A replica promoted later keeps it.
    pub fn connect_timeout(mut self, timeout: Duration) -> RwPoolBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// How long a statement that no node can run waits for the monitor to find one.
    pub const DEFAULT_UNAVAILABLE_WAIT: Duration = Duration::from_secs(2);
    /// How long [`RwPoolBuilder::connect`] waits for the monitor to see every
    /// node once (default 10 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> RwPoolBuilder {
        self.startup_timeout = timeout;
        self
    }

    /// How long a statement that no node can run (the primary down, every
    /// node down) waits for the monitor to find one before failing with
    /// [`crate::Unroutable`] (default 2 s). It rides over a missed probe and
    /// the moments of a promotion; zero fails at once.
    pub fn unavailable_wait(mut self, wait: Duration) -> RwPoolBuilder {
        self.unavailable_wait = wait;
        self
    }

    /// The whole routing policy (balancing, primary reads, lag limits,
    /// read-your-writes); see [`Policy`].
    pub fn policy(mut self, policy: Policy) -> RwPoolBuilder {
        self.policy = policy;
        self
    }

    /// How reads pick among replicas (default random, as the origin's
    /// `random.choice`). `LeastOutstanding` compares each node's connections
    /// in use as sqlx counts them, which lag a little: sqlx gives a
    /// connection back to its pool on a spawned task after the statement.
    pub fn balancing(mut self, balancing: Balancing) -> RwPoolBuilder {
        self.policy.balancing = balancing;
        self
    }

    /// Whether a [`crate::Session`]'s reads must see its own writes (default on).
    /// Off, sessions read from any replica, however far behind.
    pub fn read_your_writes(mut self, on: bool) -> RwPoolBuilder {
        self.policy.read_your_writes = on;
        self
    }

    /// How long a session's read waits for a replica to replay the session's
    /// last write before going to the primary (default: no wait, the primary at once).
    pub fn read_your_writes_wait(mut self, wait: Duration) -> RwPoolBuilder {
        self.policy.stale_read = if wait.is_zero() {
            StaleRead::Primary
        } else {
            StaleRead::Wait(wait)
        };
        self
    }

    /// The function catalog the classifier judges function calls with
    /// (default: PostgreSQL's built-ins; add your read-only functions to it).
    pub fn catalog(mut self, catalog: FunctionCatalog) -> RwPoolBuilder {
        self.catalog = catalog;
        self
    }

    /// How the node monitor probes the nodes, and how long it bans them. Its
    /// lag limits are the policy's ([`RwPoolBuilder::policy`]: by default a
    /// replica more than 5 s behind serves no reads), whatever `config` says.
    pub fn monitor_config(mut self, config: MonitorConfig) -> RwPoolBuilder {
        self.monitor = config;
        self
    }

    /// The nodes' addresses, primary first, as the monitor and the pools see them.
    pub(crate) fn addresses(&self) -> Result<Vec<NodeAddress>, BuildError> {
        let primary = NodeAddress::from_dsn("primary", &self.primary)?;
        let mut addresses = vec![primary];
        for (index, dsn) in self.replicas.iter().enumerate() {
            let name = format!("replica{}", index + 1);
            addresses.push(NodeAddress::from_dsn(&name, dsn)?);
        }
        Ok(addresses)
    }

    /// Starts the node monitor, waits until it has seen the nodes (or the
    /// startup timeout passes), and opens a lazily-connecting pool per node.
    ///
    /// Fails on an invalid connection string, or when the monitor sees no
    /// primary by the startup timeout. A replica that is down at startup is not
    /// an error: reads go elsewhere until it comes up.
    pub async fn connect(self) -> Result<RwPool, BuildError> {
        RwPool::connect_with(self).await
    }
}
