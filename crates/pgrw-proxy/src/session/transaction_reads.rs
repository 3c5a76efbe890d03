//! Reads inside `READ COMMITTED` transactions on replicas
//! (`[policy] transaction_reads = "replica"`; docs/proxy.md, "Reads inside
//! transactions").
//!
//! A plain `BEGIN` (simple protocol) is answered by the proxy and remembered
//! ([`Session::defer_begin`]): the transaction runs nowhere yet
//! (core's `route::Deferred`). Its first plain read is routed as any read and
//! opens, hidden from the client, `BEGIN ISOLATION LEVEL READ COMMITTED READ
//! ONLY` on that replica: the read leg, one backend held to the transaction's
//! end, so that the replica itself gives each statement its snapshot, the
//! transaction status (`T`, `E`) and `25P02` after a failure. The first
//! statement that is not a plain read closes the leg (a hidden `ROLLBACK`)
//! and sends the client's own `BEGIN` to the primary before it
//! ([`Session::enter_deferred`]), unless the leg failed: then it goes to the
//! leg, which refuses it as PostgreSQL does. A `COMMIT`/`ROLLBACK` ends the
//! leg, or, with none, is answered by the proxy.

use bytes::Bytes;
use pgrw_core::route::RouteMode;
use pgrw_core::sql::transaction::{
    BeginLevel, TransactionEnd, deferrable_begin, reads_transaction_time, transaction_end,
};
use pgrw_core::{RouteHint, StatementClass, TxAccess};

use super::Session;
use super::client::SessionEnd;
use super::dispatch::Unit;
use super::in_flight::bounded;
use super::settings;
use crate::backend::BackendError;
use crate::config::{PoolMode, TransactionReadsConfig};
use crate::pool::PooledBackend;
use crate::protocol::Message;
use crate::protocol::backend::{
    TransactionStatus, encode_bind_complete, encode_command_complete, encode_no_data,
    encode_parse_complete,
};
use crate::protocol::frontend::{FrontendMessage, Target};
use crate::protocol::sqlstate;

/// The read leg's own transaction: the level a deferred `BEGIN` was
/// accepted for, read-only so that a misclassified write fails rather than
/// runs (it cannot on a replica anyway).
const READ_LEG_BEGIN: &[u8] = b"BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY";

/// The client's `BEGIN` of a deferred transaction, sent as it was to the
/// primary when the transaction opens there.
#[derive(Debug, Clone)]
pub(super) struct DeferredBegin {
    sql: Bytes,
    access: TxAccess,
}

impl Session {
    /// Answers a simple-protocol `sql` itself when the mode allows: a
    /// deferrable `BEGIN` (`CommandComplete BEGIN`, ReadyForQuery `T`), or a
    /// plain `COMMIT`/`ROLLBACK` of a deferred transaction that never ran a
    /// statement (`I`). Whether it did.
    pub(super) fn answer_deferred(&mut self, sql: &[u8], class: StatementClass) -> bool {
        if self.routing.deferred.is_some() {
            if self.routing.transaction.is_some() {
                return false;
            }
            let Some(end) = transaction_end(sql) else {
                return false;
            };
            encode_command_complete(
                &mut self.client.out,
                match end {
                    TransactionEnd::Commit => b"COMMIT",
                    TransactionEnd::Rollback => b"ROLLBACK",
                },
            );
            self.routing.end_transaction();
            self.ready();
            return true;
        }
        let StatementClass::Begin(access @ (TxAccess::Unspecified | TxAccess::ReadWrite)) = class
        else {
            return false;
        };
        let Some(begin) = deferrable_begin(sql) else {
            return false;
        };
        let policy = self.state.config.policy.policy();
        if !self
            .routing
            .may_defer(&policy, begin.level == BeginLevel::ReadCommitted)
        {
            return false;
        }
        self.routing.defer();
        self.deferred_begin = Some(DeferredBegin {
            sql: Bytes::copy_from_slice(sql),
            access,
        });
        encode_command_complete(&mut self.client.out, begin.tag);
        self.ready();
        true
    }

    /// Answers the `BEGIN` that opens an extended batch (Parse of the unnamed
    /// statement, Bind, maybe Describe, Execute: what pgjdbc sends before
    /// the first statement of a transaction, in the same batch) when it may
    /// be deferred, as [`Session::answer_deferred`] answers a simple one:
    /// ParseComplete, BindComplete, NoData, CommandComplete. Those messages
    /// leave the batch; the rest then runs in the deferred transaction.
    pub(super) fn defer_batch_begin(&mut self) -> Result<(), SessionEnd> {
        if self.routing.deferred.is_some() || self.batch.len() < 3 {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.batch);
        let deferred = self.defer_begin_of(&mut batch);
        self.batch = batch;
        deferred
    }

