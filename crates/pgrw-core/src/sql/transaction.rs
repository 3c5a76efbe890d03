//! What a driver needs to know to defer a `READ COMMITTED` transaction
//! (`transaction_reads = replica`): whether a `BEGIN` may be acknowledged
//! without a node, whether a `COMMIT`/`ROLLBACK` ends it plainly, and
//! whether a read shows a value that must stay the same for the whole
//! transaction (which a read on a replica and the rest on the primary could
//! not keep).
//!
//! Each answers `None`/`true` (do not defer, open on the primary) for
//! anything it does not fully read, so that every doubt keeps today's path.

use crate::sql::lexer::{Token, TokenKind, tokens};

/// A `BEGIN` a driver may defer: its level and the command tag it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeferrableBegin {
    /// The isolation it asks for.
    pub level: BeginLevel,
    /// Its CommandComplete tag: `BEGIN`, or `START TRANSACTION`.
    pub tag: &'static [u8],
}

/// The isolation a deferrable `BEGIN` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BeginLevel {
    /// None named: the session's default (which must be read committed).
    SessionDefault,
    /// `ISOLATION LEVEL READ COMMITTED` (or `READ UNCOMMITTED`, which
    /// PostgreSQL runs as read committed): whatever the session's default.
    ReadCommitted,
}

/// How a plain transaction end finishes a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionEnd {
    /// `COMMIT`, `END` (`COMMIT` is its command tag).
    Commit,
    /// `ROLLBACK`, `ABORT` (`ROLLBACK` is its command tag).
    Rollback,
}

/// The words of `sql` (a single statement, optionally ended by semicolons),
/// lower-cased identifiers and commas; `None` for anything else (a second
/// statement, a string, a quoted identifier…).
fn words(sql: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut words = Vec::new();
    let mut ended = false;
    for token in tokens(sql).filter(|token| !token.is_comment()) {
        match token.kind {
            TokenKind::Semicolon => ended = true,
            _ if ended => return None,
            TokenKind::Identifier => words.push(token.text(sql).to_ascii_lowercase()),
            TokenKind::Comma => words.push(b",".to_vec()),
            _ => return None,
        }
    }
    Some(words)
}

/// Whether `sql` is one `BEGIN`/`START TRANSACTION` a driver may defer: its
/// modes all read (`ISOLATION LEVEL READ COMMITTED | READ UNCOMMITTED`,
/// `READ WRITE`, `[NOT] DEFERRABLE`), none keeps a snapshot (`REPEATABLE
/// READ`, `SERIALIZABLE`), and it is not `READ ONLY` (which runs whole on a
/// replica already).
pub fn deferrable_begin(sql: &[u8]) -> Option<DeferrableBegin> {
    let words = words(sql)?;
    let tag: &'static [u8] = if words.first().map(Vec::as_slice) == Some(b"start") {
        b"START TRANSACTION"
    } else {
        b"BEGIN"
    };
    let mut at = match words.first().map(Vec::as_slice) {
        Some(b"begin") => match words.get(1).map(Vec::as_slice) {
            Some(b"work" | b"transaction") => 2,
            _ => 1,
        },
        Some(b"start") if words.get(1).map(Vec::as_slice) == Some(b"transaction") => 2,
        _ => return None,
    };
    let word = |at: usize| words.get(at).map(Vec::as_slice);
    let mut level = BeginLevel::SessionDefault;
    while at < words.len() {
        at += match (word(at), word(at + 1), word(at + 2), word(at + 3)) {
            (Some(b","), ..) => 1,
            (Some(b"read"), Some(b"write"), ..) => 2,
            (Some(b"not"), Some(b"deferrable"), ..) => 2,
            (Some(b"deferrable"), ..) => 1,
            (
                Some(b"isolation"),
                Some(b"level"),
                Some(b"read"),
                Some(b"committed" | b"uncommitted"),
            ) => {
                level = BeginLevel::ReadCommitted;
                4
            }
            _ => return None,
        };
    }
    Some(DeferrableBegin { level, tag })
}

