//! One pass over a statement's tokens: remembers its head (for the
//! statement-type decision in [`super::statement`]) and collects, from the
//! whole text, what makes a statement unsafe for a replica: writing keywords
//! anywhere (`INSERT` in a CTE, `FOR UPDATE`, `INTO`), function calls judged by
//! the catalog, unknown operators, temp tables, unreadable text, hints.

use super::ctes::{CteEvent, CteTracker};
use super::effects::{Effect, SessionEffects};
use super::reason::Reason;
use crate::catalog::FunctionCatalog;
use crate::classification::RouteHint;
use crate::sql::hints::{hint_in_comment, stronger};
use crate::sql::keywords::Kw;
use crate::sql::lexer::{Token, TokenKind, Unterminated};

/// A significant (non-comment) token, with its keyword if it spells one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sig {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
    pub kw: Option<Kw>,
}

/// How many leading tokens the statement-type decision may look at.
pub(super) const HEAD_CAPACITY: usize = 24;

/// Where a `COPY` goes: the first `FROM`/`TO` outside parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CopyDirection {
    From,
    /// `TO`, waiting for the next token.
    ToPending,
    ToStdout,
    ToElsewhere,
}

/// What the whole statement text showed, beyond its head.
#[derive(Debug, Clone, Default)]
pub(super) struct Findings {
    /// A writing or locking keyword (`INSERT`, `FOR UPDATE`, `INTO`, `pg_temp`).
    pub keyword_write: Option<Reason>,
    /// A primary-only function call or unknown operator.
    pub function_write: Option<Reason>,
    /// Text the classifier cannot fully read.
    pub unrecognised: Option<Reason>,
    /// A relation showing the session's own backend (`pg_prepared_statements`,
    /// `pg_cursors`): see [`Reason::SessionBackendState`].
    pub session_backend_state: Option<Reason>,
    pub effects: SessionEffects,
    pub hint: Option<RouteHint>,
    /// A plain `'…'` string holds a backslash (its extent depends on
    /// `standard_conforming_strings`).
    pub backslash_in_string: bool,
    pub hold_cursor: bool,
    pub copy_direction: Option<CopyDirection>,
    pub saw_with: bool,
}

/// A `set_config(…)` call whose arguments are being read: its `is_local`,
/// and whether it sets `default_transaction_isolation` (to which value).
#[derive(Debug, Clone, Copy)]
pub(super) struct SetConfigCall {
    /// Paren depth inside the call's parentheses.
    pub depth: u32,
    pub argument: u32,
    /// Tokens seen in each of the three arguments, and the first of each.
    pub tokens: [u32; 3],
    pub first: [Option<Sig>; 3],
}

/// The scanner of one statement.
pub(super) struct StatementScan<'a> {
    pub sql: &'a [u8],
    pub catalog: &'a FunctionCatalog,
    pub head: [Sig; HEAD_CAPACITY],
    pub significant: usize,
    /// The last significant tokens, most recent first.
    pub recent: [Option<Sig>; 4],
    pub depth: u32,
    ctes: CteTracker,
    pub findings: Findings,
    pub set_config: Option<SetConfigCall>,
    /// Paren depth inside an `OPERATOR(schema.op)` construct being read.
    pub operator_construct: Option<u32>,
    /// Where the `)` closing the last `OPERATOR(…)` construct starts: a name
    /// right after it is an operand (`1 OPERATOR(pg_catalog.+) nextval(…)`),
    /// not an alias's column list.
    pub operator_closed_at: Option<usize>,
    /// Whether the `OPERATOR(…)` construct being read has shown its operator.
    pub operator_seen: bool,
    /// Nesting inside `CREATE … BEGIN ATOMIC … END`, where `;` does not end the statement.
    pub atomic_depth: u32,
    pub start: Option<usize>,
    pub end: usize,
}

const EMPTY_SIG: Sig = Sig {
    kind: TokenKind::Semicolon,
    start: 0,
    end: 0,
    kw: None,
};

impl<'a> StatementScan<'a> {
    pub(super) fn new(sql: &'a [u8], catalog: &'a FunctionCatalog) -> Self {
        StatementScan {
            sql,
            catalog,
            head: [EMPTY_SIG; HEAD_CAPACITY],
            significant: 0,
            recent: [None; 4],
            depth: 0,
            ctes: CteTracker::default(),
            findings: Findings::default(),
            set_config: None,
            operator_construct: None,
            operator_closed_at: None,
            operator_seen: false,
            atomic_depth: 0,
            start: None,
            end: 0,
        }
    }

