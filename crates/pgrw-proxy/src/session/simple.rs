//! The simple query protocol: classify, route, forward, relay until
//! ReadyForQuery. The proxy's own settings (`SHOW pgrw.route`, `SET
//! pgrw.min_lsn`, …: [`super::pgrw_commands`]) are answered by the proxy itself. A
//! fast-path FunctionCall is forwarded the same way, as a write.

use pgrw_core::classification::Effect;
use pgrw_core::sql::classify::classify;

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
        if let Some(command) = pgrw_command(sql) {
            self.pgrw_command(command);
            return Ok(());
        }
        let classification = classify(sql, self.catalog.get());
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
        let mut unit = Unit {
            class: classification.class,
            hint: classification.hint,
            effects: classification.effects,
            transaction_time: classification.class == pgrw_core::StatementClass::Read
                && self.routing.deferred.is_some()
                && Session::shows_transaction_time(sql),
            reads_session_backend: reads_session_backend(&classification),
        };
        self.recall_shape(sql, &mut unit);
        self.unit_settings.clear();
        if settings::changes_settings(&classification.effects) {
            self.unit_settings = settings::replayable(sql, &self.state.catalog);
        }
        self.forward_unit(message, unit).await
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
    let mut text = sql.trim_ascii();
    while let Some(rest) = text.strip_suffix(b";") {
        text = rest.trim_ascii_end();
    }
    let mut words = text.splitn(2, u8::is_ascii_whitespace);
    if !words.next()?.eq_ignore_ascii_case(b"deallocate") {
        return None;
    }
    let mut rest = words.next()?.trim_ascii_start();
    if let Some((first, after)) = rest.split_at_checked(7)
        && first.eq_ignore_ascii_case(b"prepare")
        && after.first().is_some_and(u8::is_ascii_whitespace)
    {
        rest = after.trim_ascii_start();
    }
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
    if rest.is_empty() || !plain || rest.eq_ignore_ascii_case(b"all") {
        return None;
    }
    Some(rest.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::deallocated_name;

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
