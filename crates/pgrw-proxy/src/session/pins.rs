//! When a pin ends. A temp table, a session advisory lock, LISTEN, a `WITH
//! HOLD` cursor or a SQL-level prepared statement pins the client to the
//! backend holding it; once the last of them is gone, the client may move
//! again and the backend may serve others.
//!
//! The proxy does not count tables, locks or channels by name (a temp table
//! dropped by a function, a lock taken twice, `ON COMMIT DROP` would fool it).
//! After a statement that may release such state (`DROP`, `DISCARD TEMP`,
//! `UNLISTEN`, an advisory unlock, `CLOSE`, `DEALLOCATE`), after a transaction
//! that pinned, or after a pinning statement that failed, it asks the pinned
//! backend, once idle, which state remains (one round trip, only then). An
//! answer it cannot get keeps the pin. `DISCARD ALL` ends everything at once.
//!
//! A backend whose pinning state is gone is untainted (it may go back to the
//! pool) unless it also ran something whose state the question cannot see
//! (`setseed` and other session functions, `DISCARD PLANS`, `DISCARD
//! SEQUENCES`); after `DISCARD ALL` it is clean in any case.

use pgrw_core::classification::{Effect, SessionEffects};
use pgrw_core::route::PinReason;

use super::Session;
use super::settings::query;
use crate::backend::BackendError;
use crate::pool::PooledBackend;
use crate::protocol::backend::TransactionStatus;

/// Effects that may release pinning state.
const RELEASING: &[Effect] = &[
    Effect::DROP,
    Effect::DISCARD_TEMP,
    Effect::UNLISTEN,
    Effect::ADVISORY_UNLOCK,
    Effect::CLOSE_CURSOR,
    Effect::DEALLOCATE,
    Effect::DEALLOCATE_ALL,
];

/// Effects that leave backend state the question below cannot see.
const UNSEEN: &[Effect] = &[
    Effect::SESSION_FUNCTION,
    Effect::DISCARD_PLANS,
    Effect::DISCARD_SEQUENCES,
];

/// Which pinning state a backend still holds: one boolean column each, in
/// the order of [`REMAINING_REASONS`].
const REMAINING_STATE: &[u8] = b"SELECT \
    EXISTS (SELECT 1 FROM pg_catalog.pg_class \
            WHERE relnamespace = pg_catalog.pg_my_temp_schema()), \
    EXISTS (SELECT 1 FROM pg_catalog.pg_locks \
            WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()), \
    EXISTS (SELECT 1 FROM pg_catalog.pg_listening_channels()), \
    EXISTS (SELECT 1 FROM pg_catalog.pg_cursors WHERE is_holdable), \
    EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE from_sql)";

/// The pin reason of each column of [`REMAINING_STATE`].
const REMAINING_REASONS: [PinReason; 5] = [
    PinReason::TempTable,
    PinReason::AdvisoryLock,
    PinReason::Listen,
    PinReason::HoldCursor,
    PinReason::PreparedStatement,
];

/// When to ask the pinned backend what pins the session still.
#[derive(Debug, Default)]
pub(crate) struct PinCheck {
    /// Pinning state may be gone: ask once the session is idle.
    due: bool,
    /// The pinned backend ran something whose state the question cannot see.
    unseen_state: bool,
}

fn any(effects: &SessionEffects, among: &[Effect]) -> bool {
    among.iter().any(|effect| effects.contains(*effect))
}

impl Session {
    /// After a unit answered on `backend` (the session's pin already updated
    /// for what it pinned): releases the pin when its state is gone. `pinned`:
    /// whether the unit took a pin; `in_transaction`: whether a transaction
    /// was open before it. An `Err` means the backend failed: its state is
    /// gone with it, and so is the pin.
    pub(super) async fn settle_pin(
        &mut self,
        backend: &mut PooledBackend,
        effects: &SessionEffects,
        pinned: bool,
        in_transaction: bool,
        status: TransactionStatus,
    ) -> Result<(), BackendError> {
        let node = backend.node();
        let pinned_here = self.routing.pin.is_some_and(|pin| pin.node == node);
        let idle = status == TransactionStatus::Idle && self.routing.transaction.is_none();
        let errored = self.exchange_errored;
        if effects.contains(Effect::DISCARD_ALL) && idle && !errored {
            // Closes cursors, unlistens, unlocks, drops temp tables and
            // prepared statements, and resets every setting: the backend is
            // as clean as a new one, pinned or not.
            if pinned_here {
                self.routing.unpin();
                self.pin_check = PinCheck::default();
            }
            backend.connection().tainted = false;
            return Ok(());
        }
        if !pinned_here {
            return Ok(());
        }
        let check = &mut self.pin_check;
        check.unseen_state |= any(effects, UNSEEN);
        check.due |= any(effects, RELEASING) || (pinned && (errored || in_transaction || !idle));
        if !(check.due && idle) {
            return Ok(());
        }
        check.due = false;
        let answer = match query::run(backend.connection(), REMAINING_STATE).await {
            Ok(answer) => answer,
            Err(error) => {
                self.routing.unpin();
                return Err(error);
            }
        };
        let [row] = answer.rows.as_slice() else {
            return Ok(()); // No answer to trust: stay pinned.
        };
        if answer.error.is_some() || row.len() != REMAINING_REASONS.len() {
            return Ok(());
        }
        let remaining = REMAINING_REASONS
            .iter()
            .zip(row)
            .find(|(_, held)| held.as_deref() != Some("f"))
            .map(|(reason, _)| *reason);
        self.routing.retain_pin(remaining);
        if remaining.is_none() && !self.pin_check.unseen_state {
            backend.connection().tainted = false;
        }
        if remaining.is_none() {
            self.pin_check = PinCheck::default();
        }
        Ok(())
    }
}
