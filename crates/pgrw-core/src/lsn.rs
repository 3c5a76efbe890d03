//! WAL positions: PostgreSQL's `pg_lsn`, parsed and printed as `X/Y` hex.
//!
//! An [`Lsn`] is a byte position in the write-ahead log. pgrw compares them to
//! decide whether a replica has replayed a session's last write
//! (read-your-writes), and subtracts them to measure replication lag in bytes.

use std::fmt;
use std::str::FromStr;

/// A WAL log sequence number: a byte position in PostgreSQL's write-ahead log.
///
/// Printed and parsed as PostgreSQL does (`0/16B3748`: the high and low 32 bits
/// in upper-case hex). [`Lsn::INVALID`] (`0/0`) is PostgreSQL's
/// `InvalidXLogRecPtr`: "no position", which every real position is after.
///
/// ```
/// use pgrw_core::Lsn;
/// let lsn: Lsn = "0/16b3748".parse().unwrap();
/// assert_eq!(lsn.to_string(), "0/16B3748");
/// assert_eq!(lsn.bytes_since("0/16B3700".parse().unwrap()), 0x48);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `0/0`, PostgreSQL's `InvalidXLogRecPtr`: no WAL position at all.
    pub const INVALID: Lsn = Lsn(0);
    /// Another name for [`Lsn::INVALID`], for arithmetic that starts from zero.
    pub const ZERO: Lsn = Lsn(0);

    /// The LSN whose high and low 32-bit halves are `high` and `low` (`high/low`).
    pub const fn from_parts(high: u32, low: u32) -> Lsn {
        Lsn(((high as u64) << 32) | low as u64)
    }

    /// The position as a plain byte offset.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Whether this is a real position (not `0/0`, `InvalidXLogRecPtr`).
    pub const fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// The number of WAL bytes from `earlier` to `self`; 0 when `earlier` is not
    /// before `self` (a replica ahead of a stale primary reading has no lag).
    pub const fn bytes_since(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The position `bytes` further on, saturating at the largest position.
    pub const fn advance(self, bytes: u64) -> Lsn {
        Lsn(self.0.saturating_add(bytes))
    }
}

impl From<u64> for Lsn {
    fn from(position: u64) -> Lsn {
        Lsn(position)
    }
}

