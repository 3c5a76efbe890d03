//! The proxy's own settings, answered without a backend over the simple
//! query protocol: `SHOW pgrw.route` (where the last statement ran and why),
//! `SHOW pgrw.lsn` (the causal-consistency token: the position of this
//! connection's last write, or of the token it was given), `SET pgrw.min_lsn
//! = '…'` (later reads see that position), `SET pgrw.route = primary |
//! replica | auto`, and `RESET` / `SHOW` of each.
//!
//! Recognised on the query's bytes, so a query that is not one costs a look
//! at its first word.

use pgrw_core::Lsn;
use pgrw_core::route::{ConsistencyToken, RouteMode};

use super::Session;
use super::client::SessionEnd;
use crate::protocol::Message;
use crate::protocol::backend::{
    TEXT_OID, encode_command_complete, encode_data_row, encode_row_description,
};
use crate::protocol::frontend::FrontendMessage;
use crate::protocol::sqlstate;

/// A setting of the proxy's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Setting {
    /// `pgrw.route`.
    Route,
    /// `pgrw.lsn` (read only).
    Lsn,
    /// `pgrw.min_lsn`.
    MinLsn,
}

impl Setting {
    /// The setting's name, as clients write it.
    fn name(self) -> &'static str {
        match self {
            Setting::Route => "pgrw.route",
            Setting::Lsn => "pgrw.lsn",
            Setting::MinLsn => "pgrw.min_lsn",
        }
    }
}

/// A command on the proxy's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PgrwCommand<'a> {
    /// `SHOW setting`.
    Show(Setting),
    /// `SET [SESSION] setting {= | TO} value` (the value unquoted).
    Set(Setting, &'a [u8]),
    /// `RESET setting`, `SET setting TO DEFAULT`.
    Reset(Setting),
}

/// The command `sql` is, if it is one (any case, optional semicolons).
pub(super) fn pgrw_command(sql: &[u8]) -> Option<PgrwCommand<'_>> {
    let first = sql.trim_ascii_start().first()?;
    if !matches!(first, b's' | b'S' | b'r' | b'R') {
        return None;
    }
    let mut text = sql.trim_ascii();
    while let Some(rest) = text.strip_suffix(b";") {
        text = rest.trim_ascii_end();
    }
    let words = words(text)?;
    let setting = |word: &[u8]| {
        [Setting::Route, Setting::Lsn, Setting::MinLsn]
            .into_iter()
            .find(|setting| word.eq_ignore_ascii_case(setting.name().as_bytes()))
    };
    let is = |word: &[u8], keyword: &[u8]| word.eq_ignore_ascii_case(keyword);
    match words.as_slice() {
        [show, name] if is(show, b"show") => setting(name).map(PgrwCommand::Show),
        [reset, name] if is(reset, b"reset") => setting(name).map(PgrwCommand::Reset),
        [set, rest @ ..] if is(set, b"set") => {
            let rest = match rest {
                [session, rest @ ..] if is(session, b"session") => rest,
                rest => rest,
            };
            let [name, assign, value] = rest else {
                return None;
            };
            let setting = setting(name)?;
            if !(is(assign, b"=") || is(assign, b"to")) {
                return None;
            }
            if is(value, b"default") {
                return Some(PgrwCommand::Reset(setting));
            }
            let value = value
                .strip_prefix(b"'")
                .and_then(|quoted| quoted.strip_suffix(b"'"))
                .unwrap_or(value);
            Some(PgrwCommand::Set(setting, value))
        }
        _ => None,
    }
}

/// `text` split into words at whitespace, `=` standing alone; a quoted
/// string is one word. `None` for a string with a quote inside it (no value
/// of these settings has one): the backend answers such a query.
fn words(text: &[u8]) -> Option<Vec<&[u8]>> {
    let mut words = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let byte = text[at];
        if byte.is_ascii_whitespace() {
            at += 1;
        } else if byte == b'=' {
            words.push(&text[at..at + 1]);
            at += 1;
        } else if byte == b'\'' {
            let end = at + 1 + text[at + 1..].iter().position(|b| *b == b'\'')?;
            if text.get(end + 1) == Some(&b'\'') {
                return None;
            }
            words.push(&text[at..=end]);
            at = end + 1;
        } else {
            let len = text[at..]
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b'=' || *b == b'\'')
                .unwrap_or(text.len() - at);
            words.push(&text[at..at + len]);
            at += len;
        }
    }
    Some(words)
}

