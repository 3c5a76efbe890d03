//! PostgreSQL's lexical rules (`src/backend/parser/scan.l`), as byte offsets.
//!
//! [`tokens`] splits SQL text into [`Token`]s the way PostgreSQL's own scanner
//! does, so that token boundaries can be compared with `pg_query::scan`:
//! whitespace is skipped, comments are yielded. It never panics, never
//! allocates, and never looks at a byte more than a bounded number of times,
//! so it runs in linear time on any input.
//!
//! Departures from scan.l, all in the conservative direction:
//! - input PostgreSQL rejects (numeric junk such as `123abc`, `0x`, `$1abc`,
//!   `1e+`) becomes one [`TokenKind::Invalid`] token instead of an error;
//! - an unterminated comment, string, quoted identifier or dollar quote becomes
//!   one [`TokenKind::Unterminated`] token running to the end of the input;
//! - `N'…'` yields the identifier `N` and then the string, exactly as
//!   PostgreSQL's scanner does (it emits the keyword NCHAR for the `N`).

mod literals;
mod operators;

use literals::{Scan, scan_dollar_body, scan_number, scan_param, scan_quoted};

/// The lexical category of a [`Token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// `-- …` to the end of the line, or a (nested) `/* … */` block.
    Comment,
    /// An unquoted identifier or keyword (`select`, `users`, `a$b`, `ñame`).
    Identifier,
    /// A quoted identifier `"…"` (with `""` for a quote).
    QuotedIdentifier,
    /// A quoted identifier with Unicode escapes, `U&"…"`.
    UnicodeIdentifier,
    /// A standard string `'…'` (with `''`, and `'a'`⏎`'b'` continuation).
    String,
    /// An escape string `E'…'` (backslash escapes).
    EscapeString,
    /// A string with Unicode escapes, `U&'…'` (a following `UESCAPE` is a separate token).
    UnicodeString,
    /// A bit string `B'…'`.
    BitString,
    /// A hexadecimal bit string `X'…'`.
    HexString,
    /// A dollar-quoted string `$$…$$` or `$tag$…$tag$`.
    DollarString,
    /// An integer: decimal, `0x…`, `0o…` or `0b…`, with `_` separators.
    Integer,
    /// A decimal or exponent number: `1.5`, `.5`, `1.`, `1e10`.
    Numeric,
    /// A positional parameter `$1`.
    Param,
    /// An operator (`+`, `<>`, `@>`, `->>`, `=`, …) other than those below.
    Operator,
    /// `::`
    Typecast,
    /// `:=`
    ColonEquals,
    /// `=>`
    EqualsGreater,
    /// `..`
    DotDot,
    /// `;`
    Semicolon,
    /// `(`
    OpenParen,
    /// `)`
    CloseParen,
    /// `,`
    Comma,
    /// `[`
    OpenBracket,
    /// `]`
    CloseBracket,
    /// `.`
    Dot,
    /// `:` (array slices)
    Colon,
    /// One byte that starts no token (`\`, `{`, `}`, a lone `$`, a control byte):
    /// PostgreSQL passes it to the grammar, which rejects it.
    Other,
    /// Text PostgreSQL's scanner rejects (trailing junk after a number or
    /// parameter, `0x` without digits, `1e+` without exponent).
    Invalid,
    /// A literal or comment that reaches the end of the input unclosed.
    Unterminated(Unterminated),
}

impl TokenKind {
    /// Whether the token is a constant: a string of any form or a number.
    pub fn is_literal(self) -> bool {
        matches!(
            self,
            TokenKind::String
                | TokenKind::EscapeString
                | TokenKind::UnicodeString
                | TokenKind::BitString
                | TokenKind::HexString
                | TokenKind::DollarString
                | TokenKind::Integer
                | TokenKind::Numeric
        )
    }
}

/// What was left open by an [`TokenKind::Unterminated`] token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unterminated {
    /// A `/* …` block comment.
    BlockComment,
    /// A string literal of any form.
    String,
    /// A `"…` quoted identifier.
    QuotedIdentifier,
    /// A `$tag$…` dollar quote.
    DollarString,
}

/// One token: its kind and its byte range `start..end` in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token {
    /// The lexical category.
    pub kind: TokenKind,
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Token {
    /// The token's bytes in `sql` (the input it was lexed from).
    pub fn text<'a>(&self, sql: &'a [u8]) -> &'a [u8] {
        sql.get(self.start..self.end).unwrap_or_default()
    }

    /// Whether this is a comment (which the grammar ignores).
    pub fn is_comment(&self) -> bool {
        self.kind == TokenKind::Comment
    }
}

