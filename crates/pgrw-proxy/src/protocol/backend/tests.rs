//! Backend messages: every encoder decodes back to what it was given, opaque
//! messages stay opaque, and malformed bodies are typed errors.

use super::super::frame::{Message, MessageRef};
use super::super::sqlstate;
use super::super::test_support::{Encoder, one_message};
use super::*;

fn decode(message: &Message) -> BackendMessage<'_> {
    BackendMessage::decode(message.view()).unwrap()
}

#[test]
fn authentication_requests_round_trip() {
    let cases: [(Encoder, Authentication<'static>); 2] = [
        (encode_authentication_ok, Authentication::Ok),
        (
            encode_authentication_cleartext_password,
            Authentication::CleartextPassword,
        ),
    ];
    for (encode, expected) in cases {
        assert_eq!(
            decode(&one_message(encode)),
            BackendMessage::Authentication(expected)
        );
    }
}

#[test]
fn an_md5_request_carries_its_salt() {
    let message = one_message(|out| encode_authentication_md5_password(out, [1, 2, 3, 4]));
    assert_eq!(
        decode(&message),
        BackendMessage::Authentication(Authentication::Md5Password { salt: [1, 2, 3, 4] })
    );
}

#[test]
fn a_sasl_request_lists_its_mechanisms_in_order() {
    let message = one_message(|out| {
        encode_authentication_sasl(out, &["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
    });
    assert_eq!(
        decode(&message),
        BackendMessage::Authentication(Authentication::Sasl {
            mechanisms: vec!["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"],
        })
    );
}

#[test]
fn sasl_continue_and_final_carry_their_data() {
    let message =
        one_message(|out| encode_authentication_sasl_continue(out, b"r=abc,s=c2FsdA==,i=4096"));
    assert_eq!(
        decode(&message),
        BackendMessage::Authentication(Authentication::SaslContinue {
            data: b"r=abc,s=c2FsdA==,i=4096"
        })
    );
    let message = one_message(|out| encode_authentication_sasl_final(out, b"v=xyz"));
    assert_eq!(
        decode(&message),
        BackendMessage::Authentication(Authentication::SaslFinal { data: b"v=xyz" })
    );
}

#[test]
fn gssapi_authentication_is_reported_as_unsupported() {
    let message = MessageRef {
        tag: tag::AUTHENTICATION,
        body: &[0, 0, 0, 7],
    };
    assert_eq!(
        BackendMessage::decode(message),
        Ok(BackendMessage::Authentication(
            Authentication::Unsupported { code: 7 }
        ))
    );
}

#[test]
fn an_md5_request_without_its_salt_is_truncated() {
    let message = MessageRef {
        tag: tag::AUTHENTICATION,
        body: &[0, 0, 0, 5, 1, 2],
    };
    assert!(matches!(
        BackendMessage::decode(message),
        Err(ProtocolError::Truncated { .. })
    ));
}

#[test]
fn parameter_status_round_trips() {
    let message = one_message(|out| encode_parameter_status(out, b"TimeZone", b"UTC"));
    assert_eq!(
        decode(&message),
        BackendMessage::ParameterStatus {
            name: b"TimeZone",
            value: b"UTC"
        }
    );
}

#[test]
fn backend_key_data_round_trips() {
    let message = one_message(|out| encode_backend_key_data(out, 77, &[9, 8, 7, 6]));
    assert_eq!(
        decode(&message),
        BackendMessage::BackendKeyData {
            process_id: 77,
            secret_key: &[9, 8, 7, 6]
        }
    );
}

#[test]
fn a_protocol_3_2_key_of_32_bytes_is_accepted() {
    let message = one_message(|out| encode_backend_key_data(out, 77, &[5; 32]));
    assert!(
        matches!(decode(&message), BackendMessage::BackendKeyData { secret_key, .. } if secret_key.len() == 32)
    );
}

#[test]
fn ready_for_query_round_trips_every_transaction_status() {
    for status in [
        TransactionStatus::Idle,
        TransactionStatus::InTransaction,
        TransactionStatus::Failed,
    ] {
        let message = one_message(|out| encode_ready_for_query(out, status));
        assert_eq!(decode(&message), BackendMessage::ReadyForQuery(status));
    }
}

#[test]
fn an_unknown_transaction_status_is_an_error() {
    let message = MessageRef {
        tag: tag::READY_FOR_QUERY,
        body: b"X",
    };
    assert!(matches!(
        BackendMessage::decode(message),
        Err(ProtocolError::InvalidValue { .. })
    ));
}

#[test]
fn an_error_response_round_trips_its_fields() {
    let fields = NoticeFields::new(
        Severity::Fatal,
        sqlstate::INVALID_PASSWORD,
        "password authentication failed",
    )
    .with_detail("for user \"alice\"")
    .with_hint("check the password");
    let message = one_message(|out| encode_error_response(out, &fields));
    assert_eq!(decode(&message), BackendMessage::ErrorResponse(fields));
}

#[test]
fn a_notice_response_round_trips_extra_fields_in_order() {
    let mut fields = NoticeFields::new(Severity::Notice, "00000", "relation exists, skipping");
    fields.other = vec![(b'F', "tablecmds.c".to_string()), (b'L', "123".to_string())];
    let message = one_message(|out| encode_notice_response(out, &fields));
    assert_eq!(decode(&message), BackendMessage::NoticeResponse(fields));
}

#[test]
fn the_nonlocalized_severity_wins_over_the_localized_one() {
    let body = b"SFEHLER\0VERROR\0C42P01\0MRelation fehlt\0\0";
    let message = MessageRef {
        tag: tag::ERROR_RESPONSE,
        body,
    };
    let Ok(BackendMessage::ErrorResponse(fields)) = BackendMessage::decode(message) else {
        panic!()
    };
    assert_eq!(
        (fields.severity.as_str(), fields.code.as_str()),
        ("ERROR", "42P01")
    );
}

#[test]
fn an_error_response_without_its_terminator_is_an_error() {
    let message = MessageRef {
        tag: tag::ERROR_RESPONSE,
        body: b"SERROR\0",
    };
    assert!(matches!(
        BackendMessage::decode(message),
        Err(ProtocolError::Truncated { .. })
    ));
}

#[test]
fn command_complete_round_trips_its_tag() {
    let message = one_message(|out| encode_command_complete(out, b"INSERT 0 3"));
    assert_eq!(
        decode(&message),
        BackendMessage::CommandComplete { tag: b"INSERT 0 3" }
    );
}

#[test]
fn bodiless_messages_round_trip() {
    let cases: [(Encoder, BackendMessage<'static>); 5] = [
        (
            encode_empty_query_response,
            BackendMessage::EmptyQueryResponse,
        ),
        (encode_parse_complete, BackendMessage::ParseComplete),
        (encode_bind_complete, BackendMessage::BindComplete),
        (encode_close_complete, BackendMessage::CloseComplete),
        (encode_no_data, BackendMessage::NoData),
    ];
    for (encode, expected) in cases {
        assert_eq!(decode(&one_message(encode)), expected);
    }
}

#[test]
fn rows_and_row_descriptions_stay_opaque() {
    for tag in [
        tag::DATA_ROW,
        tag::ROW_DESCRIPTION,
        tag::COPY_DATA,
        tag::NOTIFICATION_RESPONSE,
    ] {
        let message = MessageRef {
            tag,
            body: b"\xff\xffnot even well-formed",
        };
        assert_eq!(
            BackendMessage::decode(message),
            Ok(BackendMessage::Opaque { tag })
        );
    }
}

#[test]
fn copy_responses_are_recognised() {
    let body = b"\0\0\0";
    assert_eq!(
        BackendMessage::decode(MessageRef {
            tag: tag::COPY_IN_RESPONSE,
            body
        }),
        Ok(BackendMessage::CopyInResponse)
    );
    assert_eq!(
        BackendMessage::decode(MessageRef {
            tag: tag::COPY_OUT_RESPONSE,
            body
        }),
        Ok(BackendMessage::CopyOutResponse)
    );
}

#[test]
fn negotiate_protocol_version_round_trips() {
    let message =
        one_message(|out| encode_negotiate_protocol_version(out, 0, &[b"_pq_.compression"]));
    assert_eq!(
        decode(&message),
        BackendMessage::NegotiateProtocolVersion {
            newest_minor: 0,
            unrecognized_options: vec![b"_pq_.compression"],
        }
    );
}

#[test]
fn negotiate_protocol_version_announcing_more_options_than_it_holds_is_an_error() {
    let message = MessageRef {
        tag: tag::NEGOTIATE_PROTOCOL_VERSION,
        body: b"\0\0\0\0\x7f\xff\xff\xffa\0",
    };
    assert!(matches!(
        BackendMessage::decode(message),
        Err(ProtocolError::Truncated { .. })
    ));
}
