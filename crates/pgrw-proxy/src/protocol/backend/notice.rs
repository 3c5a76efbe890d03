//! The fields of ErrorResponse and NoticeResponse.

use bytes::{BufMut, BytesMut};

use super::super::ProtocolError;
use super::super::reader::BodyReader;
use super::super::writer;

/// Field codes of ErrorResponse and NoticeResponse (PostgreSQL's
/// "Error and Notice Message Fields").
pub mod field {
    /// Severity, possibly localized (`ERROR`, `FEHLER`, …).
    pub const SEVERITY: u8 = b'S';
    /// Severity, never localized (PostgreSQL 9.6+).
    pub const SEVERITY_NONLOCALIZED: u8 = b'V';
    /// SQLSTATE code.
    pub const CODE: u8 = b'C';
    /// Primary message.
    pub const MESSAGE: u8 = b'M';
    /// Detail.
    pub const DETAIL: u8 = b'D';
    /// Hint.
    pub const HINT: u8 = b'H';
    /// Cursor position in the query string.
    pub const POSITION: u8 = b'P';
}

/// The severity of an error or notice, as the proxy writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the session goes on.
    Error,
    /// The session ends.
    Fatal,
    /// A warning.
    Warning,
    /// A notice.
    Notice,
    /// Informational.
    Info,
}

impl Severity {
    /// The non-localized name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
            Severity::Info => "INFO",
        }
    }
}

/// The fields of an ErrorResponse or NoticeResponse. Text is decoded lossily
/// (invalid UTF-8 becomes U+FFFD): it is for logs and decisions, while the
/// frame itself is forwarded as received.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NoticeFields {
    /// The severity: the non-localized `V` field when sent, else `S`.
    pub severity: String,
    /// The SQLSTATE code (`C`).
    pub code: String,
    /// The primary message (`M`).
    pub message: String,
    /// The detail (`D`), if any.
    pub detail: Option<String>,
    /// The hint (`H`), if any.
    pub hint: Option<String>,
    /// Every other field, in order: position, where, schema, table, file, line…
    pub other: Vec<(u8, String)>,
}

impl NoticeFields {
    /// Fields with a severity, a SQLSTATE (see [`super::super::sqlstate`]) and a message.
    pub fn new(severity: Severity, code: &str, message: impl Into<String>) -> Self {
        NoticeFields {
            severity: severity.as_str().to_string(),
            code: code.to_string(),
            message: message.into(),
            ..NoticeFields::default()
        }
    }

    /// The same fields with a detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The same fields with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Decodes the body of an ErrorResponse or NoticeResponse (`message` names
    /// which, for errors). Missing fields are left empty: a node's message is
    /// forwarded even when it lacks one.
    pub fn decode(message: &'static str, body: &[u8]) -> Result<NoticeFields, ProtocolError> {
        let mut reader = BodyReader::new(message, body);
        let mut fields = NoticeFields::default();
        let mut localized_severity = None;
        loop {
            let code = reader.u8("field code")?;
            if code == 0 {
                break;
            }
            let value = String::from_utf8_lossy(reader.cstr("field value")?).into_owned();
            match code {
                field::SEVERITY => localized_severity = Some(value),
                field::SEVERITY_NONLOCALIZED => fields.severity = value,
                field::CODE => fields.code = value,
                field::MESSAGE => fields.message = value,
                field::DETAIL => fields.detail = Some(value),
                field::HINT => fields.hint = Some(value),
                code => fields.other.push((code, value)),
            }
        }
        reader.finish()?;
        if fields.severity.is_empty() {
            fields.severity = localized_severity.unwrap_or_default();
        }
        Ok(fields)
    }

    /// Appends the fields (the severity as both `S` and `V`) and the final NUL.
    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        let mut put = |code: u8, value: &str| {
            out.put_u8(code);
            writer::cstr(out, value.as_bytes());
        };
        put(field::SEVERITY, &self.severity);
        put(field::SEVERITY_NONLOCALIZED, &self.severity);
        put(field::CODE, &self.code);
        put(field::MESSAGE, &self.message);
        if let Some(detail) = &self.detail {
            put(field::DETAIL, detail);
        }
        if let Some(hint) = &self.hint {
            put(field::HINT, hint);
        }
        for (code, value) in &self.other {
            put(*code, value);
        }
        out.put_u8(0);
    }
}