    /// The statement's first significant tokens (up to [`HEAD_CAPACITY`]).
    pub(super) fn head(&self) -> &[Sig] {
        &self.head[..self.significant.min(HEAD_CAPACITY)]
    }

    /// Whether [`Self::head`] holds the whole statement.
    pub(super) fn head_is_whole(&self) -> bool {
        self.significant <= HEAD_CAPACITY
    }

    pub(super) fn text(&self, sig: &Sig) -> &'a [u8] {
        self.sql.get(sig.start..sig.end).unwrap_or_default()
    }

    pub(super) fn recent_kw(&self, back: usize) -> Option<Kw> {
        self.recent[back].and_then(|sig| sig.kw)
    }

    pub(super) fn unrecognised(&mut self, what: &'static str) {
        self.findings
            .unrecognised
            .get_or_insert(Reason::Unrecognised(what));
    }

    pub(super) fn keyword_write(&mut self, reason: Reason) {
        self.findings.keyword_write.get_or_insert(reason);
    }

    /// Feeds one token (anything but a statement-ending `;`).
    pub(super) fn feed(&mut self, token: Token) {
        self.start.get_or_insert(token.start);
        self.end = token.end;
        let text = token.text(self.sql);
        match token.kind {
            TokenKind::Comment => {
                self.findings.hint = stronger(self.findings.hint, hint_in_comment(text));
                return;
            }
            TokenKind::Unterminated(what) => self.unrecognised(match what {
                Unterminated::BlockComment => "unterminated comment",
                Unterminated::String => "unterminated string",
                Unterminated::QuotedIdentifier => "unterminated quoted identifier",
                Unterminated::DollarString => "unterminated dollar quote",
            }),
            TokenKind::Invalid => self.unrecognised("text PostgreSQL's scanner rejects"),
            TokenKind::Other => self.unrecognised("unexpected character"),
            TokenKind::String if text.contains(&b'\\') => self.findings.backslash_in_string = true,
            _ => {}
        }
        let kw = if token.kind == TokenKind::Identifier
            && self.recent[0].is_none_or(|s| s.kind != TokenKind::Dot)
        {
            Kw::of(text)
        } else {
            None
        };
        let sig = Sig {
            kind: token.kind,
            start: token.start,
            end: token.end,
            kw,
        };
        self.significant_token(sig, text);
        if self.significant < HEAD_CAPACITY {
            self.head[self.significant] = sig;
        }
        self.significant += 1;
        self.recent = [Some(sig), self.recent[0], self.recent[1], self.recent[2]];
    }

    /// The first argument of `current_setting(…)`: a setting that differs on
    /// a standby (`transaction_read_only`, `in_hot_standby`), or a name pgrw
    /// cannot read, asks about this server.
    fn current_setting_argument(&mut self, sig: &Sig, text: &[u8]) {
        let opens_call = self.recent[0].is_some_and(|s| s.kind == TokenKind::OpenParen)
            && self.recent[1].is_some_and(|s| {
                let name = self.text(&s);
                match s.kind {
                    TokenKind::Identifier => name.eq_ignore_ascii_case(b"current_setting"),
                    TokenKind::QuotedIdentifier => name == b"\"current_setting\"",
                    _ => false,
                }
            });
        if !opens_call {
            return;
        }
        let setting = match sig.kind {
            TokenKind::String => text.get(1..text.len().saturating_sub(1)),
            _ => None,
        };
        match setting {
            Some(name) if !is_node_state_setting(name) => {}
            Some(name) => self.node_state(name),
            None => self.node_state(b"current_setting of a setting pgrw cannot name"),
        }
    }

    /// Records a question about the server: the primary answers it, unless a
    /// replica hint asks a replica on purpose (so it ranks with function doubts).
    fn node_state(&mut self, name: &[u8]) {
        if self.function_write_is_open(false) {
            self.findings.function_write =
                Some(Reason::NodeState(super::reason::InlineName::new(name)));
        }
    }

    fn significant_token(&mut self, sig: Sig, text: &'a [u8]) {
        self.current_setting_argument(&sig, text);
        if self.findings.copy_direction == Some(CopyDirection::ToPending) {
            self.findings.copy_direction = Some(if sig.kw == Some(Kw::Stdout) {
                CopyDirection::ToStdout
            } else {
                CopyDirection::ToElsewhere
            });
        }
        self.track_set_config(&sig);
        if self.operator_construct == Some(self.depth) {
            if sig.kind == TokenKind::Operator {
                self.operator_seen = true;
            } else if !may_be_in_operator_construct(sig.kind) {
                // Not `OPERATOR(schema.op)` after all: a call of a function named `operator`.
                self.operator_construct = None;
                self.judge_call_of(b"operator");
            }
        }
        match sig.kind {
            TokenKind::OpenParen => {
                if self.ctes.observe(&sig, text, self.depth) == CteEvent::NotACall {
                    // A CTE's column list, not a call.
                } else {
                    self.check_call();
                }
                self.depth += 1;
                return;
            }
            TokenKind::CloseParen => {
                match self.depth.checked_sub(1) {
                    Some(depth) => self.depth = depth,
                    None => self.unrecognised("unbalanced parenthesis"),
                }
                self.finish_set_config_if_closed();
                if self
                    .operator_construct
                    .is_some_and(|depth| self.depth < depth)
                {
                    self.operator_construct = None;
                    self.operator_closed_at = Some(sig.start);
                    if !self.operator_seen {
                        // `operator()`, `operator(a.b)`: a function named `operator`.
                        self.judge_call_of(b"operator");
                    }
                }
            }
            TokenKind::Operator
                if !self.catalog.is_read_only_operator(text)
                    && self.function_write_is_open(false) =>
            {
                let name = super::reason::InlineName::new(text);
                self.findings.function_write = Some(Reason::Operator(name));
            }
            TokenKind::Identifier | TokenKind::QuotedIdentifier => self.identifier(&sig, text),
            _ => {}
        }
        if self.ctes.observe(&sig, text, self.depth) == CteEvent::Malformed {
            self.unrecognised("a CTE column list that is not one");
        }
    }

    fn dml(&mut self, kw: Kw) {
        // Right after `SELECT` or a comma, `insert`/`update`/`delete` can only
        // be a column name: PostgreSQL's grammar has no DML there.
        let previous = self.recent[0];
        if previous.is_some_and(|sig| sig.kind == TokenKind::Comma || sig.kw == Some(Kw::Select)) {
            return;
        }
        let reason = if self.depth > 0 && self.findings.saw_with {
            Reason::WritableCte
        } else {
            Reason::Writes(kw.name())
        };
        self.keyword_write(reason);
    }

    fn identifier(&mut self, sig: &Sig, text: &[u8]) {
        if self.operator_construct == Some(self.depth) {
            self.operator_schema(sig, text);
            return;
        }
        let bare = if sig.kind == TokenKind::QuotedIdentifier {
            text.get(1..text.len() - 1).unwrap_or_default()
        } else {
            text
        };
        if is_session_backend_relation(sig.kind, bare) {
            if self.findings.session_backend_state.is_none() {
                self.findings.session_backend_state = Some(Reason::SessionBackendState(
                    super::reason::InlineName::new(bare),
                ));
            }
        } else if is_node_state_relation(sig.kind, bare) {
            self.node_state(bare);
        }
        if self.catalog.knows_unlogged_relations()
            && let Some(name) = super::functions::pg_name(sig.kind, text)
            && self.catalog.is_unlogged_relation(name.as_bytes())
        {
            self.keyword_write(Reason::UnloggedRelation(super::reason::InlineName::new(
                name.as_bytes(),
            )));
        }
        if bare.len() >= 7
            && bare[..7].eq_ignore_ascii_case(b"pg_temp")
            && (bare.len() == 7 || bare[7] == b'_')
        {
            self.keyword_write(Reason::TempTable);
        }
        let Some(kw) = sig.kw else { return };
        let previous = self.recent_kw(0);
        match kw {
            Kw::Insert | Kw::Delete | Kw::Merge => self.dml(kw),
            Kw::Update if previous == Some(Kw::For) => {
                self.keyword_write(Reason::Locks("FOR UPDATE"))
            }
            Kw::Update if previous == Some(Kw::Key) && self.recent_kw(1) == Some(Kw::No) => {
                self.keyword_write(Reason::Locks("FOR NO KEY UPDATE"))
            }
            Kw::Update => self.dml(kw),
            Kw::Share if previous == Some(Kw::For) => {
                self.keyword_write(Reason::Locks("FOR SHARE"))
            }
            Kw::Share if previous == Some(Kw::Key) && self.recent_kw(1) == Some(Kw::For) => {
                self.keyword_write(Reason::Locks("FOR KEY SHARE"))
            }
            Kw::Into => self.keyword_write(Reason::SelectInto),
            Kw::Temp | Kw::Temporary
                if matches!(
                    previous,
                    Some(Kw::Into | Kw::Create | Kw::Replace | Kw::Local | Kw::Global)
                ) =>
            {
                self.findings.effects.insert(Effect::TEMP_TABLE);
            }
            Kw::Unlogged if matches!(previous, Some(Kw::Into | Kw::Create)) => {
                self.findings.effects.insert(Effect::UNLOGGED_RELATION);
            }
            Kw::Hold if previous == Some(Kw::With) => self.findings.hold_cursor = true,
            Kw::With => self.findings.saw_with = true,
            Kw::From if self.depth == 0 && self.findings.copy_direction.is_none() => {
                self.findings.copy_direction = Some(CopyDirection::From);
            }
            Kw::To if self.depth == 0 && self.findings.copy_direction.is_none() => {
                self.findings.copy_direction = Some(CopyDirection::ToPending);
            }
            _ => {}
        }
        self.track_atomic_body(kw, previous);
    }

    /// `CREATE FUNCTION … BEGIN ATOMIC … END`: `;` inside does not end the statement.
    fn track_atomic_body(&mut self, kw: Kw, previous: Option<Kw>) {
        if self.head[0].kw != Some(Kw::Create) {
            return;
        }
        match kw {
            Kw::Atomic if previous == Some(Kw::Begin) => self.atomic_depth += 1,
            Kw::Begin | Kw::Case if self.atomic_depth > 0 => self.atomic_depth += 1,
            Kw::End if self.atomic_depth > 0 => self.atomic_depth -= 1,
            _ => {}
        }
    }
}

