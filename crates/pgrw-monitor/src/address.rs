//! Where a node is and how to log in to it: [`NodeAddress`], read from a
//! libpq connection string (`postgres://…` URL or `key=value` form).

use std::fmt;
use std::str::FromStr;

use tokio_postgres::config::{Host, SslMode as DsnSslMode};

use crate::tls::{NodeTls, SslMode};

/// PostgreSQL's default port, used when a connection string names none.
pub const DEFAULT_PORT: u16 = 5432;
/// The host used when a connection string names none.
pub const DEFAULT_HOST: &str = "localhost";

/// One node pgrw routes to: its name, where it listens, and the login the
/// monitor (and drivers) use on it.
///
/// `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeAddress {
    /// The name users see in routes and logs (`primary`, `replica1`).
    pub name: String,
    /// A host name, an IP address, or a Unix socket directory (starting with `/`).
    pub host: String,
    /// The TCP port (also names the Unix socket file).
    pub port: u16,
    /// The role to log in as.
    pub user: String,
    /// Its password; empty when the server does not ask for one.
    pub password: String,
    /// The database to connect to.
    pub database: String,
    /// Relative share of reads under weighted balancing (default 1).
    pub weight: u32,
    /// TLS to the node (`sslmode`, `sslrootcert`; default `prefer`).
    pub tls: NodeTls,
}

/// Why a connection string cannot address one node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    /// The text is neither a `postgres://` URL nor `key=value` pairs libpq knows.
    #[error(
        "node {node:?}: invalid connection string: {reason}; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE or host=… port=… user=… password=… dbname=…"
    )]
    Invalid {
        /// The node it was for.
        node: String,
        /// What the parser said.
        reason: String,
    },
    /// It names no user (the monitor does not guess one from the environment).
    #[error(
        "node {node:?}: the connection string names no user; add user=NAME (or postgres://NAME@…)"
    )]
    MissingUser {
        /// The node it was for.
        node: String,
    },
    /// It names several hosts or ports: one node has one address.
    #[error(
        "node {node:?}: the connection string names {hosts} hosts and {ports} ports; give each node its own connection string with one host"
    )]
    SeveralHosts {
        /// The node it was for.
        node: String,
        /// How many hosts it named.
        hosts: usize,
        /// How many ports it named.
        ports: usize,
    },
    /// The password is not UTF-8 (a URL with percent-encoded bytes).
    #[error("node {node:?}: the password in the connection string is not UTF-8")]
    PasswordNotUtf8 {
        /// The node it was for.
        node: String,
    },
}

impl NodeAddress {
    /// Reads the node called `name` from a libpq connection string, either a
    /// URL (`postgres://postgres:secret@127.0.0.1:5433/app`) or `key=value`
    /// pairs (`host=127.0.0.1 port=5433 user=postgres dbname=app`).
    ///
    /// Defaults as libpq's where they do not depend on the environment: host
    /// `localhost`, port 5432, no password, the database named like the user.
    /// The user must be given. The weight is 1.
    ///
    /// ```
    /// use pgrw_monitor::NodeAddress;
    /// let node = NodeAddress::from_dsn("replica1", "postgres://app:pw@10.0.0.2:5433/shop").unwrap();
    /// assert_eq!((node.host.as_str(), node.port, node.database.as_str()), ("10.0.0.2", 5433, "shop"));
    /// ```
    pub fn from_dsn(name: &str, dsn: &str) -> Result<NodeAddress, DsnError> {
        let config = tokio_postgres::Config::from_str(dsn).map_err(|error| DsnError::Invalid {
            node: name.to_string(),
            reason: error.to_string(),
        })?;
        let hosts = config.get_hosts();
        let ports = config.get_ports();
        if hosts.len() > 1 || ports.len() > 1 {
            return Err(DsnError::SeveralHosts {
                node: name.to_string(),
                hosts: hosts.len(),
                ports: ports.len(),
            });
        }
        let host = match hosts.first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(Host::Unix(directory)) => directory.to_string_lossy().into_owned(),
            None => DEFAULT_HOST.to_string(),
        };
        let user = config
            .get_user()
            .ok_or_else(|| DsnError::MissingUser {
                node: name.to_string(),
            })?
            .to_string();
        let password = match config.get_password() {
            None => String::new(),
            Some(bytes) => {
                String::from_utf8(bytes.to_vec()).map_err(|_| DsnError::PasswordNotUtf8 {
                    node: name.to_string(),
                })?
            }
        };
        let database = config.get_dbname().unwrap_or(&user).to_string();
        // tokio-postgres reads disable, prefer and require; verify-ca and
        // verify-full are the proxy's `pgrw.toml` keys only.
        let mode = match config.get_ssl_mode() {
            DsnSslMode::Disable => SslMode::Disable,
            DsnSslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        Ok(NodeAddress {
            name: name.to_string(),
            host,
            port: ports.first().copied().unwrap_or(DEFAULT_PORT),
            user,
            password,
            database,
            weight: 1,
            tls: NodeTls {
                mode,
                root_cert: None,
            },
        })
    }

