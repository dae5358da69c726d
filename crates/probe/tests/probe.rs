//! Integration tests of the `Prober` against real HTTP servers (axum) on 127.0.0.1: healthy
//! nodes answering fixture-shaped batches, and every way a node can fail (refused, reset,
//! hang, garbage, huge or gzip-bomb bodies, HTTP and JSON-RPC errors), plus Basic auth,
//! version caching and bounded concurrency. Then the telemetry scrape (`Prober::scrape`):
//! Prometheus metrics and neo-rs `/healthz` / `/readyz`, healthy and failing.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use neo_ir_core::{FailureKind, Observation, ProbeFailure, Role};
use neo_ir_probe::{Headers, NodeTarget, ProbeConfig, ProbeError, Prober};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");
const BEST: &str = "0x9d3276785e7306daf59a3f3b9e31912c095598bbfb8a4476b821b0e59be4c57a";
/// "neo:s3cr3t-pa55" in base64.
const GOOD_AUTH: &str = "Basic bmVvOnMzY3IzdC1wYTU1";
const PASSWORD: &str = "s3cr3t-pa55";

fn fixture_result(rel: &str) -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURES}{rel}")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["result"].clone()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// A server answering every POST to `/` with `handler`.
async fn serve_post<H, T>(handler: H) -> SocketAddr
where
    H: axum::handler::Handler<T, ()>,
    T: 'static,
{
    serve(Router::new().route("/", post(handler))).await
}

/// A raw TCP server (no HTTP) that hands each accepted socket, one at a time, to `handle`.
async fn raw_server<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            handle(sock).await;
        }
    });
    addr
}

/// An address on which nothing listens (bound, then released).
fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

fn target(name: &str, addr: SocketAddr) -> NodeTarget {
    NodeTarget::new(name, format!("http://{addr}/"), Role::Validator)
}

fn prober_with(timeout_ms: u64, f: impl FnOnce(&mut ProbeConfig)) -> Prober {
    let mut cfg = ProbeConfig {
        timeout: Duration::from_millis(timeout_ms),
        ..ProbeConfig::default()
    };
    f(&mut cfg);
    Prober::new(cfg).unwrap()
}

fn prober(timeout_ms: u64) -> Prober {
    prober_with(timeout_ms, |_| {})
}

fn failure(o: &Observation) -> &ProbeFailure {
    o.failure()
        .unwrap_or_else(|| panic!("expected a failure, got {:?}", o.outcome))
}

/// Asserts that `o` is a failure of `kind`, showing the failure otherwise.
#[track_caller]
fn assert_kind(o: &Observation, kind: FailureKind) {
    assert_eq!(failure(o).kind, kind, "{}", failure(o));
}

// ---------------------------------------------------------------------------------------
// A fake Neo node that answers like the fixtures (batch answers reversed, to check that the
// client matches by id).

#[derive(Default)]
struct Opts {
    block_count: u64,
    count_error: Option<i64>,
    hash_error: Option<i64>,
    conn_error: bool,
    version_error: bool,
    string_ids: bool,
    gzip: bool,
    expect_auth: Option<&'static str>,
    /// Sleep before answering (for the concurrency test).
    delay: Option<Duration>,
}

#[derive(Default)]
struct Node {
    opts: Opts,
    requests: Mutex<Vec<Value>>,
    headers: Mutex<Vec<HeaderMap>>,
    fail_http: AtomicBool,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Node {
    fn new(opts: Opts) -> Arc<Node> {
        Arc::new(Node {
            opts: Opts {
                block_count: if opts.block_count == 0 {
                    1001
                } else {
                    opts.block_count
                },
                ..opts
            },
            ..Node::default()
        })
    }

    fn methods(&self, i: usize) -> Vec<String> {
        let reqs = self.requests.lock().unwrap();
        let calls = match &reqs[i] {
            Value::Array(a) => a.clone(),
            single => vec![single.clone()],
        };
        calls
            .iter()
            .map(|c| c["method"].as_str().unwrap().to_string())
            .collect()
    }
}

async fn spawn_node(node: Arc<Node>) -> SocketAddr {
    serve(
        Router::new()
            .route("/", post(node_handler))
            .with_state(node),
    )
    .await
}

async fn node_handler(State(node): State<Arc<Node>>, headers: HeaderMap, body: Bytes) -> Response {
    node.headers.lock().unwrap().push(headers.clone());
    let now = node.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    node.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if let Some(d) = node.opts.delay {
        tokio::time::sleep(d).await;
    }
    node.in_flight.fetch_sub(1, Ordering::SeqCst);

    if let Some(expected) = node.opts.expect_auth {
        let got = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        if got != Some(expected.as_bytes()) {
            return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        }
    }
    if node.fail_http.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    node.requests.lock().unwrap().push(req.clone());
    let answer = match &req {
        Value::Array(calls) => Value::Array(
            calls
                .iter()
                .rev()
                .map(|c| answer_one(&node.opts, c))
                .collect(),
        ),
        single => answer_one(&node.opts, single),
    };
    let bytes = serde_json::to_vec(&answer).unwrap();
    if node.opts.gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&bytes).unwrap();
        let gz = enc.finish().unwrap();
        return (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CONTENT_ENCODING, "gzip"),
            ],
            gz,
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

