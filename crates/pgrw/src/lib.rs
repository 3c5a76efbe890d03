//! pgrw: PostgreSQL read/write splitting inside a Rust application.
//!
//! [`RwPool`] holds a `sqlx::PgPool` per node (a primary and its streaming
//! replicas) and is a `sqlx::Executor`: each statement is classified by
//! `pgrw-core` and sent where it may run — writes, and anything the classifier
//! is unsure of, to the primary; reads to a replica. A [`Session`] adds
//! read-your-writes by WAL position. The node monitor (`pgrw-monitor`) keeps
//! the topology: roles, replay positions, lag, failed nodes.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = pgrw::RwPool::builder("postgres://postgres:postgres@127.0.0.1:5432/postgres")
//!     .replica("postgres://postgres:postgres@127.0.0.1:5433/postgres")
//!     .replica("postgres://postgres:postgres@127.0.0.1:5434/postgres")
//!     .connect()
//!     .await?;
//! let session = pool.session();
//! sqlx::query("INSERT INTO t (x) VALUES (1)").execute(&session).await?; // primary
//! let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&session).await?; // sees it
//! # Ok(()) }
//! ```
//!
//! See docs/library.md for configuration, the consistency guarantees and
//! what happens when nodes fail.

mod error;
mod executor;
mod multi_host;
mod options;
mod placement;
mod pool;
#[cfg(feature = "sea-orm")]
pub mod sea_orm;
mod session;

pub use error::{BuildError, Unroutable};
pub use options::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_STARTUP_TIMEOUT, DEFAULT_UNAVAILABLE_WAIT, RwPoolBuilder,
};
pub use pgrw_core::route::{Balancing, ConsistencyToken, Policy, PrimaryReads, StaleRead};
pub use pgrw_monitor::{Monitor, MonitorConfig};
pub use pool::RwPool;
pub use session::{Session, SessionTransaction};
