//! Talking to the admin console (the virtual database `pgrw`) and to the
//! metrics listener in tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use pgrw_cluster::testing::TEST_PASSWORD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::{Client, SimpleQueryMessage};

/// One row of a console answer, by column name (`None` is NULL).
pub type Row = HashMap<String, Option<String>>;

/// A console session as `postgres` through the proxy at `port`.
pub async fn console(port: u16) -> Result<Client, tokio_postgres::Error> {
    let dsn = format!("postgres://postgres:{TEST_PASSWORD}@127.0.0.1:{port}/pgrw");
    let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The rows `command` answers with.
pub async fn rows(client: &Client, command: &str) -> Vec<Row> {
    let messages = client
        .simple_query(command)
        .await
        .unwrap_or_else(|error| panic!("{command}: {error}"));
    messages
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(index, column)| {
                        (column.name().to_string(), row.get(index).map(String::from))
                    })
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The value of `column` in the row whose `key` column is `value`.
pub fn cell<'a>(rows: &'a [Row], key: &str, value: &str, column: &str) -> Option<&'a str> {
    rows.iter()
        .find(|row| row.get(key).and_then(|cell| cell.as_deref()) == Some(value))
        .and_then(|row| row.get(column))
        .and_then(|cell| cell.as_deref())
}

/// The SQLSTATE of a failed command.
pub async fn error_code(client: &Client, command: &str) -> String {
    let error = client
        .simple_query(command)
        .await
        .expect_err("the console refuses it");
    error
        .code()
        .map(|code| code.code().to_string())
        .unwrap_or_else(|| error.to_string())
}

/// `GET path` on the metrics listener: the status code and the body.
pub async fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("the metrics listener accepts");
    let request = format!("GET {path} HTTP/1.1\r\nHost: pgrw\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("a request");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("an answer, then the connection closes");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The samples of a Prometheus text answer: (name with labels, value).
pub fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').expect("a sample is `name value`");
            let value = match value {
                "+Inf" => f64::INFINITY,
                value => value.parse().expect("a numeric sample value"),
            };
            (name.to_string(), value)
        })
        .collect()
}
