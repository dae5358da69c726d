//! The playbook's KPI table per node, network attacks, and node health endpoints.
//!
//! - `performance_degradation:<node>`: RPC response time, memory, CPU and IO wait against the
//!   KPI table (P3 at warning, P2 at critical). Block height lag stays with `sync_failure`.
//! - `performance_degradation:peers:<node>`: peer count below the warning level; 0 peers is
//!   critical (the node is cut off), its own finding.
//! - `performance_degradation:health:<node>`: neo-rs `/healthz` or `/readyz` fails while
//!   JSON-RPC answers.
//! - `network_attack:<node>`: slow or timing-out RPC together with abnormal connection counts
//!   (per remote IP or in total, from the host agent or `getconnectioncount`). P2, P1 for a
//!   validator. It takes over the node's performance finding (same cause).

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::fleet::NodeState;
use crate::incident::{Assessment, Finding, IncidentKind, Severity};
use crate::observation::Role;

const GIB: u64 = 1024 * 1024 * 1024;

/// KPI thresholds (the playbook's table) and attack limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kpi {
    pub rpc_latency_warn_ms: u64,
    pub rpc_latency_crit_ms: u64,
    /// Fewer peers than this is a warning; 0 peers is critical.
    pub peers_warn: u64,
    pub memory_warn_bytes: u64,
    pub memory_crit_bytes: u64,
    pub cpu_warn_percent: u64,
    pub cpu_crit_percent: u64,
    pub iowait_warn_percent: u64,
    pub iowait_crit_percent: u64,
    /// Established connections from one remote IP that are abnormal (a peer needs one).
    pub attack_per_ip: u32,
    /// Established connections in total that are abnormal.
    pub attack_total: u32,
}

impl Default for Kpi {
    fn default() -> Self {
        Self {
            rpc_latency_warn_ms: 500,
            rpc_latency_crit_ms: 2000,
            peers_warn: 3,
            memory_warn_bytes: 6 * GIB,
            memory_crit_bytes: 8 * GIB,
            cpu_warn_percent: 80,
            cpu_crit_percent: 95,
            iowait_warn_percent: 30,
            iowait_crit_percent: 50,
            attack_per_ip: 10,
            attack_total: 200,
        }
    }
}

