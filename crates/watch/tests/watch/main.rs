//! End to end over real sockets: the simulated Neo network on port 0, the watcher with a real
//! SQLite file, and neo-ir's API on port 0, queried over HTTP. Short probe intervals; every
//! wait polls for a condition with a generous deadline (no sleeps that assume a fast machine).

use std::future::Future;
use std::time::{Duration, Instant};

use neo_ir_core::config::Config;
use neo_ir_sim::{Fault, SimConfig, SimNetwork};
use neo_ir_store::Store;
use neo_ir_watch::Watcher;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod dispatch;
mod reviews;

const DEADLINE: Duration = Duration::from_secs(30);

async fn network(validators: u32, rpc: u32, msperblock: u64) -> SimNetwork {
    SimNetwork::start(SimConfig {
        validators,
        rpc,
        msperblock,
        ..SimConfig::default()
    })
    .await
    .expect("sim starts")
}

fn config(net: &SimNetwork, store_url: &str) -> Config {
    let mut c = Config::with_defaults(neo_ir_watch::simulated_nodes(net), store_url);
    c.probe.interval = Duration::from_millis(100);
    c.probe.timeout = Duration::from_millis(400);
    c.detect.debounce.clear_for = Duration::from_secs(1);
    // resolved after half a second of stability (the playbook's 30 min, shortened)
    c.response.stability_window = Duration::from_millis(500);
    c
}

/// A running watcher plus its API.
struct Running {
    api: String,
    stop: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    http: reqwest::Client,
}

impl Running {
    async fn start(cfg: Config) -> Running {
        let store = Store::open(&cfg.store.url).await.expect("store opens");
        let (listener, addr) = neo_ir_server::bind("127.0.0.1:0").await.unwrap();
        let (s1, r1) = oneshot::channel::<()>();
        let (s2, r2) = oneshot::channel::<()>();
        let server = tokio::spawn({
            let store = store.clone();
            async move {
                neo_ir_server::serve(listener, store, async {
                    let _ = r1.await;
                })
                .await
                .unwrap();
            }
        });
        let watcher = Watcher::new(cfg, store).expect("watcher builds");
        let watching = tokio::spawn(async move {
            watcher
                .run(async {
                    let _ = r2.await;
                })
                .await
                .expect("watcher runs");
        });
        Running {
            api: format!("http://{addr}"),
            stop: vec![s1, s2],
            tasks: vec![server, watching],
            http: reqwest::Client::new(),
        }
    }

