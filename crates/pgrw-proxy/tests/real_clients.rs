//! The server side of authentication against real clients: tokio-postgres and
//! psql (libpq) log in to a one-connection server made of this crate's
//! framing, encoders and SCRAM/md5 checks — and fail with 28P01 on a wrong password.

#[path = "support/login_server.rs"]
mod login_server;

use std::process::Stdio;

use login_server::{Method, Verdict, listen, serve_one};
use pgrw_cluster::PgBinaries;
use pgrw_proxy::auth::StoredPassword;
use pgrw_proxy::auth::scram::ScramVerifier;
use pgrw_proxy::protocol::sqlstate;

fn config(port: u16, password: &str) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("alice")
        .dbname("shop")
        .password(password);
    config
}

/// Logs in with tokio-postgres, runs one statement and disconnects; the error
/// code of a refused login.
async fn tokio_postgres_session(port: u16, password: &str) -> Result<(), String> {
    let (client, connection) = config(port, password)
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|error| {
            error
                .code()
                .map(|code| code.code().to_string())
                .unwrap_or(error.to_string())
        })?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute("SET application_name = 'x'")
        .await
        .expect("the statement runs");
    drop(client);
    driver.await.unwrap().expect("a clean disconnect");
    Ok(())
}

#[tokio::test]
async fn tokio_postgres_logs_in_with_scram_against_a_plaintext_password() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(serve_one(
        listener,
        Method::Scram,
        StoredPassword::Plaintext(b"s3cret".to_vec()),
    ));

    tokio_postgres_session(port, "s3cret")
        .await
        .expect("logged in");

    assert_eq!(
        server.await.unwrap(),
        Verdict::LoggedIn {
            user: "alice".to_string(),
            queries: vec!["SET application_name = 'x'".to_string()],
        }
    );
}

#[tokio::test]
async fn tokio_postgres_logs_in_with_scram_against_a_stored_verifier() {
    let verifier = ScramVerifier::from_password(b"s3cret", b"another salt", 4096);
    let (listener, port) = listen().await;
    let server = tokio::spawn(serve_one(
        listener,
        Method::Scram,
        StoredPassword::Scram(verifier),
    ));

    tokio_postgres_session(port, "s3cret")
        .await
        .expect("logged in");

    assert!(matches!(server.await.unwrap(), Verdict::LoggedIn { .. }));
}

#[tokio::test]
async fn tokio_postgres_with_a_wrong_password_gets_28p01_from_the_scram_server() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(serve_one(
        listener,
        Method::Scram,
        StoredPassword::Plaintext(b"s3cret".to_vec()),
    ));

    let refusal = tokio_postgres_session(port, "guess").await;

    assert_eq!(refusal, Err(sqlstate::INVALID_PASSWORD.to_string()));
    assert_eq!(server.await.unwrap(), Verdict::Refused);
}

#[tokio::test]
async fn tokio_postgres_logs_in_with_md5_against_a_stored_md5_hash() {
    let hash = pgrw_proxy::auth::md5::password_hash(b"s3cret", b"alice");
    let (listener, port) = listen().await;
    let server = tokio::spawn(serve_one(
        listener,
        Method::Md5,
        StoredPassword::parse(&hash).unwrap(),
    ));

    tokio_postgres_session(port, "s3cret")
        .await
        .expect("logged in");

    assert!(matches!(server.await.unwrap(), Verdict::LoggedIn { .. }));
}

#[tokio::test]
async fn tokio_postgres_with_a_wrong_password_gets_28p01_from_the_md5_server() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(serve_one(
        listener,
        Method::Md5,
        StoredPassword::Plaintext(b"s3cret".to_vec()),
    ));

    let refusal = tokio_postgres_session(port, "guess").await;

    assert_eq!(refusal, Err(sqlstate::INVALID_PASSWORD.to_string()));
    assert_eq!(server.await.unwrap(), Verdict::Refused);
}

/// Runs `psql -c SQL` against the server; its exit status and stderr.
async fn psql(port: u16, password: &str, sql: &str) -> (bool, String) {
    let binaries = PgBinaries::locate(None).expect("PostgreSQL's programs are installed");
    let output = tokio::process::Command::new(binaries.program("psql"))
        .arg(format!(
            "host=127.0.0.1 port={port} user=alice dbname=shop sslmode=prefer"
        ))
        .args(["-X", "-c", sql])
        .env("PGPASSWORD", password)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running psql");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn psql_logs_in_with_scram() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(serve_one(
        listener,
        Method::Scram,
        StoredPassword::Plaintext(b"s3cret".to_vec()),
    ));

    let (success, stderr) = psql(port, "s3cret", "SET search_path = public").await;

    assert!(success, "psql failed: {stderr}");
    assert_eq!(
        server.await.unwrap(),
        Verdict::LoggedIn {
            user: "alice".to_string(),
            queries: vec!["SET search_path = public".to_string()],
        }
    );
}

#[tokio::test]
async fn psql_with_a_wrong_password_reports_the_servers_message() {
    let (listener, port) = listen().await;
    let server = tokio::spawn(serve_one(
        listener,
        Method::Scram,
        StoredPassword::Plaintext(b"s3cret".to_vec()),
    ));

    let (success, stderr) = psql(port, "guess", "SET search_path = public").await;

    assert!(!success);
    assert!(
        stderr.contains("password authentication failed for user \"alice\""),
        "{stderr}"
    );
    assert_eq!(server.await.unwrap(), Verdict::Refused);
}
