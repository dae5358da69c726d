//! A simulated Neo N3 network for the demo, the integration tests and drills.
//!
//! [`SimNetwork::start`] brings up `validators` consensus nodes and `rpc` plain nodes, each
//! serving JSON-RPC over HTTP on its own port in the exact formats of a neo-rs 0.14 node,
//! plus one control HTTP API (see [`control`] and `CONTROL_API.md`). One background task
//! produces the canonical chain the way dBFT does (see [`chain`]); faults ([`Fault`]) make
//! single nodes crash, hang, slow down, freeze, fork, lie or answer garbage.
//!
//! The simulator is an independent peer: it builds its JSON itself and shares no parsing code
//! with the project's probe.
//!
//! [`standalone`] runs one simulated node as its own process (`neo-ir sim node`): it follows a
//! network's node, keeps its chain in a data directory (with a `LOCK` and checksummed
//! records) and serves the same JSON-RPC; its database tools check, repair and optimize it.
//!
//! Modules: [`chain`] (blocks, hashing, dBFT producer), [`node`] (per-node faults and chain
//! view), `rpc` (the JSON-RPC handler), [`control`] (the control API), `network` (listeners
//! and lifecycle), [`standalone`], [`error`].

pub mod chain;
pub mod control;
pub mod error;
mod network;
pub mod node;
mod rpc;
pub mod standalone;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use error::SimError;
pub use node::Fault;
pub use rpc::{HUGE_FILLER_BYTES, LIE_OFFSET, USER_AGENT};
pub use standalone::{run_node, NodeError, NodeOptions};

use network::Shared;

/// Network magic of a private Neo N3 network: `0x004F454E`, the bytes "NEO" little-endian
/// (the value neo-express and private-net templates use). TestNet T5 is 894710606, MainNet
/// 860833102.
pub const PRIVATE_NET_MAGIC: u32 = 5_195_086;

/// How to build a simulated network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Consensus nodes `validator-1..=N` (1..=100; default 4, so f = 1).
    pub validators: u32,
    /// Non-consensus nodes `rpc-1..=M` (default 3).
    pub rpc: u32,
    /// Block interval in milliseconds (default 1000).
    pub msperblock: u64,
    /// 0: every listener on an ephemeral port. Otherwise node `i` (validators first) serves
    /// JSON-RPC on `base_port + i` and the control API listens on `base_port + N + M`.
    pub base_port: u16,
    /// Address every listener binds (default 127.0.0.1).
    pub host: IpAddr,
    /// Network magic reported by `getversion` and mixed into block hashes
    /// (default [`PRIVATE_NET_MAGIC`]).
    pub network: u32,
    /// Seed of everything deterministic: block hashes, validator keys, version nonces.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            validators: 4,
            rpc: 3,
            msperblock: 1000,
            base_port: 0,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            network: PRIVATE_NET_MAGIC,
            seed: 0,
        }
    }
}

/// The role of a simulated node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimRole {
    Validator,
    Rpc,
}

/// Where a simulated node can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimNodeInfo {
    /// `validator-1`, ..., `rpc-1`, ...
    pub name: String,
    pub role: SimRole,
    /// `http://127.0.0.1:PORT/`
    pub rpc_url: String,
    pub port: u16,
}

/// Stops every task when the last [`SimNetwork`] clone is dropped.
#[derive(Debug)]
struct DropGuard(Arc<Shared>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.abort_all();
    }
}

/// A running simulated network.
///
/// Cheap to clone and share between tasks (two `Arc`s inside); every method takes `&self`.
/// The network runs until [`SimNetwork::shutdown`] is called on any clone or the last clone is
/// dropped; both stop every task, close every listener and abort every open connection
/// (`shutdown` also waits for it, dropping only starts it). Must be started inside a tokio
/// runtime.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    shared: Arc<Shared>,
    _guard: Arc<DropGuard>,
}

impl SimNetwork {
    /// Binds every listener, creates the genesis block and starts block production.
    pub async fn start(cfg: SimConfig) -> Result<SimNetwork, SimError> {
        let shared = Shared::start(cfg).await?;
        Ok(SimNetwork {
            _guard: Arc::new(DropGuard(shared.clone())),
            shared,
        })
    }

    /// The configuration the network was started with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.cfg
    }

    /// Every node, validators first.
    pub fn nodes(&self) -> Vec<SimNodeInfo> {
        self.shared
            .specs
            .iter()
            .enumerate()
            .map(|(i, s)| SimNodeInfo {
                name: s.name.clone(),
                role: s.role,
                rpc_url: self.shared.rpc_url(i),
                port: s.port,
            })
            .collect()
    }

    /// Base URL of the control API, without a trailing slash: `http://127.0.0.1:PORT`.
    pub fn control_url(&self) -> String {
        self.shared.control_url()
    }

    /// Adds a fault to a node (faults combine; `recover_node` clears them all).
    /// A `Crash` returns once the listener is closed.
    pub async fn inject(&self, node: &str, fault: Fault) -> Result<(), SimError> {
        let i = self.shared.node_index(node)?;
        self.shared.inject(i, fault).await
    }

    /// Clears every fault of a node; after a crash the listener is reopened on the same port.
    pub async fn recover_node(&self, node: &str) -> Result<(), SimError> {
        let i = self.shared.node_index(node)?;
        self.shared.recover(i).await
    }

    /// Clears every fault of every node and resumes a stall. Failures to reopen a listener
    /// are logged.
    pub async fn recover_all(&self) {
        let _ = self.shared.recover_all().await;
    }

    /// Stops block production chain-wide.
    pub fn stall(&self) {
        self.shared.set_stalled(true);
    }

    /// Restarts block production after [`SimNetwork::stall`].
    pub fn resume(&self) {
        self.shared.set_stalled(false);
    }

    /// Whether block production is stalled.
    pub fn is_stalled(&self) -> bool {
        self.shared.state.lock().expect("state lock").stalled
    }

    /// Height (index of the last block) of the canonical chain.
    pub fn height(&self) -> u64 {
        self.shared.height()
    }

    /// Height a node reports (behind the chain when crashed or frozen); `None` if unknown.
    pub fn node_height(&self, node: &str) -> Option<u64> {
        let i = self.shared.node_index(node).ok()?;
        Some(self.shared.node_height(i))
    }

    /// Current faults of a node; `None` if unknown.
    pub fn node_faults(&self, node: &str) -> Option<Vec<Fault>> {
        let i = self.shared.node_index(node).ok()?;
        let st = self.shared.state.lock().expect("state lock");
        Some(st.nodes[i].fault_list())
    }

    /// Stops every task and listener and waits until they are gone.
    pub async fn shutdown(self) {
        self.shared.shutdown().await;
    }
}
