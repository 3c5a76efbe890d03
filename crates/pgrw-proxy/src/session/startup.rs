//! The startup phase: SSLRequest and GSSENCRequest refused with `N`,
//! CancelRequest delivered, then the StartupMessage and the proxy's own check
//! of the client's password (SCRAM-SHA-256, md5 or trust, per user).

use rand::RngCore;

use super::client::{ClientConnection, SessionEnd};
use crate::auth::StoredPassword;
use crate::auth::scram::{self, ScramServer, ScramVerifier};
use crate::config::{AuthMethod, UserConfig};
use crate::protocol::backend::{
    NoticeFields, Severity, encode_authentication_md5_password, encode_authentication_ok,
    encode_authentication_sasl, encode_authentication_sasl_continue,
    encode_authentication_sasl_final, encode_error_response,
};
use crate::protocol::frontend::{AuthenticationResponse, StartupMessage, StartupRequest, tag};
use crate::protocol::{ProtocolError, sqlstate};
use crate::server::ProxyState;

/// A client that logged in.
pub(crate) struct LoggedIn {
    /// The configured user it logged in as.
    pub(crate) user: UserConfig,
    /// The database it asked for.
    pub(crate) database: String,
    /// Its `application_name`, if it sent one.
    pub(crate) application_name: Option<String>,
}

/// Runs the startup phase. `Ok(None)`: the client left, was refused (the
/// FATAL error already written) or only wanted to cancel a query.
pub(crate) async fn start(
    client: &mut ClientConnection,
    state: &ProxyState,
) -> Result<Option<LoggedIn>, SessionEnd> {
    let startup = loop {
        let Some(packet) = client.read_startup().await? else {
            return Ok(None);
        };
        match StartupRequest::decode(&packet)? {
            StartupRequest::SslRequest | StartupRequest::GssEncRequest => {
                client.write_now(b"N").await?;
            }
            StartupRequest::Cancel(key) => {
                state.cancels.cancel(key).await;
                return Ok(None);
            }
            StartupRequest::Startup(startup) => break startup,
        }
    };
    let Some(user_name) = startup.user().map(str::to_string) else {
        refuse(
            client,
            sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
            "no PostgreSQL user name specified in startup packet".to_string(),
        )
        .await?;
        return Ok(None);
    };
    let user = state.config.user(&user_name).cloned();
    let method = user.as_ref().map(|user| user.auth).unwrap_or_default();
    let accepted = match (method, &user) {
        (AuthMethod::Trust, Some(_)) => true,
        (AuthMethod::Md5, Some(user)) => check_md5(client, user).await?,
        (_, user) => {
            // An unknown user goes through the same exchange against a verifier
            // nobody knows the password of: the client cannot tell the difference.
            let verifier = match user.as_ref().and_then(|user| state.verifier(&user.name)) {
                Some(verifier) => verifier.clone(),
                None => unknown_user_verifier(),
            };
            check_scram(client, verifier).await? && user.is_some()
        }
    };
    let Some(user) = user.filter(|_| accepted) else {
        refuse(
            client,
            sqlstate::INVALID_PASSWORD,
            format!("password authentication failed for user \"{user_name}\""),
        )
        .await?;
        return Ok(None);
    };
    encode_authentication_ok(&mut client.out);
    client.limits = crate::protocol::FrameLimits::default();
    Ok(Some(logged_in(user, &startup)))
}

fn logged_in(user: UserConfig, startup: &StartupMessage) -> LoggedIn {
    LoggedIn {
        database: startup.database().unwrap_or(&user.name).to_string(),
        application_name: startup.param("application_name").map(str::to_string),
        user,
    }
}

/// Sends a FATAL error; the caller then closes the connection.
async fn refuse(
    client: &mut ClientConnection,
    code: &str,
    message: String,
) -> Result<(), SessionEnd> {
    encode_error_response(
        &mut client.out,
        &NoticeFields::new(Severity::Fatal, code, message),
    );
    client.flush().await?;
    Ok(())
}

/// The next `p` message's body (a password or SASL response).
async fn read_response(client: &mut ClientConnection) -> Result<Option<Vec<u8>>, SessionEnd> {
    let Some(message) = client.read_message().await? else {
        return Ok(None);
    };
    if message.tag() != tag::AUTHENTICATION_RESPONSE {
        return Err(SessionEnd::Protocol(ProtocolError::UnexpectedTag {
            message: "password or SASL response",
            tag: char::from(message.tag()),
        }));
    }
    Ok(Some(message.body().to_vec()))
}

async fn check_md5(client: &mut ClientConnection, user: &UserConfig) -> Result<bool, SessionEnd> {
    let mut salt = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut salt);
    encode_authentication_md5_password(&mut client.out, salt);
    client.flush().await?;
    let Some(body) = read_response(client).await? else {
        return Ok(false);
    };
    let response = AuthenticationResponse { body: &body };
    let password = response.password()?;
    let stored = StoredPassword::Plaintext(user.password.as_bytes().to_vec());
    Ok(stored.verify_md5(user.name.as_bytes(), salt, password))
}

async fn check_scram(
    client: &mut ClientConnection,
    verifier: ScramVerifier,
) -> Result<bool, SessionEnd> {
    encode_authentication_sasl(&mut client.out, &[scram::MECHANISM]);
    client.flush().await?;
    let Some(body) = read_response(client).await? else {
        return Ok(false);
    };
    let response = AuthenticationResponse { body: &body };
    let initial = response.sasl_initial()?;
    if initial.mechanism != scram::MECHANISM {
        return Ok(false);
    }
    let Some(client_first) = initial.data else {
        return Ok(false);
    };
    let Ok(challenge) = ScramServer::new(verifier).receive_client_first(client_first, &nonce())
    else {
        return Ok(false);
    };
    encode_authentication_sasl_continue(
        &mut client.out,
        challenge.server_first_message().as_bytes(),
    );
    client.flush().await?;
    let Some(client_final) = read_response(client).await? else {
        return Ok(false);
    };
    match challenge.receive_client_final(&client_final) {
        Ok(server_final) => {
            encode_authentication_sasl_final(&mut client.out, server_final.as_bytes());
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

fn nonce() -> String {
    let mut random = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut random);
    scram::nonce_from_random(&random)
}

fn unknown_user_verifier() -> ScramVerifier {
    let mut secret = [0u8; 32];
    let mut salt = [0u8; scram::DEFAULT_SALT_LEN];
    rand::thread_rng().fill_bytes(&mut secret);
    rand::thread_rng().fill_bytes(&mut salt);
    // The usual iteration count, so that the exchange looks like a real user's.
    ScramVerifier::from_password(&secret, &salt, scram::DEFAULT_ITERATIONS)
}