    async fn stop(self) {
        for s in self.stop {
            let _ = s.send(());
        }
        for t in self.tasks {
            t.await.expect("task ends cleanly");
        }
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.api))
            .send()
            .await
            .expect("API answers")
            .json()
            .await
            .expect("API sends JSON")
    }

    async fn incidents(&self, all: bool) -> Vec<Value> {
        let path = if all {
            "/api/v1/incidents?status=all"
        } else {
            "/api/v1/incidents"
        };
        self.get(path).await["incidents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Wait for an open incident of `kind` and return it.
    async fn wait_open(&self, kind: &str) -> Value {
        eventually(&format!("a {kind} incident opens"), || async {
            of_kind(&self.incidents(false).await, kind)
                .first()
                .map(|i| (*i).clone())
        })
        .await
    }

    /// Wait until incident `id` is resolved and return it with its timeline.
    async fn wait_resolved(&self, id: &Value) -> Value {
        let path = format!("/api/v1/incidents/{id}");
        eventually(&format!("incident {id} resolves"), || async {
            let d = self.get(&path).await;
            (d["status"] == "resolved").then_some(d)
        })
        .await
    }

    async fn node(&self, name: &str) -> Value {
        let nodes = self.get("/api/v1/nodes").await;
        nodes["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["name"] == name).cloned())
            .unwrap_or(Value::Null)
    }
}

/// Poll `probe` until it yields `Some`, or panic with `what` after the deadline.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn of_kind<'a>(list: &'a [Value], kind: &str) -> Vec<&'a Value> {
    list.iter().filter(|i| i["kind"] == kind).collect()
}

fn store_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/neo-ir.db", dir.path().display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_rpc_node_opens_p2_node_down_and_resolves_after_recover() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(4, 3, 200).await;
    let w = Running::start(config(&net, &store_url(&dir))).await;
    eventually("all nodes ok", || async {
        let nodes = w.get("/api/v1/nodes").await;
        let all = nodes["nodes"].as_array()?;
        (all.len() == 7 && all.iter().all(|n| n["state"] == "ok")).then_some(())
    })
    .await;

    net.inject("rpc-1", Fault::Crash).await.unwrap();
    let inc = w.wait_open("node_down").await;
    assert_eq!(inc["severity"], "P2");
    assert_eq!(inc["nodes"], serde_json::json!(["rpc-1"]));
    assert_eq!(inc["status"], "detected");
    assert_eq!(inc["evidence"]["error_kind"], "refused");
    assert!(inc["evidence"]["consecutive_failures"].as_u64().unwrap() >= 2);
    assert!(inc["resolved_at"].is_null());
    // the node views are stored at the end of the round that opened the incident
    eventually("rpc-1's view says refused", || async {
        (w.node("rpc-1").await["error_kind"] == "refused").then_some(())
    })
    .await;

    net.recover_node("rpc-1").await.unwrap();
    let resolved = w.wait_resolved(&inc["id"]).await;
    assert!(resolved["resolved_at"].is_string());
    let types: Vec<&str> = resolved["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"opened"));
    assert_eq!(
        types[types.len().saturating_sub(2)..],
        ["resolved", "review_scheduled"],
        "a P2 gets its review scheduled as it resolves"
    );
    let all = w.incidents(true).await;
    assert_eq!(
        of_kind(&all, "node_down").len(),
        1,
        "one crash = one incident: {all:?}"
    );
    w.stop().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_stall_is_one_p1_consensus_failure() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(4, 3, 200).await;
    let w = Running::start(config(&net, &store_url(&dir))).await;
    let h = net.height();
    eventually("chain advances", || async {
        (net.height() >= h + 2).then_some(())
    })
    .await;

    net.stall();
    let inc = w.wait_open("consensus_failure").await;
    assert_eq!(inc["severity"], "P1");
    assert_eq!(
        inc["evidence"]["msperblock"], 200,
        "msperblock read from getversion"
    );
    assert_eq!(inc["evidence"]["threshold_ms"], 2 * 200 + 800);
    assert!(inc["evidence"]["stalled_ms"].as_u64().unwrap() > 1200);
    assert_eq!(inc["nodes"].as_array().unwrap().len(), 7);
    // attribution material from the headers: who proposed the last block, who is next
    let ev = &inc["evidence"];
    assert_eq!(ev["validators"], 4);
    assert!(ev["last_block_primary"].as_u64().unwrap() < 4, "{ev}");
    assert!(
        ev["last_block_time_ms"].as_u64().unwrap() > 1_700_000_000_000,
        "{ev}"
    );
    let height = ev["height"].as_u64().unwrap();
    assert_eq!(ev["next_primary_index"], (height + 1) % 4);
    let open = w.incidents(false).await;
    assert_eq!(
        open.len(),
        1,
        "one incident for a network fault, not one per node: {open:?}"
    );

    net.resume();
    w.wait_resolved(&inc["id"]).await;
    // after the resume, every node catches up: no node may look frozen for the stall
    let resumed_at = net.height();
    eventually("chain advances after resume", || async {
        (net.height() >= resumed_at + 3).then_some(())
    })
    .await;
    let all = w.incidents(true).await;
    assert_eq!(all.len(), 1, "only the consensus failure: {all:?}");
    assert_eq!(of_kind(&all, "consensus_failure").len(), 1);
    w.stop().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_node_is_a_sync_failure_of_that_node_only() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(4, 3, 200).await;
    let w = Running::start(config(&net, &store_url(&dir))).await;
    eventually("rpc-3 ok", || async {
        (w.node("rpc-3").await["state"] == "ok").then_some(())
    })
    .await;

    net.inject("rpc-3", Fault::Freeze).await.unwrap();
    let inc = w.wait_open("sync_failure").await;
    assert_eq!(inc["nodes"], serde_json::json!(["rpc-3"]));
    assert_eq!(inc["severity"], "P2");
    assert_eq!(inc["evidence"]["level"], "frozen");
    let open = w.incidents(false).await;
    assert_eq!(open.len(), 1, "only the frozen node: {open:?}");
    assert!(of_kind(&open, "consensus_failure").is_empty());

    net.recover_node("rpc-3").await.unwrap();
    w.wait_resolved(&inc["id"]).await;
    w.stop().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_watcher_resumes_the_same_incident() {
    let dir = tempfile::tempdir().unwrap();
    let url = store_url(&dir);
    let net = network(4, 3, 200).await;
    let w = Running::start(config(&net, &url)).await;
    net.inject("rpc-2", Fault::Crash).await.unwrap();
    let inc = w.wait_open("node_down").await;
    let id = inc["id"].as_i64().unwrap();
    w.stop().await;

    // a new watcher process on the same store, the node still down
    let w = Running::start(config(&net, &url)).await;
    eventually(
        "the new watcher has probed rpc-2 at least twice",
        || async {
            let n = w.node("rpc-2").await;
            let ts = |v: &Value| v.as_str()?.parse::<jiff::Timestamp>().ok();
            let fresh = ts(&n["last_probe_at"])? > ts(&inc["opened_at"])?;
            (fresh && n["consecutive_failures"].as_u64()? >= 2).then_some(())
        },
    )
    .await;
    let open = w.incidents(false).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["id"], id, "same incident id after restart");
    let detail = w.get(&format!("/api/v1/incidents/{id}")).await;
    let opened = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "opened")
        .count();
    assert_eq!(opened, 1, "no duplicate open event: {detail}");

    net.recover_node("rpc-2").await.unwrap();
    w.wait_resolved(&inc["id"]).await;
    assert_eq!(w.incidents(true).await.len(), 1);
    w.stop().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_nodes_never_stall_or_crash_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(4, 4, 200).await;
    let w = Running::start(config(&net, &store_url(&dir))).await;
    eventually("all nodes ok", || async {
        let nodes = w.get("/api/v1/nodes").await;
        let all = nodes["nodes"].as_array()?;
        (all.len() == 8 && all.iter().all(|n| n["state"] == "ok")).then_some(())
    })
    .await;

    net.inject("rpc-1", Fault::Hang).await.unwrap();
    net.inject("rpc-2", Fault::Garbage).await.unwrap();
    net.inject("rpc-3", Fault::Huge).await.unwrap();
    net.inject("rpc-4", Fault::Lie).await.unwrap();

    for (node, kind) in [
        ("rpc-1", "timeout"),
        ("rpc-2", "malformed"),
        ("rpc-3", "too_large"),
        ("rpc-4", "implausible_height"),
    ] {
        eventually(&format!("{node} reported as {kind}"), || async {
            (w.node(node).await["error_kind"] == kind).then_some(())
        })
        .await;
    }

    // The healthy validators keep being probed and keep advancing while the hostile nodes
    // misbehave: their heights move on over several rounds.
    let before = w.node("validator-1").await["height"].as_u64().unwrap();
    eventually("validators keep advancing", || async {
        let v = w.node("validator-1").await;
        (v["state"] == "ok" && v["height"].as_u64()? >= before + 5).then_some(())
    })
    .await;
    let nodes = w.get("/api/v1/nodes").await;
    let best = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["role"] == "validator")
        .filter_map(|n| n["height"].as_u64())
        .max()
        .unwrap();
    assert!(
        best < 1_000_000,
        "the lying node does not move the fleet's height"
    );
    for n in nodes["nodes"].as_array().unwrap() {
        if n["role"] == "validator" {
            assert_eq!(n["state"], "ok", "{n}");
            assert!(
                n["lag"].as_u64().unwrap() < 50,
                "no false lag from the liar: {n}"
            );
        }
    }

    // each hostile node has its own incident with the error kind as evidence; no validator
    // incident, no sync failure caused by the liar
    let open = eventually("incidents for the three broken nodes", || async {
        let open = w.incidents(false).await;
        (of_kind(&open, "node_down").len() == 3).then_some(open)
    })
    .await;
    for i in of_kind(&open, "node_down") {
        let kind = i["evidence"]["error_kind"].as_str().unwrap();
        assert!(["timeout", "malformed", "too_large"].contains(&kind), "{i}");
    }
    assert!(of_kind(&open, "sync_failure").is_empty(), "{open:?}");
    assert!(of_kind(&open, "consensus_failure").is_empty(), "{open:?}");
    let liar = of_kind(&open, "data_corruption");
    assert_eq!(liar.len(), 1, "{open:?}");
    assert_eq!(liar[0]["nodes"], serde_json::json!(["rpc-4"]));

    let health = w.get("/healthz").await;
    assert_eq!(health["status"], "ok");
    w.stop().await;
    net.shutdown().await;
}

