//! The statement classifier: may this SQL run on a replica?
//!
//! [`classify`] reads a whole query string (possibly several `;`-separated
//! statements) in one pass of the [lexer](crate::sql::lexer) and returns a
//! [`Classification`]: a [`StatementClass`], the [`Reason`] behind it, a
//! routing hint written in a comment, and the [`SessionEffects`] the driver
//! must honour. [`statements`] gives the same per statement.
//!
//! It only says [`StatementClass::Read`] when sure: writing keywords anywhere
//! (`INSERT` in a CTE, `FOR UPDATE`, `SELECT … INTO`), primary-only or
//! unknown functions, unknown operators, temp tables and any text it cannot
//! fully read send a statement to the primary.
//!
//! **Multi-statement strings** (the simple query protocol): empty statements
//! are ignored; a single remaining statement is classified alone. Otherwise
//! the string is `Read` only if every statement is `Read`; if any statement
//! writes, the string is `Write` with the reason of the first definite write
//! (or else of the first write); a mix of reads
//! with transaction control or session commands is `Write` too (reason
//! "multi-statement string with …"), because PostgreSQL runs the string as one
//! implicit transaction (or opens/closes explicit ones mid-string). Transaction
//! control in such a string is reported as [`Effect::TRANSACTION_CONTROL`]
//! (one exception: a whole read-only transaction, `BEGIN READ ONLY`, reads,
//! `COMMIT` or `ROLLBACK`, is `Read`, as it may run on a replica):
//! the driver must take the transaction state after it from the server's
//! ReadyForQuery status, not from the classification. Effects are the union
//! over all statements. A hint anywhere in the string applies to the whole
//! string (a primary hint wins over a replica hint).
//!
//! **Session pins**: a statement whose [`SessionEffects`] pin the session to
//! its backend (a `WITH HOLD` cursor, SQL-level `PREPARE`, a session function;
//! see [`SessionEffects::pins_session`]) is `Write` even when it only reads
//! ([`Reason::PinsSession`]): the session then stays on that backend, and its
//! later writes can only run on the primary, so the pin must be there. This
//! keeps `PREPARE` with `EXECUTE` (also `Write`) and a `WITH HOLD` cursor with
//! a later read-write transaction that fetches from it.
//!
//! **`standard_conforming_strings`**: [`classify`] does not know the session's
//! setting. When a plain `'…'` string holds a backslash, the text is also read
//! as with the setting off; if the two readings disagree the verdict is
//! `Write` ([`Reason::AmbiguousEscapes`]). A driver that tracks the setting
//! (from ParameterStatus) can call [`classify_with`] instead.
//!
//! **What text cannot show** (the driver's or the configuration's job): a
//! view, rule, trigger, default or policy that calls a writing function; a
//! temp table named without `pg_temp.` (the driver pins the session on
//! [`Effect::TEMP_TABLE`] instead); what an `EXECUTE`d prepared statement
//! does (classified primary); sequence state read by `currval`/`lastval`
//! after a `nextval` on another backend.

mod ctes;
mod effects;
mod functions;
mod reason;
mod scan;
mod statement;

pub use effects::{DefaultIsolation, Effect, RouteSetting, RouteSettingChange, SessionEffects};
pub use reason::{InlineName, MAX_NAME_LEN, Reason};

use crate::catalog::FunctionCatalog;
use crate::classification::{RouteHint, StatementClass};
use crate::sql::hints::stronger;
use crate::sql::lexer::{StringEscapes, TokenKind, Tokens, tokens_with};
use scan::StatementScan;
use statement::{Verdict, decide};

/// The classifier's verdict on one SQL string (or one statement of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Where it may run.
    pub class: StatementClass,
    /// Why.
    pub reason: Reason,
    /// A hint written in the statement and honoured, if any (a replica hint
    /// on a definite write is dropped, and the reason says so).
    pub hint: Option<RouteHint>,
    /// The session state it changes.
    pub effects: SessionEffects,
    /// It reads the state of the session's own backend
    /// (`pg_prepared_statements`, `pg_cursors`), whatever its class: the
    /// backend that answers must hold what the client made, as a direct
    /// connection's does. ([`Reason::SessionBackendState`] names the
    /// statement only when nothing else in it needs the primary.)
    pub reads_backend_state: bool,
}

impl Classification {
    /// Whether this may run on a replica: reads, empty strings, and the start
    /// (or `SET TRANSACTION`) of a read-only transaction.
    pub fn replica_eligible(&self) -> bool {
        use crate::classification::TxAccess::ReadOnly;
        matches!(
            self.class,
            StatementClass::Read
                | StatementClass::Empty
                | StatementClass::Begin(ReadOnly)
                | StatementClass::SetTransaction(ReadOnly)
        )
    }
}

