//! The JSON-RPC 2.0 endpoint of one simulated node (HTTP POST on `/`), answering in the exact
//! shapes of a neo-rs 0.14 node: same field names, same key order, `0x`-prefixed lower-case
//! hashes, errors as HTTP 200. Single requests and batches are supported.
//!
//! `GET /metrics` answers the node's Prometheus metrics in neo-rs's names (`neo_node_*`).
//!
//! The node's faults are applied here: `hang` (never answer), `slow` (delay), `garbage`
//! (non-JSON body), `huge` (50 MiB body), `lie` (inflated `getblockcount`), `peers`
//! (connection count); `freeze`/`fork` come through the node's view of the chain.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;

use crate::chain::{self, Block, Chain, NEXT_CONSENSUS};
use crate::network::{url_host, Shared};
use crate::node::NodeState;

/// `useragent` of every simulated node.
pub const USER_AGENT: &str = "/neo-ir-sim:0.1.0/";
/// Size of the filler in a `huge` answer: 50 MiB.
pub const HUGE_FILLER_BYTES: usize = 50 * 1024 * 1024;
/// `getblockcount` of a lying node exceeds the truth by this much.
pub const LIE_OFFSET: u64 = 1_000_000;
const FILLER_CHUNK: usize = 1024 * 1024;
/// `Content-Type` of `GET /metrics` (Prometheus text format 0.0.4).
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct NodeCtx {
    shared: Arc<Shared>,
    idx: usize,
}

/// The HTTP router of node `idx`.
pub(crate) fn router(shared: Arc<Shared>, idx: usize) -> Router {
    Router::new()
        .fallback(entry)
        .with_state(NodeCtx { shared, idx })
}

async fn entry(State(ctx): State<NodeCtx>, method: Method, uri: Uri, body: Bytes) -> Response {
    // hang: hold the request until the fault is cleared.
    loop {
        let changed = ctx.shared.changed.notified();
        if !ctx.node(|n| n.faults.hang) {
            break;
        }
        changed.await;
    }
    if let Some(ms) = ctx.node(|n| n.faults.slow_ms) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if method == Method::GET && uri.path() == "/metrics" {
        if ctx.node(|n| n.faults.garbage) {
            return garbage_response(&ctx);
        }
        return metrics_response(&ctx);
    }
    if method != Method::POST {
        return method_not_allowed();
    }
    let (garbage, huge) = ctx.node(|n| (n.faults.garbage, n.faults.huge));
    if garbage {
        return garbage_response(&ctx);
    }
    if huge {
        return huge_response(&body);
    }
    json_response(handle_body(&body, |method, params| {
        let mut guard = ctx.shared.state.lock().expect("state lock");
        let st = &mut *guard;
        let id = NetIdentity {
            shared: &ctx.shared,
            idx: ctx.idx,
        };
        dispatch(&id, &st.chain, &mut st.nodes[ctx.idx], method, params)
    }))
}

/// The answer of neo-rs to anything but a POST on its JSON-RPC port.
pub(crate) fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Used HTTP Method is not allowed. POST is required",
    )
        .into_response()
}

/// A JSON-RPC answer body as HTTP 200 (errors too, like neo-rs).
pub(crate) fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl NodeCtx {
    fn node<T>(&self, f: impl FnOnce(&NodeState) -> T) -> T {
        let st = self.shared.state.lock().expect("state lock");
        f(&st.nodes[self.idx])
    }
}

/// `GET /metrics`: the node's Prometheus text exposition (format 0.0.4), with the names, help
/// texts and types of a neo-rs 0.14 node (`neo_node_*`). Served on the JSON-RPC port (a real
/// neo-rs serves it on its own metrics port), after the node's `hang` and `slow` faults, so a
/// scraper sees what a prober sees: refused after a crash, no answer while hung, late while
/// slow, the frozen or crashed height, the `peers` count. `garbage` answers its garbage page;
/// `lie` and `huge` concern JSON-RPC only.
fn metrics_response(ctx: &NodeCtx) -> Response {
    let (height, peers) = {
        let st = ctx.shared.state.lock().expect("state lock");
        let node = &st.nodes[ctx.idx];
        let id = NetIdentity {
            shared: &ctx.shared,
            idx: ctx.idx,
        };
        (node.height(&st.chain), peer_count(&id, node))
    };
    metrics_text(ctx.shared.cfg.network, height, peers)
}