/// How plain `'…'` strings treat backslashes (PostgreSQL's
/// `standard_conforming_strings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StringEscapes {
    /// `standard_conforming_strings = on` (the default since 9.1): a backslash
    /// in `'…'` is an ordinary character.
    #[default]
    Standard,
    /// `standard_conforming_strings = off`: `'…'` behaves like `E'…'`.
    Backslash,
}

/// Tokens of `sql` under the default `standard_conforming_strings = on`.
pub fn tokens(sql: &[u8]) -> Tokens<'_> {
    tokens_with(sql, StringEscapes::Standard)
}

/// Tokens of `sql` with plain strings read as `escapes` says.
pub fn tokens_with(sql: &[u8], escapes: StringEscapes) -> Tokens<'_> {
    Tokens {
        sql,
        pos: 0,
        escapes,
        sign_run_end: 0,
    }
}

/// Iterator over the [`Token`]s of one SQL text; see [`tokens`].
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    sql: &'a [u8],
    pos: usize,
    escapes: StringEscapes,
    /// End of a run of `+`/`-` left over after an operator lost its trailing
    /// signs: every byte before it is a one-byte token, known without rescanning.
    sign_run_end: usize,
}

/// Byte classes of scan.l, looked up in one table.
const SPACE: u8 = 1;
const IDENT_START: u8 = 2;
const IDENT_CONT: u8 = 4;

static BYTE_CLASSES: [u8; 256] = byte_classes();

const fn byte_classes() -> [u8; 256] {
    let mut classes = [0u8; 256];
    let mut byte = 0usize;
    while byte < 256 {
        let b = byte as u8;
        let mut class = 0;
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            class |= SPACE;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            class |= IDENT_START | IDENT_CONT;
        }
        if b.is_ascii_digit() || b == b'$' {
            class |= IDENT_CONT;
        }
        classes[byte] = class;
        byte += 1;
    }
    classes
}

/// scan.l's `space`.
#[inline]
pub(crate) fn is_space(byte: u8) -> bool {
    BYTE_CLASSES[usize::from(byte)] & SPACE != 0
}

/// scan.l's `ident_start`: a letter, `_`, or any byte of a multi-byte character.
#[inline]
pub(crate) fn is_ident_start(byte: u8) -> bool {
    BYTE_CLASSES[usize::from(byte)] & IDENT_START != 0
}

/// scan.l's `ident_cont`: `ident_start`, a digit, or `$`.
#[inline]
pub(crate) fn is_ident_cont(byte: u8) -> bool {
    BYTE_CLASSES[usize::from(byte)] & IDENT_CONT != 0
}

