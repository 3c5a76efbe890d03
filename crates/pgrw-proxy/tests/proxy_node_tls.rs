//! The proxy's connections to nodes over TLS (`sslmode`, `sslrootcert`, with a
//! CA made at test time) and over a Unix socket (`host` a directory): the
//! backends and the monitor's probes both go that way, and what cannot be
//! used is refused with the file or setting to fix.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgrw_cluster::testing::{TEST_PASSWORD, TestCluster, wait_until};
use pgrw_monitor::{NodeTls, NodeTlsClient, SslMode};
use pgrw_proxy::ProxyHandle;
use pgrw_proxy::backend::{BackendConnection, BackendLogin};
use proxy_cluster::connect_through;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// A CA and a server certificate it signed for `localhost` and `127.0.0.1`.
struct TestPki {
    dir: tempfile::TempDir,
    server_cert: String,
    server_key: String,
}

impl TestPki {
    fn new() -> TestPki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "pgrw test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let mut server =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &ca).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        TestPki {
            dir,
            server_cert: server_cert.pem(),
            server_key: server_key.serialize_pem(),
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }
}

/// A proxy whose `nodes` tables are given whole.
async fn proxy_with_nodes(nodes: &str) -> ProxyHandle {
    let text = format!(
        "listen = \"127.0.0.1:0\"\n{nodes}\n\
         [[users]]\nname = \"postgres\"\npassword = \"{TEST_PASSWORD}\"\n"
    );
    proxy_cluster::proxy_from_text(&text).await
}

/// Waits until the node `name` has a session of `application` matching `condition`
/// (a WHERE clause over `pg_stat_activity` joined with `pg_stat_ssl`).
async fn wait_for_session(cluster: &TestCluster, name: &str, application: &str, condition: &str) {
    let node = cluster.connect(name).await;
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity AS activity \
         JOIN pg_stat_ssl AS tls USING (pid) \
         WHERE activity.application_name = '{application}' AND {condition}"
    );
    let description = format!("{name} has a {application} session where {condition}");
    wait_until(Duration::from_secs(30), &description, async || {
        node.query_one(&sql, &[])
            .await
            .is_ok_and(|row| row.get::<_, i64>(0) > 0)
    })
    .await;
}

fn login(port: u16, host: &str, tls: NodeTls) -> BackendLogin {
    BackendLogin {
        node_name: "primary".to_string(),
        host: host.to_string(),
        port,
        user: "postgres".to_string(),
        password: TEST_PASSWORD.to_string(),
        database: "postgres".to_string(),
        tls: NodeTlsClient::new(tls).expect("usable TLS settings"),
    }
}

#[tokio::test]
async fn a_node_under_verify_full_serves_writes_over_tls_and_a_plain_replica_reads() {
    let cluster = TestCluster::start(1).await;
    let pki = TestPki::new();
    cluster
        .enable_tls("primary", &pki.server_cert, &pki.server_key)
        .await;
    let nodes = format!(
        "[[nodes]]\nname = \"primary\"\nhost = \"127.0.0.1\"\nport = {}\n\
         sslmode = \"verify-full\"\nsslrootcert = {:?}\n\
         [[nodes]]\nname = \"replica1\"\nport = {}\n",
        cluster.port("primary"),
        pki.ca_file().display().to_string(),
        cluster.port("replica1"),
    );
    let proxy = proxy_with_nodes(&nodes).await;
    let client = connect_through(&proxy).await;
    client
        .batch_execute("CREATE TABLE over_tls (id int); INSERT INTO over_tls VALUES (1)")
        .await
        .expect("writes reach the primary over TLS");
    wait_for_session(&cluster, "primary", "pgrw", "tls.ssl").await;
    wait_for_session(&cluster, "primary", "pgrw-monitor", "tls.ssl").await;
    // The replica has no TLS: the default `prefer` falls back to plaintext.
    let row = client
        .query_one("SELECT count(*) FROM pg_class", &[])
        .await
        .expect("reads reach the replica in plaintext");
    assert!(row.get::<_, i64>(0) > 0);
    wait_for_session(&cluster, "replica1", "pgrw", "NOT tls.ssl").await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_naming_the_ca_file_given() {
    let cluster = TestCluster::start(0).await;
    let pki = TestPki::new();
    cluster
        .enable_tls("primary", &pki.server_cert, &pki.server_key)
        .await;
    let other = TestPki::new();
    let port = cluster.port("primary");
    let error = BackendConnection::connect(&login(
        port,
        "127.0.0.1",
        NodeTls {
            mode: SslMode::VerifyFull,
            root_cert: Some(other.ca_file()),
        },
    ))
    .await
    .err()
    .expect("the node's certificate is refused");
    let message = error.to_string();
    assert!(
        message.contains(&other.ca_file().display().to_string())
            && message.contains("sslrootcert")
            && message.contains("primary"),
        "{message}"
    );
    // The right CA is accepted, by address and by name.
    for host in ["127.0.0.1", "localhost"] {
        let tls = NodeTls {
            mode: SslMode::VerifyFull,
            root_cert: Some(pki.ca_file()),
        };
        BackendConnection::connect(&login(port, host, tls))
            .await
            .unwrap_or_else(|error| panic!("{host}: {error}"));
    }
}

#[tokio::test]
async fn require_on_a_node_without_tls_is_refused_with_the_fix() {
    let cluster = TestCluster::start(0).await;
    let tls = NodeTls {
        mode: SslMode::Require,
        root_cert: None,
    };
    let error = BackendConnection::connect(&login(cluster.port("primary"), "127.0.0.1", tls))
        .await
        .err()
        .expect("a plaintext node is refused under require");
    let message = error.to_string();
    assert!(
        message.contains("does not accept TLS") && message.contains("ssl = on"),
        "{message}"
    );
}

#[tokio::test]
async fn a_node_over_a_unix_socket_serves_writes_and_reads() {
    let cluster = TestCluster::start(1).await;
    let socket_dir = cluster.enable_unix_socket("primary").await;
    let nodes = format!(
        "[[nodes]]\nname = \"primary\"\nhost = {:?}\nport = {}\n\
         [[nodes]]\nname = \"replica1\"\nport = {}\n",
        socket_dir.display().to_string(),
        cluster.port("primary"),
        cluster.port("replica1"),
    );
    let proxy = proxy_with_nodes(&nodes).await;
    let client = connect_through(&proxy).await;
    client
        .batch_execute("CREATE TABLE over_socket (id int); INSERT INTO over_socket VALUES (7)")
        .await
        .expect("writes reach the primary over its socket");
    // A Unix socket session has no client address.
    wait_for_session(&cluster, "primary", "pgrw", "activity.client_addr IS NULL").await;
    wait_for_session(
        &cluster,
        "primary",
        "pgrw-monitor",
        "activity.client_addr IS NULL",
    )
    .await;
    cluster.wait_for_replicas_to_catch_up().await;
    let row = client
        .query_one("SELECT id FROM over_socket", &[])
        .await
        .expect("the write is read back");
    assert_eq!(row.get::<_, i32>(0), 7);
    assert!(socket_path_exists(&socket_dir, cluster.port("primary")));
}

fn socket_path_exists(dir: &Path, port: u16) -> bool {
    dir.join(format!(".s.PGSQL.{port}")).exists()
}
