//! Session settings under pooling: a `SET` (or `RESET`, `set_config(…,
//! false)`, `DISCARD ALL`) that completed outside a transaction is recorded,
//! and replayed on every other backend before it runs this client's next
//! statement. A backend that ran any of them goes back to its pool only after
//! `RESET SESSION AUTHORIZATION; RESET ALL` (`RESET ALL` alone keeps a `SET
//! ROLE`), so no other client inherits them.
//!
//! The settings of the StartupMessage are the first recorded setting
//! ([`startup`]), and a backend's baseline rather than a SET: they stay on it
//! in the pool, so that the next client with the same ones pays no round
//! trip (see `BackendConnection::baseline`); SETs inside a transaction are
//! recorded when it commits ([`transaction`]).

pub(crate) mod query;
mod reset;
pub(crate) mod startup;
pub(crate) mod transaction;

use bytes::{Bytes, BytesMut};
use pgrw_core::classification::{Effect, SessionEffects};
use pgrw_core::sql::classify::{classify, statements};
use pgrw_core::sql::lexer::StringEscapes;
use pgrw_core::{FunctionCatalog, StatementClass};

use crate::backend::BackendError;
use crate::pool::PooledBackend;
use crate::protocol::frontend::encode_query;
use crate::session::Session;
use crate::session::client::SessionEnd;

/// The effects that change settings a later statement depends on.
const SETTING_EFFECTS: &[Effect] = &[
    Effect::SET,
    Effect::RESET,
    Effect::RESET_ALL,
    Effect::SET_CONFIG,
    Effect::DISCARD_ALL,
];

/// Whether a statement with `effects` changes session settings.
pub(in crate::session) fn changes_settings(effects: &SessionEffects) -> bool {
    SETTING_EFFECTS
        .iter()
        .any(|effect| effects.contains(*effect))
}

/// What to replay for `sql`: its statements that change settings, one by one
/// (a `DISCARD ALL` as `RESET ALL`, whose other effect — dropping prepared
/// statements — must not be replayed on backends the proxy tracks statements
/// on), with its transaction control statements, which tell whether they
/// last (see [`transaction`]). Writes in the same string are not replayed.
pub(in crate::session) fn replayable(sql: &[u8], catalog: &FunctionCatalog) -> Vec<Bytes> {
    statements(sql, catalog, StringEscapes::Standard)
        .filter(|statement| {
            changes_settings(&statement.classification.effects)
                || controls_transaction(statement.classification.class)
        })
        .map(|statement| {
            if statement
                .classification
                .effects
                .contains(Effect::DISCARD_ALL)
            {
                Bytes::from_static(b"RESET ALL")
            } else {
                Bytes::copy_from_slice(&sql[statement.start..statement.end])
            }
        })
        .collect()
}

/// Whether `class` begins or ends a transaction, or a savepoint.
pub(super) fn controls_transaction(class: StatementClass) -> bool {
    matches!(
        class,
        StatementClass::Begin(_)
            | StatementClass::Commit
            | StatementClass::Rollback
            | StatementClass::Savepoint
    )
}

/// Run on a replica before a replayed settings statement that takes a
/// snapshot: see [`Session::replay_settings`].
const NOT_SERIALIZABLE: &[u8] = b"SET default_transaction_isolation = 'read committed'";

impl Session {
    /// Records settings statements that just completed on `backend`, which
    /// therefore has every recorded setting.
    pub(in crate::session) fn record_settings(
        &mut self,
        backend: &mut PooledBackend,
        statements: Vec<Bytes>,
    ) {
        if statements.is_empty() {
            return;
        }
        self.settings.extend(statements);
        let connection = backend.connection();
        connection.settings_applied = self.settings.len();
        connection.has_settings = true;
    }

    /// Runs the recorded settings `backend` lacks. Their results are not the
    /// client's to see; an error in one (say, a setting since dropped) does
    /// not stop the others, as it did not on the original backend.
    ///
    /// The startup settings (the first recorded setting, when the client sent
    /// any) are the backend's baseline: applied only when the baseline it
    /// carries differs, after a `RESET ALL` of the old one.
    pub(in crate::session) async fn replay_settings(
        &mut self,
        backend: &mut PooledBackend,
    ) -> Result<(), BackendError> {
        let applied = backend.connection().settings_applied;
        let mut out = BytesMut::new();
        let mut sent = 0;
        if applied == 0 {
            let connection = backend.connection();
            let wanted = if self.startup.is_empty() {
                None
            } else {
                self.startup.statement_for_backend(&connection.parameters)
            };
            if connection.baseline != wanted {
                if connection.baseline.is_some() {
                    encode_query(&mut out, b"RESET ALL");
                    sent += 1;
                }
                if let Some(statement) = &wanted {
                    encode_query(&mut out, statement);
                    sent += 1;
                }
                connection.baseline = wanted;
            }
        }
        let startup_count = usize::from(!self.startup.is_empty());
        let own = &self.settings[applied.max(startup_count).min(self.settings.len())..];
        // A replica refuses a statement that takes a snapshot (`SELECT
        // set_config(…)`) while the default isolation is serializable, which an
        // earlier one may have made it on the way to the session's own (never
        // serializable there: such a session reads on the primary).
        let on_replica = self.state.topology().writable_primary() != Ok(backend.node());
        for statement in own {
            if on_replica
                && classify(statement, self.catalog.get()).class != StatementClass::Session
            {
                encode_query(&mut out, NOT_SERIALIZABLE);
                sent += 1;
            }
            encode_query(&mut out, statement);
        }
        sent += own.len();
        let connection = backend.connection();
        if !own.is_empty() {
            connection.has_settings = true;
        }
        connection.settings_applied = self.settings.len();
        if sent == 0 {
            return Ok(());
        }
        connection.send(&out).await?;
        let mut ready_left = sent;
        while ready_left > 0 {
            if connection.receive().await?.tag() == b'Z' {
                ready_left -= 1;
            }
        }
        Ok(())
    }

    /// Gives `backend` back to its pool, first undoing this client's settings
    /// (see the module docs) (after the client has its answer, so it waits for
    /// nothing). A backend with other session state is closed instead.
    pub(in crate::session) async fn give_back(
        &mut self,
        mut backend: PooledBackend,
    ) -> Result<(), SessionEnd> {
        if backend.connection().has_settings && !backend.connection().tainted {
            self.client.flush().await?;
        }
        undo_settings_and_release(backend).await;
        Ok(())
    }
}

/// Runs `RESET ALL` on a backend that ran settings, then gives it back to its
/// pool; a backend whose reset fails, or that holds other session state, is
/// closed. Also for a client that has left (its backends are still clean).
pub(in crate::session) async fn undo_settings_and_release(mut backend: PooledBackend) {
    let connection = backend.connection();
    if connection.has_settings && !connection.tainted {
        let mut out = BytesMut::new();
        encode_query(&mut out, b"RESET SESSION AUTHORIZATION; RESET ALL");
        if connection.send(&out).await.is_err() {
            return;
        }
        let mut failed = false;
        loop {
            match connection.receive().await {
                Ok(message) if message.tag() == b'Z' => break,
                Ok(message) if message.tag() == b'E' => failed = true,
                Ok(_) => {}
                Err(_) => return,
            }
        }
        if failed {
            return;
        }
        connection.has_settings = false;
        connection.baseline = None;
    }
    backend.release();
}
