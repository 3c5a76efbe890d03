//! Appending whole messages to an output buffer.

use bytes::{BufMut, BytesMut};

/// Appends one typed message: `tag`, a length patched in once `body` has written
/// the fields, then the fields.
///
/// # Panics
/// When the body exceeds `i32::MAX` bytes, which no message the proxy writes can
/// reach: input messages are bounded by [`super::FrameLimits`] first.
pub(crate) fn message(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    packet(out, body);
}

/// Appends one untyped (startup-phase) packet: a length, then what `body` writes.
pub(crate) fn packet(out: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    let length_at = out.len();
    out.put_i32(0);
    body(out);
    let length = i32::try_from(out.len() - length_at).expect("a message over 2 GiB");
    out[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
}

/// Appends `string` and its terminating NUL.
///
/// A NUL inside `string` cannot be sent in a protocol string: the field is cut
/// there, so the message stays well-formed. Decoded fields never hold one.
pub(crate) fn cstr(out: &mut BytesMut, string: &[u8]) {
    let end = string
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(string.len());
    out.put_slice(&string[..end]);
    out.put_u8(0);
}

/// The length as a protocol i32.
///
/// # Panics
/// Past `i32::MAX`, as [`message`].
pub(crate) fn length_i32(len: usize) -> i32 {
    i32::try_from(len).expect("a field over 2 GiB")
}

/// The count as a protocol i16.
///
/// # Panics
/// Past `i16::MAX` items, which PostgreSQL itself rejects.
pub(crate) fn count_i16(len: usize) -> i16 {
    i16::try_from(len).expect("more than 32767 items in one message")
}
