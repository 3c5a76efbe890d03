//! Routing hints written in comments: `/* pgrw:primary */`, `-- pgrw:replica`.

use crate::classification::RouteHint;

const PRIMARY: &[u8] = b"pgrw:primary";
const REPLICA: &[u8] = b"pgrw:replica";

/// The hint a comment carries, if any. A comment naming both is a primary hint
/// (the safe reading). Matching is case-insensitive; the marker must not be
/// glued to other word characters (`xpgrw:primaryx` is no hint).
pub(crate) fn hint_in_comment(comment: &[u8]) -> Option<RouteHint> {
    if contains_marker(comment, PRIMARY) {
        Some(RouteHint::Primary)
    } else if contains_marker(comment, REPLICA) {
        Some(RouteHint::Replica)
    } else {
        None
    }
}

/// Combines two hints: primary wins over replica.
pub(crate) fn stronger(a: Option<RouteHint>, b: Option<RouteHint>) -> Option<RouteHint> {
    match (a, b) {
        (Some(RouteHint::Primary), _) | (_, Some(RouteHint::Primary)) => Some(RouteHint::Primary),
        (Some(RouteHint::Replica), _) | (_, Some(RouteHint::Replica)) => Some(RouteHint::Replica),
        _ => None,
    }
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

fn contains_marker(text: &[u8], marker: &[u8]) -> bool {
    // Linear: `text.windows` of a fixed 12-byte marker.
    text.windows(marker.len()).enumerate().any(|(at, window)| {
        window.eq_ignore_ascii_case(marker)
            && !(at > 0 && is_word(text[at - 1]))
            && !text.get(at + marker.len()).is_some_and(|&b| is_word(b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_comment_primary_marker_is_a_primary_hint() {
        assert_eq!(
            hint_in_comment(b"/* pgrw:primary */"),
            Some(RouteHint::Primary)
        );
    }

    #[test]
    fn line_comment_replica_marker_is_a_replica_hint() {
        assert_eq!(
            hint_in_comment(b"-- pgrw:replica"),
            Some(RouteHint::Replica)
        );
    }

    #[test]
    fn marker_glued_to_a_word_is_no_hint() {
        assert_eq!(hint_in_comment(b"/* xpgrw:replica */"), None);
        assert_eq!(hint_in_comment(b"/* pgrw:replicas */"), None);
    }

    #[test]
    fn both_markers_mean_primary() {
        assert_eq!(
            hint_in_comment(b"/* pgrw:replica pgrw:primary */"),
            Some(RouteHint::Primary)
        );
    }
}
