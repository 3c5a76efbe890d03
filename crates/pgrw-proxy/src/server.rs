//! The listener and what every client session shares: configuration, node
//! monitor, pools, the proxy-wide last committed write, and cancel keys.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgrw_core::classification::DefaultIsolation;
use pgrw_core::route::{NodeId, Topology};
use pgrw_core::sql::shape::ShapeMemory;
use pgrw_core::{FunctionCatalog, Lsn};
use pgrw_monitor::{HealthPolicy, Monitor, MonitorConfig};
use rand::RngCore;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::admin::clients::ClientRegistry;
use crate::admin::pause::Pause;
use crate::auth::scram::ScramVerifier;
use crate::backend::BackendLogin;
use crate::cancel::CancelRegistry;
use crate::catalogs::DatabaseCatalogs;
use crate::config::{ProxyConfig, UserConfig};
use crate::nodes::NodeTable;
use crate::pool::{Pool, Pools};
use crate::reload::LiveConfig;
use crate::session;
use crate::shutdown::{Phase, Shutdown};
use crate::stats::{ProxyStats, StatsSnapshot};
use crate::tls::ClientTls;
use crate::unknown_writes::{Resolved, UnknownWrites};
use crate::workers::Workers;

/// How many statement shapes learned to run only on the primary are kept
/// (the least recently used is forgotten first): a shape is a few dozen bytes.
const PRIMARY_ONLY_SHAPES: usize = 4096;

/// What every session of one proxy shares.
pub struct ProxyState {
    /// The configuration as the proxy started with it; what a reload may
    /// change (policy, pools, users, weights) is read from `live`.
    pub config: ProxyConfig,
    /// The configuration in force, swapped whole by a reload.
    pub(crate) live: LiveConfig,
    /// Logged-in clients, for the admin console.
    pub(crate) clients: ClientRegistry,
    /// Whether new transactions are held (`PAUSE`).
    pub(crate) pause: Pause,
    /// The node monitor: roles, LSNs, health.
    pub monitor: Monitor,
    /// The backend pools.
    pub pools: Pools,
    /// The built-in function catalog (settings statements are classified with it).
    pub catalog: FunctionCatalog,
    /// Each database's catalog as loaded from its primary (`catalogs`).
    pub(crate) catalogs: DatabaseCatalogs,
    /// The highest `pg_current_wal_lsn()` read after a write committed through
    /// the proxy: every later read must see it.
    last_write_lsn: AtomicU64,
    /// Writes acknowledged whose position is unknown (those before the
    /// proxy started, among them).
    unknown_writes: UnknownWrites,
    /// A random secret drawn at startup: unknown users' verifiers are made
    /// from it (see [`ScramVerifier::for_unknown_user`]).
    unknown_user_key: [u8; 32],
    /// Pending logins, clients per user and database, failed logins.
    pub(crate) admission: crate::admission::Admission,
    /// The ParameterStatus values a node reported at its first login.
    server_parameters: Mutex<Option<Vec<(String, String)>>>,
    /// (user, database) pairs a node has let log in, and their login's
    /// default isolation (`ALTER ROLE/DATABASE … SET`).
    known_databases: Mutex<HashMap<(String, String), DefaultIsolation>>,
    /// Proxy-issued cancel keys and the backend each one reaches now.
    pub cancels: CancelRegistry,
    /// TLS for clients: the certificate loaded at bind, and whether it is required.
    pub(crate) client_tls: ClientTls,
    /// Each node by `NodeId` and TLS to it (CA files read at bind, or by
    /// the reload that added it); a reload adds and retires nodes.
    pub(crate) nodes: NodeTable,
    /// Units routed per node and client connections, counted as they happen.
    pub(crate) stats: Arc<ProxyStats>,
    /// Serving, draining or closing: what sessions watch to end on shutdown.
    pub(crate) shutdown: Shutdown,
    /// By node index: when the node last answered a stalled session's
    /// liveness check (milliseconds on the monitor's clock, 0 never), so
    /// that many sessions waiting on one busy node check it once, not each.
    pub(crate) node_answered: Box<[AtomicU64]>,
    /// The shapes of reads a replica refused because they run only on the
    /// primary: routed to the primary from then on (`session::reroute`).
    pub(crate) primary_only: Mutex<ShapeMemory>,
    /// Client connections each worker accepted (`workers`).
    accepted_by_worker: Box<[AtomicU64]>,
}

impl ProxyState {
    /// The SCRAM verifier for `user`, in the configuration in force.
    pub fn verifier(&self, user: &str) -> Option<ScramVerifier> {
        self.live.now().verifier(user).cloned()
    }

