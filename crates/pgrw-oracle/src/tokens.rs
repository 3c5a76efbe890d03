//! Token boundaries: pgrw's lexer against PostgreSQL's own scanner
//! (`pg_query::scan`, which runs scan.l's `core_yylex` without the grammar).
//!
//! Both sides are reduced to `(start, end, category)` triples and compared
//! exactly. The categories are coarse on purpose: pgrw does not tell keywords
//! from identifiers (PostgreSQL does), and PostgreSQL names a few operators
//! (`<=`, `!=`, `::`) that pgrw lumps with the rest. Known, harmless
//! differences in *kind* are folded here; boundaries are never adjusted:
//! - PostgreSQL lexes `-1` as the operator `-` then `1` (scan.l has no signed
//!   numbers; the grammar folds the minus later), and so does pgrw, so no
//!   folding is needed there. Likewise `=-1` is `=`, `-`, `1`: an operator may
//!   not end in `+`/`-` unless it contains one of `~!@#%^&|\`?`.
//! - `'a'` newline `'b'` is one string token on both sides (string continuation);
//!   `U&'…' UESCAPE '!'` is three tokens on both sides (the merge happens in
//!   PostgreSQL's grammar filter, which `scan` does not run).
//! - `N'…'` is the keyword NCHAR (`N`) then a string, on both sides.
//!
//! One systematic difference is folded, on PostgreSQL's side:
//! - `$1abc`: the scanner bundled with pg_query 6.2.1 (PostgreSQL 17.7) has no
//!   `param_junk` rule, so it yields PARAM `$1` then the identifier `abc`;
//!   pgrw follows scan.l's documented intent ("disallow strings matched by …
//!   param_junk") and yields one `Invalid` token. Harmless for routing: an
//!   `Invalid` token sends the text to the primary. [`postgres_boundaries`]
//!   merges such a pair into one [`Category::Rejected`] token.

use pg_query::protobuf::Token as PgToken;
use pgrw_core::sql::lexer::{self, TokenKind};

/// A coarse lexical category both scanners can be mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// `--` or `/* */` comment.
    Comment,
    /// Identifier or keyword, quoted or not.
    Word,
    /// Any string literal form, dollar quotes included.
    String,
    /// Integer or decimal number.
    Number,
    /// `$1`.
    Param,
    /// An operator, named or not (`+`, `<=`, `::`, `..`, `=>`, `:=`).
    Operator,
    /// `( ) , ; [ ] . :`
    Punctuation,
    /// A byte that starts no token (PostgreSQL passes it on as itself).
    Other,
    /// pgrw reports text PostgreSQL would reject (never expected when `scan` succeeded).
    Rejected,
}

/// One token reduced to what both scanners can say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundary {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
    /// Its coarse category.
    pub category: Category,
}

/// Where the two scanners first disagree on one SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMismatch {
    /// Index of the first differing token.
    pub index: usize,
    /// PostgreSQL's token there, if any.
    pub postgres: Option<Boundary>,
    /// pgrw's token there, if any.
    pub pgrw: Option<Boundary>,
}

impl std::fmt::Display for TokenMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "token #{}: postgres {:?}, pgrw {:?}",
            self.index, self.postgres, self.pgrw
        )
    }
}

/// PostgreSQL's tokens of `sql`; `Err` when its scanner rejects the text.
pub fn postgres_boundaries(sql: &str) -> Result<Vec<Boundary>, pg_query::Error> {
    let scanned = pg_query::scan(sql)?;
    let mut boundaries: Vec<Boundary> = Vec::with_capacity(scanned.tokens.len());
    for token in &scanned.tokens {
        let boundary = Boundary {
            start: usize::try_from(token.start).unwrap_or(0),
            end: usize::try_from(token.end).unwrap_or(0),
            category: postgres_category(token.token, token.keyword_kind),
        };
        match boundaries.last_mut() {
            Some(param) if is_param_junk(sql.as_bytes(), param, &boundary) => {
                *param = Boundary {
                    start: param.start,
                    end: boundary.end,
                    category: Category::Rejected,
                };
            }
            _ => boundaries.push(boundary),
        }
    }
    Ok(boundaries)
}

/// A parameter immediately followed by an unquoted identifier (`$1abc`), which
/// PostgreSQL's scan.l calls `param_junk`; see the module documentation.
fn is_param_junk(sql: &[u8], param: &Boundary, next: &Boundary) -> bool {
    let word = sql.get(next.start..next.end).unwrap_or_default();
    let unquoted_identifier = word
        .first()
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_' || b >= 0x80)
        && word
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80);
    param.category == Category::Param
        && next.category == Category::Word
        && next.start == param.end
        && unquoted_identifier
}

