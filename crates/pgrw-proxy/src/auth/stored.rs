//! A user's secret as the proxy knows it, and the checks each auth method makes.

use std::fmt;

use subtle::ConstantTimeEq;

use super::md5;
use super::scram::{ScramError, ScramVerifier};

/// A user's password as configured: in plaintext, or as PostgreSQL stores it in
/// `pg_authid.rolpassword` (an md5 hash or a SCRAM verifier).
///
/// Which login methods can be checked depends on the form, exactly as in
/// PostgreSQL: a plaintext password allows every method, an md5 hash allows md5
/// and cleartext, a SCRAM verifier allows SCRAM and cleartext.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredPassword {
    /// The password itself.
    Plaintext(Vec<u8>),
    /// `md5` + hex(md5(password || user)).
    Md5(String),
    /// `SCRAM-SHA-256$…`.
    Scram(ScramVerifier),
}

impl StoredPassword {
    /// Reads a `rolpassword`-style value: an md5 hash or a SCRAM verifier when it
    /// has their shape, else a plaintext password (PostgreSQL's own rule).
    /// A value that starts like a verifier but does not parse is an error.
    pub fn parse(value: &str) -> Result<StoredPassword, ScramError> {
        if md5::is_password_hash(value) {
            Ok(StoredPassword::Md5(value.to_string()))
        } else if value.starts_with("SCRAM-SHA-256$") {
            ScramVerifier::parse(value).map(StoredPassword::Scram)
        } else {
            Ok(StoredPassword::Plaintext(value.as_bytes().to_vec()))
        }
    }

    /// Checks a cleartext password (PasswordMessage after
    /// AuthenticationCleartextPassword) for role `user`, in constant time.
    pub fn verify_cleartext(&self, user: &[u8], password: &[u8]) -> bool {
        match self {
            StoredPassword::Plaintext(expected) => bool::from(expected.as_slice().ct_eq(password)),
            StoredPassword::Md5(hash) => bool::from(
                hash.as_bytes()
                    .ct_eq(md5::password_hash(password, user).as_bytes()),
            ),
            StoredPassword::Scram(verifier) => {
                let candidate =
                    ScramVerifier::from_password(password, &verifier.salt, verifier.iterations);
                bool::from(candidate.stored_key.ct_eq(&verifier.stored_key))
            }
        }
    }

    /// Checks an md5 response (PasswordMessage after AuthenticationMD5Password
    /// with `salt`) for role `user`, in constant time. A stored md5 hash already
    /// has its user name mixed in, so `user` only matters for a plaintext
    /// password. Always false for a SCRAM verifier, from which no md5 hash can be
    /// derived.
    pub fn verify_md5(&self, user: &[u8], salt: [u8; 4], response: &[u8]) -> bool {
        let expected = match self {
            StoredPassword::Plaintext(password) => md5::response(password, user, salt),
            StoredPassword::Md5(hash) => md5::response_from_hash(hash, salt),
            StoredPassword::Scram(_) => return false,
        };
        bool::from(expected.as_bytes().ct_eq(response))
    }

    /// The SCRAM verifier to check a login with: the stored one, or one made from
    /// the plaintext with `salt` and `iterations` (pass fresh random salt).
    /// `None` for an md5 hash, from which no verifier can be derived.
    pub fn scram_verifier(&self, salt: &[u8], iterations: u32) -> Option<ScramVerifier> {
        match self {
            StoredPassword::Plaintext(password) => {
                Some(ScramVerifier::from_password(password, salt, iterations))
            }
            StoredPassword::Md5(_) => None,
            StoredPassword::Scram(verifier) => Some(verifier.clone()),
        }
    }
}

impl fmt::Debug for StoredPassword {
    /// Names the form only: the secret never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoredPassword::Plaintext(_) => "StoredPassword::Plaintext(<redacted>)",
            StoredPassword::Md5(_) => "StoredPassword::Md5(<redacted>)",
            StoredPassword::Scram(_) => "StoredPassword::Scram(<redacted>)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; 4] = [1, 2, 3, 4];

    fn scram_of(password: &[u8]) -> StoredPassword {
        StoredPassword::Scram(ScramVerifier::from_password(password, b"salt", 16))
    }

    #[test]
    fn a_value_is_read_as_md5_scram_or_plaintext_by_its_shape() {
        let md5 = md5::password_hash(b"x", b"m");
        assert_eq!(
            StoredPassword::parse(&md5),
            Ok(StoredPassword::Md5(md5.clone()))
        );
        let verifier = ScramVerifier::from_password(b"x", b"salt", 16);
        assert_eq!(
            StoredPassword::parse(&verifier.to_string()),
            Ok(StoredPassword::Scram(verifier))
        );
        assert_eq!(
            StoredPassword::parse("hunter2"),
            Ok(StoredPassword::Plaintext(b"hunter2".to_vec()))
        );
    }

    #[test]
    fn a_broken_scram_verifier_is_an_error_not_a_plaintext_password() {
        assert!(StoredPassword::parse("SCRAM-SHA-256$oops").is_err());
    }

    #[test]
    fn cleartext_is_checked_against_every_stored_form() {
        for stored in [
            StoredPassword::Plaintext(b"x".to_vec()),
            StoredPassword::Md5(md5::password_hash(b"x", b"m")),
            scram_of(b"x"),
        ] {
            assert!(
                stored.verify_cleartext(b"m", b"x"),
                "{stored:?} accepts the password"
            );
            assert!(
                !stored.verify_cleartext(b"m", b"y"),
                "{stored:?} rejects another"
            );
        }
    }

    #[test]
    fn md5_responses_are_checked_against_plaintext_and_md5_hashes() {
        let response = md5::response(b"x", b"m", SALT);
        for stored in [
            StoredPassword::Plaintext(b"x".to_vec()),
            StoredPassword::Md5(md5::password_hash(b"x", b"m")),
        ] {
            assert!(
                stored.verify_md5(b"m", SALT, response.as_bytes()),
                "{stored:?}"
            );
            assert!(
                !stored.verify_md5(b"m", [4, 3, 2, 1], response.as_bytes()),
                "{stored:?}: other salt"
            );
        }
    }

    #[test]
    fn an_md5_response_from_another_user_name_fails_against_a_plaintext_password() {
        let response = md5::response(b"x", b"m", SALT);
        let stored = StoredPassword::Plaintext(b"x".to_vec());
        assert!(!stored.verify_md5(b"other", SALT, response.as_bytes()));
    }

    #[test]
    fn a_scram_verifier_cannot_check_an_md5_response() {
        let response = md5::response(b"x", b"m", SALT);
        assert!(!scram_of(b"x").verify_md5(b"m", SALT, response.as_bytes()));
    }

    #[test]
    fn scram_is_possible_from_plaintext_and_verifiers_but_not_md5_hashes() {
        assert!(
            StoredPassword::Plaintext(b"x".to_vec())
                .scram_verifier(b"salt", 16)
                .is_some()
        );
        assert!(scram_of(b"x").scram_verifier(b"ignored", 1).is_some());
        assert!(
            StoredPassword::Md5(md5::password_hash(b"x", b"m"))
                .scram_verifier(b"salt", 16)
                .is_none()
        );
    }

    #[test]
    fn the_debug_form_never_shows_the_secret() {
        let debug = format!("{:?}", StoredPassword::Plaintext(b"hunter2".to_vec()));
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