/// Classifies a whole query string, not knowing `standard_conforming_strings`
/// (see the [module docs](self) for the multi-statement rule).
pub fn classify(sql: &[u8], catalog: &FunctionCatalog) -> Classification {
    let (standard, backslash) = classify_pass(sql, catalog, StringEscapes::Standard);
    if !backslash {
        return standard;
    }
    let (escaped, _) = classify_pass(sql, catalog, StringEscapes::Backslash);
    if escaped == standard {
        return standard;
    }
    Classification {
        class: StatementClass::Write,
        reason: Reason::AmbiguousEscapes,
        hint: None,
        effects: standard.effects.union(escaped.effects),
        reads_backend_state: standard.reads_backend_state || escaped.reads_backend_state,
    }
}

/// Classifies a whole query string under a known `standard_conforming_strings`.
pub fn classify_with(
    sql: &[u8],
    catalog: &FunctionCatalog,
    escapes: StringEscapes,
) -> Classification {
    classify_pass(sql, catalog, escapes).0
}

/// One statement of a query string and its classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementClassification {
    /// Offset of the statement's first token (comments included).
    pub start: usize,
    /// Offset one past its last token (the `;` excluded).
    pub end: usize,
    /// Its own classification, with its own hint applied.
    pub classification: Classification,
}

/// The non-empty statements of a query string, each classified on its own.
pub fn statements<'a>(
    sql: &'a [u8],
    catalog: &'a FunctionCatalog,
    escapes: StringEscapes,
) -> Statements<'a> {
    Statements {
        pieces: Pieces::new(sql, catalog, escapes),
    }
}

/// Iterator returned by [`statements`].
pub struct Statements<'a> {
    pieces: Pieces<'a>,
}

impl Iterator for Statements<'_> {
    type Item = StatementClassification;

    fn next(&mut self) -> Option<StatementClassification> {
        loop {
            let piece = self.pieces.next()?;
            if piece.verdict.class == StatementClass::Empty {
                continue;
            }
            return Some(StatementClassification {
                start: piece.start,
                end: piece.end,
                classification: apply_hint(piece.verdict, piece.hint, piece.reads_backend_state),
            });
        }
    }
}

/// One `;`-separated piece, before hints.
struct Piece {
    verdict: Verdict,
    hint: Option<RouteHint>,
    /// See [`Classification::reads_backend_state`].
    reads_backend_state: bool,
    backslash_in_string: bool,
    start: usize,
    end: usize,
}

/// Splits a query string into pieces at `;` (outside `BEGIN ATOMIC` bodies),
/// classifying each as its tokens stream by: one lexer pass in all.
struct Pieces<'a> {
    sql: &'a [u8],
    catalog: &'a FunctionCatalog,
    tokens: Tokens<'a>,
    done: bool,
}

impl<'a> Pieces<'a> {
    fn new(sql: &'a [u8], catalog: &'a FunctionCatalog, escapes: StringEscapes) -> Self {
        Pieces {
            sql,
            catalog,
            tokens: tokens_with(sql, escapes),
            done: false,
        }
    }
}

impl Iterator for Pieces<'_> {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        if self.done {
            return None;
        }
        let mut scan = StatementScan::new(self.sql, self.catalog);
        loop {
            match self.tokens.next() {
                Some(token) if token.kind == TokenKind::Semicolon && scan.atomic_depth == 0 => {
                    break;
                }
                Some(token) => scan.feed(token),
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        if scan.depth > 0 {
            scan.unrecognised("unclosed parenthesis");
        }
        if scan.set_config.take().is_some() {
            scan.set_config_changes_session();
        }
        let start = scan.start.unwrap_or(scan.end);
        Some(Piece {
            verdict: decide(&scan),
            hint: scan.findings.hint,
            reads_backend_state: scan.findings.session_backend_state.is_some(),
            backslash_in_string: scan.findings.backslash_in_string,
            start,
            end: scan.end.max(start),
        })
    }
}

