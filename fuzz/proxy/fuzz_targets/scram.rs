//! SCRAM-SHA-256 messages as an attacker (or a broken node) would send them:
//! the input, split at its first NUL byte, is a client-first then a
//! client-final message to the proxy's server side, and also a verifier to
//! parse and a server-first then server-final message to the client side.
//! Fails on a panic, or when a proof nobody computed is accepted.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pgrw_proxy::auth::scram::{ScramClient, ScramServer, ScramVerifier};

/// Few iterations: the fuzzer should spend its time in the parsers.
fn verifier() -> &'static ScramVerifier {
    static VERIFIER: OnceLock<ScramVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| ScramVerifier::from_password(b"secret", b"fuzz-salt", 2))
}

/// Whether every `i=` count in `message` is small: a node chooses the
/// iteration count, and a huge one is slow by design, not a bug.
fn small_iterations(message: &[u8]) -> bool {
    let text = String::from_utf8_lossy(message);
    text.split(',')
        .filter_map(|part| part.strip_prefix("i="))
        .all(|count| count.len() <= 2)
}

fuzz_target!(|data: &[u8]| {
    let (first, last) = match data.iter().position(|&byte| byte == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };

    if let Ok(challenge) =
        ScramServer::new(verifier().clone()).receive_client_first(first, "serverNonce")
    {
        let _ = challenge.server_first_message();
        // The client does not know the password: no proof may pass.
        assert!(
            challenge.receive_client_final(last).is_err(),
            "a SCRAM proof was accepted without the password"
        );
    }

    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ScramVerifier::parse(text);
    }

    if small_iterations(first)
        && let Ok(client) = ScramClient::new(b"secret", "clientNonce")
    {
        let _ = client.client_first_message();
        if let Ok(client_final) = client.receive_server_first(first) {
            let _ = client_final.client_final_message();
            let _ = client_final.receive_server_final(last);
        }
    }
});
