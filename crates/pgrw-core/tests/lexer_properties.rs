//! Properties of the lexer on arbitrary input.

use pgrw_core::sql::lexer::{StringEscapes, tokens_with};
use proptest::prelude::*;

/// SQL-flavoured fragments, so that generated input reaches every lexer state.
fn sqlish() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(&b"'"[..]),
        Just(&b"''"[..]),
        Just(&b"E'"[..]),
        Just(&b"U&'"[..]),
        Just(&b"U&\""[..]),
        Just(&b"\""[..]),
        Just(&b"$$"[..]),
        Just(&b"$a$"[..]),
        Just(&b"$1"[..]),
        Just(&b"/*"[..]),
        Just(&b"*/"[..]),
        Just(&b"--"[..]),
        Just(&b"\n"[..]),
        Just(&b" "[..]),
        Just(&b"\\"[..]),
        Just(&b"+-"[..]),
        Just(&b"<>"[..]),
        Just(&b"::"[..]),
        Just(&b"1.5e"[..]),
        Just(&b"0x"[..]),
        Just(&b"_"[..]),
        Just(&b".."[..]),
        Just(&b";"[..]),
        Just(&b"("[..]),
        Just(&b")"[..]),
        Just(&b"select"[..]),
        Just(&b"\xc3\xb1"[..]),
        Just(&b"\xff"[..]),
        Just(&b"e"[..]),
        Just(&b"7"[..]),
    ];
    prop::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat())
}

fn check_tokens(input: &[u8], escapes: StringEscapes) -> Result<(), TestCaseError> {
    let mut previous_end = 0;
    for token in tokens_with(input, escapes) {
        prop_assert!(token.start < token.end, "empty token {token:?}");
        prop_assert!(token.end <= input.len(), "token past the end {token:?}");
        prop_assert!(token.start >= previous_end, "overlapping token {token:?}");
        let gap = &input[previous_end..token.start];
        prop_assert!(
            gap.iter().all(|b| b" \t\n\r\x0b\x0c".contains(b)),
            "non-space skipped before {token:?}"
        );
        previous_end = token.end;
    }
    let tail = &input[previous_end..];
    prop_assert!(
        tail.iter().all(|b| b" \t\n\r\x0b\x0c".contains(b)),
        "non-space left unlexed"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn tokens_cover_arbitrary_bytes_in_order_without_overlap(input in prop::collection::vec(any::<u8>(), 0..300)) {
        check_tokens(&input, StringEscapes::Standard)?;
        check_tokens(&input, StringEscapes::Backslash)?;
    }

    #[test]
    fn tokens_cover_sql_like_input_in_order_without_overlap(input in sqlish()) {
        check_tokens(&input, StringEscapes::Standard)?;
        check_tokens(&input, StringEscapes::Backslash)?;
    }
}
