//! Where a user's password comes from: `password`, `password_file` or
//! `password_env` (exactly one), read once when the configuration is loaded.
//! The value never appears in an error: only the key and the source's name.

use std::io::Read;

use super::{AuthMethod, ConfigError, SCRAM_PREFIX, UserConfig};
use crate::auth::scram::ScramVerifier;

/// The longest password file read (PostgreSQL caps a password message at 64 KiB).
const MAX_PASSWORD_FILE_BYTES: u64 = 64 * 1024;

/// Fills `user.password` from its file or environment variable, and checks
/// that a SCRAM verifier given as the password parses and suits `auth`.
pub(super) fn resolve(
    source_name: &str,
    index: usize,
    user: &mut UserConfig,
) -> Result<(), ConfigError> {
    let invalid = |key: &str, problem: String, fix: &str| ConfigError::Invalid {
        source_name: source_name.to_string(),
        key: format!("users[{index}].{key}"),
        problem,
        fix: fix.to_string(),
    };
    let sources = usize::from(!user.password.is_empty())
        + usize::from(user.password_file.is_some())
        + usize::from(user.password_env.is_some());
    if sources > 1 {
        return Err(invalid(
            "password",
            "is given more than once (password, password_file, password_env)".into(),
            "keep exactly one of the three",
        ));
    }
    if let Some(path) = &user.password_file {
        user.password = read_password_file(path).map_err(|problem| {
            invalid(
                "password_file",
                format!("= {path:?}: {problem}"),
                "point it at a readable file whose first line is the password",
            )
        })?;
    }
    if let Some(name) = &user.password_env {
        user.password = std::env::var(name).map_err(|_| {
            invalid(
                "password_env",
                format!("= {name:?} is not set (or not UTF-8) in the proxy's environment"),
                "export the variable before starting pgrw, or use password/password_file",
            )
        })?;
    }
    if user.password.starts_with(SCRAM_PREFIX) {
        if let Err(error) = ScramVerifier::parse(&user.password) {
            // The error names the part at fault, never the keys themselves.
            return Err(invalid(
                "password",
                format!("looks like a SCRAM verifier but does not parse: {error}"),
                "copy rolpassword from pg_authid whole, or give the plaintext password",
            ));
        }
        if user.auth != AuthMethod::ScramSha256 {
            return Err(invalid(
                "auth",
                "cannot check md5 or trust logins against a SCRAM verifier".into(),
                "use auth = \"scram-sha-256\" with a verifier, or give the plaintext password",
            ));
        }
    }
    Ok(())
}

/// The first line of the file, without its line ending.
fn read_password_file(path: &str) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let mut text = String::new();
    file.take(MAX_PASSWORD_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| error.to_string())?;
    if text.len() as u64 > MAX_PASSWORD_FILE_BYTES {
        return Err("it is larger than 64 KiB".to_string());
    }
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err("its first line is empty".to_string());
    }
    Ok(line.to_string())
}
