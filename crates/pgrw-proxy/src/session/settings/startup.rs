//! Settings a client sends in its StartupMessage: every parameter that is not
//! `user`, `database`, `replication`, `options` or a `_pq_.` protocol option
//! is a setting (`application_name`, `DateStyle`, `TimeZone`,
//! `client_encoding`, `search_path`, …), and so is each `-c name=value` or
//! `--name=value` in `options`.
//!
//! PostgreSQL applies them at login, before the session's first statement,
//! and refuses the login (FATAL) if one is unknown or invalid. Under pooling
//! they are the session's first recorded setting: checked once at login on a
//! node (whose error becomes the client's FATAL, and whose answer gives the
//! values ParameterStatus reports), then replayed — in one statement — on
//! every backend the client uses, except those a backend already has.

use bytes::Bytes;
use pgrw_core::classification::DefaultIsolation;

use super::query;
use super::reset::reset_by;
use crate::backend::BackendError;
use crate::pool::PooledBackend;
use crate::protocol::backend::{
    NoticeFields, Severity, encode_error_response, encode_parameter_status,
};
use crate::protocol::sqlstate;
use crate::session::Session;
use crate::session::client::SessionEnd;

/// One setting from the StartupMessage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StartupSetting {
    /// The setting's name, as the client spelled it.
    pub(crate) name: String,
    /// Its value, as sent (PostgreSQL applies it like `set_config` would).
    pub(crate) value: String,
}

/// Why a StartupMessage's parameters cannot be taken: the FATAL error's code
/// and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StartupRefusal {
    /// The SQLSTATE.
    pub(crate) code: &'static str,
    /// What to tell the client.
    pub(crate) message: String,
}

/// What PostgreSQL answers a server switch it does not know in `options`.
const SYNTAX_ERROR: &str = "42601";

/// Parameters of a StartupMessage that are not settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "options", "replication"];

/// The settings of a StartupMessage, in the order PostgreSQL applies them
/// (`options` switches first, then the other parameters); a name set twice
/// keeps its last value.
pub(crate) fn startup_settings(
    params: &[(String, String)],
) -> Result<Vec<StartupSetting>, StartupRefusal> {
    let mut settings = Vec::new();
    if let Some((_, options)) = params.iter().find(|(name, _)| name == "options") {
        settings = option_settings(options)?;
    }
    settings.extend(
        params
            .iter()
            .filter(|(name, _)| !NOT_SETTINGS.contains(&name.as_str()))
            .filter(|(name, _)| !name.starts_with("_pq_."))
            .map(|(name, value)| StartupSetting {
                name: name.clone(),
                value: value.clone(),
            }),
    );
    let mut unique: Vec<StartupSetting> = Vec::with_capacity(settings.len());
    for setting in settings {
        unique.retain(|kept| !kept.name.eq_ignore_ascii_case(&setting.name));
        unique.push(setting);
    }
    Ok(unique)
}

/// Whether the StartupMessage asks for a replication connection (PostgreSQL's
/// `replication=true|database`); `false`, `off`, `no` and `0` do not.
pub(crate) fn asks_for_replication(params: &[(String, String)]) -> bool {
    params.iter().any(|(name, value)| {
        name == "replication"
            && !["false", "off", "no", "0", "f", "n"]
                .iter()
                .any(|off| value.trim().eq_ignore_ascii_case(off))
    })
}

/// The settings in an `options` string: `-c name=value`, `-cname=value` and
/// `--name=value` (dashes in the name read as underscores, as PostgreSQL
/// does). Other server switches are refused: pgrw cannot apply them.
fn option_settings(options: &str) -> Result<Vec<StartupSetting>, StartupRefusal> {
    let words = split_options(options);
    let mut settings = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let assignment = if let Some(long) = word.strip_prefix("--") {
            long.to_string()
        } else if word == "-c" {
            match words.next() {
                Some(next) => next.clone(),
                None => return Err(invalid_option(word, "-c needs name=value after it")),
            }
        } else if let Some(short) = word.strip_prefix("-c") {
            short.to_string()
        } else {
            return Err(invalid_option(
                word,
                "pgrw takes only -c name=value and --name=value in options",
            ));
        };
        let Some((name, value)) = assignment.split_once('=') else {
            return Err(invalid_option(word, "a setting needs name=value"));
        };
        if name.is_empty() {
            return Err(invalid_option(word, "a setting needs a name"));
        }
        settings.push(StartupSetting {
            name: name.replace('-', "_"),
            value: value.to_string(),
        });
    }
    Ok(settings)
}

