//! What a node says to an idle client on its own reaches the client at once,
//! as on a direct connection: a NOTIFY from another connection, and the end
//! of a backend the client holds (its LISTEN pin, its open transaction, its
//! session-pooled backend) — each handled as the client would expect.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;
#[path = "support/raw_client.rs"]
mod raw_client;

use bytes::BytesMut;
use futures_util::StreamExt;
use pgrw_cluster::testing::wait_until;
use pgrw_proxy::protocol::frontend;
use proxy_cluster::ProxiedCluster;
use raw_client::{DEADLINE, RawClient, error_fields};
use tokio::io::AsyncWriteExt;
use tokio_postgres::AsyncMessage;
use tokio_postgres::error::SqlState;

/// Terminates backend `pid` on the primary and waits until it is gone.
async fn terminate_on_primary(proxied: &ProxiedCluster, pid: i32) {
    let primary = proxied.cluster.connect_primary().await;
    let terminated: bool = primary
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .expect("pg_terminate_backend")
        .get(0);
    assert!(terminated, "backend {pid} was not there to terminate");
    wait_until(DEADLINE, "the terminated backend is gone", async || {
        let rows = primary
            .query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&pid])
            .await
            .expect("reading pg_stat_activity");
        rows.is_empty()
    })
    .await;
}

#[tokio::test]
async fn an_idle_listener_receives_a_notification_from_another_connection_at_once() {
    let proxied = ProxiedCluster::start(1, "").await;
    let (listener, mut connection) = tokio_postgres::connect(&proxied.dsn(), tokio_postgres::NoTls)
        .await
        .expect("logging in through the proxy");
    let (notifications, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(notification) = message {
                let _ = notifications.send(notification);
            }
        }
    });
    listener.batch_execute("LISTEN events").await.unwrap();

    let notifier = proxied.connect().await;
    notifier
        .batch_execute("NOTIFY events, 'hello'")
        .await
        .unwrap();

    // The listener sends nothing meanwhile: only the proxy can bring it.
    let notification = tokio::time::timeout(DEADLINE, received.recv())
        .await
        .expect("the notification reaches the idle listener within the deadline")
        .expect("the listener's connection stays open");
    assert_eq!(
        (notification.channel(), notification.payload()),
        ("events", "hello")
    );
}

#[tokio::test]
async fn a_listener_whose_backend_is_terminated_gets_the_node_s_fatal_and_is_disconnected() {
    let proxied = ProxiedCluster::start(1, "auth = \"trust\"").await;
    let mut client = RawClient::log_in(proxied.port()).await;
    client.query_value("LISTEN events").await;
    let pid: i32 = client
        .query_value("SELECT pg_backend_pid()")
        .await
        .and_then(|pid| pid.parse().ok())
        .expect("the pinned backend's pid");

    terminate_on_primary(&proxied, pid).await;

    // As on a direct connection: the node's FATAL, then the end.
    let fatal = client
        .receive()
        .await
        .expect("the FATAL before the connection closes");
    let fields = error_fields(&fatal);
    assert_eq!(
        (fields.severity.as_str(), fields.code.as_str()),
        ("FATAL", "57P01")
    );
    assert!(client.receive().await.is_none(), "the connection closes");
}

#[tokio::test]
async fn a_transaction_whose_backend_is_terminated_while_idle_fails_its_next_statement_and_the_connection_goes_on()
 {
    let proxied = ProxiedCluster::start(0, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("CREATE TABLE notes (body text)")
        .await
        .unwrap();
    client
        .batch_execute("BEGIN; INSERT INTO notes VALUES ('lost')")
        .await
        .unwrap();
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);

    terminate_on_primary(&proxied, pid).await;

    let error = client
        .batch_execute("COMMIT")
        .await
        .expect_err("the commit of a lost transaction fails");
    let error = error.as_db_error().expect("an error from the server side");
    assert_eq!(error.code(), &SqlState::CONNECTION_FAILURE);
    assert!(
        error.message().contains("rolled back"),
        "the message says the transaction was rolled back: {}",
        error.message()
    );
    let count: i64 = client
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .expect("the connection runs the next statement")
        .get(0);
    assert_eq!(count, 0);
}

