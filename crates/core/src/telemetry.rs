//! Telemetry beside JSON-RPC: what a node's own endpoints (`/metrics`, neo-rs `/healthz` and
//! `/readyz`) and the neo-ir host agent on its machine report. Filled by the `probe` crate
//! (node endpoints) and the `agent` crate (host), read by the fleet view and the detectors.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One scrape of a node's Prometheus endpoint plus its health endpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeMetrics {
    pub at: Option<Timestamp>,
    /// "neo-rs", "neo-go" or "unknown", from the metric families present.
    pub implementation: String,
    /// `process_resident_memory_bytes` (RSS; never the virtual size).
    pub memory_bytes: Option<u64>,
    /// `process_cpu_seconds_total` (a counter; CPU % comes from two scrapes).
    pub cpu_seconds_total: Option<f64>,
    /// `neo_node_connected_peers` / `neogo_peers_connected`.
    pub peers: Option<u64>,
    /// `neo_node_ledger_height` / `neogo_block_height` / `neogo_current_block_height`.
    pub height: Option<u64>,
    /// neo-rs `/healthz` answered 200 with status ok (None when not asked or not neo-rs).
    pub healthz_ok: Option<bool>,
    /// neo-rs `/readyz` answered 200 with ready true.
    pub readyz_ok: Option<bool>,
    /// Why the scrape failed, when it did (kind and message, never credentials).
    pub error: Option<String>,
}

/// Connections from one remote IP, on the node's P2P and RPC ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteConnections {
    pub ip: String,
    pub p2p: u32,
    pub rpc: u32,
}

/// One report of the host agent (`neo-ir agent`) running on a node's machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    pub at: Option<Timestamp>,
    /// "running", "stopped" or "unknown".
    pub process_state: String,
    pub process_rss_bytes: Option<u64>,
    pub process_cpu_percent: Option<f64>,
    /// Host-wide CPU busy %, and the share of time waiting for IO.
    pub cpu_percent: Option<f64>,
    pub iowait_percent: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    pub p2p_established: Option<u32>,
    pub rpc_established: Option<u32>,
    /// Remote IPs with the most connections first.
    pub top_remotes: Vec<RemoteConnections>,
    /// The latest error lines of the node's log or journal.
    pub error_lines: Vec<String>,
    /// Why the agent could not be read, when it could not.
    pub error: Option<String>,
}
