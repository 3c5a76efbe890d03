//! A batch rewritten for the backend that runs it: the client's statement
//! names mapped to the backends' shared names, a hidden Parse added where the
//! backend lacks a statement the batch uses, and the steps of the answer to
//! expect (which the client sees, which the proxy answers itself).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use bytes::{Bytes, BytesMut};
use pgrw_core::Reason;
use pgrw_core::sql::classify::classify;

use super::backend_statements::{self, backend_name};
use super::batch_unit::unit_of;
use super::statement_names::duplicate_parse;
use super::{BatchEnd, PreparedStatement, shape};
use crate::pool::PooledBackend;
use crate::protocol::Message;
use crate::protocol::backend::{encode_close_complete, encode_parse_complete};
use crate::protocol::frontend::{
    Bind, FrontendMessage, Parse, Target, encode_bind, encode_close, encode_describe, encode_flush,
    encode_parse, encode_sync,
};
use crate::session::Session;
use crate::session::client::SessionEnd;
use crate::session::relay::{Exchange, Step};

/// What [`Session::build`] makes of a batch.
pub(super) struct Built {
    /// The bytes to send.
    pub(super) out: BytesMut,
    /// The steps to expect.
    pub(super) exchange: Exchange,
    /// The named statements the batch parses, unsettled until it is answered.
    pub(super) parsed: Vec<Bytes>,
}

/// What a batch does on its backend so far, as it is built.
#[derive(Default)]
pub(super) struct Building {
    /// Backend names a Parse in this batch creates.
    parsing: Vec<String>,
    /// Whether the backend's unnamed statement is now the client's.
    unnamed_parsed: bool,
}

impl Session {
    /// The bytes to send for `batch` on `backend`, the steps to expect, and
    /// the named statements it parses.
    pub(super) fn build(
        &mut self,
        backend: &mut PooledBackend,
        batch: &[Message],
        end: BatchEnd,
    ) -> Result<Built, SessionEnd> {
        let mut out = BytesMut::new();
        let mut exchange = Exchange::default();
        let mut building = Building::default();
        let mut parsed: Vec<(Bytes, usize)> = Vec::new();
        // Portals of a split batch's first part, bound again here first (`flush_split`).
        for message in std::mem::take(&mut self.rebinds) {
            if let FrontendMessage::Bind(bind) = FrontendMessage::decode(message.view())? {
                self.bind(backend, bind, &mut building, &mut out, &mut exchange);
                exchange.steps.push_back(Step::Rebind);
            }
        }
        for message in batch {
            match FrontendMessage::decode(message.view())? {
                FrontendMessage::Parse(parse) => {
                    let step = exchange.steps.len();
                    let name = Bytes::copy_from_slice(parse.statement);
                    if self.parse(backend, parse, &mut building, &mut out, &mut exchange) {
                        parsed.push((name, step));
                    }
                }
                FrontendMessage::Bind(bind) => {
                    self.bind(backend, bind, &mut building, &mut out, &mut exchange);
                    exchange.steps.push_back(Step::Bind);
                }
                FrontendMessage::Describe {
                    target: Target::Statement,
                    name,
                } => {
                    let on_backend =
                        self.ensure_prepared(backend, name, &mut building, &mut out, &mut exchange);
                    encode_describe(
                        &mut out,
                        Target::Statement,
                        backend_side(on_backend.as_deref(), name),
                    );
                    exchange.steps.push_back(Step::Describe(on_backend));
                }
                FrontendMessage::Describe { .. } => {
                    out.extend_from_slice(message.as_bytes());
                    exchange.steps.push_back(Step::Describe(None));
                }
                FrontendMessage::Execute { .. } => {
                    out.extend_from_slice(message.as_bytes());
                    exchange.steps.push_back(Step::Execute);
                }
                FrontendMessage::Close {
                    target: Target::Statement,
                    name,
                } if !name.is_empty() => {
                    // Backends keep it (another client may share it); the client forgets it.
                    self.statements.remove(name);
                    exchange.steps.push_back(Step::Answer(close_complete()));
                }
                FrontendMessage::Close { target, name } => {
                    encode_close(&mut out, target, name);
                    exchange.steps.push_back(Step::Close);
                }
                _ => {}
            }
        }
        match end {
            BatchEnd::Sync => {
                encode_sync(&mut out);
                exchange.steps.push_back(Step::Sync);
                exchange.ready_left = 1;
            }
            BatchEnd::Flush => encode_flush(&mut out),
        }
        let parsed = self.mark_unsettled(parsed, exchange.steps.len());
        Ok(Built {
            out,
            exchange,
            parsed,
        })
    }

