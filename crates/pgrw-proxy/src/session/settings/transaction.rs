//! Settings changed inside a transaction: a `SET` (not `SET LOCAL`) there
//! lasts for the session only if the transaction commits.
//!
//! The SETs of the open transaction wait here and are recorded for replay when
//! it commits, and dropped when it rolls back (or its COMMIT fails, or it had
//! failed before the COMMIT). A `ROLLBACK TO SAVEPOINT` after such a SET makes
//! the outcome depend on where the savepoint was, which the proxy does not
//! follow; neither does it know which statements of a failed multi-statement
//! string ran. In those cases it asks the backend instead, once the session is
//! idle again: every setting whose source is the session (`pg_settings`) and
//! the role are read there and recorded, after a `RESET ALL`, as what other
//! backends must replay. So the replayed state is the backend's own, never a
//! guess.

use std::mem;

use bytes::Bytes;
use pgrw_core::StatementClass;
use pgrw_core::classification::{DefaultIsolation, Effect, SessionEffects};
use pgrw_core::sql::classify::classify;

use super::startup::set_config_pairs;
use super::{controls_transaction, query};
use crate::backend::BackendError;
use crate::pool::PooledBackend;
use crate::protocol::backend::TransactionStatus;
use crate::session::Session;

/// The session-level settings of a backend, by name, with the role.
/// Transaction-scoped ones (`transaction_isolation`, …) are left out: setting
/// them outside a transaction fails.
const SESSION_SETTINGS: &[u8] = b"SELECT name, pg_catalog.current_setting(name) \
    FROM pg_catalog.pg_settings \
    WHERE source = 'session' AND name NOT LIKE 'transaction\\_%' \
    UNION ALL SELECT 'role', pg_catalog.current_setting('role')";

/// The settings statements of the open transaction, waiting for its end.
#[derive(Debug, Default)]
pub(crate) struct TransactionSettings {
    /// SETs run in the open transaction, in order.
    pending: Vec<Bytes>,
    /// A savepoint rollback (or an error) may have undone some of `pending`.
    uncertain: bool,
    /// Whether the transaction had failed after the last unit (its COMMIT then
    /// rolls back).
    failed: bool,
    /// The backend must be asked for its settings once the session is idle.
    read_back_due: bool,
}

/// What a unit of work did to the session's settings.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    /// Settings statements that now last for the session.
    committed: Vec<Bytes>,
}

impl TransactionSettings {
    /// Follows one unit: `statements` are its settings statements (for a
    /// multi-statement string, with its transaction control statements, in
    /// order). `class` is the unit's class; `in_transaction` whether a
    /// transaction was open before it; `errored` whether it got an error;
    /// `status` the backend's status after it.
    fn follow(
        &mut self,
        statements: Vec<Bytes>,
        classes: &[StatementClass],
        unit: (StatementClass, &SessionEffects),
        in_transaction: bool,
        errored: bool,
        status: TransactionStatus,
    ) -> Outcome {
        let (class, effects) = unit;
        let idle = status == TransactionStatus::Idle;
        let failed_before = mem::replace(&mut self.failed, status == TransactionStatus::Failed);
        let string = effects.contains(Effect::TRANSACTION_CONTROL);
        let mut outcome = Outcome::default();
        let settings = || {
            statements
                .iter()
                .zip(classes)
                .filter(|(_, class)| !controls_transaction(**class))
                .map(|(statement, _)| statement.clone())
        };
        if errored {
            if !in_transaction && idle && !string {
                // One implicit transaction, rolled back.
            } else if idle && matches!(class, StatementClass::Commit | StatementClass::Rollback) {
                self.discard();
            } else if idle {
                // Which statements ran, and whether a COMMIT was among them, is unknown.
                self.read_back_due |= !self.pending.is_empty() || settings().next().is_some();
                self.discard();
            } else {
                let before = self.pending.len();
                self.pending.extend(settings());
                self.uncertain |= self.pending.len() > before;
            }
            return outcome;
        }
        if string {
            let mut open = in_transaction;
            for (statement, class) in statements.iter().zip(classes) {
                match class {
                    StatementClass::Begin(_) => open = true,
                    StatementClass::Commit => {
                        self.commit(false, &mut outcome);
                        open = false;
                    }
                    StatementClass::Rollback => {
                        self.discard();
                        open = false;
                    }
                    StatementClass::Savepoint => self.uncertain |= !self.pending.is_empty(),
                    _ if open => self.pending.push(statement.clone()),
                    _ => outcome.committed.push(statement.clone()),
                }
            }
            if idle && open {
                self.read_back_due |= !self.pending.is_empty();
                self.discard();
            }
            return outcome;
        }
        match class {
            StatementClass::Commit => self.commit(failed_before, &mut outcome),
            StatementClass::Rollback => self.discard(),
            StatementClass::Savepoint => self.uncertain |= !self.pending.is_empty(),
            _ if in_transaction && idle => {
                // The transaction ended inside a batch (a COMMIT or ROLLBACK
                // among its statements): only the backend knows how.
                self.read_back_due |= !self.pending.is_empty() || !statements.is_empty();
                self.discard();
            }
            _ if in_transaction || !idle => self.pending.extend(settings()),
            _ => outcome.committed.extend(settings()),
        }
        outcome
    }

