//! Pure parsing of Neo N3 JSON-RPC answers: the response envelope (single or batch, numeric
//! or string ids, results in any order) and the typed results neo-ir reads (`getversion`,
//! `getblockheader` verbose, `getblockcount`, `getbestblockhash`, `getconnectioncount`,
//! `getstateroot`, `getstateheight`, `getpeers`).
//!
//! No I/O here: every function takes bytes or JSON, so each shape that neo-cli (C#), neo-go
//! and neo-rs really send is checked by a unit test against the captures in
//! `tests/fixtures/`.
//!
//! Two readings of one envelope: [`parse_answers`] leaves each result as raw JSON text
//! borrowed from the body (the probe's path: thousands of nodes a second, so no tree of
//! `Value`s is built and dropped per answer), and [`parse_response`] turns those into
//! `Value`s (the rare calls and the tests). The per-probe parsers ([`parse_block_count`],
//! [`parse_hash`], [`parse_connection_count`], [`parse_header`]) read either, through
//! [`Json`].

use std::borrow::Cow;
use std::fmt;

use neo_ir_core::{HeaderInfo, NodeVersion};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// JSON a parser can read: a parsed `Value`, or the raw text of one answer's result.
pub trait Json {
    /// The JSON text.
    fn text(&self) -> Cow<'_, str>;
}

impl Json for Value {
    fn text(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

impl Json for RawValue {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.get())
    }
}

/// What kind of JSON value `text` (valid JSON) is, from its first character.
fn kind_of(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// Longest piece of node-provided text kept in an error message.
const MAX_DETAIL: usize = 240;

/// A JSON-RPC `error` object as a node sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// -32700/-32600/-32601/-32602/-32603, or Neo's own: -101 unknown block, -106 unknown
    /// state root, -109 unknown height, -100 (old C#, any unknown item), -600/-400 access denied.
    pub code: i64,
    pub message: String,
    /// neo-go and neo-rs keep the detail here; old C# put a .NET stack trace here.
    pub data: Option<Value>,
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JSON-RPC error {}: {}", self.code, clip(&self.message))?;
        if let Some(Value::String(d)) = &self.data {
            // neo-cli folds `data` into the message already ("Method not found - foo").
            if !d.is_empty() && !self.message.contains(d.as_str()) {
                write!(f, " ({})", clip(d))?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for RpcError {}

/// The body was not a JSON-RPC answer of the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("unexpected shape: {0}")]
    Shape(String),
    #[error("no answer with id {0} in the response")]
    MissingId(u64),
    #[error("several answers with id {0} in the response")]
    DuplicateId(u64),
}

fn shape(msg: impl Into<String>) -> ParseError {
    ParseError::Shape(msg.into())
}

/// The `id` of one answer. Servers echo what was sent, but some docs show `"id": "1"` for a
/// request sent with `1`, so a numeric request id matches both forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcId {
    Number(i64),
    String(String),
    /// `null` (or absent): the server could not read the request (-32700, -32600).
    Null,
}

impl RpcId {
    fn from_raw(v: Option<&RawValue>) -> Result<Self, ParseError> {
        let Some(text) = v.map(RawValue::get) else {
            return Ok(RpcId::Null);
        };
        match kind_of(text) {
            "null" => Ok(RpcId::Null),
            "string" => serde_json::from_str(text)
                .map(RpcId::String)
                .map_err(|e| shape(format!("id: {e}"))),
            "number" => serde_json::from_str(text)
                .map(RpcId::Number)
                .map_err(|_| shape(format!("id {} is not an integer", clip(text)))),
            other => Err(shape(format!("id of type {other}"))),
        }
    }

    /// Whether this answer id belongs to the request id `id`.
    pub fn matches(&self, id: u64) -> bool {
        match self {
            RpcId::Number(n) => u64::try_from(*n).is_ok_and(|n| n == id),
            RpcId::String(s) => s.trim() == id.to_string(),
            RpcId::Null => false,
        }
    }
}

/// One answer of a (possibly batched) response; the result is a `Value`, or the raw JSON
/// text borrowed from the body ([`parse_answers`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcResponse<R = Value> {
    pub id: RpcId,
    pub outcome: Result<R, RpcError>,
}

/// Every answer of one response body, in the order the server sent them.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcResponses<R = Value> {
    pub responses: Vec<RpcResponse<R>>,
    /// The body was a JSON array.
    pub batch: bool,
}

impl<R: Clone> RpcResponses<R> {
    /// The answer for request id `id`, if exactly one has it.
    pub fn find(&self, id: u64) -> Result<Option<&RpcResponse<R>>, ParseError> {
        let mut found = None;
        for r in self.responses.iter().filter(|r| r.id.matches(id)) {
            if found.is_some() {
                return Err(ParseError::DuplicateId(id));
            }
            found = Some(r);
        }
        Ok(found)
    }

    /// An error with a `null` id: the server rejected the whole request (parse error,
    /// invalid request, or a server that does not take batches).
    pub fn null_id_error(&self) -> Option<&RpcError> {
        self.responses
            .iter()
            .filter(|r| r.id == RpcId::Null)
            .find_map(|r| r.outcome.as_ref().err())
    }

    /// The outcome of each request id, in the order of `ids`. A request id without an answer
    /// takes the request-wide (`null` id) error when there is one; otherwise the response is
    /// malformed.
    pub fn results_for(&self, ids: &[u64]) -> Result<Vec<Result<R, RpcError>>, ParseError> {
        ids.iter()
            .map(|&id| match self.find(id)? {
                Some(r) => Ok(r.outcome.clone()),
                None => match self.null_id_error() {
                    Some(e) => Ok(Err(e.clone())),
                    None => Err(ParseError::MissingId(id)),
                },
            })
            .collect()
    }
}

