//! Integration tests of the simulated network: real servers on ephemeral ports, spoken to over
//! HTTP with reqwest. Waits poll for a condition with a deadline; the only plain waits are
//! those that check that something does NOT happen.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use neo_ir_sim::{Fault, SimConfig, SimError, SimNetwork, SimRole};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(20);

fn config(msperblock: u64) -> SimConfig {
    SimConfig {
        msperblock,
        seed: 7,
        ..SimConfig::default()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

fn url(sim: &SimNetwork, node: &str) -> String {
    sim.nodes()
        .into_iter()
        .find(|n| n.name == node)
        .expect("node exists")
        .rpc_url
}

/// Raw body of a JSON-RPC call.
async fn call_raw(c: &reqwest::Client, url: &str, method: &str, params: Value) -> String {
    c.post(url)
        .json(&json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body")
}

/// The `result` of a JSON-RPC call (panics on an error answer).
async fn call(c: &reqwest::Client, url: &str, method: &str, params: Value) -> Value {
    let body = call_raw(c, url, method, params).await;
    let v: Value = serde_json::from_str(&body).expect("json");
    assert!(v.get("error").is_none(), "{method} failed: {body}");
    v["result"].clone()
}

async fn block_count(c: &reqwest::Client, url: &str) -> u64 {
    call(c, url, "getblockcount", json!([]))
        .await
        .as_u64()
        .expect("number")
}

async fn header(c: &reqwest::Client, url: &str, index: u64) -> Value {
    call(c, url, "getblockheader", json!([index, true])).await
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

async fn wait_height(sim: &SimNetwork, h: u64) {
    eventually(&format!("height {h}"), || async { sim.height() >= h }).await;
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
    let sim = SimNetwork::start(config(150)).await.expect("start");
    let c = client();
    let u = url(&sim, "rpc-1");
    wait_height(&sim, 2).await;

    // getblockheader: key order of the neo-rs capture (+ nextblockhash when there is a next).
    let fixture = Ordered::parse(include_str!("fixtures/rpc-getblockheader-0-verbose.json"));
    let fixture_keys = fixture.get("result").keys();
    let raw = call_raw(&c, &u, "getblockheader", json!([0, true])).await;
    let ours = Ordered::parse(&raw);
    assert_eq!(ours.keys(), fixture.keys(), "envelope key order");
    let mut expected = fixture_keys.clone();
    expected.push("nextblockhash".into());
    assert_eq!(ours.get("result").keys(), expected);
    let g: Value = serde_json::from_str(&raw).expect("json");
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
        call(&c, &u, "getblockhash", json!([0])).await,
        "getblockhash agrees"
    );

    // The newest block has no nextblockhash and one confirmation (stalled: no race).
    sim.stall();
    let best = call(&c, &u, "getbestblockhash", json!([])).await;
    assert!(is_hash(&best));
    let raw = call_raw(&c, &u, "getblockheader", json!([best, true])).await;
    let tip: Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(Ordered::parse(&raw).get("result").keys(), fixture_keys);
    assert_eq!(tip["result"]["confirmations"], 1);
    assert_eq!(tip["result"]["hash"], best);
    assert_eq!(tip["result"]["index"], sim.height());
    let t = tip["result"]["time"].as_u64().expect("time");
    assert!(t > 1_700_000_000_000, "time in ms since the epoch: {t}");
    sim.resume();
    // Non-verbose: a base64 string.
    let plain = call(&c, &u, "getblockheader", json!([1])).await;
    assert!(plain
        .as_str()
        .is_some_and(|s| s.len() % 4 == 0 && !s.is_empty()));

    // getversion: same keys in the same order at every level.
    let fixture = Ordered::parse(include_str!("fixtures/rpc-getversion.json"));
    let raw = call_raw(&c, &u, "getversion", json!([])).await;
    let ours = Ordered::parse(&raw);
    let (f, o) = (fixture.get("result"), ours.get("result"));
    assert_eq!(o.keys(), f.keys());
    assert_eq!(o.get("rpc").keys(), f.get("rpc").keys());
    assert_eq!(o.get("protocol").keys(), f.get("protocol").keys());
    let v: Value = serde_json::from_str(&raw).expect("json");
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
    for n in sim.nodes() {
        let v = call(&c, &n.rpc_url, "getversion", json!([])).await;
        nonces.push(v["nonce"].as_u64().expect("nonce"));
    }
    nonces.sort_unstable();
    nonces.dedup();
    assert_eq!(nonces.len(), 7, "nonce unique per node");

    // Other shapes.
    assert_eq!(call(&c, &u, "getconnectioncount", json!([])).await, 6);
    let raw = call_raw(&c, &u, "getpeers", json!([])).await;
    assert_eq!(
        Ordered::parse(&raw).get("result").keys(),
        ["unconnected", "bad", "connected"]
    );
    let peers: Value = serde_json::from_str(&raw).expect("json");
    let connected = peers["result"]["connected"].as_array().expect("array");
    assert_eq!(connected.len(), 6);
    assert_eq!(connected[0]["address"], "127.0.0.1");
    assert!(connected[0]["port"].is_u64());
    let raw = call_raw(&c, &u, "getstateheight", json!([])).await;
    assert_eq!(
        Ordered::parse(&raw).get("result").keys(),
        ["localrootindex", "validatedrootindex"]
    );
    let raw = call_raw(&c, &u, "getstateroot", json!([1])).await;
    assert_eq!(
        Ordered::parse(&raw).get("result").keys(),
        ["version", "index", "roothash", "witnesses"]
    );
    let root: Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(root["result"]["index"], 1);
    assert!(is_hash(&root["result"]["roothash"]));
    assert_eq!(root["result"]["witnesses"], json!([]));
    let again = call(&c, &url(&sim, "validator-2"), "getstateroot", json!([1])).await;
    assert_eq!(
        again["roothash"], root["result"]["roothash"],
        "deterministic"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_match_neo_rs() {
    let sim = SimNetwork::start(config(200)).await.expect("start");
    let c = client();
    let u = url(&sim, "validator-1");

    let body = call_raw(&c, &u, "getblockhash", json!([100_000])).await;
    assert_eq!(
        body,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-109,"message":"Unknown height"}}"#
    );
    let body = call_raw(&c, &u, "getblockheader", json!(["zz", true])).await;
    assert_eq!(
        body,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Invalid params - getblockheader expects block hash or index, got 'zz'","data":"getblockheader expects block hash or index, got 'zz'"}}"#
    );
    let body = call_raw(&c, &u, "getblockheader", json!([100_000, true])).await;
    assert_eq!(
        body,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-109,"message":"Unknown height"}}"#
    );
    let unknown = format!("0x{}", "ab".repeat(32));
    let body = call_raw(&c, &u, "getblockheader", json!([unknown, true])).await;
    assert_eq!(
        body,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-101,"message":"Unknown block"}}"#
    );
    let body = call_raw(&c, &u, "getstateroot", json!([100_000])).await;
    assert_eq!(
        body,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-106,"message":"Unknown state root"}}"#
    );
    let body = call_raw(&c, &u, "nosuchmethod", json!([])).await;
    assert_eq!(
        body,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}"#
    );

    // Malformed JSON, string ids, no content type.
    let resp = c.post(&u).body("{not json").send().await.expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.expect("body"),
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#
    );
    let resp = c
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
    let resp = c.get(&u).send().await.expect("send");
    assert_eq!(resp.status(), 405);
    assert_eq!(
        resp.text().await.expect("body"),
        "Used HTTP Method is not allowed. POST is required"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_answer_in_order_with_ids() {
    let sim = SimNetwork::start(config(200)).await.expect("start");
    let c = client();
    let u = url(&sim, "rpc-1");
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"getblockcount","params":[]},
        {"jsonrpc":"2.0","id":"two","method":"getconnectioncount","params":[]},
        {"jsonrpc":"2.0","id":3,"method":"nosuch","params":[]},
        {"jsonrpc":"2.0","id":4,"method":"getblockhash","params":[0]}
    ]);
    let text = c
        .post(&u)
        .json(&batch)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
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
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blockcount_advances_and_primaries_rotate() {
    let sim = SimNetwork::start(config(100)).await.expect("start");
    let c = client();
    let u = url(&sim, "validator-3");

    let before = sim.height();
    let count = block_count(&c, &u).await;
    let after = sim.height();
    assert!(
        (before + 1..=after + 1).contains(&count),
        "getblockcount = height + 1"
    );
    wait_height(&sim, count + 5).await;
    assert!(block_count(&c, &u).await > count, "advances");

    let top = sim.height();
    let mut prev_hash = Value::Null;
    let mut prev_time = 0;
    for i in 0..=top {
        let h = header(&c, &u, i).await;
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
    assert_eq!(sim.node_height("validator-3").map(|h| h >= top), Some(true));
    assert_eq!(sim.node_height("nope"), None);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_primary_forces_a_view_change() {
    let sim = SimNetwork::start(config(100)).await.expect("start");
    let c = client();
    let u = url(&sim, "rpc-1");
    wait_height(&sim, 1).await;
    sim.inject("validator-1", Fault::Crash)
        .await
        .expect("crash");
    let h0 = sim.height();
    wait_height(&sim, h0 + 9).await;
    let mut changed_views = 0;
    for i in h0 + 1..=h0 + 9 {
        let h = header(&c, &u, i).await;
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
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_f_validators_down_stalls_the_chain() {
    let sim = SimNetwork::start(config(100)).await.expect("start");
    wait_height(&sim, 1).await;
    sim.inject("validator-1", Fault::Crash)
        .await
        .expect("crash");
    sim.inject("validator-2", Fault::Freeze)
        .await
        .expect("freeze");
    let h0 = sim.height();
    // Absence of blocks: no polling possible, wait a number of block intervals.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(sim.height(), h0, "no quorum, no block");
    sim.recover_node("validator-2").await.expect("recover");
    wait_height(&sim, h0 + 2).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_refuses_connections_and_recover_reopens_the_same_port() {
    let sim = SimNetwork::start(config(100)).await.expect("start");
    let c = client();
    let info = sim
        .nodes()
        .into_iter()
        .find(|n| n.name == "rpc-2")
        .expect("rpc-2");
    assert_eq!(info.role, SimRole::Rpc);
    assert_eq!(info.rpc_url, format!("http://127.0.0.1:{}/", info.port));
    wait_height(&sim, 1).await;

    // An open (hung) request is aborted by the crash.
    sim.inject("rpc-2", Fault::Hang).await.expect("hang");
    let pending = tokio::spawn({
        let c = c.clone();
        let u = info.rpc_url.clone();
        async move { c.post(&u).body("{}").send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    sim.inject("rpc-2", Fault::Crash).await.expect("crash");
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
    let err = c
        .post(&info.rpc_url)
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"getblockcount"}))
        .send()
        .await
        .expect_err("refused");
    assert!(err.is_connect(), "{err}");

    let stuck = sim.node_height("rpc-2").expect("height");
    wait_height(&sim, stuck + 3).await;
    assert_eq!(
        sim.node_height("rpc-2"),
        Some(stuck),
        "crashed node stays behind"
    );

    sim.recover_node("rpc-2").await.expect("recover");
    let count = block_count(&c, &info.rpc_url).await;
    assert!(count > stuck + 3, "caught up: {count} vs stuck at {stuck}");
    assert!(sim.node_faults("rpc-2").expect("faults").is_empty());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_and_slow() {
    let sim = SimNetwork::start(config(200)).await.expect("start");
    let c = client();
    let u = url(&sim, "rpc-3");
    sim.inject("rpc-3", Fault::Hang).await.expect("hang");
    let started = Instant::now();
    let err = c
        .post(&u)
        .timeout(Duration::from_millis(300))
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"getblockcount"}))
        .send()
        .await
        .expect_err("no answer");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A hung request is answered once the node recovers.
    let pending = tokio::spawn({
        let c = c.clone();
        let u = u.clone();
        async move { block_count(&c, &u).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pending.is_finished());
    sim.recover_node("rpc-3").await.expect("recover");
    let n = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("answered after recover")
        .expect("join");
    assert!(n >= 1);

    sim.inject("rpc-3", Fault::Slow { ms: 400 })
        .await
        .expect("slow");
    let started = Instant::now();
    block_count(&c, &u).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_huge_and_lie() {
    let sim = SimNetwork::start(config(200)).await.expect("start");
    let c = client();
    let u = url(&sim, "rpc-1");
    let req = json!({"jsonrpc":"2.0","id":1,"method":"getblockcount","params":[]});

    sim.inject("rpc-1", Fault::Garbage).await.expect("garbage");
    let resp = c.post(&u).json(&req).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.expect("body");
    assert!(!bytes.is_empty());
    assert!(serde_json::from_slice::<Value>(&bytes).is_err(), "not JSON");
    sim.recover_node("rpc-1").await.expect("recover");

    sim.inject("rpc-1", Fault::Huge).await.expect("huge");
    let mut resp = c.post(&u).json(&req).send().await.expect("send");
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
    sim.recover_node("rpc-1").await.expect("recover");

    sim.inject("rpc-1", Fault::Lie).await.expect("lie");
    let claimed = block_count(&c, &u).await;
    let real = sim.height();
    assert!(claimed >= real + 1_000_000, "{claimed} vs {real}");
    assert!(claimed <= sim.height() + 1 + 1_000_000);
    // Other methods stay honest.
    let best = call(&c, &u, "getbestblockhash", json!([])).await;
    assert!(is_hash(&best));
    let body = call_raw(&c, &u, "getblockhash", json!([claimed - 1])).await;
    assert!(body.contains("-109"), "{body}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_changes_hashes_from_the_fork_height() {
    let sim = SimNetwork::start(config(100)).await.expect("start");
    let c = client();
    let (honest, forked) = (url(&sim, "rpc-1"), url(&sim, "rpc-2"));
    wait_height(&sim, 2).await;
    let at = sim.height() + 2;
    sim.inject("rpc-2", Fault::Fork { height: at })
        .await
        .expect("fork");
    wait_height(&sim, at + 3).await;
    for i in 0..at {
        assert_eq!(
            call(&c, &honest, "getblockhash", json!([i])).await,
            call(&c, &forked, "getblockhash", json!([i])).await,
            "same block below the fork height ({i})"
        );
    }
    for i in at..=at + 3 {
        assert_ne!(
            call(&c, &honest, "getblockhash", json!([i])).await,
            call(&c, &forked, "getblockhash", json!([i])).await,
            "different block at and above the fork height ({i})"
        );
    }
    // The branch is linked and keeps pace.
    let b = header(&c, &forked, at + 1).await;
    assert_eq!(
        b["previousblockhash"],
        call(&c, &forked, "getblockhash", json!([at])).await
    );
    let best = call(&c, &forked, "getbestblockhash", json!([])).await;
    let by_hash = call(&c, &forked, "getblockheader", json!([best, true])).await;
    assert!(by_hash["index"].as_u64().expect("index") >= at + 3);
    let count = block_count(&c, &forked).await;
    eventually("fork advances", || async {
        block_count(&c, &forked).await > count
    })
    .await;
    assert_eq!(
        sim.node_faults("rpc-2"),
        Some(vec![Fault::Fork { height: at }])
    );
    sim.recover_node("rpc-2").await.expect("recover");
    assert_eq!(
        call(&c, &honest, "getblockhash", json!([at])).await,
        call(&c, &forked, "getblockhash", json!([at])).await,
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_stops_the_node_and_recover_catches_up() {
    let sim = SimNetwork::start(config(100)).await.expect("start");
    let c = client();
    let u = url(&sim, "rpc-3");
    wait_height(&sim, 1).await;
    sim.inject("rpc-3", Fault::Freeze).await.expect("freeze");
    let frozen = sim.node_height("rpc-3").expect("height");
    wait_height(&sim, frozen + 3).await;
    assert_eq!(block_count(&c, &u).await, frozen + 1, "height stopped");
    let body = call_raw(&c, &u, "getblockhash", json!([frozen + 1])).await;
    assert!(body.contains(r#""code":-109"#), "{body}");
    let st = call(&c, &u, "getstateheight", json!([])).await;
    assert_eq!(st["localrootindex"], frozen);
    sim.recover_node("rpc-3").await.expect("recover");
    assert!(block_count(&c, &u).await >= frozen + 4, "caught up");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_and_resume() {
    let sim = SimNetwork::start(config(100)).await.expect("start");
    wait_height(&sim, 1).await;
    sim.stall();
    let h0 = sim.height();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sim.height(), h0, "stalled");
    assert!(sim.is_stalled());
    sim.resume();
    wait_height(&sim, h0 + 2).await;
    sim.stall();
    let h1 = sim.height();
    sim.recover_all().await;
    wait_height(&sim, h1 + 1).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_fault_sets_connection_count() {
    let sim = SimNetwork::start(config(200)).await.expect("start");
    let c = client();
    let u = url(&sim, "validator-4");
    sim.inject("validator-4", Fault::Peers { count: 0 })
        .await
        .expect("peers");
    assert_eq!(call(&c, &u, "getconnectioncount", json!([])).await, 0);
    let peers = call(&c, &u, "getpeers", json!([])).await;
    assert_eq!(peers, json!({"unconnected":[],"bad":[],"connected":[]}));
    sim.inject("validator-4", Fault::Peers { count: 9 })
        .await
        .expect("peers");
    assert_eq!(call(&c, &u, "getconnectioncount", json!([])).await, 9);
    let peers = call(&c, &u, "getpeers", json!([])).await;
    assert_eq!(peers["connected"].as_array().map(Vec::len), Some(9));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api() {
    let sim = SimNetwork::start(config(100)).await.expect("start");
    let c = client();
    let base = sim.control_url();
    assert!(base.starts_with("http://127.0.0.1:") && !base.ends_with('/'));

    let nodes: Value = c
        .get(format!("{base}/nodes"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let nodes = nodes.as_array().expect("array").clone();
    assert_eq!(nodes.len(), 7);
    assert_eq!(nodes[0]["name"], "validator-1");
    assert_eq!(nodes[0]["role"], "validator");
    assert_eq!(nodes[6]["name"], "rpc-3");
    assert_eq!(nodes[6]["role"], "rpc");
    assert_eq!(nodes[6]["rpc_url"], url(&sim, "rpc-3"));
    assert!(nodes[0]["height"].is_u64());
    assert_eq!(nodes[0]["faults"], json!([]));

    let chain: Value = c
        .get(format!("{base}/chain"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(chain["stalled"], false);
    assert_eq!(chain["msperblock"], 100);
    assert_eq!(chain["validators"], 4);
    assert!(chain["height"].is_u64());

    let post = |path: &str, body: Option<&str>| {
        let mut req = c.post(format!("{base}{path}"));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        async move {
            let resp = req.send().await.expect("send");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.expect("json"))
        }
    };

    let (s, v) = post("/nodes/rpc-1/fault", Some(r#"{"fault":"slow","ms":500}"#)).await;
    assert_eq!((s, v), (200, json!({"ok":true})));
    let (s, _) = post("/nodes/rpc-1/fault", Some(r#"{"fault":"lie"}"#)).await;
    assert_eq!(s, 200);
    assert_eq!(
        sim.node_faults("rpc-1"),
        Some(vec![Fault::Slow { ms: 500 }, Fault::Lie])
    );
    let nodes: Value = c
        .get(format!("{base}/nodes"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        nodes[4]["faults"],
        json!([{"fault":"slow","ms":500},{"fault":"lie"}])
    );
    let (s, v) = post("/nodes/rpc-1/recover", None).await;
    assert_eq!((s, v), (200, json!({"ok":true})));
    assert_eq!(sim.node_faults("rpc-1"), Some(vec![]));

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
    assert!(sim.is_stalled());
    let chain: Value = c
        .get(format!("{base}/chain"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(chain["stalled"], true);
    let (s, _) = post("/chain/resume", None).await;
    assert_eq!(s, 200);
    assert!(!sim.is_stalled());

    // Crash through the API, then recover everything.
    let rpc2 = url(&sim, "rpc-2");
    let (s, _) = post("/nodes/rpc-2/fault", Some(r#"{"fault":"crash"}"#)).await;
    assert_eq!(s, 200);
    let (s, _) = post("/nodes/rpc-3/fault", Some(r#"{"fault":"freeze"}"#)).await;
    assert_eq!(s, 200);
    let (s, _) = post("/chain/stall", None).await;
    assert_eq!(s, 200);
    assert!(c.post(&rpc2).body("{}").send().await.is_err());
    let (s, v) = post("/recover", None).await;
    assert_eq!((s, v), (200, json!({"ok":true})));
    assert!(!sim.is_stalled());
    assert!(block_count(&c, &rpc2).await >= 1);
    for n in sim.nodes() {
        assert_eq!(sim.node_faults(&n.name), Some(vec![]));
    }

    let resp = c.get(format!("{base}/nope")).send().await.expect("send");
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "not_found");
    sim.shutdown().await;
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
