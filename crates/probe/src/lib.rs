//! neo-ir's Neo N3 JSON-RPC client: probes each node once per round with one batched request
//! (`getblockcount`, `getbestblockhash`, `getconnectioncount`, cached `getversion`, and the
//! header at a height when asked), under a hard timeout, a body limit and bounded
//! concurrency, and reports an `Observation` with either a `ChainStatus` or a typed
//! `ProbeFailure`. Beside JSON-RPC it scrapes node telemetry ([`Prober::scrape`]): the
//! Prometheus `/metrics` body and, for neo-rs, `/healthz` and `/readyz`, into a `NodeMetrics`.
//!
//! - [`parse`]: pure parsing of what neo-cli (C#), neo-go and neo-rs send.
//! - [`client`]: the [`Prober`] (HTTP, limits, version cache, failure classification).
//! - `link`: each `http` node's own keep-alive connection for the probe, which is also
//!   the crash sentinel ([`Prober::connection_closed`]).
//! - [`metrics`]: a tolerant Prometheus text parser, the values neo-ir reads, the scrape.
//! - [`health`]: neo-rs `/healthz` and `/readyz`.
//! - [`error`]: [`ProbeError`] and its mapping onto `FailureKind`.

pub mod client;
pub mod error;
pub mod health;
mod link;
pub mod metrics;
pub mod parse;

pub use client::{redact_url, BasicAuth, Headers, NodeTarget, ProbeConfig, Prober};
pub use error::ProbeError;
pub use health::{health_url, healthz_ok, readyz_ok};
pub use metrics::{metrics_from, node_metrics, parse_exposition, Exposition, Family, Sample};
pub use parse::{
    parse_answers, parse_response, Json, ParseError, Peer, Peers, RpcError, RpcId, RpcResponse,
    RpcResponses, StateHeight, StateRoot, Witness,
};
