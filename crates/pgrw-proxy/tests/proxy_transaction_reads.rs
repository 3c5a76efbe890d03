//! `[policy] transaction_reads = "replica"`: a READ COMMITTED transaction's
//! reads before its first write run on a replica, the rest on the primary,
//! and a client sees what a direct connection to the primary shows — every
//! transaction status byte and SQLSTATE. Where a statement ran is read from
//! the node itself (`inet_server_port()`) and from the proxy's counters.

#[allow(dead_code)]
#[path = "support/node_connection.rs"]
mod node_connection;
#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;
#[path = "support/raw_client.rs"]
mod raw_client;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use node_connection::{NodeConnection, first_column};
use pgrw_cluster::testing::TEST_PASSWORD;
use pgrw_core::route::NodeId;
use pgrw_proxy::protocol::Message;
use pgrw_proxy::protocol::backend::BackendMessage;
use pgrw_proxy::protocol::frontend;
use proxy_cluster::{ProxiedCluster, first_value as value};
use raw_client::encode_unnamed_execute;

const MODE_ON: &str = "[policy]\ntransaction_reads = \"replica\"\n";
/// The mode, with reads waiting up to 1 s for a replica to replay the
/// writes they must see: under a concurrent write load on a loaded machine
/// replay can take longer than the default 50 ms, and the tests count where
/// reads ran, not how fast replay is.
const MODE_ON_UNDER_WRITES: &str =
    "[policy]\ntransaction_reads = \"replica\"\nread_your_writes_wait_ms = 1000\n";

/// The node that served `SELECT inet_server_port()` (simple protocol).
async fn serving_node(proxied: &ProxiedCluster, client: &tokio_postgres::Client) -> String {
    let port: i32 = value(client, "SELECT inet_server_port()")
        .await
        .parse()
        .expect("a port");
    proxied.node_at(port)
}

/// A raw connection through `port` (the proxy, or a node).
async fn raw(port: u16) -> NodeConnection {
    NodeConnection::logged_in(port, "postgres", TEST_PASSWORD).await
}

/// Sends one simple Query and describes its answer up to ReadyForQuery:
/// message tags, with CommandComplete tags, SQLSTATEs, first columns and
/// the transaction status byte.
async fn exchange(connection: &mut NodeConnection, sql: &str) -> Vec<String> {
    let mut out = BytesMut::new();
    frontend::encode_query(&mut out, sql.as_bytes());
    connection.send(&out).await;
    answer(connection).await
}

/// Sends `statements` as one extended batch ended by Sync, and describes
/// the answer as [`exchange`] does.
async fn exchange_batch(connection: &mut NodeConnection, statements: &[&str]) -> Vec<String> {
    let mut out = BytesMut::new();
    for sql in statements {
        // Parse, Bind, Describe, Execute: as pgjdbc sends each statement.
        encode_unnamed_execute(&mut out, sql.as_bytes(), true);
    }
    frontend::encode_sync(&mut out);
    connection.send(&out).await;
    answer(connection).await
}

/// The answer up to ReadyForQuery, described.
async fn answer(connection: &mut NodeConnection) -> Vec<String> {
    connection
        .receive_until_ready()
        .await
        .iter()
        .map(describe)
        .collect()
}

fn describe(message: &Message) -> String {
    match BackendMessage::decode(message.view()) {
        Ok(BackendMessage::ErrorResponse(fields)) => format!("E {}", fields.code),
        Ok(BackendMessage::ReadyForQuery(status)) => format!("Z {}", char::from(status.byte())),
        Ok(BackendMessage::CommandComplete { tag }) => {
            format!("C {}", String::from_utf8_lossy(tag))
        }
        _ if message.tag() == b'D' => format!("D {:?}", first_column(message.body())),
        _ => char::from(message.tag()).to_string(),
    }
}

/// Polls until every replica has replayed what the primary has now.
async fn replicas_caught_up(proxied: &ProxiedCluster) {
    proxied.cluster.wait_for_replicas_to_catch_up().await;
}