/// The Prometheus exposition of a node on `network` at `height` with `peers` connections.
pub(crate) fn metrics_text(network: u32, height: u64, peers: u32) -> Response {
    let version = USER_AGENT
        .trim_matches('/')
        .rsplit(':')
        .next()
        .unwrap_or_default();
    let body = format!(
        "# HELP neo_node_connected_peers Connected peers folded from network events\n\
         # TYPE neo_node_connected_peers gauge\n\
         neo_node_connected_peers {peers}\n\
         # HELP neo_node_info Static neo-node build and network labels\n\
         # TYPE neo_node_info gauge\n\
         neo_node_info{{network=\"0x{network:08X}\",version=\"{version}\"}} 1\n\
         # HELP neo_node_ledger_height Current persisted ledger height from the Ledger native contract\n\
         # TYPE neo_node_ledger_height gauge\n\
         neo_node_ledger_height {height}\n\
         # HELP neo_node_up Whether the node process is running\n\
         # TYPE neo_node_up gauge\n\
         neo_node_up 1\n",
    );
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response()
}

fn garbage_response(ctx: &NodeCtx) -> Response {
    let mut rng = StdRng::seed_from_u64(ctx.shared.cfg.seed ^ chain::now_ms());
    let mut body = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>\n".to_vec();
    let mut noise = [0u8; 64];
    rng.fill(&mut noise[..]);
    body.extend_from_slice(&noise);
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

fn huge_response(request: &[u8]) -> Response {
    static FILLER: OnceLock<Bytes> = OnceLock::new();
    let filler = FILLER.get_or_init(|| Bytes::from(vec![b'A'; FILLER_CHUNK]));
    let id = serde_json::from_slice::<Value>(request)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .filter(|id| id.is_number() || id.is_string())
        .unwrap_or(Value::from(1));
    let prefix = Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":""#));
    let suffix = Bytes::from_static(b"\"}");
    let mut chunks = vec![prefix];
    chunks.extend(std::iter::repeat_n(
        filler.clone(),
        HUGE_FILLER_BYTES / FILLER_CHUNK,
    ));
    chunks.push(suffix);
    let len: usize = chunks.iter().map(Bytes::len).sum();
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<Bytes, Infallible>));
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// A JSON-RPC error object (`data` only when set, like neo-rs).
#[derive(Debug, Serialize)]
pub(crate) struct RpcError {
    code: i64,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<String>,
}

impl RpcError {
    fn new(code: i64, message: &str) -> RpcError {
        RpcError {
            code,
            message: message.to_string(),
            data: None,
        }
    }

    fn invalid_params(detail: String) -> RpcError {
        RpcError {
            code: -32602,
            message: format!("Invalid params - {detail}"),
            data: Some(detail),
        }
    }

    fn parse_error() -> RpcError {
        RpcError::new(-32700, "Parse error")
    }

    fn invalid_request() -> RpcError {
        RpcError::new(-32600, "Invalid Request")
    }

    fn unknown_height() -> RpcError {
        RpcError::new(-109, "Unknown height")
    }

    fn unknown_block() -> RpcError {
        RpcError::new(-101, "Unknown block")
    }

    fn unknown_state_root() -> RpcError {
        RpcError::new(-106, "Unknown state root")
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serializable")
}

/// `{"jsonrpc":"2.0","id":…,"result":…}` or `{…,"error":{…}}`, in that key order.
fn envelope(id: &Value, outcome: Result<String, RpcError>) -> String {
    let id = to_json(id);
    match outcome {
        Ok(result) => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
        Err(e) => format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{}}}"#, to_json(&e)),
    }
}

