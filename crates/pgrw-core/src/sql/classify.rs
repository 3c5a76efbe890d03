//! The statement classifier. (Stub: to be written.)

use crate::classification::{RouteHint, StatementClass};

/// Why a statement was classified the way it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Not understood: sent to the primary.
    Unrecognised,
}

/// The classifier's verdict on one SQL string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Where it may run.
    pub class: StatementClass,
    /// Why.
    pub reason: Reason,
    /// A hint written in the statement, if any.
    pub hint: Option<RouteHint>,
}