#[tokio::test]
async fn every_status_byte_and_sqlstate_in_transactions_matches_a_direct_connection() {
    let proxied = ProxiedCluster::start(1, MODE_ON).await;
    let setup = proxied.connect().await;
    for table in ["tr_proxied", "tr_direct"] {
        setup
            .batch_execute(&format!(
                "CREATE TABLE {table} (id int PRIMARY KEY, v text);
                 INSERT INTO {table} VALUES (1, 'one'), (2, 'two')"
            ))
            .await
            .expect("setup");
    }
    replicas_caught_up(&proxied).await;
    let script = |table: &str| -> Vec<String> {
        [
            // Reads only, a failure, 25P02, COMMIT of a failed transaction.
            "BEGIN",
            "SELECT v FROM {t} WHERE id = 1",
            "SELECT count(*) FROM {t}",
            "SELECT 1/0",
            "SELECT 1",
            "SAVEPOINT s",
            "COMMIT",
            "BEGIN",
            "SELECT 1/0",
            "ROLLBACK",
            // Read, write, read.
            "BEGIN",
            "SELECT v FROM {t} WHERE id = 2",
            "INSERT INTO {t} VALUES (3, 'three')",
            "SELECT count(*) FROM {t}",
            "COMMIT",
            // Savepoints after a read.
            "BEGIN",
            "SELECT count(*) FROM {t}",
            "SAVEPOINT a",
            "SELECT 1/0",
            "ROLLBACK TO SAVEPOINT a",
            "SELECT count(*) FROM {t}",
            "RELEASE a",
            "COMMIT",
            // A cursor declared before the first write lives on.
            "BEGIN",
            "DECLARE c CURSOR FOR SELECT id FROM {t} ORDER BY id",
            "FETCH 1 FROM c",
            "INSERT INTO {t} VALUES (4, 'four')",
            "FETCH 1 FROM c",
            "CLOSE c",
            "COMMIT",
            // Nothing in it.
            "BEGIN",
            "COMMIT",
            "START TRANSACTION",
            "ROLLBACK",
            "BEGIN ISOLATION LEVEL READ COMMITTED",
            "END",
            // A write first; a failed write.
            "BEGIN",
            "UPDATE {t} SET v = 'uno' WHERE id = 1",
            "INSERT INTO {t} VALUES (1, 'dup')",
            "SELECT 1",
            "ROLLBACK",
            // The levels and values a transaction shows.
            "BEGIN",
            "SHOW transaction_isolation",
            "SELECT current_setting('transaction_read_only')",
            "SELECT now() = transaction_timestamp()",
            "COMMIT",
            "BEGIN ISOLATION LEVEL REPEATABLE READ",
            "SELECT count(*) FROM {t}",
            "COMMIT",
            // A second BEGIN warns; a stray COMMIT warns.
            "BEGIN",
            "BEGIN",
            "SELECT count(*) FROM {t}",
            "COMMIT",
            "COMMIT",
            "ROLLBACK AND CHAIN",
            // A read after a failed read, then ABORT.
            "BEGIN",
            "SELECT v FROM {t} WHERE id = 1",
            "SELECT no_such_column FROM {t}",
            "INSERT INTO {t} VALUES (9, 'nine')",
            "ABORT",
            "SELECT count(*) FROM {t}",
        ]
        .iter()
        .map(|sql| sql.replace("{t}", table))
        .collect()
    };
    let mut proxy = raw(proxied.port()).await;
    let mut primary = raw(proxied.cluster.port("primary")).await;
    for (through_proxy, on_primary) in script("tr_proxied").iter().zip(script("tr_direct")) {
        let seen = exchange(&mut proxy, through_proxy).await;
        let expected = exchange(&mut primary, &on_primary).await;
        assert_eq!(
            seen, expected,
            "{through_proxy}: through the proxy vs direct"
        );
    }
    // pgjdbc's way: BEGIN in the batch of the transaction's first statement.
    let batches: [&[&str]; 5] = [
        &["BEGIN", "SELECT count(*) FROM {t}"],
        &["SELECT v FROM {t} WHERE id = 2"],
        &["SELECT 1/0"],
        &["SELECT 1"],
        &["COMMIT"],
    ];
    let batches_then_write: [&[&str]; 4] = [
        &["BEGIN", "SELECT count(*) FROM {t}"],
        &[
            "UPDATE {t} SET v = 'dos' WHERE id = 2",
            "SELECT v FROM {t} WHERE id = 2",
        ],
        &["COMMIT"],
        &[
            "BEGIN ISOLATION LEVEL REPEATABLE READ",
            "SELECT count(*) FROM {t}",
            "COMMIT",
        ],
    ];
    for batch in batches.iter().chain(batches_then_write.iter()) {
        let on = |table: &str| -> Vec<String> {
            batch.iter().map(|sql| sql.replace("{t}", table)).collect()
        };
        let (through_proxy, on_primary) = (on("tr_proxied"), on("tr_direct"));
        let through: Vec<&str> = through_proxy.iter().map(String::as_str).collect();
        let direct: Vec<&str> = on_primary.iter().map(String::as_str).collect();
        let seen = exchange_batch(&mut proxy, &through).await;
        let expected = exchange_batch(&mut primary, &direct).await;
        assert_eq!(
            seen, expected,
            "{through_proxy:?}: through the proxy vs direct"
        );
    }
    // The script's leading reads ran on the replica.
    let stats = proxied.proxy.state().stats();
    assert!(
        stats.reads_in_transaction[1] >= 5,
        "reads in transactions on the replica: {stats:?}"
    );
}

