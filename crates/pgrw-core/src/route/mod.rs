//! The routing policy: one [`Route`] per statement, from (statement class,
//! session state, topology snapshot, policy), with a reason users can read.
//!
//! - [`topology`]: the nodes as the monitor last saw them ([`Topology`], [`NodeId`]).
//! - [`health`]: the state machine that turns probes into [`Health`] (bans, unbans).
//! - [`replication`]: whether a replica follows the current primary ([`Orphan`]),
//!   and its lag in time against the primary's progress ([`PrimaryProgress`]).
//! - [`session`]: what a session holds routing to ([`SessionState`]: transaction,
//!   pin, read-your-writes LSN, causal token, `pgrw.route`).
//! - [`policy`]: balancing, primary reads, lag limits, stale-read handling.
//! - [`balance`]: the caller-owned PRNG and round-robin state ([`Balancer`]).
//! - [`rules`]: the decision itself, [`route`].
//! - [`decision`]: what it returns ([`Route`]) and how it reads.
//!
//! ```
//! use std::time::Duration;
//! use pgrw_core::StatementClass;
//! use pgrw_core::route::{self, Balancer, Node, Policy, Role, RouteRequest, SessionState, Topology};
//!
//! let topology = Topology::new(
//!     vec![Node::new("primary", Role::Primary), Node::new("replica1", Role::Replica)],
//!     "0/3000060".parse().unwrap(),
//! );
//! let request = RouteRequest::new(StatementClass::Read, None, Duration::ZERO);
//! let mut balancer = Balancer::with_seed(7);
//! let decided = route::route(&request, &SessionState::new(), &topology, &Policy::default(), &mut balancer);
//! assert_eq!(decided.explain(&topology).to_string(), "replica1: read, least_outstanding, lag 0 B");
//! ```

pub mod balance;
pub mod decision;
pub mod health;
pub mod policy;
pub mod replication;
pub mod rules;
pub mod session;
pub mod topology;

pub use balance::Balancer;
pub use decision::{Explained, Pick, Route, RouteReason, Target, Unavailable};
pub use health::{BanCause, HealthPolicy, NodeHealth, Observation};
pub use policy::{Balancing, Consistency, Policy, PrimaryReads, StaleRead, TransactionReads};
pub use replication::{
    CurrentPrimary, FollowLimits, Orphan, PrimaryProgress, WalReceiver, follows,
};
pub use rules::{RouteRequest, route};
pub use session::{
    ConsistencyToken, Deferred, LastRead, Pin, PinReason, RouteMode, SessionState, Transaction,
};
pub use topology::{Health, Lag, NoPrimary, Node, NodeId, Role, Topology};
