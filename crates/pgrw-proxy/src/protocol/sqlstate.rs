//! SQLSTATE codes the proxy itself reports (PostgreSQL's Appendix A).

/// `08P01`: the peer broke the wire protocol.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// `08006`: a connection to a node failed.
pub const CONNECTION_FAILURE: &str = "08006";
/// `08001`: the proxy could not establish a connection to a node.
pub const SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION: &str = "08001";
/// `0A000`: the request is valid PostgreSQL but the proxy does not support it.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// `28000`: no such user, or the user may not log in this way.
pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
/// `28P01`: wrong password (what PostgreSQL reports for every failed password check).
pub const INVALID_PASSWORD: &str = "28P01";
/// `53300`: too many connections.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// `57014`: the query was cancelled.
pub const QUERY_CANCELED: &str = "57014";
/// `57P01`: the proxy is shutting down.
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// `XX000`: a bug in the proxy.
pub const INTERNAL_ERROR: &str = "XX000";
/// `57P03`: no node can take the statement now (no primary up, no replica
/// allowed to read): PostgreSQL's own "not accepting connections now", which
/// clients treat as retryable, and the session stays usable.
pub const CANNOT_CONNECT_NOW: &str = "57P03";
/// `22023`: a value the setting does not take (`SET pgrw.min_lsn = 'x'`).
pub const INVALID_PARAMETER_VALUE: &str = "22023";
/// `55P02`: a setting that cannot be changed (`pgrw.lsn`).
pub const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02";
/// `54000`: a message over `limits.max_message_bytes` (program_limit_exceeded).
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
/// `25P03`: idle in a transaction past `limits.idle_in_transaction_timeout_ms`.
pub const IDLE_IN_TRANSACTION_SESSION_TIMEOUT: &str = "25P03";
/// `57P05`: idle past `limits.idle_client_timeout_ms`.
pub const IDLE_SESSION_TIMEOUT: &str = "57P05";
/// `syntax_error`: an admin console command pgrw does not know.
pub const SYNTAX_ERROR: &str = "42601";
/// `insufficient_privilege`: a user not marked `admin` asked for the admin console.
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// `undefined_object`: an admin command names a node pgrw.toml does not list.
pub const UNDEFINED_OBJECT: &str = "42704";
/// `config_file_error`: `RELOAD` found pgrw.toml unusable (the old one stays).
pub const CONFIG_FILE_ERROR: &str = "F0000";
