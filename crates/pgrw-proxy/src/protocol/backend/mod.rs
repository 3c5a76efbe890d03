//! Messages from a server (a backend) to a client: what the proxy reads from
//! nodes and writes to its clients.
//!
//! Only what the proxy acts on is decoded (authentication, session parameters,
//! cancel keys, transaction status, errors, command tags); rows and row
//! descriptions stay opaque frames, forwarded as bytes.

mod encode;
mod notice;

pub use encode::*;
pub use notice::{NoticeFields, Severity, field};

use super::ProtocolError;
use super::frame::MessageRef;
use super::frontend::MAX_CANCEL_KEY_LEN;
use super::reader::BodyReader;

/// The tags of backend messages.
pub mod tag {
    /// Authentication* (the code in the body says which).
    pub const AUTHENTICATION: u8 = b'R';
    /// BackendKeyData.
    pub const BACKEND_KEY_DATA: u8 = b'K';
    /// BindComplete.
    pub const BIND_COMPLETE: u8 = b'2';
    /// CloseComplete.
    pub const CLOSE_COMPLETE: u8 = b'3';
    /// CommandComplete.
    pub const COMMAND_COMPLETE: u8 = b'C';
    /// CopyBothResponse (replication).
    pub const COPY_BOTH_RESPONSE: u8 = b'W';
    /// CopyData (both directions).
    pub const COPY_DATA: u8 = b'd';
    /// CopyDone (both directions).
    pub const COPY_DONE: u8 = b'c';
    /// CopyInResponse: COPY FROM STDIN started.
    pub const COPY_IN_RESPONSE: u8 = b'G';
    /// CopyOutResponse: COPY TO STDOUT started.
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    /// DataRow.
    pub const DATA_ROW: u8 = b'D';
    /// EmptyQueryResponse.
    pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
    /// ErrorResponse.
    pub const ERROR_RESPONSE: u8 = b'E';
    /// NegotiateProtocolVersion.
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
    /// NoData.
    pub const NO_DATA: u8 = b'n';
    /// NoticeResponse.
    pub const NOTICE_RESPONSE: u8 = b'N';
    /// NotificationResponse (LISTEN/NOTIFY).
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    /// ParameterDescription.
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    /// ParameterStatus.
    pub const PARAMETER_STATUS: u8 = b'S';
    /// ParseComplete.
    pub const PARSE_COMPLETE: u8 = b'1';
    /// PortalSuspended.
    pub const PORTAL_SUSPENDED: u8 = b's';
    /// ReadyForQuery.
    pub const READY_FOR_QUERY: u8 = b'Z';
    /// RowDescription.
    pub const ROW_DESCRIPTION: u8 = b'T';
}

/// The codes of Authentication* messages.
pub mod auth_code {
    /// AuthenticationOk.
    pub const OK: i32 = 0;
    /// AuthenticationCleartextPassword.
    pub const CLEARTEXT_PASSWORD: i32 = 3;
    /// AuthenticationMD5Password.
    pub const MD5_PASSWORD: i32 = 5;
    /// AuthenticationSASL.
    pub const SASL: i32 = 10;
    /// AuthenticationSASLContinue.
    pub const SASL_CONTINUE: i32 = 11;
    /// AuthenticationSASLFinal.
    pub const SASL_FINAL: i32 = 12;
}

/// A server's request or verdict during authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication<'a> {
    /// Logged in.
    Ok,
    /// Send the password in cleartext.
    CleartextPassword,
    /// Send `md5(md5(password || user) || salt)`.
    Md5Password {
        /// The per-connection salt.
        salt: [u8; 4],
    },
    /// Pick a SASL mechanism among these.
    Sasl {
        /// Mechanism names, in the server's order of preference.
        mechanisms: Vec<&'a str>,
    },
    /// The next SASL challenge (SCRAM's server-first-message).
    SaslContinue {
        /// The mechanism's data.
        data: &'a [u8],
    },
    /// The last SASL message (SCRAM's server-final-message).
    SaslFinal {
        /// The mechanism's data.
        data: &'a [u8],
    },
    /// Kerberos, GSSAPI, SSPI: methods the proxy does not speak.
    Unsupported {
        /// The authentication code.
        code: i32,
    },
}

