//! The server side: the proxy checking a client's password against a verifier.
//!
//! ```text
//! SASLInitialResponse ──▶ ScramServer::new(verifier).receive_client_first(data, server nonce)
//!   ScramServerChallenge ── server_first_message() ──▶ AuthenticationSASLContinue
//! SASLResponse ─────────▶ .receive_client_final(data)
//!   Ok(server-final) ─────────────────────────────────▶ AuthenticationSASLFinal, AuthenticationOk
//!   Err(WrongPassword) ───────────────────────────────▶ ErrorResponse 28P01
//! ```

use subtle::ConstantTimeEq;

use super::message::{self, Attributes, base64_digest, check_nonce, encode_base64};
use super::{ScramError, ScramVerifier, hmac, sha256, xor_into};

/// A SCRAM check waiting for the client-first-message.
pub struct ScramServer {
    verifier: ScramVerifier,
}

impl ScramServer {
    /// Checks logins against `verifier` (stored, or made from a plaintext
    /// password with [`ScramVerifier::from_password`] and a fresh salt).
    pub fn new(verifier: ScramVerifier) -> ScramServer {
        ScramServer { verifier }
    }

    /// Takes the client-first-message (SASLInitialResponse's data) and answers
    /// with a challenge. `server_nonce` must be fresh randomness in printable
    /// form (see [`super::nonce_from_random`]); it is appended to the client's.
    pub fn receive_client_first(
        self,
        client_first: &[u8],
        server_nonce: &str,
    ) -> Result<ScramServerChallenge, ScramError> {
        const MESSAGE: &str = "client-first-message";
        check_nonce(server_nonce)?;
        let client_first = message::text(MESSAGE, client_first)?;
        let (gs2_header, bare) = split_gs2_header(client_first)?;
        let mut attributes = Attributes::new(MESSAGE, bare);
        let first = attributes
            .next_part()
            .ok_or_else(|| attributes.malformed("empty message"))?;
        attributes.reject_mandatory_extension(first)?;
        // The user name is ignored, as PostgreSQL does: the StartupMessage named the role.
        if !first.starts_with("n=") {
            return Err(attributes.malformed(format!("expected attribute n=, got {first:?}")));
        }
        let client_nonce = attributes.expect('r')?;
        check_nonce(client_nonce)?;

        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            encode_base64(&self.verifier.salt),
            self.verifier.iterations
        );
        Ok(ScramServerChallenge {
            verifier: self.verifier,
            gs2_header: gs2_header.to_string(),
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
        })
    }
}

/// Splits `gs2-cbind-flag "," [authzid] ","` off the client-first-message.
fn split_gs2_header(client_first: &str) -> Result<(&str, &str), ScramError> {
    let malformed = |reason: &str| ScramError::Malformed {
        message: "client-first-message",
        reason: reason.to_string(),
    };
    let mut parts = client_first.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authzid = parts.next().ok_or_else(|| malformed("no gs2 header"))?;
    let bare = parts.next().ok_or_else(|| malformed("no gs2 header"))?;
    match flag {
        "n" | "y" => {}
        flag if flag.starts_with("p=") => {
            return Err(ScramError::ChannelBindingUnsupported(flag.to_string()));
        }
        flag => return Err(malformed(&format!("unknown channel binding flag {flag:?}"))),
    }
    if !authzid.is_empty() {
        return Err(ScramError::AuthzidUnsupported);
    }
    let header_len = flag.len() + authzid.len() + 2;
    Ok((&client_first[..header_len], bare))
}

/// A SCRAM check that has sent its challenge and waits for the client's proof.
pub struct ScramServerChallenge {
    verifier: ScramVerifier,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServerChallenge {
    /// The server-first-message, to send in AuthenticationSASLContinue.
    pub fn server_first_message(&self) -> &str {
        &self.server_first
    }

    /// Takes the client-final-message (SASLResponse's data) and checks the
    /// proof in constant time. On success, returns the server-final-message for
    /// AuthenticationSASLFinal; [`ScramError::WrongPassword`] otherwise.
    pub fn receive_client_final(self, client_final: &[u8]) -> Result<String, ScramError> {
        const MESSAGE: &str = "client-final-message";
        let client_final = message::text(MESSAGE, client_final)?;
        let (without_proof, proof) =
            client_final
                .rsplit_once(",p=")
                .ok_or_else(|| ScramError::Malformed {
                    message: MESSAGE,
                    reason: "no proof (p=) at the end".to_string(),
                })?;
        let mut attributes = Attributes::new(MESSAGE, without_proof);
        let channel_binding = message::base64(MESSAGE, "channel binding", attributes.expect('c')?)?;
        if channel_binding != self.gs2_header.as_bytes() {
            return Err(attributes.malformed("the channel binding does not repeat the gs2 header"));
        }
        if attributes.expect('r')? != self.nonce {
            return Err(ScramError::NonceMismatch);
        }
        let proof = base64_digest(MESSAGE, "proof", proof)?;

        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let mut client_key = hmac(&self.verifier.stored_key, &[auth_message.as_bytes()]);
        xor_into(&mut client_key, &proof);
        if !bool::from(sha256(&client_key).ct_eq(&self.verifier.stored_key)) {
            return Err(ScramError::WrongPassword);
        }
        let signature = hmac(&self.verifier.server_key, &[auth_message.as_bytes()]);
        Ok(format!("v={}", encode_base64(&signature)))
    }
}