fn invalid_option(word: &str, why: &str) -> StartupRefusal {
    StartupRefusal {
        code: SYNTAX_ERROR,
        message: format!("invalid command-line argument for server process: {word} ({why})"),
    }
}

/// Splits `options` into words as libpq and PostgreSQL do: at unescaped
/// whitespace, a backslash taking the next character literally.
fn split_options(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = options.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_ascii_whitespace()) {
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    word.push(escaped);
                }
            } else {
                word.push(c);
            }
        }
        words.push(word);
    }
}

/// A string literal that reads the same whatever `standard_conforming_strings` is.
fn literal(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 3);
    quoted.push_str("E'");
    for c in text.chars() {
        match c {
            '\'' => quoted.push_str("''"),
            '\\' => quoted.push_str("\\\\"),
            _ => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

/// `SELECT pg_catalog.set_config(name, value, local), …` for `settings`.
fn set_config_statement<'a>(
    settings: impl Iterator<Item = &'a StartupSetting>,
    local: bool,
) -> Option<String> {
    set_config_pairs(
        settings.map(|setting| (setting.name.as_str(), setting.value.as_str())),
        local,
    )
}

/// `SELECT pg_catalog.set_config(name, value, local), …` for `(name, value)`
/// pairs; `None` for no pair.
pub(super) fn set_config_pairs<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    local: bool,
) -> Option<String> {
    let calls: Vec<String> = pairs
        .map(|(name, value)| {
            format!(
                "pg_catalog.set_config({}, {}, {local})",
                literal(name),
                literal(value)
            )
        })
        .collect();
    (!calls.is_empty()).then(|| format!("SELECT {}", calls.join(", ")))
}

/// The session's startup settings, and the values the node reports for them.
#[derive(Debug, Default)]
pub(crate) struct StartupSettings {
    settings: Vec<StartupSetting>,
    /// Per setting: the name and value its ParameterStatus carries, when
    /// PostgreSQL reports that setting; `None` until checked, or not reported.
    reported: Vec<Option<(String, String)>>,
    /// The last [`StartupSettings::statement_for`] answer and the login
    /// parameters it was for: every backend of a cluster usually reports the
    /// same ones, so a statement is built once per session, not per checkout.
    last_statement: Option<(LoginParameters, Option<Bytes>)>,
}

/// What a node reported at login: ParameterStatus names and values.
type LoginParameters = Vec<(String, String)>;

impl StartupSettings {
    /// The settings of a client's StartupMessage, not yet checked.
    pub(crate) fn new(settings: Vec<StartupSetting>) -> StartupSettings {
        StartupSettings {
            reported: vec![None; settings.len()],
            settings,
            last_statement: None,
        }
    }

    /// [`StartupSettings::statement_for`], remembered for the last
    /// `parameters` seen.
    pub(crate) fn statement_for_backend(
        &mut self,
        parameters: &[(String, String)],
    ) -> Option<Bytes> {
        if let Some((known, statement)) = &self.last_statement
            && known.as_slice() == parameters
        {
            return statement.clone();
        }
        let statement = self.statement_for(parameters);
        self.last_statement = Some((parameters.to_vec(), statement.clone()));
        statement
    }

    /// The default isolation the client's startup settings ask for, if any
    /// (`-c default_transaction_isolation=serializable`).
    pub(crate) fn default_isolation(&self) -> Option<DefaultIsolation> {
        self.settings
            .iter()
            .rev()
            .find(|setting| {
                setting
                    .name
                    .eq_ignore_ascii_case("default_transaction_isolation")
            })
            .map(|setting| DefaultIsolation::of_setting(&setting.value))
    }

    /// Whether the client sent no setting.
    pub(crate) fn is_empty(&self) -> bool {
        self.settings.is_empty()
    }

    /// One statement that applies them all, for the session's first recorded setting.
    pub(crate) fn statement(&self) -> Option<Bytes> {
        set_config_statement(self.settings.iter(), false).map(Bytes::from)
    }

    /// The statement that applies them to a backend whose login reported
    /// `parameters`: a reported setting that backend already has is left out.
    /// `None`: the backend needs none.
    pub(crate) fn statement_for(&self, parameters: &[(String, String)]) -> Option<Bytes> {
        let lacking = self
            .settings
            .iter()
            .zip(&self.reported)
            .filter(|(_, reported)| match reported {
                Some((name, value)) => !parameters
                    .iter()
                    .any(|(known, had)| known == name && had == value),
                None => true,
            })
            .map(|(setting, _)| setting);
        set_config_statement(lacking, false).map(Bytes::from)
    }