/// The transaction status in ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block (queries rejected until it ends).
    Failed,
}

impl TransactionStatus {
    /// The byte that encodes it.
    pub fn byte(self) -> u8 {
        match self {
            TransactionStatus::Idle => b'I',
            TransactionStatus::InTransaction => b'T',
            TransactionStatus::Failed => b'E',
        }
    }
}

/// A decoded backend message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage<'a> {
    /// Authentication*.
    Authentication(Authentication<'a>),
    /// ParameterStatus: a reported setting changed (or its value at startup).
    ParameterStatus {
        /// The setting (`server_version`, `client_encoding`, `TimeZone`, …).
        name: &'a [u8],
        /// Its value.
        value: &'a [u8],
    },
    /// BackendKeyData: the key that cancels this session's queries.
    BackendKeyData {
        /// The backend's process id.
        process_id: i32,
        /// The secret key (4 bytes in protocol 3.0, up to 256 in 3.2).
        secret_key: &'a [u8],
    },
    /// ReadyForQuery.
    ReadyForQuery(TransactionStatus),
    /// ErrorResponse.
    ErrorResponse(NoticeFields),
    /// NoticeResponse.
    NoticeResponse(NoticeFields),
    /// CommandComplete.
    CommandComplete {
        /// The command tag (`SELECT 1`, `INSERT 0 3`, `BEGIN`, …).
        tag: &'a [u8],
    },
    /// ParseComplete.
    ParseComplete,
    /// BindComplete.
    BindComplete,
    /// CloseComplete.
    CloseComplete,
    /// EmptyQueryResponse.
    EmptyQueryResponse,
    /// NoData.
    NoData,
    /// PortalSuspended: Execute hit its row limit.
    PortalSuspended,
    /// CopyInResponse: the node waits for CopyData from the client.
    CopyInResponse,
    /// CopyOutResponse: CopyData follows from the node.
    CopyOutResponse,
    /// CopyBothResponse.
    CopyBothResponse,
    /// CopyDone.
    CopyDone,
    /// NegotiateProtocolVersion: the server speaks an older minor version, or
    /// ignores some `_pq_.` startup options.
    NegotiateProtocolVersion {
        /// The newest minor version of protocol 3 the server supports.
        newest_minor: i32,
        /// The `_pq_.` options it did not recognise.
        unrecognized_options: Vec<&'a [u8]>,
    },
    /// RowDescription, DataRow, CopyData, ParameterDescription,
    /// NotificationResponse and anything else: opaque, forwarded as bytes.
    Opaque {
        /// The tag.
        tag: u8,
    },
}

