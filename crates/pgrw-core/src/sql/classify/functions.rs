//! Function calls inside a statement: finding them (`name(`, `schema.name(`)
//! without mistaking grammar for calls, judging them with the
//! [`FunctionCatalog`](crate::FunctionCatalog), and reading `set_config`'s
//! `is_local` argument.

use super::Reason;
use super::effects::{DefaultIsolation, Effect, SessionEffects};
use super::reason::{InlineName, MAX_NAME_LEN};
use super::scan::{SetConfigCall, Sig, StatementScan};
use crate::catalog::{FunctionVerdict, PrimaryBecause};
use crate::sql::keywords::{
    Kw, is_grammar_before_paren, is_infix_keyword, leads_an_expression, lowercase,
};
use crate::sql::lexer::TokenKind;

/// A name as PostgreSQL resolves it, in a stack buffer.
pub(super) struct PgName {
    bytes: [u8; MAX_NAME_LEN],
    len: usize,
}

impl PgName {
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The name an identifier token denotes: unquoted → ASCII-lowercased;
/// `"…"` → verbatim with `""` undoubled. `None` for `U&"…"` (escapes we do
/// not decode) and names over PostgreSQL's 63-byte limit.
pub(super) fn pg_name(kind: TokenKind, text: &[u8]) -> Option<PgName> {
    match kind {
        TokenKind::Identifier => {
            let (bytes, len) = lowercase::<MAX_NAME_LEN>(text)?;
            Some(PgName { bytes, len })
        }
        TokenKind::QuotedIdentifier => {
            let inner = text
                .get(1..text.len().saturating_sub(1))
                .unwrap_or_default();
            let mut name = PgName {
                bytes: [0; MAX_NAME_LEN],
                len: 0,
            };
            let mut pos = 0;
            while pos < inner.len() {
                if name.len == MAX_NAME_LEN {
                    return None;
                }
                name.bytes[name.len] = inner[pos];
                name.len += 1;
                pos += if inner[pos] == b'"' { 2 } else { 1 };
            }
            Some(name)
        }
        _ => None,
    }
}

fn is_name_token(sig: &Sig) -> bool {
    matches!(
        sig.kind,
        TokenKind::Identifier | TokenKind::QuotedIdentifier | TokenKind::UnicodeIdentifier
    )
}

impl StatementScan<'_> {
    /// Called at a `(`: if the tokens before it name a function, judge the call.
    pub(super) fn check_call(&mut self) {
        // `U&"!006eextval" UESCAPE '!' (…)`: a call whose name (or schema,
        // `U&"…" UESCAPE '!' . f(…)`) pgrw does not decode.
        let escaped_name = self.names_uescape(0)
            || (self.recent[1].is_some_and(|sig| sig.kind == TokenKind::Dot)
                && self.names_uescape(2));
        if escaped_name {
            self.primary_call(
                b"U&\"\" UESCAPE",
                PrimaryBecause::OpaqueName,
                SessionEffects::NONE,
            );
            return;
        }
        let Some(name) = self.recent[0].filter(is_name_token) else {
            return;
        };
        let name_text = self.text(&name);
        let after_dot = self.recent[1].is_some_and(|sig| sig.kind == TokenKind::Dot);
        let qualified = after_dot && self.recent[2].as_ref().is_some_and(is_name_token);
        let (schema, before) = if qualified {
            (self.recent[2], self.recent[3])
        } else {
            (None, self.recent[1])
        };
        // After a dot a keyword is just a name (`t.all(…)` calls `t.all`).
        if name.kind == TokenKind::Identifier && !after_dot {
            if is_grammar_before_paren(name_text) || self.is_grammar_in_context(name_text, before) {
                return;
            }
            // `OPERATOR(pg_catalog.+)`: the operator inside is checked like
            // any other; only its schema needs a look.
            if name_text.eq_ignore_ascii_case(b"operator") {
                self.operator_construct = Some(self.depth + 1);
                self.operator_seen = false;
                return;
            }
        }
        // The statement's first word followed by `(` (`VALUES (`, `EXPLAIN (`, `COPY (`) is no call.
        let Some(before) = before else { return };
        // `x::numeric(10, 2)`, `AS alias(col)`, `) alias(col)`, `) OVER (…)`, `) FILTER (…)`,
        // `TABLESAMPLE bernoulli(…)`, `COPY t(col)`.
        let closes_operator_construct = self.operator_closed_at == Some(before.start);
        if matches!(before.kind, TokenKind::Typecast)
            || (before.kind == TokenKind::CloseParen && !closes_operator_construct)
            || matches!(before.kw, Some(Kw::As | Kw::Tablesample | Kw::Copy))
        {
            return;
        }
        let function = pg_name(name.kind, name_text);
        let schema_name = schema.map(|sig| pg_name(sig.kind, self.text(&sig)));
        let verdict = match (&function, &schema_name) {
            (Some(function), None) => self.catalog.judge(None, function.as_bytes()),
            (Some(function), Some(Some(schema))) => self
                .catalog
                .judge(Some(schema.as_bytes()), function.as_bytes()),
            _ => FunctionVerdict::Primary(PrimaryBecause::OpaqueName, SessionEffects::NONE),
        };
        match verdict {
            FunctionVerdict::ReadOnly => {}
            FunctionVerdict::Primary(because, effects) => {
                let name = function.as_ref().map_or(name_text, PgName::as_bytes);
                self.primary_call(name, because, effects);
            }
            FunctionVerdict::SetConfig if self.set_config.is_some() => {
                self.set_config_changes_session()
            }
            FunctionVerdict::SetConfig => {
                self.set_config = Some(SetConfigCall {
                    depth: self.depth + 1,
                    argument: 0,
                    tokens: [0; 3],
                    first: [None; 3],
                });
            }
        }
    }

