//! Self-healing routes: a read a replica refused because it can run only on
//! the primary is run again there, when the client has seen nothing of the
//! replica's answer; and its shape is remembered, so that the next one goes
//! to the primary first.
//!
//! The relay holds a rerunnable statement's answer (see
//! [`Session::relay`](super::Session::relay)) while it is only preliminary
//! (ParseComplete, BindComplete, RowDescription, ParameterDescription, NoData,
//! notices): the first row, completion or other error releases it; an error
//! [`primary_only`] recognises discards it, and the statement runs on the
//! primary as if it had been routed there. Never inside a transaction (its
//! state on the replica would differ from a rerun's), never when a session
//! pin holds the session to its node, never for a statement with session
//! effects or that is not a read: a read cannot have changed anything on a
//! replica, so running it again is what the client would have got.

use pgrw_core::RouteHint;
use pgrw_core::StatementClass;
use pgrw_core::classification::SessionEffects;
use pgrw_core::route::NodeId;
use pgrw_core::sql::shape::shape;

use super::Session;
use super::client::SessionEnd;
use super::dispatch::Unit;
use crate::config::PoolMode;
use crate::pool::PooledBackend;
use crate::protocol::Message;
use crate::protocol::backend::{NoticeFields, tag};
use crate::protocol::sqlstate;
use crate::stats::RerunReason;

/// At most this many bytes of preliminary answers are held back; past it the
/// answer goes to the client and the statement can no longer be rerun.
const HOLD_LIMIT: usize = 64 * 1024;

/// `25006`: a write in a read-only transaction, as every transaction on a
/// replica is.
const READ_ONLY_SQL_TRANSACTION: &str = "25006";
/// `40001`: how PostgreSQL cancels a statement that conflicts with replay.
const SERIALIZATION_FAILURE: &str = "40001";
/// `40P01`: a buffer-pin deadlock with replay.
const DEADLOCK_DETECTED: &str = "40P01";

/// What the relay does with a message of an answer it holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Held {
    /// Preliminary: keep holding.
    Keep,
    /// The statement produced something (or failed for another reason):
    /// release what is held, and stop holding.
    Release,
    /// The replica refused it: discard what is held and rerun.
    Rerun(RerunReason),
}

/// How a message of a held answer is treated.
pub(super) fn held(message: &Message, held_bytes: usize) -> Held {
    match message.tag() {
        tag::ERROR_RESPONSE => NoticeFields::decode("an ErrorResponse", message.body())
            .ok()
            .and_then(|fields| primary_only(&fields))
            .map_or(Held::Release, Held::Rerun),
        _ if held_bytes > HOLD_LIMIT => Held::Release,
        tag::PARSE_COMPLETE
        | tag::BIND_COMPLETE
        | tag::ROW_DESCRIPTION
        | tag::PARAMETER_DESCRIPTION
        | tag::NO_DATA
        | tag::NOTICE_RESPONSE
        | tag::PARAMETER_STATUS => Held::Keep,
        _ => Held::Release,
    }
}

/// Whether a replica's error says the statement can run only on the primary
/// (or, for a recovery conflict, anywhere but at this moment on this
/// replica), and why.
///
/// - `25006` read_only_sql_transaction: it writes. Every transaction on a
///   replica is read-only, and a read routed there is outside any explicit
///   transaction, so nothing but the node's recovery made it read-only.
/// - `0A000` "cannot access temporary or unlogged relations during
///   recovery" (raised by the planner, `get_relation_info`): `0A000` has
///   other meanings, so the message (or the routine, which is never
///   translated) must match.
/// - A recovery conflict: "canceling statement due to conflict with
///   recovery", `40001` from `ProcessInterrupts` (the only way a read outside
///   a serializable transaction gets `40001`, so any message counts) or
///   `40P01` from `CheckRecoveryConflictDeadlock` (a buffer-pin deadlock
///   with replay; `40P01` also means an ordinary deadlock, so the message
///   must match), and `57014` with that message in case a version reports it
///   as a cancel. A FATAL ("terminating connection due to conflict with
///   recovery") ends the backend: that is a failed backend, not this.
pub(super) fn primary_only(fields: &NoticeFields) -> Option<RerunReason> {
    if fields.severity != "ERROR" {
        return None;
    }
    let conflict = fields
        .message
        .starts_with("canceling statement due to conflict with recovery");
    match fields.code.as_str() {
        READ_ONLY_SQL_TRANSACTION => Some(RerunReason::ReadOnlyTransaction),
        sqlstate::FEATURE_NOT_SUPPORTED => {
            let recovery_relation = fields
                .message
                .starts_with("cannot access temporary or unlogged relations during recovery")
                || fields
                    .other
                    .iter()
                    .any(|(field, value)| *field == b'R' && value == "get_relation_info");
            recovery_relation.then_some(RerunReason::RecoveryRelation)
        }
        SERIALIZATION_FAILURE => Some(RerunReason::RecoveryConflict),
        DEADLOCK_DETECTED | sqlstate::QUERY_CANCELED if conflict => {
            Some(RerunReason::RecoveryConflict)
        }
        _ => None,
    }
}

impl Session {
    /// Whether `unit`, about to run on `node`, may be run again on the
    /// primary should the replica refuse it (see the module doc).
    pub(super) fn may_rerun(&self, unit: &Unit, node: NodeId) -> bool {
        unit.class == StatementClass::Read
            && unit.effects == SessionEffects::NONE
            && (self.routing.transaction.is_none() || self.routing.read_leg() == Some(node))
            && self.routing.pin.is_none()
            && self.state.topology().writable_primary() != Ok(node)
    }

