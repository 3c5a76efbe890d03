//! The console's commands, parsed from a Query's text (sans I/O): words in
//! any case, any spacing, optional trailing semicolons; a node name bare or
//! quoted.

/// What `SHOW` can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// `SHOW NODES`.
    Nodes,
    /// `SHOW POOLS`.
    Pools,
    /// `SHOW CLIENTS`.
    Clients,
    /// `SHOW SERVERS`.
    Servers,
    /// `SHOW STATS`.
    Stats,
    /// `SHOW CONFIG`.
    Config,
    /// `SHOW VERSION`.
    Version,
    /// `SHOW HELP`.
    Help,
}

/// One console command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// An empty query (only spaces or semicolons).
    Empty,
    /// `SHOW …`.
    Show(Show),
    /// `RELOAD`: read `pgrw.toml` again.
    Reload,
    /// `PAUSE`: hold new transactions.
    Pause,
    /// `RESUME`: let them go.
    Resume,
    /// `BAN node`.
    Ban(String),
    /// `UNBAN node`.
    Unban(String),
    /// `SHUTDOWN`: the graceful stop a SIGTERM starts.
    Shutdown,
}

/// Every command, as `SHOW HELP` and the error for an unknown one list them.
pub(crate) const COMMANDS: &[(&str, &str)] = &[
    (
        "SHOW NODES",
        "each node: role, health, ban, replay LSN, lag, routed, errors",
    ),
    (
        "SHOW POOLS",
        "each pool (node, database, user): clients and server connections",
    ),
    ("SHOW CLIENTS", "each client connection"),
    (
        "SHOW SERVERS",
        "each server connection: idle in a pool or running a client's statement",
    ),
    (
        "SHOW STATS",
        "per node and per route reason: statements, errors, time",
    ),
    ("SHOW CONFIG", "the configuration in use (no passwords)"),
    ("SHOW VERSION", "pgrw's version"),
    ("SHOW HELP", "this list"),
    (
        "RELOAD",
        "read pgrw.toml again and apply it (refused whole if invalid)",
    ),
    (
        "PAUSE",
        "hold new transactions until RESUME (those in progress finish)",
    ),
    ("RESUME", "let held transactions start"),
    (
        "BAN node",
        "route nothing to the node until UNBAN, whatever its probes say",
    ),
    ("UNBAN node", "lift an operator's ban"),
    (
        "SHUTDOWN",
        "stop gracefully, as on SIGTERM (shutdown_timeout_ms)",
    ),
];

/// Why a query is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotACommand {
    /// Not one of [`COMMANDS`].
    Unknown,
    /// `BAN` or `UNBAN` without exactly one node name.
    NodeNameMissing(&'static str),
}

/// Parses one query's text.
pub(crate) fn parse(sql: &str) -> Result<Command, NotACommand> {
    let text = sql
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    let words: Vec<&str> = text.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|word| word.to_ascii_uppercase()).collect();
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    let command = match upper.as_slice() {
        [] => Command::Empty,
        ["SHOW", what] => Command::Show(match *what {
            "NODES" => Show::Nodes,
            "POOLS" => Show::Pools,
            "CLIENTS" => Show::Clients,
            "SERVERS" => Show::Servers,
            "STATS" => Show::Stats,
            "CONFIG" => Show::Config,
            "VERSION" => Show::Version,
            "HELP" => Show::Help,
            _ => return Err(NotACommand::Unknown),
        }),
        ["RELOAD"] => Command::Reload,
        ["PAUSE"] => Command::Pause,
        ["RESUME"] => Command::Resume,
        ["SHUTDOWN"] => Command::Shutdown,
        ["BAN", _] => Command::Ban(unquote(words[1])),
        ["UNBAN", _] => Command::Unban(unquote(words[1])),
        ["BAN", ..] => return Err(NotACommand::NodeNameMissing("BAN")),
        ["UNBAN", ..] => return Err(NotACommand::NodeNameMissing("UNBAN")),
        _ => return Err(NotACommand::Unknown),
    };
    Ok(command)
}

/// A node name without the quotes an operator may have put around it.
fn unquote(word: &str) -> String {
    for quote in ['"', '\''] {
        if let Some(inner) = word
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner.to_string();
        }
    }
    word.to_string()
}

/// The list of commands, one per line, for an error's hint.
pub(crate) fn command_list() -> String {
    COMMANDS
        .iter()
        .map(|(command, _)| *command)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_in_any_case_with_optional_semicolons() {
        assert_eq!(parse("show nodes"), Ok(Command::Show(Show::Nodes)));
        assert_eq!(parse("  SHOW   Pools ;; "), Ok(Command::Show(Show::Pools)));
        assert_eq!(parse("reload;"), Ok(Command::Reload));
        assert_eq!(parse("Pause"), Ok(Command::Pause));
        assert_eq!(parse("RESUME"), Ok(Command::Resume));
        assert_eq!(parse("shutdown"), Ok(Command::Shutdown));
        assert_eq!(parse(" ; "), Ok(Command::Empty));
    }

    #[test]
    fn a_node_name_keeps_its_case_and_loses_its_quotes() {
        assert_eq!(parse("ban Replica1"), Ok(Command::Ban("Replica1".into())));
        assert_eq!(
            parse("UNBAN \"r 1\""),
            Err(NotACommand::NodeNameMissing("UNBAN"))
        );
        assert_eq!(
            parse("UNBAN 'replica2';"),
            Ok(Command::Unban("replica2".into()))
        );
        assert_eq!(parse("ban"), Err(NotACommand::NodeNameMissing("BAN")));
    }

    #[test]
    fn anything_else_is_unknown() {
        assert_eq!(parse("SELECT 1"), Err(NotACommand::Unknown));
        assert_eq!(parse("SHOW LISTS"), Err(NotACommand::Unknown));
        assert_eq!(parse("SHOW"), Err(NotACommand::Unknown));
        assert!(command_list().contains("SHOW NODES"));
        assert!(command_list().contains("UNBAN node"));
    }
}