    /// The value to announce in ParameterStatus for `name` (a reported
    /// setting's name as the node spells it), if the client set it.
    pub(crate) fn reported(&self, name: &str) -> Option<&str> {
        self.reported
            .iter()
            .flatten()
            .rev()
            .find(|(reported, _)| reported == name)
            .map(|(_, value)| value.as_str())
    }

    /// Settings whose node-reported value is known from `server` (the
    /// parameters a node reports at login) without asking: a reported setting
    /// whose value is already the node's, letter for letter. Returns whether
    /// every setting is known that way.
    fn known_from(&mut self, server: &[(String, String)]) -> bool {
        let mut all = true;
        self.last_statement = None;
        for (setting, reported) in self.settings.iter().zip(self.reported.iter_mut()) {
            match server
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&setting.name))
            {
                Some((name, value)) if *value == setting.value => {
                    *reported = Some((name.clone(), value.clone()));
                }
                _ => all = false,
            }
        }
        all
    }
}

impl Session {
    /// After `statements` were recorded from an idle `backend`: a `RESET` of
    /// a startup setting (or `RESET ALL`, `DISCARD ALL`) leaves it at its
    /// startup value, as on a direct connection. The value is set again on
    /// `backend` at once (its ParameterStatus reaches the client before
    /// ReadyForQuery) and recorded for the others.
    pub(in crate::session) async fn restore_startup_values(
        &mut self,
        backend: &mut PooledBackend,
        statements: &[Bytes],
    ) -> Result<(), BackendError> {
        let reset = reset_by(&self.startup.settings, statements);
        let Some(sql) = set_config_statement(reset.into_iter(), false) else {
            return Ok(());
        };
        let answer = query::run(backend.connection(), sql.as_bytes()).await?;
        for (name, value) in &answer.parameter_status {
            encode_parameter_status(&mut self.client.out, name.as_bytes(), value.as_bytes());
        }
        self.record_settings(backend, vec![Bytes::from(sql)]);
        Ok(())
    }

