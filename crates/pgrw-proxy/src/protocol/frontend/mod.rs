//! Messages from a client (a frontend) to a server: what the proxy reads from
//! its clients and writes to the nodes.
//!
//! Only what the proxy must look at is decoded — SQL text, statement and portal
//! names, authentication responses. Everything borrows from the frame, so the
//! frame itself can be forwarded untouched afterwards.

mod encode;
mod startup;

pub use encode::*;
pub use startup::{
    CancelKey, MAX_CANCEL_KEY_LEN, ProtocolVersion, StartupMessage, StartupRequest,
    encode_cancel_request, encode_gssenc_request, encode_ssl_request, encode_startup,
    encode_startup_3_0,
};

use super::ProtocolError;
use super::frame::MessageRef;
use super::reader::BodyReader;

/// The tags of frontend messages.
pub mod tag {
    /// Bind.
    pub const BIND: u8 = b'B';
    /// Close.
    pub const CLOSE: u8 = b'C';
    /// CopyData (both directions).
    pub const COPY_DATA: u8 = b'd';
    /// CopyDone (both directions).
    pub const COPY_DONE: u8 = b'c';
    /// CopyFail.
    pub const COPY_FAIL: u8 = b'f';
    /// Describe.
    pub const DESCRIBE: u8 = b'D';
    /// Execute.
    pub const EXECUTE: u8 = b'E';
    /// Flush.
    pub const FLUSH: u8 = b'H';
    /// FunctionCall (legacy fast-path interface).
    pub const FUNCTION_CALL: u8 = b'F';
    /// Parse.
    pub const PARSE: u8 = b'P';
    /// PasswordMessage, SASLInitialResponse and SASLResponse share this tag.
    pub const AUTHENTICATION_RESPONSE: u8 = b'p';
    /// Query (simple protocol).
    pub const QUERY: u8 = b'Q';
    /// Sync.
    pub const SYNC: u8 = b'S';
    /// Terminate.
    pub const TERMINATE: u8 = b'X';
}

/// Whether Describe and Close name a prepared statement or a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `S`: a prepared statement.
    Statement,
    /// `P`: a portal.
    Portal,
}

impl Target {
    /// The byte that encodes it.
    pub fn byte(self) -> u8 {
        match self {
            Target::Statement => b'S',
            Target::Portal => b'P',
        }
    }
}

/// Parse: prepare `sql` as `statement` (empty: the unnamed statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse<'a> {
    /// The statement name; empty for the unnamed statement.
    pub statement: &'a [u8],
    /// The SQL text, in the client encoding.
    pub sql: &'a [u8],
    /// Parameter type OIDs the client fixed (0: let the server infer).
    pub param_types: Vec<u32>,
}

/// Bind: create `portal` from `statement`. Parameters stay raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind<'a> {
    /// The portal name; empty for the unnamed portal.
    pub portal: &'a [u8],
    /// The prepared statement's name; empty for the unnamed statement.
    pub statement: &'a [u8],
    /// Everything after the two names (parameter formats, values, result
    /// formats), to re-encode the Bind under another statement name unchanged.
    pub parameters: &'a [u8],
}

impl Bind<'_> {
    /// How many parameter values it binds (0 if that part is malformed: the
    /// node then refuses the Bind itself).
    pub fn parameter_count(&self) -> usize {
        let read_i16 = |at: usize| {
            self.parameters
                .get(at..at + 2)
                .map(|bytes| i16::from_be_bytes([bytes[0], bytes[1]]))
        };
        let Some(formats) = read_i16(0).and_then(|count| usize::try_from(count).ok()) else {
            return 0;
        };
        read_i16(2 + 2 * formats)
            .and_then(|count| usize::try_from(count).ok())
            .unwrap_or(0)
    }
}

/// The body of a `p` message, whose meaning depends on what the server asked
/// for: see [`AuthenticationResponse::password`], [`AuthenticationResponse::sasl_initial`]
/// and [`AuthenticationResponse::sasl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticationResponse<'a> {
    /// The raw body.
    pub body: &'a [u8],
}