    /// Asks for the backend's own settings once the session is idle: for a
    /// settings statement whose values the proxy cannot replay (bound
    /// parameters).
    pub(in crate::session) fn read_back_when_idle(&mut self) {
        self.read_back_due = true;
    }

    fn commit(&mut self, failed: bool, outcome: &mut Outcome) {
        if failed {
            // COMMIT of a failed transaction rolls it back.
        } else if self.uncertain {
            self.read_back_due = true;
        } else {
            outcome.committed.append(&mut self.pending);
        }
        self.discard();
    }

    fn discard(&mut self) {
        self.pending.clear();
        self.uncertain = false;
    }
}

impl Session {
    /// Records what the unit just answered on `backend` did to the session's
    /// settings (see the module docs). `in_transaction`: whether a
    /// transaction was open before the unit.
    pub(in crate::session) async fn settle_settings(
        &mut self,
        backend: &mut PooledBackend,
        unit: (StatementClass, &SessionEffects),
        in_transaction: bool,
        status: TransactionStatus,
    ) -> Result<(), BackendError> {
        let statements = mem::take(&mut self.unit_settings);
        let classes: Vec<StatementClass> = statements
            .iter()
            .map(|statement| classify(statement, &self.state.catalog).class)
            .collect();
        let outcome = self.transaction_settings.follow(
            statements,
            &classes,
            unit,
            in_transaction,
            self.exchange_errored,
            status,
        );
        let restore = status == TransactionStatus::Idle
            && !self.startup.is_empty()
            && !outcome.committed.is_empty();
        if restore {
            let committed = outcome.committed.clone();
            self.record_settings(backend, outcome.committed);
            self.restore_startup_values(backend, &committed).await?;
        } else {
            self.record_settings(backend, outcome.committed);
        }
        if self.transaction_settings.read_back_due && status == TransactionStatus::Idle {
            self.transaction_settings.read_back_due = false;
            self.read_back_settings(backend).await?;
        }
        Ok(())
    }

