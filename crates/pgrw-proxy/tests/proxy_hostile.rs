//! Hostile clients against a running proxy (docs/security.md): each attack
//! runs while a well-behaved client logged in before it keeps getting
//! answers within a generous bound, and each limit answers with its SQLSTATE.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;
#[path = "support/raw_client.rs"]
mod raw_client;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;
use pgrw_cluster::testing::{TEST_PASSWORD, wait_until};
use pgrw_proxy::protocol::backend::{Authentication, BackendMessage};
use pgrw_proxy::protocol::frontend;
use pgrw_proxy::protocol::{FrameLimits, Message};
use proxy_cluster::{ProxiedCluster, closed_with};
use raw_client::{RawClient, error_fields};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How long any one query of the well-behaved client may take while an
/// attack runs: generous, for a loaded machine; an attack that stalls the
/// proxy's thread for good still fails it.
const BOUND: Duration = Duration::from_secs(10);

/// How long anything asynchronous may take to happen.
const DEADLINE: Duration = Duration::from_secs(30);

/// A client logged in before the attack that runs `SELECT 1` in a loop
/// until stopped, failing if any one takes longer than [`BOUND`].
struct Bystander {
    stop: Arc<AtomicBool>,
    task: JoinHandle<u64>,
}

impl Bystander {
    async fn start(proxied: &ProxiedCluster) -> Bystander {
        let client = proxied.connect().await;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut answered = 0;
            while !stopped.load(Ordering::Relaxed) {
                let row = tokio::time::timeout(BOUND, client.query_one("SELECT 1", &[]))
                    .await
                    .expect("the logged-in client is answered within the bound")
                    .expect("the logged-in client's query succeeds");
                assert_eq!(row.get::<_, i32>(0), 1);
                answered += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            answered
        });
        Bystander { stop, task }
    }

    /// Stops it; how many queries it got answered.
    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let answered = self.task.await.expect("the bystander did not panic");
        assert!(answered > 0, "the bystander was answered at all");
        answered
    }
}

/// The SQLSTATE of a tokio-postgres login as `user` with `password`.
async fn login_error(port: u16, user: &str, password: &str) -> Option<String> {
    let dsn = format!("postgres://{user}:{password}@127.0.0.1:{port}/postgres");
    match tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await {
        Ok(_) => None,
        Err(error) => Some(
            error
                .code()
                .map(|code| code.code().to_string())
                .unwrap_or_else(|| error.to_string()),
        ),
    }
}

/// The SQLSTATE of a login with the right password, `None` when it succeeds.
async fn right_login(port: u16) -> Option<String> {
    login_error(port, "postgres", TEST_PASSWORD).await
}

/// Reads whole messages from a raw socket.
async fn next_message(stream: &mut TcpStream, buffer: &mut BytesMut) -> Option<Message> {
    loop {
        if let Some(message) = Message::split_from(buffer, &FrameLimits::default()).unwrap() {
            return Some(message);
        }
        let read = tokio::time::timeout(DEADLINE, stream.read_buf(buffer))
            .await
            .expect("the proxy answers or closes")
            .ok()?;
        if read == 0 {
            return None;
        }
    }
}

