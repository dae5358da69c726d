//! What one probe of one node saw: the node's chain status, or a typed failure.
//! These types are the contract between the `probe` crate (which fills them over JSON-RPC)
//! and the fleet view and detectors (which read them).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What a node does in the network. Validators (consensus nodes) take part in dBFT; RPC nodes
/// only follow the chain and serve clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Validator,
    Rpc,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Validator => "validator",
            Role::Rpc => "rpc",
        }
    }
}

/// The facts `getversion` gives (cached by the probe; it rarely changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeVersion {
    /// e.g. "/neo-rs:0.14.0/", "/NEO-GO:0.120.0/", "/Neo:3.10.1/".
    pub user_agent: String,
    /// Network magic (MainNet 860833102, TestNet T5 894710606).
    pub network: Option<u32>,
    /// Target block time in milliseconds (`protocol.msperblock`).
    pub msperblock: Option<u64>,
    /// Number of consensus nodes (`protocol.validatorscount`).
    pub validators_count: Option<u32>,
    pub tcp_port: Option<u16>,
    pub nonce: Option<u64>,
}

/// A verbose block header (`getblockheader [h, true]`), the fields neo-ir uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderInfo {
    pub hash: String,
    pub index: u64,
    /// Block time in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Index of the primary (speaker) validator of the round that made this block.
    /// Absent in some mock answers; real nodes send it.
    pub primary: Option<u32>,
    pub next_consensus: String,
    pub previous_hash: String,
}

/// A successful probe: the node answered the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStatus {
    /// `getblockcount`: the number of blocks, i.e. height + 1.
    pub block_count: u64,
    /// `getbestblockhash`, "0x..." hex.
    pub best_hash: String,
    /// `getconnectioncount`; `None` when the node refused that one method.
    pub connections: Option<u32>,
    /// From `getversion` (cached by the probe).
    pub version: Option<NodeVersion>,
    /// The header at the best height, when the probe asked for it.
    pub header: Option<HeaderInfo>,
    /// The header just below `header`, when the probe asked for both in one batch (how a
    /// big fleet checks that a node's own blocks link without asking every round).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_header: Option<HeaderInfo>,
}

impl ChainStatus {
    /// The height of the newest block (`getblockcount` − 1).
    pub fn height(&self) -> u64 {
        self.block_count.saturating_sub(1)
    }
}

/// Why a probe failed. Every failure has exactly one kind; the message adds detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// TCP connection refused: nothing listens (process down).
    Refused,
    /// The connection was reset or closed mid-request.
    Reset,
    /// No complete answer within the hard timeout (a hang).
    Timeout,
    /// HTTP 401/403: missing or wrong credentials.
    Auth,
    /// Any other non-2xx HTTP status.
    HttpStatus,
    /// A JSON-RPC `error` object came back for a method neo-ir needs.
    RpcError,
    /// The body was not the JSON-RPC answer expected (garbage, wrong shape).
    Malformed,
    /// The body exceeded the configured limit.
    TooLarge,
    /// The node reported a height the rest of the fleet contradicts (a lying node).
    ImplausibleHeight,
    /// Anything else (DNS, TLS, invalid URL).
    Other,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Refused => "refused",
            FailureKind::Reset => "reset",
            FailureKind::Timeout => "timeout",
            FailureKind::Auth => "auth",
            FailureKind::HttpStatus => "http_status",
            FailureKind::RpcError => "rpc_error",
            FailureKind::Malformed => "malformed",
            FailureKind::TooLarge => "too_large",
            FailureKind::ImplausibleHeight => "implausible_height",
            FailureKind::Other => "other",
        }
    }
}

/// A failed probe with its typed kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFailure {
    pub kind: FailureKind,
    /// HTTP status, when `kind` is `Auth` or `HttpStatus`.
    pub http_status: Option<u16>,
    /// JSON-RPC error code, when `kind` is `RpcError` (-101, -106, -109, -100, -32601 ...).
    pub rpc_code: Option<i64>,
    /// Human-readable detail; never contains credentials.
    pub message: String,
}

impl ProbeFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            http_status: None,
            rpc_code: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The message is written for people and already names the status or code; the kind
        // is shown separately as `error_kind` wherever failures are reported.
        f.write_str(&self.message)
    }
}

/// One probe of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub node: String,
    /// When the probe started.
    pub at: Timestamp,
    /// Round-trip time of the batch in milliseconds (up to the failure, for failures).
    pub latency_ms: u64,
    pub outcome: Result<ChainStatus, ProbeFailure>,
}

impl Observation {
    pub fn status(&self) -> Option<&ChainStatus> {
        self.outcome.as_ref().ok()
    }

    pub fn failure(&self) -> Option<&ProbeFailure> {
        self.outcome.as_ref().err()
    }
}