    /// Adds a client Bind to the batch, its statement prepared on `backend`
    /// first if it is missing there (the caller adds the step).
    fn bind(
        &mut self,
        backend: &mut PooledBackend,
        bind: Bind<'_>,
        building: &mut Building,
        out: &mut BytesMut,
        exchange: &mut Exchange,
    ) {
        let on_backend = self.ensure_prepared(backend, bind.statement, building, out, exchange);
        encode_bind(
            out,
            &Bind {
                statement: backend_side(on_backend.as_deref(), bind.statement),
                ..bind
            },
        );
    }

    /// Adds a client Parse to the batch: answered from what the backend
    /// already has when it can, sent otherwise. Whether it registers a named
    /// statement.
    fn parse(
        &mut self,
        backend: &mut PooledBackend,
        parse: Parse<'_>,
        building: &mut Building,
        out: &mut BytesMut,
        exchange: &mut Exchange,
    ) -> bool {
        let classification = classify(parse.sql, self.catalog.get());
        if matches!(classification.reason, Reason::Ddl(_)) {
            // What this batch parses after it must be planned afresh.
            backend_statements::advance();
        }
        let name = parse.statement;
        if !name.is_empty() && self.statements.contains_key(name) {
            duplicate_parse(backend, parse, out, exchange);
            return false;
        }
        let statement = Arc::new(PreparedStatement {
            sql: Bytes::copy_from_slice(parse.sql),
            backend_name: backend_name(
                name,
                parse.sql,
                &parse.param_types,
                backend_statements::current(),
            ),
            param_types: parse.param_types,
            unit: unit_of(
                &classification,
                self.watches_transaction_time().then_some(parse.sql),
            ),
            shape: shape::Shape::default(),
            unsettled: AtomicUsize::new(0),
        });
        let on_backend = &statement.backend_name;
        if on_backend.is_empty() {
            building.unnamed_parsed = true;
        }
        if !on_backend.is_empty()
            && (backend.connection().prepared.contains(on_backend)
                || building.parsing.contains(on_backend))
        {
            exchange.steps.push_back(Step::Answer(parse_complete()));
        } else {
            parse_on_backend(&statement, false, building, out, exchange);
        }
        self.statements
            .insert(Bytes::copy_from_slice(name), statement);
        !name.is_empty()
    }

    /// The client statement `name` (its backend-side name is the one to use),
    /// preparing it on `backend` first (a hidden Parse) when the backend lacks
    /// it. `None` when the client never prepared it: the backend then reports
    /// the error.
    fn ensure_prepared(
        &self,
        backend: &mut PooledBackend,
        name: &[u8],
        building: &mut Building,
        out: &mut BytesMut,
        exchange: &mut Exchange,
    ) -> Option<Arc<PreparedStatement>> {
        let statement = self.statements.get(name)?;
        let on_backend = &statement.backend_name;
        let missing = if on_backend.is_empty() {
            !building.unnamed_parsed
        } else {
            !backend.connection().prepared.contains(on_backend)
                && !building.parsing.contains(on_backend)
        };
        if missing {
            parse_on_backend(statement, true, building, out, exchange);
            building.unnamed_parsed |= on_backend.is_empty();
        }
        Some(statement.clone())
    }
}

/// Writes the Parse that creates `statement` on the backend, and the step
/// that waits for its ParseComplete (`hidden` when the client did not send
/// this Parse and must not see the answer).
fn parse_on_backend(
    statement: &PreparedStatement,
    hidden: bool,
    building: &mut Building,
    out: &mut BytesMut,
    exchange: &mut Exchange,
) {
    let on_backend = &statement.backend_name;
    encode_parse(
        out,
        on_backend.as_bytes(),
        &statement.sql,
        &statement.param_types,
    );
    let prepares = (!on_backend.is_empty()).then(|| on_backend.clone());
    building.parsing.extend(prepares.clone());
    exchange.steps.push_back(Step::Parse { prepares, hidden });
}

/// The name a Bind or Describe uses on the backend: the statement's shared
/// backend name, or the client's when the client never prepared it (the
/// backend then reports the error).
fn backend_side<'a>(statement: Option<&'a PreparedStatement>, client_name: &'a [u8]) -> &'a [u8] {
    statement.map_or(client_name, |statement| statement.backend_name.as_bytes())
}

pub(super) fn parse_complete() -> Bytes {
    let mut out = BytesMut::new();
    encode_parse_complete(&mut out);
    out.freeze()
}

pub(super) fn close_complete() -> Bytes {
    let mut out = BytesMut::new();
    encode_close_complete(&mut out);
    out.freeze()
}