    /// Records the backend's own session-level settings as what every other
    /// backend must have: `RESET ALL`, then each of them.
    async fn read_back_settings(
        &mut self,
        backend: &mut PooledBackend,
    ) -> Result<(), BackendError> {
        let answer = query::run(backend.connection(), SESSION_SETTINGS).await?;
        if let Some(error) = answer.error {
            return Err(BackendError::Refused {
                node: backend.connection().node_name().to_string(),
                code: error.code,
                message: format!("reading the session's settings back: {}", error.message),
            });
        }
        let mut statements = vec![Bytes::from_static(b"RESET ALL")];
        // Not set by the session: what the login gave.
        let mut isolation = DefaultIsolation::LoginDefault;
        for row in &answer.rows {
            if let [Some(name), Some(value)] = row.as_slice()
                && let Some(statement) =
                    set_config_pairs([(name.as_str(), value.as_str())].into_iter(), false)
            {
                if name == "default_transaction_isolation" {
                    isolation = DefaultIsolation::of_setting(value);
                }
                // One statement each: a value another backend refuses does not stop the others.
                statements.push(Bytes::from(statement));
            }
        }
        self.record_settings(backend, statements);
        // The backend's own default isolation, whatever the statements that
        // set it were (`set_config($1, $2, false)`, a rolled back savepoint).
        self.routing.change_default_isolation(isolation);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgrw_core::TxAccess;

    const IDLE: TransactionStatus = TransactionStatus::Idle;
    const IN: TransactionStatus = TransactionStatus::InTransaction;

    fn set(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    fn run(
        settings: &mut TransactionSettings,
        statements: &[(&'static str, StatementClass)],
        class: StatementClass,
        in_transaction: bool,
        status: TransactionStatus,
    ) -> Vec<Bytes> {
        let mut effects = SessionEffects::NONE;
        if statements
            .iter()
            .any(|(_, class)| controls_transaction(*class))
        {
            effects.insert(Effect::TRANSACTION_CONTROL);
        }
        let (texts, classes): (Vec<Bytes>, Vec<StatementClass>) = statements
            .iter()
            .map(|(text, class)| (set(text), *class))
            .unzip();
        settings
            .follow(
                texts,
                &classes,
                (class, &effects),
                in_transaction,
                false,
                status,
            )
            .committed
    }

    const SESSION: StatementClass = StatementClass::Session;

    #[test]
    fn a_set_outside_a_transaction_is_recorded_at_once() {
        let mut settings = TransactionSettings::default();
        let committed = run(
            &mut settings,
            &[("SET a = 1", SESSION)],
            SESSION,
            false,
            IDLE,
        );
        assert_eq!(committed, [set("SET a = 1")]);
    }

    #[test]
    fn a_set_in_a_transaction_is_recorded_when_it_commits() {
        let mut settings = TransactionSettings::default();
        assert!(run(&mut settings, &[("SET a = 1", SESSION)], SESSION, true, IN).is_empty());
        let committed = run(&mut settings, &[], StatementClass::Commit, true, IDLE);
        assert_eq!(committed, [set("SET a = 1")]);
    }

    #[test]
    fn a_set_in_a_transaction_that_rolls_back_is_dropped() {
        let mut settings = TransactionSettings::default();
        run(&mut settings, &[("SET a = 1", SESSION)], SESSION, true, IN);
        assert!(run(&mut settings, &[], StatementClass::Rollback, true, IDLE).is_empty());
        assert!(run(&mut settings, &[], StatementClass::Commit, false, IDLE).is_empty());
    }

    #[test]
    fn the_commit_of_a_failed_transaction_drops_its_sets() {
        let mut settings = TransactionSettings::default();
        run(&mut settings, &[("SET a = 1", SESSION)], SESSION, true, IN);
        run(
            &mut settings,
            &[],
            StatementClass::Write,
            true,
            TransactionStatus::Failed,
        );
        assert!(run(&mut settings, &[], StatementClass::Commit, true, IDLE).is_empty());
    }

    #[test]
    fn a_savepoint_rollback_after_a_set_sends_the_session_to_read_its_settings_back() {
        let mut settings = TransactionSettings::default();
        run(&mut settings, &[("SET a = 1", SESSION)], SESSION, true, IN);
        run(&mut settings, &[], StatementClass::Savepoint, true, IN);
        assert!(run(&mut settings, &[], StatementClass::Commit, true, IDLE).is_empty());
        assert!(settings.read_back_due);
    }

    #[test]
    fn a_whole_transaction_in_one_string_is_followed_statement_by_statement() {
        let mut settings = TransactionSettings::default();
        let begin = StatementClass::Begin(TxAccess::Unspecified);
        let committed = run(
            &mut settings,
            &[
                ("SET a = 0", SESSION),
                ("BEGIN", begin),
                ("SET b = 1", SESSION),
                ("ROLLBACK", StatementClass::Rollback),
                ("BEGIN", begin),
                ("SET c = 2", SESSION),
                ("COMMIT", StatementClass::Commit),
            ],
            StatementClass::Write,
            false,
            IDLE,
        );
        assert_eq!(committed, [set("SET a = 0"), set("SET c = 2")]);
        assert!(!settings.read_back_due);
    }

    #[test]
    fn an_error_in_a_string_that_commits_midway_sends_the_session_to_read_back() {
        let mut settings = TransactionSettings::default();
        let mut effects = SessionEffects::from(Effect::TRANSACTION_CONTROL);
        effects.insert(Effect::SET);
        let outcome = settings.follow(
            vec![set("BEGIN"), set("SET a = 1"), set("COMMIT")],
            &[
                StatementClass::Begin(TxAccess::Unspecified),
                SESSION,
                StatementClass::Commit,
            ],
            (StatementClass::Write, &effects),
            false,
            true,
            IDLE,
        );
        assert!(outcome.committed.is_empty());
        assert!(settings.read_back_due);
    }
}