/// Combines the pieces of a string under one reading of its strings; also
/// says whether any plain string held a backslash.
fn classify_pass(
    sql: &[u8],
    catalog: &FunctionCatalog,
    escapes: StringEscapes,
) -> (Classification, bool) {
    let mut backslash = false;
    let mut hint = None;
    let mut reads_backend_state = false;
    let mut count = 0usize;
    let mut combined: Option<Verdict> = None;
    let mut all_read = true;
    let mut first_write: Option<Reason> = None;
    let mut transaction_control = false;
    let mut session_commands = false;
    let mut effects = SessionEffects::NONE;
    let mut read_only_transaction = ReadOnlyTransaction::Start;
    for piece in Pieces::new(sql, catalog, escapes) {
        backslash |= piece.backslash_in_string;
        hint = stronger(hint, piece.hint);
        reads_backend_state |= piece.reads_backend_state;
        let verdict = piece.verdict;
        if verdict.class == StatementClass::Empty {
            continue;
        }
        count += 1;
        read_only_transaction = read_only_transaction.then(verdict.class);
        effects = effects.union(verdict.effects);
        match verdict.class {
            StatementClass::Read => {}
            StatementClass::Write => {
                all_read = false;
                // The reason that decides whether a replica hint may override
                // the string: a definite write anywhere must win.
                let definite = !verdict.reason.hint_may_override();
                // The session's own backend state names the string only if
                // nothing else in it needs the primary.
                let session_backend =
                    |reason: &Reason| matches!(reason, Reason::SessionBackendState(_));
                if first_write.as_ref().is_none_or(|first| {
                    (definite && first.hint_may_override())
                        || (session_backend(first) && !session_backend(&verdict.reason))
                }) {
                    first_write = Some(verdict.reason.clone());
                }
            }
            StatementClass::Session => {
                all_read = false;
                session_commands = true;
            }
            _ => {
                all_read = false;
                transaction_control = true;
            }
        }
        if combined.is_none() {
            combined = Some(verdict);
        }
    }
    let verdict = match (count, combined) {
        (0, _) | (_, None) => Verdict {
            class: StatementClass::Empty,
            reason: Reason::Empty,
            effects,
        },
        (1, Some(only)) => only,
        (_, Some(_)) => {
            if transaction_control {
                effects.insert(Effect::TRANSACTION_CONTROL);
            }
            // A replica hint may only override the string if every statement
            // that is not a read is a doubt it may override.
            let definite = first_write
                .as_ref()
                .filter(|reason| !reason.hint_may_override());
            let (class, reason) = match (all_read, definite, first_write.as_ref()) {
                (true, _, _) => (StatementClass::Read, Reason::Read),
                _ if read_only_transaction == ReadOnlyTransaction::Ended => (
                    StatementClass::Read,
                    Reason::MultiStatement("a whole read-only transaction"),
                ),
                (false, Some(reason), _) => (StatementClass::Write, reason.clone()),
                (false, None, _) if transaction_control => (
                    StatementClass::Write,
                    Reason::MultiStatement("transaction control"),
                ),
                (false, None, _) if session_commands => (
                    StatementClass::Write,
                    Reason::MultiStatement("session commands"),
                ),
                (false, None, reason) => (
                    StatementClass::Write,
                    reason
                        .cloned()
                        .unwrap_or(Reason::MultiStatement("session commands")),
                ),
            };
            Verdict {
                class,
                reason,
                effects,
            }
        }
    };
    (apply_hint(verdict, hint, reads_backend_state), backslash)
}

/// Whether a multi-statement string is one whole read-only transaction:
/// `BEGIN READ ONLY`, reads, then `COMMIT` or `ROLLBACK`. It may run on a
/// replica as one unit (the session is idle again after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadOnlyTransaction {
    /// Nothing yet.
    Start,
    /// `BEGIN READ ONLY`, then only reads.
    Open,
    /// …and its `COMMIT`/`ROLLBACK` as the last statement so far.
    Ended,
    /// Anything else.
    Not,
}

impl ReadOnlyTransaction {
    fn then(self, class: StatementClass) -> ReadOnlyTransaction {
        use crate::classification::TxAccess;
        match (self, class) {
            (Self::Start, StatementClass::Begin(TxAccess::ReadOnly)) => Self::Open,
            (Self::Open, StatementClass::Read) => Self::Open,
            (Self::Open, StatementClass::Commit | StatementClass::Rollback) => Self::Ended,
            _ => Self::Not,
        }
    }
}

/// Applies a routing hint: a primary hint sends a read to the primary; a
/// replica hint overrides doubts about user or unknown functions, and is
/// dropped (with a reason) on a definite write. Other classes keep their
/// class and carry the hint for the policy.
fn apply_hint(
    verdict: Verdict,
    hint: Option<RouteHint>,
    reads_backend_state: bool,
) -> Classification {
    let Verdict {
        class,
        reason,
        effects,
    } = verdict;
    let plain = |class, reason, hint| Classification {
        class,
        reason,
        hint,
        effects,
        reads_backend_state,
    };
    match (hint, class) {
        (None, _) => plain(class, reason, None),
        (Some(RouteHint::Primary), StatementClass::Read) => plain(
            StatementClass::Write,
            Reason::Hint(RouteHint::Primary),
            Some(RouteHint::Primary),
        ),
        (Some(RouteHint::Replica), StatementClass::Write) if reason.hint_may_override() => plain(
            StatementClass::Read,
            Reason::Hint(RouteHint::Replica),
            Some(RouteHint::Replica),
        ),
        (Some(RouteHint::Replica), StatementClass::Write) => plain(
            StatementClass::Write,
            Reason::ReplicaHintIgnored(Box::new(reason)),
            None,
        ),
        (Some(hint), _) => plain(class, reason, Some(hint)),
    }
}
