//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: no channel
//! binding (gs2 header `n,,`, or `y,,` from a client that could bind), and the
//! user name inside the exchange ignored (the StartupMessage names the role).
//!
//! Two sans-I/O state machines, each a chain of typed states so that messages
//! cannot be handled out of order: [`ScramClient`] logs the proxy in to a node,
//! [`ScramServer`] checks the proxy's clients against a [`ScramVerifier`].
//! Nonces and salts are passed in; nothing here draws randomness.

mod client;
mod error;
mod message;
mod server;
mod verifier;

pub use client::{ScramClient, ScramClientFinal};
pub use error::ScramError;
pub use server::{ScramServer, ScramServerChallenge};
pub use verifier::ScramVerifier;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The SASL mechanism name.
pub const MECHANISM: &str = "SCRAM-SHA-256";
/// PostgreSQL's default iteration count (`scram_iterations`).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// PostgreSQL's salt length in bytes.
pub const DEFAULT_SALT_LEN: usize = 16;

/// A nonce made of `random` bytes (18 from a CSPRNG is libpq's choice), in the
/// printable form SCRAM requires (base64, which never contains `,`).
pub fn nonce_from_random(random: &[u8]) -> String {
    BASE64.encode(random)
}

type HmacSha256 = Hmac<Sha256>;

/// A SHA-256 output: keys, signatures, proofs.
pub(crate) type Digest256 = [u8; 32];

pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> Digest256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

pub(crate) fn sha256(data: &[u8]) -> Digest256 {
    Sha256::digest(data).into()
}

/// RFC 5802's Hi(): PBKDF2 with HMAC-SHA-256 and one output block.
pub(crate) fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Digest256 {
    let keyed = HmacSha256::new_from_slice(password).expect("HMAC accepts keys of any length");
    let mut block: Digest256 = keyed
        .clone()
        .chain_update(salt)
        .chain_update(1u32.to_be_bytes())
        .finalize()
        .into_bytes()
        .into();
    let mut result = block;
    for _ in 1..iterations {
        block = keyed
            .clone()
            .chain_update(block)
            .finalize()
            .into_bytes()
            .into();
        xor_into(&mut result, &block);
    }
    result
}

pub(crate) fn xor_into(target: &mut Digest256, other: &Digest256) {
    for (byte, other) in target.iter_mut().zip(other) {
        *byte ^= other;
    }
}

/// The password as SCRAM hashes it: SASLprep'd when it is valid UTF-8 and
/// SASLprep accepts it, else the raw bytes — PostgreSQL's own rule, so that any
/// password that logs in to PostgreSQL logs in here.
pub(crate) fn normalize_password(password: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(password).map(stringprep::saslprep) {
        Ok(Ok(prepared)) => prepared.into_owned().into_bytes(),
        _ => password.to_vec(),
    }
}

/// The client and server keys derived from a password.
#[derive(Clone)]
pub(crate) struct DerivedKeys {
    pub(crate) client_key: Digest256,
    pub(crate) server_key: Digest256,
}

pub(crate) fn derive_keys(normalized_password: &[u8], salt: &[u8], iterations: u32) -> DerivedKeys {
    let salted = salted_password(normalized_password, salt, iterations);
    DerivedKeys {
        client_key: hmac(&salted, &[b"Client Key"]),
        server_key: hmac(&salted, &[b"Server Key"]),
    }
}

#[cfg(test)]
mod tests;