impl<'a> BackendMessage<'a> {
    /// Decodes the parts the proxy acts on; see [`BackendMessage::Opaque`].
    pub fn decode(message: MessageRef<'a>) -> Result<BackendMessage<'a>, ProtocolError> {
        let body = message.body;
        Ok(match message.tag {
            tag::AUTHENTICATION => BackendMessage::Authentication(decode_authentication(body)?),
            tag::PARAMETER_STATUS => {
                let mut reader = BodyReader::new("ParameterStatus", body);
                let name = reader.cstr("name")?;
                let value = reader.cstr("value")?;
                reader.finish()?;
                BackendMessage::ParameterStatus { name, value }
            }
            tag::BACKEND_KEY_DATA => {
                let mut reader = BodyReader::new("BackendKeyData", body);
                let process_id = reader.i32("process id")?;
                let secret_key = reader.rest();
                if !(4..=MAX_CANCEL_KEY_LEN).contains(&secret_key.len()) {
                    return Err(reader.invalid("secret key length", secret_key.len()));
                }
                BackendMessage::BackendKeyData {
                    process_id,
                    secret_key,
                }
            }
            tag::READY_FOR_QUERY => {
                let mut reader = BodyReader::new("ReadyForQuery", body);
                let status = match reader.u8("transaction status")? {
                    b'I' => TransactionStatus::Idle,
                    b'T' => TransactionStatus::InTransaction,
                    b'E' => TransactionStatus::Failed,
                    other => {
                        return Err(reader
                            .invalid("transaction status", char::from(other).escape_default()));
                    }
                };
                reader.finish()?;
                BackendMessage::ReadyForQuery(status)
            }
            tag::ERROR_RESPONSE => {
                BackendMessage::ErrorResponse(NoticeFields::decode("ErrorResponse", body)?)
            }
            tag::NOTICE_RESPONSE => {
                BackendMessage::NoticeResponse(NoticeFields::decode("NoticeResponse", body)?)
            }
            tag::COMMAND_COMPLETE => {
                let mut reader = BodyReader::new("CommandComplete", body);
                let tag = reader.cstr("command tag")?;
                reader.finish()?;
                BackendMessage::CommandComplete { tag }
            }
            tag::PARSE_COMPLETE => empty("ParseComplete", body, BackendMessage::ParseComplete)?,
            tag::BIND_COMPLETE => empty("BindComplete", body, BackendMessage::BindComplete)?,
            tag::CLOSE_COMPLETE => empty("CloseComplete", body, BackendMessage::CloseComplete)?,
            tag::EMPTY_QUERY_RESPONSE => empty(
                "EmptyQueryResponse",
                body,
                BackendMessage::EmptyQueryResponse,
            )?,
            tag::NO_DATA => empty("NoData", body, BackendMessage::NoData)?,
            tag::PORTAL_SUSPENDED => {
                empty("PortalSuspended", body, BackendMessage::PortalSuspended)?
            }
            tag::COPY_DONE => empty("CopyDone", body, BackendMessage::CopyDone)?,
            tag::NEGOTIATE_PROTOCOL_VERSION => decode_negotiate_protocol_version(body)?,
            tag::COPY_IN_RESPONSE => BackendMessage::CopyInResponse,
            tag::COPY_OUT_RESPONSE => BackendMessage::CopyOutResponse,
            tag::COPY_BOTH_RESPONSE => BackendMessage::CopyBothResponse,
            tag => BackendMessage::Opaque { tag },
        })
    }
}

fn empty<'a>(
    message: &'static str,
    body: &[u8],
    decoded: BackendMessage<'a>,
) -> Result<BackendMessage<'a>, ProtocolError> {
    BodyReader::new(message, body).finish()?;
    Ok(decoded)
}

fn decode_negotiate_protocol_version(body: &[u8]) -> Result<BackendMessage<'_>, ProtocolError> {
    let mut reader = BodyReader::new("NegotiateProtocolVersion", body);
    let newest_minor = reader.i32("newest minor version")?;
    let count = reader.i32("option count")?;
    let count = usize::try_from(count).map_err(|_| ProtocolError::Negative {
        message: "NegotiateProtocolVersion",
        field: "option count",
        value: count.into(),
    })?;
    // Each option takes at least its NUL: a larger count cannot fit in the body.
    if count > reader.remaining().len() {
        return Err(ProtocolError::Truncated {
            message: "NegotiateProtocolVersion",
            field: "options",
        });
    }
    let unrecognized_options = (0..count)
        .map(|_| reader.cstr("option name"))
        .collect::<Result<_, _>>()?;
    reader.finish()?;
    Ok(BackendMessage::NegotiateProtocolVersion {
        newest_minor,
        unrecognized_options,
    })
}

fn decode_authentication(body: &[u8]) -> Result<Authentication<'_>, ProtocolError> {
    let mut reader = BodyReader::new("Authentication", body);
    let code = reader.i32("authentication code")?;
    let authentication = match code {
        auth_code::OK => Authentication::Ok,
        auth_code::CLEARTEXT_PASSWORD => Authentication::CleartextPassword,
        auth_code::MD5_PASSWORD => Authentication::Md5Password {
            salt: reader.array("salt")?,
        },
        auth_code::SASL => {
            let mut mechanisms = Vec::new();
            loop {
                let mechanism = reader.utf8_cstr("mechanism")?;
                if mechanism.is_empty() {
                    break;
                }
                mechanisms.push(mechanism);
            }
            Authentication::Sasl { mechanisms }
        }
        auth_code::SASL_CONTINUE => Authentication::SaslContinue {
            data: reader.rest(),
        },
        auth_code::SASL_FINAL => Authentication::SaslFinal {
            data: reader.rest(),
        },
        // Their bodies (GSS continuation data) are opaque to the proxy.
        code => {
            reader.rest();
            Authentication::Unsupported { code }
        }
    };
    reader.finish()?;
    Ok(authentication)
}

#[cfg(test)]
mod tests;