/// A node that hangs until the (long) timeout delays only its own observations: the other
/// nodes keep being probed every interval meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_node_does_not_delay_the_other_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(1, 2, 200).await;
    let mut cfg = config(&net, &store_url(&dir));
    cfg.probe.timeout = Duration::from_secs(3);
    let w = Running::start(cfg).await;
    eventually("rpc-1 ok", || async {
        (w.node("rpc-1").await["state"] == "ok").then_some(())
    })
    .await;

    net.inject("rpc-1", Fault::Hang).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let start = Instant::now();
    while w.node("rpc-1").await["error_kind"] != "timeout" {
        assert!(start.elapsed() < DEADLINE, "rpc-1 never reported a timeout");
        if let Some(t) = w.node("validator-1").await["last_probe_at"].as_str() {
            seen.insert(t.to_string());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 3 s of hang at a 100 ms interval: dozens of validator probes; a watcher whose round
    // waited for the hanging node would show one or two.
    assert!(
        seen.len() >= 5,
        "validator-1 was probed only {} times while rpc-1 hung",
        seen.len()
    );
    w.stop().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_forked_node_is_its_data_corruption_with_the_first_differing_block() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(4, 3, 200).await;
    let w = Running::start(config(&net, &store_url(&dir))).await;
    let at = net.height() + 2;
    net.inject(
        "rpc-3",
        Fault::Fork {
            height: at,
            branch: None,
        },
    )
    .await
    .unwrap();
    let inc = w.wait_open("data_corruption").await;
    assert_eq!(inc["severity"], "P1");
    assert_eq!(inc["nodes"], serde_json::json!(["rpc-3"]));
    let ev = &inc["evidence"];
    assert_eq!(ev["first_differing_height"], at, "{ev}");
    assert_eq!(ev["last_common_height"], at - 1);
    let requests = ev["bisection_requests"].as_u64().unwrap();
    let height = ev["compared_height"].as_u64().unwrap();
    let log2 = 64 - height.leading_zeros() as u64;
    assert!(
        requests <= 2 * (log2 + 1),
        "{requests} requests for height {height}"
    );
    let open = w.incidents(false).await;
    assert!(
        of_kind(&open, "split_brain").is_empty(),
        "one node alone: {open:?}"
    );

    net.recover_node("rpc-3").await.unwrap();
    let done = w.wait_resolved(&inc["id"]).await;
    assert_eq!(done["status"], "resolved");
    w.stop().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_on_two_branches_are_one_p1_split_brain() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(4, 3, 200).await;
    let w = Running::start(config(&net, &store_url(&dir))).await;
    let at = net.height() + 2;
    for node in ["validator-3", "validator-4", "rpc-3"] {
        net.inject(
            node,
            Fault::Fork {
                height: at,
                branch: Some(1),
            },
        )
        .await
        .unwrap();
    }
    w.wait_open("split_brain").await;
    // the three forks land one after another: the first may be seen alone (P2) before the
    // validators' disagreement raises it
    let inc = eventually("split_brain is P1: validators disagree", || async {
        of_kind(&w.incidents(false).await, "split_brain")
            .first()
            .filter(|i| i["severity"] == "P1")
            .map(|i| (*i).clone())
    })
    .await;
    let ev = &inc["evidence"];
    assert_eq!(ev["first_differing_height"], at, "{ev}");
    let parts = ev["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(
        parts[0]["nodes"],
        serde_json::json!(["rpc-1", "rpc-2", "validator-1", "validator-2"]),
        "canonical: as many validators, more nodes"
    );
    assert_eq!(
        parts[1]["validators"],
        serde_json::json!(["validator-3", "validator-4"])
    );
    let open = w.incidents(false).await;
    assert_eq!(
        open.len(),
        1,
        "one split brain, no per-node incidents: {open:?}"
    );

    for node in ["validator-3", "validator-4", "rpc-3"] {
        net.recover_node(node).await.unwrap();
    }
    w.wait_resolved(&inc["id"]).await;
    w.stop().await;
    net.shutdown().await;
}

/// The operator watches three of four validators; the fourth (someone else's) stops
/// proposing. The chain advances through view changes, and neo-ir names the failing
/// validator by its index from the block headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwatched_validator_missing_its_turns_is_named_from_the_headers() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(4, 1, 200).await;
    let mut cfg = config(&net, &store_url(&dir));
    cfg.nodes.retain(|n| n.name != "validator-4");
    let w = Running::start(cfg).await;
    net.inject("validator-4", Fault::Crash).await.unwrap();
    let inc = w.wait_open("consensus_failure").await;
    assert_eq!(inc["key"], "consensus_failure:missed_turns:#3", "{inc}");
    assert_eq!(inc["severity"], "P3");
    let ev = &inc["evidence"];
    assert_eq!(ev["validator_index"], 3);
    assert!(ev["missed"].as_u64().unwrap() >= 3, "{ev}");
    for b in ev["missed_blocks"].as_array().unwrap() {
        assert_eq!(
            b.as_u64().unwrap() % 4,
            3,
            "validator 3 is view-0 primary of these: {ev}"
        );
    }
    // the chain still advances, so no stall; no other incident
    let open = w.incidents(false).await;
    assert_eq!(open.len(), 1, "{open:?}");
    w.stop().await;
    net.shutdown().await;
}

