//! The proxy's configuration (`pgrw.toml`): where it listens, the nodes, the
//! users it accepts and logs in as, pool sizes and timeouts, and the routing
//! policy.
//!
//! [`ProxyConfig::from_toml`] reads and checks it all before anything listens:
//! every mistake is a [`ConfigError`] naming the key and how to fix it.
//!
//! ```toml
//! listen = "127.0.0.1:6432"
//!
//! [[nodes]]
//! name = "primary"
//! host = "127.0.0.1"
//! port = 5432
//!
//! [[users]]
//! name = "postgres"
//! password = "postgres"
//! auth = "scram-sha-256"   # or "md5", "trust"
//!
//! [pool]
//! size = 20
//! mode = "transaction"     # or "session"
//!
//! [policy]
//! balancing = "least_outstanding"   # random, round_robin, weighted
//!
//! [tls]                    # TLS for clients: see crate::tls
//! cert_file = "server.crt"
//! key_file = "server.key"
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use pgrw_monitor::SslMode;
use pgrw_monitor::{NodeAddress, NodeTls, NodeTlsClient};
use serde::Deserialize;

use crate::auth::StoredPassword;
use crate::auth::scram::ScramVerifier;

mod limits;
mod policy;
mod pool;
mod secret;

pub use limits::LimitsConfig;
pub use policy::{
    BalancingConfig, ConsistencyConfig, DEFAULT_READ_YOUR_WRITES_WAIT_MS, PolicyConfig,
    PrimaryReadsConfig, TransactionReadsConfig,
};
pub use pool::{PoolConfig, PoolMode};

pub use crate::tls::{TlsConfig, TlsMode};

/// The whole configuration, checked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// The address clients connect to (default `127.0.0.1:6432`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Threads serving clients, each with its own listener on `listen`
    /// (`SO_REUSEPORT`) and its own idle backends (default 1; see
    /// docs/benchmarks.md for when more pay).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// How long a client may take from connecting to being logged in:
    /// TLS, startup and password (default 60000, PostgreSQL's
    /// `authentication_timeout`). A client that stalls is disconnected.
    #[serde(default = "default_login_timeout_ms")]
    pub login_timeout_ms: u64,
    /// The most client connections open at once (default 10000); one more
    /// gets FATAL 53300, as PostgreSQL answers over `max_connections`, so
    /// that a flood of clients cannot take the file descriptors the proxy
    /// needs for its backends.
    #[serde(default = "default_max_client_connections")]
    pub max_client_connections: u64,
    /// On SIGTERM (or Ctrl-C), how long running transactions may take to
    /// finish before their clients are disconnected (default 30000). Idle
    /// clients are disconnected at once; see docs/proxy.md.
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    /// How often each database's catalog (user functions, unlogged tables)
    /// is read again from the primary (default 60000; 0: only at the
    /// database's first session and after DDL through the proxy).
    #[serde(default = "default_catalog_refresh_ms")]
    pub catalog_refresh_ms: u64,
    /// The PostgreSQL nodes; their roles are discovered, not configured.
    #[serde(default)]
    pub nodes: Vec<NodeConfig>,
    /// The users the proxy accepts, with the passwords it also logs in to nodes with.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Backend pools.
    #[serde(default)]
    pub pool: PoolConfig,
    /// The routing policy.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// TLS between clients and the proxy (default: none).
    #[serde(default)]
    pub tls: TlsConfig,
    /// What clients may take of the proxy: message size, logins, idle time.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The admin console and the metrics listener (`[admin]`).
    #[serde(default)]
    pub admin: AdminConfig,
}

/// `[admin]`: what operators reach besides the SQL port. The console itself
/// is the virtual database `pgrw` on the SQL port, for users with `admin = true`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Where to serve Prometheus `/metrics` and `/healthz` over HTTP
    /// (`"127.0.0.1:9930"`); none by default.
    pub metrics_listen: Option<String>,
}