    /// The configuration in force (after any reload).
    pub fn config_now(&self) -> Arc<ProxyConfig> {
        self.live.now().config.clone()
    }

    /// Reads the configuration from `path` on `RELOAD` or SIGHUP.
    pub fn set_config_path(&self, path: std::path::PathBuf) {
        self.live.set_path(path);
    }

    /// The verifier an unknown `user` is checked against: the same for the
    /// same name for the proxy's lifetime, matched by no password.
    pub fn unknown_user_verifier(&self, user: &str) -> ScramVerifier {
        ScramVerifier::for_unknown_user(&self.unknown_user_key, user.as_bytes())
    }

    /// The highest write LSN committed through the proxy so far.
    pub fn last_write_lsn(&self) -> Lsn {
        Lsn(self.last_write_lsn.load(Ordering::Acquire))
    }

    /// Raises the proxy-wide last write LSN to `lsn` (never lowers it).
    pub fn record_write(&self, lsn: Lsn) {
        self.last_write_lsn.fetch_max(lsn.0, Ordering::AcqRel);
    }

    /// Records that a write was acknowledged at monitor time `at` without its
    /// position: until a probe of the primary begun after `at` answers, reads
    /// must wait for one (the primary may be dying with the write in it).
    pub fn lose_write_position(&self, at: Duration) {
        self.unknown_writes.lose(at);
    }

    /// When writes of unknown position were acknowledged, if any is still
    /// unknown in `topology`: reads must then see the primary's position as
    /// of a probe begun after that time. Once `topology` knows such a
    /// position, it is recorded as the last write and `None` is returned.
    pub fn unknown_writes_since(&self, topology: &Topology) -> Option<Duration> {
        match self.unknown_writes.resolve(topology) {
            Resolved::None => None,
            Resolved::Waiting(since) => Some(since),
            Resolved::Known(lsn) => {
                self.record_write(lsn);
                None
            }
        }
    }

    /// The catalog sessions of `database` classify with now, and how many
    /// times it was loaded from the primary (`None` before its first session).
    pub fn catalog_of(&self, database: &str) -> Option<(Arc<FunctionCatalog>, u64)> {
        self.catalogs.current(database)
    }

    /// How many client connections each worker has accepted, by worker
    /// (`workers`; one entry with the default).
    pub fn connections_by_worker(&self) -> Vec<u64> {
        self.accepted_by_worker
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }

    /// What was routed to each node, and the client connections, so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The current topology.
    pub fn topology(&self) -> Arc<Topology> {
        self.monitor.topology()
    }

    /// The pool for `node`, logging in as `user` to `database`.
    pub fn pool(&self, node: NodeId, user: &UserConfig, database: &str) -> Option<Arc<Pool>> {
        let (address, tls) = self.nodes.get(node)?;
        let login = BackendLogin {
            node_name: address.name,
            host: address.host,
            port: address.port,
            user: user.name.clone(),
            password: user.node_password().to_string(),
            database: database.to_string(),
            tls,
        };
        Some(self.pools.pool(node, login, &self.config_now().pool))
    }

    /// The ParameterStatus values to announce to clients, once known.
    pub fn server_parameters(&self) -> Option<Vec<(String, String)>> {
        self.server_parameters.lock().ok()?.clone()
    }

    /// Whether a node has let `user` log in to `database`.
    pub fn database_known(&self, user: &str, database: &str) -> bool {
        self.known_databases
            .lock()
            .is_ok_and(|known| known.contains_key(&(user.to_string(), database.to_string())))
    }

    /// Remembers that a node let `user` log in to `database`, and such a
    /// login's default isolation.
    pub fn remember_database(&self, user: &str, database: &str, isolation: DefaultIsolation) {
        if let Ok(mut known) = self.known_databases.lock() {
            known.insert((user.to_string(), database.to_string()), isolation);
        }
    }

    /// Forgets what the logins to `database` (every database: `None`) were
    /// found to be, so that the next login of each pair checks again: an
    /// `ALTER ROLE/DATABASE … SET` may have changed their default isolation.
    pub fn forget_logins(&self, database: Option<&str>) {
        if let Ok(mut known) = self.known_databases.lock() {
            known.retain(|(_, known_database), _| {
                database.is_some_and(|database| database != known_database)
            });
        }
    }

    /// The default isolation of a login of `user` to `database` (as learned
    /// at the pair's first login; read committed when not learned).
    pub fn login_isolation(&self, user: &str, database: &str) -> DefaultIsolation {
        self.known_databases
            .lock()
            .ok()
            .and_then(|known| {
                known
                    .get(&(user.to_string(), database.to_string()))
                    .copied()
            })
            .unwrap_or(DefaultIsolation::Other)
    }