#[tokio::test]
async fn reads_before_the_first_write_run_on_a_replica_and_the_rest_on_the_primary() {
    let proxied = ProxiedCluster::start(1, MODE_ON).await;
    let client = proxied.connect().await;
    client
        .batch_execute("CREATE TABLE tr_where (id int)")
        .await
        .expect("setup");
    replicas_caught_up(&proxied).await;
    client.batch_execute("BEGIN").await.expect("BEGIN");
    assert_eq!(serving_node(&proxied, &client).await, "replica1");
    // The extended protocol too (tokio-postgres prepares its statements).
    let row = client
        .query_one("SELECT inet_server_port(), count(*) FROM tr_where", &[])
        .await
        .expect("an extended read");
    assert_eq!(proxied.node_at(row.get(0)), "replica1");
    let route = value(&client, "SHOW pgrw.route").await;
    assert!(
        route.contains("read in transaction, before its first write"),
        "{route}"
    );
    client
        .batch_execute("INSERT INTO tr_where VALUES (1)")
        .await
        .expect("the write");
    assert_eq!(serving_node(&proxied, &client).await, "primary");
    assert_eq!(
        value(&client, "SELECT count(*) FROM tr_where").await,
        "1",
        "the transaction sees its write"
    );
    client.batch_execute("COMMIT").await.expect("COMMIT");
}

#[tokio::test]
async fn a_begin_in_the_batch_of_the_first_statement_is_deferred_too() {
    // pgjdbc with autoCommit=false sends BEGIN so, with Parse/Bind/Execute.
    let proxied = ProxiedCluster::start(1, MODE_ON).await;
    replicas_caught_up(&proxied).await;
    let mut client = raw(proxied.port()).await;
    let port = |answer: &[String]| -> String {
        let row = answer
            .iter()
            .find(|message| message.starts_with("D "))
            .unwrap_or_else(|| panic!("a row: {answer:?}"));
        let port: i32 = row
            .trim_start_matches("D Some(\"")
            .trim_end_matches("\")")
            .parse()
            .unwrap_or_else(|_| panic!("a port: {row}"));
        proxied.node_at(port)
    };
    let first = exchange_batch(&mut client, &["BEGIN", "SELECT inet_server_port()"]).await;
    assert_eq!(first.last().map(String::as_str), Some("Z T"), "{first:?}");
    assert_eq!(port(&first), "replica1", "{first:?}");
    let later = exchange_batch(&mut client, &["SELECT inet_server_port()"]).await;
    assert_eq!(port(&later), "replica1", "{later:?}");
    let ended = exchange(&mut client, "COMMIT").await;
    assert_eq!(ended, ["C COMMIT", "Z I"]);
}