    /// Whether `recent[at]` is the string of a `UESCAPE '…'` clause (which
    /// only follows a `U&"…"` identifier or a `U&'…'` string).
    fn names_uescape(&self, at: usize) -> bool {
        let string = self.recent.get(at).copied().flatten();
        let clause = self.recent.get(at + 1).copied().flatten();
        string.is_some_and(|sig| sig.kind == TokenKind::String)
            && clause.is_some_and(|sig| {
                sig.kind == TokenKind::Identifier
                    && self.text(&sig).eq_ignore_ascii_case(b"uescape")
            })
    }

    /// A call of `name` (unqualified) whose arguments are being read: judged
    /// by the catalog like any other call but `set_config`, which it cannot be.
    pub(super) fn judge_call_of(&mut self, name: &[u8]) {
        if let FunctionVerdict::Primary(because, effects) = self.catalog.judge(None, name) {
            self.primary_call(name, because, effects);
        }
    }

    /// Records a call of `name` that must run on the primary, and its effects.
    fn primary_call(&mut self, name: &[u8], because: PrimaryBecause, effects: SessionEffects) {
        if self.function_write_is_open(!because.hint_may_override()) {
            self.findings.function_write = Some(Reason::Function {
                name: InlineName::new(name),
                because,
            });
        }
        self.findings.effects = self.findings.effects.union(effects);
    }

    /// Follows the arguments of a pending `set_config(…)` call.
    pub(super) fn track_set_config(&mut self, sig: &Sig) {
        let Some(mut call) = self.set_config else {
            return;
        };
        if self.depth < call.depth {
            return;
        }
        let closes_call = sig.kind == TokenKind::CloseParen && self.depth == call.depth;
        if sig.kind == TokenKind::Comma && self.depth == call.depth {
            call.argument += 1;
        } else if !closes_call
            && let Some(at) = usize::try_from(call.argument).ok().filter(|at| *at < 3)
        {
            call.tokens[at] += 1;
            if call.tokens[at] == 1 {
                call.first[at] = Some(*sig);
            }
        }
        self.set_config = Some(call);
    }

    /// After a `)`: if it closed the pending `set_config`, judge it.
    pub(super) fn finish_set_config_if_closed(&mut self) {
        let Some(call) = self.set_config else { return };
        if self.depth + 1 != call.depth {
            return;
        }
        self.set_config = None;
        let is_local = call.first[2].is_some_and(|sig| sig.kw == Some(Kw::True));
        if call.argument == 2 && call.tokens[2] == 1 && is_local {
            self.findings.effects.insert(Effect::SET_LOCAL);
            return;
        }
        self.set_config_changes_session();
        if call.tokens[0] == 1
            && self
                .plain_string(call.first[0])
                .is_some_and(|name| name.eq_ignore_ascii_case(b"default_transaction_isolation"))
        {
            // As `SET default_transaction_isolation`: a value pgrw cannot
            // read (an expression, a parameter) counts as serializable.
            let value = self
                .plain_string(call.first[1])
                .filter(|_| call.tokens[1] == 1)
                .and_then(|value| std::str::from_utf8(value).ok());
            self.findings.effects.default_isolation =
                Some(value.map_or(DefaultIsolation::Serializable, DefaultIsolation::of_setting));
        }
    }

