//! Finding whole messages in a read buffer and splitting them off without copying.
//!
//! Two framings share one connection. Before startup completes, a client sends
//! untyped packets: an i32 length (counting itself) then an i32 request code
//! (protocol version 3.x, SSLRequest, GSSENCRequest or CancelRequest). After it,
//! every message in both directions is typed: a one-byte tag, then an i32 length
//! counting itself but not the tag.
//!
//! [`check_message`] and [`check_startup`] only read the header, so a driver can
//! cheaply tell whether a whole frame is buffered before anything is allocated
//! (mini-redis' `Frame::check`). [`Message::split_from`] and
//! [`StartupPacket::split_from`] then take the frame out of a `BytesMut` with
//! `split_to(..).freeze()`: forwarding it is zero-copy.

use bytes::{Bytes, BytesMut};

use super::ProtocolError;

/// The request code of a StartupMessage for protocol 3.0 (`3 << 16`).
pub const PROTOCOL_VERSION_3_0: i32 = 196_608;
/// The request code of an SSLRequest.
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// The request code of a GSSENCRequest.
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
/// The request code of a CancelRequest.
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;

/// The length of a typed message's header: tag and length.
pub const MESSAGE_HEADER_LEN: usize = 5;
/// The length of a startup packet's header: length and request code.
pub const STARTUP_HEADER_LEN: usize = 8;

/// The largest frames a connection accepts; a larger declared length is a
/// [`ProtocolError`] for that connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// The largest typed message, header included (default 1 GiB, PostgreSQL's
    /// own ceiling for one allocation).
    pub max_message_len: usize,
    /// The largest startup-phase packet (default 10 KiB, as PostgreSQL's
    /// `MAX_STARTUP_PACKET_LENGTH`).
    pub max_startup_len: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_message_len: 1 << 30,
            max_startup_len: 10_000,
        }
    }
}

/// PostgreSQL's `PG_MAX_AUTH_TOKEN_LENGTH`: the largest password or SASL message
/// it reads from a client that has not authenticated yet.
pub const MAX_AUTHENTICATION_TOKEN_LEN: usize = 65_535;

impl FrameLimits {
    /// The limits for a client that has not logged in yet: its messages are
    /// passwords and SASL tokens, so anything larger than PostgreSQL's own cap
    /// is refused before it is buffered.
    pub fn before_authentication() -> FrameLimits {
        FrameLimits {
            // The token, plus the header and SASLInitialResponse's mechanism and length.
            max_message_len: MAX_AUTHENTICATION_TOKEN_LEN + 256,
            ..FrameLimits::default()
        }
    }
}

/// An empty buffer larger than this (grown for a large message) is given
/// back by [`shrink_if_idle`].
pub const SHRINK_ABOVE: usize = 256 * 1024;

/// Replaces `buffer` with a small one (8 KiB) when it is empty but larger
/// than [`SHRINK_ABOVE`]: a connection that once carried a large message then
/// holds kilobytes, not that message's size. Call it before reading into the
/// buffer again, or after writing it out.
pub fn shrink_if_idle(buffer: &mut BytesMut) {
    if buffer.is_empty() && buffer.capacity() > SHRINK_ABOVE {
        *buffer = BytesMut::with_capacity(8 * 1024);
    }
}

/// Whether `buf` starts with a whole typed message: `Ok(Some(len))` gives the
/// frame's length (tag included), `Ok(None)` asks for more bytes, and an
/// error means the declared length is impossible or over the limit.
///
/// Reads at most the five header bytes; allocates nothing.
pub fn check_message(buf: &[u8], limits: &FrameLimits) -> Result<Option<usize>, ProtocolError> {
    let Some(header) = buf.get(..MESSAGE_HEADER_LEN) else {
        return Ok(None);
    };
    let tag = header[0];
    let length = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let what = || format!("message {:?}", char::from(tag));
    let frame_len = checked_length(length, 4, limits.max_message_len.saturating_sub(1), what)? + 1;
    Ok((buf.len() >= frame_len).then_some(frame_len))
}

/// Whether `buf` starts with a whole startup-phase packet: as [`check_message`],
/// for untyped packets (the length counts the whole packet).
pub fn check_startup(buf: &[u8], limits: &FrameLimits) -> Result<Option<usize>, ProtocolError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let length = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let what = || "startup packet".to_string();
    let frame_len = checked_length(length, STARTUP_HEADER_LEN, limits.max_startup_len, what)?;
    Ok((buf.len() >= frame_len).then_some(frame_len))
}

