//! pgrw-cluster: a real PostgreSQL primary with N streaming replicas on loopback.
//!
//! It backs `pgrw cluster …`, the quick start, the demo and every integration
//! test (through [`testing`]). (Stub: to be written.)