#[tokio::test]
async fn a_transaction_that_only_reads_never_touches_the_primary() {
    let proxied = ProxiedCluster::start(1, MODE_ON).await;
    let mut client = proxied.connect().await;
    replicas_caught_up(&proxied).await;
    let primary_before = proxied.proxy.state().stats().node(NodeId(0)).total();
    let mut on_replica = 0;
    let transactions = 40;
    for _ in 0..transactions {
        let transaction = client.transaction().await.expect("BEGIN");
        for _ in 0..3 {
            let row = transaction
                .query_one("SELECT inet_server_port()", &[])
                .await
                .expect("a read");
            if proxied.node_at(row.get(0)) == "replica1" {
                on_replica += 1;
            }
        }
        transaction.commit().await.expect("COMMIT");
    }
    // Rolled back and empty transactions cost nothing either.
    client.batch_execute("BEGIN; ").await.ok();
    client.batch_execute("ROLLBACK").await.expect("ROLLBACK");
    client.batch_execute("BEGIN").await.expect("BEGIN");
    client.batch_execute("COMMIT").await.expect("COMMIT");
    assert!(
        on_replica * 100 >= transactions * 3 * 95,
        "{on_replica} of {} reads on the replica",
        transactions * 3
    );
    let primary_after = proxied.proxy.state().stats().node(NodeId(0)).total();
    assert_eq!(
        primary_after, primary_before,
        "nothing of a read-only transaction ran on the primary"
    );
}

#[tokio::test]
async fn with_the_mode_off_a_transaction_runs_whole_on_the_primary() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    replicas_caught_up(&proxied).await;
    client.batch_execute("BEGIN").await.expect("BEGIN");
    assert_eq!(serving_node(&proxied, &client).await, "primary");
    client.batch_execute("COMMIT").await.expect("COMMIT");
}

#[tokio::test]
async fn a_session_whose_transactions_keep_a_snapshot_runs_them_on_the_primary() {
    let proxied = ProxiedCluster::start(1, MODE_ON).await;
    let client = proxied.connect().await;
    replicas_caught_up(&proxied).await;
    client
        .batch_execute("SET default_transaction_isolation = 'repeatable read'")
        .await
        .expect("SET");
    client.batch_execute("BEGIN").await.expect("BEGIN");
    assert_eq!(serving_node(&proxied, &client).await, "primary");
    client.batch_execute("COMMIT").await.expect("COMMIT");
    client
        .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .expect("SET");
    client.batch_execute("BEGIN").await.expect("BEGIN");
    assert_eq!(serving_node(&proxied, &client).await, "replica1");
    client.batch_execute("COMMIT").await.expect("COMMIT");
    // Its start time stays the transaction's: read on the primary.
    client.batch_execute("BEGIN").await.expect("BEGIN");
    let port: i32 = value(&client, "SELECT inet_server_port() WHERE now() IS NOT NULL")
        .await
        .parse()
        .expect("a port");
    assert_eq!(proxied.node_at(port), "primary");
    client.batch_execute("COMMIT").await.expect("COMMIT");
}