/// A node alive but answering in 1.5 s is degraded, never down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_node_is_performance_degradation_never_node_down() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(2, 2, 200).await;
    let mut cfg = config(&net, &store_url(&dir));
    cfg.probe.timeout = Duration::from_secs(4);
    let w = Running::start(cfg).await;
    net.inject("rpc-1", Fault::Slow { ms: 1500 }).await.unwrap();
    let inc = w.wait_open("performance_degradation").await;
    assert_eq!(inc["key"], "performance_degradation:rpc-1");
    assert_eq!(
        inc["severity"], "P3",
        "1.5 s is above 500 ms, below 2000 ms"
    );
    let b = &inc["evidence"]["breaches"][0];
    assert_eq!(b["metric"], "rpc_response_time");
    assert!(b["value"].as_f64().unwrap() >= 1500.0, "{b}");
    net.recover_node("rpc-1").await.unwrap();
    w.wait_resolved(&inc["id"]).await;
    let all = w.incidents(true).await;
    assert!(
        of_kind(&all, "node_down").is_empty(),
        "never node_down: {all:?}"
    );
    assert_eq!(all.len(), 1, "{all:?}");
    w.stop().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_zero_peers_is_its_own_p2_finding() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(2, 2, 200).await;
    let w = Running::start(config(&net, &store_url(&dir))).await;
    net.inject("rpc-2", Fault::Peers { count: 0 })
        .await
        .unwrap();
    let inc = w.wait_open("performance_degradation").await;
    assert_eq!(inc["key"], "performance_degradation:peers:rpc-2");
    assert_eq!(inc["severity"], "P2");
    assert_eq!(inc["evidence"]["peers"], 0);
    net.recover_node("rpc-2").await.unwrap();
    w.wait_resolved(&inc["id"]).await;
    w.stop().await;
    net.shutdown().await;
}

