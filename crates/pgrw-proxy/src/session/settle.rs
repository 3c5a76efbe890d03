//! Settling the session once a unit's backend is ready again: the write LSN
//! of a write that committed, the transaction and pin the unit opened or
//! ended, the settings it changed, and whether the backend is kept, given
//! back or closed.

use pgrw_core::classification::SessionEffects;
use pgrw_core::classification::{DefaultIsolation, Effect, RouteSetting};
use pgrw_core::route::{NodeId, PinReason, RouteMode, SessionState};
use pgrw_core::{StatementClass, TxAccess};

use super::Session;
use super::client::SessionEnd;
use super::dispatch::Unit;
use super::in_flight::bounded;
use crate::config::PoolMode;
use crate::pool::PooledBackend;
use crate::protocol::Message;
use crate::protocol::backend::TransactionStatus;

/// Effects that leave state in the backend another client must not inherit
/// (settings are undone on release instead: see `settings`).
const TAINTING: &[Effect] = &[
    Effect::PREPARE,
    Effect::LISTEN,
    Effect::TEMP_TABLE,
    Effect::ADVISORY_LOCK,
    Effect::HOLD_CURSOR,
    Effect::SESSION_FUNCTION,
    Effect::DISCARD_ALL,
    Effect::DISCARD_PLANS,
    Effect::DISCARD_SEQUENCES,
    Effect::DISCARD_TEMP,
];

impl Session {
    /// The backend answered the unit with `ready` (its ReadyForQuery): record
    /// what the unit did, read the write LSN when a write committed, forward
    /// `ready`, and keep or give back the backend.
    pub(super) async fn settle(
        &mut self,
        backend: PooledBackend,
        unit: &Unit,
        ready: Message,
    ) -> Result<(), SessionEnd> {
        self.settle_answering(backend, unit, Some(ready)).await
    }

    /// As [`Session::settle`], forwarding `ready` only if there is one: a
    /// ReadyForQuery the proxy caused (the Sync that ends the first part of
    /// a batch split at a Flush) is not the client's.
    pub(super) async fn settle_answering(
        &mut self,
        mut backend: PooledBackend,
        unit: &Unit,
        ready: Option<Message>,
    ) -> Result<(), SessionEnd> {
        let node = backend.node();
        self.unit_finished(self.exchange_errored);
        let status = backend.connection().status;
        let in_transaction = self.routing.transaction.is_some();
        let effects = unit.effects;
        let mut broken = self
            .settle_settings(&mut backend, (unit.class, &effects), in_transaction, status)
            .await
            .is_err();
        let on_primary = self.state.topology().writable_primary() == Ok(node);
        if on_primary && writes(unit.class) {
            self.pending_write = true;
        }
        if effects.contains(Effect::DISCARD_ALL) || effects.contains(Effect::DEALLOCATE_ALL) {
            backend.connection().prepared.clear();
            if !self.exchange_errored {
                // The client's names are gone too, as on PostgreSQL: a Parse of
                // one of them again creates it rather than failing with 42P05.
                self.statements.clear();
            }
        }
        if TAINTING.iter().any(|effect| effects.contains(*effect)) {
            backend.connection().tainted = true;
        }
        if super::settings::changes_settings(&effects) {
            backend.connection().has_settings = true;
        }
        if let Some(change) = effects.route_setting.filter(|change| !change.local) {
            // RESET ALL and DISCARD ALL bring pgrw.route back to auto, as a
            // RESET of a node's own setting.
            self.routing.route_mode = match change.setting {
                RouteSetting::Primary => RouteMode::Primary,
                RouteSetting::Replica => RouteMode::Replica,
                RouteSetting::Auto => RouteMode::Auto,
            };
        }
        if let Some(change) = effects.default_isolation {
            // Serializable at once (its reads must leave the replicas even if
            // a rollback undoes it: unsure, the primary); another level only
            // when it ran alone outside a transaction, so no rollback undid it.
            let settled = !in_transaction
                && status == TransactionStatus::Idle
                && !effects.contains(Effect::TRANSACTION_CONTROL);
            if change == DefaultIsolation::Serializable || settled {
                self.routing.change_default_isolation(change);
            } else if change == DefaultIsolation::RepeatableRead {
                // Unsure whether it stays: no deferred transactions meanwhile.
                self.routing.snapshot_default = true;
            }
        }
        let pinned = pin_reason(&effects);
        if let Some(reason) = pinned {
            self.routing.pin(node, reason);
        }
        track_transaction(&mut self.routing, node, unit.class, status);
        if let Some(deferred) = self.routing.deferred.as_mut() {
            // A statement failed on the read leg: the transaction is aborted there.
            deferred.failed = status == TransactionStatus::Failed;
        }
        if !broken {
            let released = self.settle_pin(
                &mut backend,
                &effects,
                pinned.is_some(),
                in_transaction,
                status,
            );
            broken = released.await.is_err();
        }
        if status == TransactionStatus::Idle && self.pending_write {
            self.pending_write = false;
            // Before the client hears the write is done: any read it (or anyone)
            // starts next must see this position.
            let lsn = if broken {
                None
            } else {
                let target = backend.connection().cancel_target.clone();
                let lsn = backend.connection().current_wal_lsn();
                bounded(&self.state, node, target, lsn).await.ok()
            };
            match lsn {
                Some(lsn) => {
                    self.state.record_write(lsn);
                    self.routing.record_write(lsn);
                }
                None => {
                    broken = true;
                    self.lose_write_position(node);
                }
            }
        } else if !broken
            && status == TransactionStatus::Idle
            && reads_data(unit.class, in_transaction)
        {
            // Monotonic reads: what this unit saw bounds the session's next read.
            self.routing.record_read(node, self.state.monitor.now());
        }
        if let Some(ready) = ready {
            self.client.out.extend_from_slice(ready.as_bytes());
        }
        if let Ok(mut slot) = self.cancel.slot.lock() {
            *slot = None;
        }
        if broken {
            return Ok(());
        }
        let pinned_here = self.routing.pin.is_some_and(|pin| pin.node == node);
        let keep = status != TransactionStatus::Idle
            || pinned_here
            || self.state.config.pool.mode == PoolMode::Session;
        if keep {
            self.held.push(backend);
            Ok(())
        } else {
            self.give_back(backend).await
        }
    }