/// SASLInitialResponse: the mechanism chosen and its first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslInitialResponse<'a> {
    /// The mechanism (`SCRAM-SHA-256`).
    pub mechanism: &'a str,
    /// The client-first-message; `None` when the client sent length -1.
    pub data: Option<&'a [u8]>,
}

impl<'a> AuthenticationResponse<'a> {
    /// As a PasswordMessage (answer to cleartext or md5 requests): the password
    /// or the `md5…` hash, without its NUL.
    pub fn password(&self) -> Result<&'a [u8], ProtocolError> {
        let mut reader = BodyReader::new("PasswordMessage", self.body);
        let password = reader.cstr("password")?;
        reader.finish()?;
        Ok(password)
    }

    /// As a SASLInitialResponse.
    pub fn sasl_initial(&self) -> Result<SaslInitialResponse<'a>, ProtocolError> {
        let mut reader = BodyReader::new("SASLInitialResponse", self.body);
        let mechanism = reader.utf8_cstr("mechanism")?;
        let length = reader.i32("data length")?;
        let data = match length {
            -1 => None,
            length => {
                let len = usize::try_from(length).map_err(|_| ProtocolError::Negative {
                    message: "SASLInitialResponse",
                    field: "data length",
                    value: length.into(),
                })?;
                Some(reader.bytes(len, "data")?)
            }
        };
        reader.finish()?;
        Ok(SaslInitialResponse { mechanism, data })
    }

    /// As a SASLResponse: the mechanism's next message (all of the body).
    pub fn sasl(&self) -> &'a [u8] {
        self.body
    }
}

