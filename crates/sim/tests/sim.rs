//! Integration tests of the simulated network: real servers on ephemeral ports, spoken to over
//! HTTP with reqwest. Waits poll for a condition with a deadline; the only plain waits are
//! those that check that something does NOT happen.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::time::{Duration, Instant};

use neo_ir_sim::{Fault, SimConfig, SimError, SimNetwork, SimRole};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Value};

mod standalone;

const DEADLINE: Duration = Duration::from_secs(20);

fn config(msperblock: u64) -> SimConfig {
    SimConfig {
        msperblock,
        seed: 7,
        ..SimConfig::default()
    }
}

/// A running network and an HTTP client to speak to it; derefs to the network.
#[derive(Clone)]
struct Net {
    sim: SimNetwork,
    c: reqwest::Client,
}

impl Deref for Net {
    type Target = SimNetwork;
    fn deref(&self) -> &SimNetwork {
        &self.sim
    }
}

impl Net {
    async fn start(msperblock: u64) -> Net {
        let sim = SimNetwork::start(config(msperblock)).await.expect("start");
        let c = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Net { sim, c }
    }

    fn url(&self, node: &str) -> String {
        self.sim
            .nodes()
            .into_iter()
            .find(|n| n.name == node)
            .expect("node exists")
            .rpc_url
    }

    /// A POST of `body` as JSON to `url`, not sent yet.
    fn post_json(&self, url: &str, body: &Value) -> reqwest::RequestBuilder {
        self.c.post(url).json(body)
    }

    /// Raw answer to a POST of `body` as JSON.
    async fn post_text(&self, url: &str, body: &Value) -> String {
        self.post_json(url, body)
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("body")
    }

    /// Raw body of a JSON-RPC call.
    async fn call_raw(&self, url: &str, method: &str, params: Value) -> String {
        let req = json!({"jsonrpc":"2.0","id":1,"method":method,"params":params});
        self.post_text(url, &req).await
    }

    /// The `result` of a JSON-RPC call (panics on an error answer).
    async fn call(&self, url: &str, method: &str, params: Value) -> Value {
        let body = self.call_raw(url, method, params).await;
        let v: Value = serde_json::from_str(&body).expect("json");
        assert!(v.get("error").is_none(), "{method} failed: {body}");
        v["result"].clone()
    }

    /// The whole answer of a JSON-RPC call, both with its key order and as a `Value`.
    async fn call_ordered(&self, url: &str, method: &str, params: Value) -> (Ordered, Value) {
        let raw = self.call_raw(url, method, params).await;
        (
            Ordered::parse(&raw),
            serde_json::from_str(&raw).expect("json"),
        )
    }

    async fn block_count(&self, url: &str) -> u64 {
        self.call(url, "getblockcount", json!([]))
            .await
            .as_u64()
            .expect("number")
    }

    async fn block_hash(&self, url: &str, index: u64) -> Value {
        self.call(url, "getblockhash", json!([index])).await
    }

    async fn header(&self, url: &str, index: u64) -> Value {
        self.call(url, "getblockheader", json!([index, true])).await
    }

    /// GET of a control API path, parsed as JSON.
    async fn control(&self, path: &str) -> Value {
        self.c
            .get(format!("{}{path}", self.sim.control_url()))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    /// POST to a control API path, with `body` as JSON if any: (status, JSON answer).
    async fn control_post(&self, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut req = self.c.post(format!("{}{path}", self.sim.control_url()));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.expect("json"))
    }

    async fn fault(&self, node: &str, fault: Fault) {
        let what = format!("inject {fault:?} into {node}");
        self.sim.inject(node, fault).await.expect(&what);
    }

    async fn recover(&self, node: &str) {
        self.sim.recover_node(node).await.expect("recover");
    }

    async fn wait_height(&self, h: u64) {
        eventually(&format!("height {h}"), || async { self.sim.height() >= h }).await;
    }

    async fn shutdown(self) {
        self.sim.shutdown().await;
    }
}