/// Whether `sql` is one `SET TRANSACTION …` naming `ISOLATION LEVEL
/// SERIALIZABLE`, which a hot standby refuses: a read-only transaction that
/// began on a replica must move to the primary for it (`false` for anything
/// it does not fully read).
pub fn sets_serializable(sql: &[u8]) -> bool {
    let Some(words) = words(sql) else {
        return false;
    };
    words.get(..2) == Some(&[b"set".to_vec(), b"transaction".to_vec()][..])
        && words.windows(3).any(|w| {
            w == [
                b"isolation".to_vec(),
                b"level".to_vec(),
                b"serializable".to_vec(),
            ]
        })
}

/// How `sql` ends a transaction, if it is one plain `COMMIT`, `END`,
/// `ROLLBACK` or `ABORT` (with `WORK`/`TRANSACTION`, `AND NO CHAIN`);
/// `None` for anything else (`AND CHAIN`, `ROLLBACK TO`, `COMMIT PREPARED`).
pub fn transaction_end(sql: &[u8]) -> Option<TransactionEnd> {
    let words = words(sql)?;
    let end = match words.first().map(Vec::as_slice) {
        Some(b"commit" | b"end") => TransactionEnd::Commit,
        Some(b"rollback" | b"abort") => TransactionEnd::Rollback,
        _ => return None,
    };
    let mut rest = &words[1..];
    if let Some((first, after)) = rest.split_first()
        && matches!(first.as_slice(), b"work" | b"transaction")
    {
        rest = after;
    }
    let plain = rest.is_empty() || rest == [b"and".to_vec(), b"no".to_vec(), b"chain".to_vec()];
    plain.then_some(end)
}

/// Names whose value is fixed for the whole transaction (its start time).
const TRANSACTION_TIME: &[&[u8]] = &[
    b"now",
    b"transaction_timestamp",
    b"current_timestamp",
    b"current_time",
    b"current_date",
    b"localtime",
    b"localtimestamp",
];

/// Strings that read the transaction's start time as a date/time input.
const TRANSACTION_TIME_INPUTS: &[&[u8]] = &[b"now", b"today", b"tomorrow", b"yesterday"];

/// Whether `sql` may show the transaction's start time (`now()`,
/// `current_timestamp`, `'now'::timestamptz`, …): a deferred transaction
/// that later opens on the primary would show another one.
pub fn reads_transaction_time(sql: &[u8]) -> bool {
    tokens(sql).any(|token| shows_transaction_time(sql, token))
}

