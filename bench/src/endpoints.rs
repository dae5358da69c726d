//! `neo-ir-bench serve-endpoints` (hidden): the lightweight JSON-RPC endpoints of the scale
//! mode, run in a child process so that their CPU is not counted as the watcher's.
//!
//! Endpoint `i` is the path `/n/{i}` on listener `i / per_listener` (a few listeners, e.g. 20
//! for 10,000 endpoints), not a port of its own: 10,000 listening ports here plus the
//! 10,000 connections accepted from the watcher would exceed the open-file limit (20,000).
//! The watcher still treats each endpoint as its own node: one batched POST per interval on
//! its own keep-alive connection (which is also its crash sentinel), its own failure streak
//! and version cache.
//!
//! Every endpoint answers in neo-rs's JSON shapes: `getblockcount`, `getbestblockhash`,
//! `getblockhash`, `getconnectioncount` (8), `getversion` (1000 ms blocks, 7 validators, a
//! nonce per endpoint) and verbose `getblockheader`, singly or batched, from one shared chain
//! whose height advances every second; other methods answer "Method not found", like a node
//! without the StateService plugin. `GET /stats` reports the requests served.
//!
//! The process prints one JSON line `{"ports":[...]}` when it listens, and exits when its
//! standard input closes (the parent ended, however it ended).

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::net::TcpSocket;

/// The shared chain's block time.
pub const MSPERBLOCK: u64 = 1000;
const VALIDATORS: u64 = 7;
const PEERS: u64 = 8;
const NEXT_CONSENSUS: &str = "NZHf1NJvz1tvELGLWZjhpb3NqZJFFUYpxT";

#[derive(clap::Args)]
pub struct Args {
    /// Number of endpoints.
    #[arg(long)]
    endpoints: usize,
    /// Endpoints per listener.
    #[arg(long, default_value_t = 500)]
    per_listener: usize,
    /// Time of block 0 (ms since the epoch); height = (now - genesis) / 1000.
    #[arg(long)]
    genesis_ms: u64,
}

struct Chain {
    genesis_ms: u64,
    endpoints: usize,
    batches: AtomicU64,
    singles: AtomicU64,
}

impl Chain {
    fn height(&self) -> u64 {
        now_ms().saturating_sub(self.genesis_ms) / MSPERBLOCK
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn block_hash(h: u64) -> [u8; 32] {
    let mut d = Sha256::new();
    d.update(b"neo-ir-bench/block");
    d.update(h.to_le_bytes());
    d.finalize().into()
}

fn hex_hash(h: &[u8; 32]) -> String {
    format!("\"0x{}\"", hex::encode(h))
}

pub async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    crate::scale::raise_nofile();
    let per = args.per_listener.max(1);
    let listeners = args.endpoints.div_ceil(per).max(1);
    let chain = Arc::new(Chain {
        genesis_ms: args.genesis_ms,
        endpoints: args.endpoints,
        batches: AtomicU64::new(0),
        singles: AtomicU64::new(0),
    });
    let mut ports = Vec::with_capacity(listeners);
    let mut bound = Vec::with_capacity(listeners);
    for _ in 0..listeners {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let l = socket.listen(4096)?;
        ports.push(l.local_addr()?.port());
        bound.push(l);
    }
    for l in bound {
        let chain = chain.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = l.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let chain = chain.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(chain.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::json!({ "ports": ports }))?;
        out.flush()?;
    }
    // the parent holds our stdin: when it goes away, so do we
    tokio::task::spawn_blocking(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn handle(
    chain: Arc<Chain>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if req.method() == Method::GET && path == "/stats" {
        let body = serde_json::json!({
            "batches": chain.batches.load(Ordering::Relaxed),
            "singles": chain.singles.load(Ordering::Relaxed),
        })
        .to_string();
        return Ok(reply(StatusCode::OK, body));
    }
    let idx = path
        .strip_prefix("/n/")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&i| i < chain.endpoints);
    let Some(idx) = idx else {
        return Ok(reply(StatusCode::NOT_FOUND, "not found".into()));
    };
    if req.method() != Method::POST {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "Used HTTP Method is not allowed. POST is required".into(),
        ));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, String::new())),
    };
    let out = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => {
            chain.batches.fetch_add(1, Ordering::Relaxed);
            let parts: Vec<String> = items.iter().map(|r| one(&chain, idx, r)).collect();
            format!("[{}]", parts.join(","))
        }
        Ok(v) => {
            chain.singles.fetch_add(1, Ordering::Relaxed);
            one(&chain, idx, &v)
        }
        Err(_) => {
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#.into()
        }
    };
    Ok(reply(StatusCode::OK, out))
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// One call's envelope, `{"jsonrpc":"2.0","id":…,"result":…}` or with `error`.
fn one(chain: &Chain, idx: usize, req: &Value) -> String {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let method = req
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let params = req
        .get("params")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match call(chain, idx, method, &params) {
        Ok(result) => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
        Err((code, msg)) => {
            format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":"{msg}"}}}}"#)
        }
    }
}

