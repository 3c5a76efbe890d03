//! Knowledge of SQL functions: which write, lock or change session state. (Stub.)

/// What the classifier knows about functions.
#[derive(Debug, Clone, Default)]
pub struct FunctionCatalog {}