fn shows_transaction_time(sql: &[u8], token: Token) -> bool {
    let text = token.text(sql);
    let inner = || {
        text.get(1..text.len().saturating_sub(1))
            .unwrap_or_default()
    };
    match token.kind {
        TokenKind::Identifier => TRANSACTION_TIME
            .iter()
            .any(|name| text.eq_ignore_ascii_case(name)),
        TokenKind::QuotedIdentifier => TRANSACTION_TIME.contains(&inner()),
        TokenKind::String | TokenKind::EscapeString | TokenKind::UnicodeString => {
            let inner = match token.kind {
                TokenKind::String => inner(),
                // `E'now'`, `U&'now'`: past the prefix.
                _ => text
                    .iter()
                    .position(|&byte| byte == b'\'')
                    .and_then(|quote| text.get(quote + 1..text.len().saturating_sub(1)))
                    .unwrap_or_default(),
            };
            let inner = inner.trim_ascii();
            TRANSACTION_TIME_INPUTS
                .iter()
                .any(|input| inner.eq_ignore_ascii_case(input))
        }
        TokenKind::Unterminated(_) | TokenKind::DollarString => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_committed_begin_may_be_deferred() {
        let begin = |sql: &str| deferrable_begin(sql.as_bytes()).map(|begin| begin.level);
        assert_eq!(begin("BEGIN"), Some(BeginLevel::SessionDefault));
        assert_eq!(begin("begin;"), Some(BeginLevel::SessionDefault));
        assert_eq!(begin("BEGIN WORK"), Some(BeginLevel::SessionDefault));
        assert_eq!(
            begin("START TRANSACTION READ WRITE, NOT DEFERRABLE"),
            Some(BeginLevel::SessionDefault)
        );
        assert_eq!(
            begin("BEGIN ISOLATION LEVEL READ COMMITTED"),
            Some(BeginLevel::ReadCommitted)
        );
        assert_eq!(
            begin("/* app */ begin transaction isolation level read uncommitted read write"),
            Some(BeginLevel::ReadCommitted)
        );
    }

    #[test]
    fn a_deferred_begin_answers_its_own_command_tag() {
        let tag = |sql: &str| deferrable_begin(sql.as_bytes()).map(|begin| begin.tag);
        assert_eq!(tag("begin"), Some(&b"BEGIN"[..]));
        assert_eq!(tag("START TRANSACTION"), Some(&b"START TRANSACTION"[..]));
    }

    #[test]
    fn a_begin_that_keeps_a_snapshot_or_reads_only_or_is_not_alone_is_not_deferred() {
        let begin = |sql: &str| deferrable_begin(sql.as_bytes()).map(|begin| begin.level);
        assert_eq!(begin("BEGIN ISOLATION LEVEL REPEATABLE READ"), None);
        assert_eq!(begin("BEGIN ISOLATION LEVEL SERIALIZABLE"), None);
        assert!(sets_serializable(
            b"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"
        ));
        assert!(sets_serializable(
            b"set transaction read only, isolation level serializable deferrable;"
        ));
        assert!(!sets_serializable(
            b"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
        ));
        assert!(!sets_serializable(
            b"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE"
        ));
        assert!(!sets_serializable(
            b"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT 1"
        ));
        assert_eq!(begin("BEGIN READ ONLY"), None);
        assert_eq!(begin("BEGIN; SELECT 1"), None);
        assert_eq!(begin("BEGIN ISOLATION LEVEL READ"), None);
        assert_eq!(begin("BEGIN \"work\""), None);
        assert_eq!(begin("SELECT 1"), None);
        assert_eq!(begin("START"), None);
    }

    #[test]
    fn only_a_plain_commit_or_rollback_is_a_transaction_end() {
        let end = |sql: &str| transaction_end(sql.as_bytes());
        assert_eq!(end("COMMIT"), Some(TransactionEnd::Commit));
        assert_eq!(end("end transaction;"), Some(TransactionEnd::Commit));
        assert_eq!(end("ROLLBACK WORK"), Some(TransactionEnd::Rollback));
        assert_eq!(end("abort"), Some(TransactionEnd::Rollback));
        assert_eq!(
            end("COMMIT AND NO CHAIN"),
            Some(TransactionEnd::Commit),
            "AND NO CHAIN is the default"
        );
        assert_eq!(end("COMMIT AND CHAIN"), None);
        assert_eq!(end("ROLLBACK TO SAVEPOINT a"), None);
        assert_eq!(end("COMMIT PREPARED 'x'"), None);
        assert_eq!(end("COMMIT; SELECT 1"), None);
    }

    #[test]
    fn reads_of_the_transaction_start_time_are_seen() {
        let reads = |sql: &str| reads_transaction_time(sql.as_bytes());
        assert!(reads("SELECT now()"));
        assert!(reads("SELECT CURRENT_TIMESTAMP"));
        assert!(reads("select * from t where d < current_date"));
        assert!(reads("SELECT pg_catalog.transaction_timestamp()"));
        assert!(reads("SELECT 'now'::timestamptz"));
        assert!(reads("SELECT E'today'::date"));
        assert!(reads("SELECT \"now\"()"));
        assert!(!reads("SELECT clock_timestamp(), statement_timestamp()"));
        assert!(!reads("SELECT 'now is the time' FROM t"));
        assert!(!reads("SELECT nowhere FROM t -- now()"));
    }
}
