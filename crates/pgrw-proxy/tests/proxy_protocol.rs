//! Protocol features through the proxy with tokio-postgres: pipelining, errors
//! that skip to Sync, statements closed and prepared again, COPY both ways,
//! and cancelling a running query; and with psql, large objects over the
//! fast-path function call interface.

#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::time::Duration;

use futures_util::{SinkExt, TryStreamExt};
use proxy_cluster::ProxiedCluster;

#[tokio::test]
async fn pipelined_queries_all_get_their_own_answers() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    let statement = client.prepare("SELECT $1::int * 2").await.unwrap();
    let queries = (0..20).map(|n| {
        let client = &client;
        let statement = &statement;
        async move {
            client
                .query_one(statement, &[&n])
                .await
                .map(|row| row.get::<_, i32>(0))
        }
    });
    let answers: Vec<i32> = futures_util::future::try_join_all(queries).await.unwrap();
    assert_eq!(answers, (0..20).map(|n| n * 2).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_failing_statement_does_not_break_the_next_one() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    let error = client
        .query("SELECT 1 / $1::int", &[&0i32])
        .await
        .expect_err("division by zero");
    assert_eq!(error.code().map(|code| code.code()), Some("22012"));
    let row = client.query_one("SELECT 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
}

#[tokio::test]
async fn a_statement_closed_by_the_client_can_be_prepared_again() {
    let proxied = ProxiedCluster::start(1, "[pool]\nsize = 1\n").await;
    let client = proxied.connect().await;
    for round in 0..5 {
        let statement = client.prepare("SELECT $1::int + 100").await.unwrap();
        let row = client.query_one(&statement, &[&round]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), round + 100);
        drop(statement); // tokio-postgres sends Close for it
    }
}

#[tokio::test]
async fn copy_from_stdin_and_to_stdout_pass_through() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client
        .batch_execute("CREATE TABLE t (id int, name text)")
        .await
        .unwrap();
    let sink = client
        .copy_in::<_, bytes::Bytes>("COPY t FROM STDIN")
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from_static(b"1\talice\n2\tbob\n"))
        .await
        .unwrap();
    let copied = sink.as_mut().finish().await.unwrap();
    assert_eq!(copied, 2);
    let row = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);

    let stream = client
        .copy_out("COPY (SELECT id, name FROM t ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), b"1\talice\n2\tbob\n");
}

/// Runs `sql` (which sleeps) and cancels it through the proxy until it
/// ends; the error the query got.
async fn cancelled(client: tokio_postgres::Client, sql: &'static str) -> tokio_postgres::Error {
    let cancel = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.batch_execute(sql).await });
    // Cancel until the query is gone: the first request may arrive before it runs.
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
            if sleeper.is_finished() {
                return sleeper.await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the query was cancelled well before it would end");
    outcome.expect_err("the query was cancelled")
}

#[tokio::test]
async fn a_cancel_request_stops_the_running_query() {
    let proxied = ProxiedCluster::start(1, "").await;
    let error = cancelled(proxied.connect().await, "SELECT pg_sleep(30)").await;
    assert_eq!(error.code().map(|code| code.code()), Some("57014"));
}

#[tokio::test]
async fn a_cancel_request_reaches_a_query_inside_a_transaction() {
    let proxied = ProxiedCluster::start(1, "").await;
    let client = proxied.connect().await;
    client.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let error = cancelled(client, "SELECT pg_sleep(30)").await;
    assert_eq!(error.code().map(|code| code.code()), Some("57014"));
}

#[tokio::test]
async fn psql_large_objects_go_through_the_fast_path_interface() {
    let proxied = ProxiedCluster::start(1, "").await;
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("in.bin");
    let exported = dir.path().join("out.bin");
    let bytes: Vec<u8> = (0..200_000u32).map(|n| (n * 7919 % 251) as u8).collect();
    std::fs::write(&original, &bytes).unwrap();
    // lo_import, lo_export and lo_unlink are libpq fast-path calls (F messages).
    let script = format!(
        "\\lo_import {}\n\\set oid :LASTOID\n\
         SELECT length(lo_get(:oid));\n\
         \\lo_export :oid {}\n\\lo_unlink :oid\n",
        original.display(),
        exported.display()
    );
    let mut psql = tokio::process::Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &proxied.dsn(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running psql");
    let mut stdin = psql.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, script.as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(60), psql.wait_with_output())
        .await
        .expect("psql finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.lines().any(|line| line == "200000"),
        "the imported object is read back whole: {stdout}"
    );
    assert_eq!(std::fs::read(&exported).unwrap(), bytes, "exported intact");
}