/// Rows a writer commits through the proxy while readers read them in
/// transactions, with replay paused on one replica: every read sees every
/// row committed before it began, and nearly all run on replicas.
#[tokio::test]
async fn reads_in_transactions_are_never_stale_under_a_concurrent_write_load() {
    let proxied = ProxiedCluster::start(2, MODE_ON_UNDER_WRITES).await;
    let setup = proxied.connect().await;
    setup
        .batch_execute("CREATE TABLE tr_fresh (id bigint PRIMARY KEY)")
        .await
        .expect("setup");
    replicas_caught_up(&proxied).await;
    proxied.cluster.pause_replay("replica2").await;
    let committed = Arc::new(AtomicI64::new(0));
    let deadline = Instant::now() + Duration::from_secs(4);
    let writer = {
        let client = proxied.connect().await;
        let committed = committed.clone();
        tokio::spawn(async move {
            let mut id = 0;
            while Instant::now() < deadline {
                id += 1;
                client
                    .batch_execute(&format!("INSERT INTO tr_fresh VALUES ({id})"))
                    .await
                    .expect("the write");
                committed.store(id, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut client = proxied.connect().await;
        let committed = committed.clone();
        let primary_port = i32::from(proxied.cluster.port("primary"));
        readers.push(tokio::spawn(async move {
            let (mut reads, mut stale, mut on_primary) = (0, 0, 0);
            while Instant::now() < deadline {
                let transaction = client.transaction().await.expect("BEGIN");
                for _ in 0..2 {
                    let before = committed.load(Ordering::SeqCst);
                    let row = transaction
                        .query_one(
                            "SELECT coalesce(max(id), 0), inet_server_port() FROM tr_fresh",
                            &[],
                        )
                        .await
                        .expect("a read");
                    let (seen, port): (i64, i32) = (row.get(0), row.get(1));
                    reads += 1;
                    stale += usize::from(seen < before);
                    on_primary += usize::from(port == primary_port);
                }
                transaction.commit().await.expect("COMMIT");
            }
            (reads, stale, on_primary)
        }));
    }
    writer.await.expect("the writer");
    let (mut reads, mut stale, mut on_primary) = (0, 0, 0);
    for reader in readers {
        let (r, s, p) = reader.await.expect("a reader");
        reads += r;
        stale += s;
        on_primary += p;
    }
    proxied.cluster.resume_replay("replica2").await;
    assert!(reads > 20, "only {reads} reads");
    assert_eq!(stale, 0, "{stale} of {reads} reads were stale");
    assert!(
        on_primary * 100 <= reads * 5,
        "{on_primary} of {reads} reads on the primary"
    );
}

/// How many rows `pg_prepared_statements` has for `sql`, and the port of
/// the node that answered.
async fn listed(transaction: &tokio_postgres::Transaction<'_>, sql: &str) -> (i64, i32) {
    let row = transaction
        .query_one(
            "SELECT count(*), inet_server_port() FROM pg_prepared_statements \
             WHERE statement = $1",
            &[&sql],
        )
        .await
        .expect("the question");
    (row.get(0), row.get(1))
}

/// A client's statements prepared in a deferred transaction live on its read
/// leg: a look at `pg_prepared_statements` there is answered by that backend
/// (and keeps the transaction on the replica), not by the primary's.
#[tokio::test]
async fn the_sessions_prepared_statements_are_asked_of_the_read_leg() {
    let proxied = ProxiedCluster::start(1, MODE_ON).await;
    let mut client = proxied.connect().await;
    replicas_caught_up(&proxied).await;
    let prepared = "SELECT inet_server_port() AS tr_prepared_here";
    let transaction = client.transaction().await.expect("BEGIN");
    let statement = transaction.prepare(prepared).await.expect("Parse");
    let row = transaction
        .query_one(&statement, &[])
        .await
        .expect("the prepared read");
    assert_eq!(proxied.node_at(row.get(0)), "replica1");
    let (count, port) = listed(&transaction, prepared).await;
    assert_eq!(
        proxied.node_at(port),
        "replica1",
        "the backend the statement lives on answers"
    );
    assert_eq!(count, 1, "the statement is listed");
    let row = transaction
        .query_one(&statement, &[])
        .await
        .expect("a read after it");
    assert_eq!(
        proxied.node_at(row.get(0)),
        "replica1",
        "the transaction is still on the replica"
    );
    transaction.commit().await.expect("COMMIT");
    // Outside a transaction, the question is the primary's, as before.
    let port: i32 = value(
        &client,
        "SELECT inet_server_port() FROM (SELECT count(*) FROM pg_prepared_statements) AS p",
    )
    .await
    .parse()
    .expect("a port");
    assert_eq!(proxied.node_at(port), "primary");
}

/// Sends `flushed` (Parse, Bind, Describe, Execute) and a Flush, reads its
/// answer up to its CommandComplete (or error), then sends `synced` and a
/// Sync: the answer of both, described as [`exchange`] does.
async fn flushed_then_synced(
    connection: &mut NodeConnection,
    flushed: &str,
    synced: &str,
) -> Vec<String> {
    let mut out = BytesMut::new();
    encode_unnamed_execute(&mut out, flushed.as_bytes(), true);
    frontend::encode_flush(&mut out);
    connection.send(&out).await;
    let mut seen = Vec::new();
    loop {
        let message = connection.receive().await;
        seen.push(describe(&message));
        if matches!(message.tag(), b'C' | b'E') {
            break;
        }
    }
    seen.extend(exchange_batch(connection, &[synced]).await);
    seen
}

/// psycopg 3 in pipeline mode (`test_explicit_rollback_discards_changes`):
/// `BEGIN` in a batch of its own, a read flushed and answered before any
/// Sync, then `SAVEPOINT` after that Flush, a write, and `ROLLBACK TO` the
/// savepoint. The savepoint must live where the transaction goes on (the
/// primary), not in the replica's transaction the read ran in: there the
/// write, opening the transaction on the primary, lost it (`3B001`).
#[tokio::test]
async fn a_savepoint_after_a_flushed_read_lives_where_the_transaction_goes_on() {
    let proxied = ProxiedCluster::start(1, MODE_ON).await;
    let setup = proxied.connect().await;
    for table in ["tr_sp_proxied", "tr_sp_direct"] {
        setup
            .batch_execute(&format!("CREATE TABLE {table} (v int)"))
            .await
            .expect("setup");
    }
    replicas_caught_up(&proxied).await;
    let mut proxy = raw(proxied.port()).await;
    let mut primary = raw(proxied.cluster.port("primary")).await;
    let mut answers = Vec::new();
    for (connection, table) in [
        (&mut proxy, "tr_sp_proxied"),
        (&mut primary, "tr_sp_direct"),
    ] {
        let mut seen = exchange_batch(connection, &["BEGIN"]).await;
        seen.extend(
            flushed_then_synced(
                connection,
                &format!("SELECT count(*) FROM {table}"),
                "SAVEPOINT s",
            )
            .await,
        );
        let insert = format!("INSERT INTO {table} VALUES (1)");
        seen.extend(exchange_batch(connection, &[&insert]).await);
        seen.extend(exchange_batch(connection, &["ROLLBACK TO s", "RELEASE s"]).await);
        let count = format!("SELECT count(*) FROM {table}");
        seen.extend(exchange_batch(connection, &[&count]).await);
        seen.extend(exchange(connection, "COMMIT").await);
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1], "through the proxy vs direct");
    assert!(
        answers[0].iter().all(|message| !message.starts_with("E ")),
        "{:?}",
        answers[0]
    );
}

/// The question about the session's own backend goes to the read leg even
/// while the leg's replica lags behind a write the session must see: it shows
/// that backend's state, not replicated data, and no other node has it.
#[tokio::test]
async fn the_sessions_prepared_statements_are_asked_of_the_read_leg_while_it_lags() {
    let proxied = ProxiedCluster::start(1, MODE_ON).await;
    let writer = proxied.connect().await;
    writer
        .batch_execute("CREATE TABLE tr_lagging (id int)")
        .await
        .expect("setup");
    replicas_caught_up(&proxied).await;
    let mut client = proxied.connect().await;
    let prepared = "SELECT inet_server_port() AS tr_prepared_lagging";
    let transaction = client.transaction().await.expect("BEGIN");
    let row = transaction
        .query_one(prepared, &[])
        .await
        .expect("the prepared read");
    assert_eq!(proxied.node_at(row.get(0)), "replica1");
    proxied.cluster.pause_replay("replica1").await;
    writer
        .batch_execute("INSERT INTO tr_lagging VALUES (1)")
        .await
        .expect("a write the leg has not replayed");
    let (count, port) = listed(&transaction, prepared).await;
    proxied.cluster.resume_replay("replica1").await;
    assert_eq!(proxied.node_at(port), "replica1");
    assert_eq!(count, 1, "the statement is listed");
    transaction.commit().await.expect("COMMIT");
}
