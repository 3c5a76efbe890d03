//! A prepared statement's result shape across DDL.
//!
//! PostgreSQL answers a prepared statement whose result columns changed since
//! it was prepared (`ALTER TABLE … ADD COLUMN` under `SELECT *`) with `0A000`
//! "cached plan must not change result type"; drivers that cache statements
//! (asyncpg, pgjdbc) then prepare it again. Through the proxy a client's
//! statement is prepared on demand on whichever backend runs it: one prepared
//! after the DDL would silently answer with the new columns, which the client
//! decodes with the old description.
//!
//! So the proxy keeps the description a client was given for each statement
//! it described, and before a batch prepares a statement of an older
//! generation (see [`super::backend_statements`]) on a backend that lacks it,
//! it describes the statement there first (Parse, Describe, Close, Flush: one
//! round trip, only after DDL). A different description is answered as
//! PostgreSQL answers it.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};

use super::super::Session;
use super::super::client::SessionEnd;
use super::super::in_flight::bounded;
use super::backend_statements;
use super::{BatchEnd, PreparedStatement};
use crate::backend::BackendError;
use crate::config::PoolMode;
use crate::pool::PooledBackend;
use crate::protocol::Message;
use crate::protocol::backend::{
    BackendMessage, NoticeFields, Severity, TransactionStatus, encode_error_response, tag,
};
use crate::protocol::frontend::FrontendMessage;
use crate::protocol::frontend::{
    Target, encode_close, encode_describe, encode_flush, encode_parse, encode_sync,
};
use crate::protocol::sqlstate;

/// The RowDescription (or NoData) a client was given for a statement.
#[derive(Debug, Default)]
pub(crate) struct Shape(Mutex<Option<Bytes>>);

impl Shape {
    /// Records the description the client was just sent.
    pub(crate) fn record(&self, message: &[u8]) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Bytes::copy_from_slice(message));
    }

    fn get(&self) -> Option<Bytes> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What describing a statement on a backend found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Checked {
    /// Nothing to check, or the same description: prepare it as usual.
    Same,
    /// The result columns changed since the client described it.
    Changed,
}

/// Whether `statement`, about to be prepared on `backend`, must be checked:
/// the client described it, it was parsed before a change of generation, and
/// the backend does not have it.
pub(super) fn needs_check(statement: &PreparedStatement, backend: &mut PooledBackend) -> bool {
    !statement.backend_name.is_empty()
        && backend_statements::is_older_than_current(&statement.backend_name)
        && !backend
            .connection()
            .prepared
            .contains(&statement.backend_name)
        && statement.shape.get().is_some()
}

/// Describes `statement` on `backend` (and closes it again) and compares the
/// description with the one the client was given.
///
/// A Parse the node refuses (the table is gone) is left to the batch, which
/// prepares the statement again and reports the node's error as it would.
pub(super) async fn check(
    statement: &Arc<PreparedStatement>,
    backend: &mut PooledBackend,
) -> Result<Checked, BackendError> {
    let Some(seen) = statement.shape.get() else {
        return Ok(Checked::Same);
    };
    let name = statement.backend_name.as_bytes();
    let mut out = BytesMut::new();
    encode_parse(&mut out, name, &statement.sql, &statement.param_types);
    encode_describe(&mut out, Target::Statement, name);
    encode_close(&mut out, Target::Statement, name);
    encode_flush(&mut out);
    let connection = backend.connection();
    connection.send(&out).await?;
    let mut now = None;
    loop {
        let message = connection.receive().await?;
        match message.tag() {
            tag::ROW_DESCRIPTION | tag::NO_DATA => now = Some(message.as_bytes().to_vec()),
            tag::READY_FOR_QUERY => {
                // Not sent after a Flush; a node that does is not one to trust.
                if let Ok(BackendMessage::ReadyForQuery(status)) =
                    BackendMessage::decode(message.view())
                {
                    connection.status = status;
                }
                return Ok(Checked::Same);
            }
            tag::CLOSE_COMPLETE => break,
            tag::ERROR_RESPONSE => {
                // The node skips to Sync after an error: end that here.
                let mut sync = BytesMut::new();
                encode_sync(&mut sync);
                connection.send(&sync).await?;
                loop {
                    let message = connection.receive().await?;
                    if let Ok(BackendMessage::ReadyForQuery(status)) =
                        BackendMessage::decode(message.view())
                    {
                        connection.status = status;
                        return Ok(Checked::Same);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(match now {
        Some(now) if now != seen.as_ref() => Checked::Changed,
        _ => Checked::Same,
    })
}

impl Session {
    /// Whether a statement `batch` binds or describes changed its result
    /// columns since the client described it (checked on `backend` only for
    /// statements of an older generation that it lacks).
    pub(in crate::session) async fn result_shape_changed(
        &mut self,
        backend: &mut PooledBackend,
        batch: &[Message],
    ) -> Result<Result<bool, BackendError>, SessionEnd> {
        let mut parsed_here: Vec<&[u8]> = Vec::new();
        for message in batch {
            let name = match FrontendMessage::decode(message.view())? {
                FrontendMessage::Parse(parse) => {
                    parsed_here.push(parse.statement);
                    continue;
                }
                FrontendMessage::Bind(bind) => bind.statement,
                FrontendMessage::Describe {
                    target: Target::Statement,
                    name,
                } => name,
                _ => continue,
            };
            if parsed_here.contains(&name) {
                continue;
            }
            let Some(statement) = self.statements.get(name).cloned() else {
                continue;
            };
            if !needs_check(&statement, backend) {
                continue;
            }
            let node = backend.node();
            let target = backend.connection().cancel_target.clone();
            let checked = bounded(&self.state, node, target, check(&statement, backend)).await;
            match checked {
                Ok(Checked::Same) => {}
                Ok(Checked::Changed) => return Ok(Ok(true)),
                Err(error) => return Ok(Err(error)),
            }
        }
        Ok(Ok(false))
    }

    /// Answers a batch whose statement changed its result columns, as
    /// PostgreSQL does (`0A000`), without running any of it.
    pub(in crate::session) async fn refuse_changed_shape(
        &mut self,
        mut backend: PooledBackend,
        end: BatchEnd,
    ) -> Result<(), SessionEnd> {
        // The routine PostgreSQL names: drivers recognise the error by it
        // (asyncpg's InvalidCachedStatementError), not by the localised message.
        let mut fields = NoticeFields::new(
            Severity::Error,
            sqlstate::FEATURE_NOT_SUPPORTED,
            "cached plan must not change result type",
        );
        fields.other = vec![
            (b'F', "plancache.c".to_string()),
            (b'R', "RevalidateCachedQuery".to_string()),
        ];
        encode_error_response(&mut self.client.out, &fields);
        let idle = backend.connection().status == TransactionStatus::Idle;
        let pinned_here = self
            .routing
            .pin
            .is_some_and(|pin| pin.node == backend.node());
        if idle && !pinned_here && self.state.config.pool.mode != PoolMode::Session {
            self.give_back(backend).await?;
        } else {
            self.held.push(backend);
        }
        match end {
            BatchEnd::Sync => self.ready(),
            BatchEnd::Flush => self.skip_until_sync = true,
        }
        Ok(())
    }
}
