//! Encoders for the frontend messages the proxy writes to nodes.

use bytes::{BufMut, BytesMut};

use super::super::writer;
use super::{Bind, Target, tag};

/// Appends Query (simple protocol) with `sql`.
pub fn encode_query(out: &mut BytesMut, sql: &[u8]) {
    writer::message(out, tag::QUERY, |out| writer::cstr(out, sql));
}

/// Appends Parse of `sql` as `statement`, with fixed parameter types (0: infer).
pub fn encode_parse(out: &mut BytesMut, statement: &[u8], sql: &[u8], param_types: &[u32]) {
    writer::message(out, tag::PARSE, |out| {
        writer::cstr(out, statement);
        writer::cstr(out, sql);
        out.put_i16(writer::count_i16(param_types.len()));
        for &oid in param_types {
            out.put_u32(oid);
        }
    });
}

/// Appends Bind from its parts as decoded: `bind.parameters` is copied as is,
/// so a Bind can be re-sent under another statement name.
pub fn encode_bind(out: &mut BytesMut, bind: &Bind<'_>) {
    writer::message(out, tag::BIND, |out| {
        writer::cstr(out, bind.portal);
        writer::cstr(out, bind.statement);
        out.put_slice(bind.parameters);
    });
}

/// The bytes after the names of a Bind: parameter format codes, values
/// (`None` is SQL NULL) and result format codes (0 text, 1 binary).
pub fn bind_parameters(
    param_formats: &[i16],
    values: &[Option<&[u8]>],
    result_formats: &[i16],
) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_i16(writer::count_i16(param_formats.len()));
    for &format in param_formats {
        out.put_i16(format);
    }
    out.put_i16(writer::count_i16(values.len()));
    for value in values {
        match value {
            None => out.put_i32(-1),
            Some(bytes) => {
                out.put_i32(writer::length_i32(bytes.len()));
                out.put_slice(bytes);
            }
        }
    }
    out.put_i16(writer::count_i16(result_formats.len()));
    for &format in result_formats {
        out.put_i16(format);
    }
    out
}

/// Appends Describe of a statement or portal.
pub fn encode_describe(out: &mut BytesMut, target: Target, name: &[u8]) {
    writer::message(out, tag::DESCRIBE, |out| {
        out.put_u8(target.byte());
        writer::cstr(out, name);
    });
}

/// Appends Execute of `portal`, returning at most `max_rows` rows (0: all).
pub fn encode_execute(out: &mut BytesMut, portal: &[u8], max_rows: i32) {
    writer::message(out, tag::EXECUTE, |out| {
        writer::cstr(out, portal);
        out.put_i32(max_rows);
    });
}

/// Appends Close of a statement or portal.
pub fn encode_close(out: &mut BytesMut, target: Target, name: &[u8]) {
    writer::message(out, tag::CLOSE, |out| {
        out.put_u8(target.byte());
        writer::cstr(out, name);
    });
}

/// Appends Sync.
pub fn encode_sync(out: &mut BytesMut) {
    writer::message(out, tag::SYNC, |_| {});
}

/// Appends Flush.
pub fn encode_flush(out: &mut BytesMut) {
    writer::message(out, tag::FLUSH, |_| {});
}

/// Appends Terminate.
pub fn encode_terminate(out: &mut BytesMut) {
    writer::message(out, tag::TERMINATE, |_| {});
}

/// Appends CopyData.
pub fn encode_copy_data(out: &mut BytesMut, data: &[u8]) {
    writer::message(out, tag::COPY_DATA, |out| out.put_slice(data));
}

/// Appends CopyDone.
pub fn encode_copy_done(out: &mut BytesMut) {
    writer::message(out, tag::COPY_DONE, |_| {});
}

/// Appends CopyFail with the reason.
pub fn encode_copy_fail(out: &mut BytesMut, message: &[u8]) {
    writer::message(out, tag::COPY_FAIL, |out| writer::cstr(out, message));
}

/// Appends PasswordMessage: a cleartext password or an `md5…` response.
pub fn encode_password(out: &mut BytesMut, password: &[u8]) {
    writer::message(out, tag::AUTHENTICATION_RESPONSE, |out| {
        writer::cstr(out, password)
    });
}

/// Appends SASLInitialResponse choosing `mechanism`, with its first message.
pub fn encode_sasl_initial_response(out: &mut BytesMut, mechanism: &str, data: &[u8]) {
    writer::message(out, tag::AUTHENTICATION_RESPONSE, |out| {
        writer::cstr(out, mechanism.as_bytes());
        out.put_i32(writer::length_i32(data.len()));
        out.put_slice(data);
    });
}

/// Appends SASLResponse with the mechanism's next message.
pub fn encode_sasl_response(out: &mut BytesMut, data: &[u8]) {
    writer::message(out, tag::AUTHENTICATION_RESPONSE, |out| out.put_slice(data));
}
