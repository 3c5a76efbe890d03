//! Frontend messages: every encoder decodes back to what it was given, and
//! malformed bodies are typed errors.

use super::super::frame::Message;
use super::super::test_support::{Encoder, one_message, one_startup_packet};
use super::*;

fn decode(message: &Message) -> FrontendMessage<'_> {
    FrontendMessage::decode(message.view()).unwrap()
}

#[test]
fn query_round_trips() {
    let message = one_message(|out| encode_query(out, b"SELECT 1; SELECT 2"));
    assert_eq!(
        decode(&message),
        FrontendMessage::Query {
            sql: b"SELECT 1; SELECT 2"
        }
    );
}

#[test]
fn parse_round_trips_with_parameter_types() {
    let message = one_message(|out| encode_parse(out, b"s1", b"SELECT $1, $2", &[23, 0]));
    assert_eq!(
        decode(&message),
        FrontendMessage::Parse(Parse {
            statement: b"s1",
            sql: b"SELECT $1, $2",
            param_types: vec![23, 0],
        })
    );
}

#[test]
fn bind_keeps_its_parameters_as_raw_bytes() {
    let parameters = bind_parameters(&[0], &[Some(b"42"), None], &[1]);
    let bind = Bind {
        portal: b"",
        statement: b"s1",
        parameters: &parameters,
    };
    let message = one_message(|out| encode_bind(out, &bind));
    assert_eq!(decode(&message), FrontendMessage::Bind(bind));
    assert_eq!(
        &parameters[..],
        b"\0\x01\0\0\0\x02\0\0\0\x0242\xff\xff\xff\xff\0\x01\0\x01",
        "formats, values (NULL as -1), result formats"
    );
}

#[test]
fn a_bind_reencoded_under_another_statement_name_keeps_its_parameters() {
    let parameters = bind_parameters(&[], &[Some(b"x")], &[]);
    let original = one_message(|out| {
        encode_bind(
            out,
            &Bind {
                portal: b"p",
                statement: b"client_s1",
                parameters: &parameters,
            },
        )
    });
    let FrontendMessage::Bind(bind) = decode(&original) else {
        panic!("not a Bind")
    };
    let renamed = one_message(|out| {
        encode_bind(
            out,
            &Bind {
                statement: b"pgrw_7",
                ..bind
            },
        )
    });
    let FrontendMessage::Bind(renamed) = decode(&renamed) else {
        panic!("not a Bind")
    };
    assert_eq!(
        (renamed.statement, renamed.parameters),
        (&b"pgrw_7"[..], &parameters[..])
    );
}

#[test]
fn describe_and_close_round_trip_for_statements_and_portals() {
    for target in [Target::Statement, Target::Portal] {
        let describe = one_message(|out| encode_describe(out, target, b"n"));
        assert_eq!(
            decode(&describe),
            FrontendMessage::Describe { target, name: b"n" }
        );
        let close = one_message(|out| encode_close(out, target, b"n"));
        assert_eq!(
            decode(&close),
            FrontendMessage::Close { target, name: b"n" }
        );
    }
}

#[test]
fn execute_round_trips_with_its_row_limit() {
    let message = one_message(|out| encode_execute(out, b"portal", 100));
    assert_eq!(
        decode(&message),
        FrontendMessage::Execute {
            portal: b"portal",
            max_rows: 100
        }
    );
}