/// pgrw's tokens of `sql`.
pub fn pgrw_boundaries(sql: &[u8]) -> Vec<Boundary> {
    lexer::tokens(sql)
        .map(|token| Boundary {
            start: token.start,
            end: token.end,
            category: pgrw_category(token.kind),
        })
        .collect()
}

/// Compares the two scanners on `sql`. `Ok(None)` when they agree, `Ok(Some)`
/// with the first difference, `Err` when PostgreSQL's scanner rejects the text
/// (then there is nothing to compare against).
pub fn compare_tokens(sql: &str) -> Result<Option<TokenMismatch>, pg_query::Error> {
    let postgres = postgres_boundaries(sql)?;
    let pgrw = pgrw_boundaries(sql.as_bytes());
    let longest = postgres.len().max(pgrw.len());
    Ok((0..longest).find_map(|index| {
        let (ours, theirs) = (pgrw.get(index).copied(), postgres.get(index).copied());
        (ours != theirs).then_some(TokenMismatch {
            index,
            postgres: theirs,
            pgrw: ours,
        })
    }))
}

fn postgres_category(token: i32, keyword_kind: i32) -> Category {
    if keyword_kind != 0 {
        return Category::Word;
    }
    if let Ok(ascii) = u8::try_from(token) {
        return match ascii {
            b',' | b'(' | b')' | b'[' | b']' | b'.' | b';' | b':' => Category::Punctuation,
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' | b'=' => Category::Operator,
            _ => Category::Other,
        };
    }
    match PgToken::try_from(token) {
        Ok(PgToken::SqlComment | PgToken::CComment) => Category::Comment,
        Ok(PgToken::Ident | PgToken::Uident) => Category::Word,
        Ok(PgToken::Sconst | PgToken::Usconst | PgToken::Bconst | PgToken::Xconst) => {
            Category::String
        }
        Ok(PgToken::Iconst | PgToken::Fconst) => Category::Number,
        Ok(PgToken::Param) => Category::Param,
        Ok(
            PgToken::Op
            | PgToken::Typecast
            | PgToken::DotDot
            | PgToken::ColonEquals
            | PgToken::EqualsGreater
            | PgToken::LessEquals
            | PgToken::GreaterEquals
            | PgToken::NotEquals,
        ) => Category::Operator,
        _ => Category::Other,
    }
}

fn pgrw_category(kind: TokenKind) -> Category {
    match kind {
        TokenKind::Comment => Category::Comment,
        TokenKind::Identifier | TokenKind::QuotedIdentifier | TokenKind::UnicodeIdentifier => {
            Category::Word
        }
        TokenKind::String
        | TokenKind::EscapeString
        | TokenKind::UnicodeString
        | TokenKind::BitString
        | TokenKind::HexString
        | TokenKind::DollarString => Category::String,
        TokenKind::Integer | TokenKind::Numeric => Category::Number,
        TokenKind::Param => Category::Param,
        TokenKind::Operator
        | TokenKind::Typecast
        | TokenKind::ColonEquals
        | TokenKind::EqualsGreater
        | TokenKind::DotDot => Category::Operator,
        TokenKind::Semicolon
        | TokenKind::OpenParen
        | TokenKind::CloseParen
        | TokenKind::Comma
        | TokenKind::OpenBracket
        | TokenKind::CloseBracket
        | TokenKind::Dot
        | TokenKind::Colon => Category::Punctuation,
        TokenKind::Other => Category::Other,
        TokenKind::Invalid | TokenKind::Unterminated(_) => Category::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(boundaries: &[Boundary]) -> Vec<(usize, usize)> {
        boundaries.iter().map(|b| (b.start, b.end)).collect()
    }

    #[test]
    fn postgres_splits_a_minus_from_the_number_after_it() {
        let tokens = postgres_boundaries("SELECT -1").expect("scans");
        assert_eq!(spans(&tokens), [(0, 6), (7, 8), (8, 9)]);
        assert_eq!(tokens[1].category, Category::Operator);
    }

    #[test]
    fn a_parameter_glued_to_an_identifier_is_folded_into_one_rejected_token() {
        let tokens = postgres_boundaries("SELECT $1abc").expect("scans");
        assert_eq!(
            tokens[1],
            Boundary {
                start: 7,
                end: 12,
                category: Category::Rejected
            }
        );
    }

    #[test]
    fn a_parameter_before_a_unicode_identifier_is_not_folded() {
        let tokens = postgres_boundaries("SELECT $1U&\"a\"").expect("scans");
        assert_eq!(tokens[1].category, Category::Param);
    }

    #[test]
    fn comments_are_tokens_on_both_sides() {
        let sql = "SELECT 1 /* a /* b */ c */ -- d";
        let ours = pgrw_boundaries(sql.as_bytes());
        assert_eq!(postgres_boundaries(sql).expect("scans"), ours);
        assert_eq!(
            ours.iter()
                .filter(|b| b.category == Category::Comment)
                .count(),
            2
        );
    }
}