    /// The tokio-postgres configuration the monitor connects with.
    pub(crate) fn connect_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.database)
            .application_name("pgrw-monitor");
        if !self.password.is_empty() {
            config.password(&self.password);
        }
        config.ssl_mode(match self.tls.mode {
            SslMode::Disable => DsnSslMode::Disable,
            SslMode::Prefer => DsnSslMode::Prefer,
            // The rustls configuration checks the certificate.
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DsnSslMode::Require,
        });
        config
    }
}

impl fmt::Debug for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeAddress")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"…")
            .field("database", &self.database)
            .field("weight", &self.weight)
            .field("tls", &self.tls)
            .finish()
    }
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}@{}:{}/{})",
            self.name, self.user, self.host, self.port, self.database
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(dsn: &str) -> NodeAddress {
        NodeAddress::from_dsn("node", dsn).unwrap_or_else(|error| panic!("{dsn}: {error}"))
    }

    #[test]
    fn reads_every_part_of_a_url() {
        let node = address("postgres://app:s3cret@10.0.0.2:5433/shop");
        assert_eq!(
            node,
            NodeAddress {
                name: "node".to_string(),
                host: "10.0.0.2".to_string(),
                port: 5433,
                user: "app".to_string(),
                password: "s3cret".to_string(),
                database: "shop".to_string(),
                weight: 1,
                tls: NodeTls::default(),
            }
        );
    }

    #[test]
    fn reads_the_key_value_form_the_cluster_tool_prints() {
        let node =
            address("host=127.0.0.1 port=20001 user=postgres password=pgrw-test dbname=postgres");
        assert_eq!(
            (node.host.as_str(), node.port, node.user.as_str()),
            ("127.0.0.1", 20001, "postgres")
        );
        assert_eq!(
            (node.password.as_str(), node.database.as_str()),
            ("pgrw-test", "postgres")
        );
    }

    #[test]
    fn decodes_percent_encoded_url_parts_and_quoted_values() {
        assert_eq!(address("postgresql://u:p%40ss%2Fw@h/d").password, "p@ss/w");
        assert_eq!(
            address(r"host=h user=u password='it\'s a pw'").password,
            "it's a pw"
        );
    }

    #[test]
    fn fills_in_libpqs_defaults_for_host_port_password_and_database() {
        let node = address("user=app");
        assert_eq!(node.host, DEFAULT_HOST);
        assert_eq!(node.port, DEFAULT_PORT);
        assert_eq!(node.password, "");
        assert_eq!(node.database, "app");
    }

    #[test]
    fn keeps_a_unix_socket_directory_as_the_host() {
        assert_eq!(
            address("host=/var/run/postgresql user=u").host,
            "/var/run/postgresql"
        );
    }

    #[test]
    fn reads_sslmode_and_defaults_to_prefer_as_libpq() {
        assert_eq!(address("user=u").tls.mode, SslMode::Prefer);
        assert_eq!(address("user=u sslmode=disable").tls.mode, SslMode::Disable);
        assert_eq!(
            address("postgres://u@h/d?sslmode=require").tls.mode,
            SslMode::Require
        );
    }

    #[test]
    fn a_missing_user_is_an_error_saying_how_to_add_one() {
        let error =
            NodeAddress::from_dsn("replica1", "postgres://db.example:5432/app").unwrap_err();
        assert_eq!(
            error,
            DsnError::MissingUser {
                node: "replica1".to_string()
            }
        );
        assert!(error.to_string().contains("user=NAME"), "{error}");
    }

    #[test]
    fn several_hosts_are_refused_for_one_node() {
        let error = NodeAddress::from_dsn("node", "postgres://u@a:1,b:2/d").unwrap_err();
        assert!(
            matches!(
                error,
                DsnError::SeveralHosts {
                    hosts: 2,
                    ports: 2,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn malformed_text_is_an_error_naming_the_node_and_the_forms() {
        let error = NodeAddress::from_dsn("primary", "host=h bogus_key=1").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"primary\""), "{message}");
        assert!(message.contains("postgres://USER"), "{message}");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let printed = format!("{:?}", address("postgres://u:topsecret@h/d"));
        assert!(!printed.contains("topsecret"), "{printed}");
    }
}
