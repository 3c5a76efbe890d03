//! Why bytes from a peer could not be framed or decoded.

use super::sqlstate;

/// Malformed protocol input. It ends the connection it came from, and only that one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A length field below the length of its own header.
    #[error("{what} declares length {length}, below the minimum of {minimum}")]
    LengthTooShort {
        /// Which kind of packet (e.g. `message 'Q'`, `startup packet`).
        what: String,
        /// The declared length.
        length: i32,
        /// The smallest valid length.
        minimum: usize,
    },
    /// A length field above the configured maximum ([`super::FrameLimits`]).
    #[error("{what} declares length {length}, above the maximum of {maximum} bytes")]
    LengthTooLong {
        /// Which kind of packet.
        what: String,
        /// The declared length.
        length: i32,
        /// The configured maximum.
        maximum: usize,
    },
    /// A message body that ends before one of its fields.
    #[error("{message} is truncated: no room for {field}")]
    Truncated {
        /// The message being decoded.
        message: &'static str,
        /// The field that did not fit.
        field: &'static str,
    },
    /// A string field with no terminating NUL byte.
    #[error("{message}: {field} has no terminating NUL byte")]
    MissingNul {
        /// The message being decoded.
        message: &'static str,
        /// The string field.
        field: &'static str,
    },
    /// Bytes left over after the last field of a message.
    #[error("{message} has {count} unexpected trailing bytes")]
    TrailingBytes {
        /// The message being decoded.
        message: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// A count or length field that is negative where it may not be.
    #[error("{message}: {field} is negative ({value})")]
    Negative {
        /// The message being decoded.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// A field whose value is outside the set the protocol allows.
    #[error("{message}: invalid {field} {value}")]
    InvalidValue {
        /// The message being decoded.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// The offending value, for the log.
        value: String,
    },
    /// A field that must be UTF-8 (startup parameters, SASL mechanism names) is not.
    #[error("{message}: {field} is not valid UTF-8")]
    NotUtf8 {
        /// The message being decoded.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A startup-phase packet whose request code is unknown.
    #[error("unsupported startup request code {0} (protocol version {major}.{minor})", major = .0 >> 16, minor = .0 & 0xFFFF)]
    UnsupportedStartupCode(i32),
    /// A message whose tag is not the one (or one of those) expected here.
    #[error("unexpected message {tag:?} while decoding {message}")]
    UnexpectedTag {
        /// What was expected.
        message: &'static str,
        /// The tag received, as a char.
        tag: char,
    },
}

impl ProtocolError {
    /// The SQLSTATE to report to a client whose input caused this error.
    pub fn sqlstate(&self) -> &'static str {
        sqlstate::PROTOCOL_VIOLATION
    }
}
