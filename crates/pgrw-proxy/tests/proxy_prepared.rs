//! Prepared statements through the proxy answer as PostgreSQL answers them
//! directly: after DDL (through the proxy or straight on the primary) a
//! statement prepared again is planned afresh, a Parse of a name that exists
//! fails with 42P05, and a name whose Parse failed can be used again. Each
//! test runs the same exchange on the primary directly and through the proxy
//! and compares what came back.
//!
//! The proxy has one backend per node, so a statement prepared earlier is
//! still on the backend that serves the next one.

#[path = "support/node_connection.rs"]
#[allow(dead_code)]
mod node_connection;
#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use bytes::BytesMut;
use node_connection::{NodeConnection, first_column};
use pgrw_cluster::testing::TEST_PASSWORD;
use pgrw_proxy::protocol::Message;
use pgrw_proxy::protocol::backend::BackendMessage;
use pgrw_proxy::protocol::frontend::{self, Bind, Target};
use proxy_cluster::ProxiedCluster;

/// One backend per node: what a statement left on a backend is still there.
const ONE_BACKEND_PER_NODE: &str = "[pool]\nsize = 1\n";

/// What a client saw of one exchange, or of a statement's outcome.
type Transcript = Vec<String>;

/// A tokio-postgres client straight to the primary.
async fn direct(proxied: &ProxiedCluster) -> tokio_postgres::Client {
    proxied.cluster.connect_primary().await
}

/// How a query on a prepared statement ended: its rows' column count and
/// first row, or its SQLSTATE.
async fn outcome(client: &tokio_postgres::Client, statement: &tokio_postgres::Statement) -> String {
    match client.query(statement, &[]).await {
        Ok(rows) => {
            let first: Vec<Option<i32>> = rows
                .first()
                .map(|row| (0..row.len()).map(|index| row.get(index)).collect())
                .unwrap_or_default();
            format!("{} columns: {first:?}", statement.columns().len())
        }
        Err(error) => format!(
            "error {}",
            error
                .code()
                .map_or_else(|| error.to_string(), |code| code.code().to_string())
        ),
    }
}

/// Prepares `SELECT * FROM table`, runs it, adds a column with `ddl_client`,
/// then runs the first statement again and a second one prepared afresh.
async fn prepare_alter_prepare(
    client: &tokio_postgres::Client,
    ddl_client: &tokio_postgres::Client,
    table: &str,
) -> Transcript {
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (a int); INSERT INTO {table} VALUES (1)"
        ))
        .await
        .unwrap();
    let select = format!("SELECT * FROM {table}");
    let first = client.prepare(&select).await.unwrap();
    let mut transcript = vec![outcome(client, &first).await];
    ddl_client
        .batch_execute(&format!("ALTER TABLE {table} ADD COLUMN b int DEFAULT 2"))
        .await
        .unwrap();
    transcript.push(outcome(client, &first).await);
    let again = client.prepare(&select).await.unwrap();
    transcript.push(outcome(client, &again).await);
    transcript
}

/// What PostgreSQL answers: the old statement cannot change its result type,
/// a new one sees the new column.
fn expected_after_ddl() -> Transcript {
    vec![
        "1 columns: [Some(1)]".to_string(),
        "error 0A000".to_string(),
        "2 columns: [Some(1), Some(2)]".to_string(),
    ]
}

#[tokio::test]
async fn a_statement_prepared_again_after_ddl_through_the_proxy_sees_the_new_column() {
    let proxied = ProxiedCluster::start(0, ONE_BACKEND_PER_NODE).await;
    let primary = direct(&proxied).await;
    let on_primary = prepare_alter_prepare(&primary, &primary, "shape_direct").await;
    let client = proxied.connect().await;
    let through_proxy = prepare_alter_prepare(&client, &client, "shape_proxied").await;
    assert_eq!(on_primary, expected_after_ddl());
    assert_eq!(through_proxy, on_primary);
}

#[tokio::test]
async fn after_ddl_run_directly_on_the_primary_a_statement_prepared_again_sees_the_new_column() {
    let proxied = ProxiedCluster::start(0, ONE_BACKEND_PER_NODE).await;
    let primary = direct(&proxied).await;
    let other = direct(&proxied).await;
    let on_primary = prepare_alter_prepare(&primary, &other, "outside_direct").await;
    let client = proxied.connect().await;
    let through_proxy = prepare_alter_prepare(&client, &primary, "outside_proxied").await;
    assert_eq!(on_primary, expected_after_ddl());
    assert_eq!(through_proxy, on_primary);
}

