//! Bytes a logged-in client sends: framed and decoded as the proxy does
//! (Query, Parse, Bind, Describe, Execute, Close, …). Fails on a panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgrw_proxy::protocol::frontend::FrontendMessage;
use pgrw_proxy::protocol::{FrameLimits, Message};

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits::default();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(message)) = Message::split_from(&mut buf, &limits) {
        let _ = FrontendMessage::decode(message.view());
    }
});
