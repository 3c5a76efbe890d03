//! Self-healing routes: a read a replica refuses because only the primary
//! can run it (a view over an unlogged table — the unlogged table itself
//! the proxy knows from the catalog —, a "read-only" function that writes, a
//! conflict with replay) is run again on the primary before the client sees
//! anything, and its shape is remembered, so that the next one goes to the
//! primary first. Inside a transaction the refusal is the client's, as on a
//! direct connection. Routing is checked by node identity
//! (`current_setting('port')`).

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::time::Duration;

use pgrw_cluster::testing::wait_until;
use proxy_cluster::ProxiedCluster;
use tokio_postgres::SimpleQueryMessage;

/// A cluster with one replica, a view `scratch` of the two rows of an
/// unlogged table, and the replica caught up (it knows the view, but cannot
/// read it; the classifier sees only the view's name).
async fn with_view_over_unlogged_table() -> ProxiedCluster {
    with_view_over_unlogged_table_and("").await
}

/// As [`with_view_over_unlogged_table`], with `extra` proxy configuration.
async fn with_view_over_unlogged_table_and(extra: &str) -> ProxiedCluster {
    let proxied = ProxiedCluster::start(1, extra).await;
    let client = proxied.connect().await;
    client
        .batch_execute(
            "CREATE UNLOGGED TABLE scratch_rows (id int); \
             INSERT INTO scratch_rows VALUES (1), (2); \
             CREATE VIEW scratch AS SELECT id FROM scratch_rows",
        )
        .await
        .unwrap();
    proxied.cluster.wait_for_replicas_to_catch_up().await;
    proxied
}

/// The values of the single row of a simple query's answer.
fn only_row(messages: &[SimpleQueryMessage]) -> Vec<String> {
    let rows: Vec<_> = messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|index| row.get(index).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 1, "one row: {rows:?}");
    rows.into_iter().next().unwrap()
}

fn port_of(proxied: &ProxiedCluster, port: &str) -> String {
    proxied.node_at(port.parse().expect("a port number"))
}

#[tokio::test]
async fn a_read_of_a_view_over_an_unlogged_table_is_answered_by_the_primary_and_learned() {
    let proxied = with_view_over_unlogged_table().await;
    let client = proxied.connect().await;
    let stats = || proxied.proxy.state().stats();

    // The classifier sends it to the replica, which refuses it.
    let direct = proxied.cluster.connect("replica1").await;
    let refused = direct.simple_query("SELECT count(*) FROM scratch").await;
    assert!(
        refused.is_err(),
        "a replica cannot read a view over an unlogged table"
    );

    let answer = client
        .simple_query("SELECT count(*), current_setting('port') FROM scratch WHERE id > 0")
        .await
        .expect("the read is answered");
    let row = only_row(&answer);
    assert_eq!(row[0], "2");
    assert_eq!(port_of(&proxied, &row[1]), "primary");
    assert_eq!(stats().reruns.recovery_relation, 1, "refused once, rerun");
    assert_eq!(stats().shapes_learned, 1);

    // The same shape (another constant) goes to the primary first.
    let answer = client
        .simple_query("SELECT count(*), current_setting('port') FROM scratch WHERE id > 1")
        .await
        .expect("the read is answered");
    let row = only_row(&answer);
    assert_eq!(row[0], "1");
    assert_eq!(port_of(&proxied, &row[1]), "primary");
    assert_eq!(stats().reruns.total(), 1, "no second refusal was hidden");
}

#[tokio::test]
async fn an_extended_protocol_read_of_a_view_over_an_unlogged_table_is_answered_by_the_primary() {
    let proxied = with_view_over_unlogged_table().await;
    let client = proxied.connect().await;
    let stats = || proxied.proxy.state().stats();
    let sql = "SELECT count(*)::int AS n, current_setting('port')::int AS port \
               FROM scratch WHERE id > $1";

    let row = client
        .query_one(sql, &[&0i32])
        .await
        .expect("the read is answered");
    assert_eq!(row.get::<_, i32>("n"), 2);
    assert_eq!(proxied.node_at(row.get("port")), "primary");
    assert_eq!(stats().reruns.recovery_relation, 1);

    // A prepared statement run again, on another connection: primary first.
    let other = proxied.connect().await;
    let statement = other.prepare(sql).await.unwrap();
    for bound in [1i32, 0] {
        let row = other.query_one(&statement, &[&bound]).await.unwrap();
        assert_eq!(row.get::<_, i32>("n"), 2 - bound);
        assert_eq!(proxied.node_at(row.get("port")), "primary");
    }
    assert_eq!(stats().reruns.total(), 1, "no second refusal was hidden");
}