/// A real host agent on this machine reports a flood of connections from one IP to the
/// node's P2P port while its RPC is slow: a network attack, not a degradation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_rpc_and_a_connection_flood_from_one_ip_is_a_network_attack() {
    let dir = tempfile::tempdir().unwrap();
    // the "P2P port": a listener that accepts and keeps connections
    let p2p = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p2p_port = p2p.local_addr().unwrap().port();
    let held = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = p2p.accept().await {
            keep.lock().await.push(s);
        }
    });
    let mut flood = Vec::new();
    for _ in 0..15 {
        flood.push(
            tokio::net::TcpStream::connect(("127.0.0.1", p2p_port))
                .await
                .unwrap(),
        );
    }
    // the agent, reading this machine's /proc
    let pid_file = dir.path().join("node.pid");
    std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
    let mut acfg = neo_ir_agent::AgentConfig::new("agent-secret", dir.path());
    acfg.pid_file = Some(pid_file);
    acfg.p2p_port = p2p_port;
    acfg.rpc_port = 1;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_url = format!("http://{}", listener.local_addr().unwrap());
    let (agent_stop, agent_stopped) = oneshot::channel::<()>();
    tokio::spawn(neo_ir_agent::serve(acfg, listener, async {
        let _ = agent_stopped.await;
    }));

    let net = network(2, 2, 200).await;
    let mut cfg = config(&net, &store_url(&dir));
    cfg.probe.timeout = Duration::from_secs(3);
    cfg.probe.telemetry_interval = Duration::from_millis(200);
    std::env::set_var("NEO_IR_TEST_AGENT_TOKEN", "agent-secret");
    for n in cfg.nodes.iter_mut().filter(|n| n.name == "rpc-1") {
        n.agent = Some(agent_url.clone());
        n.agent_token_env = Some("NEO_IR_TEST_AGENT_TOKEN".into());
    }
    let w = Running::start(cfg).await;
    eventually("the agent's report reaches the node view", || async {
        let n = w.node("rpc-1").await;
        (n["host"]["p2p_established"].as_u64()? >= 15).then_some(())
    })
    .await;
    net.inject("rpc-1", Fault::Slow { ms: 800 }).await.unwrap();
    let inc = w.wait_open("network_attack").await;
    assert_eq!(inc["severity"], "P2", "an RPC node");
    assert_eq!(inc["nodes"], serde_json::json!(["rpc-1"]));
    let ev = &inc["evidence"];
    assert_eq!(ev["top_remote_ips"][0]["ip"], "127.0.0.1", "{ev}");
    assert!(
        ev["top_remote_ips"][0]["p2p"].as_u64().unwrap() >= 15,
        "{ev}"
    );
    assert_eq!(ev["limit_per_ip"], 10);
    assert!(ev["rpc_latency_ms"].as_u64().unwrap() >= 800);
    let open = w.incidents(false).await;
    assert!(
        of_kind(&open, "performance_degradation").is_empty(),
        "{open:?}"
    );
    assert!(of_kind(&open, "node_down").is_empty(), "{open:?}");

    drop(flood);
    net.recover_node("rpc-1").await.unwrap();
    w.wait_resolved(&inc["id"]).await;
    let _ = agent_stop.send(());
    w.stop().await;
    net.shutdown().await;
}

