//! The lexer follows PostgreSQL's scan.l: one test per literal form and rule.

use pgrw_core::sql::lexer::{
    StringEscapes, Token, TokenKind, TokenKind::*, Unterminated, tokens, tokens_with,
};

/// (kind, text) of every token.
fn lex(sql: &str) -> Vec<(TokenKind, &str)> {
    tokens(sql.as_bytes())
        .map(|t: Token| (t.kind, &sql[t.start..t.end]))
        .collect()
}

fn lex_off(sql: &str) -> Vec<(TokenKind, &str)> {
    tokens_with(sql.as_bytes(), StringEscapes::Backslash)
        .map(|t| (t.kind, &sql[t.start..t.end]))
        .collect()
}

#[test]
fn whitespace_is_skipped_and_words_are_identifiers() {
    assert_eq!(
        lex(" SELECT\t a\n"),
        [(Identifier, "SELECT"), (Identifier, "a")]
    );
}

#[test]
fn line_comment_runs_to_the_newline() {
    assert_eq!(
        lex("a -- note\nb"),
        [(Identifier, "a"), (Comment, "-- note"), (Identifier, "b")]
    );
}

#[test]
fn block_comments_nest() {
    assert_eq!(
        lex("/* a /* b */ c */ x"),
        [(Comment, "/* a /* b */ c */"), (Identifier, "x")]
    );
}

#[test]
fn unterminated_block_comment_runs_to_the_end() {
    assert_eq!(
        lex("x /* a /* b */"),
        [
            (Identifier, "x"),
            (Unterminated(Unterminated::BlockComment), "/* a /* b */")
        ]
    );
}

#[test]
fn string_doubles_its_quote() {
    assert_eq!(lex("'it''s'"), [(String, "'it''s'")]);
}

#[test]
fn string_continues_after_a_newline() {
    assert_eq!(
        lex("'a'\n  'b' c"),
        [(String, "'a'\n  'b'"), (Identifier, "c")]
    );
}

#[test]
fn string_does_not_continue_across_a_line_comment_as_pg_query_scans_it() {
    assert_eq!(
        lex("'a' -- x\n'b'"),
        [(String, "'a'"), (Comment, "-- x"), (String, "'b'")]
    );
}

#[test]
fn strings_on_one_line_do_not_continue() {
    assert_eq!(lex("'a' 'b'"), [(String, "'a'"), (String, "'b'")]);
}

#[test]
fn backslash_is_ordinary_in_a_standard_string() {
    assert_eq!(lex(r"'a\' x"), [(String, r"'a\'"), (Identifier, "x")]);
}

#[test]
fn backslash_escapes_a_quote_when_standard_conforming_strings_is_off() {
    assert_eq!(
        lex_off(r"'a\'b' x"),
        [(String, r"'a\'b'"), (Identifier, "x")]
    );
}

#[test]
fn escape_string_honours_backslash_escapes() {
    assert_eq!(
        lex(r"E'a\'b\\' x"),
        [(EscapeString, r"E'a\'b\\'"), (Identifier, "x")]
    );
}

#[test]
fn unicode_string_and_uescape_are_separate_tokens() {
    assert_eq!(
        lex(r"U&'d!0061t' UESCAPE '!'"),
        [
            (UnicodeString, r"U&'d!0061t'"),
            (Identifier, "UESCAPE"),
            (String, "'!'")
        ]
    );
}

#[test]
fn bit_and_hex_strings() {
    assert_eq!(
        lex("B'101' x'ff'"),
        [(BitString, "B'101'"), (HexString, "x'ff'")]
    );
}

#[test]
fn national_string_is_n_then_a_string() {
    assert_eq!(lex("N'abc'"), [(Identifier, "N"), (String, "'abc'")]);
}

#[test]
fn dollar_quote_without_tag() {
    assert_eq!(
        lex("$$ it's $$ x"),
        [(DollarString, "$$ it's $$"), (Identifier, "x")]
    );
}

#[test]
fn dollar_quote_with_tag_ignores_other_tags() {
    assert_eq!(
        lex("$fn$ $$ $x$ $fn$;"),
        [(DollarString, "$fn$ $$ $x$ $fn$"), (Semicolon, ";")]
    );
}

#[test]
fn dollar_quote_closes_on_a_tag_glued_after_a_failed_one() {
    assert_eq!(lex("$a$ $b$a$"), [(DollarString, "$a$ $b$a$")]);
}

#[test]
fn dollar_digit_is_a_parameter_not_a_tag() {
    assert_eq!(
        lex("$1 + $23"),
        [(Param, "$1"), (Operator, "+"), (Param, "$23")]
    );
}

#[test]
fn unterminated_dollar_quote_runs_to_the_end() {
    assert_eq!(
        lex("$q$ abc $$"),
        [(Unterminated(Unterminated::DollarString), "$q$ abc $$")]
    );
}

#[test]
fn identifier_may_contain_dollar_and_non_ascii() {
    assert_eq!(lex("a$b ñame"), [(Identifier, "a$b"), (Identifier, "ñame")]);
}