/// Starts a SCRAM login as `user` and returns the server-first-message's
/// salt (base64) and iteration count, then leaves.
async fn scram_challenge(port: u16, user: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut out = BytesMut::new();
    frontend::encode_startup_3_0(&mut out, &[("user", user), ("database", "postgres")]);
    stream.write_all(&out).await.unwrap();
    let mut buffer = BytesMut::new();
    let message = next_message(&mut stream, &mut buffer).await.unwrap();
    assert!(
        matches!(
            BackendMessage::decode(message.view()),
            Ok(BackendMessage::Authentication(Authentication::Sasl { .. }))
        ),
        "{user} is asked for SCRAM"
    );
    out.clear();
    frontend::encode_sasl_initial_response(&mut out, "SCRAM-SHA-256", b"n,,n=,r=clientNonce");
    stream.write_all(&out).await.unwrap();
    let message = next_message(&mut stream, &mut buffer).await.unwrap();
    let Ok(BackendMessage::Authentication(Authentication::SaslContinue { data })) =
        BackendMessage::decode(message.view())
    else {
        panic!("expected AuthenticationSASLContinue for {user}");
    };
    let text = String::from_utf8(data.to_vec()).unwrap();
    let attribute = |name: &str| {
        text.split(',')
            .find_map(|part| part.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .to_string()
    };
    (attribute("s="), attribute("i="))
}

#[tokio::test]
async fn an_unknown_users_salt_is_the_same_at_every_attempt_and_shaped_like_a_real_users() {
    let proxied = ProxiedCluster::start(0, "").await;
    let port = proxied.port();
    let (known_salt, known_iterations) = scram_challenge(port, "postgres").await;
    let (unknown_salt, unknown_iterations) = scram_challenge(port, "mallory").await;
    assert_eq!(
        scram_challenge(port, "postgres").await.0,
        known_salt,
        "a real user's salt is stable"
    );
    assert_eq!(
        scram_challenge(port, "mallory").await.0,
        unknown_salt,
        "an unknown user's salt is stable too"
    );
    assert_ne!(scram_challenge(port, "eve").await.0, unknown_salt);
    assert_eq!(known_iterations, unknown_iterations);
    let decoded_len = |salt: &str| BASE64.decode(salt).unwrap().len();
    assert_eq!(decoded_len(&unknown_salt), decoded_len(&known_salt));
}

#[tokio::test]
async fn a_flood_of_unknown_user_logins_leaves_logged_in_clients_answered() {
    let proxied = ProxiedCluster::start(0, "[limits]\nfailed_login_delay_ms = 1\nfailed_login_delay_max_ms = 1\nmax_failed_logins = 0\n").await;
    let bystander = Bystander::start(&proxied).await;
    let port = proxied.port();
    let attackers: Vec<_> = (0..8)
        .map(|attacker| {
            tokio::spawn(async move {
                let start = Instant::now();
                let mut attempt = 0;
                while start.elapsed() < Duration::from_secs(3) {
                    let user = format!("nobody{attacker}_{attempt}");
                    assert_eq!(
                        login_error(port, &user, "guess").await.as_deref(),
                        Some("28P01"),
                        "an unknown user fails like a wrong password"
                    );
                    attempt += 1;
                }
            })
        })
        .collect();
    for attacker in attackers {
        attacker.await.unwrap();
    }
    bystander.finish().await;
}

#[tokio::test]
async fn failed_logins_are_delayed_and_an_address_that_keeps_failing_is_refused_with_28000() {
    let limits = "[limits]\nfailed_login_delay_ms = 100\nfailed_login_delay_max_ms = 400\nmax_failed_logins = 3\n";
    let proxied = ProxiedCluster::start(0, limits).await;
    let bystander = Bystander::start(&proxied).await;
    let port = proxied.port();
    for attempt in 0..3 {
        let start = Instant::now();
        let code = login_error(port, "postgres", "wrong").await;
        assert_eq!(code.as_deref(), Some("28P01"), "attempt {attempt}");
        // A lower bound only: the delay is at least what was configured.
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "attempt {attempt} answered after {:?}",
            start.elapsed()
        );
    }
    assert_eq!(
        right_login(port).await.as_deref(),
        Some("28000"),
        "even the right password is refused from an address that keeps failing"
    );
    bystander.finish().await;
}

#[tokio::test]
async fn silent_connections_past_max_pending_logins_are_refused_and_logged_in_clients_go_on() {
    let proxied = ProxiedCluster::start(0, "[limits]\nmax_pending_logins = 5\n").await;
    let bystander = Bystander::start(&proxied).await;
    let port = proxied.port();
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    // Accepted in order: the five above are pending before this one.
    assert_eq!(
        right_login(port).await.as_deref(),
        Some("53300"),
        "a login past max_pending_logins is refused"
    );
    drop(silent);
    wait_until(
        DEADLINE,
        "logins resume once the silent leave",
        async || right_login(port).await.is_none(),
    )
    .await;
    bystander.finish().await;
}

#[tokio::test]
async fn a_message_over_max_message_bytes_ends_that_client_with_54000() {
    let extra = "auth = \"trust\"\n[limits]\nmax_message_bytes = 1048576\n";
    let proxied = ProxiedCluster::start(0, extra).await;
    let bystander = Bystander::start(&proxied).await;
    let mut client = RawClient::log_in(proxied.port()).await;
    // Under the limit: answered.
    let under = format!("SELECT length('{}')", "x".repeat(900_000));
    assert_eq!(client.query_value(&under).await.as_deref(), Some("900000"));
    // Over it: refused from the header alone, before the body is buffered.
    let mut out = BytesMut::new();
    frontend::encode_query(
        &mut out,
        format!("SELECT '{}'", "x".repeat(2_000_000)).as_bytes(),
    );
    client.send(&out[..64]).await;
    let message = client.receive().await.expect("an ErrorResponse");
    let fields = error_fields(&message);
    assert_eq!(
        (fields.severity.as_str(), fields.code.as_str()),
        ("FATAL", "54000"),
        "{fields:?}"
    );
    assert!(
        fields.message.contains("max_message_bytes"),
        "{}",
        fields.message
    );
    assert!(client.receive().await.is_none(), "the connection is closed");
    bystander.finish().await;
}