    fn defer_begin_of(&mut self, batch: &mut Vec<Message>) -> Result<(), SessionEnd> {
        let FrontendMessage::Parse(parse) = FrontendMessage::decode(batch[0].view())? else {
            return Ok(());
        };
        if !parse.statement.is_empty() || !parse.param_types.is_empty() {
            return Ok(());
        }
        let Some(begin) = deferrable_begin(parse.sql) else {
            return Ok(());
        };
        let unnamed_bind = matches!(
            FrontendMessage::decode(batch[1].view())?,
            FrontendMessage::Bind(bind)
                if bind.portal.is_empty() && bind.statement.is_empty() && bind.parameter_count() == 0
        );
        let described = matches!(
            FrontendMessage::decode(batch[2].view())?,
            FrontendMessage::Describe { target: Target::Portal, name } if name.is_empty()
        );
        let execute_at = 2 + usize::from(described);
        let executes = batch.get(execute_at).is_some_and(|message| {
            matches!(
                FrontendMessage::decode(message.view()),
                Ok(FrontendMessage::Execute { portal, .. }) if portal.is_empty()
            )
        });
        let policy = self.state.config.policy.policy();
        let level = begin.level == BeginLevel::ReadCommitted;
        if !unnamed_bind || !executes || !self.routing.may_defer(&policy, level) {
            return Ok(());
        }
        let sql = Bytes::copy_from_slice(parse.sql);
        // The client's unnamed statement is the BEGIN now, which no backend holds.
        self.statements.remove(&b""[..]);
        self.routing.defer();
        self.deferred_begin = Some(DeferredBegin {
            sql,
            access: TxAccess::Unspecified,
        });
        encode_parse_complete(&mut self.client.out);
        encode_bind_complete(&mut self.client.out);
        if described {
            encode_no_data(&mut self.client.out);
        }
        encode_command_complete(&mut self.client.out, begin.tag);
        batch.drain(..=execute_at);
        Ok(())
    }

    /// Whether statements' reads of the transaction's start time must be
    /// looked for (the mode is on): a prepared statement is classified once.
    pub(super) fn watches_transaction_time(&self) -> bool {
        self.state.config.policy.transaction_reads == TransactionReadsConfig::Replica
    }

    /// Whether a read of `sql` must open a deferred transaction on the
    /// primary rather than read on a replica: it shows the transaction's
    /// start time, which the primary's transaction would show differently.
    pub(super) fn shows_transaction_time(sql: &[u8]) -> bool {
        reads_transaction_time(sql)
    }

    /// Whether `unit` opens the deferred transaction on the primary (as
    /// core's `deferred_route` sends it there): anything but a plain read or
    /// the transaction's end, while the transaction has not failed.
    pub(super) fn opens_deferred(&self, unit: &Unit) -> bool {
        if self.routing.deferred.is_none_or(|deferred| deferred.failed) {
            return false;
        }
        let class = self.routed_class(unit);
        let plain_read = matches!(class, StatementClass::Read | StatementClass::Empty)
            && unit.hint != Some(RouteHint::Primary)
            && self.routing.route_mode != RouteMode::Primary;
        !plain_read && !matches!(class, StatementClass::Commit | StatementClass::Rollback)
    }

    /// The class `unit` is routed as. In a deferred transaction, a read that
    /// shows the transaction's start time or has a session effect opens the
    /// transaction on the primary as a write does; and a read of the
    /// session's own backend state (`pg_prepared_statements`, `pg_cursors`)
    /// runs, while the read leg is open, on the leg: the backend this
    /// client's statements were prepared and its cursors declared on.
    pub(super) fn routed_class(&self, unit: &Unit) -> StatementClass {
        if self.routing.deferred.is_none() {
            unit.class
        } else if unit.opens_deferred_as_a_write() {
            StatementClass::Write
        } else if unit.reads_session_backend && self.routing.read_leg().is_some() {
            StatementClass::Read
        } else {
            unit.class
        }
    }