pub fn performance_key(node: &str) -> String {
    format!("performance_degradation:{node}")
}
pub fn peers_key(node: &str) -> String {
    format!("performance_degradation:peers:{node}")
}
pub fn health_key(node: &str) -> String {
    format!("performance_degradation:health:{node}")
}
pub fn attack_key(node: &str) -> String {
    format!("network_attack:{node}")
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Level {
    Warning,
    Critical,
}

struct Breach {
    metric: &'static str,
    value: f64,
    unit: &'static str,
    level: Level,
    threshold: u64,
}

/// Above-is-bad metric against (warn, crit).
fn above(
    metric: &'static str,
    unit: &'static str,
    value: f64,
    warn: u64,
    crit: u64,
) -> Option<Breach> {
    let (level, threshold) = if value > crit as f64 {
        (Level::Critical, crit)
    } else if value > warn as f64 {
        (Level::Warning, warn)
    } else {
        return None;
    };
    Some(Breach {
        metric,
        value,
        unit,
        level,
        threshold,
    })
}

pub(super) fn node_kpis(n: &NodeState, kpi: &Kpi, a: &mut Assessment) {
    let keys = [
        performance_key(&n.name),
        peers_key(&n.name),
        health_key(&n.name),
        attack_key(&n.name),
    ];
    let latency = n.median_latency_ms();
    if !n.answering() {
        // a node that does not answer is node_down's; its KPIs cannot be judged now
        let timing_out = n
            .last
            .as_ref()
            .and_then(|o| o.failure())
            .is_some_and(|f| f.kind == crate::observation::FailureKind::Timeout);
        if !(timing_out && attack(n, kpi, latency, a)) {
            a.undecided.extend(keys);
        }
        return;
    }

    let host = n.host.as_ref().filter(|h| h.error.is_none());
    let mut breaches = Vec::new();
    if let Some(ms) = latency {
        breaches.extend(above(
            "rpc_response_time",
            "ms",
            ms as f64,
            kpi.rpc_latency_warn_ms,
            kpi.rpc_latency_crit_ms,
        ));
    }
    let memory = n
        .metrics
        .as_ref()
        .and_then(|m| m.memory_bytes)
        .or(host.and_then(|h| h.process_rss_bytes));
    if let Some(b) = memory {
        breaches.extend(above(
            "memory_rss",
            "bytes",
            b as f64,
            kpi.memory_warn_bytes,
            kpi.memory_crit_bytes,
        ));
    }
    // host-wide CPU from the agent; else the node process's CPU (% of one core)
    if let Some(cpu) = host.and_then(|h| h.cpu_percent).or(n.metrics_cpu_percent()) {
        breaches.extend(above(
            "cpu",
            "%",
            cpu,
            kpi.cpu_warn_percent,
            kpi.cpu_crit_percent,
        ));
    }
    if let Some(io) = host.and_then(|h| h.iowait_percent) {
        breaches.extend(above(
            "disk_io_wait",
            "%",
            io,
            kpi.iowait_warn_percent,
            kpi.iowait_crit_percent,
        ));
    }

    let under_attack = attack(n, kpi, latency, a);
    if !under_attack && !breaches.is_empty() {
        let worst = breaches.iter().map(|b| b.level).max().expect("non-empty");
        let severity = if worst == Level::Critical {
            Severity::P2
        } else {
            Severity::P3
        };
        let what: Vec<String> = breaches
            .iter()
            .map(|b| {
                format!(
                    "{} {} > {} ({})",
                    b.metric,
                    show(b.value, b.unit),
                    show(b.threshold as f64, b.unit),
                    if b.level == Level::Critical {
                        "critical"
                    } else {
                        "warning"
                    }
                )
            })
            .collect();
        a.findings.push(Finding {
            key: performance_key(&n.name),
            kind: IncidentKind::PerformanceDegradation,
            severity,
            nodes: vec![n.name.clone()],
            summary: format!("{} degraded: {}", n.name, what.join("; ")),
            evidence: json!({
                "node": n.name,
                "level": if worst == Level::Critical { "critical" } else { "warning" },
                "breaches": breaches.iter().map(|b| json!({
                    "metric": b.metric,
                    "value": b.value,
                    "unit": b.unit,
                    "threshold": b.threshold,
                    "level": if b.level == Level::Critical { "critical" } else { "warning" },
                })).collect::<Vec<_>>(),
                "rpc_latencies_ms": n.latencies,
                // only a slow RPC has a first failing observation to count MTTD from
                crate::kpis::FAULT_STARTED_AT: breaches
                    .iter()
                    .any(|b| b.metric == "rpc_response_time")
                    .then_some(n.slow_since)
                    .flatten(),
            }),
        });
    }

    // peers: from RPC getconnectioncount, else /metrics
    let peers = n
        .last
        .as_ref()
        .and_then(|o| o.status())
        .and_then(|s| s.connections)
        .map(u64::from)
        .or(n.metrics.as_ref().and_then(|m| m.peers));
    if let Some(p) = peers {
        if p < kpi.peers_warn {
            let severity = if p == 0 { Severity::P2 } else { Severity::P3 };
            a.findings.push(Finding {
                key: peers_key(&n.name),
                kind: IncidentKind::PerformanceDegradation,
                severity,
                nodes: vec![n.name.clone()],
                summary: if p == 0 {
                    format!("{} has 0 peers: it is cut off from the network", n.name)
                } else {
                    format!("{} has only {p} peers (warning below {})", n.name, kpi.peers_warn)
                },
                evidence: json!({"node": n.name, "peers": p, "peers_warn": kpi.peers_warn, "critical_at": 0}),
            });
        }
    }

    if let Some(m) = &n.metrics {
        let failing: Vec<&str> = [("healthz", m.healthz_ok), ("readyz", m.readyz_ok)]
            .into_iter()
            .filter(|(_, ok)| *ok == Some(false))
            .map(|(name, _)| name)
            .collect();
        if !failing.is_empty() {
            a.findings.push(Finding {
                key: health_key(&n.name),
                kind: IncidentKind::PerformanceDegradation,
                severity: Severity::P3,
                nodes: vec![n.name.clone()],
                summary: format!(
                    "{}: /{} fails while JSON-RPC answers",
                    n.name,
                    failing.join(" and /")
                ),
                evidence: json!({"node": n.name, "failing": failing, "healthz_ok": m.healthz_ok, "readyz_ok": m.readyz_ok, "rpc": "answering"}),
            });
        }
    } else {
        a.undecided.insert(health_key(&n.name));
    }
}

/// Slow or timing-out RPC with abnormal connection counts. Returns whether it fired.
fn attack(n: &NodeState, kpi: &Kpi, latency: Option<u64>, a: &mut Assessment) -> bool {
    let slow = latency.is_some_and(|ms| ms > kpi.rpc_latency_warn_ms);
    if !slow {
        return false;
    }
    let host = n.host.as_ref().filter(|h| h.error.is_none());
    let rpc_peers = n
        .last
        .as_ref()
        .and_then(|o| o.status())
        .and_then(|s| s.connections);
    let top = host.and_then(|h| h.top_remotes.first());
    let per_ip = top.map(|r| r.p2p + r.rpc).unwrap_or(0);
    let total = host
        .map(|h| h.p2p_established.unwrap_or(0) + h.rpc_established.unwrap_or(0))
        .or(rpc_peers)
        .unwrap_or(0);
    if per_ip <= kpi.attack_per_ip && total <= kpi.attack_total {
        return false;
    }
    let severity = if n.role == Role::Validator {
        Severity::P1
    } else {
        Severity::P2
    };
    let top_ips: Vec<serde_json::Value> = host
        .map(|h| {
            h.top_remotes
                .iter()
                .take(10)
                .map(|r| json!({"ip": r.ip, "p2p": r.p2p, "rpc": r.rpc}))
                .collect()
        })
        .unwrap_or_default();
    a.findings.push(Finding {
        key: attack_key(&n.name),
        kind: IncidentKind::NetworkAttack,
        severity,
        nodes: vec![n.name.clone()],
        summary: format!(
            "{} under load: RPC {} ms median with {} established connections ({}limits {} per \
             IP, {} total)",
            n.name,
            latency.unwrap_or_default(),
            total,
            // without a host agent there are no per-IP counts to name
            top.map(|r| format!("{per_ip} from {}; ", r.ip))
                .unwrap_or_default(),
            kpi.attack_per_ip,
            kpi.attack_total,
        ),
        evidence: json!({
            "node": n.name,
            "role": n.role,
            "rpc_latency_ms": latency,
            "rpc_latencies_ms": n.latencies,
            "latency_threshold_ms": kpi.rpc_latency_warn_ms,
            "established_total": total,
            "limit_total": kpi.attack_total,
            "limit_per_ip": kpi.attack_per_ip,
            "top_remote_ips": top_ips,
            "rpc_connection_count": rpc_peers,
            crate::kpis::FAULT_STARTED_AT: n.slow_since,
        }),
    });
    true
}

fn show(v: f64, unit: &str) -> String {
    match unit {
        "bytes" => format!("{:.1} GiB", v / GIB as f64),
        "ms" => format!("{v:.0} ms"),
        _ => format!("{v:.0}{unit}"),
    }
}