/// Answers a request body (one call or a batch), each call answered by `call(method, params)`.
pub(crate) fn handle_body(
    body: &[u8],
    mut call: impl FnMut(&str, &[Value]) -> Result<String, RpcError>,
) -> String {
    match serde_json::from_slice::<Value>(body) {
        Err(_) => envelope(&Value::Null, Err(RpcError::parse_error())),
        Ok(Value::Array(items)) if items.is_empty() => {
            envelope(&Value::Null, Err(RpcError::invalid_request()))
        }
        Ok(Value::Array(items)) => {
            let parts: Vec<String> = items.iter().map(|it| handle_one(&mut call, it)).collect();
            format!("[{}]", parts.join(","))
        }
        Ok(v) => handle_one(&mut call, &v),
    }
}

fn handle_one(
    call: &mut impl FnMut(&str, &[Value]) -> Result<String, RpcError>,
    req: &Value,
) -> String {
    let Value::Object(obj) = req else {
        return envelope(&Value::Null, Err(RpcError::invalid_request()));
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    let Some(Value::String(method)) = obj.get("method") else {
        return envelope(&id, Err(RpcError::invalid_request()));
    };
    let params: &[Value] = match obj.get("params") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(a)) => a,
        Some(other) => {
            let detail = format!("params must be an array, got '{other}'");
            return envelope(&id, Err(RpcError::invalid_params(detail)));
        }
    };
    envelope(&id, call(method, params))
}

pub(crate) fn hash_hex(h: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(h))
}

pub(crate) fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// How a parameter looked, for error details: strings bare, anything else as JSON.
fn shown(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "null".to_string(),
    }
}

fn index_param(params: &[Value], method: &str) -> Result<u64, RpcError> {
    let p = params.first();
    match p {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        RpcError::invalid_params(format!("{method} expects block index, got '{}'", shown(p)))
    })
}

enum BlockRef {
    Index(u64),
    Hash([u8; 32]),
}

#[derive(Serialize)]
struct WitnessJson {
    invocation: String,
    verification: String,
}

#[derive(Serialize)]
struct HeaderJson {
    hash: String,
    size: usize,
    version: u32,
    previousblockhash: String,
    merkleroot: String,
    time: u64,
    nonce: String,
    index: u64,
    primary: u32,
    nextconsensus: &'static str,
    witnesses: Vec<WitnessJson>,
    confirmations: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nextblockhash: Option<String>,
}

#[derive(Serialize)]
struct RpcInfo {
    maxiteratorresultitems: u32,
    sessionenabled: bool,
}

#[derive(Serialize)]
struct Hardfork {
    name: &'static str,
    blockheight: u64,
}

#[derive(Serialize)]
struct ProtocolJson {
    addressversion: u8,
    network: u32,
    validatorscount: u32,
    msperblock: u64,
    maxtraceableblocks: u64,
    maxvaliduntilblockincrement: u64,
    maxtransactionsperblock: u32,
    memorypoolmaxtransactions: u32,
    initialgasdistribution: u64,
    hardforks: Vec<Hardfork>,
    standbycommittee: Vec<String>,
    seedlist: Vec<String>,
}

/// `getversion`; `protocol` is ours for a network node and the upstream's for a standalone one.
#[derive(Serialize)]
struct VersionJson<'a, P: Serialize> {
    tcpport: u16,
    nonce: u32,
    useragent: &'static str,
    rpc: RpcInfo,
    protocol: &'a P,
}

/// The `getversion` result of a node advertising P2P port `tcpport` and `nonce`.
pub(crate) fn version_json<P: Serialize>(tcpport: u16, nonce: u32, protocol: &P) -> String {
    to_json(&VersionJson {
        tcpport,
        nonce,
        useragent: USER_AGENT,
        rpc: RpcInfo {
            maxiteratorresultitems: 100,
            sessionenabled: false,
        },
        protocol,
    })
}

/// What differs between a node of a [`Shared`] network and a standalone node: who it is
/// (keys of the validators, `getversion`) and whom it is connected to.
pub(crate) trait Identity {
    /// Public keys of the validators (they make the block witnesses).
    fn keys(&self) -> &[[u8; 33]];
    /// `getconnectioncount` when no `peers` fault says otherwise.
    fn peer_count(&self) -> u32;
    /// The `count` connected peers of `getpeers`.
    fn peers(&self, count: usize) -> Vec<Peer>;
    /// The `getversion` result.
    fn version(&self) -> String;
}