#[tokio::test]
async fn a_session_pooled_client_whose_idle_backend_is_terminated_runs_on_a_fresh_one() {
    let proxied = ProxiedCluster::start(0, "[pool]\nmode = \"session\"").await;
    let client = proxied.connect().await;
    let backend_pid = async || -> i32 {
        client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("a statement on the session's backend")
            .get(0)
    };
    let first = backend_pid().await;

    terminate_on_primary(&proxied, first).await;

    assert_ne!(backend_pid().await, first);
}

#[tokio::test]
async fn a_pinned_client_whose_backend_dies_mid_statement_is_disconnected_not_silently_unpinned() {
    let proxied = ProxiedCluster::start(1, "auth = \"trust\"").await;
    let mut client = RawClient::log_in(proxied.port()).await;
    client
        .query_value("CREATE TEMP TABLE scratch (x int)")
        .await;

    let mut out = BytesMut::new();
    frontend::encode_query(&mut out, b"SELECT pg_terminate_backend(pg_backend_pid())");
    client.stream.write_all(&out).await.unwrap();
    let mut severities = Vec::new();
    while let Some(message) = client.receive().await {
        match message.tag() {
            b'E' => severities.push(error_fields(&message).severity),
            b'Z' => panic!("the session went on without its temp table: {severities:?}"),
            _ => {}
        }
    }
    assert!(
        severities.iter().any(|severity| severity == "FATAL"),
        "the client is told its session ended: {severities:?}"
    );
}

#[tokio::test]
async fn a_backend_terminated_mid_statement_fails_that_statement_and_no_other_client_notices() {
    let proxied = ProxiedCluster::start(0, "").await;
    let victim = proxied.connect().await;
    let bystander = proxied.connect().await;
    bystander
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();

    let sleeping = tokio::spawn(async move {
        let outcome = victim.batch_execute("SELECT pg_sleep(60)").await;
        (victim, outcome)
    });
    let primary = proxied.cluster.connect_primary().await;
    let mut pid = None;
    wait_until(DEADLINE, "the sleep runs on the primary", async || {
        let row = primary
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'",
                &[],
            )
            .await
            .expect("reading pg_stat_activity");
        pid = row.map(|row| row.get::<_, i32>(0));
        pid.is_some()
    })
    .await;
    terminate_on_primary(&proxied, pid.expect("found")).await;
    let (victim, outcome) = tokio::time::timeout(DEADLINE, sleeping)
        .await
        .expect("the terminated statement ends")
        .unwrap();
    assert!(outcome.is_err(), "the terminated statement fails");

    // The node is healthy: one ended backend must not ban it for everyone.
    bystander
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .expect("another client writes on the primary at once");
    let row = victim.query_one("SELECT count(*) FROM t", &[]).await;
    assert_eq!(
        row.expect("the victim's next statement runs")
            .get::<_, i64>(0),
        1
    );
}

#[tokio::test]
async fn a_backend_terminated_mid_statement_is_reported_as_lost_not_as_the_client_s_fatal() {
    let proxied = ProxiedCluster::start(0, "auth = \"trust\"").await;
    let mut client = RawClient::log_in(proxied.port()).await;
    let mut out = BytesMut::new();
    frontend::encode_query(&mut out, b"SELECT pg_sleep(60) /* lost */");
    client.stream.write_all(&out).await.unwrap();

    let primary = proxied.cluster.connect_primary().await;
    let mut pid = None;
    wait_until(DEADLINE, "the sleep runs on the primary", async || {
        let row = primary
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60) /* lost */'",
                &[],
            )
            .await
            .expect("reading pg_stat_activity");
        pid = row.map(|row| row.get::<_, i32>(0));
        pid.is_some()
    })
    .await;
    terminate_on_primary(&proxied, pid.expect("found")).await;

    // The client's connection lives on: an ERROR 08006 with the node's words
    // as its detail, then ReadyForQuery; no FATAL that would make a driver
    // think its own connection died.
    let mut errors = Vec::new();
    loop {
        let message = client.receive().await.expect("the connection stays open");
        match message.tag() {
            b'E' => errors.push(error_fields(&message)),
            b'Z' => break,
            _ => {}
        }
    }
    let [error] = errors.as_slice() else {
        panic!("one error, not {errors:?}");
    };
    assert_eq!(
        (error.severity.as_str(), error.code.as_str()),
        ("ERROR", "08006")
    );
    let detail = error.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("57P01"), "the node's reason: {detail}");
    assert_eq!(
        client.query_value("SELECT 1").await.as_deref(),
        Some("1"),
        "the next statement runs on another backend"
    );
}
