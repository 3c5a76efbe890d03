//! The attribute syntax of SCRAM messages: `k=value` parts separated by commas.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::ScramError;

/// One SCRAM message, read attribute by attribute.
pub(crate) struct Attributes<'a> {
    message: &'static str,
    parts: std::str::Split<'a, char>,
}

impl<'a> Attributes<'a> {
    /// Splits `text` (the whole message, or what follows its gs2 header).
    pub(crate) fn new(message: &'static str, text: &'a str) -> Self {
        Attributes {
            message,
            parts: text.split(','),
        }
    }

    /// The value of the next attribute, which must be `name`.
    pub(crate) fn expect(&mut self, name: char) -> Result<&'a str, ScramError> {
        let part = self
            .parts
            .next()
            .ok_or_else(|| malformed(self.message, format!("missing attribute {name}=")))?;
        part.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
            .ok_or_else(|| {
                malformed(
                    self.message,
                    format!("expected attribute {name}=, got {part:?}"),
                )
            })
    }

    /// The next raw part, if any.
    pub(crate) fn next_part(&mut self) -> Option<&'a str> {
        self.parts.next()
    }

    /// Fails when a mandatory extension (`m=`) is next.
    pub(crate) fn reject_mandatory_extension(&self, part: &str) -> Result<(), ScramError> {
        if part.starts_with("m=") {
            Err(malformed(
                self.message,
                "mandatory extension m= is not supported".to_string(),
            ))
        } else {
            Ok(())
        }
    }

    /// The error for `reason` in this message.
    pub(crate) fn malformed(&self, reason: impl Into<String>) -> ScramError {
        malformed(self.message, reason.into())
    }
}

/// A SCRAM message as text; they are ASCII (names are UTF-8).
pub(crate) fn text<'a>(message: &'static str, bytes: &'a [u8]) -> Result<&'a str, ScramError> {
    std::str::from_utf8(bytes).map_err(|_| malformed(message, "not UTF-8".to_string()))
}

/// Decodes a base64 attribute.
pub(crate) fn base64(
    message: &'static str,
    field: &str,
    value: &str,
) -> Result<Vec<u8>, ScramError> {
    BASE64
        .decode(value)
        .map_err(|error| malformed(message, format!("{field} is not base64: {error}")))
}

/// Decodes a base64 attribute that must hold a SHA-256 output.
pub(crate) fn base64_digest(
    message: &'static str,
    field: &str,
    value: &str,
) -> Result<[u8; 32], ScramError> {
    base64(message, field, value)?
        .try_into()
        .map_err(|bytes: Vec<u8>| {
            malformed(
                message,
                format!("{field} has {} bytes, not 32", bytes.len()),
            )
        })
}

/// Encodes bytes as base64.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Checks the nonce syntax: printable ASCII except `,`, not empty.
pub(crate) fn check_nonce(nonce: &str) -> Result<(), ScramError> {
    let printable = |byte: u8| (0x21..=0x7E).contains(&byte) && byte != b',';
    if !nonce.is_empty() && nonce.bytes().all(printable) {
        Ok(())
    } else {
        Err(ScramError::InvalidNonce(nonce.to_string()))
    }
}

/// A user name as SCRAM's `saslname`: `,` and `=` escaped.
pub(crate) fn escape_username(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn malformed(message: &'static str, reason: String) -> ScramError {
    ScramError::Malformed { message, reason }
}
