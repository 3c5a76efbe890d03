//! Queries the proxy runs itself on a backend, between the client's
//! statements: their answers are read here and never reach the client.

use bytes::BytesMut;

use crate::backend::{BackendConnection, BackendError};
use crate::protocol::backend::{BackendMessage, NoticeFields, TransactionStatus, tag};
use crate::protocol::frontend::encode_query;

/// What one of the proxy's own simple queries returned.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    /// Every DataRow, its columns as text (`None`: NULL).
    pub(crate) rows: Vec<Vec<Option<String>>>,
    /// The first ErrorResponse, if the node refused the query.
    pub(crate) error: Option<NoticeFields>,
    /// ParameterStatus messages, in order: reported settings that changed.
    pub(crate) parameter_status: Vec<(String, String)>,
}

/// Runs `sql` (a simple Query, possibly several statements) on an idle
/// `connection` and reads its whole answer, up to ReadyForQuery.
pub(crate) async fn run(
    connection: &mut BackendConnection,
    sql: &[u8],
) -> Result<Answer, BackendError> {
    let mut out = BytesMut::new();
    encode_query(&mut out, sql);
    connection.send(&out).await?;
    answer(connection).await
}

/// Reads the answer to one simple Query already sent on `connection`, up to
/// its ReadyForQuery (whose transaction status the connection keeps).
pub(crate) async fn answer(connection: &mut BackendConnection) -> Result<Answer, BackendError> {
    let mut answer = Answer::default();
    loop {
        let message = connection.receive().await?;
        match message.tag() {
            tag::DATA_ROW => answer.rows.push(columns(message.body())),
            tag::ERROR_RESPONSE | tag::PARAMETER_STATUS | tag::READY_FOR_QUERY => {
                match BackendMessage::decode(message.view()) {
                    Ok(BackendMessage::ErrorResponse(fields)) => {
                        answer.error.get_or_insert(fields);
                    }
                    Ok(BackendMessage::ParameterStatus { name, value }) => {
                        answer.parameter_status.push((
                            String::from_utf8_lossy(name).into_owned(),
                            String::from_utf8_lossy(value).into_owned(),
                        ));
                    }
                    Ok(BackendMessage::ReadyForQuery(status)) => {
                        connection.status = status;
                        return Ok(answer);
                    }
                    _ => {
                        // Not what the tag promised: the connection cannot be trusted.
                        connection.status = TransactionStatus::Failed;
                        return Err(BackendError::Protocol {
                            node: connection.node_name().to_string(),
                            message: "a malformed message in answer to pgrw's own query"
                                .to_string(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
}

/// The columns of a DataRow body as text; a malformed row reads as no columns.
fn columns(body: &[u8]) -> Vec<Option<String>> {
    let mut columns = Vec::new();
    let Some(count) = body.get(..2) else {
        return columns;
    };
    let count = u16::from_be_bytes([count[0], count[1]]);
    let mut at = 2;
    for _ in 0..count {
        let Some(length) = body.get(at..at + 4) else {
            return Vec::new();
        };
        let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
        at += 4;
        let Ok(length) = usize::try_from(length) else {
            columns.push(None);
            continue;
        };
        let Some(value) = body.get(at..at + length) else {
            return Vec::new();
        };
        columns.push(Some(String::from_utf8_lossy(value).into_owned()));
        at += length;
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::columns;

    #[test]
    fn data_row_columns_read_as_text_with_null_as_none() {
        let mut body = vec![0, 3];
        body.extend_from_slice(&1i32.to_be_bytes());
        body.push(b't');
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&3i32.to_be_bytes());
        body.extend_from_slice(b"abc");
        assert_eq!(
            columns(&body),
            [Some("t".to_string()), None, Some("abc".to_string())]
        );
    }

    #[test]
    fn a_truncated_data_row_reads_as_no_columns() {
        let mut body = vec![0, 1];
        body.extend_from_slice(&5i32.to_be_bytes());
        body.extend_from_slice(b"ab");
        assert!(columns(&body).is_empty());
    }
}
