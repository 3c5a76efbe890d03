//! The library's errors: building a pool ([`BuildError`]), and a statement
//! no node can run ([`Unroutable`], carried inside `sqlx::Error::Io`).

use std::io;

use pgrw_monitor::DsnError;

/// Why [`crate::RwPoolBuilder::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A connection string cannot address one node.
    #[error(transparent)]
    Dsn(#[from] DsnError),
    /// [`crate::RwPool::builder_from_url`] was given something other than a
    /// `postgres://` URL.
    #[error(
        "not a multi-host URL; expected postgres://USER:PASSWORD@HOST1:PORT1,HOST2:PORT2/DATABASE"
    )]
    NotAUrl,
    /// The monitor found no primary that is up within the startup timeout.
    #[error("{0}")]
    NoPrimary(pgrw_monitor::NotReady),
}

/// A statement no node can run now, with the route's explanation
/// (`no primary available: primary is down (write)`).
///
/// Statements run through the sqlx `Executor` return it as
/// `sqlx::Error::Io` of kind `NotConnected`; find it with
/// `io_error.get_ref()?.downcast_ref::<Unroutable>()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pgrw: no node can run this statement: {explanation}")]
pub struct Unroutable {
    /// The route as users read it.
    pub explanation: String,
}

impl Unroutable {
    /// The error as sqlx callers see it.
    pub(crate) fn into_sqlx(self) -> sqlx::Error {
        sqlx::Error::Io(io::Error::new(io::ErrorKind::NotConnected, self))
    }
}
