//! Client sessions: the proxy's own password check, malformed input scoped to
//! one client, and a client that leaves mid-transaction.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::time::Duration;

use pgrw_cluster::testing::TEST_PASSWORD;
use proxy_cluster::ProxiedCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn login_error_code(proxied: &ProxiedCluster, user: &str, password: &str) -> String {
    let dsn = format!(
        "postgres://{user}:{password}@127.0.0.1:{}/postgres",
        proxied.port()
    );
    let error = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .err()
        .expect("the login is refused");
    error
        .code()
        .map(|code| code.code().to_string())
        .unwrap_or(error.to_string())
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_28p01() {
    let proxied = ProxiedCluster::start(0, "").await;
    assert_eq!(
        login_error_code(&proxied, "postgres", "wrong").await,
        "28P01"
    );
}

#[tokio::test]
async fn an_unknown_user_is_refused_like_a_wrong_password() {
    let proxied = ProxiedCluster::start(0, "").await;
    assert_eq!(
        login_error_code(&proxied, "mallory", TEST_PASSWORD).await,
        "28P01"
    );
}

#[tokio::test]
async fn a_login_to_a_database_that_does_not_exist_is_refused_with_3d000() {
    let proxied = ProxiedCluster::start(0, "").await;
    let dsn = format!(
        "postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{}/nosuchdb",
        proxied.port()
    );
    let error = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .err()
        .expect("the login is refused, as PostgreSQL refuses it");
    assert_eq!(
        error.code().map(|code| code.code()),
        Some("3D000"),
        "{error}"
    );
    let message = error.as_db_error().map(|error| error.message().to_string());
    assert_eq!(
        message.as_deref(),
        Some("database \"nosuchdb\" does not exist")
    );
    // The database the client may use still lets it in.
    let client = proxied.connect().await;
    let row = client.query_one("SELECT 8", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 8);
}

#[tokio::test]
async fn a_user_configured_for_md5_logs_in_with_md5() {
    let proxied = ProxiedCluster::start(0, "auth = \"md5\"").await;
    let client = proxied.connect().await;
    let row = client.query_one("SELECT 41 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(
        login_error_code(&proxied, "postgres", "wrong").await,
        "28P01"
    );
}

#[tokio::test]
async fn malformed_startup_bytes_get_08p01_and_leave_other_clients_alone() {
    let proxied = ProxiedCluster::start(0, "").await;
    let bystander = proxied.connect().await;

    let mut raw = TcpStream::connect(("127.0.0.1", proxied.port()))
        .await
        .unwrap();
    // A startup packet declaring a length of 7: shorter than its own header.
    raw.write_all(&[0, 0, 0, 7, 0, 3, 0, 0]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut answer))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    assert_eq!(answer.first(), Some(&b'E'), "an ErrorResponse: {answer:?}");
    assert!(
        answer.windows(6).any(|window| window == b"C08P01"),
        "SQLSTATE 08P01: {}",
        String::from_utf8_lossy(&answer)
    );

    let row = bystander.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

/// Reads until the proxy closes the connection; panics if it has not within 10 s.
async fn read_until_closed(raw: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("the proxy closes {what}"))
        .unwrap();
    answer
}

fn startup_packet(user: &str) -> Vec<u8> {
    let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
    startup.extend_from_slice(format!("user\0{user}\0database\0postgres\0\0").as_bytes());
    let length = (startup.len() as i32).to_be_bytes();
    startup[..4].copy_from_slice(&length);
    startup
}

#[tokio::test]
async fn clients_that_stall_before_logging_in_are_disconnected_after_the_login_timeout() {
    let proxied = ProxiedCluster::start_with_top_level(0, "login_timeout_ms = 2000", "").await;
    let bystander = proxied.connect().await;
    let connect = || TcpStream::connect(("127.0.0.1", proxied.port()));

    // Connects and sends nothing.
    let mut silent = connect().await.unwrap();
    // Sends half a startup packet.
    let mut half = connect().await.unwrap();
    half.write_all(&startup_packet("postgres")[..6])
        .await
        .unwrap();
    // Asks for TLS (refused: none configured), then says nothing more.
    let mut after_ssl_request = connect().await.unwrap();
    after_ssl_request
        .write_all(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f])
        .await
        .unwrap();
    // Starts the SCRAM exchange and never answers the challenge.
    let mut mid_password = connect().await.unwrap();
    mid_password
        .write_all(&startup_packet("postgres"))
        .await
        .unwrap();

    for (raw, what) in [
        (&mut silent, "a silent connection"),
        (&mut half, "a half-sent startup packet"),
        (
            &mut after_ssl_request,
            "a connection stalled after SSLRequest",
        ),
        (&mut mid_password, "a connection stalled mid-password"),
    ] {
        let answer = read_until_closed(raw, what).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(
            answer.windows(6).any(|window| window == b"C57014")
                && text.contains("login_timeout_ms"),
            "{what}: a FATAL 57014 naming login_timeout_ms: {text}"
        );
    }

    // A client that logs in promptly is not affected, nor is one already in.
    let late = proxied.connect().await;
    let row = late.query_one("SELECT 3", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
    let row = bystander.query_one("SELECT 4", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 4);
}