/// Parse a JSON-RPC response body: one answer object, or a batch (array) of them.
pub fn parse_response(body: &[u8]) -> Result<RpcResponses, ParseError> {
    let raw = parse_answers(body)?;
    let responses = raw
        .responses
        .into_iter()
        .map(|r| {
            let outcome = match r.outcome {
                Ok(v) => Ok(serde_json::from_str(v.get()).map_err(|e| not_json(e, body))?),
                Err(e) => Err(e),
            };
            Ok(RpcResponse { id: r.id, outcome })
        })
        .collect::<Result<Vec<_>, ParseError>>()?;
    Ok(RpcResponses {
        responses,
        batch: raw.batch,
    })
}

/// Parse the envelope of a response body (one answer object or a batch of them), leaving
/// each result as raw JSON text borrowed from `body`.
pub fn parse_answers(body: &[u8]) -> Result<RpcResponses<&RawValue>, ParseError> {
    let top: &RawValue = serde_json::from_slice(body).map_err(|e| not_json(e, body))?;
    if kind_of(top.get()) == "array" {
        let items: Vec<&RawValue> =
            serde_json::from_str(top.get()).map_err(|e| not_json(e, body))?;
        if items.is_empty() {
            return Err(shape("empty batch"));
        }
        let responses = items
            .into_iter()
            .map(parse_one)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RpcResponses {
            responses,
            batch: true,
        })
    } else {
        Ok(RpcResponses {
            responses: vec![parse_one(top)?],
            batch: false,
        })
    }
}

fn not_json(e: serde_json::Error, body: &[u8]) -> ParseError {
    let start = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
    ParseError::NotJson(format!("{e} (body starts {:?})", clip(&start)))
}

/// The members of one answer object neo-ir reads, each kept as raw text when present
/// (`null` included, so `"result": null` is a result and `"error": null` is no error).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

fn parse_one(v: &RawValue) -> Result<RpcResponse<&RawValue>, ParseError> {
    let kind = kind_of(v.get());
    if kind != "object" {
        return Err(shape(format!("answer is a {kind}, not an object")));
    }
    let env: Envelope<'_> =
        serde_json::from_str(v.get()).map_err(|e| shape(format!("answer: {e}")))?;
    let id = RpcId::from_raw(env.id)?;
    let outcome = match (env.error, env.result) {
        (Some(e), _) if kind_of(e.get()) != "null" => {
            let e: Value =
                serde_json::from_str(e.get()).map_err(|e| shape(format!("`error`: {e}")))?;
            Err(parse_error_object(&e)?)
        }
        (_, Some(r)) => Ok(r),
        _ => return Err(shape("answer has neither `result` nor `error`")),
    };
    Ok(RpcResponse { id, outcome })
}

fn parse_error_object(e: &Value) -> Result<RpcError, ParseError> {
    let obj = e
        .as_object()
        .ok_or_else(|| shape(format!("`error` is a {}", type_name(e))))?;
    let code = obj
        .get("code")
        .and_then(Value::as_i64)
        .ok_or_else(|| shape("`error.code` is missing or not an integer"))?;
    let message = match obj.get("message") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let data = obj.get("data").filter(|d| !d.is_null()).cloned();
    Ok(RpcError {
        code,
        message,
        data,
    })
}

/// `getblockcount`: the number of blocks (height + 1).
pub fn parse_block_count(v: &(impl Json + ?Sized)) -> Result<u64, ParseError> {
    let text = v.text();
    serde_json::from_str(&text).map_err(|_| {
        shape(format!(
            "getblockcount result {} is not a non-negative integer",
            clip(&text)
        ))
    })
}

/// A 256-bit hash as Neo prints it: `0x` and 64 hex digits. Returned in lower case so that
/// hashes from different implementations compare equal.
pub fn parse_hash(v: &(impl Json + ?Sized)) -> Result<String, ParseError> {
    let text = v.text();
    let s: Cow<'_, str> = serde_json::from_str(&text)
        .map_err(|_| shape(format!("hash is a {}, not a string", kind_of(&text))))?;
    hash_from_str(&s)
}

fn hash_from_str(s: &str) -> Result<String, ParseError> {
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(|| shape(format!("hash {:?} does not start with 0x", clip(s))))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(shape(format!("hash {:?} is not 64 hex digits", clip(s))));
    }
    Ok(format!("0x{}", hex.to_ascii_lowercase()))
}

/// `getconnectioncount`.
pub fn parse_connection_count(v: &(impl Json + ?Sized)) -> Result<u32, ParseError> {
    let text = v.text();
    serde_json::from_str(&text).map_err(|_| {
        shape(format!(
            "getconnectioncount result {} is not a count",
            clip(&text)
        ))
    })
}

/// `getversion`. Reads `protocol.network` (current nodes) or the top-level `network` (neo-go
/// before 0.98 and the first N3 C# releases). `msperblock` and `validatorscount` of 0 (test
/// data, not a real network) are reported as unknown (`None`), since both are used as
/// divisors and timers downstream.
pub fn parse_version(v: &Value) -> Result<NodeVersion, ParseError> {
    let obj = object(v, "getversion result")?;
    let user_agent = match obj.get("useragent") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(shape("getversion result has no `useragent` string")),
    };
    let protocol = match obj.get("protocol") {
        None | Some(Value::Null) => None,
        Some(p) => Some(object(p, "getversion `protocol`")?),
    };
    let from_protocol = |key: &str| -> Result<Option<u64>, ParseError> {
        match protocol {
            Some(p) => opt_u64(p, key),
            None => Ok(None),
        }
    };
    let network = match from_protocol("network")? {
        Some(n) => Some(n),
        None => opt_u64(obj, "network")?,
    };
    let network = network
        .map(|n| u32::try_from(n).map_err(|_| shape(format!("network magic {n} exceeds 32 bits"))))
        .transpose()?;
    let msperblock = from_protocol("msperblock")?.filter(|&n| n > 0);
    let validators_count = from_protocol("validatorscount")?
        .filter(|&n| n > 0)
        .map(|n| u32::try_from(n).map_err(|_| shape(format!("validatorscount {n} is too large"))))
        .transpose()?;
    let tcp_port = opt_u64(obj, "tcpport")?
        .map(|n| u16::try_from(n).map_err(|_| shape(format!("tcpport {n} is not a port"))))
        .transpose()?;
    let nonce = opt_u64(obj, "nonce")?;
    Ok(NodeVersion {
        user_agent,
        network,
        msperblock,
        validators_count,
        tcp_port,
        nonce,
    })
}

