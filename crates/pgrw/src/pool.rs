//! [`RwPool`]: a `sqlx::PgPool` per node, the node monitor, and the routing
//! policy, shared by every handle and session.

use std::fmt;
use std::sync::Arc;

use pgrw_core::route::{ConsistencyToken, NodeId, Policy, Topology};
use pgrw_core::{FunctionCatalog, StatementClass, TxAccess};
use pgrw_monitor::SslMode;
use pgrw_monitor::{Monitor, NodeAddress};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{PgPool, Postgres, Transaction};

use crate::error::{BuildError, Unroutable};
use crate::options::RwPoolBuilder;
use crate::placement::Placement;
use crate::session::Session;

/// A pool of connections to a PostgreSQL primary and its streaming replicas
/// that sends each statement where it may run: writes (and anything the
/// classifier is unsure of) to the primary, reads to a replica.
///
/// `&RwPool` is a `sqlx::Executor`, so it drops in where a `&PgPool` was:
///
/// ```no_run
/// # async fn example(pool: &pgrw::RwPool) -> Result<(), sqlx::Error> {
/// // A read: runs on a replica.
/// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(pool).await?;
/// // A write: runs on the primary.
/// sqlx::query("INSERT INTO users (name) VALUES ($1)").bind("ada").execute(pool).await?;
/// # Ok(()) }
/// ```
///
/// Each statement is routed on its own and gives **no read-your-writes**: a
/// read right after a write may run on a replica that has not replayed it.
/// Use a [`Session`] ([`RwPool::session`]) for reads that must see earlier
/// writes. Cloning is cheap (an `Arc`); every clone shares the pools.
#[derive(Clone)]
pub struct RwPool {
    pub(crate) shared: Arc<Shared>,
}

/// One node's connection pool and name.
pub(crate) struct NodePool {
    pub(crate) name: String,
    pub(crate) pool: PgPool,
}

/// What every handle of one [`RwPool`] shares.
pub(crate) struct Shared {
    /// Indexed by [`NodeId`]: primary first, then replicas in the order given.
    pub(crate) nodes: Vec<NodePool>,
    pub(crate) monitor: Monitor,
    pub(crate) policy: Policy,
    pub(crate) catalog: FunctionCatalog,
    /// How long a statement with no node to run on waits for one.
    pub(crate) unavailable_wait: std::time::Duration,
}

impl fmt::Debug for RwPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.shared.nodes.iter().map(|n| n.name.as_str()).collect();
        f.debug_struct("RwPool")
            .field("nodes", &names)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

fn connect_options(address: &NodeAddress) -> PgConnectOptions {
    let options = PgConnectOptions::new_without_pgpass()
        .port(address.port)
        .username(&address.user)
        .database(&address.database)
        .application_name("pgrw")
        // As the monitor reaches the node (`sslmode` in the connection string).
        .ssl_mode(match address.tls.mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        });
    let options = match &address.tls.root_cert {
        Some(file) => options.ssl_root_cert(file),
        None => options,
    };
    let options = if address.host.starts_with('/') {
        options.socket(&address.host)
    } else {
        options.host(&address.host)
    };
    if address.password.is_empty() {
        options
    } else {
        options.password(&address.password)
    }
}

impl RwPool {
    /// Starts building a pool whose primary is at `primary_dsn`
    /// (`postgres://user:password@host:port/database` or `key=value` pairs).
    pub fn builder(primary_dsn: &str) -> RwPoolBuilder {
        RwPoolBuilder::new(primary_dsn)
    }

    /// Starts building a pool from one libpq multi-host URL
    /// (`postgres://user:password@host1:5432,host2:5433,host3:5434/db`):
    /// the first host is the primary (`primary`), the others are replicas
    /// (`replica1`, …). Roles are what the monitor finds, whatever the order.
    ///
    /// Fails with [`BuildError::NotAUrl`] when `url` is not a `postgres://` URL.
    pub fn builder_from_url(url: &str) -> Result<RwPoolBuilder, BuildError> {
        let urls = crate::multi_host::split_hosts(url).ok_or(BuildError::NotAUrl)?;
        let (primary, replicas) = urls.split_first().ok_or(BuildError::NotAUrl)?;
        Ok(RwPoolBuilder::new(primary).replicas(replicas.iter().map(String::as_str)))
    }