/// A raw protocol connection, through the proxy or straight to the primary.
async fn raw(port: u16) -> NodeConnection {
    NodeConnection::logged_in(port, "postgres", TEST_PASSWORD).await
}

/// Both raw connections of a comparison: through the proxy, then direct.
async fn both(proxied: &ProxiedCluster) -> [NodeConnection; 2] {
    let primary_port = proxied.cluster.port("primary");
    [raw(proxied.port()).await, raw(primary_port).await]
}

/// Sends `messages` and describes every answer up to ReadyForQuery.
async fn exchange(connection: &mut NodeConnection, messages: &[u8]) -> Transcript {
    connection.send(messages).await;
    connection
        .receive_until_ready()
        .await
        .iter()
        .map(describe)
        .collect()
}

fn describe(message: &Message) -> String {
    match BackendMessage::decode(message.view()) {
        Ok(BackendMessage::ErrorResponse(fields)) => {
            format!("E {} {}", fields.code, fields.message)
        }
        Ok(BackendMessage::ReadyForQuery(status)) => format!("Z {}", char::from(status.byte())),
        Ok(BackendMessage::CommandComplete { tag }) => {
            format!("C {}", String::from_utf8_lossy(tag))
        }
        _ if message.tag() == b'D' => format!("D {:?}", first_column(message.body())),
        _ if message.tag() == b'T' => {
            let columns = message
                .body()
                .get(..2)
                .map(|count| i16::from_be_bytes([count[0], count[1]]));
            format!("T {columns:?} columns")
        }
        _ => char::from(message.tag()).to_string(),
    }
}

fn parse(out: &mut BytesMut, name: &str, sql: &str) {
    frontend::encode_parse(out, name.as_bytes(), sql.as_bytes(), &[]);
}

fn bind_execute(out: &mut BytesMut, name: &str) {
    let parameters = frontend::bind_parameters(&[], &[], &[]);
    frontend::encode_bind(
        out,
        &Bind {
            portal: b"",
            statement: name.as_bytes(),
            parameters: &parameters,
        },
    );
    frontend::encode_execute(out, b"", 0);
}

/// Runs each batch on both connections; the transcripts, which must agree.
async fn compare(proxied: &ProxiedCluster, batches: &[BytesMut]) -> Vec<Transcript> {
    compare_on_own_tables(proxied, |_| batches.to_vec()).await
}

/// Runs the batches `batches(table)` makes on both connections, each with its
/// own table name; the transcripts, which must agree.
async fn compare_on_own_tables(
    proxied: &ProxiedCluster,
    batches: impl Fn(&str) -> Vec<BytesMut>,
) -> Vec<Transcript> {
    let [mut proxy, mut primary] = both(proxied).await;
    let mut seen = Vec::new();
    for (through_proxy, on_primary) in batches("proxied").iter().zip(batches("direct").iter()) {
        let through_proxy = exchange(&mut proxy, through_proxy).await;
        let on_primary = exchange(&mut primary, on_primary).await;
        assert_eq!(
            through_proxy, on_primary,
            "through the proxy vs on the primary"
        );
        seen.push(on_primary);
    }
    seen
}

fn batch(build: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut out = BytesMut::new();
    build(&mut out);
    frontend::encode_sync(&mut out);
    out
}

#[tokio::test]
async fn a_parse_of_a_name_that_exists_fails_with_42p05_and_the_first_statement_stays() {
    let proxied = ProxiedCluster::start(1, ONE_BACKEND_PER_NODE).await;
    let seen = compare(
        &proxied,
        &[
            batch(|out| parse(out, "s1", "SELECT 1")),
            batch(|out| {
                parse(out, "s1", "SELECT 2");
                bind_execute(out, "s1");
            }),
            batch(|out| bind_execute(out, "s1")),
        ],
    )
    .await;
    assert_eq!(
        seen[1],
        ["E 42P05 prepared statement \"s1\" already exists", "Z I"]
    );
    assert_eq!(seen[2], ["2", "D Some(\"1\")", "C SELECT 1", "Z I"]);
}

