//! The client side: the proxy logging in to a node with a password.
//!
//! ```text
//! ScramClient::new ── client_first_message() ─────────────▶ SASLInitialResponse
//!   .receive_server_first(AuthenticationSASLContinue data)
//! ScramClientFinal ── client_final_message() ─────────────▶ SASLResponse
//!   .receive_server_final(AuthenticationSASLFinal data) ──▶ Ok(()): the server knows the password
//! ```

use std::sync::Mutex;

use subtle::ConstantTimeEq;

use super::message::{
    self, Attributes, base64, base64_digest, check_nonce, encode_base64, escape_username,
};
use super::{
    DerivedKeys, Digest256, ScramError, derive_keys, hmac, normalize_password, sha256, xor_into,
};

/// The gs2 header of a client without channel binding, base64-encoded (`c=`).
const GS2_HEADER_NO_BINDING: &str = "n,,";

/// A SCRAM login that has produced its client-first-message.
pub struct ScramClient {
    password: Vec<u8>,
    client_nonce: String,
    client_first_bare: String,
}

impl ScramClient {
    /// Starts a login with `password`, as libpq does: an empty user name (PostgreSQL
    /// takes the role from the StartupMessage). `client_nonce` must be fresh
    /// randomness in printable form (see [`super::nonce_from_random`]).
    pub fn new(password: &[u8], client_nonce: &str) -> Result<ScramClient, ScramError> {
        ScramClient::with_user("", password, client_nonce)
    }

    /// Starts a login naming `user` in the exchange (only the RFC test vectors need it).
    pub fn with_user(
        user: &str,
        password: &[u8],
        client_nonce: &str,
    ) -> Result<ScramClient, ScramError> {
        check_nonce(client_nonce)?;
        Ok(ScramClient {
            password: normalize_password(password),
            client_nonce: client_nonce.to_string(),
            client_first_bare: format!("n={},r={client_nonce}", escape_username(user)),
        })
    }

    /// The client-first-message, to send in SASLInitialResponse.
    pub fn client_first_message(&self) -> String {
        format!("{GS2_HEADER_NO_BINDING}{}", self.client_first_bare)
    }

    /// Takes the server-first-message (AuthenticationSASLContinue's data) and
    /// computes the proof.
    pub fn receive_server_first(self, server_first: &[u8]) -> Result<ScramClientFinal, ScramError> {
        const MESSAGE: &str = "server-first-message";
        let server_first = message::text(MESSAGE, server_first)?;
        let mut attributes = Attributes::new(MESSAGE, server_first);
        let nonce = attributes.expect('r')?;
        let salt = base64(MESSAGE, "salt", attributes.expect('s')?)?;
        let iterations: u32 = attributes
            .expect('i')?
            .parse()
            .ok()
            .filter(|&count| count > 0)
            .ok_or_else(|| attributes.malformed("the iteration count is not a positive integer"))?;
        while let Some(extension) = attributes.next_part() {
            attributes.reject_mandatory_extension(extension)?;
        }
        check_nonce(nonce)?;
        if nonce.len() <= self.client_nonce.len() || !nonce.starts_with(&self.client_nonce) {
            return Err(ScramError::NonceMismatch);
        }

        let keys = derive_keys_once(&self.password, &salt, iterations);
        let channel_binding = encode_base64(GS2_HEADER_NO_BINDING.as_bytes());
        let without_proof = format!("c={channel_binding},r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let mut proof = hmac(&sha256(&keys.client_key), &[auth_message.as_bytes()]);
        xor_into(&mut proof, &keys.client_key);
        Ok(ScramClientFinal {
            client_final: format!("{without_proof},p={}", encode_base64(&proof)),
            server_signature: hmac(&keys.server_key, &[auth_message.as_bytes()]),
        })
    }
}

/// A SCRAM login that has produced its client-final-message and waits for the
/// server's signature.
pub struct ScramClientFinal {
    client_final: String,
    server_signature: Digest256,
}

impl ScramClientFinal {
    /// The client-final-message, to send in SASLResponse.
    pub fn client_final_message(&self) -> &str {
        &self.client_final
    }

    /// Checks the server-final-message (AuthenticationSASLFinal's data): the
    /// server proves it knows the password. Only then is AuthenticationOk trusted.
    pub fn receive_server_final(self, server_final: &[u8]) -> Result<(), ScramError> {
        const MESSAGE: &str = "server-final-message";
        let server_final = message::text(MESSAGE, server_final)?;
        if let Some(reason) = server_final.strip_prefix("e=") {
            return Err(ScramError::ServerRejected(reason.to_string()));
        }
        let mut attributes = Attributes::new(MESSAGE, server_final);
        let signature = base64_digest(MESSAGE, "server signature", attributes.expect('v')?)?;
        if bool::from(signature.ct_eq(&self.server_signature)) {
            Ok(())
        } else {
            Err(ScramError::InvalidServerSignature)
        }
    }
}

/// Keys already derived, by a fingerprint of (password, salt, iteration count):
/// a pool logging in again as the same role pays PBKDF2's thousands of rounds
/// once, not once per connection (they would stall every session on the
/// proxy's thread for milliseconds). Replicas cloned from the primary share
/// its salts, so one entry serves a role on every node.
static DERIVED: Mutex<Vec<(Digest256, DerivedKeys)>> = Mutex::new(Vec::new());

/// Roles × password changes the cache remembers; beyond that the oldest go.
const DERIVED_CAPACITY: usize = 64;

fn derive_keys_once(password: &[u8], salt: &[u8], iterations: u32) -> DerivedKeys {
    let mut input = Vec::with_capacity(16 + password.len() + salt.len());
    for part in [password, salt] {
        input.extend_from_slice(&(part.len() as u64).to_be_bytes());
        input.extend_from_slice(part);
    }
    input.extend_from_slice(&iterations.to_be_bytes());
    let fingerprint = sha256(&input);
    let cached = DERIVED.lock().ok().and_then(|cache| {
        cache
            .iter()
            .find(|(known, _)| bool::from(known.ct_eq(&fingerprint)))
            .map(|(_, keys)| keys.clone())
    });
    if let Some(keys) = cached {
        return keys;
    }
    let keys = derive_keys(password, salt, iterations);
    if let Ok(mut cache) = DERIVED.lock() {
        if cache.len() >= DERIVED_CAPACITY {
            cache.remove(0);
        }
        cache.push((fingerprint, keys.clone()));
    }
    keys
}
