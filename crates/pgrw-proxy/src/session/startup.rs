//! The startup phase: SSLRequest answered with TLS when configured (`N`
//! otherwise), GSSENCRequest refused with `N`, CancelRequest delivered, then
//! the StartupMessage (its settings kept for the session, a replication
//! connection refused) and the proxy's own check of the client's password
//! (SCRAM-SHA-256, md5 or trust, per user).

use std::net::SocketAddr;
use std::time::Instant;

use rand::RngCore;

use super::client::{ClientConnection, SessionEnd};
use super::settings::startup::{StartupSetting, asks_for_replication, startup_settings};
use crate::admission::{Admitted, OverLimit, Throttle};
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
    /// Counts it against its user's and database's limits while it lives.
    pub(crate) admitted: Admitted,
    /// The configured user it logged in as.
    pub(crate) user: UserConfig,
    /// The database it asked for.
    pub(crate) database: String,
    /// The settings its StartupMessage carried, in the order to apply them.
    pub(crate) settings: Vec<StartupSetting>,
}

/// Runs the startup phase. `Ok(None)`: the client left, was refused (the
/// FATAL error already written) or only wanted to cancel a query.
pub(crate) async fn start(
    client: &mut ClientConnection,
    peer: SocketAddr,
    state: &ProxyState,
) -> Result<Option<LoggedIn>, SessionEnd> {
    let Some(startup) = negotiate(client, state).await? else {
        return Ok(None);
    };
    let limits = &state.config.limits;
    if let Throttle::Refuse(retry) = state.admission.throttle(peer.ip(), Instant::now(), limits) {
        refuse(
            client,
            sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
            format!(
                "too many failed logins from {}: try again in {} s \
                 (limits.max_failed_logins)",
                peer.ip(),
                retry.as_secs().max(1)
            ),
        )
        .await?;
        return Ok(None);
    }
    if asks_for_replication(&startup.params) {
        refuse(
            client,
            sqlstate::FEATURE_NOT_SUPPORTED,
            "pgrw does not proxy replication connections: connect to the node itself".to_string(),
        )
        .await?;
        return Ok(None);
    }
    let settings = match startup_settings(&startup.params) {
        Ok(settings) => settings,
        Err(refusal) => {
            refuse(client, refusal.code, refusal.message).await?;
            return Ok(None);
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
    let user = state.config_now().user(&user_name).cloned();
    let method = user.as_ref().map(|user| user.auth).unwrap_or_default();
    let accepted = match (method, &user) {
        (AuthMethod::Trust, Some(_)) => true,
        (AuthMethod::Md5, Some(user)) => check_md5(client, user).await?,
        (_, user) => {
            // An unknown user goes through the same exchange against a verifier
            // nobody knows the password of: the client cannot tell the difference.
            let verifier = match user.as_ref().and_then(|user| state.verifier(&user.name)) {
                Some(verifier) => verifier,
                None => state.unknown_user_verifier(&user_name),
            };
            check_scram(client, verifier).await? && user.is_some()
        }
    };
    let Some(user) = user.filter(|_| accepted) else {
        // Which part failed (no such user, or a wrong password) is not said,
        // to the client or the log; the answer waits longer at each failure.
        let delay = state.admission.failed(peer.ip(), Instant::now(), limits);
        tracing::warn!(
            // Debug-quoted: the name is the client's, and may hold a line break.
            user = ?user_name,
            address = %peer.ip(),
            delay_ms = delay.as_millis() as u64,
            "password authentication failed"
        );
        tokio::time::sleep(delay).await;
        refuse(
            client,
            sqlstate::INVALID_PASSWORD,
            format!("password authentication failed for user \"{user_name}\""),
        )
        .await?;
        return Ok(None);
    };
    state.admission.succeeded(peer.ip());
    let database = startup.database().unwrap_or(&user.name).to_string();
    let admitted = match state.admission.admit(&user, &database, limits) {
        Ok(admitted) => admitted,
        Err(over) => {
            // PostgreSQL's own messages for rolconnlimit and datconnlimit.
            let message = match over {
                OverLimit::User(max) => format!(
                    "too many connections for role \"{}\" (max_connections = {max} in [[users]])",
                    user.name
                ),
                OverLimit::Database(max) => format!(
                    "too many connections for database \"{database}\" \
                     (limits.max_connections_per_database = {max})"
                ),
            };
            refuse(client, sqlstate::TOO_MANY_CONNECTIONS, message).await?;
            return Ok(None);
        }
    };
    encode_authentication_ok(&mut client.out);
    client.set_logged_in(limits.max_message_len());
    Ok(Some(LoggedIn {
        admitted,
        database,
        settings,
        user,
    }))
}

/// The packets before the StartupMessage: encryption requests (each at most
/// once, as PostgreSQL allows) and CancelRequest. `None`: the client left, was
/// refused, or only wanted to cancel a query.
pub(super) async fn negotiate(
    client: &mut ClientConnection,
    state: &ProxyState,
) -> Result<Option<StartupMessage>, SessionEnd> {
    let mut ssl_answered = false;
    let mut gss_answered = false;
    loop {
        let Some(packet) = client.read_startup().await? else {
            return Ok(None);
        };
        match StartupRequest::decode(&packet)? {
            StartupRequest::SslRequest if ssl_answered => {
                return repeated(client, "SSLRequest").await;
            }
            StartupRequest::SslRequest => {
                ssl_answered = true;
                let Some(acceptor) = state.client_tls.acceptor() else {
                    client.write_now(b"N").await?;
                    continue;
                };
                if client.has_buffered_input() {
                    // What follows an SSLRequest must come through TLS: bytes
                    // already here were sent in the clear, maybe by someone in
                    // the middle (CVE-2021-23214). PostgreSQL's own message.
                    refuse(
                        client,
                        sqlstate::PROTOCOL_VIOLATION,
                        "received unencrypted data after SSL request".to_string(),
                    )
                    .await?;
                    return Ok(None);
                }
                client.start_tls(acceptor).await?;
                // GSSAPI encryption inside TLS makes no sense.
                gss_answered = true;
            }
            StartupRequest::GssEncRequest if gss_answered => {
                return repeated(client, "GSSENCRequest").await;
            }
            StartupRequest::GssEncRequest => {
                gss_answered = true;
                client.write_now(b"N").await?;
            }
            // Accepted in the clear even under `require`: libpq before
            // PostgreSQL 17 never encrypts its CancelRequest.
            StartupRequest::Cancel(key) => {
                state.cancels.cancel(key).await;
                return Ok(None);
            }
            StartupRequest::Startup(_) if state.client_tls.required() && !client.is_tls() => {
                refuse(
                    client,
                    sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                    "pgrw accepts only TLS connections: connect with sslmode=require \
                     (or verify-ca, verify-full)"
                        .to_string(),
                )
                .await?;
                return Ok(None);
            }
            StartupRequest::Startup(startup) => return Ok(Some(startup)),
        }
    }
}

/// A second SSLRequest or GSSENCRequest: PostgreSQL refuses it too.
async fn repeated(
    client: &mut ClientConnection,
    request: &str,
) -> Result<Option<StartupMessage>, SessionEnd> {
    refuse(
        client,
        sqlstate::PROTOCOL_VIOLATION,
        format!("{request} sent again after it was answered"),
    )
    .await?;
    Ok(None)
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
    client.close().await;
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
    let stored = StoredPassword::Plaintext(user.node_password().as_bytes().to_vec());
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
