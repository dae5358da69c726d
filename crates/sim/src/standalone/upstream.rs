//! The standalone node's JSON-RPC client for its upstream (a node of a simulated network):
//! `getversion` once at start, then `getblockcount` and batches of `getblockheader [i, true]`.
//!
//! Everything the upstream answers is validated before it is stored or served: hashes are 32
//! bytes of hex, keys 33 bytes, counts bounded, bodies capped (an upstream with the `huge`
//! fault answers 50 MiB). Failure texts avoid the words an agent's log scanner takes for
//! errors: an unreachable upstream is a warning of the node, not an error.

use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::chain::Block;
use crate::rpc::parse_hash;

/// Largest answer read from the upstream: a batch of [`MAX_BATCH`] headers of a 100-validator
/// network is about 2.5 MB.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Headers asked for in one poll.
pub(crate) const MAX_BATCH: u64 = 200;
/// Most validator keys accepted from `getversion` (the witness script encodes up to u16).
const MAX_KEYS: usize = 1024;

/// Why a call to the upstream failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("connection refused or host unreachable")]
    Connect,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed ({0})")]
    Request(&'static str),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("answer larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("unexpected answer to {method}: {detail}")]
    Invalid {
        method: &'static str,
        detail: String,
    },
    #[error("{method} answered code {code} ({message})")]
    Rpc {
        method: &'static str,
        code: i64,
        message: String,
    },
}

/// What the node takes from the upstream's `getversion`.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamVersion {
    /// The upstream's P2P port (the port its peers list).
    pub tcpport: u16,
    pub network: u32,
    /// The validators' public keys: they make the block witnesses, so the node serves the
    /// same headers as the network.
    pub keys: Vec<[u8; 33]>,
    /// The upstream's `protocol` object as it was sent (served again by this node).
    pub protocol: Box<RawValue>,
}

#[derive(Deserialize)]
struct RpcErrorBody {
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Value,
    result: Option<Box<RawValue>>,
    error: Option<RpcErrorBody>,
}

#[derive(Deserialize)]
struct VersionFields {
    tcpport: u16,
    protocol: Box<RawValue>,
}

#[derive(Deserialize)]
struct ProtocolFields {
    network: u32,
    validatorscount: Option<u32>,
    standbycommittee: Vec<String>,
}

#[derive(Deserialize)]
struct HeaderFields {
    hash: String,
    previousblockhash: String,
    time: u64,
    nonce: String,
    index: u64,
    primary: u32,
}

/// A JSON-RPC client for one upstream URL.
pub(crate) struct Upstream {
    url: reqwest::Url,
    client: reqwest::Client,
    timeout: Duration,
}

