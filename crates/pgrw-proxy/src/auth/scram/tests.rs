//! SCRAM-SHA-256 against RFC 7677's test vector, and the two sides against each other.

use super::*;

// RFC 7677, section 3.
const USER: &str = "user";
const PASSWORD: &[u8] = b"pencil";
const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const SALT_BASE64: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_salt() -> Vec<u8> {
    BASE64.decode(SALT_BASE64).unwrap()
}

fn rfc_verifier() -> ScramVerifier {
    ScramVerifier::from_password(PASSWORD, &rfc_salt(), 4096)
}

fn rfc_server_challenge() -> ScramServerChallenge {
    ScramServer::new(rfc_verifier())
        .receive_client_first(CLIENT_FIRST.as_bytes(), SERVER_NONCE)
        .unwrap()
}

#[test]
fn the_client_sends_rfc_7677s_first_message() {
    let client = ScramClient::with_user(USER, PASSWORD, CLIENT_NONCE).unwrap();
    assert_eq!(client.client_first_message(), CLIENT_FIRST);
}

#[test]
fn the_client_computes_rfc_7677s_proof() {
    let client = ScramClient::with_user(USER, PASSWORD, CLIENT_NONCE).unwrap();
    let final_state = client
        .receive_server_first(SERVER_FIRST.as_bytes())
        .unwrap();
    assert_eq!(final_state.client_final_message(), CLIENT_FINAL);
}

#[test]
fn the_client_accepts_rfc_7677s_server_signature() {
    let client = ScramClient::with_user(USER, PASSWORD, CLIENT_NONCE).unwrap();
    let final_state = client
        .receive_server_first(SERVER_FIRST.as_bytes())
        .unwrap();
    assert_eq!(
        final_state.receive_server_final(SERVER_FINAL.as_bytes()),
        Ok(())
    );
}

#[test]
fn the_client_rejects_a_server_that_does_not_know_the_password() {
    let client = ScramClient::with_user(USER, b"not pencil", CLIENT_NONCE).unwrap();
    let final_state = client
        .receive_server_first(SERVER_FIRST.as_bytes())
        .unwrap();
    assert_eq!(
        final_state.receive_server_final(SERVER_FINAL.as_bytes()),
        Err(ScramError::InvalidServerSignature)
    );
}

#[test]
fn the_client_reports_a_server_error_attribute() {
    let client = ScramClient::with_user(USER, PASSWORD, CLIENT_NONCE).unwrap();
    let final_state = client
        .receive_server_first(SERVER_FIRST.as_bytes())
        .unwrap();
    assert_eq!(
        final_state.receive_server_final(b"e=invalid-proof"),
        Err(ScramError::ServerRejected("invalid-proof".to_string()))
    );
}

#[test]
fn the_client_rejects_a_server_nonce_that_does_not_extend_its_own() {
    let client = ScramClient::with_user(USER, PASSWORD, CLIENT_NONCE).unwrap();
    let forged = SERVER_FIRST.replace("rOprNG", "XXXXXX");
    assert!(matches!(
        client.receive_server_first(forged.as_bytes()),
        Err(ScramError::NonceMismatch)
    ));
}

#[test]
fn the_client_rejects_a_zero_iteration_count() {
    let client = ScramClient::with_user(USER, PASSWORD, CLIENT_NONCE).unwrap();
    let zero = SERVER_FIRST.replace("i=4096", "i=0");
    assert!(matches!(
        client.receive_server_first(zero.as_bytes()),
        Err(ScramError::Malformed { .. })
    ));
}

#[test]
fn a_libpq_style_client_names_no_user() {
    let client = ScramClient::new(PASSWORD, CLIENT_NONCE).unwrap();
    assert_eq!(
        client.client_first_message(),
        "n,,n=,r=rOprNGfwEbeRWgbNEkqO"
    );
}

#[test]
fn a_nonce_with_a_comma_is_refused() {
    assert!(matches!(
        ScramClient::new(PASSWORD, "abc,def"),
        Err(ScramError::InvalidNonce(_))
    ));
}

#[test]
fn the_server_sends_rfc_7677s_challenge() {
    assert_eq!(rfc_server_challenge().server_first_message(), SERVER_FIRST);
}

#[test]
fn the_server_accepts_rfc_7677s_proof_and_signs_as_the_rfc_does() {
    let server_final = rfc_server_challenge().receive_client_final(CLIENT_FINAL.as_bytes());
    assert_eq!(server_final.as_deref(), Ok(SERVER_FINAL));
}

#[test]
fn the_server_rejects_a_proof_made_with_another_password() {
    let client = ScramClient::with_user(USER, b"wrong", CLIENT_NONCE).unwrap();
    let client_final = client
        .receive_server_first(SERVER_FIRST.as_bytes())
        .unwrap();
    assert_eq!(
        rfc_server_challenge().receive_client_final(client_final.client_final_message().as_bytes()),
        Err(ScramError::WrongPassword)
    );
}