    /// Makes `backend`, just checked out for a unit of a deferred
    /// transaction, run it in that transaction: on the primary, the read leg
    /// (if any) ends and the client's `BEGIN` runs first; on a replica with
    /// no leg yet, the leg opens. `None`: it could not, and the error is
    /// written (the caller ends the exchange with ReadyForQuery).
    pub(super) async fn enter_deferred(
        &mut self,
        mut backend: PooledBackend,
    ) -> Option<PooledBackend> {
        if self.routing.deferred.is_none() {
            return Some(backend);
        }
        let node = backend.node();
        if self.routing.read_leg() == Some(node) {
            return Some(backend);
        }
        let on_primary = self.state.topology().writable_primary() == Ok(node);
        if on_primary {
            self.close_read_leg().await;
        }
        let (sql, access) = match (&self.deferred_begin, on_primary) {
            (Some(begin), true) => (begin.sql.clone(), begin.access),
            _ => (Bytes::from_static(READ_LEG_BEGIN), TxAccess::ReadOnly),
        };
        match self.run_hidden(&mut backend, &sql).await {
            Ok(answer) if answer.error.is_none() => {
                if on_primary {
                    self.routing.open_deferred(node, access);
                } else {
                    self.routing.open_read_leg(node);
                }
                Some(backend)
            }
            Ok(answer) => {
                // The node refused the BEGIN the client was told succeeded:
                // the transaction is over, and the client hears why.
                let message = answer.error.map_or_else(String::new, |error| error.message);
                drop(backend);
                self.routing.end_transaction();
                self.error(
                    sqlstate::CONNECTION_FAILURE,
                    format!("pgrw: the node refused to open the transaction: {message}"),
                );
                None
            }
            Err(error) => {
                self.failed_before_unit(backend, error);
                None
            }
        }
    }

    /// Runs `sql` on `backend` for the proxy itself (its answer is not the
    /// client's), given up on as a client's statement would be if the node hangs.
    async fn run_hidden(
        &self,
        backend: &mut PooledBackend,
        sql: &[u8],
    ) -> Result<settings::query::Answer, BackendError> {
        let target = backend.connection().cancel_target.clone();
        let node = backend.node();
        bounded(
            &self.state,
            node,
            target,
            settings::query::run(backend.connection(), sql),
        )
        .await
    }

    /// Moves a `BEGIN READ ONLY` transaction that ran nothing but its BEGIN
    /// (and SET TRANSACTION) on a replica to the primary, for a `SET
    /// TRANSACTION ISOLATION LEVEL SERIALIZABLE` that a standby refuses: a
    /// hidden `ROLLBACK` there, and the transaction is deferred with the
    /// client's `BEGIN` (see the module docs), which the primary runs before
    /// that statement. Its earlier SET TRANSACTION modes are lost: the
    /// primary's transaction has the BEGIN's and the new statement's.
    pub(super) async fn move_read_only_to_primary(&mut self, begin: Bytes) {
        let Some(transaction) = self.routing.transaction else {
            return;
        };
        let Some(index) = self
            .held
            .iter()
            .position(|backend| backend.node() == transaction.node)
        else {
            return;
        };
        let mut backend = self.held.swap_remove(index);
        let ended = self.run_hidden(&mut backend, b"ROLLBACK").await;
        let clean = matches!(ended, Ok(ref answer) if answer.error.is_none())
            && backend.connection().status == TransactionStatus::Idle;
        if clean && self.state.config.pool.mode == PoolMode::Session {
            self.held.push(backend);
        } else if clean {
            settings::undo_settings_and_release(backend).await;
        }
        self.routing.end_transaction();
        self.routing.defer();
        self.deferred_begin = Some(DeferredBegin {
            sql: begin,
            access: TxAccess::ReadOnly,
        });
    }

    /// Ends the deferred transaction's read leg, if one is open: a hidden
    /// `ROLLBACK` (it only read), and its backend goes back (kept, in
    /// session pooling); one that does not end cleanly is closed.
    pub(super) async fn close_read_leg(&mut self) {
        let Some(leg) = self.routing.read_leg() else {
            return;
        };
        self.routing.leave_read_leg();
        let Some(index) = self.held.iter().position(|backend| backend.node() == leg) else {
            return;
        };
        let mut backend = self.held.swap_remove(index);
        let ended = self.run_hidden(&mut backend, b"ROLLBACK").await;
        let clean = matches!(ended, Ok(ref answer) if answer.error.is_none())
            && backend.connection().status == TransactionStatus::Idle;
        if !clean {
            return;
        }
        if self.state.config.pool.mode == PoolMode::Session {
            self.held.push(backend);
        } else {
            settings::undo_settings_and_release(backend).await;
        }
    }
}