/// A crash closes the node's sockets: neo-ir's idle connection to the RPC port sees it and
/// probes at once, so the incident does not wait for the next poll (here 10 s away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_detected_from_the_closed_connection_not_the_next_poll() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(2, 2, 200).await;
    let mut cfg = config(&net, &store_url(&dir));
    cfg.probe.interval = Duration::from_secs(10);
    let w = Running::start(cfg).await;
    eventually("a first round is stored", || async {
        (w.node("rpc-1").await["state"] == "ok").then_some(())
    })
    .await;
    // just after a round: the next poll is about 10 s away
    let crashed_at = Instant::now();
    net.inject("rpc-1", Fault::Crash).await.unwrap();
    let inc = w.wait_open("node_down").await;
    let took = crashed_at.elapsed();
    assert_eq!(inc["nodes"], serde_json::json!(["rpc-1"]));
    assert!(
        took < Duration::from_secs(5),
        "detected after {took:?}: the closed connection should trigger the probe"
    );
    w.stop().await;
    net.shutdown().await;
}

/// Blocks stay the same but one node's state diverges (the neo-go/C# state differences of
/// the field notes): its state root differs alone, and its validated root index stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_state_diverges_is_data_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(2, 3, 100).await;
    let w = Running::start(config(&net, &store_url(&dir))).await;
    let from = net.height() + 1;
    net.inject("rpc-2", Fault::StateRoot { height: from })
        .await
        .unwrap();
    let inc = w.wait_open("data_corruption").await;
    assert_eq!(inc["key"], "data_corruption:state:rpc-2", "{inc}");
    assert_eq!(inc["severity"], "P1");
    assert_eq!(inc["nodes"], serde_json::json!(["rpc-2"]));
    let ev = &inc["evidence"];
    assert!(
        ev["state_root_mismatch"]["index"].as_u64().unwrap() >= from,
        "{ev}"
    );
    // blocks are still the same everywhere: no fork incident
    let open = w.incidents(false).await;
    assert_eq!(open.len(), 1, "{open:?}");
    net.recover_node("rpc-2").await.unwrap();
    w.wait_resolved(&inc["id"]).await;
    w.stop().await;
    net.shutdown().await;
}
