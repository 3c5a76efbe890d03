//! A real primary with streaming replicas and a pgrw proxy in front of them,
//! for integration tests. Routing is checked by node identity
//! (`inet_server_port()`), never by the proxy's own report.

#![allow(dead_code)]

use std::time::Duration;

use pgrw_cluster::testing::{TEST_PASSWORD, TestCluster, wait_until};
use pgrw_core::route::Role;
use pgrw_proxy::{Proxy, ProxyConfig, ProxyHandle};

/// A test cluster and a proxy serving it.
pub struct ProxiedCluster {
    /// The nodes.
    pub cluster: TestCluster,
    /// The proxy, stopped when dropped.
    pub proxy: ProxyHandle,
}

impl ProxiedCluster {
    /// A primary, `replicas` replicas, and a proxy with `extra` TOML appended
    /// to the generated config (user `postgres`, SCRAM).
    pub async fn start(replicas: usize, extra: &str) -> ProxiedCluster {
        ProxiedCluster::start_with_top_level(replicas, "", extra).await
    }

    /// As [`ProxiedCluster::start`], with `top_level` keys (`login_timeout_ms = …`)
    /// before the first table.
    pub async fn start_with_top_level(
        replicas: usize,
        top_level: &str,
        extra: &str,
    ) -> ProxiedCluster {
        let cluster = TestCluster::start(replicas).await;
        let proxy = start_proxy(&cluster, top_level, extra).await;
        wait_for_replicas(&proxy).await;
        ProxiedCluster { proxy, cluster }
    }

    /// Another proxy over the same cluster, with `extra` TOML appended to
    /// its generated config (a second instance, or one restarted).
    pub async fn another_proxy(&self, extra: &str) -> ProxyHandle {
        start_proxy(&self.cluster, "", extra).await
    }

    /// A tokio-postgres client through `proxy` (one of [`Self::another_proxy`]).
    pub async fn connect_to(&self, proxy: &ProxyHandle) -> tokio_postgres::Client {
        connect_through(proxy).await
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.proxy.local_addr().port()
    }

    /// A libpq connection string for the proxy.
    pub fn dsn(&self) -> String {
        format!(
            "postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{}/postgres",
            self.port()
        )
    }

    /// A tokio-postgres client through the proxy.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.dsn(), tokio_postgres::NoTls)
            .await
            .expect("logging in through the proxy");
        tokio::spawn(connection);
        client
    }

    /// A tokio-postgres client through the proxy, with its connection
    /// task: the task ends with the error the proxy closed it with (see
    /// [`closed_with`]).
    pub async fn connect_watched(
        &self,
    ) -> (
        tokio_postgres::Client,
        tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    ) {
        let (client, connection) = tokio_postgres::connect(&self.dsn(), tokio_postgres::NoTls)
            .await
            .expect("logging in through the proxy");
        (client, tokio::spawn(connection))
    }

    /// The name of the node listening on `port`.
    pub fn node_at(&self, port: i32) -> String {
        self.cluster
            .nodes()
            .into_iter()
            .find(|node| i32::from(node.port) == port)
            .map(|node| node.name)
            .unwrap_or_else(|| format!("unknown port {port}"))
    }
}

/// The first column of the first row of `sql` (simple protocol), `NULL` as
/// the text `NULL`; panics on an error or no row.
pub async fn first_value(client: &tokio_postgres::Client, sql: &str) -> String {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    messages
        .iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                Some(row.get(0).unwrap_or("NULL").to_string())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql} returned no row"))
}

/// The SQLSTATE a watched connection (see [`ProxiedCluster::connect_watched`])
/// was closed with, within `deadline`.
pub async fn closed_with(
    connection: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    deadline: Duration,
) -> String {
    let ended = tokio::time::timeout(deadline, connection)
        .await
        .expect("the proxy closes the connection")
        .expect("the connection task");
    let error = ended.expect_err("the connection ends with an error from the proxy");
    error
        .code()
        .map(|code| code.code().to_string())
        .unwrap_or_else(|| error.to_string())
}

/// A tokio-postgres client through `proxy`, as `postgres`.
pub async fn connect_through(proxy: &ProxyHandle) -> tokio_postgres::Client {
    let dsn = format!(
        "postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{}/postgres",
        proxy.local_addr().port()
    );
    let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("logging in through the proxy");
    tokio::spawn(connection);
    client
}

/// A proxy over `cluster`: every node, user `postgres`, `top_level` keys
/// before the first table and `extra` TOML after the users.
async fn start_proxy(cluster: &TestCluster, top_level: &str, extra: &str) -> ProxyHandle {
    proxy_from_text(&config_text(cluster, top_level, extra)).await
}

/// A proxy serving the configuration `text`, once its monitor has seen every node.
pub async fn proxy_from_text(text: &str) -> ProxyHandle {
    let config = ProxyConfig::from_toml("test.toml", text).expect("a valid test config");
    let proxy = Proxy::bind(config).await.expect("the proxy binds");
    proxy
        .ready(Duration::from_secs(30))
        .await
        .expect("the monitor sees every node");
    proxy.spawn()
}

/// A proxy serving the configuration file `path` (which `RELOAD` reads
/// again), once its monitor has seen every node.
pub async fn proxy_from_file(path: &std::path::Path) -> ProxyHandle {
    let config = ProxyConfig::load(path).expect("a valid config file");
    let proxy = Proxy::bind(config).await.expect("the proxy binds");
    proxy.state().set_config_path(path.to_path_buf());
    proxy
        .ready(Duration::from_secs(30))
        .await
        .expect("the monitor sees every node");
    proxy.spawn()
}

/// The `pgrw.toml` of [`start_proxy`]: every node of `cluster`, user
/// `postgres`, `top_level` keys before the first table and `extra` TOML
/// after the users (keys of the user, then tables).
pub fn config_text(cluster: &TestCluster, top_level: &str, extra: &str) -> String {
    let mut text = format!("listen = \"127.0.0.1:0\"\n{top_level}\n");
    for node in cluster.nodes() {
        text.push_str(&format!(
            "[[nodes]]\nname = \"{}\"\nport = {}\n",
            node.name, node.port
        ));
    }
    text.push_str(&format!(
        "[[users]]\nname = \"postgres\"\npassword = \"{TEST_PASSWORD}\"\n{extra}\n"
    ));
    text
}

/// Waits until every replica `proxy` knows is up, follows the primary and has
/// replayed the primary's last probed position. A proxy that starts takes
/// that position as its last write (docs/consistency.md), so until then a
/// read goes to the primary; on a loaded machine a replica's probe can trail
/// the primary's for seconds, and a test's first read must not depend on it.
pub async fn wait_for_replicas(proxy: &ProxyHandle) {
    let state = proxy.state();
    wait_until(
        Duration::from_secs(60),
        "every replica has replayed the primary's position",
        async || {
            let topology = state.topology();
            topology
                .nodes
                .iter()
                .filter(|node| node.role == Role::Replica)
                .all(|node| {
                    node.is_up()
                        && node.follows_primary()
                        && node.replay_lsn >= topology.primary_lsn
                })
        },
    )
    .await;
}
