//! The client's statement names, kept as PostgreSQL keeps them, and the
//! backend statements kept within bounds.
//!
//! A named Parse registers its name as the batch is built (later messages of
//! the batch refer to it), *unsettled*: if the backend reports an error at or
//! before that Parse, PostgreSQL never created the statement (it failed, or
//! was skipped up to Sync), so the name is forgotten again; once the batch is
//! answered the names that remain are settled. A Parse of a name that exists
//! fails with `42P05` ([`duplicate_parse`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};

use super::PreparedStatement;
use super::backend_statements::{self, MAX_STATEMENTS_PER_BACKEND, names_to_retire};
use crate::backend::BackendError;
use crate::pool::PooledBackend;
use crate::protocol::Message;
use crate::protocol::backend::{TransactionStatus, tag};
use crate::protocol::frontend::{
    Parse, Target, encode_close, encode_parse, encode_query, encode_sync,
};
use crate::session::Session;
use crate::session::relay::{Exchange, Step};
use crate::session::settings::query;

impl Session {
    /// Watches the backend's answers for what affects prepared statements:
    /// DDL that completed and stale-plan errors move the statement generation
    /// on; an error undoes the Parses it failed or skipped. The relay calls it
    /// for every message, before the steps move on.
    pub(in crate::session) fn observe_backend_message(
        &mut self,
        message: &Message,
        exchange: &Exchange,
    ) {
        match message.tag() {
            tag::COMMAND_COMPLETE if backend_statements::changes_relations(message.body()) => {
                backend_statements::advance();
            }
            tag::ERROR_RESPONSE => {
                if backend_statements::reports_stale_plan(message.body()) {
                    backend_statements::advance();
                }
                self.forget_unanswered_parses(exchange.steps.len());
            }
            _ => {}
        }
    }

    /// An error arrived with `steps_left` steps outstanding (the failed one
    /// first): the statements whose Parse is among them do not exist.
    fn forget_unanswered_parses(&mut self, steps_left: usize) {
        self.statements.retain(|_, statement| {
            let unsettled = statement.unsettled.load(Ordering::Relaxed);
            unsettled == 0 || unsettled > steps_left
        });
    }

    /// Marks the statements a batch of `total_steps` steps parses (each with
    /// the index of its Parse step) as unsettled until it is answered.
    pub(super) fn mark_unsettled(
        &mut self,
        parsed: Vec<(Bytes, usize)>,
        total_steps: usize,
    ) -> Vec<Bytes> {
        parsed
            .into_iter()
            .map(|(name, step)| {
                if let Some(statement) = self.statements.get(&name) {
                    statement
                        .unsettled
                        .store(total_steps - step, Ordering::Relaxed);
                }
                name
            })
            .collect()
    }

    /// The batch was answered: its Parses that no error undid are settled.
    pub(super) fn settle_statements(&mut self, parsed: &[Bytes]) {
        for name in parsed {
            if let Some(statement) = self.statements.get(name) {
                statement.unsettled.store(0, Ordering::Relaxed);
            }
        }
    }

    /// The batch never got its answers (the backend failed): its Parses did
    /// not happen.
    pub(super) fn forget_statements(&mut self, parsed: &[Bytes]) {
        for name in parsed {
            let unsettled = self
                .statements
                .get(name)
                .is_some_and(|statement| statement.unsettled.load(Ordering::Relaxed) != 0);
            if unsettled {
                self.statements.remove(name);
            }
        }
    }
}

/// A Parse of a name the client already has: the backend raises PostgreSQL's
/// own `42P05` (`prepared statement "…" already exists`), which fails the
/// batch's transaction and skips the rest of the batch as PostgreSQL does.
/// The backend first gets a placeholder under the client's name (an empty
/// query, whose ParseComplete the client does not see), then the client's
/// Parse. It keeps the placeholder, so it is closed after this client rather
/// than given to another.
pub(super) fn duplicate_parse(
    backend: &mut PooledBackend,
    parse: Parse<'_>,
    out: &mut BytesMut,
    exchange: &mut Exchange,
) {
    encode_parse(out, parse.statement, b"", &[]);
    exchange.steps.push_back(Step::Parse {
        prepares: None,
        hidden: true,
    });
    encode_parse(out, parse.statement, parse.sql, &parse.param_types);
    exchange.steps.push_back(Step::Parse {
        prepares: None,
        hidden: false,
    });
    backend.connection().tainted = true;
}

