//! TLS between clients and the proxy, with a certificate made at test time:
//! psql (libpq/OpenSSL) and tokio-postgres (rustls) log in over TLS, plaintext
//! clients are refused under `require` and served under `allow`, and the
//! negotiation itself is checked byte by byte on raw sockets (GSSENCRequest
//! refused, plaintext smuggled after an SSLRequest refused, a garbage handshake
//! ending that connection only).

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pgrw_cluster::testing::TEST_PASSWORD;
use pgrw_proxy::protocol::frontend::{
    encode_gssenc_request, encode_ssl_request, encode_startup_3_0,
};
use pgrw_proxy::{Proxy, ProxyConfig, ProxyHandle};
use proxy_cluster::ProxiedCluster;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

/// A self-signed certificate for `localhost` and `127.0.0.1`, in PEM files.
struct TestCertificate {
    _dir: tempfile::TempDir,
    cert_file: PathBuf,
    key_file: PathBuf,
    der: CertificateDer<'static>,
}

impl TestCertificate {
    fn new() -> TestCertificate {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .expect("rcgen makes a certificate");
        let dir = tempfile::tempdir().unwrap();
        let cert_file = dir.path().join("server.crt");
        let key_file = dir.path().join("server.key");
        std::fs::write(&cert_file, certified.cert.pem()).unwrap();
        std::fs::write(&key_file, certified.signing_key.serialize_pem()).unwrap();
        TestCertificate {
            _dir: dir,
            cert_file,
            key_file,
            der: certified.cert.der().clone(),
        }
    }

    /// The `[tls]` table serving this certificate; `mode` `None` for the default.
    fn table(&self, mode: Option<&str>) -> String {
        let mut table = format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            self.cert_file.display().to_string(),
            self.key_file.display().to_string()
        );
        if let Some(mode) = mode {
            table.push_str(&format!("mode = \"{mode}\"\n"));
        }
        table
    }

    /// A rustls client configuration that trusts this certificate only.
    fn client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("a valid root");
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
    }
}

/// A libpq conninfo string for the proxy on `port`, with `extra` appended.
fn conninfo(port: u16, extra: &str) -> String {
    format!(
        "host=127.0.0.1 port={port} user=postgres password={TEST_PASSWORD} dbname=postgres {extra}"
    )
}

/// Runs `psql -c command` against `conninfo`: success, stdout, stderr.
async fn psql(conninfo: &str, command: &str) -> (bool, String, String) {
    let output = Command::new("psql")
        .args(["-X", "-A", "-t", "-d", conninfo, "-c", command])
        .env("PGCONNECT_TIMEOUT", "20")
        .output()
        .await
        .expect("running psql");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
    )
}

/// A tokio-postgres client over TLS (rustls, `sslmode=require`).
async fn connect_tls(port: u16, certificate: &TestCertificate) -> tokio_postgres::Client {
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(certificate.client_config());
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .password(TEST_PASSWORD)
        .dbname("postgres")
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect(tls)
        .await
        .expect("logging in through the proxy over TLS");
    tokio::spawn(connection);
    client
}

/// A proxy for the negotiation tests, which end before any node is needed:
/// its one node is a port nobody listens on.
async fn negotiating_proxy(tls_table: &str) -> ProxyHandle {
    let unused_port = pgrw_cluster::testing::free_port_range(1);
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[[nodes]]\nname = \"primary\"\nport = {unused_port}\n\
         [[users]]\nname = \"postgres\"\npassword = \"{TEST_PASSWORD}\"\n{tls_table}"
    );
    let config = ProxyConfig::from_toml("test.toml", &text).expect("a valid test config");
    Proxy::bind(config).await.expect("the proxy binds").spawn()
}

/// Sends what `encode` appends, as one write.
async fn send(stream: &mut TcpStream, encode: impl FnOnce(&mut BytesMut)) {
    let mut bytes = BytesMut::new();
    encode(&mut bytes);
    stream.write_all(&bytes).await.unwrap();
}

