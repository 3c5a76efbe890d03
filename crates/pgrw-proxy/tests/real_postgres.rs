//! The protocol layer against a real PostgreSQL started by the cluster harness:
//! a SCRAM login, simple and extended queries through the frame splitter, a
//! refused password, and PostgreSQL's own stored md5 hash and SCRAM verifier.

#[path = "support/node_connection.rs"]
mod node_connection;

use bytes::BytesMut;
use node_connection::{NodeConnection, first_column};
use pgrw_cluster::testing::{TEST_PASSWORD, TestCluster};
use pgrw_proxy::auth::StoredPassword;
use pgrw_proxy::auth::md5;
use pgrw_proxy::auth::scram::ScramVerifier;
use pgrw_proxy::protocol::backend::{
    Authentication, BackendMessage, TransactionStatus, encode_authentication_md5_password,
};
use pgrw_proxy::protocol::frontend::{self, FrontendMessage, Target};
use pgrw_proxy::protocol::{FrameLimits, Message, sqlstate};

async fn logged_in_connection(cluster: &TestCluster) -> NodeConnection {
    let mut connection = NodeConnection::connect(cluster.port("primary")).await;
    connection
        .login_with_scram("postgres", TEST_PASSWORD)
        .await
        .expect("the cluster's login role logs in");
    connection
}

#[tokio::test]
async fn a_scram_login_ends_ready_for_query_idle_with_parameters_and_a_cancel_key() {
    let cluster = TestCluster::start(0).await;
    let mut connection = NodeConnection::connect(cluster.port("primary")).await;

    let logged_in = connection
        .login_with_scram("postgres", TEST_PASSWORD)
        .await
        .expect("the cluster's login role logs in");

    assert!(logged_in.authentication_ok);
    assert!(
        logged_in
            .parameters
            .iter()
            .any(|(name, _)| name == "server_version"),
        "{:?}",
        logged_in.parameters
    );
    assert!(logged_in.process_id.is_some(), "BackendKeyData arrived");
    assert_eq!(logged_in.status, TransactionStatus::Idle);
}

#[tokio::test]
async fn a_simple_query_yields_row_description_data_rows_command_complete_and_ready() {
    let cluster = TestCluster::start(0).await;
    let mut connection = logged_in_connection(&cluster).await;

    let mut out = BytesMut::new();
    frontend::encode_query(&mut out, b"SELECT 1 AS n UNION ALL SELECT 2");
    connection.send(&out).await;
    let messages = connection.receive_until_ready().await;

    let tags: Vec<u8> = messages.iter().map(Message::tag).collect();
    assert_eq!(tags, b"TDDCZ");
    assert_eq!(first_column(messages[1].body()).as_deref(), Some("1"));
    assert_eq!(first_column(messages[2].body()).as_deref(), Some("2"));
    assert_eq!(
        BackendMessage::decode(messages[3].view()),
        Ok(BackendMessage::CommandComplete { tag: b"SELECT 2" })
    );
    assert_eq!(
        BackendMessage::decode(messages[4].view()),
        Ok(BackendMessage::ReadyForQuery(TransactionStatus::Idle))
    );
}

#[tokio::test]
async fn an_extended_query_pipeline_is_answered_message_by_message() {
    let cluster = TestCluster::start(0).await;
    let mut connection = logged_in_connection(&cluster).await;

    let mut out = BytesMut::new();
    frontend::encode_parse(&mut out, b"add", b"SELECT $1::int + 1", &[23]);
    let parameters = frontend::bind_parameters(&[0], &[Some(b"41")], &[0]);
    let bind = frontend::Bind {
        portal: b"",
        statement: b"add",
        parameters: &parameters,
    };
    frontend::encode_bind(&mut out, &bind);
    frontend::encode_describe(&mut out, Target::Portal, b"");
    frontend::encode_execute(&mut out, b"", 0);
    frontend::encode_close(&mut out, Target::Statement, b"add");
    frontend::encode_sync(&mut out);
    connection.send(&out).await;
    let messages = connection.receive_until_ready().await;

    let tags: Vec<u8> = messages.iter().map(Message::tag).collect();
    assert_eq!(
        tags, b"12TDC3Z",
        "ParseComplete BindComplete RowDescription DataRow CommandComplete CloseComplete ReadyForQuery"
    );
    assert_eq!(first_column(messages[3].body()).as_deref(), Some("42"));
}

