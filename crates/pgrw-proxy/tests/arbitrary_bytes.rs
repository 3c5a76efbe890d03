//! Property tests: whatever bytes a peer sends, framing and decoding return a
//! frame, "need more bytes" or a typed error — never a panic — and framing does
//! not depend on how the bytes were chunked by the network.

use bytes::BytesMut;
use pgrw_proxy::auth::scram::{ScramClient, ScramServer, ScramVerifier};
use pgrw_proxy::protocol::backend::BackendMessage;
use pgrw_proxy::protocol::frontend::{self, FrontendMessage, StartupRequest};
use pgrw_proxy::protocol::{FrameLimits, Message, MessageRef, StartupPacket};
use proptest::prelude::*;

const SMALL_LIMITS: FrameLimits = FrameLimits {
    max_message_len: 4096,
    max_startup_len: 1024,
};

/// Tags of every message either side may send, so bodies reach real decoders.
const KNOWN_TAGS: &[u8] = b"RSKZENC123TDInstGHWdcvApQPBFfHX";

proptest! {
    #[test]
    fn framing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(message)) = Message::split_from(&mut buf, &SMALL_LIMITS) {
            let _ = FrontendMessage::decode(message.view());
            let _ = BackendMessage::decode(message.view());
        }
        let mut buf = BytesMut::from(&bytes[..]);
        if let Ok(Some(packet)) = StartupPacket::split_from(&mut buf, &SMALL_LIMITS) {
            let _ = StartupRequest::decode(&packet);
        }
    }

    #[test]
    fn decoding_arbitrary_bodies_never_panics(
        tag in proptest::sample::select(KNOWN_TAGS),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let message = MessageRef { tag, body: &body };
        if let Ok(FrontendMessage::AuthenticationResponse(response)) = FrontendMessage::decode(message) {
            let _ = response.password();
            let _ = response.sasl_initial();
        }
        let _ = BackendMessage::decode(message);
    }

    #[test]
    fn decoding_arbitrary_startup_bodies_never_panics(
        code in proptest::sample::select(vec![196_608, 196_610, 80_877_102, 80_877_103, 80_877_104, 0, -1]),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let _ = StartupRequest::decode_parts(code, &body);
    }

    #[test]
    fn a_declared_length_is_accepted_only_within_the_limits(length in any::<i32>()) {
        let mut header = vec![b'Q'];
        header.extend_from_slice(&length.to_be_bytes());
        let accepted = MessageRef::peek(&header, &SMALL_LIMITS).is_ok();
        prop_assert_eq!(accepted, (4..SMALL_LIMITS.max_message_len as i32).contains(&length));
    }

    #[test]
    fn framing_does_not_depend_on_how_the_bytes_arrive(
        sqls in proptest::collection::vec("[a-zA-Z0-9 ]{0,40}", 1..8),
        chunk in 1usize..16,
    ) {
        let mut stream = BytesMut::new();
        for sql in &sqls {
            frontend::encode_query(&mut stream, sql.as_bytes());
            frontend::encode_sync(&mut stream);
        }
        let mut buf = BytesMut::new();
        let mut received = Vec::new();
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(message) = Message::split_from(&mut buf, &FrameLimits::default()).unwrap() {
                received.push(message);
            }
        }
        prop_assert!(buf.is_empty());
        let queries: Vec<Vec<u8>> = received
            .iter()
            .filter_map(|message| match FrontendMessage::decode(message.view()) {
                Ok(FrontendMessage::Query { sql }) => Some(sql.to_vec()),
                _ => None,
            })
            .collect();
        let expected: Vec<Vec<u8>> = sqls.iter().map(|sql| sql.clone().into_bytes()).collect();
        prop_assert_eq!(queries, expected);
        prop_assert_eq!(received.len(), sqls.len() * 2);
    }

    #[test]
    fn the_scram_server_survives_arbitrary_client_messages(
        first in proptest::collection::vec(any::<u8>(), 0..80),
        last in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let verifier = ScramVerifier::from_password(b"pw", b"salt", 1);
        let server = ScramServer::new(verifier.clone());
        if let Ok(challenge) = server.receive_client_first(&first, "servernonce") {
            let _ = challenge.receive_client_final(&last);
        }
        // And a well-formed first message followed by garbage.
        let challenge = ScramServer::new(verifier).receive_client_first(b"n,,n=,r=abc", "def").unwrap();
        prop_assert!(challenge.receive_client_final(&last).is_err());
    }

    #[test]
    fn the_scram_client_survives_arbitrary_server_messages(
        first in proptest::collection::vec(any::<u8>(), 0..80),
        last in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let client = ScramClient::new(b"pw", "abc").unwrap();
        if let Ok(final_state) = client.receive_server_first(&first) {
            let _ = final_state.receive_server_final(&last);
        }
    }
}
