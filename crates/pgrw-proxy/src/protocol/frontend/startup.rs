//! The startup phase: the untyped packets a client sends before its first typed
//! message, decoded, and the StartupMessage and CancelRequest the proxy sends.

use bytes::{BufMut, BytesMut};

use super::super::ProtocolError;
use super::super::frame::{
    CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE, StartupPacket,
};
use super::super::reader::BodyReader;
use super::super::writer;

/// The longest cancel key a CancelRequest may carry (protocol 3.2 allows 256 bytes;
/// 3.0 uses 4).
pub const MAX_CANCEL_KEY_LEN: usize = 256;

/// A protocol version, as in the StartupMessage's request code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProtocolVersion {
    /// 3 for every version the proxy speaks.
    pub major: u16,
    /// 0 for libpq before PostgreSQL 18; 2 for protocol 3.2.
    pub minor: u16,
}

impl ProtocolVersion {
    /// Protocol 3.0.
    pub const V3_0: ProtocolVersion = ProtocolVersion { major: 3, minor: 0 };

    /// The request code that announces this version.
    pub fn code(self) -> i32 {
        (i32::from(self.major) << 16) | i32::from(self.minor)
    }
}

/// A decoded startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupRequest<'a> {
    /// StartupMessage: the client asks for a session.
    Startup(StartupMessage),
    /// SSLRequest: the client asks for TLS; the answer is one byte, `S` or `N`.
    SslRequest,
    /// GSSENCRequest: the client asks for GSSAPI encryption; the answer is `G` or `N`.
    GssEncRequest,
    /// CancelRequest: cancel the query running in the session with this key.
    Cancel(CancelKey<'a>),
}

/// The parameters of a StartupMessage, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    /// The protocol version asked for (major 3).
    pub version: ProtocolVersion,
    /// `user`, `database`, `application_name`, `options`, GUCs, `_pq_.` extensions…
    pub params: Vec<(String, String)>,
}

impl StartupMessage {
    /// The value of the parameter `name`, if sent.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The role to log in as (`user` is mandatory in PostgreSQL).
    pub fn user(&self) -> Option<&str> {
        self.param("user")
    }

    /// The database to connect to; PostgreSQL defaults it to the user name.
    pub fn database(&self) -> Option<&str> {
        self.param("database").or_else(|| self.user())
    }
}

/// What identifies a session to cancel: the backend process id and secret key
/// the server announced in BackendKeyData.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelKey<'a> {
    /// The process id.
    pub process_id: i32,
    /// The secret key: 4 bytes in protocol 3.0, up to 256 in 3.2.
    pub secret_key: &'a [u8],
}

impl<'a> StartupRequest<'a> {
    /// Decodes a startup packet. Any protocol 3.x StartupMessage decodes; other
    /// major versions and unknown codes are errors.
    pub fn decode(packet: &'a StartupPacket) -> Result<StartupRequest<'a>, ProtocolError> {
        Self::decode_parts(packet.code(), packet.body())
    }

    /// Decodes a startup packet given as its request code and the bytes after it.
    pub fn decode_parts(code: i32, body: &'a [u8]) -> Result<StartupRequest<'a>, ProtocolError> {
        match code {
            SSL_REQUEST_CODE => empty("SSLRequest", body).map(|()| StartupRequest::SslRequest),
            GSSENC_REQUEST_CODE => {
                empty("GSSENCRequest", body).map(|()| StartupRequest::GssEncRequest)
            }
            CANCEL_REQUEST_CODE => decode_cancel(body).map(StartupRequest::Cancel),
            code if code >> 16 == 3 => decode_startup(code, body).map(StartupRequest::Startup),
            code => Err(ProtocolError::UnsupportedStartupCode(code)),
        }
    }
}

fn empty(message: &'static str, body: &[u8]) -> Result<(), ProtocolError> {
    BodyReader::new(message, body).finish()
}

fn decode_cancel(body: &[u8]) -> Result<CancelKey<'_>, ProtocolError> {
    let mut reader = BodyReader::new("CancelRequest", body);
    let process_id = reader.i32("process id")?;
    let secret_key = reader.rest();
    if !(4..=MAX_CANCEL_KEY_LEN).contains(&secret_key.len()) {
        return Err(reader.invalid("secret key length", secret_key.len()));
    }
    Ok(CancelKey {
        process_id,
        secret_key,
    })
}

fn decode_startup(code: i32, body: &[u8]) -> Result<StartupMessage, ProtocolError> {
    let mut reader = BodyReader::new("StartupMessage", body);
    let mut params = Vec::new();
    loop {
        let name = reader.utf8_cstr("parameter name")?;
        if name.is_empty() {
            break;
        }
        let value = reader.utf8_cstr("parameter value")?;
        params.push((name.to_string(), value.to_string()));
    }
    reader.finish()?;
    Ok(StartupMessage {
        version: ProtocolVersion {
            major: 3,
            minor: (code & 0xFFFF) as u16,
        },
        params,
    })
}

/// Appends a StartupMessage for `version` with `params` (e.g. `user`, `database`).
pub fn encode_startup(out: &mut BytesMut, version: ProtocolVersion, params: &[(&str, &str)]) {
    writer::packet(out, |out| {
        out.put_i32(version.code());
        for (name, value) in params {
            writer::cstr(out, name.as_bytes());
            writer::cstr(out, value.as_bytes());
        }
        out.put_u8(0);
    });
}

/// Appends a protocol 3.0 StartupMessage.
pub fn encode_startup_3_0(out: &mut BytesMut, params: &[(&str, &str)]) {
    encode_startup(out, ProtocolVersion::V3_0, params);
}

/// Appends an SSLRequest.
pub fn encode_ssl_request(out: &mut BytesMut) {
    writer::packet(out, |out| out.put_i32(SSL_REQUEST_CODE));
}

/// Appends a GSSENCRequest.
pub fn encode_gssenc_request(out: &mut BytesMut) {
    writer::packet(out, |out| out.put_i32(GSSENC_REQUEST_CODE));
}

/// Appends a CancelRequest for `key`.
pub fn encode_cancel_request(out: &mut BytesMut, key: CancelKey<'_>) {
    writer::packet(out, |out| {
        out.put_i32(CANCEL_REQUEST_CODE);
        out.put_i32(key.process_id);
        out.put_slice(key.secret_key);
    });
}