    /// The node acknowledged a write (its ReadyForQuery goes to the client)
    /// but its position could not be read: the node may be dying with the
    /// write in it, and a replica may not have it yet. Until a probe of the
    /// primary begun after now answers, reads wait for one, then must see
    /// its position (57P03 while no primary answers), never stale rows.
    fn lose_write_position(&mut self, node: NodeId) {
        let now = self.state.monitor.now();
        self.state.lose_write_position(now);
        self.unknown_write.lose(now);
        self.state.stats.record_lost_write_position();
        tracing::warn!(
            node = %self.state.topology().node(node).map_or("?", |node| &node.name),
            "a write's commit position could not be read: reads wait for the primary's next position"
        );
    }
}

/// Whether running `class` on the primary may have written.
fn writes(class: StatementClass) -> bool {
    !matches!(
        class,
        StatementClass::Read | StatementClass::Empty | StatementClass::Begin(TxAccess::ReadOnly)
    )
}

/// Whether a unit of `class` that ended idle may have shown the client data
/// (a read, a write that did not commit, the end of a transaction), so that
/// the session's next read must not see an older state.
fn reads_data(class: StatementClass, in_transaction: bool) -> bool {
    match class {
        StatementClass::Session | StatementClass::Empty => false,
        StatementClass::Commit
        | StatementClass::Rollback
        | StatementClass::Savepoint
        | StatementClass::SetTransaction(_) => in_transaction,
        _ => true,
    }
}

fn pin_reason(effects: &SessionEffects) -> Option<PinReason> {
    [
        (Effect::TEMP_TABLE, PinReason::TempTable),
        (Effect::ADVISORY_LOCK, PinReason::AdvisoryLock),
        (Effect::LISTEN, PinReason::Listen),
        (Effect::HOLD_CURSOR, PinReason::HoldCursor),
        (Effect::PREPARE, PinReason::PreparedStatement),
    ]
    .into_iter()
    .find(|(effect, _)| effects.contains(*effect))
    .map(|(_, reason)| reason)
}

/// The backend's status is the truth about the transaction.
fn track_transaction(
    routing: &mut SessionState,
    node: pgrw_core::route::NodeId,
    class: StatementClass,
    status: TransactionStatus,
) {
    if status == TransactionStatus::Idle {
        routing.end_transaction();
    } else if routing.transaction.is_none() {
        let access = match class {
            StatementClass::Begin(access) => access,
            _ => TxAccess::Unspecified,
        };
        routing.begin(node, access);
    }
}