/// One PostgreSQL node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The name shown in routes and status (`primary`, `replica1`, …).
    pub name: String,
    /// Host name, IP address, or Unix socket directory such as
    /// `/var/run/postgresql` (default `127.0.0.1`).
    #[serde(default = "default_host")]
    pub host: String,
    /// TCP port (over a Unix socket, it names the socket file `.s.PGSQL.<port>`).
    pub port: u16,
    /// Relative share of reads under `weighted` balancing (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// TLS to this node, as libpq's `sslmode` (default `prefer`).
    #[serde(default)]
    pub sslmode: SslMode,
    /// PEM file of the CA that signed the node's certificate, for
    /// `verify-ca` and `verify-full`.
    #[serde(default)]
    pub sslrootcert: Option<PathBuf>,
}

impl NodeConfig {
    /// The node's TLS settings.
    pub fn tls(&self) -> NodeTls {
        NodeTls {
            mode: self.sslmode,
            root_cert: self.sslrootcert.clone(),
        }
    }
}

/// How the proxy checks a client's password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum AuthMethod {
    /// SCRAM-SHA-256, PostgreSQL's default.
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// The legacy md5 challenge.
    #[serde(rename = "md5")]
    Md5,
    /// No password asked (loopback development only).
    #[serde(rename = "trust")]
    Trust,
}

/// One user: accepted from clients, and used to log in to every node.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The role name.
    pub name: String,
    /// The password the proxy logs in to the nodes with, in plaintext; or a
    /// SCRAM-SHA-256 verifier as PostgreSQL stores it
    /// (`SCRAM-SHA-256$4096:salt$StoredKey:ServerKey`), which checks clients
    /// but cannot log in to a node (see docs/security.md). After
    /// [`ProxyConfig::from_toml`], also what `password_file` or
    /// `password_env` gave.
    #[serde(default)]
    pub password: String,
    /// A file holding the password (its first line), instead of `password`.
    #[serde(default)]
    pub password_file: Option<String>,
    /// An environment variable holding the password, instead of `password`.
    #[serde(default)]
    pub password_env: Option<String>,
    /// How clients prove they know it.
    #[serde(default)]
    pub auth: AuthMethod,
    /// The most clients logged in as this user at once (default: no limit);
    /// one more gets FATAL 53300.
    #[serde(default)]
    pub max_connections: Option<u64>,
    /// Whether this user may log in to the admin console (the virtual
    /// database `pgrw`; default false).
    #[serde(default)]
    pub admin: bool,
}

impl UserConfig {
    /// The SCRAM verifier clients are checked against, when the password is one.
    pub fn scram_verifier(&self) -> Option<ScramVerifier> {
        match StoredPassword::parse(&self.password) {
            Ok(StoredPassword::Scram(verifier)) => Some(verifier),
            _ => None,
        }
    }

    /// The password to log in to the nodes with: empty when only a
    /// verifier is configured (the node must then not ask for one).
    pub fn node_password(&self) -> &str {
        if self.password.starts_with(SCRAM_PREFIX) {
            ""
        } else {
            &self.password
        }
    }
}

const SCRAM_PREFIX: &str = "SCRAM-SHA-256$";

/// The most `workers` a configuration may ask for.
const MAX_WORKERS: usize = 256;

impl std::fmt::Debug for UserConfig {
    /// Never shows the password, whatever its form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("password_file", &self.password_file)
            .field("password_env", &self.password_env)
            .field("auth", &self.auth)
            .field("max_connections", &self.max_connections)
            .field("admin", &self.admin)
            .finish()
    }
}

fn default_listen() -> String {
    "127.0.0.1:6432".to_string()
}
fn default_workers() -> usize {
    1
}
fn default_login_timeout_ms() -> u64 {
    60_000
}
fn default_max_client_connections() -> u64 {
    10_000
}
fn default_shutdown_timeout_ms() -> u64 {
    30_000
}
fn default_catalog_refresh_ms() -> u64 {
    60_000
}
fn default_host() -> String {
    "127.0.0.1".to_string()
}
fn default_weight() -> u32 {
    1
}