    /// Checks the client's startup settings on one node (the primary first),
    /// as PostgreSQL checks them at login, and learns the values it reports
    /// for them. `server` is what a node reports at login. `Ok(false)`: the
    /// login is refused and the FATAL error written.
    pub(in crate::session) async fn check_startup_settings(
        &mut self,
        server: &[(String, String)],
    ) -> Result<bool, SessionEnd> {
        // The startup packet's default isolation, else the role's or
        // database's (learned at the pair's first login).
        let isolation = self
            .startup
            .default_isolation()
            .unwrap_or_else(|| self.state.login_isolation(&self.user.name, &self.database));
        self.routing.set_login_isolation(isolation);
        if self.startup.is_empty() || self.startup.known_from(server) {
            return Ok(true);
        }
        let Some(sql) = set_config_statement(self.startup.settings.iter(), true) else {
            return Ok(true);
        };
        // Local to a transaction rolled back at once: the backend goes back clean.
        let sql = format!("BEGIN; {sql}; ROLLBACK");
        for node in self.login_nodes() {
            let Some(pool) = self.state.pool(node, &self.user, &self.database) else {
                continue;
            };
            let Ok(mut backend) = pool.checkout().await else {
                continue;
            };
            let Ok(answer) = query::run(backend.connection(), sql.as_bytes()).await else {
                continue;
            };
            if let Some(error) = answer.error {
                // A backend left in a failed transaction is closed, not pooled.
                drop(backend);
                self.refuse_login(error).await?;
                return Ok(false);
            }
            backend.release();
            let values = answer.rows.into_iter().next().unwrap_or_default();
            let checked = self.startup.settings.iter().zip(values);
            self.startup.last_statement = None;
            for ((setting, value), reported) in checked.zip(self.startup.reported.iter_mut()) {
                let name = server
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(&setting.name));
                *reported = name
                    .zip(value)
                    .map(|((name, _), value)| (name.clone(), value));
            }
            return Ok(true);
        }
        let fields = NoticeFields::new(
            Severity::Fatal,
            sqlstate::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
            "pgrw could not reach any node to check the settings of the startup packet",
        );
        self.refuse_login(fields).await?;
        Ok(false)
    }

    /// Ends the login with `error` as FATAL, as PostgreSQL refuses a
    /// StartupMessage setting.
    async fn refuse_login(&mut self, mut error: NoticeFields) -> Result<(), SessionEnd> {
        error.severity = Severity::Fatal.as_str().to_string();
        encode_error_response(&mut self.client.out, &error);
        self.client.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn pairs(settings: &[StartupSetting]) -> Vec<(&str, &str)> {
        settings
            .iter()
            .map(|setting| (setting.name.as_str(), setting.value.as_str()))
            .collect()
    }

    #[test]
    fn options_split_at_spaces_with_backslash_escapes_as_libpq_does() {
        assert_eq!(
            split_options("  -c a=1\t-c b=x\\ y\\\\z  "),
            ["-c", "a=1", "-c", "b=x y\\z"]
        );
    }

    #[test]
    fn options_take_dash_c_in_both_forms_and_long_options() {
        let settings =
            option_settings("-c search_path=app,public -cstatement_timeout=4321 --lock-timeout=5s")
                .unwrap();
        assert_eq!(
            pairs(&settings),
            [
                ("search_path", "app,public"),
                ("statement_timeout", "4321"),
                ("lock_timeout", "5s")
            ]
        );
    }

    #[test]
    fn other_server_switches_in_options_are_refused() {
        let refusal = option_settings("-B 100").unwrap_err();
        assert_eq!(refusal.code, SYNTAX_ERROR);
        assert!(refusal.message.contains("-B"), "{}", refusal.message);
        assert!(option_settings("-c").is_err());
        assert!(option_settings("--no-value").is_err());
    }

    #[test]
    fn startup_settings_are_every_parameter_but_the_login_ones_options_first() {
        let settings = startup_settings(&params(&[
            ("user", "app"),
            ("database", "db"),
            ("application_name", "web"),
            ("DateStyle", "ISO, MDY"),
            ("options", "-c DateStyle=German -c search_path=a"),
            ("_pq_.protocol_extension", "1"),
            ("replication", "false"),
        ]))
        .unwrap();
        assert_eq!(
            pairs(&settings),
            [
                ("search_path", "a"),
                ("application_name", "web"),
                ("DateStyle", "ISO, MDY")
            ]
        );
    }

    #[test]
    fn the_default_isolation_in_options_is_seen() {
        let settings = |options: &str| {
            StartupSettings::new(startup_settings(&params(&[("options", options)])).unwrap())
        };
        let asked = |options: &str| settings(options).default_isolation();
        assert_eq!(
            asked("-c default_transaction_isolation=serializable"),
            Some(DefaultIsolation::Serializable)
        );
        assert_eq!(
            asked("--default-transaction-isolation=SERIALIZABLE"),
            Some(DefaultIsolation::Serializable)
        );
        assert_eq!(
            asked(
                "-c default_transaction_isolation=serializable -c default_transaction_isolation=read\\ committed"
            ),
            Some(DefaultIsolation::Other)
        );
        assert_eq!(
            asked("-c default_transaction_isolation=repeatable\\ read"),
            Some(DefaultIsolation::RepeatableRead)
        );
        assert_eq!(
            asked("-c search_path=app"),
            None,
            "no setting: the role's default"
        );
    }

    #[test]
    fn replication_is_asked_for_unless_the_parameter_is_false() {
        assert!(asks_for_replication(&params(&[("replication", "true")])));
        assert!(asks_for_replication(&params(&[(
            "replication",
            "database"
        )])));
        assert!(!asks_for_replication(&params(&[("replication", "off")])));
        assert!(!asks_for_replication(&params(&[("user", "x")])));
    }

    #[test]
    fn the_statement_quotes_values_the_same_under_any_string_escaping() {
        let settings = StartupSettings::new(vec![StartupSetting {
            name: "search_path".to_string(),
            value: r"it's \here".to_string(),
        }]);
        assert_eq!(
            settings.statement().unwrap(),
            r"SELECT pg_catalog.set_config(E'search_path', E'it''s \\here', false)"
        );
    }

    #[test]
    fn a_backend_is_sent_only_the_reported_settings_it_lacks() {
        let mut settings = StartupSettings::new(vec![
            StartupSetting {
                name: "client_encoding".to_string(),
                value: "UTF8".to_string(),
            },
            StartupSetting {
                name: "statement_timeout".to_string(),
                value: "5s".to_string(),
            },
        ]);
        let server = params(&[("client_encoding", "UTF8"), ("TimeZone", "UTC")]);
        assert!(
            !settings.known_from(&server),
            "statement_timeout is not reported"
        );
        assert_eq!(
            settings.statement_for(&server).unwrap(),
            "SELECT pg_catalog.set_config(E'statement_timeout', E'5s', false)"
        );
        let latin = params(&[("client_encoding", "LATIN1")]);
        assert!(
            settings
                .statement_for(&latin)
                .unwrap()
                .starts_with(b"SELECT pg_catalog.set_config(E'client_encoding'")
        );
        assert_eq!(settings.reported("client_encoding"), Some("UTF8"));
    }
}