fn call(
    chain: &Chain,
    idx: usize,
    method: &str,
    params: &[Value],
) -> Result<String, (i64, &'static str)> {
    let height = chain.height();
    let index = || -> Result<u64, (i64, &'static str)> {
        let i = match params.first() {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .ok_or((-32602, "Invalid params"))?;
        if i > height {
            return Err((-109, "Unknown height"));
        }
        Ok(i)
    };
    match method {
        "getblockcount" => Ok((height + 1).to_string()),
        "getbestblockhash" => Ok(hex_hash(&block_hash(height))),
        "getblockhash" => Ok(hex_hash(&block_hash(index()?))),
        "getconnectioncount" => Ok(PEERS.to_string()),
        "getblockheader" => {
            let i = index()?;
            let prev = if i == 0 { [0u8; 32] } else { block_hash(i - 1) };
            let hash = block_hash(i);
            let next = if i < height {
                format!(r#","nextblockhash":{}"#, hex_hash(&block_hash(i + 1)))
            } else {
                String::new()
            };
            Ok(format!(
                concat!(
                    r#"{{"hash":{},"size":696,"version":0,"previousblockhash":{},"#,
                    r#""merkleroot":"0x0000000000000000000000000000000000000000000000000000000000000000","#,
                    r#""time":{},"nonce":"{:016X}","index":{},"primary":{},"nextconsensus":"{}","#,
                    r#""witnesses":[{{"invocation":"","verification":"EQ=="}}],"confirmations":{}{}}}"#
                ),
                hex_hash(&hash),
                hex_hash(&prev),
                chain.genesis_ms + i * MSPERBLOCK,
                u64::from_le_bytes(hash[..8].try_into().expect("8 bytes")),
                i,
                i % VALIDATORS,
                NEXT_CONSENSUS,
                height - i + 1,
                next
            ))
        }
        "getversion" => {
            let committee: Vec<String> = (0..VALIDATORS)
                .map(|v| {
                    let mut d = Sha256::new();
                    d.update(b"neo-ir-bench/key");
                    d.update(v.to_le_bytes());
                    format!("\"02{}\"", hex::encode(d.finalize()))
                })
                .collect();
            Ok(format!(
                concat!(
                    r#"{{"tcpport":20333,"nonce":{},"useragent":"/neo-ir-bench:0.1.0/","#,
                    r#""rpc":{{"maxiteratorresultitems":100,"sessionenabled":false}},"#,
                    r#""protocol":{{"addressversion":53,"network":5195086,"validatorscount":{},"#,
                    r#""msperblock":{},"maxtraceableblocks":2102400,"maxvaliduntilblockincrement":5760,"#,
                    r#""maxtransactionsperblock":5000,"memorypoolmaxtransactions":50000,"#,
                    r#""initialgasdistribution":5200000000000000,"hardforks":[],"#,
                    r#""standbycommittee":[{}],"seedlist":[]}}}}"#
                ),
                idx + 1,
                VALIDATORS,
                MSPERBLOCK,
                committee.join(",")
            ))
        }
        _ => Err((-32601, "Method not found")),
    }
}