    /// The replica's backend after it refused a read: idle, and given back
    /// (or kept, in session pooling) as after any statement that failed. A
    /// deferred transaction's read leg is ended (it only read): the read
    /// runs again where the transaction then opens, on the primary.
    pub(super) async fn release_refused(
        &mut self,
        backend: PooledBackend,
    ) -> Result<(), SessionEnd> {
        if let Ok(mut slot) = self.cancel.slot.lock() {
            *slot = None;
        }
        if self.routing.read_leg() == Some(backend.node()) {
            self.held.push(backend);
            self.close_read_leg().await;
            return Ok(());
        }
        if self.state.config.pool.mode == PoolMode::Session {
            self.held.push(backend);
            return Ok(());
        }
        self.give_back(backend).await
    }

    /// Whether [`Session::recall_shape`] could change `unit`'s route: a
    /// read outside a transaction, once some shape is learned. Cheap: lets
    /// the extended protocol skip finding the batch's SQL.
    pub(super) fn may_recall_shape(&self, unit: &Unit) -> bool {
        unit.class == StatementClass::Read
            && (self.routing.transaction.is_none() || self.routing.deferred.is_some())
            && self
                .state
                .primary_only
                .lock()
                .is_ok_and(|memory| !memory.is_empty())
    }

    /// Sends a read whose shape is known to run only on the primary there,
    /// as a primary hint would (and `SHOW pgrw.route` says so).
    pub(super) fn recall_shape(&self, sql: &[u8], unit: &mut Unit) {
        let in_transaction = self.routing.transaction.is_some() && self.routing.deferred.is_none();
        if unit.class != StatementClass::Read || in_transaction {
            return;
        }
        let Ok(mut memory) = self.state.primary_only.lock() else {
            return;
        };
        if !memory.is_empty() && memory.recalls(shape(sql)) {
            unit.hint = Some(RouteHint::Primary);
        }
    }

    /// Counts and logs a rerun on the primary of the statement `sql` that
    /// `node` refused, and remembers its shape when the reason lasts. The
    /// unit to run it as: on the primary.
    pub(super) fn note_rerun(
        &mut self,
        reason: RerunReason,
        sql: &[u8],
        node: NodeId,
        unit: &Unit,
    ) -> Unit {
        self.state.stats.record_rerun(reason);
        let node_name = self
            .state
            .config
            .nodes
            .get(node.index())
            .map_or("?", |node| node.name.as_str());
        tracing::debug!(
            node = node_name,
            ?reason,
            "a replica refused a read: running it on the primary"
        );
        // Statement text (literals may be secrets) only at trace, built only then.
        tracing::trace!(
            statement = %String::from_utf8_lossy(&sql[..sql.len().min(200)]),
            "the refused read"
        );
        if reason.is_lasting() {
            let shape = shape(sql);
            let learned = self
                .state
                .primary_only
                .lock()
                .is_ok_and(|mut memory| memory.remember(shape));
            if learned {
                self.state.stats.record_shape_learned();
                tracing::info!(
                    node = node_name,
                    ?reason,
                    "statements of the refused read's shape go to the primary from now on"
                );
            }
        }
        Unit {
            hint: Some(RouteHint::Primary),
            ..*unit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::backend::Severity;

    fn error(code: &str, message: &str) -> NoticeFields {
        NoticeFields::new(Severity::Error, code, message)
    }

    #[test]
    fn a_write_refused_by_a_read_only_replica_runs_only_on_the_primary() {
        let refused = error("25006", "cannot execute INSERT in a read-only transaction");
        assert_eq!(
            primary_only(&refused),
            Some(RerunReason::ReadOnlyTransaction)
        );
    }

    #[test]
    fn an_unlogged_relation_in_recovery_runs_only_on_the_primary() {
        let refused = error(
            "0A000",
            "cannot access temporary or unlogged relations during recovery",
        );
        assert_eq!(primary_only(&refused), Some(RerunReason::RecoveryRelation));
        let mut translated = error("0A000", "kann nicht …");
        translated
            .other
            .push((b'R', "get_relation_info".to_string()));
        assert_eq!(
            primary_only(&translated),
            Some(RerunReason::RecoveryRelation)
        );
    }

    #[test]
    fn other_feature_not_supported_errors_are_the_clients() {
        let stale = error("0A000", "cached plan must not change result type");
        assert_eq!(primary_only(&stale), None);
    }

    #[test]
    fn recovery_conflicts_are_recognised_in_each_form() {
        let message = "canceling statement due to conflict with recovery";
        for code in ["40001", "40P01", "57014"] {
            assert_eq!(
                primary_only(&error(code, message)),
                Some(RerunReason::RecoveryConflict),
                "{code}"
            );
        }
        assert!(!RerunReason::RecoveryConflict.is_lasting());
        assert!(RerunReason::RecoveryRelation.is_lasting());
    }

    #[test]
    fn ordinary_deadlocks_cancels_and_fatal_conflicts_are_not() {
        assert_eq!(primary_only(&error("40P01", "deadlock detected")), None);
        assert_eq!(
            primary_only(&error("57014", "canceling statement due to user request")),
            None
        );
        let fatal = NoticeFields::new(
            Severity::Fatal,
            "40001",
            "terminating connection due to conflict with recovery",
        );
        assert_eq!(primary_only(&fatal), None);
        assert_eq!(
            primary_only(&error("42P01", "relation does not exist")),
            None
        );
    }
}
