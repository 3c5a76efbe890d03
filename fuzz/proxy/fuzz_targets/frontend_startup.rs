//! Bytes a client sends before it is logged in: framed with the startup
//! limits and decoded as the proxy does (SSLRequest, GSSENCRequest,
//! CancelRequest, StartupMessage). Fails on a panic; a malformed packet must
//! be a `ProtocolError`, nothing worse.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgrw_proxy::protocol::frontend::{AuthenticationResponse, StartupRequest};
use pgrw_proxy::protocol::{FrameLimits, Message, StartupPacket};

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits::before_authentication();
    let mut buf = BytesMut::from(data);
    // The startup packets, then (as after a StartupMessage) the password and SASL messages.
    while let Ok(Some(packet)) = StartupPacket::split_from(&mut buf, &limits) {
        match StartupRequest::decode(&packet) {
            Ok(StartupRequest::Startup(startup)) => {
                let _ = (startup.user(), startup.database());
                break;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
    while let Ok(Some(message)) = Message::split_from(&mut buf, &limits) {
        let response = AuthenticationResponse {
            body: message.body(),
        };
        let _ = response.password();
        let _ = response.sasl_initial();
    }
});