#[tokio::test]
async fn a_client_over_max_client_connections_gets_53300_and_the_others_go_on() {
    let proxied = ProxiedCluster::start_with_top_level(0, "max_client_connections = 2", "").await;
    let first = proxied.connect().await;
    let second = proxied.connect().await;

    let refused = tokio_postgres::connect(&proxied.dsn(), tokio_postgres::NoTls)
        .await
        .err()
        .expect("a third client is refused");
    assert_eq!(
        refused.code().map(|code| code.code()),
        Some("53300"),
        "{refused}"
    );
    let message = refused
        .as_db_error()
        .map(|error| error.message().to_string());
    assert!(
        message
            .as_deref()
            .is_some_and(|message| message.contains("max_client_connections")),
        "{message:?}"
    );
    let row = first.query_one("SELECT 5", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 5);

    // Once a client leaves, its place is free again.
    drop(second);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let third = loop {
        match tokio_postgres::connect(&proxied.dsn(), tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                break client;
            }
            Err(error) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "still refused after a client left: {error}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let row = third.query_one("SELECT 6", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 6);
}

#[tokio::test]
async fn a_malformed_message_after_login_ends_only_that_session() {
    let proxied = ProxiedCluster::start(0, "auth = \"trust\"").await;
    let bystander = proxied.connect().await;

    let mut raw = TcpStream::connect(("127.0.0.1", proxied.port()))
        .await
        .unwrap();
    let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
    startup.extend_from_slice(b"user\0postgres\0database\0postgres\0\0");
    let length = (startup.len() as i32).to_be_bytes();
    startup[..4].copy_from_slice(&length);
    raw.write_all(&startup).await.unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(&[b'Z', 0, 0, 0, 5, b'I']) {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut chunk))
            .await
            .expect("the proxy answers the login")
            .unwrap();
        assert_ne!(read, 0, "the proxy closed during login: {answer:?}");
        answer.extend_from_slice(&chunk[..read]);
    }
    // A Query whose SQL has no terminating NUL.
    raw.write_all(b"Q\0\0\0\x08abcd").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut answer))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    assert!(
        answer.windows(6).any(|window| window == b"C08P01"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let row = bystander.query_one("SELECT 2", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
}

#[tokio::test]
async fn a_client_that_leaves_mid_transaction_has_it_rolled_back() {
    let proxied = ProxiedCluster::start(0, "[pool]\nsize = 1\n").await;
    let setup = proxied.connect().await;
    setup
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();
    drop(setup);

    let leaver = proxied.connect().await;
    leaver
        .batch_execute("BEGIN; INSERT INTO t VALUES (1); LOCK TABLE t")
        .await
        .unwrap();
    drop(leaver);

    // With one backend in the pool, this only runs once the leaver's
    // backend was rolled back and freed.
    let next = proxied.connect().await;
    let row = next.query_one("SELECT count(*) FROM t", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 0, "the transaction was rolled back");
}

async fn show(client: &tokio_postgres::Client, setting: &str) -> String {
    let rows = client
        .simple_query(&format!("SHOW {setting}"))
        .await
        .unwrap();
    rows.iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .expect("one row")
}

#[tokio::test]
async fn a_setting_follows_the_client_to_every_backend_and_no_further() {
    let proxied = ProxiedCluster::start(2, "[pool]\nsize = 1\n").await;
    let setter = proxied.connect().await;
    setter
        .batch_execute("SET statement_timeout = '1234ms'")
        .await
        .unwrap();
    for _ in 0..10 {
        assert_eq!(show(&setter, "statement_timeout").await, "1234ms");
    }
    let other = proxied.connect().await;
    for _ in 0..10 {
        assert_eq!(
            show(&other, "statement_timeout").await,
            "0",
            "not inherited"
        );
    }
    setter
        .batch_execute("RESET statement_timeout")
        .await
        .unwrap();
    assert_eq!(show(&setter, "statement_timeout").await, "0");
}

#[tokio::test]
async fn a_role_set_by_one_client_is_not_inherited_by_the_next() {
    let proxied = ProxiedCluster::start(0, "[pool]\nsize = 1\n").await;
    let setup = proxied.connect().await;
    setup
        .batch_execute("CREATE ROLE reader; SET ROLE reader")
        .await
        .unwrap();
    assert_eq!(show(&setup, "role").await, "reader");
    drop(setup);
    let next = proxied.connect().await;
    let user: String = next
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "postgres");
}
