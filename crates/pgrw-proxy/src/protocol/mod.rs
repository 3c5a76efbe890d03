//! The PostgreSQL wire protocol (version 3), without I/O.
//!
//! [`frame`] finds whole messages in a read buffer and splits them off without
//! copying; [`frontend`] and [`backend`] decode the few messages the proxy must
//! look at and encode the ones it writes itself. Any malformed input is a
//! [`ProtocolError`] that ends only the connection it came from.

pub mod backend;
mod error;
pub mod frame;
pub mod frontend;
mod reader;
pub mod sqlstate;
#[cfg(test)]
mod test_support;
mod writer;

pub use error::ProtocolError;
pub use frame::{FrameLimits, Message, MessageRef, StartupPacket};