impl Upstream {
    /// Checks the URL (http or https with a host) and builds the client.
    pub fn new(url: &str, timeout: Duration) -> Result<Upstream, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("upstream '{url}': {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "upstream '{url}' must be an http:// or https:// URL with a host"
            ));
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Upstream {
            url: parsed,
            client,
            timeout,
        })
    }

    /// The upstream's host as peers list it.
    pub fn host(&self) -> String {
        // an IPv6 host comes in brackets, as in the URL
        let h = self.url.host_str().unwrap_or_default();
        h.trim_start_matches('[').trim_end_matches(']').to_string()
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    fn transport(&self, e: &reqwest::Error) -> UpstreamError {
        if e.is_timeout() {
            UpstreamError::Timeout(self.timeout)
        } else if e.is_connect() {
            UpstreamError::Connect
        } else if e.is_body() || e.is_decode() {
            UpstreamError::Request("the body broke off")
        } else {
            UpstreamError::Request("the request could not be sent")
        }
    }

    /// POSTs `body` and returns the answer's bytes (at most [`MAX_BODY`]).
    async fn post(&self, body: &Value) -> Result<Vec<u8>, UpstreamError> {
        let mut resp = self
            .client
            .post(self.url.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        if !resp.status().is_success() {
            return Err(UpstreamError::Status(resp.status().as_u16()));
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&e))? {
            if out.len() + chunk.len() > MAX_BODY {
                return Err(UpstreamError::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The raw `result` of one call.
    async fn call(
        &self,
        method: &'static str,
        params: Value,
    ) -> Result<Box<RawValue>, UpstreamError> {
        let body = self
            .post(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .await?;
        let env: Envelope = serde_json::from_slice(&body).map_err(|e| invalid(method, e))?;
        result_of(method, env)
    }

    pub async fn version(&self) -> Result<UpstreamVersion, UpstreamError> {
        const M: &str = "getversion";
        let raw = self.call(M, json!([])).await?;
        let v: VersionFields = serde_json::from_str(raw.get()).map_err(|e| invalid(M, e))?;
        let p: ProtocolFields =
            serde_json::from_str(v.protocol.get()).map_err(|e| invalid(M, e))?;
        let mut keys = Vec::with_capacity(p.standbycommittee.len());
        for k in &p.standbycommittee {
            let mut key = [0u8; 33];
            hex::decode_to_slice(k, &mut key).map_err(|_| UpstreamError::Invalid {
                method: M,
                detail: format!("standbycommittee key '{k}' is not 33 bytes of hex"),
            })?;
            keys.push(key);
        }
        // the witnesses are made by the validators: the first `validatorscount` members
        if let Some(n) = p.validatorscount.map(|n| n as usize) {
            if n > 0 && n < keys.len() {
                keys.truncate(n);
            }
        }
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(UpstreamError::Invalid {
                method: M,
                detail: format!("{} validator keys, expected 1 to {MAX_KEYS}", keys.len()),
            });
        }
        Ok(UpstreamVersion {
            tcpport: v.tcpport,
            network: p.network,
            keys,
            protocol: v.protocol,
        })
    }

    /// `getblockcount`: the upstream's height + 1.
    pub async fn block_count(&self) -> Result<u64, UpstreamError> {
        const M: &str = "getblockcount";
        let raw = self.call(M, json!([])).await?;
        serde_json::from_str(raw.get()).map_err(|e| invalid(M, e))
    }

    /// Headers `from .. from + count` (`count` at most [`MAX_BATCH`]) in one batch, in order.
    pub async fn headers(&self, from: u64, count: u64) -> Result<Vec<Block>, UpstreamError> {
        const M: &str = "getblockheader";
        let count = count.min(MAX_BATCH);
        let calls: Vec<Value> = (from..from + count)
            .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": M, "params": [i, true]}))
            .collect();
        let body = self.post(&Value::Array(calls)).await?;
        let answers: Vec<Envelope> = serde_json::from_slice(&body).map_err(|e| invalid(M, e))?;
        let mut out = Vec::with_capacity(count as usize);
        for i in from..from + count {
            let env = answers
                .iter()
                .find(|a| a.id.as_u64() == Some(i))
                .ok_or_else(|| UpstreamError::Invalid {
                    method: M,
                    detail: format!("no answer for block {i} in the batch"),
                })?;
            let raw = match (&env.result, &env.error) {
                (_, Some(e)) => {
                    return Err(UpstreamError::Rpc {
                        method: M,
                        code: e.code,
                        message: e.message.clone(),
                    })
                }
                (Some(r), None) => r,
                (None, None) => return Err(invalid(M, "neither result nor error")),
            };
            let h: HeaderFields = serde_json::from_str(raw.get()).map_err(|e| invalid(M, e))?;
            out.push(header_block(&h, i)?);
        }
        Ok(out)
    }
}

fn invalid(method: &'static str, detail: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Invalid {
        method,
        detail: detail.to_string(),
    }
}

fn result_of(method: &'static str, env: Envelope) -> Result<Box<RawValue>, UpstreamError> {
    match (env.result, env.error) {
        (_, Some(e)) => Err(UpstreamError::Rpc {
            method,
            code: e.code,
            message: e.message,
        }),
        (Some(r), None) => Ok(r),
        (None, None) => Err(invalid(method, "neither result nor error")),
    }
}

/// A verbose header as a block record, checking that it is the block asked for.
fn header_block(h: &HeaderFields, index: u64) -> Result<Block, UpstreamError> {
    const M: &str = "getblockheader";
    if h.index != index {
        return Err(invalid(
            M,
            format!("asked for block {index}, got {}", h.index),
        ));
    }
    let hash = parse_hash(&h.hash).ok_or_else(|| invalid(M, format!("bad hash '{}'", h.hash)))?;
    let prev = parse_hash(&h.previousblockhash).ok_or_else(|| {
        invalid(
            M,
            format!("bad previousblockhash '{}'", h.previousblockhash),
        )
    })?;
    let nonce = (h.nonce.len() <= 16)
        .then(|| u64::from_str_radix(&h.nonce, 16).ok())
        .flatten()
        .ok_or_else(|| invalid(M, format!("bad nonce '{}'", h.nonce)))?;
    Ok(Block {
        index,
        hash,
        prev,
        time: h.time,
        nonce,
        view: 0,
        primary: h.primary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(index: u64, nonce: &str) -> HeaderFields {
        HeaderFields {
            hash: format!("0x{}", "ab".repeat(32)),
            previousblockhash: format!("0x{}", "00".repeat(32)),
            time: 5,
            nonce: nonce.into(),
            index,
            primary: 1,
        }
    }

    #[test]
    fn headers_are_validated() {
        let b = header_block(&fields(3, "000000007C2BAC1D"), 3).expect("valid");
        assert_eq!((b.index, b.nonce, b.hash), (3, 0x7C2B_AC1D, [0xab; 32]));
        assert!(header_block(&fields(4, "00"), 3).is_err(), "other index");
        assert!(header_block(&fields(3, "zz"), 3).is_err(), "bad nonce");
        assert!(
            header_block(&fields(3, "00000000000000000"), 3).is_err(),
            "17 digits"
        );
        let mut f = fields(3, "01");
        f.hash = "0x12".into();
        assert!(header_block(&f, 3).is_err(), "short hash");
    }

    #[test]
    fn urls_are_checked() {
        let t = Duration::from_secs(1);
        assert!(Upstream::new("http://127.0.0.1:1/", t).is_ok());
        assert!(Upstream::new("file:///etc/passwd", t).is_err());
        assert!(Upstream::new("not a url", t).is_err());
        let u = Upstream::new("http://[::1]:5/", t).expect("v6");
        assert_eq!(u.host(), "::1");
    }
}