fn rpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn answer_one(opts: &Opts, call: &Value) -> Value {
    let id = if opts.string_ids {
        Value::String(call["id"].to_string())
    } else {
        call["id"].clone()
    };
    let result = match call["method"].as_str().unwrap_or("") {
        "getblockcount" => match opts.count_error {
            Some(code) => return rpc_error(id, code, "refused"),
            None => json!(opts.block_count),
        },
        "getbestblockhash" => match opts.hash_error {
            Some(code) => return rpc_error(id, code, "refused"),
            None => json!(BEST),
        },
        "getconnectioncount" if opts.conn_error => {
            return rpc_error(id, -32601, "Method not found")
        }
        "getconnectioncount" => json!(7),
        "getversion" if opts.version_error => return rpc_error(id, -32601, "Method not found"),
        "getversion" => fixture_result("mainnet-getversion/getversion-neogo.json"),
        "getblockheader" => {
            let mut h =
                fixture_result("neo-rs-0.14-testnet-genesis/rpc-getblockheader-0-verbose.json");
            h["index"] = call["params"][0].clone();
            h
        }
        "getblockhash" => match call["params"][0].as_u64() {
            Some(0) => json!(BEST),
            _ => return rpc_error(id, -109, "Unknown height"),
        },
        _ => return rpc_error(id, -32601, "Method not found"),
    };
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A server that answers every POST with a fixed response.
async fn spawn_fixed(
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
) -> SocketAddr {
    let handler = move || {
        let body = body.clone();
        let headers = headers.clone();
        async move {
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = status;
            for (k, v) in headers {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            r
        }
    };
    serve_post(handler).await
}

async fn spawn_hang() -> SocketAddr {
    serve_post(|| async { futures::future::pending::<&'static str>().await }).await
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn healthy_node_status_header_and_version_cache() {
    let node = Node::new(Opts::default());
    let addr = spawn_node(node.clone()).await;
    let p = prober(2000);
    let t = target("n1", addr);

    let before = jiff::Timestamp::now();
    let o = p.probe(&t, Some(1000)).await;
    assert_eq!(o.node, "n1");
    assert!(o.at >= before);
    let s = o.status().unwrap_or_else(|| panic!("{:?}", o.outcome));
    assert_eq!(s.block_count, 1001);
    assert_eq!(s.height(), 1000);
    assert_eq!(s.best_hash, BEST);
    assert_eq!(s.connections, Some(7));
    let v = s.version.as_ref().unwrap();
    assert_eq!(v.user_agent, "/NEO-GO:0.120.0/");
    assert_eq!(v.network, Some(860833102));
    assert_eq!(v.msperblock, Some(15000));
    assert_eq!(v.validators_count, Some(7));
    let h = s.header.as_ref().unwrap();
    assert_eq!(h.index, 1000);
    assert_eq!(h.time_ms, 1468595301000);
    assert_eq!(h.primary, Some(0));
    assert_eq!(h.hash, BEST);

    // What the node received: one batch, ids on every call, JSON content type.
    assert_eq!(
        node.methods(0),
        [
            "getblockcount",
            "getbestblockhash",
            "getconnectioncount",
            "getversion",
            "getblockheader"
        ]
    );
    {
        let reqs = node.requests.lock().unwrap();
        let calls = reqs[0].as_array().unwrap();
        for (i, c) in calls.iter().enumerate() {
            assert_eq!(c["jsonrpc"], "2.0");
            assert_eq!(c["id"], json!(i + 1));
            assert!(c["params"].is_array());
        }
        assert_eq!(calls[4]["params"], json!([1000, true]));
        let hdrs = node.headers.lock().unwrap();
        assert_eq!(hdrs[0][header::CONTENT_TYPE], "application/json");
        assert!(hdrs[0].get(header::AUTHORIZATION).is_none());
    }

    // Second probe: getversion is cached, so not asked; the status still carries it.
    let o2 = p.probe(&t, None).await;
    let s2 = o2.status().unwrap();
    assert_eq!(
        node.methods(1),
        ["getblockcount", "getbestblockhash", "getconnectioncount"]
    );
    assert_eq!(s2.version.as_ref(), Some(v));
    assert_eq!(s2.header, None);
    assert_eq!(p.cached_version("n1").as_ref(), Some(v));
}

#[tokio::test]
async fn version_asked_again_after_failure_and_after_refresh() {
    let node = Node::new(Opts::default());
    let addr = spawn_node(node.clone()).await;
    let p = prober(2000);
    let t = target("n1", addr);

    assert!(p.probe(&t, None).await.status().is_some());
    node.fail_http.store(true, Ordering::SeqCst);
    let o = p.probe(&t, None).await;
    let f = failure(&o);
    assert_eq!(f.kind, FailureKind::HttpStatus);
    assert_eq!(f.http_status, Some(500));
    assert!(p.cached_version("n1").is_none());
    node.fail_http.store(false, Ordering::SeqCst);
    let o = p.probe(&t, None).await;
    assert!(o.status().unwrap().version.is_some());
    // Requests 0 and 1 (the failing one is not recorded) both asked getversion.
    assert!(node.methods(0).contains(&"getversion".to_string()));
    assert!(node.methods(1).contains(&"getversion".to_string()));

    // version_refresh 0: asked every time.
    let p0 = prober_with(2000, |c| c.version_refresh = Duration::ZERO);
    let node = Node::new(Opts::default());
    let t = target("n2", spawn_node(node.clone()).await);
    for _ in 0..2 {
        assert!(p0.probe(&t, None).await.status().is_some());
    }
    assert!(node.methods(1).contains(&"getversion".to_string()));
}

#[tokio::test]
async fn string_ids_gzip_and_optional_errors() {
    // String ids ("1") in a reversed batch, gzip-compressed answer.
    let node = Node::new(Opts {
        string_ids: true,
        gzip: true,
        ..Opts::default()
    });
    let t = target("gz", spawn_node(node.clone()).await);
    let o = prober(2000).probe(&t, Some(5)).await;
    let s = o.status().unwrap_or_else(|| panic!("{:?}", o.outcome));
    assert_eq!(s.height(), 1000);
    assert_eq!(s.header.as_ref().unwrap().index, 5);
    let accept = node.headers.lock().unwrap()[0][header::ACCEPT_ENCODING]
        .to_str()
        .unwrap()
        .to_string();
    assert!(accept.contains("gzip"), "{accept}");

    // getconnectioncount and getversion refused alone: still a success.
    let node = Node::new(Opts {
        conn_error: true,
        version_error: true,
        ..Opts::default()
    });
    let t = target("partial", spawn_node(node).await);
    let o = prober(2000).probe(&t, None).await;
    let s = o.status().unwrap_or_else(|| panic!("{:?}", o.outcome));
    assert_eq!(s.connections, None);
    assert_eq!(s.version, None);
    assert_eq!(s.block_count, 1001);

    // A header asked at a height the node does not have: header None, still Ok.
    let node = Node::new(Opts::default());
    let t = target("h", spawn_node(node).await);
    let o = prober(2000).probe(&t, Some(u64::MAX)).await;
    assert!(o.status().is_some());
}

#[tokio::test]
async fn rpc_errors_on_required_methods() {
    let cases = [
        (
            Opts {
                count_error: Some(-32601),
                ..Opts::default()
            },
            FailureKind::RpcError,
            -32601,
        ),
        (
            Opts {
                hash_error: Some(-32603),
                ..Opts::default()
            },
            FailureKind::RpcError,
            -32603,
        ),
        // neo-cli answers wrong credentials with -600 access denied.
        (
            Opts {
                count_error: Some(-600),
                ..Opts::default()
            },
            FailureKind::Auth,
            -600,
        ),
    ];
    for (opts, kind, code) in cases {
        let t = target("e", spawn_node(Node::new(opts)).await);
        let o = prober(2000).probe(&t, None).await;
        let f = failure(&o);
        assert_eq!(f.kind, kind, "{f}");
        assert_eq!(f.rpc_code, Some(code));
        assert_eq!(f.http_status, None);
    }
}

#[tokio::test]
async fn refused() {
    let o = prober(2000).probe(&target("down", dead_addr()), None).await;
    assert_kind(&o, FailureKind::Refused);
}

#[tokio::test]
async fn reset_when_the_connection_closes_mid_request() {
    let addr = raw_server(|mut sock| async move {
        let mut buf = [0u8; 16];
        let _ = sock.read(&mut buf).await;
        drop(sock);
    })
    .await;
    let o = prober(2000).probe(&target("reset", addr), None).await;
    assert_kind(&o, FailureKind::Reset);

    // The whole request read, then a clean close without an answer.
    let addr = raw_server(|mut sock| async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("getconnectioncount") {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = sock.shutdown().await;
        drop(sock);
    })
    .await;
    let o = prober(2000).probe(&target("closed", addr), None).await;
    assert_kind(&o, FailureKind::Reset);

    // Headers and half a body, then the connection closes.
    let addr = raw_server(|mut sock| async move {
        let mut buf = vec![0u8; 64 * 1024];
        let _ = sock.read(&mut buf).await;
        let _ = sock
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n[{\"jsonrpc\"",
            )
            .await;
        drop(sock);
    })
    .await;
    let o = prober(2000).probe(&target("cut", addr), None).await;
    assert_kind(&o, FailureKind::Reset);
}

#[tokio::test]
async fn hang_times_out() {
    let addr = spawn_hang().await;
    let start = Instant::now();
    let o = prober(300).probe(&target("hang", addr), None).await;
    assert_kind(&o, FailureKind::Timeout);
    assert!(start.elapsed() < Duration::from_secs(5));

    // Headers sent, then the body stalls: the deadline covers the body too.
    let handler = || async {
        let stream = futures::stream::once(async {
            Ok::<_, std::io::Error>(Bytes::from_static(b"[{\"jsonrpc\":\"2.0\","))
        })
        .chain(futures::stream::pending());
        (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(stream),
        )
    };
    let addr = serve_post(handler).await;
    let start = Instant::now();
    let o = prober(300).probe(&target("stall", addr), None).await;
    assert_kind(&o, FailureKind::Timeout);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn garbage_and_wrong_shapes_are_malformed() {
    let bodies: Vec<Vec<u8>> = vec![
        b"<html><body>502 Bad Gateway</body></html>".to_vec(),
        br#"{"status":"ok"}"#.to_vec(),
        // Only one of the three required answers.
        br#"[{"jsonrpc":"2.0","id":1,"result":5}]"#.to_vec(),
        // Wrong result types.
        br#"[{"jsonrpc":"2.0","id":1,"result":"5"},{"jsonrpc":"2.0","id":2,"result":"0x00"},{"jsonrpc":"2.0","id":3,"result":1},{"jsonrpc":"2.0","id":4,"result":{}}]"#.to_vec(),
    ];
    for b in bodies {
        let shown = String::from_utf8_lossy(&b).into_owned();
        let addr = spawn_fixed(
            StatusCode::OK,
            vec![("content-type", "application/json")],
            b,
        )
        .await;
        let o = prober(2000).probe(&target("junk", addr), None).await;
        assert_eq!(
            failure(&o).kind,
            FailureKind::Malformed,
            "{shown}: {}",
            failure(&o)
        );
    }
    // A corrupt gzip stream.
    let addr = spawn_fixed(
        StatusCode::OK,
        vec![("content-encoding", "gzip")],
        b"this is not gzip at all".to_vec(),
    )
    .await;
    let o = prober(2000).probe(&target("badgz", addr), None).await;
    assert_kind(&o, FailureKind::Malformed);
}

#[tokio::test]
async fn http_statuses() {
    let cases = [
        (StatusCode::UNAUTHORIZED, FailureKind::Auth),
        (StatusCode::FORBIDDEN, FailureKind::Auth),
        (StatusCode::INTERNAL_SERVER_ERROR, FailureKind::HttpStatus),
        (StatusCode::METHOD_NOT_ALLOWED, FailureKind::HttpStatus),
        (StatusCode::MOVED_PERMANENTLY, FailureKind::HttpStatus),
    ];
    for (status, kind) in cases {
        let addr = spawn_fixed(
            status,
            vec![("location", "http://127.0.0.1:1/")],
            b"no".to_vec(),
        )
        .await;
        let o = prober(2000).probe(&target("s", addr), None).await;
        let f = failure(&o);
        assert_eq!(f.kind, kind, "{status}: {f}");
        assert_eq!(f.http_status, Some(status.as_u16()));
        assert_eq!(f.rpc_code, None);
    }
}

/// A body of `total` bytes in 64 KiB chunks, counting what the server actually produced.
fn counted_body(total: usize, produced: Arc<AtomicUsize>) -> Body {
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    let n = total / chunk.len();
    Body::from_stream(futures::stream::iter((0..n).map(move |_| {
        produced.fetch_add(chunk.len(), Ordering::SeqCst);
        Ok::<_, std::io::Error>(chunk.clone())
    })))
}

#[tokio::test]
async fn fifty_megabytes_is_too_large_and_not_read_whole() {
    const FIFTY_MB: usize = 50 * 1024 * 1024;
    for with_length in [true, false] {
        let produced = Arc::new(AtomicUsize::new(0));
        let counter = produced.clone();
        let handler = move || {
            let counter = counter.clone();
            async move {
                let mut r = Response::new(counted_body(FIFTY_MB, counter));
                if with_length {
                    r.headers_mut().insert(
                        header::CONTENT_LENGTH,
                        FIFTY_MB.to_string().parse().unwrap(),
                    );
                }
                r
            }
        };
        let addr = serve_post(handler).await;
        let start = Instant::now();
        let o = prober(5000).probe(&target("big", addr), None).await;
        let f = failure(&o);
        assert_eq!(f.kind, FailureKind::TooLarge, "{f}");
        if with_length {
            assert!(f.message.contains("Content-Length 52428800"), "{f}");
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = produced.load(Ordering::SeqCst);
        assert!(
            sent < FIFTY_MB / 2,
            "server produced {sent} bytes (with_length {with_length})"
        );
    }
}

#[tokio::test]
async fn gzip_bomb_is_too_large() {
    // 24 MiB of JSON-looking text compresses to a few tens of KiB; the limit is 1 MiB.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(br#"[{"jsonrpc":"2.0","id":1,"result":""#)
        .unwrap();
    let zeros = vec![b'0'; 1024 * 1024];
    for _ in 0..24 {
        enc.write_all(&zeros).unwrap();
    }
    let gz = enc.finish().unwrap();
    assert!(gz.len() < 512 * 1024, "compressed {} bytes", gz.len());
    let addr = spawn_fixed(
        StatusCode::OK,
        vec![
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        gz,
    )
    .await;
    let p = prober_with(5000, |c| c.max_body_bytes = 1024 * 1024);
    let o = p.probe(&target("bomb", addr), None).await;
    assert_kind(&o, FailureKind::TooLarge);
}

#[tokio::test]
async fn basic_auth() {
    let node = Node::new(Opts {
        expect_auth: Some(GOOD_AUTH),
        ..Opts::default()
    });
    let addr = spawn_node(node.clone()).await;
    let p = prober(2000);

    let good = target("a", addr).with_auth("neo", PASSWORD);
    let o = p.probe(&good, None).await;
    assert!(o.status().is_some(), "{:?}", o.outcome);
    assert_eq!(
        node.headers.lock().unwrap()[0][header::AUTHORIZATION],
        GOOD_AUTH
    );

    let wrong = target("a", addr).with_auth("neo", "wrong-password");
    let o = p.probe(&wrong, None).await;
    let f = failure(&o);
    assert_eq!((f.kind, f.http_status), (FailureKind::Auth, Some(401)));
    let o = p.probe(&target("a", addr), None).await;
    assert_eq!(failure(&o).kind, FailureKind::Auth);

    // Credentials in the URL work too and are never shown.
    let in_url = NodeTarget::new("u", format!("http://neo:{PASSWORD}@{addr}/"), Role::Rpc);
    assert!(p.probe(&in_url, None).await.status().is_some());

    for t in [&good, &in_url] {
        assert!(!format!("{t:?}").contains(PASSWORD), "{t:?}");
        assert!(!t.to_string().contains(PASSWORD), "{t}");
    }
    // Errors from a target with credentials, of several kinds, never carry the password.
    let dead = dead_addr();
    let hang = spawn_hang().await;
    let p = prober(300);
    for url in [
        format!("http://neo:{PASSWORD}@{dead}/"),
        format!("http://neo:{PASSWORD}@{hang}/"),
        format!("ftp://neo:{PASSWORD}@{addr}/"),
        format!("http://neo:{PASSWORD}@[::1/"),
    ] {
        let t = NodeTarget::new("x", url, Role::Rpc).with_auth("neo", PASSWORD);
        let err = p.call(&t, "getblockcount", json!([])).await.unwrap_err();
        for shown in [
            err.to_string(),
            format!("{err:?}"),
            format!("{:?}", err.to_failure()),
        ] {
            assert!(!shown.contains(PASSWORD), "{shown}");
        }
        let o = p.probe(&t, None).await;
        assert!(!failure(&o).message.contains(PASSWORD));
    }
}

#[tokio::test]
async fn probe_all_isolates_bad_nodes() {
    let healthy1 = spawn_node(Node::new(Opts::default())).await;
    let healthy2 = spawn_node(Node::new(Opts {
        block_count: 2000,
        ..Opts::default()
    }))
    .await;
    let hang = spawn_hang().await;
    let garbage = spawn_fixed(StatusCode::OK, vec![], b"\x00\x01garbage".to_vec()).await;
    let dead = dead_addr();

    let targets = vec![
        (target("hang", hang), None),
        (target("ok1", healthy1), Some(1000)),
        (target("garbage", garbage), None),
        (target("ok2", healthy2), None),
        (target("dead", dead), None),
    ];
    let start = Instant::now();
    let obs = prober(300).probe_all(&targets).await;
    assert!(start.elapsed() < Duration::from_secs(5));
    let names: Vec<&str> = obs.iter().map(|o| o.node.as_str()).collect();
    assert_eq!(names, ["hang", "ok1", "garbage", "ok2", "dead"]);
    assert_eq!(failure(&obs[0]).kind, FailureKind::Timeout);
    assert_eq!(obs[1].status().unwrap().height(), 1000);
    assert!(obs[1].status().unwrap().header.is_some());
    assert_eq!(failure(&obs[2]).kind, FailureKind::Malformed);
    assert_eq!(obs[3].status().unwrap().height(), 1999);
    assert_eq!(failure(&obs[4]).kind, FailureKind::Refused);
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let mut targets = Vec::new();
    for i in 0..6 {
        let node = Arc::new(Node {
            opts: Opts {
                block_count: 10,
                delay: Some(Duration::from_millis(150)),
                ..Opts::default()
            },
            in_flight: in_flight.clone(),
            max_in_flight: max_in_flight.clone(),
            ..Node::default()
        });
        targets.push((target(&format!("slow{i}"), spawn_node(node).await), None));
    }
    let p = prober_with(5000, |c| c.max_concurrency = 2);
    let start = Instant::now();
    let obs = p.probe_all(&targets).await;
    assert!(start.elapsed() < Duration::from_secs(20));
    for o in &obs {
        assert!(o.status().is_some(), "{:?}", o.outcome);
    }
    assert_eq!(max_in_flight.load(Ordering::SeqCst), 2);

    // `call` and `batch` share the same bound.
    max_in_flight.store(0, Ordering::SeqCst);
    let calls = targets
        .iter()
        .map(|(t, _)| p.call(t, "getblockcount", json!([])));
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap(), json!(10));
    }
    assert_eq!(max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn call_and_batch() {
    let node = Node::new(Opts::default());
    let t = target("n", spawn_node(node.clone()).await);
    let p = prober(2000);

    assert_eq!(
        p.call(&t, "getblockhash", json!([0])).await.unwrap(),
        json!(BEST)
    );
    // A single call goes out as one object, not a batch.
    assert!(node.requests.lock().unwrap()[0].is_object());
    assert_eq!(node.requests.lock().unwrap()[0]["id"], json!(1));

    match p.call(&t, "getblockhash", json!([99])).await {
        Err(ProbeError::Rpc { method, error }) => {
            assert_eq!(method, "getblockhash");
            assert_eq!(error.code, -109);
            let f = ProbeError::Rpc { method, error }.to_failure();
            assert_eq!((f.kind, f.rpc_code), (FailureKind::RpcError, Some(-109)));
        }
        other => panic!("{other:?}"),
    }

    // The node answers in reverse order; results come back in call order.
    let out = p
        .batch(
            &t,
            &[
                ("getblockhash", json!([0])),
                ("nosuchmethod", Value::Null),
                ("getblockcount", json!([])),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out[0], Ok(json!(BEST)));
    assert_eq!(out[1].as_ref().unwrap_err().code, -32601);
    assert_eq!(out[2], Ok(json!(1001)));
    let last = node.requests.lock().unwrap().last().unwrap().clone();
    assert_eq!(last[1]["params"], json!([]), "a null params is sent as []");
    assert_eq!(p.batch(&t, &[]).await.unwrap(), vec![]);

    // Transport errors keep their kind in call/batch too.
    let hang = target("h", spawn_hang().await);
    let err = prober(300)
        .batch(&hang, &[("getblockcount", json!([]))])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Timeout);
}

// ---------------------------------------------------------------------------------------
// Telemetry: `Prober::scrape` against a fake neo-rs telemetry port.

const NEO_RS: &str = "neo-rs-0.14-testnet-genesis/";

fn fixture_text(rel: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}{rel}")).unwrap()
}

/// The neo-rs 0.14 capture has no `process_*` families; these lines stand for a build (or a
/// neo-go node) that exports the standard process collector.
const PROCESS_FAMILIES: &str = "\
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 5.2822016e+07
# HELP process_virtual_memory_bytes Virtual memory size in bytes.
# TYPE process_virtual_memory_bytes gauge
process_virtual_memory_bytes 2.74877906944e+11
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.37
";

#[derive(Default)]
struct Telemetry {
    metrics: String,
    readyz_status: Option<StatusCode>,
    /// Headers of every request, to check that no credentials are sent.
    headers: Mutex<Vec<HeaderMap>>,
}

async fn spawn_telemetry(t: Arc<Telemetry>) -> SocketAddr {
    let router = Router::new()
        .route(
            "/metrics",
            get(|State(t): State<Arc<Telemetry>>, h: HeaderMap| async move {
                t.headers.lock().unwrap().push(h);
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    t.metrics.clone(),
                )
            }),
        )
        .route(
            "/healthz",
            get(|State(t): State<Arc<Telemetry>>, h: HeaderMap| async move {
                t.headers.lock().unwrap().push(h);
                fixture_text(&format!("{NEO_RS}get-healthz.txt"))
            }),
        )
        .route(
            "/readyz",
            get(|State(t): State<Arc<Telemetry>>, h: HeaderMap| async move {
                t.headers.lock().unwrap().push(h);
                match t.readyz_status {
                    Some(status) => (
                        status,
                        r#"{"status":"not_ready","ready":false}"#.to_string(),
                    ),
                    None => (
                        StatusCode::OK,
                        fixture_text(&format!("{NEO_RS}get-readyz.txt")),
                    ),
                }
            }),
        )
        .with_state(t);
    serve(router).await
}

#[tokio::test]
async fn scrape_fills_every_field() {
    let t = Arc::new(Telemetry {
        metrics: format!(
            "{}{PROCESS_FAMILIES}",
            fixture_text(&format!("{NEO_RS}get-metrics.txt"))
        ),
        ..Telemetry::default()
    });
    let addr = spawn_telemetry(t.clone()).await;
    let before = jiff::Timestamp::now();
    let m = prober(2000)
        .scrape(
            &format!("http://{addr}/metrics"),
            Some(&format!("http://{addr}/")),
        )
        .await;
    assert_eq!(m.error, None);
    assert_eq!(m.implementation, "neo-rs");
    assert_eq!(
        m.memory_bytes,
        Some(52_822_016),
        "RSS, not the virtual size"
    );
    assert_eq!(m.cpu_seconds_total, Some(1.37));
    assert_eq!(m.peers, Some(0));
    assert_eq!(m.height, Some(0));
    assert_eq!(m.healthz_ok, Some(true));
    assert_eq!(m.readyz_ok, Some(true));
    let at = m.at.unwrap();
    assert!(at >= before && at <= jiff::Timestamp::now(), "{at}");

    let headers = t.headers.lock().unwrap();
    assert_eq!(headers.len(), 3);
    for h in headers.iter() {
        assert!(h.get(header::AUTHORIZATION).is_none());
    }
    let accept = headers.iter().find_map(|h| {
        h.get(header::ACCEPT)?
            .to_str()
            .ok()?
            .starts_with("text/plain")
            .then_some(())
    });
    assert!(accept.is_some(), "the metrics GET asks for the text format");
}

#[tokio::test]
async fn scrape_of_the_raw_capture_and_without_health() {
    // The neo-rs 0.14 body exactly as captured: no process families, so no memory or CPU.
    let t = Arc::new(Telemetry {
        metrics: fixture_text(&format!("{NEO_RS}get-metrics.txt")),
        ..Telemetry::default()
    });
    let addr = spawn_telemetry(t.clone()).await;
    let m = prober(2000)
        .scrape(&format!("http://{addr}/metrics"), None)
        .await;
    assert_eq!(m.error, None);
    assert_eq!(m.implementation, "neo-rs");
    assert_eq!((m.peers, m.height), (Some(0), Some(0)));
    assert_eq!((m.memory_bytes, m.cpu_seconds_total), (None, None));
    assert_eq!((m.healthz_ok, m.readyz_ok), (None, None), "not asked");
    assert_eq!(t.headers.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn scrape_readyz_503_is_not_ready() {
    let t = Arc::new(Telemetry {
        metrics: fixture_text(&format!("{NEO_RS}get-metrics.txt")),
        readyz_status: Some(StatusCode::SERVICE_UNAVAILABLE),
        ..Telemetry::default()
    });
    let addr = spawn_telemetry(t).await;
    let m = prober(2000)
        .scrape(
            &format!("http://{addr}/metrics"),
            Some(&format!("http://{addr}")),
        )
        .await;
    assert_eq!(m.error, None);
    assert_eq!(m.healthz_ok, Some(true));
    assert_eq!(m.readyz_ok, Some(false));
    assert_eq!(m.height, Some(0));
}

#[tokio::test]
async fn scrape_neo_go_without_health_endpoints() {
    // A neo-go-like metrics port: the exponent gauge, and 404 on the neo-rs health paths.
    let body = format!(
        "{}{}neogo_peers_connected 5\n",
        fixture_text("neo-go/metrics-sample-issue3682.txt"),
        fixture_text("neo-go/metrics-sample-issue2971.txt"),
    );
    let router = Router::new().route("/metrics", get(move || async move { body }));
    let addr = serve(router).await;
    let m = prober(2000)
        .scrape(
            &format!("http://{addr}/metrics"),
            Some(&format!("http://{addr}")),
        )
        .await;
    assert_eq!(m.error, None);
    assert_eq!(m.implementation, "neo-go");
    assert_eq!((m.height, m.peers), (Some(3_278_158), Some(5)));
    assert_eq!((m.healthz_ok, m.readyz_ok), (None, None));
}

#[tokio::test]
async fn scrape_failures_set_the_error() {
    let p = prober(500);
    // Nothing listens: refused, nothing filled.
    let down = dead_addr();
    let m = p
        .scrape(
            &format!("http://{down}/metrics"),
            Some(&format!("http://{down}")),
        )
        .await;
    let e = m.error.as_deref().unwrap();
    assert!(e.starts_with("refused: "), "{e}");
    assert_eq!(m.implementation, "unknown");
    assert!(m.at.is_some());
    assert_eq!(
        (m.height, m.peers, m.healthz_ok, m.readyz_ok),
        (None, None, None, None)
    );

    // Metrics answer, but the health port is down: metrics kept, the error says refused.
    let t = Arc::new(Telemetry {
        metrics: fixture_text(&format!("{NEO_RS}get-metrics.txt")),
        ..Telemetry::default()
    });
    let addr = spawn_telemetry(t).await;
    let m = p
        .scrape(
            &format!("http://{addr}/metrics"),
            Some(&format!("http://{down}")),
        )
        .await;
    assert!(
        m.error.as_deref().unwrap().starts_with("refused: "),
        "{m:?}"
    );
    assert_eq!((m.implementation.as_str(), m.height), ("neo-rs", Some(0)));
    assert_eq!((m.healthz_ok, m.readyz_ok), (None, None));

    // Wrong path: the HTTP status.
    let m = p.scrape(&format!("http://{addr}/nope"), None).await;
    let e = m.error.as_deref().unwrap();
    assert_eq!(e, "http_status: HTTP status 404");

    // Not exposition text (the neo-go name list, an RPC answer): malformed.
    for body in [
        fixture_text("neo-go/metrics.txt"),
        fixture_text("neo-rs-0.14-testnet-genesis/rpc-getblockcount.json"),
    ] {
        let router = Router::new().route("/metrics", get(move || async move { body }));
        let other = serve(router).await;
        let m = p.scrape(&format!("http://{other}/metrics"), None).await;
        let e = m.error.as_deref().unwrap();
        assert!(
            e.starts_with("malformed: ") && e.contains("no Prometheus sample"),
            "{e}"
        );
        assert_eq!(m.implementation, "unknown");
    }

    // A hang: timeout, within about the hard timeout.
    let hang = serve(Router::new().route(
        "/metrics",
        get(|| async { futures::future::pending::<&'static str>().await }),
    ))
    .await;
    let start = Instant::now();
    let m = p.scrape(&format!("http://{hang}/metrics"), None).await;
    assert!(
        m.error.as_deref().unwrap().starts_with("timeout: "),
        "{m:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(3));

    // Not a URL, and a URL with a password: neither shows the password.
    let m = p.scrape("ftp://ops:hunter2@127.0.0.1/metrics", None).await;
    let e = m.error.as_deref().unwrap();
    assert!(e.starts_with("other: ") && !e.contains("hunter2"), "{e}");
    let m = p
        .scrape(&format!("http://ops:hunter2@{down}/metrics"), None)
        .await;
    let e = m.error.as_deref().unwrap();
    assert!(e.starts_with("refused: ") && !e.contains("hunter2"), "{e}");
}

#[tokio::test]
async fn scrape_of_fifty_megabytes_is_too_large_and_not_read_whole() {
    const FIFTY_MB: usize = 50 * 1024 * 1024;
    for with_length in [true, false] {
        let produced = Arc::new(AtomicUsize::new(0));
        let counter = produced.clone();
        let handler = move || {
            let counter = counter.clone();
            async move {
                let mut r = Response::new(counted_body(FIFTY_MB, counter));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
                if with_length {
                    r.headers_mut().insert(
                        header::CONTENT_LENGTH,
                        FIFTY_MB.to_string().parse().unwrap(),
                    );
                }
                r
            }
        };
        let addr = serve(Router::new().route("/metrics", get(handler))).await;
        let start = Instant::now();
        let m = prober(5000)
            .scrape(&format!("http://{addr}/metrics"), None)
            .await;
        let e = m.error.as_deref().unwrap();
        assert!(e.starts_with("too_large: "), "{e}");
        assert_eq!(m.implementation, "unknown");
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = produced.load(Ordering::SeqCst);
        assert!(
            sent < FIFTY_MB / 2,
            "server produced {sent} bytes (with_length {with_length})"
        );
    }
}

#[tokio::test]
async fn scrapes_share_the_concurrency_bound() {
    // One slot: a scrape with health GETs still completes (each GET takes the slot in turn).
    let t = Arc::new(Telemetry {
        metrics: fixture_text(&format!("{NEO_RS}get-metrics.txt")),
        ..Telemetry::default()
    });
    let addr = spawn_telemetry(t).await;
    let p = prober_with(2000, |c| c.max_concurrency = 1);
    let url = format!("http://{addr}/metrics");
    let base = format!("http://{addr}");
    let all = futures::future::join_all((0..4).map(|_| p.scrape(&url, Some(&base)))).await;
    for m in all {
        assert_eq!(m.error, None);
        assert_eq!((m.healthz_ok, m.readyz_ok), (Some(true), Some(true)));
    }
}

// ---------------------------------------------------------------------------------------
// Each node's own keep-alive connection (crates/probe/src/link.rs).

/// A batch answer for the three steady-state calls and `getversion` (id 4, read on the
/// first probe only: after that the version is cached and the extra answer is ignored).
const PLAIN_ANSWER: &str = concat!(
    r#"[{"jsonrpc":"2.0","id":1,"result":1001},"#,
    r#"{"jsonrpc":"2.0","id":2,"result":"0x9d3276785e7306daf59a3f3b9e31912c095598bbfb8a4476b821b0e59be4c57a"},"#,
    r#"{"jsonrpc":"2.0","id":3,"result":7},"#,
    r#"{"jsonrpc":"2.0","id":4,"result":{"useragent":"/test/","tcpport":20333,"nonce":1,"#,
    r#""protocol":{"network":860833102,"msperblock":15000,"validatorscount":7}}}]"#
);

/// Read one HTTP request (head and `Content-Length` body); false when the peer closed.
async fn read_request(sock: &mut TcpStream) -> bool {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return true;
            }
        }
    }
}

/// A raw HTTP/1.1 server answering every request with `PLAIN_ANSWER` (keep-alive, no
/// `Connection: close`). It serves `per_connection` requests on a connection, waits
/// `linger`, then closes it, the way an HTTP server's idle timeout does. Returns the
/// address and the count of accepted connections.
async fn keep_alive_server(
    per_connection: usize,
    linger: Duration,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let addr = raw_server(move |mut sock| {
        count.fetch_add(1, Ordering::SeqCst);
        async move {
            for _ in 0..per_connection {
                if !read_request(&mut sock).await {
                    return;
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    PLAIN_ANSWER.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(PLAIN_ANSWER.as_bytes()).await;
            }
            tokio::time::sleep(linger).await;
        }
    })
    .await;
    (addr, accepted)
}

#[tokio::test]
async fn a_node_is_probed_over_one_keep_alive_connection() {
    let (addr, accepted) = keep_alive_server(usize::MAX, Duration::ZERO).await;
    let p = prober(2000);
    let t = target("kept", addr);
    for _ in 0..5 {
        let o = p.probe(&t, None).await;
        assert!(o.status().is_some(), "{:?}", o.outcome);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for five probes"
    );
}

#[tokio::test]
async fn a_connection_the_node_closed_while_idle_is_replaced_without_a_failure() {
    // one answer per connection, then the server closes it at once (without saying so)
    let (addr, accepted) = keep_alive_server(1, Duration::ZERO).await;
    let p = prober(2000);
    let t = target("closing", addr);
    for i in 0..5 {
        let o = p.probe(&t, None).await;
        assert!(o.status().is_some(), "probe {i}: {:?}", o.outcome);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn connection_closed_tells_when_the_node_closes_the_idle_connection() {
    // The node keeps the connection 300 ms after its answer, then closes it (as a process
    // that dies would, only later).
    let (addr, _) = keep_alive_server(1, Duration::from_millis(300)).await;
    let p = prober(2000);
    let t = target("closes", addr);
    assert!(p.probe(&t, None).await.status().is_some());
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), p.connection_closed(&t))
        .await
        .expect("the close is noticed");
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "not before the close"
    );

    // A node that keeps its connection open gives no such event.
    let (addr, _) = keep_alive_server(usize::MAX, Duration::ZERO).await;
    let t = target("stays", addr);
    assert!(p.probe(&t, None).await.status().is_some());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), p.connection_closed(&t))
            .await
            .is_err()
    );

    // With no connection yet, the sentinel opens one itself and watches it.
    let (addr, accepted) = keep_alive_server(usize::MAX, Duration::ZERO).await;
    let t = target("fresh", addr);
    let watching = tokio::spawn({
        let (p, t) = (p.clone(), t.clone());
        async move { p.connection_closed(&t).await }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the sentinel never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!watching.is_finished());
    watching.abort();
    let _ = watching.await;
    // and the next probe uses that connection
    assert!(p.probe(&t, None).await.status().is_some());
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_header_pair_comes_back_as_header_and_parent() {
    let node = Node::new(Opts::default());
    let addr = spawn_node(node.clone()).await;
    let p = prober(2000);
    let t = target("pair", addr);
    let o = p.probe(&t, Headers::WithParent(1000)).await;
    let s = o.status().unwrap_or_else(|| panic!("{:?}", o.outcome));
    assert_eq!(s.header.as_ref().map(|h| h.index), Some(1000));
    assert_eq!(s.parent_header.as_ref().map(|h| h.index), Some(999));
    assert_eq!(
        node.methods(0)[3..],
        ["getversion", "getblockheader", "getblockheader"]
    );
    let o = p.probe(&t, Headers::None).await;
    let s = o.status().unwrap();
    assert_eq!(
        (s.header.is_none(), s.parent_header.is_none()),
        (true, true)
    );
}