#[test]
fn the_server_rejects_a_client_final_echoing_another_nonce() {
    let tampered = CLIENT_FINAL.replace("k0,p=", "k1,p=");
    assert_eq!(
        rfc_server_challenge().receive_client_final(tampered.as_bytes()),
        Err(ScramError::NonceMismatch)
    );
}

#[test]
fn the_server_refuses_channel_binding() {
    let result = ScramServer::new(rfc_verifier())
        .receive_client_first(b"p=tls-server-end-point,,n=,r=abc", SERVER_NONCE);
    assert!(matches!(
        result,
        Err(ScramError::ChannelBindingUnsupported(_))
    ));
}

#[test]
fn the_server_accepts_a_client_that_could_bind_but_thinks_it_may_not() {
    let result =
        ScramServer::new(rfc_verifier()).receive_client_first(b"y,,n=,r=abc", SERVER_NONCE);
    assert!(result.is_ok());
}

#[test]
fn the_server_refuses_an_authorization_identity() {
    let result =
        ScramServer::new(rfc_verifier()).receive_client_first(b"n,a=admin,n=,r=abc", SERVER_NONCE);
    assert!(matches!(result, Err(ScramError::AuthzidUnsupported)));
}

#[test]
fn the_server_refuses_a_client_first_without_gs2_header() {
    let result = ScramServer::new(rfc_verifier()).receive_client_first(b"n=,r=abc", SERVER_NONCE);
    assert!(matches!(result, Err(ScramError::Malformed { .. })));
}

#[test]
fn client_and_server_agree_on_a_login_with_libpq_style_messages() {
    let verifier = ScramVerifier::from_password(b"s3cret", b"0123456789abcdef", DEFAULT_ITERATIONS);
    let client = ScramClient::new(b"s3cret", &nonce_from_random(&[7; 18])).unwrap();
    let challenge = ScramServer::new(verifier)
        .receive_client_first(
            client.client_first_message().as_bytes(),
            &nonce_from_random(&[9; 18]),
        )
        .unwrap();
    let client = client
        .receive_server_first(challenge.server_first_message().as_bytes())
        .unwrap();
    let server_final = challenge
        .receive_client_final(client.client_final_message().as_bytes())
        .unwrap();
    assert_eq!(client.receive_server_final(server_final.as_bytes()), Ok(()));
}

#[test]
fn a_wrong_password_is_rejected_by_the_server_in_a_round_trip() {
    let verifier = ScramVerifier::from_password(b"s3cret", b"salt", 16);
    let client = ScramClient::new(b"guess", "clientnonce").unwrap();
    let challenge = ScramServer::new(verifier)
        .receive_client_first(client.client_first_message().as_bytes(), "servernonce")
        .unwrap();
    let client = client
        .receive_server_first(challenge.server_first_message().as_bytes())
        .unwrap();
    let verdict = challenge.receive_client_final(client.client_final_message().as_bytes());
    assert_eq!(verdict, Err(ScramError::WrongPassword));
    assert_eq!(ScramError::WrongPassword.sqlstate(), "28P01");
}

#[test]
fn a_verifier_round_trips_through_its_pg_authid_form() {
    let text = rfc_verifier().to_string();
    assert!(
        text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"),
        "{text}"
    );
    assert_eq!(ScramVerifier::parse(&text), Ok(rfc_verifier()));
}

#[test]
fn a_malformed_verifier_is_an_error() {
    for text in [
        "SCRAM-SHA-256$4096:c2FsdA==",
        "SCRAM-SHA-256$0:c2FsdA==$AAAA:AAAA",
        "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA",
        "md5abc",
    ] {
        assert!(
            matches!(
                ScramVerifier::parse(text),
                Err(ScramError::InvalidVerifier(_))
            ),
            "{text}"
        );
    }
}

#[test]
fn a_verifiers_debug_form_hides_the_keys() {
    let debug = format!("{:?}", rfc_verifier());
    assert!(
        debug.contains("<redacted>") && !debug.contains(&BASE64.encode(rfc_verifier().stored_key))
    );
}

#[test]
fn passwords_are_saslprepped_like_postgresql_does() {
    // U+00A0 (no-break space) maps to a plain space under SASLprep.
    assert_eq!(normalize_password("a\u{a0}b".as_bytes()), b"a b");
    // Invalid UTF-8, and prohibited characters, are hashed as raw bytes.
    assert_eq!(normalize_password(b"\xff\xfe"), b"\xff\xfe");
    assert_eq!(normalize_password(b"a\x07b"), b"a\x07b");
}

#[test]
fn an_unknown_users_verifier_is_the_same_for_the_same_name_and_key() {
    let key = [7u8; 32];
    let first = ScramVerifier::for_unknown_user(&key, b"mallory");
    assert!(first == ScramVerifier::for_unknown_user(&key, b"mallory"));
    assert!(first != ScramVerifier::for_unknown_user(&key, b"eve"));
    assert!(first != ScramVerifier::for_unknown_user(&[8u8; 32], b"mallory"));
    assert_eq!(
        (first.salt.len(), first.iterations),
        (DEFAULT_SALT_LEN, DEFAULT_ITERATIONS),
        "shaped as PostgreSQL's own verifiers"
    );
}
