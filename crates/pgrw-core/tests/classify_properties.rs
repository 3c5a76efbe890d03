//! Properties of the classifier on arbitrary input.

use pgrw_core::FunctionCatalog;
use pgrw_core::sql::classify::{classify, statements};
use pgrw_core::sql::lexer::StringEscapes;
use proptest::prelude::*;

fn sqlish() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(&b"SELECT "[..]),
        Just(&b"WITH x AS ("[..]),
        Just(&b") "[..]),
        Just(&b"("[..]),
        Just(&b"INSERT "[..]),
        Just(&b"FOR "[..]),
        Just(&b"UPDATE "[..]),
        Just(&b"nextval("[..]),
        Just(&b"f("[..]),
        Just(&b"'"[..]),
        Just(&b"\\"[..]),
        Just(&b"$$"[..]),
        Just(&b"/*"[..]),
        Just(&b"*/"[..]),
        Just(&b"--"[..]),
        Just(&b"\n"[..]),
        Just(&b"; "[..]),
        Just(&b", "[..]),
        Just(&b"EXPLAIN "[..]),
        Just(&b"ANALYZE "[..]),
        Just(&b"BEGIN "[..]),
        Just(&b"ATOMIC "[..]),
        Just(&b"END "[..]),
        Just(&b"CREATE "[..]),
        Just(&b"SET "[..]),
        Just(&b"pgrw.route "[..]),
        Just(&b"= "[..]),
        Just(&b"replica "[..]),
        Just(&b"/* pgrw:replica */"[..]),
        Just(&b"COPY "[..]),
        Just(&b"TO "[..]),
        Just(&b"STDOUT "[..]),
        Just(&b"set_config("[..]),
        Just(&b"true"[..]),
        Just(&b"t "[..]),
        Just(&b"1 "[..]),
        Just(&b"AS "[..]),
        Just(&b"::"[..]),
        Just(&b"\""[..]),
        Just(&b"E'"[..]),
    ];
    prop::collection::vec(fragment, 0..30).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn classifier_never_panics_on_arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..300)) {
        let catalog = FunctionCatalog::builtin();
        let _ = classify(&input, &catalog);
        for piece in statements(&input, &catalog, StringEscapes::Backslash) {
            prop_assert!(piece.start <= piece.end && piece.end <= input.len());
        }
    }

    #[test]
    fn classifier_never_panics_on_sql_like_input(input in sqlish()) {
        let catalog = FunctionCatalog::builtin();
        let _ = classify(&input, &catalog);
    }

    #[test]
    fn an_appended_write_is_never_replica_eligible(prefix in sqlish()) {
        let mut sql = prefix;
        sql.extend_from_slice(b"\n; INSERT INTO t VALUES (1)");
        let verdict = classify(&sql, &FunctionCatalog::builtin());
        prop_assert!(!verdict.replica_eligible(), "{:?} → {verdict:?}", String::from_utf8_lossy(&sql));
    }

    #[test]
    fn statement_spans_are_ordered_and_disjoint(input in sqlish()) {
        let catalog = FunctionCatalog::builtin();
        let mut previous_end = 0;
        for piece in statements(&input, &catalog, StringEscapes::Standard) {
            prop_assert!(piece.start >= previous_end && piece.start <= piece.end && piece.end <= input.len());
            previous_end = piece.end;
        }
    }
}
