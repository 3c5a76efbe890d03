//! The simple query protocol: classify, route, forward, relay until
//! ReadyForQuery. The proxy's own settings (`SHOW pgrw.route`, `SET
//! pgrw.min_lsn`, …: [`super::pgrw_commands`]) are answered by the proxy itself. A
//! fast-path FunctionCall is forwarded the same way, as a write.

use bytes::Bytes;
use pgrw_core::classification::Effect;
use pgrw_core::sql::classify::classify;
use pgrw_core::sql::transaction::sets_serializable;
use pgrw_core::{StatementClass, TxAccess};

use super::Session;
use super::client::SessionEnd;
use super::dispatch::{Unit, reads_session_backend};
use super::pgrw_commands::pgrw_command;
use super::relay::{Exchange, Relayed};
use super::settings;
use crate::protocol::Message;
use crate::protocol::backend::encode_command_complete;
use crate::protocol::frontend::FrontendMessage;

impl Session {
    /// Runs one Query message.
    pub(super) async fn simple_query(&mut self, message: Message) -> Result<(), SessionEnd> {
        let FrontendMessage::Query { sql } = FrontendMessage::decode(message.view())? else {
            unreachable!("called for Query messages only");
        };
        self.end_open_batch().await?;
        if let Some(command) = pgrw_command(sql) {
            self.pgrw_command(command);
            return Ok(());
        }
        let classification = classify(sql, self.catalog.get());
        if let Some(database) = dropped_database(sql)
            && let Ok(database) = String::from_utf8(database)
        {
            // PostgreSQL refuses to drop a database anyone is connected to:
            // the proxy's idle connections to it must not be those.
            self.state.pools.close_idle_to(&database);
        }
        if self.answer_deferred(sql, classification.class) {
            return Ok(());
        }
        if classification.effects.contains(Effect::DEALLOCATE)
            && let Some(name) = deallocated_name(sql)
            && self.statements.remove(name.as_slice()).is_some()
        {
            // A protocol-level statement (psycopg deallocates its prepared
            // statements this way): backends keep the shared statement, the
            // client forgets it, as for a Close.
            encode_command_complete(&mut self.client.out, b"DEALLOCATE");
            self.ready();
            return Ok(());
        }
        let fresh_read_only = self.fresh_read_only.take();
        let moves = matches!(classification.class, StatementClass::SetTransaction(_))
            && sets_serializable(sql);
        if moves && let Some(begin) = fresh_read_only.clone() {
            self.move_read_only_to_primary(begin).await;
        }
        let mut unit = Unit {
            class: classification.class,
            hint: classification.hint,
            effects: classification.effects,
            transaction_time: classification.class == StatementClass::Read
                && self.routing.deferred.is_some()
                && Session::shows_transaction_time(sql),
            reads_session_backend: reads_session_backend(&classification),
            shows_backend_state: classification.reads_backend_state,
        };
        self.recall_shape(sql, &mut unit);
        self.unit_settings.clear();
        if settings::changes_settings(&classification.effects) {
            self.unit_settings = settings::replayable(sql, &self.state.catalog);
        }
        let begins_read_only = (classification.class == StatementClass::Begin(TxAccess::ReadOnly))
            .then(|| Bytes::copy_from_slice(sql));
        let keeps_fresh =
            matches!(classification.class, StatementClass::SetTransaction(_)) && !moves;
        self.forward_unit(message, unit).await?;
        // Until a statement there takes a snapshot (only SET TRANSACTION
        // does not), a read-only transaction on a replica may still move.
        let on_replica = self.routing.deferred.is_none()
            && self.routing.transaction.is_some_and(|transaction| {
                self.state.topology().writable_primary() != Ok(transaction.node)
            });
        if on_replica {
            if begins_read_only.is_some() {
                self.fresh_read_only = begins_read_only;
            } else if keeps_fresh {
                self.fresh_read_only = fresh_read_only;
            }
        }
        Ok(())
    }

    /// Runs one FunctionCall (the fast-path interface libpq's large-object
    /// functions use: `lo_import`, `lo_read`, …). The function is known only
    /// by OID, so it is routed as a write: inside a transaction to its node,
    /// outside one to the primary.
    pub(super) async fn function_call(&mut self, message: Message) -> Result<(), SessionEnd> {
        // A malformed one ends this session (08P01) before it reaches a backend.
        FrontendMessage::decode(message.view())?;
        self.unit_settings.clear();
        let unit = Unit {
            class: pgrw_core::StatementClass::Write,
            hint: None,
            effects: pgrw_core::classification::SessionEffects::NONE,
            transaction_time: false,
            reads_session_backend: false,
            shows_backend_state: false,
        };
        self.forward_unit(message, unit).await
    }

    /// Routes `unit`, sends `message` (a whole unit of work ended by one
    /// ReadyForQuery) as it is, relays the answer and settles the session.
    /// A read a replica refuses before answering anything because only the
    /// primary can run it is sent again, to the primary (`super::reroute`).
    async fn forward_unit(&mut self, message: Message, mut unit: Unit) -> Result<(), SessionEnd> {
        let mut may_rerun = true;
        loop {
            let Some(mut backend) = self.acquire(&unit).await else {
                self.ready();
                return Ok(());
            };
            let node = backend.node();
            if let Err(error) = backend.connection().send(message.as_bytes()).await {
                self.backend_failed(backend, error.to_string());
                return Ok(());
            }
            let exchange = Exchange {
                ready_left: 1,
                rerunnable: may_rerun && self.may_rerun(&unit, node),
                ..Exchange::default()
            };
            match self.relay(backend, exchange).await? {
                Relayed::Ready(backend, ready) => return self.settle(backend, &unit, ready).await,
                Relayed::Failed(backend, error) => {
                    self.backend_lost(backend, error);
                    return Ok(());
                }
                Relayed::Flushed(backend) => {
                    // Only extended batches end without ReadyForQuery.
                    self.backend_failed(backend, "the node ended a query early".to_string());
                    return Ok(());
                }
                Relayed::Rerun(backend, reason) => {
                    self.release_refused(backend).await?;
                    let sql = match FrontendMessage::decode(message.view())? {
                        FrontendMessage::Query { sql } => sql,
                        _ => &[],
                    };
                    unit = self.note_rerun(reason, sql, node, &unit);
                    may_rerun = false;
                }
            }
        }
    }
}

