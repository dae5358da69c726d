//! Typed errors of the simulator's Rust API.

use std::net::SocketAddr;

/// What can go wrong when starting or driving a [`crate::SimNetwork`].
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration cannot describe a network (no validators, ports out of range, ...).
    #[error("invalid simulator config: {0}")]
    InvalidConfig(String),
    /// A listener could not be bound (port in use, address not available).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// No node has this name.
    #[error("unknown node '{0}'")]
    UnknownNode(String),
    /// The network was shut down; listeners are not restarted any more.
    #[error("the simulated network is shut down")]
    ShutDown,
}
