//! `force_view_change --coordinate`: the coordinated restart of the failing primaries.
//!
//! Neo N3 has no RPC that forces a dBFT view change: backups change view by themselves when
//! the primary's timer runs out. When consensus is stuck because validators are hung or cut
//! off, what the playbook's "emergency view change" amounts to is restarting the consensus
//! service on those validators, one at a time, watching the chain after each: a restart that
//! brings blocks back is the fix; one that does not must not be followed by the next
//! (restarting more validators of a stalled network only takes more of them out of the
//! round). So [`coordinate_restarts`] records the chain height, restarts one node through
//! [`NodeControl`] (the host agent), waits until the chain makes at least one new block, and
//! stops at the first restart that fails or is not followed by a block.
//!
//! Which nodes: [`failing_primaries`] picks them from a [`ConnectivityReport`] (unreachable,
//! isolated, not proposing, or missing turns), or the operator names them. [`plan`] is what a
//! dry run and the approval show: every restart is destructive.

use std::future::Future;
use std::time::{Duration, Instant};

use neo_ir_core::runbook::{Plan, Step};
use neo_ir_probe::{NodeTarget, Prober};
use serde::Serialize;

use crate::connectivity::{ConnectivityReport, ValidatorVerdict};

/// How long a restart through the agent may take, on top of waiting for the block.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the chain height is asked for while waiting for a block.
const POLL: Duration = Duration::from_millis(100);

/// Restarts a node's consensus service (in practice: its host agent). Returns the agent's
/// report, or why the restart failed. [`coordinate_restarts`] gives each call at most
/// [`RESTART_TIMEOUT`].
pub trait NodeControl {
    fn restart(&self, node: &str)
        -> impl Future<Output = Result<serde_json::Value, String>> + Send;
}

/// The validators to restart: unreachable, without peers, not proposing, or with missed
/// turns in the report's window; by validator index.
pub fn failing_primaries(report: &ConnectivityReport) -> Vec<String> {
    let mut failing: Vec<_> = report
        .validators
        .iter()
        .filter(|v| v.verdict != ValidatorVerdict::Ok || v.missed > 0)
        .collect();
    failing.sort_by_key(|v| v.index);
    failing.into_iter().map(|v| v.node.clone()).collect()
}