impl Session {
    /// Makes `backend`, before a question about the session's own backend
    /// (`pg_prepared_statements`), hold this client's statements and no
    /// other: it closes those the client has not prepared (other clients':
    /// backends share them by SQL text; and those it closed or deallocated:
    /// backends keep them), and prepares those it has that the backend lacks
    /// (made on another node, or on another backend of this one). The view
    /// then lists this client's statements, as a direct connection's does
    /// (under pgrw's names). Not in a failed transaction, which refuses
    /// everything but its end.
    ///
    /// A Parse that fails now (its table dropped since) leaves that
    /// statement out, as the backend would have refused it at its next use
    /// anyway; inside a transaction it runs under a savepoint, rolled back
    /// to, so the client's transaction does not fail for it.
    pub(in crate::session) async fn show_own_statements(
        &self,
        backend: &mut PooledBackend,
    ) -> Result<(), BackendError> {
        let connection = backend.connection();
        if connection.status == TransactionStatus::Failed {
            return Ok(());
        }
        let own: HashSet<&str> = self
            .statements
            .values()
            .map(|statement| statement.backend_name.as_str())
            .collect();
        let others: Vec<String> = connection
            .prepared
            .iter()
            .filter(|name| !own.contains(name.as_str()))
            .cloned()
            .collect();
        // By backend name: clients' statements of the same SQL text share one.
        let missing: BTreeMap<&str, &PreparedStatement> = self
            .statements
            .values()
            .filter(|statement| {
                !statement.backend_name.is_empty()
                    && !connection.prepared.contains(&statement.backend_name)
            })
            .map(|statement| (statement.backend_name.as_str(), &**statement))
            .collect();
        close_statements(backend, &others).await?;
        if missing.is_empty() {
            return Ok(());
        }
        prepare_statements(backend, missing.values().copied()).await
    }
}

/// The savepoint [`prepare_statements`] runs under inside a transaction:
/// taken, released, and rolled back to (then released) when a Parse failed.
const SAVEPOINT: &[u8] = b"SAVEPOINT pgrw_own_statements";
const RELEASE: &[u8] = b"RELEASE SAVEPOINT pgrw_own_statements";
const UNDO: &[u8] =
    b"ROLLBACK TO SAVEPOINT pgrw_own_statements; RELEASE SAVEPOINT pgrw_own_statements";

/// Prepares `statements` on `backend`, each Parse ended by its own Sync (one
/// that fails does not skip the others), in one round trip; inside a
/// transaction, under a savepoint released at once, or rolled back to if a
/// Parse failed.
async fn prepare_statements(
    backend: &mut PooledBackend,
    statements: impl Iterator<Item = &PreparedStatement> + Clone,
) -> Result<(), BackendError> {
    let connection = backend.connection();
    let in_transaction = connection.status == TransactionStatus::InTransaction;
    let mut out = BytesMut::new();
    if in_transaction {
        encode_query(&mut out, SAVEPOINT);
    }
    for statement in statements.clone() {
        encode_parse(
            &mut out,
            statement.backend_name.as_bytes(),
            &statement.sql,
            &statement.param_types,
        );
        encode_sync(&mut out);
    }
    if in_transaction {
        encode_query(&mut out, RELEASE);
    }
    connection.send(&out).await?;
    let mut failed = false;
    if in_transaction {
        failed |= query::answer(connection).await?.error.is_some();
    }
    for statement in statements {
        let mut parsed = false;
        loop {
            let message = connection.receive().await?;
            match message.tag() {
                tag::PARSE_COMPLETE => parsed = true,
                tag::ERROR_RESPONSE => failed = true,
                tag::READY_FOR_QUERY => break,
                _ => {}
            }
        }
        if parsed {
            connection.prepared.insert(statement.backend_name.clone());
        }
    }
    if in_transaction {
        failed |= query::answer(connection).await?.error.is_some();
        if failed && let Some(error) = query::run(connection, UNDO).await?.error {
            return Err(BackendError::Protocol {
                node: connection.node_name().to_string(),
                message: format!("undoing pgrw's own savepoint failed: {}", error.message),
            });
        }
    }
    Ok(())
}

/// Closes proxy statements on an idle backend that holds more than
/// [`MAX_STATEMENTS_PER_BACKEND`] (older generations first; see
/// [`names_to_retire`]), in one round trip before its next batch. A client
/// statement it no longer has is prepared again when next used.
pub(super) async fn retire_statements(backend: &mut PooledBackend) -> Result<(), BackendError> {
    let connection = backend.connection();
    if connection.prepared.len() <= MAX_STATEMENTS_PER_BACKEND
        || connection.status != TransactionStatus::Idle
    {
        return Ok(());
    }
    let retiring = names_to_retire(
        &connection.prepared,
        backend_statements::current(),
        MAX_STATEMENTS_PER_BACKEND,
    );
    close_statements(backend, &retiring).await
}

/// Closes the backend statements `names` on `backend` (and forgets them
/// there), in one round trip ended by a Sync: inside a transaction, that
/// Sync does not end it.
async fn close_statements(
    backend: &mut PooledBackend,
    names: &[String],
) -> Result<(), BackendError> {
    if names.is_empty() {
        return Ok(());
    }
    let connection = backend.connection();
    let mut out = BytesMut::new();
    for name in names {
        encode_close(&mut out, Target::Statement, name.as_bytes());
        connection.prepared.remove(name);
    }
    encode_sync(&mut out);
    connection.send(&out).await?;
    while connection.receive().await?.tag() != tag::READY_FOR_QUERY {}
    Ok(())
}
