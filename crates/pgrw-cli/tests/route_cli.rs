//! `pgrw route` as a user runs it: the built binary, and for `--dsn` a real server.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use pgrw_cluster::testing::TestCluster;

fn pgrw_route(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgrw"))
        .arg("route")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pgrw route");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for pgrw route")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "pgrw route failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_plain_select_routes_to_a_replica_with_its_reason() {
    let out = stdout(&pgrw_route(&["SELECT name FROM users WHERE id = 1"], ""));
    assert_eq!(out, "replica: read\n");
}

#[test]
fn nextval_routes_to_the_primary_naming_the_function() {
    let out = stdout(&pgrw_route(&["SELECT nextval('users_id_seq')"], ""));
    assert!(out.starts_with("primary: "), "{out}");
    assert!(out.contains("nextval"), "{out}");
}

#[test]
fn jsonl_answers_each_line_with_route_reason_and_class() {
    let input = concat!(
        r#"{"sql": "SELECT 1"}"#,
        "\n",
        r#"{"sql": "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"}"#,
        "\n",
        r#"{"sql": "BEGIN READ ONLY"}"#,
        "\n"
    );
    let out = stdout(&pgrw_route(&["--jsonl"], input));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["route"], "replica");
    assert_eq!(lines[0]["class"], "read");
    assert_eq!(lines[1]["route"], "primary");
    assert_eq!(lines[1]["reason"], "writable CTE");
    assert_eq!(lines[2]["route"], "replica");
    assert_eq!(lines[2]["class"], "begin read only");
}

#[test]
fn jsonl_rejects_a_line_that_is_not_an_sql_object_naming_the_line() {
    let output = pgrw_route(&["--jsonl"], "{\"sql\": \"SELECT 1\"}\nnot json\n");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("line 2"), "{err}");
}

#[tokio::test]
async fn dsn_loads_user_function_volatility_from_pg_proc() {
    let cluster = TestCluster::start(0).await;
    let client = cluster.connect_primary().await;
    client
        .batch_execute(
            "CREATE FUNCTION price_of(x int) RETURNS int LANGUAGE sql STABLE AS 'SELECT x * 2';
             CREATE FUNCTION bump(x int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT x + 1';",
        )
        .await
        .expect("create functions");
    let dsn = cluster.primary_dsn();
    let input = "{\"sql\": \"SELECT price_of(3)\"}\n{\"sql\": \"SELECT bump(3)\"}\n";

    let without = stdout(&pgrw_route(&["--jsonl"], input));
    let with = stdout(&pgrw_route(&["--jsonl", "--dsn", &dsn], input));

    let routes = |out: &str| -> Vec<String> {
        out.lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).expect("JSON")["route"].to_string()
            })
            .collect()
    };
    assert_eq!(
        routes(&without),
        ["\"primary\"", "\"primary\""],
        "unknown functions are volatile"
    );
    assert_eq!(
        routes(&with),
        ["\"replica\"", "\"primary\""],
        "stable from pg_proc reads, volatile writes"
    );
}