impl Session {
    /// Whether `batch` (extended protocol) parses one of the proxy's own
    /// commands: they are answered over the simple protocol only, so the
    /// batch is refused with `0A000` (an ErrorResponse is written) rather
    /// than let a node take `SET pgrw.min_lsn` as a setting of its own and
    /// the client believe its token is honoured.
    pub(super) fn refuses_pgrw_commands(&mut self, batch: &[Message]) -> Result<bool, SessionEnd> {
        for message in batch {
            if let FrontendMessage::Parse(parse) = FrontendMessage::decode(message.view())?
                && pgrw_command(parse.sql).is_some()
            {
                self.error(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "pgrw: SHOW and SET of pgrw.* settings are answered over the simple query \
                     protocol only; send them as a simple query (psql, batch_execute, \
                     simple_query, a query without parameters in psycopg2)",
                );
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Runs one of the proxy's own commands and ends it with ReadyForQuery.
    pub(super) fn pgrw_command(&mut self, command: PgrwCommand<'_>) {
        match command {
            PgrwCommand::Show(setting) => {
                let (name, value) = self.show(setting);
                self.single_row(name, &value);
                encode_command_complete(&mut self.client.out, b"SHOW");
            }
            PgrwCommand::Set(setting, value) => match self.set(setting, value) {
                Ok(()) => encode_command_complete(&mut self.client.out, b"SET"),
                Err((code, message)) => self.error(code, message),
            },
            PgrwCommand::Reset(setting) => match self.reset(setting) {
                Ok(()) => encode_command_complete(&mut self.client.out, b"RESET"),
                Err(message) => self.error(sqlstate::CANT_CHANGE_RUNTIME_PARAM, message),
            },
        }
        self.ready();
    }

    fn show(&self, setting: Setting) -> (&'static [u8], String) {
        let value = match setting {
            Setting::Route => self
                .last_route
                .as_ref()
                .map(|(route, topology)| route.explain(topology).to_string())
                .unwrap_or_else(|| "no statement routed yet".to_string()),
            Setting::Lsn => self.routing.token().to_string(),
            Setting::MinLsn => self.routing.min_lsn.to_string(),
        };
        (setting.name().as_bytes(), value)
    }

    /// Sets `setting` to `value`, or says why not (SQLSTATE and message).
    fn set(&mut self, setting: Setting, value: &[u8]) -> Result<(), (&'static str, String)> {
        let text = String::from_utf8_lossy(value);
        let invalid = |expected: &str| {
            let message = format!(
                "invalid value for parameter \"{}\": \"{text}\" ({expected})",
                setting.name()
            );
            (sqlstate::INVALID_PARAMETER_VALUE, message)
        };
        match setting {
            Setting::MinLsn => {
                let token: ConsistencyToken = text.parse().map_err(|_| {
                    invalid("a WAL position such as 0/3000060, as SHOW pgrw.lsn gives")
                })?;
                self.routing.require(token);
            }
            Setting::Route => {
                self.routing.route_mode = text
                    .parse::<RouteMode>()
                    .map_err(|_| invalid("primary, replica or auto"))?;
            }
            Setting::Lsn => {
                let message = "parameter \"pgrw.lsn\" cannot be set: it is this connection's \
                               last write; set pgrw.min_lsn on the connection that must see it";
                return Err((sqlstate::CANT_CHANGE_RUNTIME_PARAM, message.to_string()));
            }
        }
        Ok(())
    }

    fn reset(&mut self, setting: Setting) -> Result<(), String> {
        match setting {
            Setting::MinLsn => self.routing.min_lsn = Lsn::INVALID,
            Setting::Route => self.routing.route_mode = RouteMode::Auto,
            Setting::Lsn => return Err("parameter \"pgrw.lsn\" cannot be reset".to_string()),
        }
        Ok(())
    }

    /// Writes a RowDescription of one text column `name` and one DataRow.
    fn single_row(&mut self, name: &[u8], value: &str) {
        let name = String::from_utf8_lossy(name);
        encode_row_description(&mut self.client.out, &[(&name, TEXT_OID)]);
        encode_data_row(&mut self.client.out, [Some(value)].into_iter());
    }
}

#[cfg(test)]
mod tests {
    use super::{PgrwCommand, Setting, pgrw_command};

    #[test]
    fn the_proxys_settings_are_recognised_in_any_case_and_spacing() {
        assert_eq!(
            pgrw_command(b"SHOW pgrw.route"),
            Some(PgrwCommand::Show(Setting::Route))
        );
        assert_eq!(
            pgrw_command(b"  show PGRW.LSN ;  "),
            Some(PgrwCommand::Show(Setting::Lsn))
        );
        assert_eq!(
            pgrw_command(b"SET pgrw.min_lsn = '0/3000060'"),
            Some(PgrwCommand::Set(Setting::MinLsn, b"0/3000060"))
        );
        assert_eq!(
            pgrw_command(b"set session pgrw.min_lsn='0/1';"),
            Some(PgrwCommand::Set(Setting::MinLsn, b"0/1"))
        );
        assert_eq!(
            pgrw_command(b"SET pgrw.route TO primary"),
            Some(PgrwCommand::Set(Setting::Route, b"primary"))
        );
        assert_eq!(
            pgrw_command(b"SET pgrw.route TO DEFAULT"),
            Some(PgrwCommand::Reset(Setting::Route))
        );
        assert_eq!(
            pgrw_command(b"RESET pgrw.min_lsn"),
            Some(PgrwCommand::Reset(Setting::MinLsn))
        );
    }

    #[test]
    fn other_statements_are_not_the_proxys() {
        for sql in [
            &b"SHOW pgrw.route; SELECT 1"[..],
            b"SELECT 1",
            b"SET search_path = public",
            b"SET LOCAL pgrw.route = primary",
            b"SHOW pgrw.other",
            b"SET pgrw.min_lsn = 'a''b'",
            b"RESET ALL",
            b"",
        ] {
            assert_eq!(pgrw_command(sql), None, "{}", String::from_utf8_lossy(sql));
        }
    }
}