/// A node of a simulated network.
struct NetIdentity<'a> {
    shared: &'a Shared,
    idx: usize,
}

impl Identity for NetIdentity<'_> {
    fn keys(&self) -> &[[u8; 33]] {
        &self.shared.keys
    }

    fn peer_count(&self) -> u32 {
        self.shared.specs.len().saturating_sub(1) as u32
    }

    fn peers(&self, count: usize) -> Vec<Peer> {
        let shared = self.shared;
        let address = url_host(shared.cfg.host).to_string();
        let others: Vec<u16> = shared
            .specs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.idx)
            .map(|(_, s)| s.tcpport)
            .collect();
        let own = shared.specs[self.idx].tcpport;
        (0..count)
            .map(|k| Peer {
                address: address.clone(),
                port: if others.is_empty() {
                    own.wrapping_add(1 + k as u16)
                } else {
                    others[k % others.len()]
                },
            })
            .collect()
    }

    fn version(&self) -> String {
        let shared = self.shared;
        let cfg = &shared.cfg;
        let spec = &shared.specs[self.idx];
        let address = url_host(cfg.host).to_string();
        version_json(
            spec.tcpport,
            spec.nonce,
            &ProtocolJson {
                addressversion: 53,
                network: cfg.network,
                validatorscount: cfg.validators,
                msperblock: cfg.msperblock,
                maxtraceableblocks: 2_102_400,
                maxvaliduntilblockincrement: 5760,
                maxtransactionsperblock: 5000,
                memorypoolmaxtransactions: 50_000,
                initialgasdistribution: 5_200_000_000_000_000,
                hardforks: HARDFORKS
                    .iter()
                    .map(|name| Hardfork {
                        name,
                        blockheight: 0,
                    })
                    .collect(),
                standbycommittee: shared.keys.iter().map(hex::encode).collect(),
                seedlist: shared
                    .specs
                    .iter()
                    .take(cfg.validators as usize)
                    .map(|s| format!("{address}:{}", s.tcpport))
                    .collect(),
            },
        )
    }
}

#[derive(Serialize)]
pub(crate) struct Peer {
    pub address: String,
    pub port: u16,
}

#[derive(Serialize)]
struct PeersJson {
    unconnected: Vec<Peer>,
    bad: Vec<Peer>,
    connected: Vec<Peer>,
}

#[derive(Serialize)]
struct StateHeightJson {
    localrootindex: u64,
    validatedrootindex: u64,
}

#[derive(Serialize)]
struct StateRootJson {
    version: u8,
    index: u64,
    roothash: String,
    witnesses: Vec<WitnessJson>,
}

const HARDFORKS: [&str; 7] = [
    "Aspidochelone",
    "Basilisk",
    "Cockatrice",
    "Domovoi",
    "Echidna",
    "Faun",
    "Gorgon",
];

