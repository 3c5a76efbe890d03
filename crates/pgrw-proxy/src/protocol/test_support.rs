//! Helpers for the protocol's unit tests.

use bytes::BytesMut;

use super::frame::{FrameLimits, Message, StartupPacket};

/// Encodes with `encode`, then frames the result, which must be exactly one message.
pub(crate) fn one_message(encode: impl FnOnce(&mut BytesMut)) -> Message {
    let mut buf = BytesMut::new();
    encode(&mut buf);
    let message = Message::split_from(&mut buf, &FrameLimits::default())
        .unwrap()
        .expect("a whole message");
    assert!(buf.is_empty(), "exactly one message");
    message
}

/// As [`one_message`], for a startup-phase packet.
pub(crate) fn one_startup_packet(encode: impl FnOnce(&mut BytesMut)) -> StartupPacket {
    let mut buf = BytesMut::new();
    encode(&mut buf);
    let packet = StartupPacket::split_from(&mut buf, &FrameLimits::default())
        .unwrap()
        .expect("a whole packet");
    assert!(buf.is_empty(), "exactly one packet");
    packet
}

/// An encoder of a message without fields.
pub(crate) type Encoder = fn(&mut BytesMut);