impl Tokens<'_> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.sql.get(at).copied()
    }

    fn next_token(&mut self) -> Option<Token> {
        let sql = self.sql;
        while self.byte(self.pos).is_some_and(is_space) {
            self.pos += 1;
        }
        let start = self.pos;
        let first = self.byte(start)?;
        let second = self.byte(start + 1);
        let (kind, end) = match first {
            _ if start < self.sign_run_end => (TokenKind::Operator, start + 1),
            b'-' if second == Some(b'-') => (TokenKind::Comment, line_comment_end(sql, start)),
            b'/' if second == Some(b'*') => block_comment(sql, start),
            b'\'' => self.string_at(start, start, TokenKind::String),
            b'"' => quoted_identifier(sql, start, start, TokenKind::QuotedIdentifier),
            b'$' => self.dollar(start),
            b'0'..=b'9' => scan_number(sql, start),
            b'.' if second.is_some_and(|b| b.is_ascii_digit()) => scan_number(sql, start),
            b'.' if second == Some(b'.') => (TokenKind::DotDot, start + 2),
            b'.' => (TokenKind::Dot, start + 1),
            b':' if second == Some(b':') => (TokenKind::Typecast, start + 2),
            b':' if second == Some(b'=') => (TokenKind::ColonEquals, start + 2),
            b':' => (TokenKind::Colon, start + 1),
            b';' => (TokenKind::Semicolon, start + 1),
            b'(' => (TokenKind::OpenParen, start + 1),
            b')' => (TokenKind::CloseParen, start + 1),
            b',' => (TokenKind::Comma, start + 1),
            b'[' => (TokenKind::OpenBracket, start + 1),
            b']' => (TokenKind::CloseBracket, start + 1),
            _ if operators::is_op_char(first) => {
                let op = operators::scan_operator(sql, start);
                if op.sign_run_end > op.end {
                    self.sign_run_end = op.sign_run_end;
                }
                (op.kind, op.end)
            }
            _ if is_ident_start(first) => self.word(start),
            _ => (TokenKind::Other, start + 1),
        };
        self.pos = end;
        Some(Token { kind, start, end })
    }

    /// An identifier, or a prefixed literal (`E'…'`, `B'…'`, `X'…'`, `U&'…'`, `U&"…"`).
    fn word(&self, start: usize) -> (TokenKind, usize) {
        let sql = self.sql;
        let first = sql[start].to_ascii_lowercase();
        let second = self.byte(start + 1);
        match (first, second) {
            (b'e', Some(b'\'')) => scan_quoted(
                sql,
                start,
                start + 1,
                Scan::Backslash,
                TokenKind::EscapeString,
            ),
            (b'b', Some(b'\'')) => scan_quoted(
                sql,
                start,
                start + 1,
                Scan::NoDoubling,
                TokenKind::BitString,
            ),
            (b'x', Some(b'\'')) => scan_quoted(
                sql,
                start,
                start + 1,
                Scan::NoDoubling,
                TokenKind::HexString,
            ),
            (b'u', Some(b'&')) if self.byte(start + 2) == Some(b'\'') => {
                scan_quoted(sql, start, start + 2, Scan::Plain, TokenKind::UnicodeString)
            }
            (b'u', Some(b'&')) if self.byte(start + 2) == Some(b'"') => {
                quoted_identifier(sql, start, start + 2, TokenKind::UnicodeIdentifier)
            }
            // `N'…'`: like PostgreSQL, the `N` is a token of its own.
            _ => {
                let mut end = start + 1;
                while self.byte(end).is_some_and(is_ident_cont) {
                    end += 1;
                }
                (TokenKind::Identifier, end)
            }
        }
    }

    fn string_at(&self, start: usize, quote: usize, kind: TokenKind) -> (TokenKind, usize) {
        let scan = match self.escapes {
            StringEscapes::Standard => Scan::Plain,
            StringEscapes::Backslash => Scan::Backslash,
        };
        scan_quoted(self.sql, start, quote, scan, kind)
    }

    /// `$1`, `$$…$$`, `$tag$…$tag$`, or a lone `$`.
    fn dollar(&self, start: usize) -> (TokenKind, usize) {
        let sql = self.sql;
        match self.byte(start + 1) {
            Some(b'0'..=b'9') => scan_param(sql, start),
            Some(b'$') => scan_dollar_body(sql, start, start + 2),
            Some(b) if is_ident_start(b) => {
                let mut end = start + 2;
                while self
                    .byte(end)
                    .is_some_and(|b| is_ident_start(b) || b.is_ascii_digit())
                {
                    end += 1;
                }
                if self.byte(end) == Some(b'$') {
                    scan_dollar_body(sql, start, end + 1)
                } else {
                    (TokenKind::Other, start + 1)
                }
            }
            _ => (TokenKind::Other, start + 1),
        }
    }
}

/// End of a `--` comment: the next newline (not included) or the end of input.
pub(crate) fn line_comment_end(sql: &[u8], start: usize) -> usize {
    let mut end = start;
    while sql.get(end).is_some_and(|&b| b != b'\n' && b != b'\r') {
        end += 1;
    }
    end
}

/// A nested `/* … */` comment starting at `start`.
fn block_comment(sql: &[u8], start: usize) -> (TokenKind, usize) {
    let mut depth = 1usize;
    let mut pos = start + 2;
    while pos < sql.len() {
        match (sql[pos], sql.get(pos + 1)) {
            (b'/', Some(b'*')) => {
                depth += 1;
                pos += 2;
            }
            (b'*', Some(b'/')) => {
                depth -= 1;
                pos += 2;
                if depth == 0 {
                    return (TokenKind::Comment, pos);
                }
            }
            _ => pos += 1,
        }
    }
    (
        TokenKind::Unterminated(Unterminated::BlockComment),
        sql.len(),
    )
}

/// A `"…"` identifier whose opening quote is at `quote`.
fn quoted_identifier(
    sql: &[u8],
    start: usize,
    quote: usize,
    kind: TokenKind,
) -> (TokenKind, usize) {
    let mut pos = quote + 1;
    while pos < sql.len() {
        if sql[pos] == b'"' {
            if sql.get(pos + 1) == Some(&b'"') {
                pos += 2;
                continue;
            }
            return (kind, pos + 1);
        }
        pos += 1;
    }
    let _ = start;
    (
        TokenKind::Unterminated(Unterminated::QuotedIdentifier),
        sql.len(),
    )
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        self.next_token()
    }
}

impl std::iter::FusedIterator for Tokens<'_> {}