/// What happened to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartStatus {
    /// Restarted, and the chain made a new block afterwards.
    Advanced,
    /// Restarted, and no new block came within the timeout: the run stopped here.
    NoAdvance,
    /// The restart itself failed: the run stopped here.
    RestartFailed,
    /// Not restarted: the run stopped before it (or refused to start).
    NotRestarted,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRestart {
    pub node: String,
    pub status: RestartStatus,
    /// The chain's height (highest answering node) just before the restart.
    pub height_before: Option<u64>,
    /// The height that showed the chain had advanced.
    pub height_after: Option<u64>,
    /// How long the wait for a new block took, in milliseconds.
    pub waited_ms: Option<u64>,
    /// The agent's report of the restart.
    pub agent: Option<serde_json::Value>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewChangeReport {
    pub advance_timeout_ms: u64,
    /// In order; every listed node appears once.
    pub nodes: Vec<NodeRestart>,
    pub restarted: Vec<String>,
    pub not_restarted: Vec<String>,
    /// Why the run stopped early, when it did.
    pub stopped: Option<String>,
    /// Every listed node restarted, and the chain advanced after each.
    pub ok: bool,
}

/// The dry-run and approval view: one destructive step per node, in order.
pub fn plan(nodes: &[String], advance_timeout: Duration) -> Plan {
    let secs = advance_timeout.as_secs().max(1);
    let steps = nodes
        .iter()
        .map(|n| {
            Step::builtin(
                &format!("restart-{n}"),
                "restart_consensus",
                format!(
                    "restart the consensus service on {n} via its agent, then wait up to {secs}s \
                     for a new block; stop here if none comes"
                ),
                RESTART_TIMEOUT + advance_timeout,
                true,
            )
        })
        .collect();
    Plan {
        steps,
        notes: vec![
            "Neo N3 has no RPC to force a view change: backups change view by themselves when \
             the primary's timer runs out. This is the coordinated restart the playbook means: \
             the failing primaries' consensus services, one at a time."
                .to_string(),
            "After each restart the chain must make a new block before the next node is \
             touched; the run stops at the first restart that fails or is not followed by a \
             block, and names the nodes left alone."
                .to_string(),
        ],
    }
}

/// The chain's height now: the highest among the targets that answer.
async fn chain_height(prober: &Prober, targets: &[NodeTarget]) -> Option<u64> {
    let probes: Vec<_> = targets.iter().map(|t| (t.clone(), None)).collect();
    prober
        .probe_all(&probes)
        .await
        .iter()
        .filter_map(|o| o.status().map(|s| s.height()))
        .max()
}

/// Restart `nodes` one at a time through `control`, waiting after each until the chain
/// (the highest of `targets`) is at least one block above where it was before that restart.
/// Stops at the first failed restart or missing block. Unknown and repeated node names are
/// refused before anything is restarted.
pub async fn coordinate_restarts(
    control: &impl NodeControl,
    prober: &Prober,
    targets: &[NodeTarget],
    nodes: &[String],
    advance_timeout: Duration,
) -> ViewChangeReport {
    let mut report = ViewChangeReport {
        advance_timeout_ms: advance_timeout.as_millis() as u64,
        nodes: nodes
            .iter()
            .map(|n| NodeRestart {
                node: n.clone(),
                status: RestartStatus::NotRestarted,
                height_before: None,
                height_after: None,
                waited_ms: None,
                agent: None,
                error: None,
            })
            .collect(),
        restarted: Vec::new(),
        not_restarted: Vec::new(),
        stopped: None,
        ok: false,
    };
    let refuse = |report: &mut ViewChangeReport, why: String| {
        report.stopped = Some(why);
        report.not_restarted = nodes.to_vec();
    };
    if nodes.is_empty() {
        refuse(&mut report, "no nodes to restart".to_string());
        return report;
    }
    let unknown: Vec<&str> = nodes
        .iter()
        .filter(|n| !targets.iter().any(|t| &t.name == *n))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        refuse(
            &mut report,
            format!(
                "not configured nodes: {}; nothing was restarted",
                unknown.join(", ")
            ),
        );
        return report;
    }
    if let Some((i, n)) = nodes
        .iter()
        .enumerate()
        .find(|(i, n)| nodes[..*i].contains(n))
    {
        refuse(
            &mut report,
            format!(
                "{n} is listed twice (position {}); nothing was restarted",
                i + 1
            ),
        );
        return report;
    }

    for (i, node) in nodes.iter().enumerate() {
        let Some(before) = chain_height(prober, targets).await else {
            report.stopped = Some(format!(
                "no node answers, so whether the chain advances cannot be seen; {node} and \
                 the nodes after it were not restarted"
            ));
            break;
        };
        report.nodes[i].height_before = Some(before);
        let restarted = tokio::time::timeout(RESTART_TIMEOUT, control.restart(node))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the restart did not finish within {}s",
                    RESTART_TIMEOUT.as_secs()
                ))
            });
        match restarted {
            Err(e) => {
                report.nodes[i].status = RestartStatus::RestartFailed;
                report.nodes[i].error = Some(e.clone());
                report.stopped = Some(format!(
                    "restarting {node} failed ({e}); the nodes after it were not restarted"
                ));
                break;
            }
            Ok(agent) => {
                report.nodes[i].agent = Some(agent);
                report.restarted.push(node.clone());
            }
        }
        let started = Instant::now();
        let deadline = started + advance_timeout;
        let mut after = None;
        loop {
            if let Some(h) = chain_height(prober, targets).await {
                if h > before {
                    after = Some(h);
                    break;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
        report.nodes[i].waited_ms = Some(started.elapsed().as_millis() as u64);
        match after {
            Some(h) => {
                report.nodes[i].status = RestartStatus::Advanced;
                report.nodes[i].height_after = Some(h);
            }
            None => {
                report.nodes[i].status = RestartStatus::NoAdvance;
                report.stopped = Some(format!(
                    "after restarting {node} the chain stayed at height {before} for {}s; \
                     the nodes after it were not restarted (restarting more validators of a \
                     stalled network takes more of them out of the round)",
                    advance_timeout.as_secs_f64()
                ));
                break;
            }
        }
    }
    report.not_restarted = report
        .nodes
        .iter()
        .filter(|n| n.status == RestartStatus::NotRestarted)
        .map(|n| n.node.clone())
        .collect();
    report.ok = report
        .nodes
        .iter()
        .all(|n| n.status == RestartStatus::Advanced);
    report
}

impl ViewChangeReport {
    /// The report as operators read it.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let what = match n.status {
                RestartStatus::Advanced => format!(
                    "restarted; chain {} -> {} in {} ms",
                    n.height_before.map_or("-".into(), |h| h.to_string()),
                    n.height_after.map_or("-".into(), |h| h.to_string()),
                    n.waited_ms.unwrap_or(0)
                ),
                RestartStatus::NoAdvance => format!(
                    "restarted; NO NEW BLOCK after {} ms (chain at {})",
                    n.waited_ms.unwrap_or(0),
                    n.height_before.map_or("-".into(), |h| h.to_string())
                ),
                RestartStatus::RestartFailed => format!(
                    "RESTART FAILED: {}",
                    n.error.as_deref().unwrap_or("unknown error")
                ),
                RestartStatus::NotRestarted => "not restarted".to_string(),
            };
            out.push_str(&format!("  {:<20} {what}\n", n.node));
        }
        if let Some(s) = &self.stopped {
            out.push_str(&format!("stopped: {s}\n"));
        }
        out.push_str(if self.ok {
            "force_view_change: OK, the chain advanced after every restart\n"
        } else {
            "force_view_change: FAILED\n"
        });
        out
    }
}
