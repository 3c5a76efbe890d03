//! String, dollar-quote and number literals, as scan.l reads them.

use super::{TokenKind, Unterminated, is_ident_cont, is_ident_start, is_space};

/// How a quoted string treats backslashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// A backslash is an ordinary byte (`'…'`, `U&'…'`).
    Plain,
    /// Like `Plain`, but `''` ends the string too (`B'…'`, `X'…'`: scan.l's
    /// bit and hex string states have no doubled-quote rule).
    NoDoubling,
    /// A backslash escapes the next byte (`E'…'`, or `'…'` with
    /// `standard_conforming_strings = off`).
    Backslash,
}

/// A quoted string whose opening quote is at `quote`; the token starts at `start`
/// (before any `E`/`B`/`X`/`U&` prefix). Handles `''` and the SQL-standard
/// continuation of a string by another one after a newline.
pub(super) fn scan_quoted(
    sql: &[u8],
    start: usize,
    quote: usize,
    scan: Scan,
    kind: TokenKind,
) -> (TokenKind, usize) {
    let _ = start;
    let mut pos = quote + 1;
    while pos < sql.len() {
        match sql[pos] {
            b'\\' if scan == Scan::Backslash => {
                if pos + 1 >= sql.len() {
                    break;
                }
                pos += 2;
            }
            b'\'' if scan != Scan::NoDoubling && sql.get(pos + 1) == Some(&b'\'') => pos += 2,
            b'\'' => {
                let closed = pos + 1;
                match continuation(sql, closed) {
                    Some(next_quote) => pos = next_quote + 1,
                    None => return (kind, closed),
                }
            }
            _ => pos += 1,
        }
    }
    (TokenKind::Unterminated(Unterminated::String), sql.len())
}

/// scan.l's `quotecontinue`: after a closing quote, whitespace holding a
/// newline, then a quote, continues the string. Returns that quote.
///
/// PostgreSQL's own scan.l also lets `--` comments stand in that gap; the
/// scanner pg_query bundles (PostgreSQL 17.7) does not, and we follow it so
/// token boundaries agree with the oracle. Either way the quoted parts and
/// every keyword keep their places: the readings differ only in whether a gap
/// comment is a token of its own, which is the safer reading for hints.
fn continuation(sql: &[u8], mut pos: usize) -> Option<usize> {
    while matches!(sql.get(pos), Some(b' ' | b'\t' | 0x0b | 0x0c)) {
        pos += 1;
    }
    if !matches!(sql.get(pos), Some(b'\n' | b'\r')) {
        return None;
    }
    while sql.get(pos).is_some_and(|&b| is_space(b)) {
        pos += 1;
    }
    (sql.get(pos) == Some(&b'\'')).then_some(pos)
}

/// The body of a dollar quote whose delimiter is `sql[start..body]`.
///
/// Like scan.l, every `$` inside the body is tried as a delimiter; a failed
/// candidate gives back its final `$`, which may open the real delimiter. Each
/// byte is thus looked at a bounded number of times.
pub(super) fn scan_dollar_body(sql: &[u8], start: usize, body: usize) -> (TokenKind, usize) {
    let delimiter = &sql[start..body];
    let mut pos = body;
    while pos < sql.len() {
        if sql[pos] != b'$' {
            pos += 1;
            continue;
        }
        let mut end = pos + 1;
        if sql.get(end).is_some_and(|&b| is_ident_start(b)) {
            while sql
                .get(end)
                .is_some_and(|&b| is_ident_start(b) || b.is_ascii_digit())
            {
                end += 1;
            }
        }
        if sql.get(end) == Some(&b'$') {
            if &sql[pos..=end] == delimiter {
                return (TokenKind::DollarString, end + 1);
            }
            pos = end;
        } else {
            pos = end.max(pos + 1);
        }
    }
    (
        TokenKind::Unterminated(Unterminated::DollarString),
        sql.len(),
    )
}