#[tokio::test]
async fn inside_a_read_only_transaction_the_replicas_refusal_reaches_the_client() {
    let proxied = with_view_over_unlogged_table().await;
    let client = proxied.connect().await;
    client.batch_execute("BEGIN READ ONLY").await.unwrap();
    let port: String = client
        .query_one("SELECT current_setting('port')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        port_of(&proxied, &port),
        "replica1",
        "the transaction runs on the replica"
    );
    let error = client
        .simple_query("SELECT count(*) FROM scratch")
        .await
        .expect_err("the replica refuses it, as it would a direct client");
    let error = error.as_db_error().expect("a server error");
    assert_eq!(error.code().code(), "0A000");
    assert_eq!(
        error.message(),
        "cannot access temporary or unlogged relations during recovery"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(proxied.proxy.state().stats().reruns.total(), 0);
}

#[tokio::test]
async fn a_query_string_that_already_answered_is_not_run_again() {
    let proxied = with_view_over_unlogged_table().await;
    let client = proxied.connect().await;
    // The first statement's answer reaches the client before the second
    // fails: a rerun would answer it twice. As on a direct connection, the
    // error ends the string.
    let error = client
        .simple_query("SELECT 1; SELECT count(*) FROM scratch")
        .await
        .expect_err("the replica refuses the second statement");
    assert_eq!(error.code().map(|code| code.code()), Some("0A000"));
    assert_eq!(proxied.proxy.state().stats().reruns.total(), 0);
    // The connection carries on.
    let answer = client.simple_query("SELECT 1").await.unwrap();
    assert_eq!(only_row(&answer), vec!["1".to_string()]);
}

#[tokio::test]
async fn a_stable_function_that_writes_runs_on_the_primary_once() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    // A STABLE function may not write itself, but may call one that does.
    client
        .batch_execute(
            "CREATE TABLE audit (id int); \
             CREATE FUNCTION bump() RETURNS int LANGUAGE sql VOLATILE \
               AS 'INSERT INTO audit VALUES (7) RETURNING id'; \
             CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql STABLE AS 'SELECT bump()'",
        )
        .await
        .unwrap();
    proxied.cluster.wait_for_replicas_to_catch_up().await;
    let stats = || proxied.proxy.state().stats();
    // The catalog does not know the function: the application says it is a
    // read, so it goes to the replica first.
    let sql = "SELECT /* pgrw:replica */ sneaky(), current_setting('port')";

    let row = only_row(&client.simple_query(sql).await.expect("it is answered"));
    assert_eq!(row[0], "7");
    assert_eq!(port_of(&proxied, &row[1]), "primary");
    assert_eq!(stats().reruns.read_only_transaction, 1);

    // Learned: the next one (and the extended protocol's) goes to the
    // primary first.
    let row = only_row(&client.simple_query(sql).await.unwrap());
    assert_eq!(port_of(&proxied, &row[1]), "primary");
    let row = client.query_one(sql, &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
    assert_eq!(stats().reruns.total(), 1, "no second refusal was hidden");

    let primary = proxied.cluster.connect_primary().await;
    let written: i64 = primary
        .query_one("SELECT count(*) FROM audit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, 3, "each call wrote once, on the primary");
}

#[tokio::test]
async fn a_read_cancelled_by_a_conflict_with_replay_is_answered_by_the_primary() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("CREATE TABLE ledger (id int); INSERT INTO ledger VALUES (1)")
        .await
        .unwrap();
    proxied.cluster.wait_for_replicas_to_catch_up().await;
    // The replica cancels a conflicting query at once instead of waiting.
    let replica = proxied.cluster.connect("replica1").await;
    for sql in [
        "ALTER SYSTEM SET max_standby_streaming_delay = 0",
        "SELECT pg_reload_conf()",
    ] {
        replica.batch_execute(sql).await.unwrap();
    }
    wait_until(Duration::from_secs(20), "the replica reloads", async || {
        replica
            .query_one("SHOW max_standby_streaming_delay", &[])
            .await
            .is_ok_and(|row| row.get::<_, String>(0) == "0")
    })
    .await;

    // A read that sleeps on the replica only, holding its lock on the table.
    let replica_port = proxied.cluster.port("replica1");
    let sql = format!(
        "SELECT count(*), current_setting('port') FROM ledger, \
         pg_sleep(CASE WHEN current_setting('port') = '{replica_port}' THEN 60 ELSE 0 END)"
    );
    let reader = tokio::spawn(async move { client.simple_query(&sql).await });
    wait_until(
        Duration::from_secs(20),
        "the read sleeps on the replica",
        async || {
            replica
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'",
                    &[],
                )
                .await
                .is_ok_and(|row| row.get::<_, i64>(0) == 1)
        },
    )
    .await;
    // An exclusive lock replayed on the replica conflicts with it.
    let primary = proxied.cluster.connect_primary().await;
    primary
        .batch_execute("BEGIN; LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE; COMMIT")
        .await
        .unwrap();

    let answer = tokio::time::timeout(Duration::from_secs(50), reader)
        .await
        .expect("the conflict cancels the read long before its sleep ends")
        .unwrap()
        .expect("the read is answered");
    let row = only_row(&answer);
    assert_eq!(row[0], "1");
    assert_eq!(port_of(&proxied, &row[1]), "primary");
    let stats = proxied.proxy.state().stats();
    assert_eq!(stats.reruns.recovery_conflict, 1);
    assert_eq!(stats.shapes_learned, 0, "a conflict is a matter of timing");
}

