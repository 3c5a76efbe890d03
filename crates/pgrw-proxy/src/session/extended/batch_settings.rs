//! The settings statements an extended batch executes, followed through its
//! Executes in order, so that they can be replayed on other backends.

use bytes::Bytes;
use pgrw_core::classification::Effect;

use super::super::Session;
use super::super::client::SessionEnd;
use super::super::dispatch::Unit;
use super::super::settings;
use crate::protocol::Message;
use crate::protocol::frontend::FrontendMessage;

/// What [`Session::settings_in`] finds in a batch.
#[derive(Default)]
pub(super) struct BatchSettings {
    /// The settings statements and transaction control it executes, in order.
    statements: Vec<Bytes>,
    /// It executes a settings statement with bound parameters.
    parameterized: bool,
    /// It executes a transaction control statement.
    transaction_control: bool,
    /// It executes `DISCARD ALL` or `DEALLOCATE ALL`.
    discards_statements: bool,
}

/// The effects that drop every prepared statement of the session.
const DROPS_STATEMENTS: [Effect; 2] = [Effect::DISCARD_ALL, Effect::DEALLOCATE_ALL];

impl Session {
    /// The settings statements a batch executes, with its transaction
    /// control, in the order it executes them: which statement an Execute
    /// runs is followed through its portal's Bind to the statement parsed in
    /// this batch or earlier. A statement parsed and never executed changes
    /// nothing. (A portal bound in an earlier batch is not followed.) A
    /// settings statement run with parameters (`set_config($1, $2, false)`)
    /// cannot be replayed from its text: it is not among them, and the
    /// backend is asked for its settings once the session is idle.
    fn settings_in(&self, batch: &[Message]) -> Result<BatchSettings, SessionEnd> {
        let mut parsed: Vec<(&[u8], &[u8])> = Vec::new();
        let mut portals: Vec<(&[u8], &[u8], bool)> = Vec::new();
        let mut found = BatchSettings::default();
        for message in batch {
            match FrontendMessage::decode(message.view())? {
                FrontendMessage::Parse(parse) => {
                    parsed.retain(|(name, _)| *name != parse.statement);
                    parsed.push((parse.statement, parse.sql));
                }
                FrontendMessage::Bind(bind) => {
                    let sql = match parsed
                        .iter()
                        .rev()
                        .find(|(name, _)| *name == bind.statement)
                    {
                        Some((_, sql)) => Some(*sql),
                        None => self
                            .statements
                            .get(bind.statement)
                            .map(|known| &known.sql[..]),
                    };
                    portals.retain(|(portal, _, _)| *portal != bind.portal);
                    if let Some(sql) = sql {
                        portals.push((bind.portal, sql, bind.parameter_count() > 0));
                    }
                }
                FrontendMessage::Execute { portal, .. } => {
                    let Some((_, sql, with_parameters)) =
                        portals.iter().find(|(name, _, _)| *name == portal)
                    else {
                        continue;
                    };
                    let unit = self.classify(sql);
                    found.discards_statements |= DROPS_STATEMENTS
                        .iter()
                        .any(|effect| unit.effects.contains(*effect));
                    let controls_transaction = settings::controls_transaction(unit.class);
                    found.transaction_control |= controls_transaction;
                    if settings::changes_settings(&unit.effects) && *with_parameters {
                        found.parameterized = true;
                    } else if settings::changes_settings(&unit.effects) || controls_transaction {
                        found
                            .statements
                            .extend(settings::replayable(sql, &self.state.catalog));
                    }
                }
                _ => {}
            }
        }
        Ok(found)
    }

    /// Takes `DISCARD ALL` and `DEALLOCATE ALL` out of the effects of
    /// `unit`, what `batch` runs, unless the batch executes one: a batch
    /// that only parses it (psycopg prepares each statement in a batch of
    /// its own) drops no prepared statement.
    pub(super) fn unless_executed_no_drop(
        &self,
        batch: &[Message],
        unit: &mut Unit,
    ) -> Result<(), SessionEnd> {
        let drops = |unit: &Unit| {
            DROPS_STATEMENTS
                .iter()
                .any(|effect| unit.effects.contains(*effect))
        };
        if drops(unit) && !self.settings_in(batch)?.discards_statements {
            for effect in DROPS_STATEMENTS {
                unit.effects.remove(effect);
            }
        }
        Ok(())
    }

    /// Adds the settings statements `batch` executes to the unit's, when
    /// `unit` changes settings. Transaction control among them makes the
    /// unit a sequence, followed statement by statement as a multi-statement
    /// query string is (a SET between BEGIN and ROLLBACK does not last).
    pub(super) fn follow_settings(
        &mut self,
        batch: &[Message],
        unit: &mut Unit,
    ) -> Result<(), SessionEnd> {
        if !settings::changes_settings(&unit.effects) {
            return Ok(());
        }
        let found = self.settings_in(batch)?;
        if found.parameterized {
            self.transaction_settings.read_back_when_idle();
        }
        if found.transaction_control {
            unit.effects.insert(Effect::TRANSACTION_CONTROL);
        }
        self.unit_settings.extend(found.statements);
        Ok(())
    }
}