#[tokio::test]
async fn the_unnamed_statement_is_replaced_by_a_new_parse() {
    let proxied = ProxiedCluster::start(1, ONE_BACKEND_PER_NODE).await;
    let seen = compare(
        &proxied,
        &[batch(|out| {
            parse(out, "", "SELECT 1");
            parse(out, "", "SELECT 2");
            bind_execute(out, "");
        })],
    )
    .await;
    assert_eq!(
        seen[0],
        ["1", "1", "2", "D Some(\"2\")", "C SELECT 1", "Z I"]
    );
}

#[tokio::test]
async fn a_duplicate_parse_fails_the_open_transaction_like_postgresql() {
    let proxied = ProxiedCluster::start(1, ONE_BACKEND_PER_NODE).await;
    let mut begin = BytesMut::new();
    frontend::encode_query(&mut begin, b"BEGIN");
    let mut after = BytesMut::new();
    frontend::encode_query(&mut after, b"SELECT 1");
    let seen = compare(
        &proxied,
        &[
            begin,
            batch(|out| parse(out, "s1", "SELECT 1")),
            batch(|out| parse(out, "s1", "SELECT 1")),
            after,
        ],
    )
    .await;
    assert_eq!(
        seen[2],
        ["E 42P05 prepared statement \"s1\" already exists", "Z E"]
    );
    assert_eq!(seen[3][0].split(' ').nth(1), Some("25P02"), "{:?}", seen[3]);
}

#[tokio::test]
async fn a_name_whose_parse_failed_or_was_skipped_can_be_parsed_again() {
    let proxied = ProxiedCluster::start(1, ONE_BACKEND_PER_NODE).await;
    let seen = compare(
        &proxied,
        &[
            batch(|out| parse(out, "broken", "SELEC 1")),
            batch(|out| parse(out, "broken", "SELECT 1")),
            batch(|out| {
                parse(out, "", "SELECT 1 / 0");
                bind_execute(out, "");
                parse(out, "skipped", "SELECT 2");
            }),
            batch(|out| {
                parse(out, "skipped", "SELECT 2");
                bind_execute(out, "skipped");
            }),
        ],
    )
    .await;
    assert_eq!(seen[1], ["1", "Z I"]);
    assert_eq!(seen[3], ["1", "2", "D Some(\"2\")", "C SELECT 1", "Z I"]);
}

#[tokio::test]
async fn a_statement_parsed_after_ddl_in_the_same_batch_sees_the_new_column() {
    let proxied = ProxiedCluster::start(0, ONE_BACKEND_PER_NODE).await;
    let seen = compare_on_own_tables(&proxied, |table| {
        let select = format!("SELECT * FROM pipelined_{table}");
        vec![
            batch(|out| {
                parse(out, "", &format!("CREATE TABLE pipelined_{table} (a int)"));
                bind_execute(out, "");
            }),
            batch(|out| {
                parse(out, "before", &select);
                frontend::encode_describe(out, Target::Statement, b"before");
            }),
            batch(|out| {
                parse(
                    out,
                    "",
                    &format!("ALTER TABLE pipelined_{table} ADD COLUMN b int"),
                );
                bind_execute(out, "");
                parse(out, "after", &select);
                frontend::encode_describe(out, Target::Statement, b"after");
                bind_execute(out, "after");
            }),
        ]
    })
    .await;
    assert_eq!(
        seen[2],
        [
            "1",
            "2",
            "C ALTER TABLE",
            "1",
            "t",
            "T Some(2) columns",
            "2",
            "C SELECT 0",
            "Z I"
        ]
    );
}