/// Reads one byte, or `None` at end of stream or on a reset.
async fn read_byte(stream: &mut (impl AsyncRead + Unpin)) -> Option<u8> {
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_u8())
        .await
        .expect("the proxy answers within 10 s");
    read.ok()
}

/// Reads until the proxy closes the connection (or resets it).
async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received))
        .await
        .expect("the proxy closes the connection within 10 s");
    received
}

#[tokio::test]
async fn psql_with_sslmode_require_gets_an_encrypted_session() {
    let certificate = TestCertificate::new();
    let proxied = ProxiedCluster::start(1, &certificate.table(None)).await;
    let (ok, stdout, stderr) =
        psql(&conninfo(proxied.port(), "sslmode=require"), "\\conninfo").await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("SSL connection (protocol: TLSv1."),
        "{stdout}"
    );
}

#[tokio::test]
async fn psql_with_verify_full_trusts_the_proxy_certificate() {
    let certificate = TestCertificate::new();
    let proxied = ProxiedCluster::start(1, &certificate.table(Some("require"))).await;
    let extra = format!(
        "sslmode=verify-full sslrootcert={}",
        certificate.cert_file.display()
    );
    let (ok, stdout, stderr) = psql(&conninfo(proxied.port(), &extra), "SELECT 40 + 2").await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "42");
}

#[tokio::test]
async fn psql_with_verify_full_refuses_a_certificate_it_does_not_trust() {
    let certificate = TestCertificate::new();
    let stranger = TestCertificate::new();
    let proxy = negotiating_proxy(&certificate.table(Some("require"))).await;
    let extra = format!(
        "sslmode=verify-full sslrootcert={}",
        stranger.cert_file.display()
    );
    let port = proxy.local_addr().port();
    let (ok, _, stderr) = psql(&conninfo(port, &extra), "SELECT 1").await;
    assert!(!ok);
    assert!(stderr.contains("certificate verify failed"), "{stderr}");
}