#[tokio::test]
async fn a_user_past_its_max_connections_is_refused_with_53300_until_one_leaves() {
    let proxied = ProxiedCluster::start(0, "max_connections = 1\n").await;
    let first = proxied.connect().await;
    let port = proxied.port();
    assert_eq!(right_login(port).await.as_deref(), Some("53300"));
    first.query_one("SELECT 1", &[]).await.unwrap();
    drop(first);
    wait_until(
        DEADLINE,
        "a login succeeds once the first left",
        async || right_login(port).await.is_none(),
    )
    .await;
}

#[tokio::test]
async fn a_database_past_its_limit_is_refused_with_53300_and_others_are_not() {
    let proxied = ProxiedCluster::start(0, "[limits]\nmax_connections_per_database = 1\n").await;
    let _first = proxied.connect().await;
    let port = proxied.port();
    assert_eq!(right_login(port).await.as_deref(), Some("53300"));
    let other = format!("postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{port}/template1");
    let (client, connection) = tokio_postgres::connect(&other, tokio_postgres::NoTls)
        .await
        .expect("another database has its own count");
    tokio::spawn(connection);
    client.query_one("SELECT 1", &[]).await.unwrap();
}

#[tokio::test]
async fn a_client_idle_in_a_transaction_is_ended_with_25p03_and_its_transaction_rolled_back() {
    let proxied = ProxiedCluster::start(
        0,
        "[limits]\nidle_in_transaction_timeout_ms = 300\nidle_client_timeout_ms = 600000\n",
    )
    .await;
    let setup = proxied.connect().await;
    setup
        .batch_execute("CREATE TABLE idle_victim (id int)")
        .await
        .unwrap();
    let (client, connection) = proxied.connect_watched().await;
    client
        .batch_execute("BEGIN; INSERT INTO idle_victim VALUES (1)")
        .await
        .unwrap();
    assert_eq!(closed_with(connection, DEADLINE).await, "25P03");
    // Rolled back on its node once the proxy closed its backend.
    let locks = "SELECT count(*) FROM pg_locks WHERE relation = 'idle_victim'::regclass";
    wait_until(DEADLINE, "the transaction ends", async || {
        setup.query_one(locks, &[]).await.unwrap().get::<_, i64>(0) == 0
    })
    .await;
    let rows = setup
        .query_one("SELECT count(*) FROM idle_victim", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(rows, 0, "its insert was rolled back");
    // Idle outside a transaction, well under idle_client_timeout_ms: kept.
    setup.query_one("SELECT 1", &[]).await.unwrap();
}

#[tokio::test]
async fn a_client_idle_past_idle_client_timeout_is_ended_with_57p05() {
    let proxied = ProxiedCluster::start(0, "[limits]\nidle_client_timeout_ms = 300\n").await;
    let (client, connection) = proxied.connect_watched().await;
    client.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(closed_with(connection, DEADLINE).await, "57P05");
}

#[tokio::test]
async fn a_flood_of_garbage_and_half_open_connections_leaves_logged_in_clients_answered() {
    let proxied = ProxiedCluster::start(0, "").await;
    let bystander = Bystander::start(&proxied).await;
    let port = proxied.port();
    // Each attacker sends one kind of junk on connection after connection.
    let junk: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0, 0, 0, 8, 4, 210, 22, 47, 0, 0, 0, 8, 4, 210, 22, 47], // SSLRequest twice
        &[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0],                     // a 2 GiB startup packet
        &[0, 0, 0, 9, 0, 3, 0, 0, 0],                              // an empty StartupMessage
        &[0, 0, 0, 200, 0, 3, 0, 0, b'u'],                         // a truncated one, then silence
    ];
    let attackers: Vec<_> = junk
        .into_iter()
        .map(|bytes| {
            tokio::spawn(async move {
                for _ in 0..40 {
                    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                    let _ = stream.write_all(bytes).await;
                    let mut answer = [0u8; 256];
                    // The proxy answers (an error or `N`) or waits; neither may take long.
                    let _ =
                        tokio::time::timeout(Duration::from_millis(100), stream.read(&mut answer))
                            .await;
                }
            })
        })
        .collect();
    for attacker in attackers {
        attacker.await.unwrap();
    }
    assert_eq!(right_login(port).await, None, "a real client still logs in");
    bystander.finish().await;
}
