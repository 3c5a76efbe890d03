//! What a batch runs, for routing: each statement classified, the batch's
//! unit the strictest of them.

use std::collections::HashMap;

use pgrw_core::StatementClass;
use pgrw_core::sql::classify::{Classification, classify};

use crate::protocol::Message;
use crate::protocol::frontend::{Bind, FrontendMessage, Target};
use crate::session::Session;
use crate::session::client::SessionEnd;
use crate::session::dispatch::{Unit, reads_session_backend};

impl Session {
    /// What the batch runs, for routing: the strictest of its statements.
    pub(super) fn batch_unit(&self, batch: &[Message]) -> Result<Unit, SessionEnd> {
        let mut parsed: HashMap<&[u8], Unit> = HashMap::new();
        let mut unit: Option<Unit> = None;
        for message in batch {
            let statement_unit = match FrontendMessage::decode(message.view())? {
                FrontendMessage::Parse(parse) => {
                    let statement_unit = self.classify(parse.sql);
                    parsed.insert(parse.statement, statement_unit);
                    Some(statement_unit)
                }
                FrontendMessage::Bind(Bind { statement, .. })
                | FrontendMessage::Describe {
                    target: Target::Statement,
                    name: statement,
                } => parsed
                    .get(statement)
                    .copied()
                    .or_else(|| self.statements.get(statement).map(|known| known.unit)),
                _ => None,
            };
            if let Some(statement_unit) = statement_unit {
                unit = Some(match unit {
                    None => statement_unit,
                    Some(so_far) => strictest(so_far, statement_unit),
                });
            }
        }
        let mut unit = unit.unwrap_or(Unit {
            class: StatementClass::Empty,
            hint: None,
            effects: pgrw_core::classification::SessionEffects::NONE,
            transaction_time: false,
            reads_session_backend: false,
            shows_backend_state: false,
        });
        self.unless_executed_no_drop(batch, &mut unit)?;
        Ok(unit)
    }

    /// The unit of one statement's SQL.
    pub(super) fn classify(&self, sql: &[u8]) -> Unit {
        let watched = self.watches_transaction_time().then_some(sql);
        unit_of(&classify(sql, self.catalog.get()), watched)
    }
}

/// The unit of a classified statement; `sql` is given when its reads of the
/// transaction's start time matter (see [`Session::watches_transaction_time`]).
pub(super) fn unit_of(classification: &Classification, sql: Option<&[u8]>) -> Unit {
    Unit {
        class: classification.class,
        hint: classification.hint,
        effects: classification.effects,
        transaction_time: classification.class == StatementClass::Read
            && sql.is_some_and(Session::shows_transaction_time),
        reads_session_backend: reads_session_backend(classification),
        shows_backend_state: classification.reads_backend_state,
    }
}

/// The class that satisfies both: equal classes stay, a read gives way to
/// anything, and anything else mixed is a write (the primary).
pub(super) fn strictest(a: Unit, b: Unit) -> Unit {
    let class = match (a.class, b.class) {
        (x, y) if x == y => x,
        (StatementClass::Read | StatementClass::Empty, other)
        | (other, StatementClass::Read | StatementClass::Empty) => other,
        _ => StatementClass::Write,
    };
    let hint = match (a.hint, b.hint) {
        (Some(pgrw_core::RouteHint::Primary), _) | (_, Some(pgrw_core::RouteHint::Primary)) => {
            Some(pgrw_core::RouteHint::Primary)
        }
        (Some(hint), _) | (_, Some(hint)) => Some(hint),
        (None, None) => None,
    };
    Unit {
        class,
        hint,
        effects: a.effects.union(b.effects),
        transaction_time: a.transaction_time || b.transaction_time,
        // Only if nothing else in either needs the primary.
        reads_session_backend: (a.reads_session_backend || b.reads_session_backend)
            && [a, b].iter().all(|unit| {
                unit.reads_session_backend
                    || matches!(unit.class, StatementClass::Read | StatementClass::Empty)
            }),
        shows_backend_state: a.shows_backend_state || b.shows_backend_state,
    }
}
