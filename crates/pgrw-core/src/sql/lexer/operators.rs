//! scan.l's operator rule: the longest run of operator characters, cut before
//! an embedded comment start, and without trailing `+`/`-` unless the operator
//! contains one of ``~!@#^&|`?%`` (so `a=-1` is `=` then `-`).

use super::TokenKind;

/// scan.l's `op_chars`.
pub(super) fn is_op_char(byte: u8) -> bool {
    matches!(
        byte,
        b'~' | b'!'
            | b'@'
            | b'#'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
            | b'+'
            | b'-'
            | b'*'
            | b'/'
            | b'%'
            | b'<'
            | b'>'
            | b'='
    )
}

/// Characters whose presence lets an operator end in `+` or `-`.
fn allows_trailing_sign(byte: u8) -> bool {
    matches!(
        byte,
        b'~' | b'!' | b'@' | b'#' | b'^' | b'&' | b'|' | b'`' | b'?' | b'%'
    )
}

/// One operator token.
pub(super) struct Operator {
    pub kind: TokenKind,
    pub end: usize,
    /// When trailing signs were cut off, where that run of signs ends: the
    /// signs are then one-byte tokens each.
    pub sign_run_end: usize,
}

/// The operator starting at `start` (an op char that does not open a comment).
pub(super) fn scan_operator(sql: &[u8], start: usize) -> Operator {
    let mut end = start;
    let mut may_end_in_sign = false;
    while let Some(&byte) = sql.get(end) {
        if !is_op_char(byte) {
            break;
        }
        let next = sql.get(end + 1).copied();
        if end > start
            && ((byte == b'/' && next == Some(b'*')) || (byte == b'-' && next == Some(b'-')))
        {
            break;
        }
        may_end_in_sign |= allows_trailing_sign(byte);
        end += 1;
    }
    let run_end = end;
    if end - start > 1 && !may_end_in_sign {
        while end - start > 1 && matches!(sql[end - 1], b'+' | b'-') {
            end -= 1;
        }
    }
    let kind = if &sql[start..end] == b"=>" {
        TokenKind::EqualsGreater
    } else {
        TokenKind::Operator
    };
    Operator {
        kind,
        end,
        sign_run_end: run_end,
    }
}