#[test]
fn quoted_identifier_doubles_its_quote() {
    assert_eq!(
        lex(r#""a""b".c"#),
        [
            (QuotedIdentifier, r#""a""b""#),
            (Dot, "."),
            (Identifier, "c")
        ]
    );
}

#[test]
fn unicode_quoted_identifier() {
    assert_eq!(
        lex(r#"U&"d\0061t""#),
        [(UnicodeIdentifier, r#"U&"d\0061t""#)]
    );
}

#[test]
fn unterminated_string_and_identifier_run_to_the_end() {
    assert_eq!(lex("'abc"), [(Unterminated(Unterminated::String), "'abc")]);
    assert_eq!(
        lex("\"abc"),
        [(Unterminated(Unterminated::QuotedIdentifier), "\"abc")]
    );
    assert_eq!(
        lex(r"E'abc\"),
        [(Unterminated(Unterminated::String), r"E'abc\")]
    );
}

#[test]
fn numbers_of_every_form() {
    assert_eq!(
        lex("1 1.5 .5 1. 1e10 1.5E-3 0x1F 0o17 0b101 1_000_000"),
        [
            (Integer, "1"),
            (Numeric, "1.5"),
            (Numeric, ".5"),
            (Numeric, "1."),
            (Numeric, "1e10"),
            (Numeric, "1.5E-3"),
            (Integer, "0x1F"),
            (Integer, "0o17"),
            (Integer, "0b101"),
            (Integer, "1_000_000"),
        ]
    );
}

#[test]
fn integer_before_dot_dot_stays_an_integer() {
    assert_eq!(
        lex("1..2"),
        [(Integer, "1"), (DotDot, ".."), (Integer, "2")]
    );
}

#[test]
fn trailing_junk_after_a_number_is_invalid() {
    assert_eq!(lex("123abc"), [(Invalid, "123abc")]);
    assert_eq!(lex("1e"), [(Invalid, "1e")]);
    assert_eq!(lex("1e+ "), [(Invalid, "1e+")]);
    assert_eq!(lex("0x"), [(Invalid, "0x")]);
    assert_eq!(lex("$1a"), [(Invalid, "$1a")]);
}

#[test]
fn punctuation_and_special_operators() {
    assert_eq!(
        lex("a::int := b => c .. [1:2],(x);"),
        [
            (Identifier, "a"),
            (Typecast, "::"),
            (Identifier, "int"),
            (ColonEquals, ":="),
            (Identifier, "b"),
            (EqualsGreater, "=>"),
            (Identifier, "c"),
            (DotDot, ".."),
            (OpenBracket, "["),
            (Integer, "1"),
            (Colon, ":"),
            (Integer, "2"),
            (CloseBracket, "]"),
            (Comma, ","),
            (OpenParen, "("),
            (Identifier, "x"),
            (CloseParen, ")"),
            (Semicolon, ";"),
        ]
    );
}

#[test]
fn multi_char_operators_are_one_token() {
    assert_eq!(
        lex("a->>b @> c <> d"),
        [
            (Identifier, "a"),
            (Operator, "->>"),
            (Identifier, "b"),
            (Operator, "@>"),
            (Identifier, "c"),
            (Operator, "<>"),
            (Identifier, "d"),
        ]
    );
}

#[test]
fn trailing_minus_is_split_off_a_plain_operator() {
    assert_eq!(
        lex("a=-1"),
        [
            (Identifier, "a"),
            (Operator, "="),
            (Operator, "-"),
            (Integer, "1")
        ]
    );
}

#[test]
fn trailing_minus_stays_on_an_operator_with_a_special_char() {
    assert_eq!(
        lex("a@-1"),
        [(Identifier, "a"), (Operator, "@-"), (Integer, "1")]
    );
}

#[test]
fn long_sign_runs_split_into_single_signs() {
    assert_eq!(
        lex("*+-+"),
        [
            (Operator, "*"),
            (Operator, "+"),
            (Operator, "-"),
            (Operator, "+")
        ]
    );
}

#[test]
fn operator_stops_before_an_embedded_comment() {
    assert_eq!(
        lex("a+/*c*/b"),
        [
            (Identifier, "a"),
            (Operator, "+"),
            (Comment, "/*c*/"),
            (Identifier, "b")
        ]
    );
    assert_eq!(
        lex("a<--c"),
        [(Identifier, "a"), (Operator, "<"), (Comment, "--c")]
    );
}

#[test]
fn stray_bytes_are_single_other_tokens() {
    assert_eq!(lex("\\ { $"), [(Other, "\\"), (Other, "{"), (Other, "$")]);
}

#[test]
fn bit_and_hex_strings_do_not_double_their_quote() {
    assert_eq!(lex("x'ff''0'"), [(HexString, "x'ff'"), (String, "'0'")]);
    assert_eq!(lex("b'1''0'"), [(BitString, "b'1'"), (String, "'0'")]);
}

#[test]
fn parameter_is_digits_only() {
    assert_eq!(lex("$1_0"), [(Invalid, "$1_0")]);
    assert_eq!(lex("$1E'x'"), [(Param, "$1"), (EscapeString, "E'x'")]);
}