/// The statement name of `DEALLOCATE [PREPARE] name` (folded to lower case
/// unless quoted, as PostgreSQL reads an identifier); `None` for `ALL` or
/// anything else.
fn deallocated_name(sql: &[u8]) -> Option<Vec<u8>> {
    let text = one_statement(sql);
    let mut words = text.splitn(2, u8::is_ascii_whitespace);
    if !words.next()?.eq_ignore_ascii_case(b"deallocate") {
        return None;
    }
    let mut rest = words.next()?.trim_ascii_start();
    if let Some(after) = after_word(rest, b"prepare") {
        rest = after;
    }
    if rest.eq_ignore_ascii_case(b"all") {
        return None;
    }
    name_of(rest)
}

/// The database a `DROP DATABASE [IF EXISTS] name [[WITH] (FORCE)]` drops.
fn dropped_database(sql: &[u8]) -> Option<Vec<u8>> {
    let mut rest = after_word(after_word(one_statement(sql), b"drop")?, b"database")?;
    if let Some(after) = after_word(rest, b"if").and_then(|rest| after_word(rest, b"exists")) {
        rest = after;
    }
    // The options after the name, if any (`WITH (FORCE)`, `(FORCE)`).
    let end = if rest.starts_with(b"\"") {
        let mut at = 1;
        loop {
            at += rest.get(at..)?.iter().position(|byte| *byte == b'"')? + 1;
            if rest.get(at) != Some(&b'"') {
                break at;
            }
            at += 1; // A doubled quote inside the name.
        }
    } else {
        rest.iter()
            .position(|byte| byte.is_ascii_whitespace() || *byte == b'(')
            .unwrap_or(rest.len())
    };
    name_of(rest.get(..end)?)
}

/// `sql` without the whitespace around it and its trailing semicolons.
fn one_statement(sql: &[u8]) -> &[u8] {
    let mut text = sql.trim_ascii();
    while let Some(rest) = text.strip_suffix(b";") {
        text = rest.trim_ascii_end();
    }
    text
}

/// What follows `word` (ASCII, any case) and the whitespace after it, when
/// `text` starts with it as a whole word.
fn after_word<'a>(text: &'a [u8], word: &[u8]) -> Option<&'a [u8]> {
    let (first, after) = text.split_at_checked(word.len())?;
    (first.eq_ignore_ascii_case(word) && after.first().is_some_and(u8::is_ascii_whitespace))
        .then(|| after.trim_ascii_start())
}

/// The name one SQL identifier (`"…"` or plain) denotes, as PostgreSQL
/// folds it; `None` if `rest` is not exactly one identifier.
fn name_of(rest: &[u8]) -> Option<Vec<u8>> {
    if let Some(quoted) = rest.strip_prefix(b"\"") {
        let inner = quoted.strip_suffix(b"\"")?;
        let mut name = Vec::with_capacity(inner.len());
        let mut bytes = inner.iter().peekable();
        while let Some(&byte) = bytes.next() {
            if byte == b'"' {
                // Inside a quoted identifier only a doubled quote may appear.
                if bytes.next() != Some(&b'"') {
                    return None;
                }
            }
            name.push(byte);
        }
        return Some(name);
    }
    let plain = rest
        .iter()
        .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'_' || *byte == b'$');
    if rest.is_empty() || !plain {
        return None;
    }
    Some(rest.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::{deallocated_name, dropped_database};

    #[test]
    fn the_database_a_drop_database_names_is_read_as_postgresql_reads_it() {
        let name = |sql: &str| dropped_database(sql.as_bytes());
        assert_eq!(name("DROP DATABASE testdb"), Some(b"testdb".to_vec()));
        assert_eq!(
            name("drop database if exists TestDB;"),
            Some(b"testdb".to_vec())
        );
        assert_eq!(
            name("DROP DATABASE \"My \"\"db\"\"\" WITH (FORCE)"),
            Some(b"My \"db\"".to_vec())
        );
        assert_eq!(name("DROP DATABASE x(FORCE)"), Some(b"x".to_vec()));
        assert_eq!(name("DROP DATABASE"), None);
        assert_eq!(name("DROP TABLE testdb"), None);
        assert_eq!(name("DROP DATABASE a; SELECT 1"), None);
    }

    #[test]
    fn the_name_of_a_deallocate_is_read_as_postgresql_reads_it() {
        let name = |sql: &str| deallocated_name(sql.as_bytes());
        assert_eq!(name("DEALLOCATE _pg3_0"), Some(b"_pg3_0".to_vec()));
        assert_eq!(name("deallocate prepare  S_1 ;"), Some(b"s_1".to_vec()));
        assert_eq!(
            name("DEALLOCATE \"My \"\"x\"\"\""),
            Some(b"My \"x\"".to_vec())
        );
        assert_eq!(name("DEALLOCATE prepared"), Some(b"prepared".to_vec()));
        assert_eq!(name("DEALLOCATE ALL"), None);
        assert_eq!(name("DEALLOCATE PREPARE ALL"), None);
        assert_eq!(name("DEALLOCATE a; SELECT 1"), None);
        assert_eq!(name("SELECT 1"), None);
    }
}