/// Polls `cond` until it holds or the deadline passes.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
/// JSON with its object keys in document order (serde_json's `Value` sorts them).
#[derive(Debug)]
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Other,
}

impl Ordered {
    fn parse(s: &str) -> Ordered {
        serde_json::from_str(s).expect("json")
    }

    fn keys(&self) -> Vec<String> {
        match self {
            Ordered::Object(m) => m.iter().map(|(k, _)| k.clone()).collect(),
            Ordered::Other => Vec::new(),
        }
    }

    fn get(&self, key: &str) -> &Ordered {
        match self {
            Ordered::Object(m) => &m.iter().find(|(k, _)| k == key).expect("key").1,
            Ordered::Other => panic!("not an object"),
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Ordered>()? {
                    out.push((k, v));
                }
                Ok(Ordered::Object(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Ordered, A::Error> {
                while s.next_element::<Ordered>()?.is_some() {}
                Ok(Ordered::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
        }
        d.deserialize_any(V)
    }
}

fn is_hash(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 66
            && s.starts_with("0x")
            && s[2..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_match_neo_rs_captures() {
    let net = Net::start(150).await;
    let u = net.url("rpc-1");
    net.wait_height(2).await;

    // getblockheader: key order of the neo-rs capture (+ nextblockhash when there is a next).
    let fixture = Ordered::parse(include_str!("fixtures/rpc-getblockheader-0-verbose.json"));
    let fixture_keys = fixture.get("result").keys();
    let (ours, g) = net
        .call_ordered(&u, "getblockheader", json!([0, true]))
        .await;
    assert_eq!(ours.keys(), fixture.keys(), "envelope key order");
    let mut expected = fixture_keys.clone();
    expected.push("nextblockhash".into());
    assert_eq!(ours.get("result").keys(), expected);
    let g = &g["result"];
    assert_eq!(g["index"], 0);
    assert_eq!(g["size"], 113);
    assert_eq!(g["previousblockhash"], format!("0x{}", "0".repeat(64)));
    assert_eq!(
        g["witnesses"],
        json!([{"invocation":"","verification":"EQ=="}])
    );
    assert_eq!(g["nonce"], "000000007C2BAC1D");
    assert!(is_hash(&g["hash"]) && is_hash(&g["nextblockhash"]));
    assert_eq!(
        g["hash"],
        net.block_hash(&u, 0).await,
        "getblockhash agrees"
    );

    // The newest block has no nextblockhash and one confirmation (stalled: no race).
    net.stall();
    let best = net.call(&u, "getbestblockhash", json!([])).await;
    assert!(is_hash(&best));
    let (ours, tip) = net
        .call_ordered(&u, "getblockheader", json!([best, true]))
        .await;
    assert_eq!(ours.get("result").keys(), fixture_keys);
    assert_eq!(tip["result"]["confirmations"], 1);
    assert_eq!(tip["result"]["hash"], best);
    assert_eq!(tip["result"]["index"], net.height());
    let t = tip["result"]["time"].as_u64().expect("time");
    assert!(t > 1_700_000_000_000, "time in ms since the epoch: {t}");
    net.resume();
    // Non-verbose: a base64 string.
    let plain = net.call(&u, "getblockheader", json!([1])).await;
    assert!(plain
        .as_str()
        .is_some_and(|s| s.len() % 4 == 0 && !s.is_empty()));

    // getversion: same keys in the same order at every level.
    let fixture = Ordered::parse(include_str!("fixtures/rpc-getversion.json"));
    let (ours, v) = net.call_ordered(&u, "getversion", json!([])).await;
    let (f, o) = (fixture.get("result"), ours.get("result"));
    assert_eq!(o.keys(), f.keys());
    assert_eq!(o.get("rpc").keys(), f.get("rpc").keys());
    assert_eq!(o.get("protocol").keys(), f.get("protocol").keys());
    let v = &v["result"];
    assert_eq!(v["useragent"], "/neo-ir-sim:0.1.0/");
    assert_eq!(v["protocol"]["network"], 5_195_086);
    assert_eq!(v["protocol"]["msperblock"], 150);
    assert_eq!(v["protocol"]["validatorscount"], 4);
    assert_eq!(
        v["protocol"]["standbycommittee"].as_array().map(Vec::len),
        Some(4)
    );
    let mut nonces = Vec::new();
    for n in net.nodes() {
        let v = net.call(&n.rpc_url, "getversion", json!([])).await;
        nonces.push(v["nonce"].as_u64().expect("nonce"));
    }
    nonces.sort_unstable();
    nonces.dedup();
    assert_eq!(nonces.len(), 7, "nonce unique per node");

    // Other shapes.
    assert_eq!(net.call(&u, "getconnectioncount", json!([])).await, 6);
    let (ours, peers) = net.call_ordered(&u, "getpeers", json!([])).await;
    assert_eq!(
        ours.get("result").keys(),
        ["unconnected", "bad", "connected"]
    );
    let connected = peers["result"]["connected"].as_array().expect("array");
    assert_eq!(connected.len(), 6);
    assert_eq!(connected[0]["address"], "127.0.0.1");
    assert!(connected[0]["port"].is_u64());
    let (ours, _) = net.call_ordered(&u, "getstateheight", json!([])).await;
    assert_eq!(
        ours.get("result").keys(),
        ["localrootindex", "validatedrootindex"]
    );
    let (ours, root) = net.call_ordered(&u, "getstateroot", json!([1])).await;
    assert_eq!(
        ours.get("result").keys(),
        ["version", "index", "roothash", "witnesses"]
    );
    assert_eq!(root["result"]["index"], 1);
    assert!(is_hash(&root["result"]["roothash"]));
    assert_eq!(root["result"]["witnesses"], json!([]));
    let again = net
        .call(&net.url("validator-2"), "getstateroot", json!([1]))
        .await;
    assert_eq!(
        again["roothash"], root["result"]["roothash"],
        "deterministic"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_match_neo_rs() {
    let net = Net::start(200).await;
    let u = net.url("validator-1");

    // Each error answer, to the byte.
    let error = |code: i64, message: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":1,"error":{{"code":{code},"message":"{message}"}}}}"#)
    };
    let unknown = format!("0x{}", "ab".repeat(32));
    let cases = [
        ("getblockhash", json!([100_000]), error(-109, "Unknown height")),
        (
            "getblockheader",
            json!(["zz", true]),
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Invalid params - getblockheader expects block hash or index, got 'zz'","data":"getblockheader expects block hash or index, got 'zz'"}}"#.to_string(),
        ),
        ("getblockheader", json!([100_000, true]), error(-109, "Unknown height")),
        ("getblockheader", json!([unknown, true]), error(-101, "Unknown block")),
        ("getstateroot", json!([100_000]), error(-106, "Unknown state root")),
        ("nosuchmethod", json!([]), error(-32601, "Method not found")),
    ];
    for (method, params, expected) in cases {
        let body = net.call_raw(&u, method, params.clone()).await;
        assert_eq!(body, expected, "{method} {params}");
    }

    // Malformed JSON, string ids, no content type.
    let resp = net.c.post(&u).body("{not json").send().await.expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.expect("body"),
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#
    );
    let resp = net
        .c
        .post(&u)
        .body(r#"{"jsonrpc":"2.0","id":"abc","method":"getblockcount","params":[]}"#)
        .send()
        .await
        .expect("send");
    let text = resp.text().await.expect("body");
    assert!(
        text.starts_with(r#"{"jsonrpc":"2.0","id":"abc","result":"#),
        "{text}"
    );

    // GET is refused like neo-rs does.
    let resp = net.c.get(&u).send().await.expect("send");
    assert_eq!(resp.status(), 405);
    assert_eq!(
        resp.text().await.expect("body"),
        "Used HTTP Method is not allowed. POST is required"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_answer_in_order_with_ids() {
    let net = Net::start(200).await;
    let u = net.url("rpc-1");
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"getblockcount","params":[]},
        {"jsonrpc":"2.0","id":"two","method":"getconnectioncount","params":[]},
        {"jsonrpc":"2.0","id":3,"method":"nosuch","params":[]},
        {"jsonrpc":"2.0","id":4,"method":"getblockhash","params":[0]}
    ]);
    let text = net.post_text(&u, &batch).await;
    let v: Value = serde_json::from_str(&text).expect("json");
    let items = v.as_array().expect("array out");
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["id"], 1);
    assert!(items[0]["result"].as_u64().is_some_and(|n| n >= 1));
    assert_eq!(items[1]["id"], "two");
    assert_eq!(items[1]["result"], 6);
    assert_eq!(items[2]["id"], 3);
    assert_eq!(items[2]["error"]["code"], -32601);
    assert_eq!(items[3]["id"], 4);
    assert!(is_hash(&items[3]["result"]));
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blockcount_advances_and_primaries_rotate() {
    let net = Net::start(100).await;
    let u = net.url("validator-3");

    let before = net.height();
    let count = net.block_count(&u).await;
    let after = net.height();
    assert!(
        (before + 1..=after + 1).contains(&count),
        "getblockcount = height + 1"
    );
    net.wait_height(count + 5).await;
    assert!(net.block_count(&u).await > count, "advances");

    let top = net.height();
    let mut prev_hash = Value::Null;
    let mut prev_time = 0;
    for i in 0..=top {
        let h = net.header(&u, i).await;
        assert_eq!(h["index"], i);
        assert_eq!(h["primary"], i % 4, "view 0: primary = index mod n");
        if i > 0 {
            assert_eq!(h["previousblockhash"], prev_hash, "linked");
            let t = h["time"].as_u64().expect("time");
            assert!(t >= prev_time);
            prev_time = t;
        }
        prev_hash = h["hash"].clone();
    }
    assert_eq!(net.node_height("validator-3").map(|h| h >= top), Some(true));
    assert_eq!(net.node_height("nope"), None);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_primary_forces_a_view_change() {
    let net = Net::start(100).await;
    let u = net.url("rpc-1");
    net.wait_height(1).await;
    net.fault("validator-1", Fault::Crash).await;
    let h0 = net.height();
    net.wait_height(h0 + 9).await;
    let mut changed_views = 0;
    for i in h0 + 1..=h0 + 9 {
        let h = net.header(&u, i).await;
        let primary = h["primary"].as_u64().expect("primary");
        assert_ne!(
            primary, 0,
            "the crashed validator never proposes (block {i})"
        );
        if i % 4 == 0 {
            assert_eq!(primary, 3, "view 1: primary = (index - 1) mod n");
            changed_views += 1;
        } else {
            assert_eq!(primary, i % 4);
        }
    }
    assert!(changed_views >= 2);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_f_validators_down_stalls_the_chain() {
    let net = Net::start(100).await;
    net.wait_height(1).await;
    net.fault("validator-1", Fault::Crash).await;
    net.fault("validator-2", Fault::Freeze).await;
    let h0 = net.height();
    // Absence of blocks: no polling possible, wait a number of block intervals.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(net.height(), h0, "no quorum, no block");
    net.recover("validator-2").await;
    net.wait_height(h0 + 2).await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_refuses_connections_and_recover_reopens_the_same_port() {
    let net = Net::start(100).await;
    let info = net
        .nodes()
        .into_iter()
        .find(|n| n.name == "rpc-2")
        .expect("rpc-2");
    assert_eq!(info.role, SimRole::Rpc);
    assert_eq!(info.rpc_url, format!("http://127.0.0.1:{}/", info.port));
    net.wait_height(1).await;

    // An open (hung) request is aborted by the crash.
    net.fault("rpc-2", Fault::Hang).await;
    let pending = tokio::spawn({
        let c = net.c.clone();
        let u = info.rpc_url.clone();
        async move { c.post(&u).body("{}").send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    net.fault("rpc-2", Fault::Crash).await;
    let res = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("open connection aborted")
        .expect("join");
    assert!(res.is_err(), "the hung request fails when the node crashes");

    let refused = tokio::net::TcpStream::connect(("127.0.0.1", info.port)).await;
    assert_eq!(
        refused.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    let err = net
        .post_json(
            &info.rpc_url,
            &json!({"jsonrpc":"2.0","id":1,"method":"getblockcount"}),
        )
        .send()
        .await
        .expect_err("refused");
    assert!(err.is_connect(), "{err}");

    let stuck = net.node_height("rpc-2").expect("height");
    net.wait_height(stuck + 3).await;
    assert_eq!(
        net.node_height("rpc-2"),
        Some(stuck),
        "crashed node stays behind"
    );

    net.recover("rpc-2").await;
    let count = net.block_count(&info.rpc_url).await;
    assert!(count > stuck + 3, "caught up: {count} vs stuck at {stuck}");
    assert!(net.node_faults("rpc-2").expect("faults").is_empty());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_and_slow() {
    let net = Net::start(200).await;
    let u = net.url("rpc-3");
    net.fault("rpc-3", Fault::Hang).await;
    let started = Instant::now();
    let err = net
        .post_json(
            &u,
            &json!({"jsonrpc":"2.0","id":1,"method":"getblockcount"}),
        )
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("no answer");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A hung request is answered once the node recovers.
    let pending = tokio::spawn({
        let net = net.clone();
        let u = u.clone();
        async move { net.block_count(&u).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pending.is_finished());
    net.recover("rpc-3").await;
    let n = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("answered after recover")
        .expect("join");
    assert!(n >= 1);

    net.fault("rpc-3", Fault::Slow { ms: 400 }).await;
    let started = Instant::now();
    net.block_count(&u).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_huge_and_lie() {
    let net = Net::start(200).await;
    let u = net.url("rpc-1");
    let req = json!({"jsonrpc":"2.0","id":1,"method":"getblockcount","params":[]});

    net.fault("rpc-1", Fault::Garbage).await;
    let resp = net.post_json(&u, &req).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.expect("body");
    assert!(!bytes.is_empty());
    assert!(serde_json::from_slice::<Value>(&bytes).is_err(), "not JSON");
    net.recover("rpc-1").await;

    net.fault("rpc-1", Fault::Huge).await;
    let mut resp = net.post_json(&u, &req).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let mut total = 0usize;
    let mut head = Vec::new();
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        if head.len() < 16 {
            head.extend_from_slice(&chunk[..chunk.len().min(16)]);
        }
        total += chunk.len();
    }
    assert!(total >= 50 * 1024 * 1024, "huge body: {total} bytes");
    assert!(head.starts_with(br#"{"jsonrpc":"2.0""#));
    net.recover("rpc-1").await;

    net.fault("rpc-1", Fault::Lie).await;
    let claimed = net.block_count(&u).await;
    let real = net.height();
    assert!(claimed >= real + 1_000_000, "{claimed} vs {real}");
    assert!(claimed <= net.height() + 1 + 1_000_000);
    // Other methods stay honest.
    let best = net.call(&u, "getbestblockhash", json!([])).await;
    assert!(is_hash(&best));
    let body = net.call_raw(&u, "getblockhash", json!([claimed - 1])).await;
    assert!(body.contains("-109"), "{body}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_changes_hashes_from_the_fork_height() {
    let net = Net::start(100).await;
    let (honest, forked) = (net.url("rpc-1"), net.url("rpc-2"));
    net.wait_height(2).await;
    let at = net.height() + 2;
    net.fault(
        "rpc-2",
        Fault::Fork {
            height: at,
            branch: None,
        },
    )
    .await;
    net.wait_height(at + 3).await;
    for i in 0..at {
        assert_eq!(
            net.block_hash(&honest, i).await,
            net.block_hash(&forked, i).await,
            "same block below the fork height ({i})"
        );
    }
    for i in at..=at + 3 {
        assert_ne!(
            net.block_hash(&honest, i).await,
            net.block_hash(&forked, i).await,
            "different block at and above the fork height ({i})"
        );
    }
    // The branch is linked and keeps pace.
    let b = net.header(&forked, at + 1).await;
    assert_eq!(b["previousblockhash"], net.block_hash(&forked, at).await);
    let best = net.call(&forked, "getbestblockhash", json!([])).await;
    let by_hash = net
        .call(&forked, "getblockheader", json!([best, true]))
        .await;
    assert!(by_hash["index"].as_u64().expect("index") >= at + 3);
    let count = net.block_count(&forked).await;
    eventually("fork advances", || async {
        net.block_count(&forked).await > count
    })
    .await;
    assert_eq!(
        net.node_faults("rpc-2"),
        Some(vec![Fault::Fork {
            height: at,
            branch: None,
        }])
    );
    net.recover("rpc-2").await;
    assert_eq!(
        net.block_hash(&honest, at).await,
        net.block_hash(&forked, at).await,
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_stops_the_node_and_recover_catches_up() {
    let net = Net::start(100).await;
    let u = net.url("rpc-3");
    net.wait_height(1).await;
    net.fault("rpc-3", Fault::Freeze).await;
    let frozen = net.node_height("rpc-3").expect("height");
    net.wait_height(frozen + 3).await;
    assert_eq!(net.block_count(&u).await, frozen + 1, "height stopped");
    let body = net.call_raw(&u, "getblockhash", json!([frozen + 1])).await;
    assert!(body.contains(r#""code":-109"#), "{body}");
    let st = net.call(&u, "getstateheight", json!([])).await;
    assert_eq!(st["localrootindex"], frozen);
    net.recover("rpc-3").await;
    assert!(net.block_count(&u).await >= frozen + 4, "caught up");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_and_resume() {
    let net = Net::start(100).await;
    net.wait_height(1).await;
    net.stall();
    let h0 = net.height();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(net.height(), h0, "stalled");
    assert!(net.is_stalled());
    net.resume();
    net.wait_height(h0 + 2).await;
    net.stall();
    let h1 = net.height();
    net.recover_all().await;
    net.wait_height(h1 + 1).await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_fault_sets_connection_count() {
    let net = Net::start(200).await;
    let u = net.url("validator-4");
    net.fault("validator-4", Fault::Peers { count: 0 }).await;
    assert_eq!(net.call(&u, "getconnectioncount", json!([])).await, 0);
    let peers = net.call(&u, "getpeers", json!([])).await;
    assert_eq!(peers, json!({"unconnected":[],"bad":[],"connected":[]}));
    net.fault("validator-4", Fault::Peers { count: 9 }).await;
    assert_eq!(net.call(&u, "getconnectioncount", json!([])).await, 9);
    let peers = net.call(&u, "getpeers", json!([])).await;
    assert_eq!(peers["connected"].as_array().map(Vec::len), Some(9));
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api() {
    let net = Net::start(100).await;
    let base = net.control_url();
    assert!(base.starts_with("http://127.0.0.1:") && !base.ends_with('/'));

    let nodes = net.control("/nodes").await;
    let nodes = nodes.as_array().expect("array").clone();
    assert_eq!(nodes.len(), 7);
    assert_eq!(nodes[0]["name"], "validator-1");
    assert_eq!(nodes[0]["role"], "validator");
    assert_eq!(nodes[6]["name"], "rpc-3");
    assert_eq!(nodes[6]["role"], "rpc");
    assert_eq!(nodes[6]["rpc_url"], net.url("rpc-3"));
    assert!(nodes[0]["height"].is_u64());
    assert_eq!(nodes[0]["faults"], json!([]));

    let chain = net.control("/chain").await;
    assert_eq!(chain["stalled"], false);
    assert_eq!(chain["msperblock"], 100);
    assert_eq!(chain["validators"], 4);
    assert!(chain["height"].is_u64());

    let post = |path, body| net.control_post(path, body);
    let (s, v) = post("/nodes/rpc-1/fault", Some(r#"{"fault":"slow","ms":500}"#)).await;
    assert_eq!((s, v), (200, json!({"ok":true})));
    let (s, _) = post("/nodes/rpc-1/fault", Some(r#"{"fault":"lie"}"#)).await;
    assert_eq!(s, 200);
    assert_eq!(
        net.node_faults("rpc-1"),
        Some(vec![Fault::Slow { ms: 500 }, Fault::Lie])
    );
    let nodes = net.control("/nodes").await;
    assert_eq!(
        nodes[4]["faults"],
        json!([{"fault":"slow","ms":500},{"fault":"lie"}])
    );
    let (s, v) = post("/nodes/rpc-1/recover", None).await;
    assert_eq!((s, v), (200, json!({"ok":true})));
    assert_eq!(net.node_faults("rpc-1"), Some(vec![]));

    let (s, v) = post("/nodes/validator-9/fault", Some(r#"{"fault":"crash"}"#)).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "not_found");
    assert!(v["error"]["message"].is_string());
    let (s, v) = post("/nodes/validator-9/recover", None).await;
    assert_eq!((s, v["error"]["code"].clone()), (404, json!("not_found")));
    let (s, v) = post("/nodes/rpc-1/fault", Some(r#"{"fault":"explode"}"#)).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["code"], "bad_request");
    let (s, v) = post("/nodes/rpc-1/fault", Some("not json")).await;
    assert_eq!((s, v["error"]["code"].clone()), (400, json!("bad_request")));
    let (s, _) = post("/nodes/rpc-1/fault", Some(r#"{"fault":"slow"}"#)).await;
    assert_eq!(s, 400, "slow needs ms");

    let (s, _) = post("/chain/stall", None).await;
    assert_eq!(s, 200);
    assert!(net.is_stalled());
    let chain = net.control("/chain").await;
    assert_eq!(chain["stalled"], true);
    let (s, _) = post("/chain/resume", None).await;
    assert_eq!(s, 200);
    assert!(!net.is_stalled());

    // Crash through the API, then recover everything.
    let rpc2 = net.url("rpc-2");
    let (s, _) = post("/nodes/rpc-2/fault", Some(r#"{"fault":"crash"}"#)).await;
    assert_eq!(s, 200);
    let (s, _) = post("/nodes/rpc-3/fault", Some(r#"{"fault":"freeze"}"#)).await;
    assert_eq!(s, 200);
    let (s, _) = post("/chain/stall", None).await;
    assert_eq!(s, 200);
    assert!(net.c.post(&rpc2).body("{}").send().await.is_err());
    let (s, v) = post("/recover", None).await;
    assert_eq!((s, v), (200, json!({"ok":true})));
    assert!(!net.is_stalled());
    assert!(net.block_count(&rpc2).await >= 1);
    for n in net.nodes() {
        assert_eq!(net.node_faults(&n.name), Some(vec![]));
    }

    let resp = net
        .c
        .get(format!("{base}/nope"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "not_found");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_and_shutdown_frees_ports() {
    let err = SimNetwork::start(SimConfig {
        validators: 0,
        ..SimConfig::default()
    })
    .await
    .expect_err("no validators");
    assert!(matches!(err, SimError::InvalidConfig(_)));

    let sim = SimNetwork::start(config(100)).await.expect("start");
    assert!(matches!(
        sim.inject("validator-99", Fault::Crash).await,
        Err(SimError::UnknownNode(_))
    ));
    assert!(matches!(
        sim.recover_node("nobody").await,
        Err(SimError::UnknownNode(_))
    ));
    let names: Vec<String> = sim.nodes().into_iter().map(|n| n.name).collect();
    assert_eq!(
        names,
        [
            "validator-1",
            "validator-2",
            "validator-3",
            "validator-4",
            "rpc-1",
            "rpc-2",
            "rpc-3"
        ]
    );
    let ports: Vec<u16> = sim.nodes().iter().map(|n| n.port).collect();
    let control_port: u16 = sim
        .control_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let clone = sim.clone();
    clone.shutdown().await;
    for p in ports.iter().chain([control_port].iter()) {
        let r = tokio::net::TcpStream::connect(("127.0.0.1", *p)).await;
        assert!(r.is_err(), "port {p} closed after shutdown");
        std::net::TcpListener::bind(("127.0.0.1", *p)).expect("port free again");
    }
    drop(sim);

    // Dropping the last handle stops the network too.
    let sim = SimNetwork::start(config(100)).await.expect("start");
    let port = sim.nodes()[0].port;
    drop(sim);
    eventually("listener closed after drop", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    })
    .await;
}

/// `GET /metrics` of one node, as (status, content type, body, time taken).
async fn metrics(net: &Net, node: &str) -> (u16, String, String, Duration) {
    let started = Instant::now();
    let resp = net
        .c
        .get(format!("{}metrics", net.url(node)))
        .send()
        .await
        .expect("metrics answer");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.text().await.expect("body");
    (status, ctype, body, started.elapsed())
}

/// The value of the sample line `name value` (no labels) in an exposition body.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_follows_faults() {
    let net = Net::start(100).await;
    net.wait_height(2).await;

    // neo-rs names, HELP and TYPE lines, the Prometheus text content type.
    let (status, ctype, body, _) = metrics(&net, "rpc-1").await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    for family in [
        "neo_node_ledger_height",
        "neo_node_connected_peers",
        "neo_node_up",
    ] {
        assert!(body.contains(&format!("# HELP {family} ")), "{body}");
        assert!(body.contains(&format!("# TYPE {family} gauge\n")), "{body}");
    }
    assert_eq!(sample(&body, "neo_node_up"), Some(1.0));
    assert_eq!(sample(&body, "neo_node_connected_peers"), Some(6.0));
    let h = sample(&body, "neo_node_ledger_height").expect("height") as u64;
    assert!(h >= 2 && h <= net.height(), "{h} vs {}", net.height());
    assert!(body.contains("neo_node_info{network=\"0x004F454E\",version=\"0.1.0\"} 1\n"));
    // POST on /metrics is still JSON-RPC.
    let url = format!("{}metrics", net.url("rpc-1"));
    assert!(net.block_count(&url).await >= 3);

    // freeze: the height stops; peers: the count follows.
    net.fault("rpc-1", Fault::Freeze).await;
    net.fault("rpc-1", Fault::Peers { count: 0 }).await;
    let frozen = net.node_height("rpc-1").expect("height");
    net.wait_height(frozen + 3).await;
    let (_, _, body, _) = metrics(&net, "rpc-1").await;
    assert_eq!(sample(&body, "neo_node_ledger_height"), Some(frozen as f64));
    assert_eq!(sample(&body, "neo_node_connected_peers"), Some(0.0));
    net.recover("rpc-1").await;

    // slow: delayed; hang: no answer; crash: refused; recover: served again.
    net.fault("rpc-2", Fault::Slow { ms: 300 }).await;
    let (status, _, _, took) = metrics(&net, "rpc-2").await;
    assert_eq!(status, 200);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    net.recover("rpc-2").await;
    net.fault("rpc-2", Fault::Hang).await;
    let err = net
        .c
        .get(format!("{}metrics", net.url("rpc-2")))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("a hung node does not answer");
    assert!(err.is_timeout(), "{err}");
    net.recover("rpc-2").await;
    net.fault("rpc-2", Fault::Crash).await;
    let err = net
        .c
        .get(format!("{}metrics", net.url("rpc-2")))
        .send()
        .await
        .expect_err("a crashed node refuses");
    assert!(err.is_connect(), "{err}");
    net.recover("rpc-2").await;
    let (status, _, body, _) = metrics(&net, "rpc-2").await;
    assert_eq!(status, 200);
    assert_eq!(sample(&body, "neo_node_up"), Some(1.0));
    net.shutdown().await;
}