#[tokio::test]
async fn a_query_inside_a_transaction_reports_the_transaction_status() {
    let cluster = TestCluster::start(0).await;
    let mut connection = logged_in_connection(&cluster).await;

    let mut out = BytesMut::new();
    frontend::encode_query(&mut out, b"BEGIN");
    connection.send(&out).await;
    let messages = connection.receive_until_ready().await;

    assert_eq!(
        BackendMessage::decode(messages.last().unwrap().view()),
        Ok(BackendMessage::ReadyForQuery(
            TransactionStatus::InTransaction
        ))
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_sqlstate_28p01() {
    let cluster = TestCluster::start(0).await;
    let mut connection = NodeConnection::connect(cluster.port("primary")).await;

    let refusal = connection
        .login_with_scram("postgres", "not the password")
        .await
        .expect_err("a wrong password is refused");

    assert_eq!(refusal.code, sqlstate::INVALID_PASSWORD);
    assert_eq!(refusal.severity, "FATAL");
}

#[tokio::test]
async fn postgresqls_stored_scram_verifier_is_the_one_computed_here() {
    let cluster = TestCluster::start(0).await;
    let mut connection = logged_in_connection(&cluster).await;

    let stored = connection
        .query_first_column("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
        .await;
    let stored = ScramVerifier::parse(stored[0].as_deref().expect("a password is set")).unwrap();

    let computed =
        ScramVerifier::from_password(TEST_PASSWORD.as_bytes(), &stored.salt, stored.iterations);
    assert_eq!(computed, stored);
}

/// With `scram-sha-256` in pg_hba.conf, PostgreSQL refuses a role whose password
/// is stored as md5, so md5 cannot be tested against the server itself: the
/// client-side md5 exchange runs against this crate's own server side, with the
/// hash PostgreSQL stored.
#[tokio::test]
async fn an_md5_login_checks_against_the_hash_postgresql_stores() {
    let cluster = TestCluster::start(0).await;
    let mut connection = logged_in_connection(&cluster).await;
    connection
        .query_first_column("SET password_encryption = 'md5'; CREATE ROLE m LOGIN PASSWORD 'x'")
        .await;
    let stored = connection
        .query_first_column("SELECT rolpassword FROM pg_authid WHERE rolname = 'm'")
        .await;
    let stored = stored[0].clone().expect("a password is set");
    assert_eq!(
        stored,
        md5::password_hash(b"x", b"m"),
        "PostgreSQL's md5 hash"
    );

    let salt = [0x5a, 0x17, 0xc3, 0x01];
    let mut to_client = BytesMut::new();
    encode_authentication_md5_password(&mut to_client, salt);
    let request = Message::split_from(&mut to_client, &FrameLimits::default())
        .unwrap()
        .unwrap();
    let BackendMessage::Authentication(Authentication::Md5Password { salt: received }) =
        BackendMessage::decode(request.view()).unwrap()
    else {
        panic!("not an md5 request");
    };
    let mut to_server = BytesMut::new();
    frontend::encode_password(
        &mut to_server,
        md5::response(b"x", b"m", received).as_bytes(),
    );
    let answer = Message::split_from(&mut to_server, &FrameLimits::default())
        .unwrap()
        .unwrap();
    let FrontendMessage::AuthenticationResponse(response) =
        FrontendMessage::decode(answer.view()).unwrap()
    else {
        panic!("not a password message");
    };

    let stored = StoredPassword::parse(&stored).unwrap();
    assert!(stored.verify_md5(b"m", salt, response.password().unwrap()));
    assert!(!stored.verify_md5(b"m", salt, md5::response(b"y", b"m", salt).as_bytes()));
}

#[tokio::test]
async fn postgresql_refuses_an_md5_stored_role_under_scram_sha_256_rules() {
    let cluster = TestCluster::start(0).await;
    let mut connection = logged_in_connection(&cluster).await;
    connection
        .query_first_column("SET password_encryption = 'md5'; CREATE ROLE m LOGIN PASSWORD 'x'")
        .await;

    let mut as_m = NodeConnection::connect(cluster.port("primary")).await;
    let refusal = as_m
        .login_with_scram("m", "x")
        .await
        .expect_err("md5 hash under scram rules");

    assert_eq!(refusal.code, sqlstate::INVALID_PASSWORD);
}