/// The members of a verbose header neo-ir reads; the rest (witnesses, merkle root, ...) is
/// skipped without being built.
#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    hash: Cow<'a, str>,
    #[serde(borrow)]
    previousblockhash: Cow<'a, str>,
    index: u64,
    time: u64,
    #[serde(default)]
    primary: Option<u32>,
    #[serde(borrow)]
    nextconsensus: Cow<'a, str>,
}

/// `getblockheader [h, true]` (verbose). `time` is in milliseconds; `primary` is absent from
/// some mocks and old docs.
pub fn parse_header(v: &(impl Json + ?Sized)) -> Result<HeaderInfo, ParseError> {
    let text = v.text();
    let kind = kind_of(&text);
    if kind != "object" {
        return Err(shape(format!(
            "getblockheader result is a {kind}, not an object"
        )));
    }
    let h: RawHeader<'_> =
        serde_json::from_str(&text).map_err(|e| shape(format!("getblockheader result: {e}")))?;
    Ok(HeaderInfo {
        hash: hash_from_str(&h.hash)?,
        index: h.index,
        time_ms: h.time,
        primary: h.primary,
        next_consensus: h.nextconsensus.into_owned(),
        previous_hash: hash_from_str(&h.previousblockhash)?,
    })
}

/// `getstateroot <index>` (StateService).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StateRoot {
    pub version: u8,
    pub index: u64,
    #[serde(rename = "roothash")]
    pub root_hash: String,
    #[serde(default)]
    pub witnesses: Vec<Witness>,
}

/// A witness (invocation and verification scripts, base64).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Witness {
    pub invocation: String,
    pub verification: String,
}

/// `getstateheight` (StateService). Either index is `null` while the service has none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StateHeight {
    #[serde(rename = "localrootindex", default)]
    pub local_root_index: Option<u64>,
    #[serde(rename = "validatedrootindex", default)]
    pub validated_root_index: Option<u64>,
}

/// `getpeers`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Peers {
    #[serde(default)]
    pub unconnected: Vec<Peer>,
    #[serde(default)]
    pub bad: Vec<Peer>,
    #[serde(default)]
    pub connected: Vec<Peer>,
}

/// One peer of `getpeers`. neo-go adds `useragent` and `lastknownheight` on connected peers;
/// C# prints IPv4 addresses in IPv4-mapped IPv6 form (`::ffff:1.2.3.4`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Peer {
    pub address: String,
    pub port: u16,
    #[serde(rename = "useragent", default)]
    pub user_agent: Option<String>,
    #[serde(rename = "lastknownheight", default)]
    pub last_known_height: Option<u64>,
}

/// `getstateroot`; the root hash is checked and lower-cased like every other hash.
pub fn parse_state_root(v: &Value) -> Result<StateRoot, ParseError> {
    let mut root: StateRoot = typed(v, "getstateroot")?;
    root.root_hash = parse_hash(&Value::String(root.root_hash))?;
    Ok(root)
}

/// `getstateheight`.
pub fn parse_state_height(v: &Value) -> Result<StateHeight, ParseError> {
    typed(v, "getstateheight")
}

/// `getpeers`.
pub fn parse_peers(v: &Value) -> Result<Peers, ParseError> {
    typed(v, "getpeers")
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> Result<T, ParseError> {
    T::deserialize(v).map_err(|e| shape(format!("{what} result: {e}")))
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ParseError> {
    v.as_object()
        .ok_or_else(|| shape(format!("{what} is a {}, not an object", type_name(v))))
}

/// An optional unsigned integer field: absent or `null` is `None`, anything but an unsigned
/// integer is an error.
fn opt_u64(obj: &Map<String, Value>, key: &str) -> Result<Option<u64>, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            shape(format!(
                "`{key}` is {}, not an unsigned integer",
                clip(&v.to_string())
            ))
        }),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Node-provided text, shortened and stripped of control characters before it goes into a