    /// Remembers the ParameterStatus values of a node login, if none are known yet.
    pub fn learn_server_parameters(&self, parameters: &[(String, String)]) {
        if let Ok(mut known) = self.server_parameters.lock()
            && known.is_none()
        {
            *known = Some(parameters.to_vec());
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The listen address could not be bound.
    #[error("listening on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound proxy, ready to serve.
pub struct Proxy {
    listener: TcpListener,
    /// The listeners of workers 1.. (`workers`), on the same address.
    others: Vec<std::net::TcpListener>,
    /// `[admin] metrics_listen`, bound with the SQL port.
    metrics: Option<TcpListener>,
    state: Arc<ProxyState>,
}

impl Proxy {
    /// Binds the listen address and starts the node monitor (inside a tokio runtime).
    pub async fn bind(config: ProxyConfig) -> Result<Proxy, StartError> {
        let address = config.listen_addr()?;
        // A certificate that cannot be used stops the proxy before it listens.
        let client_tls = ClientTls::load(&config.tls)?;
        let node_tls = config.node_tls()?;
        let listen_error = |source| StartError::Listen {
            address: config.listen.clone(),
            source,
        };
        let (listener, others) = if config.workers > 1 {
            // One listener per worker on the same address (`crate::workers`).
            let listener = crate::workers::listen_shared(address).map_err(listen_error)?;
            let bound = listener.local_addr().map_err(listen_error)?;
            let others =
                crate::workers::bind_others(bound, config.workers).map_err(listen_error)?;
            (listener, others)
        } else {
            let listener = TcpListener::bind(address).await.map_err(listen_error)?;
            (listener, Vec::new())
        };
        let metrics =
            match &config.admin.metrics_listen {
                Some(address) => Some(TcpListener::bind(address.as_str()).await.map_err(
                    |source| StartError::Listen {
                        address: address.clone(),
                        source,
                    },
                )?),
                None => None,
            };
        // The monitor bans a replica over the same lag limits routing uses.
        let monitor_config = MonitorConfig {
            health: HealthPolicy::with_lag_limits_of(&config.policy.policy()),
            ..MonitorConfig::default()
        };
        let monitor = Monitor::start(config.node_addresses(), monitor_config);
        let nodes = NodeTable::new(&config.nodes, node_tls);
        // Per-node counters are made for the ids reloads may add too.
        let node_count = nodes.capacity();
        let workers = config.workers;
        let mut unknown_user_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut unknown_user_key);
        let state = Arc::new(ProxyState {
            live: LiveConfig::new(&config),
            config,
            clients: ClientRegistry::default(),
            pause: Pause::default(),
            monitor,
            pools: Pools::new(node_count, workers),
            catalog: FunctionCatalog::builtin(),
            catalogs: DatabaseCatalogs::new(FunctionCatalog::builtin()),
            last_write_lsn: AtomicU64::new(0),
            unknown_writes: UnknownWrites::at_start(),
            unknown_user_key,
            admission: crate::admission::Admission::default(),
            server_parameters: Mutex::new(None),
            known_databases: Mutex::new(HashMap::new()),
            cancels: CancelRegistry::default(),
            client_tls,
            nodes,
            stats: Arc::new(ProxyStats::new(node_count)),
            shutdown: Shutdown::new(),
            node_answered: (0..node_count).map(|_| AtomicU64::new(0)).collect(),
            primary_only: Mutex::new(ShapeMemory::new(PRIMARY_ONLY_SHAPES)),
            accepted_by_worker: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        });
        Ok(Proxy {
            listener,
            others,
            metrics,
            state,
        })
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has a local address")
    }

    /// The shared state (monitor, pools), for status displays and tests.
    pub fn state(&self) -> Arc<ProxyState> {
        self.state.clone()
    }

    /// The address `/metrics` and `/healthz` are served on, if configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref()?.local_addr().ok()
    }

    /// Waits until the monitor has probed every node (or `timeout` passes).
    pub async fn ready(&self, timeout: Duration) -> Result<(), pgrw_monitor::NotReady> {
        self.state.monitor.ready(timeout).await
    }

    /// Serves clients until `shutdown` completes, then shuts down
    /// gracefully: the listener closes at once (new connections are
    /// refused), idle clients get FATAL 57P01 and are closed, and running
    /// statements and transactions may finish for `shutdown_timeout_ms`; at
    /// that deadline every remaining client gets 57P01 and is closed (its
    /// statement cancelled). `stop_now`, polled only once the drain has
    /// begun (a second signal), ends every session at once. With `workers`
    /// above 1 the other workers' threads serve and stop with it.
    pub async fn serve_until(
        self,
        shutdown: impl Future<Output = ()>,
        stop_now: impl Future<Output = ()>,
    ) {
        let Proxy {
            listener,
            others,
            metrics,
            state,
        } = self;
        let metrics =
            metrics.map(|metrics| tokio::spawn(crate::metrics::serve(metrics, state.clone())));
        let workers = Workers::start(others, &state);
        let mut sessions = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                // `SHUTDOWN` on the admin console.
                () = state.shutdown.requested() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => admit(stream, peer, &state, &mut sessions),
                    // Out of file descriptors and the like: back off briefly.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        // Closed, not just no longer accepted: a new client is refused at
        // once instead of waiting in the backlog for a proxy that is leaving.
        drop(listener);
        tokio::pin!(stop_now);
        let stopped = drain(&state, &mut sessions, stop_now.as_mut()).await;
        sessions.shutdown().await;
        workers.finish(stopped, stop_now).await;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        state.monitor.shutdown();
    }

    /// Serves in a background task until the returned handle says stop (or
    /// is dropped).
    pub fn spawn(self) -> ProxyHandle {
        let address = self.local_addr();
        let metrics_address = self.metrics_addr();
        let state = self.state();
        let (shutdown, shutdown_heard) = tokio::sync::oneshot::channel::<()>();
        let (stop, stop_heard) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.serve_until(
            async move {
                let _ = shutdown_heard.await;
            },
            async move {
                let _ = stop_heard.await;
            },
        ));
        ProxyHandle {
            address,
            metrics_address,
            state,
            shutdown: Some(shutdown),
            stop: Some(stop),
            task,
        }
    }
}

