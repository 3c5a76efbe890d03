//! pgrw-core: the decisions of pgrw, with no I/O.
//!
//! It lexes and classifies SQL, decides one [`route::Route`] per statement from
//! (statement class, session state, topology snapshot, policy), and does WAL
//! LSN arithmetic. It opens no socket and reads no clock: time and node state are
//! passed in, so the proxy and the library drive the same deterministic code.

pub mod catalog;
pub mod classification;
pub mod lsn;
pub mod route;
pub mod sql;

pub use catalog::FunctionCatalog;
pub use classification::{Classification, Reason, RouteHint, StatementClass, TxAccess};
pub use lsn::Lsn;
