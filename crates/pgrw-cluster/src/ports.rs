//! Checking that the loopback ports a cluster needs are free.

use std::net::{Ipv4Addr, TcpListener};

use crate::error::{ClusterError, Result};
use crate::layout::NodeLayout;

/// True when nothing listens on `port` at 127.0.0.1.
pub fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Fails with [`ClusterError::PortInUse`] naming the first node whose port is taken.
pub fn ensure_free(nodes: &[NodeLayout]) -> Result<()> {
    match nodes.iter().find(|node| !is_free(node.port)) {
        Some(node) => Err(ClusterError::PortInUse {
            port: node.port,
            node: node.name.clone(),
        }),
        None => Ok(()),
    }
}