#[tokio::test]
async fn in_session_pooling_a_rerun_keeps_the_session_usable_on_both_nodes() {
    let proxied = with_view_over_unlogged_table_and("[pool]\nmode = \"session\"").await;
    let client = proxied.connect().await;
    let row = client
        .query_one(
            "SELECT count(*)::int AS n, current_setting('port')::int AS port FROM scratch",
            &[],
        )
        .await
        .expect("the read is answered");
    assert_eq!(row.get::<_, i32>("n"), 2);
    assert_eq!(proxied.node_at(row.get("port")), "primary");
    assert_eq!(proxied.proxy.state().stats().reruns.recovery_relation, 1);
    // The replica's backend, kept for the session, still serves its reads
    // (once monotonic reads let the session back onto the replica).
    wait_until(
        Duration::from_secs(20),
        "a read runs on the replica",
        async || {
            let row = client
                .query_one("SELECT current_setting('port')::int AS port", &[])
                .await
                .expect("the session carries on");
            proxied.node_at(row.get("port")) == "replica1"
        },
    )
    .await;
}

#[tokio::test]
async fn a_rerun_that_fails_on_the_primary_reports_the_primarys_error() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute(
            "CREATE TABLE positive (n int CHECK (n > 0)); \
             CREATE FUNCTION bump() RETURNS int LANGUAGE sql VOLATILE \
               AS 'INSERT INTO positive VALUES (-1) RETURNING n'; \
             CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql STABLE AS 'SELECT bump()'",
        )
        .await
        .unwrap();
    proxied.cluster.wait_for_replicas_to_catch_up().await;
    // The replica answers 25006; the primary, where it runs again, 23514.
    let error = client
        .simple_query("SELECT /* pgrw:replica */ sneaky()")
        .await
        .expect_err("the insert violates the check on the primary");
    assert_eq!(
        error.code().map(|code| code.code()),
        Some("23514"),
        "{error}"
    );
    assert_eq!(
        proxied.proxy.state().stats().reruns.read_only_transaction,
        1
    );
}