    pub(crate) async fn connect_with(builder: RwPoolBuilder) -> Result<RwPool, BuildError> {
        let addresses = builder.addresses()?;
        let nodes = addresses
            .iter()
            .enumerate()
            .map(|(index, address)| {
                // A read on a replica that cannot get a connection soon goes
                // elsewhere; the primary's statements have nowhere else to go.
                let acquire_timeout = if index == 0 {
                    builder.acquire_timeout
                } else {
                    builder.connect_timeout.min(builder.acquire_timeout)
                };
                NodePool {
                    name: address.name.clone(),
                    pool: PgPoolOptions::new()
                        .max_connections(builder.max_connections)
                        .idle_timeout(builder.idle_timeout)
                        .acquire_timeout(acquire_timeout)
                        .connect_lazy_with(connect_options(address)),
                }
            })
            .collect();
        // The monitor bans a replica over the same lag limits routing uses.
        let mut monitor_config = builder.monitor;
        monitor_config.health = monitor_config.health.lag_limits_of(&builder.policy);
        let monitor = Monitor::start(addresses, monitor_config);
        // Not ready with a primary up means a replica is still unprobed or
        // down: reads go elsewhere until it comes up.
        if let Err(not_ready) = monitor.ready(builder.startup_timeout).await
            && !not_ready.primary_found
        {
            return Err(BuildError::NoPrimary(not_ready));
        }
        Ok(RwPool {
            shared: Arc::new(Shared {
                nodes,
                monitor,
                policy: builder.policy,
                catalog: builder.catalog,
                unavailable_wait: builder.unavailable_wait,
            }),
        })
    }

    /// A new session: a cheap handle whose reads see its own writes (and any
    /// token it is given). Make one per request or task.
    pub fn session(&self) -> Session {
        Session::new(self.clone())
    }

    /// A new session whose reads must see at least `token` (from another
    /// session's [`Session::token`], carried in a cookie or a message).
    pub fn session_with_min_lsn(&self, token: ConsistencyToken) -> Session {
        let session = self.session();
        session.require(token);
        session
    }

    /// The connection pool of the current primary (explicit control: every
    /// statement on it runs on the primary).
    pub fn primary(&self) -> Result<PgPool, sqlx::Error> {
        let placed = self
            .shared
            .place_now(StatementClass::Write, &Default::default())?;
        Ok(self.shared.pool(placed.node).clone())
    }

    /// The connection pool of one replica, picked by the balancing policy
    /// (or the primary when no replica can serve reads and the policy allows).
    pub fn replica(&self) -> Result<PgPool, sqlx::Error> {
        let placed = self
            .shared
            .place_now(StatementClass::Read, &Default::default())?;
        Ok(self.shared.pool(placed.node).clone())
    }

    /// The pool of the node called `name` (`primary`, `replica1`, …), if any.
    pub fn node(&self, name: &str) -> Option<PgPool> {
        let node = self.shared.nodes.iter().find(|node| node.name == name)?;
        Some(node.pool.clone())
    }

    /// Begins a transaction on the primary; every statement in it runs there.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.primary()?.begin().await
    }

    /// Begins a `READ ONLY` transaction on a replica (or the primary when no
    /// replica can serve reads); every statement in it runs there, and
    /// PostgreSQL rejects writes in it.
    pub async fn begin_read_only(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let class = StatementClass::Begin(TxAccess::ReadOnly);
        self.shared
            .begin_on_replica(class, &Default::default())
            .await
    }

    /// The nodes as the monitor last saw them.
    pub fn topology(&self) -> Arc<Topology> {
        self.shared.monitor.topology()
    }

    /// Where `sql` would run now, and why (`replica2: read, random, lag 0 B`),
    /// without running it.
    pub fn explain(&self, sql: &str) -> String {
        let classification =
            pgrw_core::sql::classify::classify(sql.as_bytes(), &self.shared.catalog);
        let placement = Placement::new(
            &self.shared,
            classification.class,
            classification.hint,
            &Default::default(),
        );
        placement.explain_now()
    }

    /// The node monitor (for its topology, or to report a failure seen elsewhere).
    pub fn monitor(&self) -> &Monitor {
        &self.shared.monitor
    }

    /// Closes every node's pool (waiting for connections in use to come back).
    pub async fn close(&self) {
        for node in &self.shared.nodes {
            node.pool.close().await;
        }
    }
}

impl Shared {
    /// The pool of `node` (ids come from the monitor's topology, whose nodes
    /// are the addresses the pools were built from, in the same order).
    pub(crate) fn pool(&self, node: NodeId) -> &PgPool {
        &self.nodes[node.index()].pool
    }

    /// Where a statement of `class` would run now, without waiting for a replica.
    pub(crate) fn place_now(
        &self,
        class: StatementClass,
        session: &pgrw_core::route::SessionState,
    ) -> Result<crate::placement::Placed, sqlx::Error> {
        Placement::new(self, class, None, session).now()
    }

    /// Begins a read-only transaction where the route for `class` says,
    /// trying another node when a replica cannot be reached.
    pub(crate) async fn begin_on_replica(
        &self,
        class: StatementClass,
        session: &pgrw_core::route::SessionState,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let mut placement = Placement::new(self, class, None, session);
        loop {
            let placed = placement.decide().await?;
            // BEGIN READ ONLY changes nothing: it may be sent again elsewhere.
            match self.pool(placed.node).begin_with("BEGIN READ ONLY").await {
                Ok(transaction) => return Ok(transaction),
                Err(error) => {
                    if !(placed.on_replica && placement.failed(&placed, &error)) {
                        return Err(error);
                    }
                }
            }
        }
    }
}

/// Why a route named no node, for callers.
pub(crate) fn unroutable(explanation: String) -> sqlx::Error {
    Unroutable { explanation }.into_sqlx()
}