/// A declared `length` as a usize within `minimum..=maximum`.
fn checked_length(
    length: i32,
    minimum: usize,
    maximum: usize,
    what: impl Fn() -> String,
) -> Result<usize, ProtocolError> {
    match usize::try_from(length) {
        Ok(len) if len < minimum => Err(ProtocolError::LengthTooShort {
            what: what(),
            length,
            minimum,
        }),
        Ok(len) if len > maximum => Err(ProtocolError::LengthTooLong {
            what: what(),
            length,
            maximum,
        }),
        Ok(len) => Ok(len),
        Err(_) => Err(ProtocolError::LengthTooShort {
            what: what(),
            length,
            minimum,
        }),
    }
}

/// One whole typed message, owned and cheap to clone: the exact bytes received
/// (tag, length, body), ready to forward as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    bytes: Bytes,
}

impl Message {
    /// Splits the first message off `buf` when it is whole (`Ok(None)` leaves
    /// `buf` untouched and asks for more bytes). Zero-copy.
    pub fn split_from(
        buf: &mut BytesMut,
        limits: &FrameLimits,
    ) -> Result<Option<Message>, ProtocolError> {
        Ok(check_message(buf, limits)?.map(|len| Message {
            bytes: buf.split_to(len).freeze(),
        }))
    }

    /// The message's tag (`Q`, `P`, `D`, …).
    pub fn tag(&self) -> u8 {
        self.bytes[0]
    }

    /// The body: the bytes after the header.
    pub fn body(&self) -> &[u8] {
        &self.bytes[MESSAGE_HEADER_LEN..]
    }

    /// The whole frame as received, for forwarding.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The whole frame as received, for forwarding.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// A borrowed view, for the decoders.
    pub fn view(&self) -> MessageRef<'_> {
        MessageRef {
            tag: self.tag(),
            body: self.body(),
        }
    }
}

/// One typed message borrowed from a buffer: what the decoders read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    /// The message's tag.
    pub tag: u8,
    /// The bytes after the header.
    pub body: &'a [u8],
}

impl<'a> MessageRef<'a> {
    /// The first message of `buf` and its frame length, when it is whole; as
    /// [`check_message`], without splitting anything off.
    pub fn peek(
        buf: &'a [u8],
        limits: &FrameLimits,
    ) -> Result<Option<(MessageRef<'a>, usize)>, ProtocolError> {
        Ok(check_message(buf, limits)?.map(|len| {
            let message = MessageRef {
                tag: buf[0],
                body: &buf[MESSAGE_HEADER_LEN..len],
            };
            (message, len)
        }))
    }
}

/// One whole startup-phase packet (StartupMessage, SSLRequest, GSSENCRequest or
/// CancelRequest), owned: the exact bytes received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupPacket {
    bytes: Bytes,
}

impl StartupPacket {
    /// Splits the first startup packet off `buf` when it is whole (`Ok(None)`
    /// asks for more bytes). Zero-copy.
    pub fn split_from(
        buf: &mut BytesMut,
        limits: &FrameLimits,
    ) -> Result<Option<StartupPacket>, ProtocolError> {
        Ok(check_startup(buf, limits)?.map(|len| StartupPacket {
            bytes: buf.split_to(len).freeze(),
        }))
    }

