//! Reading the fields of one message body, with every malformed case a typed error.

use super::ProtocolError;

/// A cursor over one message body. Every read checks bounds; nothing panics.
pub(crate) struct BodyReader<'a> {
    message: &'static str,
    rest: &'a [u8],
}

impl<'a> BodyReader<'a> {
    /// Reads `body`, naming `message` in every error.
    pub(crate) fn new(message: &'static str, body: &'a [u8]) -> Self {
        BodyReader {
            message,
            rest: body,
        }
    }

    /// The bytes not read yet.
    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    /// Takes `len` bytes.
    pub(crate) fn bytes(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ProtocolError> {
        if self.rest.len() < len {
            return Err(ProtocolError::Truncated {
                message: self.message,
                field,
            });
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// Takes every remaining byte.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Takes a fixed-size array.
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ProtocolError> {
        let bytes = self.bytes(N, field)?;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    /// Takes one byte.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Takes a big-endian i16.
    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, ProtocolError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    /// Takes a big-endian i32.
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, ProtocolError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    /// Takes a big-endian u32 (an OID).
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Takes a count (i16 or i32 widened) that may not be negative.
    pub(crate) fn count_i16(&mut self, field: &'static str) -> Result<usize, ProtocolError> {
        let value = self.i16(field)?;
        usize::try_from(value).map_err(|_| ProtocolError::Negative {
            message: self.message,
            field,
            value: value.into(),
        })
    }

    /// Takes a NUL-terminated string, without its NUL.
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<&'a [u8], ProtocolError> {
        let Some(nul) = self.rest.iter().position(|&byte| byte == 0) else {
            return Err(ProtocolError::MissingNul {
                message: self.message,
                field,
            });
        };
        let string = &self.rest[..nul];
        self.rest = &self.rest[nul + 1..];
        Ok(string)
    }

    /// Takes a NUL-terminated string that must be UTF-8.
    pub(crate) fn utf8_cstr(&mut self, field: &'static str) -> Result<&'a str, ProtocolError> {
        let bytes = self.cstr(field)?;
        std::str::from_utf8(bytes).map_err(|_| ProtocolError::NotUtf8 {
            message: self.message,
            field,
        })
    }

    /// Fails unless every byte has been read.
    pub(crate) fn finish(self) -> Result<(), ProtocolError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::TrailingBytes {
                message: self.message,
                count: self.rest.len(),
            })
        }
    }

    /// An [`ProtocolError::InvalidValue`] naming this message.
    pub(crate) fn invalid(
        &self,
        field: &'static str,
        value: impl std::fmt::Display,
    ) -> ProtocolError {
        ProtocolError::InvalidValue {
            message: self.message,
            field,
            value: value.to_string(),
        }
    }
}