#[tokio::test]
async fn deallocate_of_a_protocol_level_statement_answers_as_postgresql_does() {
    // psycopg 3 evicts its prepared statements with `DEALLOCATE name`.
    let proxied = ProxiedCluster::start(1, "").await;
    let mut answers = Vec::new();
    for mut connection in both(&proxied).await {
        let mut tags = Vec::new();
        let mut exchange = async |out: BytesMut| {
            connection.send(&out).await;
            let messages = connection.receive_until_ready().await;
            messages
                .iter()
                .map(|message| char::from(message.tag()))
                .collect::<String>()
        };
        let mut out = BytesMut::new();
        frontend::encode_parse(&mut out, b"evicted", b"SELECT 41 + 1", &[]);
        frontend::encode_sync(&mut out);
        tags.push(exchange(out).await);
        for sql in ["DEALLOCATE evicted", "DEALLOCATE PREPARE \"evicted\""] {
            let mut out = BytesMut::new();
            frontend::encode_query(&mut out, sql.as_bytes());
            tags.push(exchange(out).await);
        }
        let mut out = BytesMut::new();
        frontend::encode_parse(&mut out, b"evicted", b"SELECT 41 + 1", &[]);
        frontend::encode_sync(&mut out);
        tags.push(exchange(out).await);
        answers.push(tags);
    }
    assert_eq!(answers[0], ["1Z", "CZ", "EZ", "1Z"], "through the proxy");
    assert_eq!(answers[0], answers[1], "as straight to the primary");
}

#[tokio::test]
async fn after_discard_all_a_name_can_be_prepared_again() {
    let proxied = ProxiedCluster::start(1, ONE_BACKEND_PER_NODE).await;
    let mut discard = BytesMut::new();
    frontend::encode_query(&mut discard, b"DISCARD ALL");
    let seen = compare(
        &proxied,
        &[
            batch(|out| parse(out, "s1", "SELECT 1")),
            discard,
            batch(|out| {
                parse(out, "s1", "SELECT 1");
                bind_execute(out, "s1");
            }),
        ],
    )
    .await;
    assert_eq!(seen[2], ["1", "2", "D Some(\"1\")", "C SELECT 1", "Z I"]);
}

#[tokio::test]
async fn after_deallocate_all_a_name_can_be_prepared_again() {
    let proxied = ProxiedCluster::start(1, ONE_BACKEND_PER_NODE).await;
    let mut deallocate = BytesMut::new();
    frontend::encode_query(&mut deallocate, b"DEALLOCATE ALL");
    let seen = compare(
        &proxied,
        &[
            batch(|out| parse(out, "s1", "SELECT 1")),
            deallocate,
            batch(|out| {
                parse(out, "s1", "SELECT 2");
                bind_execute(out, "s1");
            }),
        ],
    )
    .await;
    assert_eq!(seen[2], ["1", "2", "D Some(\"2\")", "C SELECT 1", "Z I"]);
}

/// psycopg with `prepare_threshold = 0` parses `DISCARD ALL` in a batch of
/// its own, then binds and runs it: the Parse alone drops nothing.
#[tokio::test]
async fn a_discard_all_parsed_alone_drops_the_statements_only_when_run() {
    let proxied = ProxiedCluster::start(1, ONE_BACKEND_PER_NODE).await;
    let seen = compare(
        &proxied,
        &[
            batch(|out| parse(out, "s1", "SELECT 1")),
            batch(|out| parse(out, "d", "DISCARD ALL")),
            batch(|out| bind_execute(out, "s1")),
            batch(|out| bind_execute(out, "d")),
            batch(|out| {
                parse(out, "s1", "SELECT 2");
                bind_execute(out, "s1");
            }),
        ],
    )
    .await;
    assert_eq!(seen[2], ["2", "D Some(\"1\")", "C SELECT 1", "Z I"]);
    assert_eq!(seen[3], ["2", "C DISCARD ALL", "Z I"]);
    assert_eq!(seen[4], ["1", "2", "D Some(\"2\")", "C SELECT 1", "Z I"]);
}

/// `pg_prepared_statements` lists the statements this client has, as on a
/// direct connection: not another client's that its backend shares (nor
/// one it deallocated, which the backend keeps for others). psycopg 3's
/// `test_auto_prepare` and `test_evict_lru_deallocate` count them so.
#[tokio::test]
async fn pg_prepared_statements_lists_only_the_clients_own_statements() {
    let proxied = ProxiedCluster::start(0, ONE_BACKEND_PER_NODE).await;
    let other = proxied.connect().await;
    let theirs = "SELECT 1 AS prepared_by_another_client";
    other.prepare(theirs).await.expect("Parse");
    drop(other);
    let client = proxied.connect().await;
    let kept = "SELECT 3 AS still_prepared";
    let statement = client.prepare(kept).await.expect("Parse");
    client.query(&statement, &[]).await.expect("run");
    let listed: Vec<String> = client
        .query(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'SELECT _ AS %'",
            &[],
        )
        .await
        .expect("the question")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(listed, [kept]);
}