    /// The request code: a protocol version (`major << 16 | minor`) or one of
    /// the special request codes.
    pub fn code(&self) -> i32 {
        i32::from_be_bytes([self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]])
    }

    /// The bytes after the length and the code.
    pub fn body(&self) -> &[u8] {
        &self.bytes[STARTUP_HEADER_LEN..]
    }

    /// The whole packet as received.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FrameLimits {
        FrameLimits::default()
    }

    /// `Q` with body "SELECT 1\0": 1 + 4 + 9 bytes.
    const QUERY: &[u8] = b"Q\0\0\0\x0dSELECT 1\0";

    #[test]
    fn a_whole_message_is_found_with_its_frame_length() {
        assert_eq!(check_message(QUERY, &limits()), Ok(Some(QUERY.len())));
    }

    #[test]
    fn every_strict_prefix_of_a_message_asks_for_more_bytes() {
        for len in 0..QUERY.len() {
            assert_eq!(
                check_message(&QUERY[..len], &limits()),
                Ok(None),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn splitting_takes_one_message_and_leaves_the_next() {
        let mut buf = BytesMut::from(&[QUERY, b"S\0\0\0\x04X\0\0"][..].concat()[..]);
        let query = Message::split_from(&mut buf, &limits()).unwrap().unwrap();
        assert_eq!((query.tag(), query.body()), (b'Q', &b"SELECT 1\0"[..]));
        assert_eq!(query.as_bytes().as_ref(), QUERY);
        let sync = Message::split_from(&mut buf, &limits()).unwrap().unwrap();
        assert_eq!((sync.tag(), sync.body()), (b'S', &b""[..]));
        assert_eq!(Message::split_from(&mut buf, &limits()), Ok(None));
        assert_eq!(&buf[..], b"X\0\0", "the partial message stays buffered");
    }

    #[test]
    fn many_messages_in_one_buffer_are_split_in_order() {
        let mut buf = BytesMut::new();
        for _ in 0..100 {
            buf.extend_from_slice(QUERY);
        }
        let mut count = 0;
        while let Some(message) = Message::split_from(&mut buf, &limits()).unwrap() {
            assert_eq!(message.as_bytes().as_ref(), QUERY);
            count += 1;
        }
        assert_eq!((count, buf.len()), (100, 0));
    }

    #[test]
    fn splitting_an_incomplete_message_leaves_the_buffer_untouched() {
        let mut buf = BytesMut::from(&QUERY[..7]);
        assert_eq!(Message::split_from(&mut buf, &limits()), Ok(None));
        assert_eq!(&buf[..], &QUERY[..7]);
    }

    #[test]
    fn a_message_length_below_four_is_an_error() {
        for length in [0i32, 3, -1, i32::MIN] {
            let mut header = vec![b'Q'];
            header.extend_from_slice(&length.to_be_bytes());
            assert!(
                matches!(
                    check_message(&header, &limits()),
                    Err(ProtocolError::LengthTooShort { .. })
                ),
                "length {length}"
            );
        }
    }

    #[test]
    fn a_message_length_over_the_limit_is_an_error_before_the_body_arrives() {
        let limits = FrameLimits {
            max_message_len: 100,
            ..FrameLimits::default()
        };
        let at_limit = [b'D', 0, 0, 0, 99];
        let over_limit = [b'D', 0, 0, 0, 100];
        assert_eq!(check_message(&at_limit, &limits), Ok(None));
        assert!(matches!(
            check_message(&over_limit, &limits),
            Err(ProtocolError::LengthTooLong {
                length: 100,
                maximum: 99,
                ..
            })
        ));
    }

    #[test]
    fn the_default_message_limit_is_one_gibibyte() {
        let just_over = (1i32 << 30).to_be_bytes();
        let header = [b'D', just_over[0], just_over[1], just_over[2], just_over[3]];
        assert!(matches!(
            check_message(&header, &FrameLimits::default()),
            Err(ProtocolError::LengthTooLong { .. })
        ));
    }

    #[test]
    fn before_authentication_a_message_over_the_token_cap_is_an_error() {
        let length = (MAX_AUTHENTICATION_TOKEN_LEN as i32 + 1024).to_be_bytes();
        let header = [b'p', length[0], length[1], length[2], length[3]];
        assert_eq!(check_message(&header, &FrameLimits::default()), Ok(None));
        assert!(matches!(
            check_message(&header, &FrameLimits::before_authentication()),
            Err(ProtocolError::LengthTooLong { .. })
        ));
    }

    #[test]
    fn an_empty_buffer_grown_for_a_large_message_is_made_small_again() {
        let mut buf = BytesMut::with_capacity(4 << 20);
        buf.extend_from_slice(&[0; 16]);
        shrink_if_idle(&mut buf);
        assert!(buf.capacity() >= 4 << 20, "not empty: kept");
        buf.clear();
        shrink_if_idle(&mut buf);
        assert!(buf.capacity() <= SHRINK_ABOVE, "{}", buf.capacity());
    }

    #[test]
    fn peeking_borrows_the_message_without_consuming_it() {
        let (message, len) = MessageRef::peek(QUERY, &limits()).unwrap().unwrap();
        assert_eq!(
            (message.tag, message.body, len),
            (b'Q', &b"SELECT 1\0"[..], QUERY.len())
        );
    }

    /// SSLRequest: length 8, code 80877103.
    const SSL_REQUEST: &[u8] = &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

    #[test]
    fn a_whole_startup_packet_is_split_with_its_code() {
        let mut buf = BytesMut::from(SSL_REQUEST);
        let packet = StartupPacket::split_from(&mut buf, &limits())
            .unwrap()
            .unwrap();
        assert_eq!((packet.code(), packet.body()), (SSL_REQUEST_CODE, &b""[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn every_strict_prefix_of_a_startup_packet_asks_for_more_bytes() {
        for len in 0..SSL_REQUEST.len() {
            assert_eq!(
                check_startup(&SSL_REQUEST[..len], &limits()),
                Ok(None),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn a_startup_length_without_room_for_the_code_is_an_error() {
        assert!(matches!(
            check_startup(&[0, 0, 0, 7], &limits()),
            Err(ProtocolError::LengthTooShort { minimum: 8, .. })
        ));
    }

    #[test]
    fn a_startup_packet_over_ten_thousand_bytes_is_an_error() {
        assert_eq!(check_startup(&10_000i32.to_be_bytes(), &limits()), Ok(None));
        assert!(matches!(
            check_startup(&10_001i32.to_be_bytes(), &limits()),
            Err(ProtocolError::LengthTooLong { .. })
        ));
    }
}