    /// The contents of `sig` if it is a plain `'…'` string with no doubled quote.
    fn plain_string(&self, sig: Option<Sig>) -> Option<&[u8]> {
        let sig = sig.filter(|sig| sig.kind == TokenKind::String)?;
        let inner = self.text(&sig).strip_prefix(b"'")?.strip_suffix(b"'")?;
        (!inner.contains(&b'\'')).then_some(inner)
    }

    /// A `set_config` whose `is_local` is not literally `true`: a session change.
    pub(super) fn set_config_changes_session(&mut self) {
        let reason = Reason::Function {
            name: InlineName::new(b"set_config"),
            because: PrimaryBecause::ChangesSession,
        };
        if self.function_write_is_open(true) {
            self.findings.function_write = Some(reason);
        }
        self.findings.effects.insert(Effect::SET_CONFIG);
    }

    /// A schema inside `OPERATOR(…)`: only `pg_catalog` is known to hold
    /// read-only operators.
    pub(super) fn operator_schema(&mut self, sig: &Sig, text: &[u8]) {
        let builtin = sig.kind == TokenKind::Identifier && text.eq_ignore_ascii_case(b"pg_catalog");
        if !builtin && self.function_write_is_open(false) {
            self.findings.function_write = Some(Reason::Operator(InlineName::new(text)));
        }
    }

    /// Whether an unquoted keyword followed by `(` is grammar where it stands:
    /// a type-or-function-name keyword right after an operand (`t JOIN (…)`,
    /// `x LIKE (…)`; a call cannot follow an operand), `JOIN` after a join
    /// kind, `character varying(…)`, `ORDER BY (…)`, `GROUPING SETS (…)`,
    /// `GROUP BY ROLLUP (…)`. Only called for an unqualified name, so
    /// `recent[1]` is `before` and `recent[2]` the token before it.
    fn is_grammar_in_context(&self, name: &[u8], before: Option<Sig>) -> bool {
        let Some(before) = before else { return false };
        let before_text = self.text(&before);
        let before_is = |words: &[&[u8]]| {
            before.kind == TokenKind::Identifier
                && words
                    .iter()
                    .any(|word| before_text.eq_ignore_ascii_case(word))
        };
        let named = |word: &[u8]| name.eq_ignore_ascii_case(word);
        if is_infix_keyword(name) {
            let operand_end = match before.kind {
                TokenKind::Identifier => {
                    !is_grammar_before_paren(before_text)
                        && !is_infix_keyword(before_text)
                        && !leads_an_expression(before_text)
                }
                // The `)` of `OPERATOR(schema.op)` ends an operator, not an operand.
                TokenKind::CloseParen => self.operator_closed_at != Some(before.start),
                TokenKind::QuotedIdentifier
                | TokenKind::UnicodeIdentifier
                | TokenKind::CloseBracket
                | TokenKind::Param => true,
                kind => kind.is_literal(),
            };
            let join_kind = named(b"join")
                && before_is(&[
                    b"cross", b"inner", b"left", b"right", b"full", b"outer", b"natural",
                ]);
            return operand_end || join_kind;
        }
        let group_by = before_is(&[b"by"])
            && self.recent[2].is_some_and(|sig| {
                sig.kind == TokenKind::Identifier && self.text(&sig).eq_ignore_ascii_case(b"group")
            });
        (named(b"varying") && before_is(&[b"character", b"char", b"bit", b"nchar"]))
            || (named(b"by") && before_is(&[b"group", b"order", b"partition"]))
            || (named(b"sets") && before_is(&[b"grouping"]))
            || ((named(b"rollup") || named(b"cube")) && group_by)
    }

    /// Whether a new function/operator reason should be recorded: when none
    /// is yet, or when it is `definite` and the recorded one is a doubt a
    /// replica hint could override (a hint must never hide a definite write).
    pub(super) fn function_write_is_open(&self, definite: bool) -> bool {
        match &self.findings.function_write {
            None => true,
            Some(recorded) => definite && recorded.hint_may_override(),
        }
    }
}
