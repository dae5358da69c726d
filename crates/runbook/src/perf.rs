//! `performance_diagnostics`: how fast each node answers, method by method, and where it
//! stands on the playbook's KPI table (RPC response time, peers).
//!
//! Every node is asked each method `rounds` times, one call at a time (a batch would hide
//! which method is slow); nodes are asked concurrently. A node's response time is the
//! median over all its calls, judged against `[kpi] rpc_latency_warn` / `_crit`; its peers
//! (`getconnectioncount`) against `[kpi] peers_warn` (0 peers is critical). Nothing is
//! changed on any node.

use std::time::Instant;

use neo_ir_core::detect::Kpi;
use neo_ir_probe::{NodeTarget, Prober};
use serde::Serialize;
use serde_json::json;

/// The read-only methods timed, as Neo N3 nodes of all three implementations serve them.
pub const METHODS: [&str; 4] = [
    "getblockcount",
    "getbestblockhash",
    "getconnectioncount",
    "getversion",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MethodTiming {
    pub method: String,
    /// Median over the rounds that answered, in milliseconds.
    pub median_ms: Option<u64>,
    pub max_ms: Option<u64>,
    pub failures: u32,
    /// The last failure, when there was one.
    pub error: Option<String>,
}

/// Where a node stands on the KPI table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Warning,
    Critical,
    Down,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodePerf {
    pub node: String,
    pub methods: Vec<MethodTiming>,
    /// Median over every call that answered.
    pub median_ms: Option<u64>,
    pub peers: Option<u64>,
    pub level: Level,
    /// Why not ok, in words.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PerfReport {
    pub rounds: u32,
    pub latency_warn_ms: u64,
    pub latency_crit_ms: u64,
    pub peers_warn: u64,
    pub nodes: Vec<NodePerf>,
    /// Every node at `ok`.
    pub ok: bool,
}

fn median(v: &mut [u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

async fn node(prober: &Prober, t: &NodeTarget, kpi: &Kpi, rounds: u32) -> NodePerf {
    let mut all = Vec::new();
    let mut methods = Vec::new();
    let mut peers = None;
    for method in METHODS {
        let mut times = Vec::new();
        let (mut failures, mut error) = (0, None);
        for _ in 0..rounds {
            let started = Instant::now();
            match prober.call(t, method, json!([])).await {
                Ok(v) => {
                    times.push(started.elapsed().as_millis() as u64);
                    if method == "getconnectioncount" {
                        peers = v.as_u64();
                    }
                }
                Err(e) => {
                    failures += 1;
                    error = Some(e.to_string());
                }
            }
        }
        all.extend(&times);
        let max_ms = times.iter().copied().max();
        methods.push(MethodTiming {
            method: method.to_string(),
            median_ms: median(&mut times),
            max_ms,
            failures,
            error,
        });
    }
    let median_ms = median(&mut all);
    let mut reasons = Vec::new();
    let level = match median_ms {
        None => {
            reasons.push("no call answered".to_string());
            Level::Down
        }
        Some(ms) => {
            let mut level = Level::Ok;
            if ms >= kpi.rpc_latency_crit_ms {
                level = Level::Critical;
                reasons.push(format!(
                    "response time {ms} ms ≥ {} ms (critical)",
                    kpi.rpc_latency_crit_ms
                ));
            } else if ms >= kpi.rpc_latency_warn_ms {
                level = Level::Warning;
                reasons.push(format!(
                    "response time {ms} ms ≥ {} ms (warning)",
                    kpi.rpc_latency_warn_ms
                ));
            }
            match peers {
                Some(0) => {
                    level = level.max(Level::Critical);
                    reasons.push("no peers".to_string());
                }
                Some(p) if p < kpi.peers_warn => {
                    level = level.max(Level::Warning);
                    reasons.push(format!("{p} peers < {}", kpi.peers_warn));
                }
                _ => {}
            }
            let failed: u32 = methods.iter().map(|m| m.failures).sum();
            if failed > 0 {
                level = level.max(Level::Warning);
                reasons.push(format!("{failed} calls failed"));
            }
            level
        }
    };
    NodePerf {
        node: t.name.clone(),
        methods,
        median_ms,
        peers,
        level,
        reasons,
    }
}

/// Run the diagnostics over `targets` (`rounds` calls per method and node, at least 1).
pub async fn performance_diagnostics(
    prober: &Prober,
    targets: &[NodeTarget],
    kpi: &Kpi,
    rounds: u32,
) -> PerfReport {
    let rounds = rounds.max(1);
    let nodes: Vec<NodePerf> =
        futures::future::join_all(targets.iter().map(|t| node(prober, t, kpi, rounds))).await;
    let ok = !nodes.is_empty() && nodes.iter().all(|n| n.level == Level::Ok);
    PerfReport {
        rounds,
        latency_warn_ms: kpi.rpc_latency_warn_ms,
        latency_crit_ms: kpi.rpc_latency_crit_ms,
        peers_warn: kpi.peers_warn,
        nodes,
        ok,
    }
}

impl PerfReport {
    /// A line per node and method, as operators read it.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} calls per method; response time warning at {} ms, critical at {} ms; peers warning below {}\n",
            self.rounds, self.latency_warn_ms, self.latency_crit_ms, self.peers_warn
        );
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |m| format!("{m} ms"));
        for n in &self.nodes {
            let level = match n.level {
                Level::Ok => "ok",
                Level::Warning => "WARNING",
                Level::Critical => "CRITICAL",
                Level::Down => "DOWN",
            };
            out.push_str(&format!(
                "{:<20} median {:>8}  peers {:>4}  {level}{}\n",
                n.node,
                ms(n.median_ms),
                n.peers.map_or("-".to_string(), |p| p.to_string()),
                if n.reasons.is_empty() {
                    String::new()
                } else {
                    format!(": {}", n.reasons.join("; "))
                }
            ));
            for m in &n.methods {
                out.push_str(&format!(
                    "    {:<20} median {:>8}  max {:>8}{}\n",
                    m.method,
                    ms(m.median_ms),
                    ms(m.max_ms),
                    m.error
                        .as_ref()
                        .map(|e| format!("  {} failed: {e}", m.failures))
                        .unwrap_or_default()
                ));
            }
        }
        out.push_str(if self.ok {
            "performance_diagnostics: OK, every node within the KPI table\n"
        } else {
            "performance_diagnostics: FAILED\n"
        });
        out
    }
}