#[test]
fn bodiless_messages_round_trip() {
    let cases: [(Encoder, FrontendMessage<'static>); 4] = [
        (encode_sync, FrontendMessage::Sync),
        (encode_flush, FrontendMessage::Flush),
        (encode_terminate, FrontendMessage::Terminate),
        (encode_copy_done, FrontendMessage::CopyDone),
    ];
    for (encode, expected) in cases {
        assert_eq!(decode(&one_message(encode)), expected);
    }
}

#[test]
fn copy_data_and_copy_fail_round_trip() {
    let data = one_message(|out| encode_copy_data(out, b"1\tone\n"));
    assert_eq!(
        decode(&data),
        FrontendMessage::CopyData { data: b"1\tone\n" }
    );
    let fail = one_message(|out| encode_copy_fail(out, b"aborted"));
    assert_eq!(
        decode(&fail),
        FrontendMessage::CopyFail {
            message: b"aborted"
        }
    );
}

#[test]
fn a_password_message_reads_back_as_a_password() {
    let message = one_message(|out| encode_password(out, b"md5abc"));
    let FrontendMessage::AuthenticationResponse(response) = decode(&message) else {
        panic!()
    };
    assert_eq!(response.password(), Ok(&b"md5abc"[..]));
}

#[test]
fn a_sasl_initial_response_reads_back_with_its_mechanism_and_data() {
    let message =
        one_message(|out| encode_sasl_initial_response(out, "SCRAM-SHA-256", b"n,,n=,r=abc"));
    let FrontendMessage::AuthenticationResponse(response) = decode(&message) else {
        panic!()
    };
    assert_eq!(
        response.sasl_initial(),
        Ok(SaslInitialResponse {
            mechanism: "SCRAM-SHA-256",
            data: Some(b"n,,n=,r=abc")
        })
    );
}

#[test]
fn a_sasl_response_is_its_whole_body() {
    let message = one_message(|out| encode_sasl_response(out, b"c=biws,r=abc,p=xyz"));
    let FrontendMessage::AuthenticationResponse(response) = decode(&message) else {
        panic!()
    };
    assert_eq!(response.sasl(), b"c=biws,r=abc,p=xyz");
}

#[test]
fn a_sasl_initial_response_longer_than_its_body_is_truncated() {
    let response = AuthenticationResponse {
        body: b"SCRAM-SHA-256\0\0\0\0\x10short",
    };
    assert!(matches!(
        response.sasl_initial(),
        Err(ProtocolError::Truncated { .. })
    ));
}

#[test]
fn an_unknown_tag_is_left_to_the_caller() {
    let message = MessageRef {
        tag: b'?',
        body: b"anything",
    };
    assert_eq!(
        FrontendMessage::decode(message),
        Ok(FrontendMessage::Other { tag: b'?' })
    );
}

/// A FunctionCall of OID 764 (lo_import) with one text argument and a NULL.
fn function_call_body() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&764u32.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes()); // one format code
    body.extend_from_slice(&0i16.to_be_bytes()); // text
    body.extend_from_slice(&2i16.to_be_bytes()); // two arguments
    body.extend_from_slice(&3i32.to_be_bytes());
    body.extend_from_slice(b"abc");
    body.extend_from_slice(&(-1i32).to_be_bytes()); // NULL
    body.extend_from_slice(&1i16.to_be_bytes()); // binary result
    body
}

#[test]
fn a_function_call_is_checked_whole() {
    fn decode(body: &[u8]) -> Result<FrontendMessage<'_>, ProtocolError> {
        FrontendMessage::decode(MessageRef {
            tag: tag::FUNCTION_CALL,
            body,
        })
    }
    let body = function_call_body();
    assert_eq!(
        decode(&body),
        Ok(FrontendMessage::FunctionCall { function: 764 })
    );
    assert!(matches!(
        decode(&body[..body.len() - 1]),
        Err(ProtocolError::Truncated { .. })
    ));
    let mut trailing = body.clone();
    trailing.push(0);
    assert!(matches!(
        decode(&trailing),
        Err(ProtocolError::TrailingBytes { .. })
    ));
    let mut negative = body.clone();
    negative[17..21].copy_from_slice(&(-2i32).to_be_bytes());
    assert!(matches!(
        decode(&negative),
        Err(ProtocolError::InvalidValue { .. })
    ));
}

#[test]
fn a_query_without_its_nul_is_an_error() {
    let message = MessageRef {
        tag: tag::QUERY,
        body: b"SELECT 1",
    };
    assert!(matches!(
        FrontendMessage::decode(message),
        Err(ProtocolError::MissingNul { .. })
    ));
}

#[test]
fn a_query_with_bytes_after_its_nul_is_an_error() {
    let message = MessageRef {
        tag: tag::QUERY,
        body: b"SELECT 1\0junk",
    };
    assert!(matches!(
        FrontendMessage::decode(message),
        Err(ProtocolError::TrailingBytes { count: 4, .. })
    ));
}

#[test]
fn a_parse_with_a_negative_parameter_count_is_an_error() {
    let message = MessageRef {
        tag: tag::PARSE,
        body: b"\0SELECT 1\0\xff\xff",
    };
    assert!(matches!(
        FrontendMessage::decode(message),
        Err(ProtocolError::Negative { value: -1, .. })
    ));
}