/// message or a log line.
pub(crate) fn clip(s: &str) -> String {
    neo_ir_core::text::clip(s, MAX_DETAIL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");

    fn path(rel: &str) -> PathBuf {
        Path::new(FIXTURES).join(rel)
    }

    fn body(rel: &str) -> Vec<u8> {
        std::fs::read(path(rel)).unwrap_or_else(|e| panic!("reading fixture {rel}: {e}"))
    }

    /// The single answer of a fixture, checked to carry id 1 (or "1").
    fn single(rel: &str) -> Result<Value, RpcError> {
        let r = parse_response(&body(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(!r.batch, "{rel}");
        assert_eq!(r.responses.len(), 1, "{rel}");
        let mut out = r.results_for(&[1]).unwrap_or_else(|e| panic!("{rel}: {e}"));
        out.pop().unwrap()
    }

    fn ok(rel: &str) -> Value {
        single(rel).unwrap_or_else(|e| panic!("{rel}: expected a result, got {e}"))
    }

    fn err(rel: &str) -> RpcError {
        match single(rel) {
            Err(e) => e,
            Ok(v) => panic!("{rel}: expected an error, got {v}"),
        }
    }

    /// Every JSON-RPC body under tests/fixtures is parsed by a test below; this list is what
    /// `every_rpc_fixture_is_covered` compares against the directory.
    const RPC_FIXTURES: &[&str] = &[
        "csharp/error-invalid-request-3.3.1.json",
        "csharp/error-sendrawtransaction-legacy.json",
        "csharp/getbestblockhash.json",
        "csharp/getblockcount.json",
        "csharp/getblockhash.json",
        "csharp/getblockheader-verbose-docs.json",
        "csharp/getblockheader-verbose.json",
        "csharp/getconnectioncount.json",
        "csharp/getpeers-docs.json",
        "csharp/getpeers.json",
        "csharp/getstateheight-docs.json",
        "csharp/getstateroot-docs.json",
        "csharp/getversion-docs.json",
        "csharp/getversion-testcases.json",
        "mainnet-getversion/getversion-csharp.json",
        "mainnet-getversion/getversion-local.json",
        "mainnet-getversion/getversion-neogo.json",
        "neo-go/error-unknown-block.json",
        "neo-go/getbestblockhash.json",
        "neo-go/getblockcount.json",
        "neo-go/getblockhash.json",
        "neo-go/getblockheader-verbose.json",
        "neo-go/getconnectioncount.json",
        "neo-go/getpeers.json",
        "neo-go/getstateheight.json",
        "neo-go/getstateroot.json",
        "neo-go/getversion-clienttest.json",
        "neo-go/getversion-docs.json",
        "neo-rs-0.14-testnet-genesis/extra-rpc-batch.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-getblockhash-out-of-range.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-getblockheader-bad-param.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-getindexerstatus.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-getrawmempool.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-getstateheight.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-getstateroot-1-missing.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-gzip-accepted.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-http-get-root.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-id-string.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-listservices.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-malformed-json.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-no-content-type.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-text-plain.txt",
        "neo-rs-0.14-testnet-genesis/extra-rpc-unknown-method.txt",
        "neo-rs-0.14-testnet-genesis/rpc-getbestblockhash.json",
        "neo-rs-0.14-testnet-genesis/rpc-getblockcount.json",
        "neo-rs-0.14-testnet-genesis/rpc-getblockhash-0.json",
        "neo-rs-0.14-testnet-genesis/rpc-getblockheader-0-verbose.json",
        "neo-rs-0.14-testnet-genesis/rpc-getconnectioncount.json",
        "neo-rs-0.14-testnet-genesis/rpc-getpeers.json",
        "neo-rs-0.14-testnet-genesis/rpc-getstateroot-0.json",
        "neo-rs-0.14-testnet-genesis/rpc-getversion.json",
    ];

    #[test]
    fn every_rpc_fixture_is_covered() {
        // JSON-RPC bodies: every .json file, and the neo-rs `extra-rpc-*` captures. Metrics
        // and telemetry (`get-*`, `*metric*`) are not JSON-RPC.
        let mut found = Vec::new();
        for dir in std::fs::read_dir(FIXTURES).unwrap() {
            let dir = dir.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&dir).unwrap() {
                let f = f.unwrap().path();
                let name = f.file_name().unwrap().to_str().unwrap().to_string();
                if name.ends_with(".json") || name.starts_with("extra-rpc-") {
                    let d = dir.file_name().unwrap().to_str().unwrap();
                    found.push(format!("{d}/{name}"));
                }
            }
        }
        found.sort();
        let mut listed: Vec<String> = RPC_FIXTURES.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(found, listed, "a JSON-RPC fixture was added or removed");
        // Every one of them is a JSON-RPC answer except the plain-text 405 body.
        for rel in RPC_FIXTURES {
            let r = parse_response(&body(rel));
            if rel.ends_with("extra-rpc-http-get-root.txt") {
                assert!(matches!(r, Err(ParseError::NotJson(_))), "{rel}: {r:?}");
            } else {
                assert!(r.is_ok(), "{rel}: {r:?}");
            }
        }
    }

    // ---- getblockcount / getbestblockhash / getblockhash / getconnectioncount ----

    #[test]
    fn block_counts() {
        let cases = [
            ("csharp/getblockcount.json", 2691),
            ("neo-go/getblockcount.json", 991991),
            ("neo-rs-0.14-testnet-genesis/rpc-getblockcount.json", 1),
            // neo-rs captures sent without or with another Content-Type: a normal answer.
            (
                "neo-rs-0.14-testnet-genesis/extra-rpc-no-content-type.txt",
                1,
            ),
            ("neo-rs-0.14-testnet-genesis/extra-rpc-text-plain.txt", 1),
        ];
        for (rel, want) in cases {
            assert_eq!(parse_block_count(&ok(rel)).unwrap(), want, "{rel}");
        }
    }

    #[test]
    fn hashes() {
        let cases = [
            (
                "csharp/getbestblockhash.json",
                "0x530de76326a8662d1b730ba4fbdf011051eabd142015587e846da42376adf35f",
            ),
            (
                "csharp/getblockhash.json",
                "0xe191fe1aea732c3e23f20af8a95e09f95891176f8064a2fce8571d51f80619a8",
            ),
            (
                "neo-go/getbestblockhash.json",
                "0x773dd2dae4a9c9275290f89b56e67d7363ea4826dfd4fc13cc01cf73a44b0d0e",
            ),
            (
                "neo-go/getblockhash.json",
                "0x4c1e879872344349067c3b1a30781eeb4f9040d3795db7922f513f6f9660b9b2",
            ),
            (
                "neo-rs-0.14-testnet-genesis/rpc-getbestblockhash.json",
                "0x9d3276785e7306daf59a3f3b9e31912c095598bbfb8a4476b821b0e59be4c57a",
            ),
            (
                "neo-rs-0.14-testnet-genesis/rpc-getblockhash-0.json",
                "0x9d3276785e7306daf59a3f3b9e31912c095598bbfb8a4476b821b0e59be4c57a",
            ),
        ];
        for (rel, want) in cases {
            assert_eq!(parse_hash(&ok(rel)).unwrap(), want, "{rel}");
        }
    }

    #[test]
    fn hash_validation() {
        let upper = format!("0x{}", "AB".repeat(32));
        assert_eq!(
            parse_hash(&Value::String(upper)).unwrap(),
            format!("0x{}", "ab".repeat(32))
        );
        for bad in [
            Value::String("ab".repeat(32)),
            Value::String("0x1234".into()),
            Value::String(format!("0x{}", "zz".repeat(32))),
            Value::from(5),
            Value::Null,
        ] {
            assert!(
                matches!(parse_hash(&bad), Err(ParseError::Shape(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn connection_counts() {
        let cases = [
            ("csharp/getconnectioncount.json", 0),
            ("neo-go/getconnectioncount.json", 10),
            ("neo-rs-0.14-testnet-genesis/rpc-getconnectioncount.json", 0),
        ];
        for (rel, want) in cases {
            assert_eq!(parse_connection_count(&ok(rel)).unwrap(), want, "{rel}");
        }
        assert!(parse_connection_count(&Value::from(-1)).is_err());
        assert!(parse_connection_count(&Value::from("3")).is_err());
    }

    #[test]
    fn block_count_rejects_wrong_types() {
        for bad in [
            Value::from(-1),
            Value::from(1.5),
            Value::from("12"),
            Value::Null,
        ] {
            assert!(parse_block_count(&bad).is_err(), "{bad}");
        }
    }

    // ---- getversion ----

    #[test]
    fn version_mainnet_three_implementations() {
        let cs = parse_version(&ok("mainnet-getversion/getversion-csharp.json")).unwrap();
        assert_eq!(
            cs,
            NodeVersion {
                user_agent: "/Neo:3.10.1/".into(),
                network: Some(860833102),
                msperblock: Some(15000),
                validators_count: Some(7),
                tcp_port: Some(10333),
                nonce: Some(1816263218),
            }
        );
        let go = parse_version(&ok("mainnet-getversion/getversion-neogo.json")).unwrap();
        assert_eq!(go.user_agent, "/NEO-GO:0.120.0/");
        assert_eq!(go.network, Some(860833102));
        assert_eq!(go.msperblock, Some(15000));
        assert_eq!(go.validators_count, Some(7));
        assert_eq!(go.tcp_port, Some(10333));
        assert_eq!(go.nonce, Some(905763384));
        let rs = parse_version(&ok("mainnet-getversion/getversion-local.json")).unwrap();
        assert_eq!(rs.user_agent, "/neo-rs:0.10.0/");
        assert_eq!(rs.tcp_port, Some(40333));
        assert_eq!(rs.nonce, Some(3644331859));
        assert_eq!(rs.validators_count, Some(7));
    }

    #[test]
    fn version_neo_rs_testnet() {
        for rel in [
            "neo-rs-0.14-testnet-genesis/rpc-getversion.json",
            "neo-rs-0.14-testnet-genesis/extra-rpc-gzip-accepted.txt",
        ] {
            let v = parse_version(&ok(rel)).unwrap();
            assert_eq!(
                v,
                NodeVersion {
                    user_agent: "/neo-rs:0.14.0/".into(),
                    network: Some(894710606),
                    msperblock: Some(3000),
                    validators_count: Some(7),
                    tcp_port: Some(20333),
                    nonce: Some(1067360168),
                },
                "{rel}"
            );
        }
    }

    #[test]
    fn version_csharp_docs_and_testcases() {
        let docs = parse_version(&ok("csharp/getversion-docs.json")).unwrap();
        assert_eq!(docs.user_agent, "/Neo:3.0.3/");
        assert_eq!(docs.network, Some(860833102));
        assert_eq!(docs.msperblock, Some(15000));
        assert_eq!(docs.validators_count, Some(7));
        assert_eq!(docs.nonce, Some(1930156121));

        // Test data: top-level and protocol network 0, validatorscount 0.
        let tc = parse_version(&ok("csharp/getversion-testcases.json")).unwrap();
        assert_eq!(tc.user_agent, "/Neo:3.0.0-rc1/");
        assert_eq!(tc.network, Some(0));
        assert_eq!(tc.msperblock, Some(15000));
        assert_eq!(tc.validators_count, None, "0 validators means unknown");
        assert_eq!(tc.tcp_port, Some(20333));
        assert_eq!(tc.nonce, Some(592651621));
    }

    #[test]
    fn version_neo_go_mock_and_legacy() {
        let mock = parse_version(&ok("neo-go/getversion-clienttest.json")).unwrap();
        assert_eq!(mock.user_agent, "/NEO-GO:0.73.1-pre-273-ge381358/");
        assert_eq!(mock.network, Some(42));
        assert_eq!(mock.msperblock, None);
        assert_eq!(mock.validators_count, None);
        assert_eq!(mock.tcp_port, Some(20332));
        assert_eq!(mock.nonce, Some(2153672787));

        // neo-go 0.97: `network` at the top level, no `protocol`.
        let legacy = parse_version(&ok("neo-go/getversion-docs.json")).unwrap();
        assert_eq!(
            legacy,
            NodeVersion {
                user_agent: "/NEO-GO:0.97.2/".into(),
                network: Some(860833102),
                msperblock: None,
                validators_count: None,
                tcp_port: Some(10333),
                nonce: Some(105745208),
            }
        );
    }

    #[test]
    fn version_rejects_wrong_shapes() {
        let cases = [
            serde_json::json!(5),
            serde_json::json!({"tcpport": 1}),
            serde_json::json!({"useragent": "/x/", "tcpport": 70000}),
            serde_json::json!({"useragent": "/x/", "protocol": {"network": "860833102"}}),
            serde_json::json!({"useragent": "/x/", "protocol": 1}),
            serde_json::json!({"useragent": "/x/", "network": 8_589_934_592u64}),
        ];
        for c in cases {
            assert!(parse_version(&c).is_err(), "{c}");
        }
    }

    // ---- getblockheader ----

    #[test]
    fn header_neo_rs_genesis() {
        let h = parse_header(&ok(
            "neo-rs-0.14-testnet-genesis/rpc-getblockheader-0-verbose.json",
        ))
        .unwrap();
        assert_eq!(
            h,
            HeaderInfo {
                hash: "0x9d3276785e7306daf59a3f3b9e31912c095598bbfb8a4476b821b0e59be4c57a".into(),
                index: 0,
                time_ms: 1468595301000,
                primary: Some(0),
                next_consensus: "NZHf1NJvz1tvELGLWZjhpb3NqZJFFUYpxT".into(),
                previous_hash: format!("0x{}", "0".repeat(64)),
            }
        );
    }

    #[test]
    fn header_csharp() {
        let h = parse_header(&ok("csharp/getblockheader-verbose.json")).unwrap();
        assert_eq!(
            h.hash,
            "0xbbf7e191d4947f8a4dc33477902dacd0b047e371a81c18a6df62fe0d541725f5"
        );
        assert_eq!(h.index, 0);
        assert_eq!(h.primary, Some(1));
        assert_eq!(h.time_ms, 1468595301000);
        assert_eq!(h.next_consensus, "NZs2zXSPuuv9ZF6TDGSWT1RBmE8rfGj7UW");

        // Docs body: no nonce, `primary` before `index`.
        let d = parse_header(&ok("csharp/getblockheader-verbose-docs.json")).unwrap();
        assert_eq!(d.index, 140);
        assert_eq!(d.primary, Some(0));
        assert_eq!(d.time_ms, 1612687482881);
        assert_eq!(
            d.previous_hash,
            "0x73377b6cfe14c30f3dc945ba537230e240d90201ca1959d0f61b9532d8d2df5a"
        );
        assert_eq!(d.next_consensus, "NgaiKFjurmNmiRzDRQGs44yzByXuSkdGPF");
    }

    #[test]
    fn header_neo_go_mock_without_primary() {
        let h = parse_header(&ok("neo-go/getblockheader-verbose.json")).unwrap();
        assert_eq!(
            h.hash,
            "0x88c1cbf68695f73fb7b7d185c0037ffebdf032327488ebe65e0533d269e7de9b"
        );
        assert_eq!(h.index, 1);
        assert_eq!(h.time_ms, 1626251469001);
        assert_eq!(h.primary, None);
        assert_eq!(
            h.previous_hash,
            "0x0f8fb4e17d2ab9f3097af75ca7fd16064160fb8043db94909e00dd4e257b9dc4"
        );
    }

    #[test]
    fn header_rejects_wrong_shapes() {
        let good = ok("csharp/getblockheader-verbose.json");
        for key in [
            "hash",
            "index",
            "time",
            "nextconsensus",
            "previousblockhash",
        ] {
            let mut v = good.clone();
            v.as_object_mut().unwrap().remove(key);
            assert!(parse_header(&v).is_err(), "without {key}");
        }
        let mut v = good.clone();
        v["time"] = Value::from("1468595301000");
        assert!(parse_header(&v).is_err());
        // The non-verbose answer is a base64 string.
        assert!(parse_header(&Value::from("AAAAAA==")).is_err());
    }

    // ---- state service and peers ----

    #[test]
    fn state_roots() {
        let go = parse_state_root(&ok("neo-go/getstateroot.json")).unwrap();
        assert_eq!(go.version, 0);
        assert_eq!(go.index, 5);
        assert_eq!(
            go.root_hash,
            "0x65d19151694321e70c6d184b37a2bcf7af4a2c60c099af332a4f7815e3670686"
        );
        assert!(go.witnesses.is_empty());
        let cs = parse_state_root(&ok("csharp/getstateroot-docs.json")).unwrap();
        assert_eq!(cs.index, 160);
        let rs =
            parse_state_root(&ok("neo-rs-0.14-testnet-genesis/rpc-getstateroot-0.json")).unwrap();
        assert_eq!(rs.index, 0);
        assert_eq!(
            rs.root_hash,
            "0x62fd8ff9b0543aea352257db5b00bbb01d1bc0d2cc665e1f24cf5de0d16ebc7b"
        );
        assert!(parse_state_root(&serde_json::json!({"index": 1})).is_err());
    }

    #[test]
    fn state_heights() {
        let go = parse_state_height(&ok("neo-go/getstateheight.json")).unwrap();
        assert_eq!(go.local_root_index, Some(11646));
        assert_eq!(go.validated_root_index, Some(11645));
        // Docs answer with the string id "1".
        let cs = parse_state_height(&ok("csharp/getstateheight-docs.json")).unwrap();
        assert_eq!(cs.local_root_index, Some(602));
        assert_eq!(cs.validated_root_index, Some(602));
        let rs = parse_state_height(&ok(
            "neo-rs-0.14-testnet-genesis/extra-rpc-getstateheight.txt",
        ))
        .unwrap();
        assert_eq!(rs.local_root_index, Some(0));
        assert_eq!(rs.validated_root_index, Some(0));
        let none = parse_state_height(
            &serde_json::json!({"localrootindex": 3, "validatedrootindex": null}),
        )
        .unwrap();
        assert_eq!(none.validated_root_index, None);
    }

    #[test]
    fn peers() {
        let go = parse_peers(&ok("neo-go/getpeers.json")).unwrap();
        assert_eq!(go.unconnected.len(), 1);
        assert_eq!(go.bad[0].port, 20332);
        assert_eq!(
            go.connected[0],
            Peer {
                address: "127.0.0.1".into(),
                port: 20335,
                user_agent: Some("/NEO-GO:0.106.2/".into()),
                last_known_height: Some(1000),
            }
        );
        let cs = parse_peers(&ok("csharp/getpeers.json")).unwrap();
        assert_eq!(cs.connected.len(), 2);
        assert_eq!(cs.connected[1].address, "::ffff:47.88.53.224");
        assert_eq!(cs.connected[1].user_agent, None);
        let docs = parse_peers(&ok("csharp/getpeers-docs.json")).unwrap();
        assert_eq!(docs.connected.len(), 2);
        assert!(docs.bad.is_empty() && docs.unconnected.is_empty());
        let rs = parse_peers(&ok("neo-rs-0.14-testnet-genesis/rpc-getpeers.json")).unwrap();
        assert_eq!(
            rs,
            Peers {
                unconnected: vec![],
                bad: vec![],
                connected: vec![]
            }
        );
    }

    // ---- other results seen on neo-rs ----

    #[test]
    fn other_neo_rs_results() {
        let status = ok("neo-rs-0.14-testnet-genesis/extra-rpc-getindexerstatus.txt");
        assert_eq!(status["synced"], Value::Bool(true));
        assert_eq!(status["indexedheight"], Value::from(0));
        let mempool = ok("neo-rs-0.14-testnet-genesis/extra-rpc-getrawmempool.txt");
        assert_eq!(mempool, serde_json::json!([]));
        let services = ok("neo-rs-0.14-testnet-genesis/extra-rpc-listservices.txt");
        let names: Vec<&str> = services
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"StateService"));
    }

    // ---- errors ----

    #[test]
    fn neo_go_unknown_block_keeps_data() {
        let e = err("neo-go/error-unknown-block.json");
        assert_eq!(e.code, -101);
        assert_eq!(e.message, "Unknown block");
        assert_eq!(e.data, Some(Value::from("key not found")));
        assert_eq!(
            e.to_string(),
            "JSON-RPC error -101: Unknown block (key not found)"
        );
    }

    #[test]
    fn csharp_errors() {
        // The id of this capture is 5, not 1.
        let r = parse_response(&body("csharp/error-invalid-request-3.3.1.json")).unwrap();
        assert!(matches!(r.results_for(&[1]), Err(ParseError::MissingId(1))));
        let e = r.results_for(&[5]).unwrap().pop().unwrap().unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str(), e.data),
            (-32600, "Invalid Request", None)
        );

        let legacy = err("csharp/error-sendrawtransaction-legacy.json");
        assert_eq!(legacy.code, -500);
        assert_eq!(legacy.message, "InsufficientFunds");
        let trace = legacy.data.as_ref().unwrap().as_str().unwrap();
        assert!(trace.contains("\r\n   at Neo."));
        // The stack trace is clipped and its line breaks removed in the message.
        let shown = legacy.to_string();
        assert!(!shown.contains('\r') && !shown.contains('\n'));
        assert!(shown.chars().count() < 320, "{shown}");
    }

    #[test]
    fn neo_rs_errors() {
        let cases = [
            (
                "extra-rpc-getblockhash-out-of-range.txt",
                -109,
                "Unknown height",
            ),
            (
                "extra-rpc-getstateroot-1-missing.txt",
                -106,
                "Unknown state root",
            ),
            ("extra-rpc-unknown-method.txt", -32601, "Method not found"),
        ];
        for (f, code, msg) in cases {
            let e = err(&format!("neo-rs-0.14-testnet-genesis/{f}"));
            assert_eq!(
                (e.code, e.message.as_str(), &e.data),
                (code, msg, &None),
                "{f}"
            );
        }
        let bad = err("neo-rs-0.14-testnet-genesis/extra-rpc-getblockheader-bad-param.txt");
        assert_eq!(bad.code, -32602);
        assert_eq!(
            bad.data,
            Some(Value::from(
                "getblockheader expects block hash or index, got 'zz'"
            ))
        );
        // neo-rs folds data into the message like neo-cli: shown once.
        assert_eq!(bad.to_string().matches("expects block hash").count(), 1);
    }

    #[test]
    fn parse_error_with_null_id_applies_to_every_request() {
        let r = parse_response(&body(
            "neo-rs-0.14-testnet-genesis/extra-rpc-malformed-json.txt",
        ))
        .unwrap();
        assert_eq!(r.responses[0].id, RpcId::Null);
        assert_eq!(r.null_id_error().unwrap().code, -32700);
        let out = r.results_for(&[1, 2, 3]).unwrap();
        assert_eq!(out.len(), 3);
        for o in out {
            assert_eq!(o.unwrap_err().code, -32700);
        }
    }

    #[test]
    fn string_ids() {
        // neo-rs echoes a string id as sent.
        let r =
            parse_response(&body("neo-rs-0.14-testnet-genesis/extra-rpc-id-string.txt")).unwrap();
        assert_eq!(r.responses[0].id, RpcId::String("abc".into()));
        assert_eq!(r.responses[0].outcome, Ok(Value::from(1)));
        assert!(matches!(r.results_for(&[1]), Err(ParseError::MissingId(1))));
        // C# docs: "1" answers the request id 1.
        assert_eq!(
            parse_response(&body("csharp/getstateheight-docs.json"))
                .unwrap()
                .responses[0]
                .id,
            RpcId::String("1".into())
        );
    }

    #[test]
    fn batch_capture() {
        let r = parse_response(&body("neo-rs-0.14-testnet-genesis/extra-rpc-batch.txt")).unwrap();
        assert!(r.batch);
        let out = r.results_for(&[2, 1]).unwrap();
        assert_eq!(out, vec![Ok(Value::from(0)), Ok(Value::from(1))]);
    }

    #[test]
    fn batch_out_of_order_mixed_ids_and_errors() {
        let b = br#"[
            {"jsonrpc":"2.0","id":"3","error":{"code":-32601,"message":"Method not found"}},
            {"jsonrpc":"2.0","id":1,"result":1234},
            {"jsonrpc":"2.0","id":2,"result":"0x9d3276785e7306daf59a3f3b9e31912c095598bbfb8a4476b821b0e59be4c57a"}
        ]"#;
        let r = parse_response(b).unwrap();
        let out = r.results_for(&[1, 2, 3]).unwrap();
        assert_eq!(out[0], Ok(Value::from(1234)));
        assert!(out[1].is_ok());
        assert_eq!(out[2].as_ref().unwrap_err().code, -32601);
        assert!(matches!(r.results_for(&[4]), Err(ParseError::MissingId(4))));
    }

    #[test]
    fn envelope_rejects_garbage() {
        let cases: &[(&[u8], &str)] = &[
            (b"<html>502 Bad Gateway</html>", "not json"),
            (b"", "empty"),
            (b"[]", "empty batch"),
            (b"42", "number"),
            (br#"{"jsonrpc":"2.0","id":1}"#, "no result/error"),
            (
                br#"{"jsonrpc":"2.0","id":1,"error":"boom"}"#,
                "error not object",
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"error":{"message":"x"}}"#,
                "error without code",
            ),
            (br#"{"jsonrpc":"2.0","id":[1],"result":1}"#, "id array"),
            (br#"[{"id":1,"result":1}, 7]"#, "batch item not object"),
        ];
        for (b, what) in cases {
            assert!(parse_response(b).is_err(), "{what}");
        }
        let dup = parse_response(br#"[{"id":1,"result":1},{"id":"1","result":2}]"#).unwrap();
        assert!(matches!(
            dup.results_for(&[1]),
            Err(ParseError::DuplicateId(1))
        ));
    }

    #[test]
    fn telemetry_bodies_are_not_rpc_answers() {
        for rel in [
            "neo-rs-0.14-testnet-genesis/get-healthz.txt",
            "neo-rs-0.14-testnet-genesis/get-readyz.txt",
        ] {
            assert!(
                matches!(parse_response(&body(rel)), Err(ParseError::Shape(_))),
                "{rel}"
            );
        }
    }

    #[test]
    fn error_null_with_result_is_a_result() {
        let r = parse_response(br#"{"jsonrpc":"2.0","id":1,"error":null,"result":7}"#).unwrap();
        assert_eq!(r.results_for(&[1]).unwrap(), vec![Ok(Value::from(7))]);
    }

    // ---------------------------------------------------------------------------------
    // Property tests: no input, however broken, makes the parsers panic.

    use proptest::prelude::*;

    /// Keys the parsers look for, so generated objects often hit the real code paths.
    const KEYS: &[&str] = &[
        "jsonrpc",
        "id",
        "result",
        "error",
        "code",
        "message",
        "data",
        "hash",
        "size",
        "version",
        "index",
        "time",
        "nonce",
        "primary",
        "nextconsensus",
        "previousblockhash",
        "merkleroot",
        "witnesses",
        "invocation",
        "verification",
        "confirmations",
        "nextblockhash",
        "useragent",
        "protocol",
        "network",
        "tcpport",
        "msperblock",
        "validatorscount",
        "roothash",
        "localrootindex",
        "validatedrootindex",
        "connected",
        "unconnected",
        "bad",
        "address",
        "port",
        "lastknownheight",
    ];

    fn arb_key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(KEYS).prop_map(str::to_string),
            1 => ".{0,8}",
        ]
    }

    /// Any JSON value, numbers and strings biased towards the edges the parsers check.
    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop_oneof![Just(0i64), Just(-1), Just(1), Just(-600), Just(-32601)]
                .prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
            "(0x)?[0-9a-fA-F]{62,66}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((arb_key(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Every typed parser, and the envelope, on `v` (results are ignored).
    fn parse_everything(v: &Value) {
        let _ = parse_block_count(v);
        let _ = parse_hash(v);
        let _ = parse_connection_count(v);
        let _ = parse_version(v);
        let _ = parse_header(v);
        let _ = parse_state_root(v);
        let _ = parse_state_height(v);
        let _ = parse_peers(v);
        let bytes = serde_json::to_vec(v).unwrap();
        if let Ok(r) = parse_response(&bytes) {
            let _ = r.results_for(&[1, 2, 3]);
            let _ = r.null_id_error();
            for resp in &r.responses {
                match &resp.outcome {
                    Ok(v) => {
                        let _ = parse_header(v);
                        let _ = parse_version(v);
                    }
                    Err(e) => {
                        let _ = e.to_string();
                    }
                }
            }
        }
    }

    /// The JSON pointer of every node of `v`, `v` itself first.
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    pointers(item, format!("{at}/{i}"), out);
                }
            }
            Value::Object(obj) => {
                for (k, item) in obj {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    pointers(item, format!("{at}/{k}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_response_never_panics_on_bytes(
            bytes in prop::collection::vec(any::<u8>(), 0..4096)
        ) {
            if let Ok(r) = parse_response(&bytes) {
                let _ = r.results_for(&[1, 2]);
            }
        }

        #[test]
        fn parsers_never_panic_on_any_json(v in arb_json()) {
            parse_everything(&v);
        }

        #[test]
        fn parsers_never_panic_on_wrong_envelopes(
            id in arb_json(),
            result in arb_json(),
            error in arb_json(),
            which in 0u8..4,
        ) {
            let mut one = serde_json::Map::new();
            one.insert("jsonrpc".into(), "2.0".into());
            one.insert("id".into(), id);
            if which & 1 == 1 {
                one.insert("result".into(), result);
            }
            if which & 2 == 2 {
                one.insert("error".into(), error);
            }
            let one = Value::Object(one);
            parse_everything(&one);
            parse_everything(&Value::Array(vec![one.clone(), one]));
        }

        /// A fixture with one node swapped for any value: structured, nearly right, wrong.
        #[test]
        fn parsers_never_panic_on_mutated_fixtures(
            fixture in prop::sample::select(RPC_FIXTURES),
            node in any::<prop::sample::Index>(),
            replacement in arb_json(),
        ) {
            let mut v: Value = match serde_json::from_slice(&body(fixture)) {
                Ok(v) => v,
                // The `extra-rpc-*` captures that are not JSON bodies.
                Err(_) => return Ok(()),
            };
            let mut all = Vec::new();
            pointers(&v, String::new(), &mut all);
            let at = node.get(&all).clone();
            if let Some(slot) = v.pointer_mut(&at) {
                *slot = replacement;
            }
            parse_everything(&v);
            if let Some(result) = v.get("result") {
                parse_everything(result);
            }
        }

        /// A fixture's bytes with some of them overwritten, dropped or cut short.
        #[test]
        fn parse_response_never_panics_on_damaged_fixtures(
            fixture in prop::sample::select(RPC_FIXTURES),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        ) {
            let mut b = body(fixture);
            for (at, byte, op) in edits {
                if b.is_empty() {
                    break;
                }
                let i = at.index(b.len());
                match op {
                    0 => b[i] = byte,
                    1 => { b.remove(i); }
                    _ => b.truncate(i),
                }
            }
            if let Ok(r) = parse_response(&b) {
                let _ = r.results_for(&[1, 2, 3]);
            }
        }
    }
}