/// What `OPERATOR(schema.op)` is made of: names, dots, the operator, its `)`.
fn may_be_in_operator_construct(kind: TokenKind) -> bool {
    matches!(
        kind,
        TokenKind::Identifier
            | TokenKind::QuotedIdentifier
            | TokenKind::Dot
            | TokenKind::Operator
            | TokenKind::CloseParen
    )
}

/// Relations that show this server's own state (sessions, locks, prepared
/// transactions, replication, statistics): every `pg_stat_*`/`pg_statio_*`
/// view and these. Matched by name wherever it stands (a column of that name
/// sends a statement to the primary too: unsure, the primary).
const NODE_STATE_RELATIONS: &[&[u8]] = &[
    b"pg_prepared_xacts",
    b"pg_locks",
    b"pg_replication_slots",
    b"pg_replication_origin_status",
    b"pg_backend_memory_contexts",
];

/// Relations that show the state of the session's own backend, which a
/// client's statements made there: its prepared statements and cursors.
const SESSION_BACKEND_RELATIONS: &[&[u8]] = &[b"pg_prepared_statements", b"pg_cursors"];

/// Whether `a` is the name `b` as written (`exact` for a quoted one; an
/// unquoted one in any case).
fn same_name(exact: bool, a: &[u8], b: &[u8]) -> bool {
    if exact {
        a == b
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

/// Whether a name (unquoted: any case; quoted: exact) is a node-state relation.
fn is_node_state_relation(kind: TokenKind, bare: &[u8]) -> bool {
    let exact = kind != TokenKind::Identifier;
    let starts = |prefix: &[u8]| {
        bare.get(..prefix.len())
            .is_some_and(|head| same_name(exact, head, prefix))
    };
    starts(b"pg_")
        && (starts(b"pg_stat_")
            || starts(b"pg_statio_")
            || NODE_STATE_RELATIONS
                .iter()
                .any(|name| same_name(exact, bare, name)))
}

/// Whether a name (unquoted: any case; quoted: exact) is a relation of the
/// session's own backend ([`SESSION_BACKEND_RELATIONS`]).
fn is_session_backend_relation(kind: TokenKind, bare: &[u8]) -> bool {
    let exact = kind != TokenKind::Identifier;
    SESSION_BACKEND_RELATIONS
        .iter()
        .any(|name| same_name(exact, bare, name))
}

/// Settings whose value on a standby differs from the primary's because it
/// is a standby.
pub(super) fn is_node_state_setting(name: &[u8]) -> bool {
    [&b"transaction_read_only"[..], b"in_hot_standby"]
        .iter()
        .any(|setting| name.eq_ignore_ascii_case(setting))
}