/// A decoded frontend message (after startup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    /// Query: one or more SQL statements, simple protocol.
    Query {
        /// The SQL text.
        sql: &'a [u8],
    },
    /// Parse.
    Parse(Parse<'a>),
    /// Bind.
    Bind(Bind<'a>),
    /// Describe a statement or a portal.
    Describe {
        /// Statement or portal.
        target: Target,
        /// Its name; empty for the unnamed one.
        name: &'a [u8],
    },
    /// Execute a portal.
    Execute {
        /// The portal; empty for the unnamed one.
        portal: &'a [u8],
        /// The most rows to return; 0 for all.
        max_rows: i32,
    },
    /// Close a statement or a portal.
    Close {
        /// Statement or portal.
        target: Target,
        /// Its name; empty for the unnamed one.
        name: &'a [u8],
    },
    /// Sync: end of an extended-protocol batch.
    Sync,
    /// Flush: send what is pending without ending the batch.
    Flush,
    /// Terminate: the client is leaving.
    Terminate,
    /// CopyData during COPY FROM STDIN.
    CopyData {
        /// The data, opaque.
        data: &'a [u8],
    },
    /// CopyDone: end of COPY FROM STDIN data.
    CopyDone,
    /// CopyFail: the client aborts COPY FROM STDIN.
    CopyFail {
        /// Why.
        message: &'a [u8],
    },
    /// A `p` message: password or SASL, depending on the authentication phase.
    AuthenticationResponse(AuthenticationResponse<'a>),
    /// FunctionCall (the fast-path interface), checked whole: the proxy
    /// forwards it as it is.
    FunctionCall {
        /// The OID of the function to call.
        function: u32,
    },
    /// Any other message (a tag the proxy does not know), left to the caller
    /// to forward or reject.
    Other {
        /// Its tag.
        tag: u8,
    },
}

impl<'a> FrontendMessage<'a> {
    /// Decodes the parts the proxy needs. A malformed body is an error; an
    /// unknown tag is [`FrontendMessage::Other`].
    pub fn decode(message: MessageRef<'a>) -> Result<FrontendMessage<'a>, ProtocolError> {
        let body = message.body;
        Ok(match message.tag {
            tag::QUERY => {
                let mut reader = BodyReader::new("Query", body);
                let sql = reader.cstr("query string")?;
                reader.finish()?;
                FrontendMessage::Query { sql }
            }
            tag::PARSE => FrontendMessage::Parse(decode_parse(body)?),
            tag::BIND => {
                let mut reader = BodyReader::new("Bind", body);
                let portal = reader.cstr("portal name")?;
                let statement = reader.cstr("statement name")?;
                FrontendMessage::Bind(Bind {
                    portal,
                    statement,
                    parameters: reader.rest(),
                })
            }
            tag::DESCRIBE => {
                let (target, name) = decode_target("Describe", body)?;
                FrontendMessage::Describe { target, name }
            }
            tag::CLOSE => {
                let (target, name) = decode_target("Close", body)?;
                FrontendMessage::Close { target, name }
            }
            tag::EXECUTE => {
                let mut reader = BodyReader::new("Execute", body);
                let portal = reader.cstr("portal name")?;
                let max_rows = reader.i32("row limit")?;
                reader.finish()?;
                FrontendMessage::Execute { portal, max_rows }
            }
            tag::SYNC => empty("Sync", body, FrontendMessage::Sync)?,
            tag::FLUSH => empty("Flush", body, FrontendMessage::Flush)?,
            tag::TERMINATE => empty("Terminate", body, FrontendMessage::Terminate)?,
            tag::COPY_DATA => FrontendMessage::CopyData { data: body },
            tag::COPY_DONE => empty("CopyDone", body, FrontendMessage::CopyDone)?,
            tag::COPY_FAIL => {
                let mut reader = BodyReader::new("CopyFail", body);
                let message = reader.cstr("error message")?;
                reader.finish()?;
                FrontendMessage::CopyFail { message }
            }
            tag::AUTHENTICATION_RESPONSE => {
                FrontendMessage::AuthenticationResponse(AuthenticationResponse { body })
            }
            tag::FUNCTION_CALL => FrontendMessage::FunctionCall {
                function: decode_function_call(body)?,
            },
            tag => FrontendMessage::Other { tag },
        })
    }
}

/// Checks a FunctionCall body field by field; its function OID.
fn decode_function_call(body: &[u8]) -> Result<u32, ProtocolError> {
    let mut reader = BodyReader::new("FunctionCall", body);
    let function = reader.u32("function OID")?;
    let formats = reader.count_i16("argument format count")?;
    reader.bytes(formats * 2, "argument format codes")?;
    let arguments = reader.count_i16("argument count")?;
    for _ in 0..arguments {
        match reader.i32("argument length")? {
            -1 => {} // NULL
            length if length >= 0 => {
                reader.bytes(length as usize, "argument value")?;
            }
            length => return Err(reader.invalid("argument length", length)),
        }
    }
    reader.i16("result format code")?;
    reader.finish()?;
    Ok(function)
}

fn empty<'a>(
    message: &'static str,
    body: &[u8],
    decoded: FrontendMessage<'a>,
) -> Result<FrontendMessage<'a>, ProtocolError> {
    BodyReader::new(message, body).finish()?;
    Ok(decoded)
}

fn decode_parse(body: &[u8]) -> Result<Parse<'_>, ProtocolError> {
    let mut reader = BodyReader::new("Parse", body);
    let statement = reader.cstr("statement name")?;
    let sql = reader.cstr("query string")?;
    let count = reader.count_i16("parameter type count")?;
    // Bounded by the body: a count larger than the bytes left fails below
    // before anything that large is allocated.
    if reader.remaining().len() < count * 4 {
        return Err(ProtocolError::Truncated {
            message: "Parse",
            field: "parameter types",
        });
    }
    let param_types = (0..count)
        .map(|_| reader.u32("parameter type"))
        .collect::<Result<_, _>>()?;
    reader.finish()?;
    Ok(Parse {
        statement,
        sql,
        param_types,
    })
}

fn decode_target<'a>(
    message: &'static str,
    body: &'a [u8],
) -> Result<(Target, &'a [u8]), ProtocolError> {
    let mut reader = BodyReader::new(message, body);
    let target = match reader.u8("target kind")? {
        b'S' => Target::Statement,
        b'P' => Target::Portal,
        other => return Err(reader.invalid("target kind", char::from(other).escape_default())),
    };
    let name = reader.cstr("name")?;
    reader.finish()?;
    Ok((target, name))
}

#[cfg(test)]
mod tests;
