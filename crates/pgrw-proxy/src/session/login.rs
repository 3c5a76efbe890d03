//! After the client's password: the proxy's check that a node lets the user
//! into the database (and what the login learns there: the server
//! parameters, the role's default isolation), then ParameterStatus,
//! BackendKeyData and ReadyForQuery.

use pgrw_core::classification::DefaultIsolation;
use pgrw_core::route::NodeId;

use super::client::SessionEnd;
use super::{Session, catalog, settings};
use crate::backend::BackendError;
use crate::pool::CheckoutError;
use crate::protocol::backend::{
    NoticeFields, Severity, TransactionStatus, encode_backend_key_data, encode_error_response,
    encode_parameter_status, encode_ready_for_query,
};
use crate::protocol::sqlstate;

/// The `default_transaction_isolation` a new login of this session's role to
/// its database gets: the `ALTER ROLE/DATABASE … SET` value PostgreSQL would
/// apply (role in database, then role, then database, then every database),
/// else the server's (the backend's own, with no such setting in play).
const LOGIN_ISOLATION: &[u8] = b"SELECT coalesce((\
    SELECT pg_catalog.substr(c, pg_catalog.length('default_transaction_isolation=') + 1) \
    FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) c \
    WHERE c LIKE 'default\\_transaction\\_isolation=%' \
    AND s.setrole IN (0, (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = session_user)) \
    AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database \
        WHERE datname = pg_catalog.current_database())) \
    ORDER BY (s.setrole <> 0 AND s.setdatabase <> 0) DESC, s.setrole <> 0 DESC, \
        s.setdatabase <> 0 DESC LIMIT 1), \
    pg_catalog.current_setting('default_transaction_isolation'))";

impl Session {
    /// AuthenticationOk was written; now ParameterStatus, BackendKeyData and
    /// ReadyForQuery.
    pub(super) async fn announce(&mut self) -> Result<(), SessionEnd> {
        if !self.check_database().await? {
            return Err(SessionEnd::ClientGone);
        }
        self.catalog = catalog::view(&self.state, &self.user, &self.database);
        // The database check logs in to a node, and the first login anywhere
        // learns the server parameters: none known means no node was reached.
        let Some(parameters) = self.state.server_parameters() else {
            let fields = NoticeFields::new(
                Severity::Fatal,
                sqlstate::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                "pgrw could not log in to any node to learn its server parameters",
            )
            .with_hint("check that the nodes in pgrw.toml are running and accept this user");
            encode_error_response(&mut self.client.out, &fields);
            self.client.flush().await?;
            return Err(SessionEnd::ClientGone);
        };
        if !self.check_startup_settings(&parameters).await? {
            return Err(SessionEnd::ClientGone);
        }
        for (name, value) in &parameters {
            let value = self.startup.reported(name).unwrap_or(value);
            encode_parameter_status(&mut self.client.out, name.as_bytes(), value.as_bytes());
        }
        encode_backend_key_data(
            &mut self.client.out,
            self.cancel.process_id,
            &self.cancel.secret_key,
        );
        encode_ready_for_query(&mut self.client.out, TransactionStatus::Idle);
        self.client.flush().await?;
        Ok(())
    }

    /// Whether a node lets this client's user into its database: PostgreSQL
    /// refuses a login to a database that does not exist (3D000) or that the
    /// role may not connect to (42501) at once, and so does pgrw, with the
    /// node's error. Checked on a node (the primary first) the first time a
    /// (user, database) pair logs in; with no node reachable the login goes
    /// on, and the first statement reports it.
    async fn check_database(&mut self) -> Result<bool, SessionEnd> {
        if self.state.database_known(&self.user.name, &self.database) {
            return Ok(true);
        }
        for node in self.login_nodes() {
            let Some(pool) = self.state.pool(node, &self.user, &self.database) else {
                continue;
            };
            match pool.checkout().await {
                Ok(mut backend) => {
                    let parameters = backend.connection().parameters.clone();
                    // A default set by ALTER ROLE/DATABASE … SET: a standby refuses
                    // serializable transactions, so such sessions read on the primary.
                    // Read from the catalog, not the backend's own setting: a pooled
                    // backend logged in before an ALTER … SET keeps the old value.
                    let isolation =
                        settings::query::run(backend.connection(), LOGIN_ISOLATION).await;
                    let Ok(answer) = isolation else { continue };
                    let isolation = answer
                        .rows
                        .first()
                        .and_then(|row| row.first().cloned().flatten())
                        .map_or(DefaultIsolation::Other, |level| {
                            DefaultIsolation::of_setting(&level)
                        });
                    backend.release();
                    self.state.learn_server_parameters(&parameters);
                    self.state
                        .remember_database(&self.user.name, &self.database, isolation);
                    return Ok(true);
                }
                Err(CheckoutError::Backend(BackendError::Refused { code, message, .. })) => {
                    let fields = NoticeFields::new(Severity::Fatal, &code, &message);
                    encode_error_response(&mut self.client.out, &fields);
                    self.client.flush().await?;
                    return Ok(false);
                }
                Err(_) => continue,
            }
        }
        Ok(true)
    }

    /// The nodes a login-time check may ask, the primary first (it may be
    /// listed twice: a node that failed is simply tried again).
    pub(super) fn login_nodes(&self) -> Vec<NodeId> {
        let topology = self.state.topology();
        let mut nodes: Vec<_> = topology.writable_primary().ok().into_iter().collect();
        nodes.extend(topology.iter().map(|(id, _)| id));
        nodes
    }
}