/// The mode that runs a transaction's first reads on a replica, with one
/// backend per node.
const MODE_ON_ONE_BACKEND: &str = "[pool]\nsize = 1\n[policy]\ntransaction_reads = \"replica\"\n";

/// The client's statements `pg_prepared_statements` lists (those of the
/// `SELECT inet_server_port() AS …` shape), and the node that answered.
async fn listed(
    proxied: &ProxiedCluster,
    client: &impl tokio_postgres::GenericClient,
    extra_column: &str,
) -> (Vec<String>, String) {
    let rows = client
        .query(
            &format!(
                "SELECT statement, inet_server_port(){extra_column} FROM pg_prepared_statements \
                 WHERE statement LIKE 'SELECT inet_server_port() AS %' ORDER BY statement"
            ),
            &[],
        )
        .await
        .expect("the question");
    let port: i32 = rows.first().map_or(0, |row| row.get(1));
    let statements = rows.iter().map(|row| row.get(0)).collect();
    (statements, proxied.node_at(port))
}

/// The node that ran `statement` (a `SELECT inet_server_port() AS …`).
async fn ran_on(
    proxied: &ProxiedCluster,
    client: &impl tokio_postgres::GenericClient,
    statement: &tokio_postgres::Statement,
) -> String {
    let row = client.query_one(statement, &[]).await.expect("the read");
    proxied.node_at(row.get(0))
}

/// A client's statements live on the backends that ran them, on any node:
/// the backend that answers a question about `pg_prepared_statements` is
/// first made to hold them all. So the primary lists a statement made and
/// run on a replica, and so does a question that also calls a function only
/// the primary may run, in a transaction that read on a replica first (psycopg
/// 3's `test_params_types` asked so while DDL left the catalog in doubt).
/// A statement that no longer parses (its table dropped) is left out, and
/// the client's transaction does not fail for it.
#[tokio::test]
async fn pg_prepared_statements_lists_statements_made_on_other_nodes() {
    let proxied = ProxiedCluster::start(1, MODE_ON_ONE_BACKEND).await;
    let mut client = proxied.connect().await;
    client
        .batch_execute("CREATE SEQUENCE listed_seq; CREATE TABLE listed_gone (v int)")
        .await
        .expect("setup");
    proxied.cluster.wait_for_replicas_to_catch_up().await;
    let first = "SELECT inet_server_port() AS made_on_a_replica";
    let made = client.prepare(first).await.expect("Parse");
    assert_eq!(ran_on(&proxied, &client, &made).await, "replica1");
    assert_eq!(
        listed(&proxied, &client, "").await,
        (vec![first.to_string()], "primary".to_string()),
        "asked of the primary outside a transaction"
    );

    let second = "SELECT inet_server_port() AS made_in_the_transaction";
    let transaction = client.transaction().await.expect("BEGIN");
    let in_transaction = transaction.prepare(second).await.expect("Parse");
    assert_eq!(
        ran_on(&proxied, &transaction, &in_transaction).await,
        "replica1"
    );
    let (statements, node) = listed(&proxied, &transaction, ", nextval('listed_seq')").await;
    assert_eq!(node, "primary", "nextval opens the transaction there");
    assert_eq!(statements, [second, first], "both statements are listed");
    transaction.commit().await.expect("COMMIT");

    let gone = client
        .prepare("SELECT v FROM listed_gone")
        .await
        .expect("Parse");
    client.query(&gone, &[]).await.expect("the read");
    client
        .batch_execute("DROP TABLE listed_gone")
        .await
        .expect("DROP");
    let transaction = client.transaction().await.expect("BEGIN");
    transaction
        .execute("SELECT nextval('listed_seq')", &[])
        .await
        .expect("the transaction opens on the primary");
    let (statements, node) = listed(&proxied, &transaction, "").await;
    assert_eq!(node, "primary");
    assert_eq!(statements, [second, first]);
    let row = transaction
        .query_one("SELECT 1", &[])
        .await
        .expect("the transaction goes on");
    assert_eq!(row.get::<_, i32>(0), 1);
    transaction.commit().await.expect("COMMIT");
}
