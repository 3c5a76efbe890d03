//! Encoders for the backend messages the proxy writes to its clients.

use bytes::{BufMut, BytesMut};

use super::super::writer;
use super::{NoticeFields, TransactionStatus, auth_code, tag};

/// Appends AuthenticationOk.
pub fn encode_authentication_ok(out: &mut BytesMut) {
    authentication(out, auth_code::OK, |_| {});
}

/// Appends AuthenticationCleartextPassword.
pub fn encode_authentication_cleartext_password(out: &mut BytesMut) {
    authentication(out, auth_code::CLEARTEXT_PASSWORD, |_| {});
}

/// Appends AuthenticationMD5Password with the connection's salt.
pub fn encode_authentication_md5_password(out: &mut BytesMut, salt: [u8; 4]) {
    authentication(out, auth_code::MD5_PASSWORD, |out| out.put_slice(&salt));
}

/// Appends AuthenticationSASL offering `mechanisms`.
pub fn encode_authentication_sasl(out: &mut BytesMut, mechanisms: &[&str]) {
    authentication(out, auth_code::SASL, |out| {
        for mechanism in mechanisms {
            writer::cstr(out, mechanism.as_bytes());
        }
        out.put_u8(0);
    });
}

/// Appends AuthenticationSASLContinue with the mechanism's challenge.
pub fn encode_authentication_sasl_continue(out: &mut BytesMut, data: &[u8]) {
    authentication(out, auth_code::SASL_CONTINUE, |out| out.put_slice(data));
}

/// Appends AuthenticationSASLFinal with the mechanism's last message.
pub fn encode_authentication_sasl_final(out: &mut BytesMut, data: &[u8]) {
    authentication(out, auth_code::SASL_FINAL, |out| out.put_slice(data));
}

fn authentication(out: &mut BytesMut, code: i32, body: impl FnOnce(&mut BytesMut)) {
    writer::message(out, tag::AUTHENTICATION, |out| {
        out.put_i32(code);
        body(out);
    });
}

/// Appends ParameterStatus.
pub fn encode_parameter_status(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    writer::message(out, tag::PARAMETER_STATUS, |out| {
        writer::cstr(out, name);
        writer::cstr(out, value);
    });
}

/// Appends BackendKeyData.
pub fn encode_backend_key_data(out: &mut BytesMut, process_id: i32, secret_key: &[u8]) {
    writer::message(out, tag::BACKEND_KEY_DATA, |out| {
        out.put_i32(process_id);
        out.put_slice(secret_key);
    });
}

/// Appends ReadyForQuery.
pub fn encode_ready_for_query(out: &mut BytesMut, status: TransactionStatus) {
    writer::message(out, tag::READY_FOR_QUERY, |out| out.put_u8(status.byte()));
}

/// Appends ErrorResponse.
pub fn encode_error_response(out: &mut BytesMut, fields: &NoticeFields) {
    writer::message(out, tag::ERROR_RESPONSE, |out| fields.encode_body(out));
}

/// Appends NoticeResponse.
pub fn encode_notice_response(out: &mut BytesMut, fields: &NoticeFields) {
    writer::message(out, tag::NOTICE_RESPONSE, |out| fields.encode_body(out));
}

/// Appends CommandComplete with a command tag (`SELECT 1`, `SET`, …).
pub fn encode_command_complete(out: &mut BytesMut, command_tag: &[u8]) {
    writer::message(out, tag::COMMAND_COMPLETE, |out| {
        writer::cstr(out, command_tag)
    });
}

/// The type OID of `text`, the type of every column the proxy describes.
pub const TEXT_OID: u32 = 25;
/// The type OID of `int8`, for columns of counts (psql right-aligns them).
pub const INT8_OID: u32 = 20;

/// Appends RowDescription: `columns` as (name, type OID), all in text format.
pub fn encode_row_description(out: &mut BytesMut, columns: &[(&str, u32)]) {
    writer::message(out, tag::ROW_DESCRIPTION, |out| {
        out.put_i16(writer::count_i16(columns.len()));
        for (name, type_oid) in columns {
            writer::cstr(out, name.as_bytes());
            out.put_u32(0); // no table
            out.put_i16(0); // no column number
            out.put_u32(*type_oid);
            out.put_i16(if *type_oid == INT8_OID { 8 } else { -1 });
            out.put_i32(-1); // no type modifier
            out.put_i16(0); // text
        }
    });
}

/// Appends DataRow: each value in text, `None` for NULL.
pub fn encode_data_row<'a>(
    out: &mut BytesMut,
    values: impl ExactSizeIterator<Item = Option<&'a str>>,
) {
    writer::message(out, tag::DATA_ROW, |out| {
        out.put_i16(writer::count_i16(values.len()));
        for value in values {
            match value {
                Some(value) => {
                    out.put_i32(writer::length_i32(value.len()));
                    out.put_slice(value.as_bytes());
                }
                None => out.put_i32(-1),
            }
        }
    });
}

/// Appends EmptyQueryResponse.
pub fn encode_empty_query_response(out: &mut BytesMut) {
    writer::message(out, tag::EMPTY_QUERY_RESPONSE, |_| {});
}

/// Appends ParseComplete.
pub fn encode_parse_complete(out: &mut BytesMut) {
    writer::message(out, tag::PARSE_COMPLETE, |_| {});
}

/// Appends BindComplete.
pub fn encode_bind_complete(out: &mut BytesMut) {
    writer::message(out, tag::BIND_COMPLETE, |_| {});
}

/// Appends CloseComplete.
pub fn encode_close_complete(out: &mut BytesMut) {
    writer::message(out, tag::CLOSE_COMPLETE, |_| {});
}

/// Appends NoData.
pub fn encode_no_data(out: &mut BytesMut) {
    writer::message(out, tag::NO_DATA, |_| {});
}

/// Appends NegotiateProtocolVersion: the newest minor version of protocol 3 the
/// proxy speaks, and the `_pq_.` startup options it ignored.
pub fn encode_negotiate_protocol_version(
    out: &mut BytesMut,
    newest_minor: i32,
    unrecognized_options: &[&[u8]],
) {
    writer::message(out, tag::NEGOTIATE_PROTOCOL_VERSION, |out| {
        out.put_i32(newest_minor);
        out.put_i32(writer::length_i32(unrecognized_options.len()));
        for option in unrecognized_options {
            writer::cstr(out, option);
        }
    });
}
