//! The SCRAM secret PostgreSQL stores in `pg_authid.rolpassword`.

use std::fmt;

use super::message::{base64, base64_digest, encode_base64};
use super::{ScramError, derive_keys, hmac, normalize_password, sha256};

const PREFIX: &str = "SCRAM-SHA-256$";

/// What a server must know to check a SCRAM login without the password:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 parts).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    /// The iteration count of Hi().
    pub iterations: u32,
    /// The salt.
    pub salt: Vec<u8>,
    /// H(ClientKey): checks the client's proof.
    pub stored_key: [u8; 32],
    /// Signs the server's final message, proving the server knows the secret.
    pub server_key: [u8; 32],
}

impl ScramVerifier {
    /// The verifier of `password` with this salt and iteration count, as
    /// PostgreSQL computes it (SASLprep'd password when possible).
    pub fn from_password(password: &[u8], salt: &[u8], iterations: u32) -> ScramVerifier {
        let keys = derive_keys(&normalize_password(password), salt, iterations);
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&keys.client_key),
            server_key: keys.server_key,
        }
    }

    /// A verifier for a user that does not exist, so that a client cannot
    /// tell it from one that does: its salt (16 bytes) and keys are HMACs of
    /// `key` (the proxy's random per-process secret) and the name, so the
    /// same name always gets the same salt, as a real user does, and no
    /// password matches it; the iteration count is PostgreSQL's default.
    /// Three HMACs, no PBKDF2: it costs what a configured user's stored
    /// verifier costs, nothing an attacker can buy CPU with.
    pub fn for_unknown_user(key: &[u8], user: &[u8]) -> ScramVerifier {
        let salt = hmac(key, &[b"pgrw unknown-user salt\0", user]);
        ScramVerifier {
            iterations: super::DEFAULT_ITERATIONS,
            salt: salt[..super::DEFAULT_SALT_LEN].to_vec(),
            stored_key: hmac(key, &[b"pgrw unknown-user stored key\0", user]),
            server_key: hmac(key, &[b"pgrw unknown-user server key\0", user]),
        }
    }

    /// Parses the `pg_authid` form.
    pub fn parse(text: &str) -> Result<ScramVerifier, ScramError> {
        let invalid = |reason: &str| ScramError::InvalidVerifier(reason.to_string());
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| invalid("it does not start with SCRAM-SHA-256$"))?;
        let (parameters, keys) = rest
            .split_once('$')
            .ok_or_else(|| invalid("no '$' between the parameters and the keys"))?;
        let (iterations, salt) = parameters
            .split_once(':')
            .ok_or_else(|| invalid("no ':' between the iteration count and the salt"))?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or_else(|| invalid("no ':' between StoredKey and ServerKey"))?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|&count| count > 0)
            .ok_or_else(|| invalid("the iteration count is not a positive integer"))?;
        let as_invalid = |error: ScramError| ScramError::InvalidVerifier(error.to_string());
        Ok(ScramVerifier {
            iterations,
            salt: base64("verifier", "salt", salt).map_err(as_invalid)?,
            stored_key: base64_digest("verifier", "StoredKey", stored_key).map_err(as_invalid)?,
            server_key: base64_digest("verifier", "ServerKey", server_key).map_err(as_invalid)?,
        })
    }
}

impl fmt::Display for ScramVerifier {
    /// The `pg_authid` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            encode_base64(&self.salt),
            encode_base64(&self.stored_key),
            encode_base64(&self.server_key)
        )
    }
}

impl fmt::Debug for ScramVerifier {
    /// Redacts the keys: they are as good as the password for logging in to the
    /// server, or for impersonating it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .field("salt", &encode_base64(&self.salt))
            .field("keys", &"<redacted>")
            .finish()
    }
}