/// A configuration that cannot be used, with the key at fault and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML, or a key is unknown or has the wrong type.
    #[error("{source_name}: {message}")]
    Syntax {
        /// The file name (or `pgrw.toml`).
        source_name: String,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A value is well-formed but unusable.
    #[error("{source_name}: `{key}` {problem}; fix: {fix}")]
    Invalid {
        /// The file name (or `pgrw.toml`).
        source_name: String,
        /// The key at fault (`pool.size`, `nodes[1].port`, …).
        key: String,
        /// What is wrong with it.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// The file could not be read.
    #[error("reading {source_name}: {message}")]
    Unreadable {
        /// The path.
        source_name: String,
        /// The I/O error.
        message: String,
    },
}

impl ProxyConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<ProxyConfig, ConfigError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Unreadable {
            source_name: source_name.clone(),
            message: error.to_string(),
        })?;
        ProxyConfig::from_toml(&source_name, &text)
    }

    /// Parses and checks `text`; `source_name` names it in errors.
    pub fn from_toml(source_name: &str, text: &str) -> Result<ProxyConfig, ConfigError> {
        let mut config: ProxyConfig =
            toml::from_str(text).map_err(|error| ConfigError::Syntax {
                source_name: source_name.to_string(),
                message: key_path::describe(text, &error),
            })?;
        for (index, user) in config.users.iter_mut().enumerate() {
            secret::resolve(source_name, index, user)?;
        }
        config.check(source_name)?;
        Ok(config)
    }

    /// The listen address, parsed (checked by [`ProxyConfig::from_toml`]).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| ConfigError::Invalid {
            source_name: "pgrw.toml".to_string(),
            key: "listen".to_string(),
            problem: format!("= {:?} is not an IP address and port", self.listen),
            fix: "write it as \"127.0.0.1:6432\"".to_string(),
        })
    }

    /// How long a client may take to log in.
    pub fn login_timeout(&self) -> Duration {
        Duration::from_millis(self.login_timeout_ms)
    }

    /// How often a database's catalog is read again (`None`: never on a timer).
    pub fn catalog_refresh(&self) -> Option<Duration> {
        (self.catalog_refresh_ms > 0).then(|| Duration::from_millis(self.catalog_refresh_ms))
    }

    /// How long a graceful shutdown waits for running transactions.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    /// Each node's TLS, its CA file read (at bind). An unusable file is an
    /// error naming the node's key and the file.
    pub fn node_tls(&self) -> Result<Vec<NodeTlsClient>, ConfigError> {
        let index_of = |index: usize| format!("nodes[{index}].sslrootcert");
        self.nodes
            .iter()
            .enumerate()
            .map(|(index, node)| {
                NodeTlsClient::new(node.tls()).map_err(|error| ConfigError::Invalid {
                    source_name: "pgrw.toml".to_string(),
                    key: index_of(index),
                    problem: format!("(node {:?}): {error}", node.name),
                    fix: "point it at the PEM file of the CA that signed the node's \
                          certificate (PostgreSQL's ssl_ca_file), or lower sslmode to \
                          \"require\""
                        .to_string(),
                })
            })
            .collect()
    }

    /// Where the node monitor (and `pgrw check`) logs in: every node, as the
    /// first configured user, to database `postgres`.
    pub fn node_addresses(&self) -> Vec<NodeAddress> {
        let (user, password) = self
            .users
            .first()
            .map(|user| (user.name.clone(), user.node_password().to_string()))
            .unwrap_or_default();
        self.nodes
            .iter()
            .map(|node| NodeAddress {
                name: node.name.clone(),
                host: node.host.clone(),
                port: node.port,
                user: user.clone(),
                password: password.clone(),
                database: "postgres".to_string(),
                weight: node.weight,
                tls: node.tls(),
            })
            .collect()
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.users.iter().find(|user| user.name == name)
    }

    fn check(&self, source_name: &str) -> Result<(), ConfigError> {
        let invalid = |key: String, problem: String, fix: &str| ConfigError::Invalid {
            source_name: source_name.to_string(),
            key,
            problem,
            fix: fix.to_string(),
        };
        if self.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "listen".into(),
                format!("= {:?} is not an IP address and port", self.listen),
                "write it as \"127.0.0.1:6432\"",
            ));
        }
        if self.nodes.is_empty() {
            return Err(invalid(
                "nodes".into(),
                "is empty".into(),
                "add a [[nodes]] table with name, host and port for each PostgreSQL node",
            ));
        }
        let mut names = HashSet::new();
        for (index, node) in self.nodes.iter().enumerate() {
            if node.name.trim().is_empty() {
                return Err(invalid(
                    format!("nodes[{index}].name"),
                    "is empty".into(),
                    "give every node a name such as \"primary\" or \"replica1\"",
                ));
            }
            if !names.insert(node.name.as_str()) {
                return Err(invalid(
                    format!("nodes[{index}].name"),
                    format!("= {:?} is used by another node", node.name),
                    "give every node its own name",
                ));
            }
            if node.sslmode.verifies() && node.sslrootcert.is_none() {
                return Err(invalid(
                    format!("nodes[{index}].sslrootcert"),
                    format!("is missing while sslmode = \"{}\"", node.sslmode),
                    "set it to the PEM file of the CA that signed the node's certificate, \
                     or sslmode = \"require\" to encrypt without checking it",
                ));
            }
            if node.port == 0 {
                return Err(invalid(
                    format!("nodes[{index}].port"),
                    "= 0 is not a port".into(),
                    "set the node's PostgreSQL port (e.g. 5432)",
                ));
            }
        }
        if self.users.is_empty() {
            return Err(invalid(
                "users".into(),
                "is empty".into(),
                "add a [[users]] table with the name and password of a PostgreSQL role",
            ));
        }
        let mut users = HashSet::new();
        for (index, user) in self.users.iter().enumerate() {
            if user.name.is_empty() {
                return Err(invalid(
                    format!("users[{index}].name"),
                    "is empty".into(),
                    "set the PostgreSQL role name",
                ));
            }
            if !users.insert(user.name.as_str()) {
                return Err(invalid(
                    format!("users[{index}].name"),
                    format!("= {:?} appears twice", user.name),
                    "list each user once",
                ));
            }
        }
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(invalid(
                "workers".into(),
                format!(
                    "= {} is not a number of threads the proxy can run",
                    self.workers
                ),
                "set 1 (the default) up to 256, at most the cores the proxy may use",
            ));
        }
        if self.pool.size == 0 {
            return Err(invalid(
                "pool.size".into(),
                "= 0 allows no backend connection".into(),
                "set it to 1 or more (default 20)",
            ));
        }
        for (key, value) in [
            ("login_timeout_ms", self.login_timeout_ms),
            ("max_client_connections", self.max_client_connections),
            ("pool.connect_timeout_ms", self.pool.connect_timeout_ms),
            ("pool.checkout_timeout_ms", self.pool.checkout_timeout_ms),
            ("pool.max_lifetime_secs", self.pool.max_lifetime_secs),
        ] {
            if value == 0 {
                return Err(invalid(
                    key.into(),
                    "= 0 would fail every connection".into(),
                    "set a positive value or remove the key for the default",
                ));
            }
        }
        if let Some((key, problem, fix)) = self.limits.problem() {
            return Err(invalid(key.into(), problem, fix));
        }
        if self.pool.stall_timeout_ms == 0 {
            return Err(invalid(
                "pool.stall_timeout_ms".into(),
                "= 0 would check a node's liveness at every wait and give it no time to answer"
                    .into(),
                "set a positive value (default 10000) or remove the key",
            ));
        }
        if let Some(address) = &self.admin.metrics_listen
            && address.parse::<SocketAddr>().is_err()
        {
            return Err(invalid(
                "admin.metrics_listen".into(),
                format!("= {address:?} is not an IP address and port"),
                "write it as \"127.0.0.1:9930\", or remove the key for no metrics listener",
            ));
        }
        self.tls.check(source_name)
    }
}

mod key_path;
#[cfg(test)]
mod tests;