#[tokio::test]
async fn a_plaintext_client_is_refused_under_require_with_the_reason() {
    let certificate = TestCertificate::new();
    let proxy = negotiating_proxy(&certificate.table(Some("require"))).await;
    let port = proxy.local_addr().port();
    let (ok, _, stderr) = psql(&conninfo(port, "sslmode=disable"), "SELECT 1").await;
    assert!(!ok);
    assert!(
        stderr.contains("pgrw accepts only TLS connections") && stderr.contains("sslmode=require"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_plaintext_login_under_require_fails_with_sqlstate_28000() {
    let certificate = TestCertificate::new();
    let proxy = negotiating_proxy(&certificate.table(Some("require"))).await;
    let error = tokio_postgres::connect(
        &conninfo(proxy.local_addr().port(), "sslmode=disable"),
        tokio_postgres::NoTls,
    )
    .await
    .err()
    .expect("the login is refused");
    assert_eq!(
        error.code().map(|code| code.code()),
        Some("28000"),
        "{error}"
    );
}

#[tokio::test]
async fn a_plaintext_client_is_served_under_allow() {
    let certificate = TestCertificate::new();
    let proxied = ProxiedCluster::start(1, &certificate.table(Some("allow"))).await;
    let (ok, stdout, stderr) =
        psql(&conninfo(proxied.port(), "sslmode=disable"), "\\conninfo").await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("You are connected") && !stdout.contains("SSL"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_read_over_tls_is_served_by_a_replica() {
    let certificate = TestCertificate::new();
    let proxied = ProxiedCluster::start(1, &certificate.table(Some("require"))).await;
    let client = connect_tls(proxied.port(), &certificate).await;
    let row = client
        .query_one("SELECT inet_server_port()", &[])
        .await
        .unwrap();
    assert_eq!(proxied.node_at(row.get(0)), "replica1");
}

#[tokio::test]
async fn a_cancel_request_over_tls_stops_the_running_query() {
    let certificate = TestCertificate::new();
    let proxied = ProxiedCluster::start(1, &certificate.table(Some("require"))).await;
    let client = connect_tls(proxied.port(), &certificate).await;
    let cancel = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.batch_execute("SELECT pg_sleep(30)").await });
    // Cancel until the query is gone: the first request may arrive before it runs.
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            // tokio-postgres sends SSLRequest first, then CancelRequest over TLS.
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(certificate.client_config());
            cancel
                .cancel_query(tls)
                .await
                .expect("the cancel request is delivered");
            if sleeper.is_finished() {
                return sleeper.await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the query was cancelled well before it would end");
    let error = outcome.expect_err("the query was cancelled");
    assert_eq!(error.code().map(|code| code.code()), Some("57014"));
}

#[tokio::test]
async fn a_garbage_handshake_ends_that_connection_only() {
    let certificate = TestCertificate::new();
    let proxied = ProxiedCluster::start(1, &certificate.table(Some("require"))).await;
    let bystander = connect_tls(proxied.port(), &certificate).await;

    let mut stream = TcpStream::connect(proxied.proxy.local_addr())
        .await
        .unwrap();
    send(&mut stream, encode_ssl_request).await;
    assert_eq!(read_byte(&mut stream).await, Some(b'S'));
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    read_to_end(&mut stream).await;

    let row = bystander.query_one("SELECT 7", &[]).await.unwrap();
    assert_eq!(
        row.get::<_, i32>(0),
        7,
        "the other client keeps its session"
    );
    let newcomer = connect_tls(proxied.port(), &certificate).await;
    let row = newcomer.query_one("SELECT 8", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 8, "the proxy still accepts clients");
}

#[tokio::test]
async fn plaintext_sent_right_after_an_ssl_request_is_refused() {
    let certificate = TestCertificate::new();
    let proxy = negotiating_proxy(&certificate.table(None)).await;
    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    // The StartupMessage rides in the same segment as the SSLRequest, as an
    // attacker in the middle would inject it (CVE-2021-23214).
    send(&mut stream, |out| {
        encode_ssl_request(out);
        encode_startup_3_0(out, &[("user", "postgres")]);
    })
    .await;
    let answer = read_to_end(&mut stream).await;
    assert_eq!(answer.first(), Some(&b'E'), "an ErrorResponse, not 'S'");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains("08P01") && text.contains("unencrypted data after SSL request"),
        "{text}"
    );
}

#[tokio::test]
async fn an_ssl_request_is_answered_n_when_tls_is_not_configured() {
    let proxy = negotiating_proxy("").await;
    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    send(&mut stream, encode_ssl_request).await;
    assert_eq!(read_byte(&mut stream).await, Some(b'N'));
}

#[tokio::test]
async fn gssenc_is_refused_and_an_ssl_request_then_starts_tls() {
    let certificate = TestCertificate::new();
    let proxy = negotiating_proxy(&certificate.table(Some("require"))).await;
    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    send(&mut stream, encode_gssenc_request).await;
    assert_eq!(read_byte(&mut stream).await, Some(b'N'));
    send(&mut stream, encode_ssl_request).await;
    assert_eq!(read_byte(&mut stream).await, Some(b'S'));

    let connector = tokio_rustls::TlsConnector::from(Arc::new(certificate.client_config()));
    let server_name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(server_name, stream)
        .await
        .expect("the TLS handshake succeeds");
    let mut startup = BytesMut::new();
    encode_startup_3_0(&mut startup, &[("user", "postgres")]);
    tls.write_all(&startup).await.unwrap();
    assert_eq!(
        read_byte(&mut tls).await,
        Some(b'R'),
        "the startup goes on over TLS: an authentication request"
    );
}

#[tokio::test]
async fn a_second_ssl_request_inside_tls_is_a_protocol_violation() {
    let certificate = TestCertificate::new();
    let proxy = negotiating_proxy(&certificate.table(None)).await;
    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    send(&mut stream, encode_ssl_request).await;
    assert_eq!(read_byte(&mut stream).await, Some(b'S'));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(certificate.client_config()));
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), stream)
        .await
        .expect("the TLS handshake succeeds");
    let mut request = BytesMut::new();
    encode_ssl_request(&mut request);
    tls.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
        .await
        .expect("the proxy closes the connection");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        answer.first() == Some(&b'E') && text.contains("08P01"),
        "{text}"
    );
}