/// Digits with single `_` separators between them, from `pos` (which must be a digit);
/// returns the end (== `pos` when there is no digit).
fn digits(sql: &[u8], pos: usize, is_digit: fn(u8) -> bool) -> usize {
    let mut end = pos;
    let mut expect_digit_after = true;
    loop {
        match sql.get(end) {
            Some(&b) if is_digit(b) => {
                end += 1;
                expect_digit_after = false;
            }
            Some(b'_') if !expect_digit_after && sql.get(end + 1).is_some_and(|&b| is_digit(b)) => {
                end += 1;
                expect_digit_after = true;
            }
            _ => return end,
        }
    }
}

/// After a number ending at `end`: identifier bytes glued to it make it junk.
fn finish_number(sql: &[u8], kind: TokenKind, end: usize) -> (TokenKind, usize) {
    if sql.get(end).is_some_and(|&b| is_ident_start(b)) {
        let mut junk = end;
        while sql.get(junk).is_some_and(|&b| is_ident_cont(b)) {
            junk += 1;
        }
        return (TokenKind::Invalid, junk);
    }
    (kind, end)
}

/// A number starting at `start` (a digit, or `.` followed by a digit).
pub(super) fn scan_number(sql: &[u8], start: usize) -> (TokenKind, usize) {
    let radix_digit: Option<fn(u8) -> bool> =
        match (sql[start], sql.get(start + 1).map(u8::to_ascii_lowercase)) {
            (b'0', Some(b'x')) => Some(|b: u8| b.is_ascii_hexdigit()),
            (b'0', Some(b'o')) => Some(|b: u8| (b'0'..=b'7').contains(&b)),
            (b'0', Some(b'b')) => Some(|b: u8| b == b'0' || b == b'1'),
            _ => None,
        };
    if let Some(is_digit) = radix_digit {
        let body = start + 2;
        let leading = sql.get(body) == Some(&b'_');
        let end = digits(sql, body + usize::from(leading), is_digit);
        if end == body + usize::from(leading) {
            // `0x`, `0x_`: PostgreSQL rejects these ("invalid hexadecimal integer").
            return finish_number(sql, TokenKind::Invalid, body + usize::from(leading));
        }
        return finish_number(sql, TokenKind::Integer, end);
    }
    let is_dec = |b: u8| b.is_ascii_digit();
    let mut end = digits(sql, start, is_dec);
    let mut kind = TokenKind::Integer;
    if sql.get(end) == Some(&b'.') {
        if sql.get(end + 1) == Some(&b'.') && end > start {
            // `1..`: the integer, then `..`.
            return (TokenKind::Integer, end);
        }
        end = digits(sql, end + 1, is_dec);
        kind = TokenKind::Numeric;
    }
    if matches!(sql.get(end), Some(b'e' | b'E')) {
        let mut exponent = end + 1;
        let signed = matches!(sql.get(exponent), Some(b'+' | b'-'));
        if signed {
            exponent += 1;
        }
        let exponent_end = digits(sql, exponent, is_dec);
        if exponent_end > exponent {
            return finish_number(sql, TokenKind::Numeric, exponent_end);
        }
        if signed {
            // `1e+`: "trailing junk after numeric literal".
            return (TokenKind::Invalid, exponent);
        }
    }
    finish_number(sql, kind, end)
}

/// A parameter `$1` starting at `start` (a `$` followed by a digit): digits
/// only, as in the scanner of PostgreSQL 17 that pg_query bundles. An
/// identifier glued to it (`$1abc`, scan.l's `param_junk`) makes it one
/// invalid token; a prefixed literal (`$1E'…'`) is a token of its own.
pub(super) fn scan_param(sql: &[u8], start: usize) -> (TokenKind, usize) {
    let mut end = start + 1;
    while sql.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    let prefixed_literal = match sql.get(end).map(u8::to_ascii_lowercase) {
        Some(b'e' | b'b' | b'x') => sql.get(end + 1) == Some(&b'\''),
        Some(b'u') => {
            sql.get(end + 1) == Some(&b'&') && matches!(sql.get(end + 2), Some(b'\'' | b'"'))
        }
        _ => false,
    };
    if prefixed_literal {
        return (TokenKind::Param, end);
    }
    finish_number(sql, TokenKind::Param, end)
}
