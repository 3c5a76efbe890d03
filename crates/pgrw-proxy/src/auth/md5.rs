//! PostgreSQL's md5 password challenge, both sides.
//!
//! The stored hash is `"md5" || hex(md5(password || user))`; on each login the
//! server sends a 4-byte salt and the client answers
//! `"md5" || hex(md5(hex(md5(password || user)) || salt))`. Knowing the stored
//! hash is enough to answer, which is why SCRAM replaced it.

use md5::{Digest, Md5};

/// The prefix of md5 hashes and md5 responses.
pub const MD5_PREFIX: &str = "md5";

/// The hash PostgreSQL stores for `password` of role `user` (`md5` + 32 hex digits).
pub fn password_hash(password: &[u8], user: &[u8]) -> String {
    format!("{MD5_PREFIX}{}", md5_hex(&[password, user]))
}

/// Whether `value` has the shape of a stored md5 hash (`md5` + 32 hex digits).
pub fn is_password_hash(value: &str) -> bool {
    value.len() == 35
        && value.starts_with(MD5_PREFIX)
        && value[3..]
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// The client's answer to AuthenticationMD5Password with `salt`, given the password.
pub fn response(password: &[u8], user: &[u8], salt: [u8; 4]) -> String {
    response_from_hash(&password_hash(password, user), salt)
}

/// The answer to AuthenticationMD5Password with `salt`, given the stored hash
/// (`md5…`, as [`password_hash`] returns) instead of the password.
pub fn response_from_hash(password_hash: &str, salt: [u8; 4]) -> String {
    let hex = password_hash
        .strip_prefix(MD5_PREFIX)
        .unwrap_or(password_hash);
    format!("{MD5_PREFIX}{}", md5_hex(&[hex.as_bytes(), &salt]))
}

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed independently with coreutils: `printf 'secretjoe' | md5sum`, then
    // `printf 'c59e…f973\x01\x02\x03\x04' | md5sum`.
    const JOE_HASH: &str = "md5c59ec932d911ffdf487595b5a2adf973";
    const JOE_RESPONSE_TO_1234: &str = "md5850be429f1fe77df3f603ac424abb440";

    #[test]
    fn the_stored_hash_is_md5_of_password_then_user() {
        assert_eq!(password_hash(b"secret", b"joe"), JOE_HASH);
    }

    #[test]
    fn the_response_hashes_the_stored_hex_with_the_salt() {
        assert_eq!(
            response(b"secret", b"joe", [1, 2, 3, 4]),
            JOE_RESPONSE_TO_1234
        );
    }

    #[test]
    fn the_response_from_the_hash_equals_the_response_from_the_password() {
        assert_eq!(
            response_from_hash(JOE_HASH, [1, 2, 3, 4]),
            JOE_RESPONSE_TO_1234
        );
    }

    #[test]
    fn another_salt_gives_another_response() {
        assert_ne!(
            response(b"secret", b"joe", [1, 2, 3, 5]),
            JOE_RESPONSE_TO_1234
        );
    }

    #[test]
    fn stored_hashes_are_recognised_by_shape() {
        assert!(is_password_hash(JOE_HASH));
        assert!(!is_password_hash("md5short"));
        assert!(!is_password_hash("plain password of 35 characters!!!"));
    }
}
