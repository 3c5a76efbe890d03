//! `[limits]`: what one client, or the clients of one address, user or
//! database, may take of the proxy (docs/security.md).

use std::time::Duration;

use serde::Deserialize;

/// `[limits]` in `pgrw.toml`. Every limit has a safe default; 0 turns off
/// the ones documented as optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The largest message a logged-in client may send, header included
    /// (default 256 MiB). A larger one ends the connection with FATAL 54000:
    /// its bytes cannot be skipped without reading them.
    pub max_message_bytes: u64,
    /// The most connections that have not logged in yet (default 256): one
    /// more gets FATAL 53300, so that silent connections cannot hold every
    /// slot of `max_client_connections`.
    pub max_pending_logins: u64,
    /// The most clients logged in to one database (default 0: no limit);
    /// one more gets FATAL 53300. `[[users]] max_connections` is the same per user.
    pub max_connections_per_database: u64,
    /// A logged-in client idle outside a transaction this long is
    /// disconnected with FATAL 57P05 (default 0: never), as PostgreSQL's
    /// `idle_session_timeout`.
    pub idle_client_timeout_ms: u64,
    /// A client idle inside a transaction this long is disconnected with
    /// FATAL 25P03 and its transaction rolled back (default 0: never), as
    /// PostgreSQL's `idle_in_transaction_session_timeout`.
    pub idle_in_transaction_timeout_ms: u64,
    /// How long the answer to a failed login from an address is held back
    /// (default 200); each further failure from that address doubles it, up
    /// to `failed_login_delay_max_ms`.
    pub failed_login_delay_ms: u64,
    /// The longest such delay (default 5000).
    pub failed_login_delay_max_ms: u64,
    /// After this many failed logins in a row from one address, its new
    /// connections are refused at once with FATAL 28000 until
    /// `failed_login_window_ms` has passed since the last failure (default
    /// 20; 0: never refused).
    pub max_failed_logins: u64,
    /// How long an address's failures are remembered (default 60000).
    pub failed_login_window_ms: u64,
}

/// The default `max_message_bytes`: 256 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 256 << 20;

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_pending_logins: 256,
            max_connections_per_database: 0,
            idle_client_timeout_ms: 0,
            idle_in_transaction_timeout_ms: 0,
            failed_login_delay_ms: 200,
            failed_login_delay_max_ms: 5000,
            max_failed_logins: 20,
            failed_login_window_ms: 60_000,
        }
    }
}

/// The smallest `max_message_bytes`: a message header and a little SQL.
pub const MIN_MAX_MESSAGE_BYTES: u64 = 1024;
/// The largest: PostgreSQL's own ceiling for one message.
pub const MAX_MAX_MESSAGE_BYTES: u64 = 1 << 30;

impl LimitsConfig {
    /// `max_message_bytes` as a frame limit.
    pub fn max_message_len(&self) -> usize {
        usize::try_from(self.max_message_bytes).unwrap_or(usize::MAX)
    }

    /// The idle-client timeout, when on.
    pub fn idle_client_timeout(&self) -> Option<Duration> {
        (self.idle_client_timeout_ms > 0)
            .then(|| Duration::from_millis(self.idle_client_timeout_ms))
    }

    /// The idle-in-transaction timeout, when on.
    pub fn idle_in_transaction_timeout(&self) -> Option<Duration> {
        (self.idle_in_transaction_timeout_ms > 0)
            .then(|| Duration::from_millis(self.idle_in_transaction_timeout_ms))
    }

    /// What is wrong with these values, as (key, problem, fix).
    pub(super) fn problem(&self) -> Option<(&'static str, String, &'static str)> {
        if !(MIN_MAX_MESSAGE_BYTES..=MAX_MAX_MESSAGE_BYTES).contains(&self.max_message_bytes) {
            return Some((
                "limits.max_message_bytes",
                format!("= {} is outside 1024..=1073741824", self.max_message_bytes),
                "set it between 1 KiB and 1 GiB (PostgreSQL's own ceiling); default 256 MiB",
            ));
        }
        if self.max_pending_logins == 0 {
            return Some((
                "limits.max_pending_logins",
                "= 0 would let no client log in".to_string(),
                "set a positive value (default 256) or remove the key",
            ));
        }
        if self.failed_login_delay_max_ms < self.failed_login_delay_ms {
            return Some((
                "limits.failed_login_delay_max_ms",
                format!(
                    "= {} is below failed_login_delay_ms = {}",
                    self.failed_login_delay_max_ms, self.failed_login_delay_ms
                ),
                "make the maximum at least the first delay",
            ));
        }
        None
    }
}
