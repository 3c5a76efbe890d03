//! Why a SCRAM exchange failed.

use crate::protocol::sqlstate;

/// A failed SCRAM exchange. Only [`ScramError::WrongPassword`] means the
/// credentials were wrong; the rest are malformed or unsupported messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A SCRAM message that does not parse.
    #[error("malformed SCRAM {message}: {reason}")]
    Malformed {
        /// Which message (`client-first-message`, …).
        message: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The client asked for channel binding (`p=`), which the proxy does not offer.
    #[error("SCRAM channel binding is not supported (the client sent {0:?})")]
    ChannelBindingUnsupported(String),
    /// The client sent an authorization identity (`a=`), which PostgreSQL does not support.
    #[error("SCRAM authorization identities are not supported")]
    AuthzidUnsupported,
    /// The server's nonce does not extend the client's, or the client echoed another nonce.
    #[error("SCRAM nonce mismatch")]
    NonceMismatch,
    /// The client's proof does not match the verifier: wrong password.
    #[error("password authentication failed")]
    WrongPassword,
    /// The server's signature is wrong: it does not know the password.
    #[error("the server's SCRAM signature is invalid: it does not know the password")]
    InvalidServerSignature,
    /// The server ended the exchange with `e=<reason>`.
    #[error("the server rejected SCRAM authentication: {0}")]
    ServerRejected(String),
    /// A stored verifier that is not `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
    #[error("invalid SCRAM verifier: {0}")]
    InvalidVerifier(String),
    /// A nonce with characters SCRAM forbids (only printable ASCII but `,`).
    #[error("invalid SCRAM nonce {0:?}: only printable ASCII except ',' is allowed")]
    InvalidNonce(String),
}

impl ScramError {
    /// The SQLSTATE to report to a client whose login failed this way.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ScramError::WrongPassword => sqlstate::INVALID_PASSWORD,
            _ => sqlstate::PROTOCOL_VIOLATION,
        }
    }
}
