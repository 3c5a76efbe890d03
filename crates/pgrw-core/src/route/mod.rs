//! The routing policy: one [`Route`] per statement. (Stub.)

/// Where a statement goes, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {}
