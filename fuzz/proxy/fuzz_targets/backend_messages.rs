//! Bytes a node sends: framed and decoded as the proxy does (authentication
//! requests, ParameterStatus, ErrorResponse and NoticeResponse fields,
//! ReadyForQuery, …). Fails on a panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgrw_proxy::protocol::backend::{BackendMessage, NoticeFields};
use pgrw_proxy::protocol::{FrameLimits, Message};

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits::default();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(message)) = Message::split_from(&mut buf, &limits) {
        let _ = BackendMessage::decode(message.view());
        if matches!(message.tag(), b'E' | b'N') {
            let _ = NoticeFields::decode("ErrorResponse", message.body());
        }
    }
});