impl From<Lsn> for u64 {
    fn from(lsn: Lsn) -> u64 {
        lsn.0
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Which half of an `X/Y` LSN text a [`ParseLsnError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LsnPart {
    /// `X`, the high 32 bits, before the `/`.
    High,
    /// `Y`, the low 32 bits, after the `/`.
    Low,
}

impl fmt::Display for LsnPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LsnPart::High => "high part (before '/')",
            LsnPart::Low => "low part (after '/')",
        })
    }
}

/// Why a text is not an LSN. PostgreSQL's `pg_lsn` input rules: two groups of
/// 1 to 8 hex digits separated by `/`, nothing else (no spaces, no sign).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseLsnError {
    /// The text is empty.
    Empty,
    /// There is no `/` between the two hex groups.
    MissingSlash,
    /// One half has no digits.
    EmptyPart(LsnPart),
    /// One half has more than 8 hex digits (more than 32 bits).
    TooLong(LsnPart),
    /// One half has a character that is not a hex digit.
    InvalidDigit {
        /// The half it is in.
        part: LsnPart,
        /// The offending character.
        found: char,
    },
}

impl fmt::Display for ParseLsnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseLsnError::Empty => f.write_str("empty LSN"),
            ParseLsnError::MissingSlash => f.write_str("LSN has no '/'"),
            ParseLsnError::EmptyPart(part) => write!(f, "LSN {part} is empty"),
            ParseLsnError::TooLong(part) => write!(f, "LSN {part} has more than 8 hex digits"),
            ParseLsnError::InvalidDigit { part, found } => {
                write!(f, "LSN {part} has {found:?}, which is not a hex digit")
            }
        }?;
        f.write_str("; expected X/Y in hex, as PostgreSQL prints it (e.g. 0/16B3748)")
    }
}

impl std::error::Error for ParseLsnError {}

impl FromStr for Lsn {
    type Err = ParseLsnError;

    fn from_str(text: &str) -> Result<Lsn, ParseLsnError> {
        if text.is_empty() {
            return Err(ParseLsnError::Empty);
        }
        let (high, low) = text.split_once('/').ok_or(ParseLsnError::MissingSlash)?;
        let high = parse_half(high, LsnPart::High)?;
        let low = parse_half(low, LsnPart::Low)?;
        Ok(Lsn::from_parts(high, low))
    }
}

fn parse_half(digits: &str, part: LsnPart) -> Result<u32, ParseLsnError> {
    if digits.is_empty() {
        return Err(ParseLsnError::EmptyPart(part));
    }
    let mut value: u32 = 0;
    for (count, c) in digits.chars().enumerate() {
        let digit = c
            .to_digit(16)
            .ok_or(ParseLsnError::InvalidDigit { part, found: c })?;
        if count == 8 {
            return Err(ParseLsnError::TooLong(part));
        }
        value = (value << 4) | digit;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_postgresql_in_upper_case_hex() {
        assert_eq!(Lsn(0x16B3748).to_string(), "0/16B3748");
        assert_eq!(Lsn::from_parts(0xA, 0x3000060).to_string(), "A/3000060");
        assert_eq!(Lsn::INVALID.to_string(), "0/0");
        assert_eq!(Lsn(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
    }

    #[test]
    fn parses_hex_in_either_case() {
        assert_eq!("0/16b3748".parse(), Ok(Lsn(0x16B3748)));
        assert_eq!("aB/Cd".parse(), Ok(Lsn::from_parts(0xAB, 0xCD)));
        assert_eq!("00000000/00000001".parse(), Ok(Lsn(1)));
    }

    #[test]
    fn rejects_malformed_text_with_the_reason() {
        assert_eq!("".parse::<Lsn>(), Err(ParseLsnError::Empty));
        assert_eq!("16B3748".parse::<Lsn>(), Err(ParseLsnError::MissingSlash));
        assert_eq!(
            "/1".parse::<Lsn>(),
            Err(ParseLsnError::EmptyPart(LsnPart::High))
        );
        assert_eq!(
            "1/".parse::<Lsn>(),
            Err(ParseLsnError::EmptyPart(LsnPart::Low))
        );
        assert_eq!(
            "123456789/0".parse::<Lsn>(),
            Err(ParseLsnError::TooLong(LsnPart::High))
        );
        assert_eq!(
            "0/1/2".parse::<Lsn>(),
            Err(ParseLsnError::InvalidDigit {
                part: LsnPart::Low,
                found: '/'
            })
        );
        assert_eq!(
            " 0/1".parse::<Lsn>(),
            Err(ParseLsnError::InvalidDigit {
                part: LsnPart::High,
                found: ' '
            })
        );
        assert_eq!(
            "0/+1".parse::<Lsn>(),
            Err(ParseLsnError::InvalidDigit {
                part: LsnPart::Low,
                found: '+'
            })
        );
    }

    #[test]
    fn error_message_names_the_problem_and_the_expected_form() {
        let message = "0/xyz".parse::<Lsn>().unwrap_err().to_string();
        assert!(message.contains("low part"), "{message}");
        assert!(message.contains("'x'"), "{message}");
        assert!(message.contains("0/16B3748"), "{message}");
    }

    #[test]
    fn orders_by_position_across_the_high_half() {
        assert!(Lsn::from_parts(1, 0) > Lsn::from_parts(0, 0xFFFF_FFFF));
        assert!(Lsn::INVALID < Lsn(1));
    }

    #[test]
    fn byte_distance_saturates_at_zero() {
        let a = Lsn::from_parts(1, 0x10);
        let b = Lsn::from_parts(0, 0xFFFF_FFF0);
        assert_eq!(a.bytes_since(b), 0x20);
        assert_eq!(b.bytes_since(a), 0);
    }

    #[test]
    fn zero_is_postgresqls_invalid_position() {
        assert!(!Lsn::INVALID.is_valid());
        assert!(Lsn(1).is_valid());
        assert_eq!("0/0".parse(), Ok(Lsn::INVALID));
    }
}
