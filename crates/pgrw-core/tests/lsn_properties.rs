//! `Lsn` text round-trips, and parsing accepts exactly PostgreSQL's `X/Y` form.

use pgrw_core::Lsn;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn formatting_then_parsing_gives_back_the_lsn(position in any::<u64>()) {
        let lsn = Lsn(position);
        prop_assert_eq!(lsn.to_string().parse::<Lsn>(), Ok(lsn));
    }

    #[test]
    fn parsing_then_formatting_gives_upper_case_hex_without_leading_zeros(high in any::<u32>(), low in any::<u32>()) {
        let text = format!("{high:08x}/{low:x}");
        let lsn: Lsn = text.parse().expect("8 hex digits, a slash and hex digits is an LSN");
        prop_assert_eq!(lsn.to_string(), format!("{high:X}/{low:X}"));
    }

    #[test]
    fn parsing_never_panics_and_accepts_only_two_short_hex_groups(text in "\\PC{0,24}") {
        let well_formed = text.split_once('/').is_some_and(|(high, low)| {
            let group = |part: &str| (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_hexdigit());
            group(high) && group(low)
        });
        prop_assert_eq!(text.parse::<Lsn>().is_ok(), well_formed, "{:?}", text);
    }

    #[test]
    fn byte_distance_agrees_with_ordering(a in any::<u64>(), b in any::<u64>()) {
        let (a, b) = (Lsn(a), Lsn(b));
        prop_assert_eq!(a.bytes_since(b) > 0, a > b);
        prop_assert_eq!(b.advance(a.bytes_since(b)), a.max(b));
    }
}