/// Answers one call of a node with identity `id` whose view of `chain` is `node`.
pub(crate) fn dispatch(
    id: &dyn Identity,
    chain: &Chain,
    node: &mut NodeState,
    method: &str,
    params: &[Value],
) -> Result<String, RpcError> {
    let height = node.height(chain);
    match method {
        "getblockcount" => {
            let lie = if node.faults.lie { LIE_OFFSET } else { 0 };
            Ok(to_json(&(height + 1 + lie)))
        }
        "getbestblockhash" => {
            let b = node
                .block(chain, height)
                .ok_or_else(RpcError::unknown_block)?;
            Ok(to_json(&hash_hex(&b.hash)))
        }
        "getblockhash" => {
            let index = index_param(params, "getblockhash")?;
            let b = node
                .block(chain, index)
                .ok_or_else(RpcError::unknown_height)?;
            Ok(to_json(&hash_hex(&b.hash)))
        }
        "getblockheader" => {
            let p = params.first();
            let r = match p {
                Some(Value::Number(n)) => n.as_u64().map(BlockRef::Index),
                Some(Value::String(s)) => parse_hash(s)
                    .map(BlockRef::Hash)
                    .or_else(|| s.parse::<u64>().ok().map(BlockRef::Index)),
                _ => None,
            }
            .ok_or_else(|| {
                RpcError::invalid_params(format!(
                    "getblockheader expects block hash or index, got '{}'",
                    shown(p)
                ))
            })?;
            let verbose = match params.get(1) {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
                Some(other) => {
                    return Err(RpcError::invalid_params(format!(
                        "getblockheader expects verbose flag, got '{}'",
                        shown(Some(other))
                    )))
                }
            };
            let block = match r {
                BlockRef::Index(i) => node.block(chain, i).ok_or_else(RpcError::unknown_height)?,
                BlockRef::Hash(h) => {
                    let i = node.find(chain, &h).ok_or_else(RpcError::unknown_block)?;
                    node.block(chain, i).ok_or_else(RpcError::unknown_block)?
                }
            };
            let next = if block.index < height {
                node.block(chain, block.index + 1)
                    .map(|b| hash_hex(&b.hash))
            } else {
                None
            };
            Ok(header_json(&block, id.keys(), height, next, verbose))
        }
        "getconnectioncount" => Ok(to_json(&peer_count(id, node))),
        "getpeers" => Ok(to_json(&PeersJson {
            unconnected: Vec::new(),
            bad: Vec::new(),
            connected: id.peers(peer_count(id, node) as usize),
        })),
        "getversion" => Ok(id.version()),
        "getstateheight" => Ok(to_json(&StateHeightJson {
            localrootindex: height,
            validatedrootindex: match node.faults.bad_state_from {
                Some(from) => height.min(from.saturating_sub(1)),
                None => height,
            },
        })),
        "getstateroot" => {
            let index = index_param(params, "getstateroot")?;
            let b = node
                .block(chain, index)
                .ok_or_else(RpcError::unknown_state_root)?;
            Ok(to_json(&StateRootJson {
                version: 0,
                index,
                roothash: hash_hex(&match node.faults.bad_state_from {
                    // a diverged state: another root over the same block
                    Some(from) if index >= from => chain::state_root(&chain::state_root(&b.hash)),
                    _ => chain::state_root(&b.hash),
                }),
                witnesses: Vec::new(),
            }))
        }
        _ => Err(RpcError::new(-32601, "Method not found")),
    }
}

fn peer_count(id: &dyn Identity, node: &NodeState) -> u32 {
    node.faults.peers.unwrap_or_else(|| id.peer_count())
}

fn header_json(
    block: &Block,
    keys: &[[u8; 33]],
    height: u64,
    next: Option<String>,
    verbose: bool,
) -> String {
    let w = chain::witness(block, keys);
    let bytes = chain::encode_header(block, &w);
    if !verbose {
        return to_json(&base64(&bytes));
    }
    to_json(&HeaderJson {
        hash: hash_hex(&block.hash),
        size: bytes.len(),
        version: 0,
        previousblockhash: hash_hex(&block.prev),
        merkleroot: hash_hex(&[0u8; 32]),
        time: block.time,
        nonce: format!("{:016X}", block.nonce),
        index: block.index,
        primary: block.primary,
        nextconsensus: NEXT_CONSENSUS,
        witnesses: vec![WitnessJson {
            invocation: base64(&w.invocation),
            verification: base64(&w.verification),
        }],
        confirmations: height - block.index + 1,
        nextblockhash: next,
    })
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0x11]), "EQ==");
    }

    #[test]
    fn envelope_key_order() {
        assert_eq!(
            envelope(&Value::from(1), Ok("1".into())),
            r#"{"jsonrpc":"2.0","id":1,"result":1}"#
        );
        assert_eq!(
            envelope(&Value::Null, Err(RpcError::parse_error())),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#
        );
        let e =
            RpcError::invalid_params("getblockheader expects block hash or index, got 'zz'".into());
        assert_eq!(
            envelope(&Value::from(1), Err(e)),
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Invalid params - getblockheader expects block hash or index, got 'zz'","data":"getblockheader expects block hash or index, got 'zz'"}}"#
        );
    }

    #[test]
    fn hashes_parse() {
        let h = [0xabu8; 32];
        assert_eq!(parse_hash(&hash_hex(&h)), Some(h));
        assert_eq!(parse_hash("zz"), None);
    }
}