/// Starts serving a client the listener of the calling worker accepted (or
/// refuses it, over a limit).
pub(crate) fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    state: &Arc<ProxyState>,
    sessions: &mut JoinSet<()>,
) {
    let _ = stream.set_nodelay(true);
    if let Some(count) = state.accepted_by_worker.get(crate::workers::current()) {
        count.fetch_add(1, Ordering::Relaxed);
    }
    // Counted here, not in its task: a burst of accepts sees every
    // connection before it.
    let open = state.stats.connection_opened();
    let pending = state
        .admission
        .begin_login(state.config.limits.max_pending_logins);
    match pending {
        _ if open.open_then() > state.config.max_client_connections => {
            let refusal = session::Refusal::TooManyClients;
            sessions.spawn(session::refuse(stream, state.clone(), open, refusal));
        }
        None => {
            let refusal = session::Refusal::TooManyPendingLogins;
            sessions.spawn(session::refuse(stream, state.clone(), open, refusal));
        }
        Some(pending) => {
            sessions.spawn(session::serve(stream, peer, state.clone(), open, pending));
        }
    }
}

/// How long sessions told to close at the drain's deadline get to write
/// their FATAL before their tasks are ended.
const CLOSING_GRACE: Duration = Duration::from_secs(2);

/// Lets the sessions end on their own (see [`Proxy::serve_until`]); returns
/// when all have, or at the deadline plus [`CLOSING_GRACE`], or on `stop_now`
/// (then `true`: it completed).
pub(crate) async fn drain(
    state: &ProxyState,
    sessions: &mut JoinSet<()>,
    mut stop_now: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> bool {
    state.shutdown.enter(Phase::Draining);
    let timeout = state.config.shutdown_timeout();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut closing = false;
    while !sessions.is_empty() {
        tokio::select! {
            () = &mut stop_now => return true,
            () = &mut deadline => {
                if closing {
                    return false;
                }
                closing = true;
                state.shutdown.enter(Phase::Closing);
                deadline.as_mut().reset(tokio::time::Instant::now() + CLOSING_GRACE);
            }
            Some(_) = sessions.join_next() => {}
        }
    }
    false
}

/// A proxy serving in the background; dropping it stops it at once.
pub struct ProxyHandle {
    address: SocketAddr,
    metrics_address: Option<SocketAddr>,
    state: Arc<ProxyState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ProxyHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The address `/metrics` and `/healthz` are served on, if configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// The shared state (monitor, pools, stats), for status displays and tests.
    pub fn state(&self) -> Arc<ProxyState> {
        self.state.clone()
    }

    /// Begins a graceful shutdown, as a first SIGTERM does (see
    /// [`Proxy::serve_until`]); [`ProxyHandle::stopped`] waits for its end.
    pub fn shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Waits until it has stopped (after [`ProxyHandle::shutdown`]).
    pub async fn stopped(mut self) {
        let _ = (&mut self.task).await;
    }

    /// Stops it at once, as a second SIGTERM does, and waits until every
    /// session is closed.
    pub async fn stop(mut self) {
        self.stop_now();
        let _ = (&mut self.task).await;
    }

    fn stop_now(&mut self) {
        self.shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}