#[test]
fn a_parse_announcing_more_types_than_it_carries_is_an_error() {
    let message = MessageRef {
        tag: tag::PARSE,
        body: b"\0SELECT 1\0\x7f\xff\0\0\0\x17",
    };
    assert!(matches!(
        FrontendMessage::decode(message),
        Err(ProtocolError::Truncated { .. })
    ));
}

#[test]
fn a_describe_of_an_unknown_kind_is_an_error() {
    let message = MessageRef {
        tag: tag::DESCRIBE,
        body: b"Xname\0",
    };
    assert!(matches!(
        FrontendMessage::decode(message),
        Err(ProtocolError::InvalidValue { .. })
    ));
}

#[test]
fn a_sync_with_a_body_is_an_error() {
    let message = MessageRef {
        tag: tag::SYNC,
        body: b"x",
    };
    assert!(matches!(
        FrontendMessage::decode(message),
        Err(ProtocolError::TrailingBytes { .. })
    ));
}

#[test]
fn a_startup_message_round_trips_its_parameters_in_order() {
    let params = [
        ("user", "alice"),
        ("database", "shop"),
        ("application_name", "psql"),
    ];
    let packet = one_startup_packet(|out| encode_startup_3_0(out, &params));
    let StartupRequest::Startup(startup) = StartupRequest::decode(&packet).unwrap() else {
        panic!()
    };
    assert_eq!(startup.version, ProtocolVersion::V3_0);
    assert_eq!(
        (startup.user(), startup.database()),
        (Some("alice"), Some("shop"))
    );
    assert_eq!(startup.params.len(), 3);
}

#[test]
fn the_database_defaults_to_the_user_name() {
    let packet = one_startup_packet(|out| encode_startup_3_0(out, &[("user", "alice")]));
    let StartupRequest::Startup(startup) = StartupRequest::decode(&packet).unwrap() else {
        panic!()
    };
    assert_eq!(startup.database(), Some("alice"));
}

#[test]
fn a_protocol_3_2_startup_message_is_recognised() {
    let version = ProtocolVersion { major: 3, minor: 2 };
    let packet = one_startup_packet(|out| encode_startup(out, version, &[("user", "u")]));
    let StartupRequest::Startup(startup) = StartupRequest::decode(&packet).unwrap() else {
        panic!()
    };
    assert_eq!(startup.version, version);
}

#[test]
fn ssl_and_gssenc_requests_round_trip() {
    let ssl = one_startup_packet(encode_ssl_request);
    assert_eq!(StartupRequest::decode(&ssl), Ok(StartupRequest::SslRequest));
    let gss = one_startup_packet(encode_gssenc_request);
    assert_eq!(
        StartupRequest::decode(&gss),
        Ok(StartupRequest::GssEncRequest)
    );
}

#[test]
fn a_cancel_request_round_trips_its_key() {
    let key = CancelKey {
        process_id: 4242,
        secret_key: &[1, 2, 3, 4],
    };
    let packet = one_startup_packet(|out| encode_cancel_request(out, key));
    assert_eq!(
        StartupRequest::decode(&packet),
        Ok(StartupRequest::Cancel(key))
    );
}

#[test]
fn a_cancel_request_with_a_short_key_is_an_error() {
    let body = [0, 0, 0, 1, 9, 9];
    assert!(matches!(
        StartupRequest::decode_parts(super::super::frame::CANCEL_REQUEST_CODE, &body),
        Err(ProtocolError::InvalidValue { .. })
    ));
}

#[test]
fn protocol_version_2_is_unsupported() {
    assert_eq!(
        StartupRequest::decode_parts(2 << 16, b""),
        Err(ProtocolError::UnsupportedStartupCode(2 << 16))
    );
}

#[test]
fn a_startup_message_without_its_final_nul_is_an_error() {
    let body = b"user\0alice\0";
    assert!(matches!(
        StartupRequest::decode_parts(ProtocolVersion::V3_0.code(), body),
        Err(ProtocolError::MissingNul { .. })
    ));
}

#[test]
fn a_startup_parameter_that_is_not_utf8_is_an_error() {
    let body = b"user\0\xff\0\0";
    assert!(matches!(
        StartupRequest::decode_parts(ProtocolVersion::V3_0.code(), body),
        Err(ProtocolError::NotUtf8 { .. })
    ));
}
