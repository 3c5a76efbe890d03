//! SQL connections to a node, as the `postgres` superuser over loopback TCP.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::error::{ClusterError, Result};
use crate::layout::NodeLayout;

/// How long a connection attempt may take before the node counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A libpq key/value connection string for `port` as user `postgres`.
pub fn dsn(port: u16, password: &str) -> String {
    format!(
        "host=127.0.0.1 port={port} user=postgres password={} dbname=postgres",
        quote_conninfo_value(password)
    )
}

/// Quotes a conninfo value when it holds spaces, quotes or backslashes.
fn quote_conninfo_value(value: &str) -> String {
    let plain = !value.is_empty() && !value.contains([' ', '\'', '\\', '\t', '\n']);
    if plain {
        return value.to_string();
    }
    let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
    format!("'{escaped}'")
}

/// Connects to `node` and drives the connection on a background task.
pub async fn connect(node: &NodeLayout, password: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(node.port)
        .user("postgres")
        .password(password)
        .dbname("postgres")
        .application_name("pgrw-cluster")
        .connect_timeout(CONNECT_TIMEOUT)
        .connect(NoTls)
        .await
        .map_err(|source| sql_error(node, "connecting", source))?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped or the server goes away;
        // the client's next call reports the latter.
        let _ = connection.await;
    });
    Ok(client)
}

/// Wraps a driver error with the node, what was being done, and the node's log.
pub fn sql_error(node: &NodeLayout, action: &str, source: tokio_postgres::Error) -> ClusterError {
    ClusterError::Sql {
        node: node.name.clone(),
        port: node.port,
        action: action.to_string(),
        source,
        log: node.log_file.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_password_is_written_as_is() {
        assert_eq!(
            dsn(5432, "postgres"),
            "host=127.0.0.1 port=5432 user=postgres password=postgres dbname=postgres"
        );
    }

    #[test]
    fn a_password_with_spaces_and_quotes_is_quoted_and_escaped() {
        assert!(dsn(5432, r"it's a \secret").contains(r"password='it\'s a \\secret' "));
    }
}
