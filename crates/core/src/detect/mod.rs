//! The detectors: pure functions of (fleet view, config, now) that say which incident
//! conditions hold. This detectors:
//!
//! - `node_down`: a node failed its probe and the immediate re-probe (two failures in a row).
//!   One failed probe never pages.
//! - `sync_failure`: a node lags the fleet's best height by ≥ `lag_warn` (warning) or
//!   ≥ `lag_crit` (critical) blocks (playbook KPI table), or its height is frozen for longer
//!   than the stall threshold while the fleet advances (a local fault).
//! - `consensus_failure`: every reachable node's height unchanged for longer than
//!   `stall_blocks × msperblock + stall_grace` (a network fault: one incident, not one per node).
//! - `data_corruption` (first form): a node claims a height far above anything the rest of the
//!   fleet corroborates.

use std::collections::BTreeSet;
use std::time::Duration;

mod consensus;
mod fork;
mod kpi;

pub use consensus::{missed_turns_key, SLOW_BLOCKS_KEY};
pub use fork::{divergence_key, state_key, SPLIT_BRAIN_KEY, STATE_SPLIT_KEY, STATE_VALIDATION_KEY};
pub use kpi::{attack_key, health_key, peers_key, performance_key, Kpi};

use jiff::Timestamp;
use serde_json::json;

use crate::clock::millis_between;
use crate::fleet::{Fleet, NodeState};
use crate::incident::{human_ms, Assessment, Finding, IncidentKind, Severity};
use crate::observation::Role;

/// Detector thresholds (playbook KPI table defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectConfig {
    /// Lag (blocks) from which a node is a warning (playbook KPI table: 50).
    pub lag_warn: u64,
    /// Lag (blocks) from which a node is critical (playbook KPI table: 100).
    pub lag_crit: u64,
    /// Blocks' worth of silence before a stall: threshold = stall_blocks × msperblock + grace.
    pub stall_blocks: u64,
    pub stall_grace: Duration,
    /// Block time used until a node has told us its own `msperblock` (MainNet: 15 s).
    pub default_msperblock: u64,
    /// Blocks above the corroborated height past which a node's height is not believed.
    pub implausible_lead: u64,
    /// A validator that missed this many of its last `turn_window` turns as primary is a
    /// P3 consensus finding.
    pub missed_turns: usize,
    pub turn_window: usize,
    /// Blocks whose median interval over the last `slow_window` exceeds
    /// `slow_factor × msperblock` are a P3 consensus finding.
    pub slow_window: usize,
    pub slow_factor: u64,
    /// `for` durations and hysteresis (clear_for) between detection and incidents.
    pub debounce: crate::debounce::DebounceRules,
    /// The playbook's KPI table and attack limits.
    pub kpi: Kpi,
    /// A validated state root index that stays put while the local one climbs this many
    /// blocks means the node's state no longer matches the validated one.
    pub stateroot_lag: u64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            lag_warn: 50,
            lag_crit: 100,
            stall_blocks: 2,
            stall_grace: Duration::from_millis(800),
            default_msperblock: 15_000,
            implausible_lead: 1_000,
            missed_turns: 3,
            turn_window: 5,
            slow_window: 10,
            slow_factor: 2,
            debounce: crate::debounce::DebounceRules::default(),
            kpi: Kpi::default(),
            stateroot_lag: 20,
        }
    }
}

impl DetectConfig {
    /// How long the chain (or one node) may make no block before it is a stall.
    pub fn stall_threshold_ms(&self, msperblock: u64) -> u64 {
        self.stall_blocks * msperblock + self.stall_grace.as_millis() as u64
    }
}

pub fn node_down_key(node: &str) -> String {
    format!("node_down:{node}")
}
pub fn sync_key(node: &str) -> String {
    format!("sync_failure:{node}")
}
pub fn corruption_key(node: &str) -> String {
    format!("data_corruption:{node}")
}
pub const CONSENSUS_KEY: &str = "consensus_failure";

/// Run every detector over the fleet.
pub fn detect(fleet: &Fleet, cfg: &DetectConfig, now: Timestamp) -> Assessment {
    let mut a = Assessment::default();
    let msperblock = fleet.msperblock(cfg.default_msperblock);
    let threshold_ms = cfg.stall_threshold_ms(msperblock);
    // A node with one failed probe is not down yet (the watch loop re-probes it at once), so
    // one slow answer from the rest of the fleet does not make a lone RPC node's crash a P1.
    let any_reachable = fleet
        .nodes()
        .any(|n| n.reachable() || (n.last.is_some() && n.consecutive_failures < 2));

    for n in fleet.nodes() {
        node_down(n, any_reachable, &mut a);
        implausible_height(fleet, n, cfg, &mut a);
        broken_chain(n, now, &mut a);
        sync_failure(fleet, n, cfg, msperblock, threshold_ms, now, &mut a);
        kpi::node_kpis(n, &cfg.kpi, &mut a);
    }
    consensus_failure(fleet, cfg, msperblock, threshold_ms, now, &mut a);
    consensus::attribution(fleet, cfg, msperblock, &mut a);
    fork::split_brain(fleet, &mut a);
    fork::state_roots(fleet, cfg, &mut a);
    one_cause_one_incident(&mut a);
    a.findings.sort_by(|x, y| x.key.cmp(&y.key));
    a
}

/// Findings that are consequences of another finding of the same round are folded into it:
/// a validator that is down or frozen also misses its primary turns, and blocks are slow
/// because of it; its `node_down` or `sync_failure` incident already says so.
fn one_cause_one_incident(a: &mut Assessment) {
    // Different blocks mean different states too: a block fork explains a state mismatch,
    // and a node whose block changed under it answers its own chain inconsistently.
    let forked = nodes_of(a, |f| {
        f.key == SPLIT_BRAIN_KEY || f.key.starts_with("data_corruption:divergent:")
    });
    explained_by(a, |f| {
        (f.key == STATE_SPLIT_KEY
            || f.key.starts_with("data_corruption:state:")
            || f.key.starts_with("data_corruption:chain:"))
            && f.nodes.iter().any(|n| forked.contains(n))
    });
    let down = nodes_of(a, |f| {
        matches!(f.kind, IncidentKind::NodeDown | IncidentKind::SyncFailure)
    });
    // a node under attack is not down or merely slow: the attack is the cause
    let attacked = nodes_of(a, |f| f.kind == IncidentKind::NetworkAttack);
    explained_by(a, |f| {
        f.kind == IncidentKind::NodeDown && f.nodes.iter().all(|n| attacked.contains(n))
    });
    let down: BTreeSet<String> = down.into_iter().filter(|n| !attacked.contains(n)).collect();
    explained_by(a, |f| {
        f.key.starts_with("consensus_failure:")
            && !f.nodes.is_empty()
            && f.nodes.iter().all(|n| down.contains(n))
    });
}

/// The nodes of the findings `pick` selects.
fn nodes_of(a: &Assessment, pick: impl Fn(&Finding) -> bool) -> BTreeSet<String> {
    a.findings
        .iter()
        .filter(|f| pick(f))
        .flat_map(|f| f.nodes.iter().cloned())
        .collect()
}

/// Findings another finding of the same round explains: not incidents of their own, and
/// undecided so that an incident already open for them is left as it is.
fn explained_by(a: &mut Assessment, by: impl Fn(&Finding) -> bool) {
    let mut moved = Vec::new();
    a.findings.retain(|f| {
        let explained = by(f);
        if explained {
            moved.push(f.key.clone());
        }
        !explained
    });
    a.undecided.extend(moved);
}

fn node_down(n: &NodeState, any_reachable: bool, a: &mut Assessment) {
    let key = node_down_key(&n.name);
    let Some(last) = &n.last else {
        a.undecided.insert(key);
        return;
    };
    let Some(failure) = last.failure() else {
        return; // answering: clear
    };
    if n.consecutive_failures < 2 {
        // One failed probe is not a finding; the watch loop re-probes at once to confirm.
        a.undecided.insert(key);
        return;
    }
    let (severity, why) = if n.role == Role::Validator {
        (Severity::P1, "a validator")
    } else if !any_reachable {
        (Severity::P1, "no node of the fleet answers")
    } else {
        (Severity::P2, "one RPC node among several")
    };
    a.findings.push(Finding {
        key,
        kind: IncidentKind::NodeDown,
        severity,
        nodes: vec![n.name.clone()],
        summary: format!(
            "{} ({}) is down: {} ({} failed probes in a row)",
            n.name,
            n.role.as_str(),
            failure,
            n.consecutive_failures
        ),
        evidence: json!({
            "node": n.name,
            "role": n.role,
            "error_kind": failure.kind,
            "http_status": failure.http_status,
            "rpc_code": failure.rpc_code,
            "error": failure.message,
            "consecutive_failures": n.consecutive_failures,
            "failing_since": n.failing_since,
            // fault start for the KPIs (MTTD): the first failed probe of this streak
            "fault_started_at": n.failing_since,
            "last_ok_at": n.last_ok_at,
            "last_height": n.height,
            "latency_ms": last.latency_ms,
            "severity_reason": why,
            // what the host agent saw: is the process gone, and what did it log last
            "host_process_state": n.host.as_ref().filter(|h| h.error.is_none()).map(|h| h.process_state.clone()),
            "host_error_lines": n.host.as_ref().map(|h| h.error_lines.iter().rev().take(5).rev().cloned().collect::<Vec<_>>()),
            "host_agent_error": n.host.as_ref().and_then(|h| h.error.clone()),
        }),
    });
}

pub fn broken_chain_key(node: &str) -> String {
    format!("data_corruption:chain:{node}")
}

/// A node whose own consecutive headers do not link: its database answers inconsistently.
/// How long after a node was last seen on a fork its broken header links count as the
/// fork's aftermath.
const FORK_AFTERMATH_MS: u64 = 60_000;

fn broken_chain(n: &NodeState, now: Timestamp, a: &mut Assessment) {
    let key = broken_chain_key(&n.name);
    if !n.answering() {
        a.undecided.insert(key);
        return;
    }
    let Some((index, hash, claimed)) = &n.broken_link else {
        return;
    };
    // a node that was just on a fork changes its blocks when it leaves it: that is the
    // fork's doing (its own incident), not a second corruption
    if n.off_canonical_at
        .is_some_and(|t| millis_between(t, now) < FORK_AFTERMATH_MS)
    {
        a.undecided.insert(key);
        return;
    }
    a.findings.push(Finding {
        key,
        kind: IncidentKind::DataCorruption,
        severity: Severity::P1,
        nodes: vec![n.name.clone()],
        summary: format!(
            "{} answers its own blocks inconsistently: block {} says its previous block is {}, \
             but the node gave {} for block {index}",
            n.name,
            index + 1,
            claimed,
            hash
        ),
        evidence: json!({
            "node": n.name,
            "block": index + 1,
            "previousblockhash": claimed,
            "hash_given_for_previous": hash,
            "previous_index": index,
        }),
    });
}

fn implausible_height(fleet: &Fleet, n: &NodeState, cfg: &DetectConfig, a: &mut Assessment) {
    let key = corruption_key(&n.name);
    if !n.answering() {
        a.undecided.insert(key);
        return;
    }
    if !n.implausible {
        return;
    }
    let claimed = n.height.unwrap_or_default();
    let best = fleet.best_height().unwrap_or_default();
    a.findings.push(Finding {
        key,
        kind: IncidentKind::DataCorruption,
        severity: Severity::P2,
        nodes: vec![n.name.clone()],
        summary: format!(
            "{} claims height {claimed}, {} blocks above what any other node corroborates ({best})",
            n.name,
            claimed.saturating_sub(best)
        ),
        evidence: json!({
            "node": n.name,
            "error_kind": "implausible_height",
            "claimed_height": claimed,
            "fleet_best_height": best,
            "implausible_lead": cfg.implausible_lead,
        }),
    });
}

fn sync_failure(
    fleet: &Fleet,
    n: &NodeState,
    cfg: &DetectConfig,
    msperblock: u64,
    threshold_ms: u64,
    now: Timestamp,
    a: &mut Assessment,
) {
    let key = sync_key(&n.name);
    if !n.reachable() {
        a.undecided.insert(key);
        return;
    }
    let (Some(height), Some(best), Some(since)) = (n.height, fleet.best_height(), n.height_since)
    else {
        a.undecided.insert(key);
        return;
    };
    let lag = best.saturating_sub(height);
    let frozen_ms = millis_between(since, now);
    // Frozen: the fleet has had a newer block for a full block time, and this node, asked
    // after that, still did not have it. (When a stalled chain resumes, the first node to show
    // the new block must not make every other node look frozen for the whole stall.)
    let passed = fleet.passed_since(height);
    let asked_after = match (passed, n.last_ok_at) {
        (Some(p), Some(seen)) => millis_between(p, seen) > msperblock,
        _ => false,
    };
    let frozen = frozen_ms > threshold_ms && asked_after;
    let level = if lag >= cfg.lag_crit {
        "critical"
    } else if lag >= cfg.lag_warn {
        "warning"
    } else if frozen {
        "frozen"
    } else {
        return;
    };
    let summary = if level == "frozen" {
        format!(
            "{} is frozen at height {height} for {} while the fleet advanced to {best}",
            n.name,
            human_ms(frozen_ms)
        )
    } else {
        format!(
            "{} is {lag} blocks behind the fleet (height {height}, fleet {best}; {level} ≥ {})",
            n.name,
            if level == "critical" {
                cfg.lag_crit
            } else {
                cfg.lag_warn
            }
        )
    };
    a.findings.push(Finding {
        key,
        kind: IncidentKind::SyncFailure,
        severity: Severity::P2,
        nodes: vec![n.name.clone()],
        summary,
        evidence: json!({
            "node": n.name,
            "role": n.role,
            "level": level,
            "height": height,
            "fleet_best_height": best,
            "lag_blocks": lag,
            "lag_warn": cfg.lag_warn,
            "lag_crit": cfg.lag_crit,
            "height_unchanged_since": since,
            "height_unchanged_ms": frozen_ms,
            "fleet_passed_height_at": passed,
            // fault start for the KPIs (MTTD): since the fleet had a newer block than this
            // node's, the node is behind (its height's first sighting when that is unknown)
            "fault_started_at": passed.unwrap_or(since),
            "stall_threshold_ms": threshold_ms,
            "msperblock": msperblock,
        }),
    });
}

/// When the newest block reached the fleet: the block's own time (header `time`) when its
/// header is known and close to when a node was first seen at that height (within
/// `max_early_ms`; a node catching up on old blocks shows old block times while its height
/// climbs), else that first sighting. `None` while some reachable node has no height yet.
pub fn last_block_at(fleet: &Fleet, max_early_ms: u64) -> Option<Timestamp> {
    let reachable: Vec<&NodeState> = fleet.nodes().filter(|n| n.reachable()).collect();
    if reachable.is_empty() {
        return None;
    }
    let mut seen = None;
    for n in &reachable {
        seen = seen.max(Some(n.height_since?));
    }
    let best = reachable.iter().filter_map(|n| n.height).max()?;
    let block_time = fleet
        .chain()
        .get(best)
        .and_then(|h| Timestamp::from_millisecond(h.time_ms as i64).ok());
    match (seen, block_time) {
        (Some(s), Some(b)) if b <= s && millis_between(b, s) <= max_early_ms => Some(b),
        (s, _) => s,
    }
}

/// When the chain will count as stalled if no new block arrives: the shell wakes up then
/// (with fresh probes) instead of waiting for its next tick.
pub fn stall_deadline(fleet: &Fleet, cfg: &DetectConfig) -> Option<Timestamp> {
    let ms = cfg.stall_threshold_ms(fleet.msperblock(cfg.default_msperblock));
    last_block_at(fleet, ms)?
        .checked_add(jiff::SignedDuration::from_millis(ms as i64 + 1))
        .ok()
}

fn consensus_failure(
    fleet: &Fleet,
    cfg: &DetectConfig,
    msperblock: u64,
    threshold_ms: u64,
    now: Timestamp,
    a: &mut Assessment,
) {
    let reachable: Vec<&NodeState> = fleet.nodes().filter(|n| n.reachable()).collect();
    if reachable.is_empty() {
        a.undecided.insert(CONSENSUS_KEY.to_string());
        return;
    }
    let Some(since) = last_block_at(fleet, threshold_ms) else {
        a.undecided.insert(CONSENSUS_KEY.to_string());
        return;
    };
    let stalled_ms = millis_between(since, now);
    if stalled_ms <= threshold_ms {
        return; // the chain made progress recently
    }
    let height = reachable
        .iter()
        .filter_map(|n| n.height)
        .max()
        .unwrap_or_default();
    let mut nodes: Vec<String> = fleet.nodes().map(|n| n.name.clone()).collect();
    nodes.sort();
    // The newest header any node gave: when the last block came and who proposed it; with
    // dBFT the next block's view-0 primary is (height + 1) mod validators.
    let last_header = reachable
        .iter()
        .filter_map(|n| n.header.as_ref())
        .max_by_key(|h| h.index);
    let validators = fleet.validators_count();
    let next_primary = validators.map(|v| (height + 1) % u64::from(v));
    let heights: serde_json::Map<String, serde_json::Value> = reachable
        .iter()
        .map(|n| (n.name.clone(), json!(n.height)))
        .collect();
    a.findings.push(Finding {
        key: CONSENSUS_KEY.to_string(),
        kind: IncidentKind::ConsensusFailure,
        severity: Severity::P1,
        nodes,
        summary: format!(
            "chain stalled at height {height}: no new block on any of {} reachable nodes for {} \
             (threshold {} = {} × {msperblock} ms + {})",
            reachable.len(),
            human_ms(stalled_ms),
            human_ms(threshold_ms),
            cfg.stall_blocks,
            human_ms(cfg.stall_grace.as_millis() as u64),
        ),
        evidence: json!({
            "height": height,
            "stalled_since": since,
            // fault start for the KPIs (MTTD): the last block came then, none since
            "fault_started_at": since,
            "stalled_ms": stalled_ms,
            "threshold_ms": threshold_ms,
            "msperblock": msperblock,
            "reachable_nodes": reachable.len(),
            "heights": heights,
            "last_block_time_ms": last_header.map(|h| h.time_ms),
            "last_block_primary": last_header.and_then(|h| h.primary),
            "validators": validators,
            "next_primary_index": next_primary,
        }),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::fleet::NodeSpec;
    use crate::observation::{ChainStatus, FailureKind, NodeVersion, Observation, ProbeFailure};

    struct World {
        clock: ManualClock,
        fleet: Fleet,
        cfg: DetectConfig,
    }

    fn world(validators: usize, rpc: usize) -> World {
        let mut specs = Vec::new();
        for i in 1..=validators {
            specs.push(NodeSpec {
                name: format!("validator-{i}"),
                role: Role::Validator,
                validator_index: None,
            });
        }
        for i in 1..=rpc {
            specs.push(NodeSpec {
                name: format!("rpc-{i}"),
                role: Role::Rpc,
                validator_index: None,
            });
        }
        World {
            clock: ManualClock::at_epoch_2026(),
            fleet: Fleet::new(&specs),
            cfg: DetectConfig::default(),
        }
    }

    fn ok(node: &str, at: Timestamp, height: u64) -> Observation {
        Observation {
            node: node.into(),
            at,
            latency_ms: 3,
            outcome: Ok(ChainStatus {
                block_count: height + 1,
                best_hash: format!("0x{height:064x}"),
                parent_header: None,
                connections: Some(6),
                version: Some(NodeVersion {
                    user_agent: "/neo-rs:0.14.0/".into(),
                    network: Some(894710606),
                    msperblock: Some(1000),
                    validators_count: Some(4),
                    tcp_port: Some(20333),
                    nonce: Some(1),
                }),
                header: None,
            }),
        }
    }

    fn fail(node: &str, at: Timestamp, kind: FailureKind) -> Observation {
        Observation {
            node: node.into(),
            at,
            latency_ms: 1,
            outcome: Err(ProbeFailure::new(kind, "connection refused")),
        }
    }

    impl World {
        /// One round: every node in `heights` answers with its height, the others fail.
        fn round(&mut self, heights: &[(&str, Option<u64>)]) -> Assessment {
            let now = self.clock.now();
            for (name, h) in heights {
                let obs = match h {
                    Some(h) => ok(name, now, *h),
                    None => fail(name, now, FailureKind::Refused),
                };
                self.fleet.record(obs);
            }
            self.fleet.end_round(&self.cfg);
            detect(&self.fleet, &self.cfg, now)
        }

        fn tick(&self, ms: u64) {
            self.clock.advance(Duration::from_millis(ms));
        }
    }

    fn keys(a: &Assessment) -> Vec<&str> {
        a.findings.iter().map(|f| f.key.as_str()).collect()
    }

    #[test]
    fn single_failed_probe_never_pages_and_confirmation_does() {
        let mut w = world(4, 3);
        let all: Vec<String> = w.fleet.nodes().map(|n| n.name.clone()).collect();
        let mut row: Vec<(&str, Option<u64>)> =
            all.iter().map(|n| (n.as_str(), Some(10))).collect();
        w.round(&row);
        w.tick(1000);
        row.iter_mut().for_each(|r| r.1 = Some(11));
        let i = row.iter().position(|r| r.0 == "rpc-1").unwrap();
        row[i].1 = None;
        let a = w.round(&row);
        assert!(keys(&a).is_empty(), "one failure is not a finding: {a:?}");
        assert!(a.undecided.contains("node_down:rpc-1"));
        // the immediate re-probe (same round, a few ms later) confirms
        w.tick(5);
        let a = w.round(&[("rpc-1", None)]);
        assert_eq!(keys(&a), ["node_down:rpc-1"]);
        let f = &a.findings[0];
        assert_eq!(f.severity, Severity::P2);
        assert_eq!(f.nodes, ["rpc-1"]);
        assert_eq!(f.evidence["error_kind"], "refused");
        assert_eq!(f.evidence["consecutive_failures"], 2);
        assert_eq!(f.evidence["last_height"], 10);
        // the KPIs' fault start: the first failed probe of the streak
        assert_eq!(f.evidence["fault_started_at"], f.evidence["failing_since"]);
        assert!(f.evidence["fault_started_at"].is_string());
        // it answers again: the condition is clear
        w.tick(1000);
        let a = w.round(&[("rpc-1", Some(12))]);
        assert!(!a.undecided.contains("node_down:rpc-1"));
        assert!(keys(&a).is_empty());
    }

    #[test]
    fn validator_down_is_p1_and_last_node_down_is_p1() {
        let mut w = world(1, 2);
        w.round(&[
            ("validator-1", Some(5)),
            ("rpc-1", Some(5)),
            ("rpc-2", Some(5)),
        ]);
        w.round(&[("validator-1", None), ("rpc-1", Some(5))]);
        let a = w.round(&[("validator-1", None)]);
        assert_eq!(a.findings[0].severity, Severity::P1);
        // rpc-1 down while rpc-2 still answers: P2
        w.round(&[("rpc-1", None), ("rpc-2", Some(5))]);
        let a = w.round(&[("rpc-1", None)]);
        let f = a
            .findings
            .iter()
            .find(|f| f.key == "node_down:rpc-1")
            .unwrap();
        assert_eq!(f.severity, Severity::P2);
        // now the last one goes: every node_down is P1
        w.round(&[("rpc-2", None), ("rpc-1", None)]);
        let a = w.round(&[("rpc-2", None), ("rpc-1", None), ("validator-1", None)]);
        assert!(
            a.findings.iter().all(|f| f.severity == Severity::P1),
            "{a:?}"
        );
        assert!(
            a.undecided.contains(CONSENSUS_KEY),
            "no reachable node: cannot judge consensus"
        );
    }

    #[test]
    fn one_slow_answer_from_the_rest_does_not_make_a_lone_rpc_crash_p1() {
        let mut w = world(1, 2);
        w.round(&[
            ("validator-1", Some(5)),
            ("rpc-1", Some(5)),
            ("rpc-2", Some(5)),
        ]);
        w.round(&[
            ("rpc-2", None),
            ("validator-1", Some(5)),
            ("rpc-1", Some(5)),
        ]);
        // rpc-2's second failure comes in a round where the others time out once
        let a = w.round(&[("rpc-2", None), ("validator-1", None), ("rpc-1", None)]);
        let f = a
            .findings
            .iter()
            .find(|f| f.key == "node_down:rpc-2")
            .unwrap();
        assert_eq!(f.severity, Severity::P2, "{a:?}");
    }

    #[test]
    fn chain_stall_is_one_consensus_failure_after_threshold() {
        let mut w = world(4, 3);
        let names: Vec<String> = w.fleet.nodes().map(|n| n.name.clone()).collect();
        let at = |h: u64| -> Vec<(&str, Option<u64>)> {
            names.iter().map(|n| (n.as_str(), Some(h))).collect()
        };
        for h in 0..5 {
            assert!(keys(&w.round(&at(h))).is_empty());
            w.tick(1000);
        }
        // stalled at 4 (seen at t = 4 s): threshold is 2 × 1000 + 800 = 2800 ms, with
        // msperblock from getversion. A view change (2 × msperblock) is not a stall.
        w.tick(1000);
        assert!(keys(&w.round(&at(4))).is_empty());
        w.tick(800);
        assert!(
            keys(&w.round(&at(4))).is_empty(),
            "2800 ms is not more than 2800 ms"
        );
        w.tick(1);
        let a = w.round(&at(4));
        assert_eq!(keys(&a), [CONSENSUS_KEY], "one incident, not one per node");
        let f = &a.findings[0];
        assert_eq!(f.severity, Severity::P1);
        assert_eq!(f.nodes.len(), 7);
        assert_eq!(f.evidence["threshold_ms"], 2800);
        assert_eq!(f.evidence["height"], 4);
        assert_eq!(f.evidence["fault_started_at"], f.evidence["stalled_since"]);
        assert!(
            !keys(&a).iter().any(|k| k.starts_with("sync_failure")),
            "not a local fault"
        );
        // a new block clears it
        w.tick(100);
        assert!(keys(&w.round(&at(5))).is_empty());
    }

    #[test]
    fn frozen_node_while_fleet_advances_is_sync_failure_of_that_node_only() {
        let mut w = world(4, 3);
        let names: Vec<String> = w.fleet.nodes().map(|n| n.name.clone()).collect();
        let mut last = Assessment::default();
        for h in 0..8u64 {
            let row: Vec<(&str, Option<u64>)> = names
                .iter()
                .map(|n| (n.as_str(), Some(if n == "rpc-2" { h.min(2) } else { h })))
                .collect();
            last = w.round(&row);
            w.tick(1000);
        }
        // rpc-2 frozen at 2 since t=2s; at t=7s it is 5 s (> 4 s) behind while others advance
        assert_eq!(keys(&last), ["sync_failure:rpc-2"]);
        let f = &last.findings[0];
        assert_eq!(f.severity, Severity::P2);
        assert_eq!(f.evidence["level"], "frozen");
        assert_eq!(f.evidence["height"], 2);
        assert_eq!(f.evidence["fleet_best_height"], 7);
    }

    #[test]
    fn resumed_chain_does_not_make_slower_nodes_look_frozen() {
        let mut w = world(4, 3);
        let names: Vec<String> = w.fleet.nodes().map(|n| n.name.clone()).collect();
        let all_at = |h: u64| -> Vec<(&str, Option<u64>)> {
            names.iter().map(|n| (n.as_str(), Some(h))).collect()
        };
        w.round(&all_at(4));
        w.tick(10_000);
        let a = w.round(&all_at(4));
        assert_eq!(keys(&a), [CONSENSUS_KEY]);
        // the chain resumes: one node shows block 5 first, in the same round the others are
        // still asked at 4
        w.tick(100);
        let mut row = all_at(4);
        row[0].1 = Some(5);
        let a = w.round(&row);
        assert!(
            keys(&a).is_empty(),
            "no node is frozen, the chain just resumed: {a:?}"
        );
        w.tick(100);
        let a = w.round(&all_at(5));
        assert!(keys(&a).is_empty(), "{a:?}");
    }

    #[test]
    fn lag_thresholds_from_the_kpi_table() {
        let mut w = world(1, 1);
        let a = w.round(&[("validator-1", Some(1000)), ("rpc-1", Some(951))]);
        assert!(keys(&a).is_empty(), "lag 49 is normal");
        w.tick(10);
        let a = w.round(&[("validator-1", Some(1000)), ("rpc-1", Some(950))]);
        assert_eq!(a.findings[0].evidence["level"], "warning");
        w.tick(10);
        let a = w.round(&[("validator-1", Some(1000)), ("rpc-1", Some(900))]);
        assert_eq!(a.findings[0].evidence["level"], "critical");
        assert_eq!(a.findings[0].evidence["lag_blocks"], 100);
    }

    #[test]
    fn lying_height_is_screened_out_and_reported() {
        let mut w = world(4, 3);
        let names: Vec<String> = w.fleet.nodes().map(|n| n.name.clone()).collect();
        let row: Vec<(&str, Option<u64>)> = names
            .iter()
            .map(|n| (n.as_str(), Some(if n == "rpc-3" { 1_000_100 } else { 100 })))
            .collect();
        let a = w.round(&row);
        assert_eq!(
            w.fleet.best_height(),
            Some(100),
            "the liar does not move the best height"
        );
        assert_eq!(
            keys(&a),
            ["data_corruption:rpc-3"],
            "no node looks lagging: {a:?}"
        );
        assert_eq!(a.findings[0].evidence["error_kind"], "implausible_height");
        let view = w.fleet.view();
        let liar = view.iter().find(|v| v.name == "rpc-3").unwrap();
        assert_eq!(liar.state, "implausible_height");
    }

    #[test]
    fn unreachable_node_is_undecided_for_sync() {
        let mut w = world(1, 2);
        w.round(&[
            ("validator-1", Some(10)),
            ("rpc-1", Some(10)),
            ("rpc-2", Some(10)),
        ]);
        let a = w.round(&[("rpc-2", None)]);
        assert!(a.undecided.contains("sync_failure:rpc-2"));
        assert!(a.undecided.contains("node_down:rpc-2"));
    }

    #[test]
    fn restored_height_keeps_measuring_a_stall_across_restart() {
        let mut w = world(1, 1);
        let t0 = w.clock.now();
        w.fleet.restore("validator-1", 50, t0);
        w.fleet.restore("rpc-1", 50, t0);
        w.tick(10_000);
        let a = w.round(&[("validator-1", Some(50)), ("rpc-1", Some(50))]);
        assert_eq!(keys(&a), [CONSENSUS_KEY]);
        assert_eq!(a.findings[0].evidence["stalled_ms"], 10_000);
    }

    #[test]
    fn msperblock_comes_from_getversion_not_a_constant() {
        let mut w = world(1, 0);
        assert_eq!(w.fleet.msperblock(15_000), 15_000);
        w.round(&[("validator-1", Some(1))]);
        assert_eq!(w.fleet.msperblock(15_000), 1000);
    }

    fn report(parts: &[(&str, &[&str])], w: &World) -> crate::fork::ForkReport {
        let answers: Vec<(String, String)> = parts
            .iter()
            .flat_map(|(hash, nodes)| nodes.iter().map(move |n| (n.to_string(), hash.to_string())))
            .collect();
        let roles = w.fleet.nodes().map(|n| (n.name.clone(), n.role)).collect();
        let partitions = crate::fork::partitions(&answers, &roles);
        crate::fork::ForkReport {
            at: w.clock.now(),
            height: 100,
            first_difference: (partitions.len() > 1).then(|| crate::fork::FirstDifference {
                height: 90,
                last_common: 89,
                hashes: partitions.iter().map(|p| p.hash.clone()).collect(),
            }),
            partitions,
            bisection_requests: 7,
            unanswered: vec![],
        }
    }

    fn all_at(w: &World, h: u64) -> Vec<(String, Option<u64>)> {
        w.fleet.nodes().map(|n| (n.name.clone(), Some(h))).collect()
    }

    fn round_owned(w: &mut World, row: &[(String, Option<u64>)]) -> Assessment {
        let r: Vec<(&str, Option<u64>)> = row.iter().map(|(n, h)| (n.as_str(), *h)).collect();
        w.round(&r)
    }

    #[test]
    fn validators_on_both_sides_is_a_p1_split_brain() {
        let mut w = world(4, 3);
        let rep = report(
            &[
                ("0xaa", &["validator-1", "validator-2", "rpc-1"]),
                ("0xbb", &["validator-3", "validator-4", "rpc-2", "rpc-3"]),
            ],
            &w,
        );
        w.fleet.set_fork_report(rep);
        // the nodes on the other chain have other state roots too: the same cause, not a
        // second (state) split brain nor their corruption
        let t = w.clock.now();
        let roots = w
            .fleet
            .nodes()
            .map(|n| {
                let other = ["validator-1", "validator-2", "rpc-1"].contains(&n.name.as_str());
                (
                    n.name.clone(),
                    if other { "0xs1" } else { "0xs2" }.to_string(),
                )
            })
            .collect();
        w.fleet.set_state_roots(crate::fork::StateRootReport {
            at: t,
            index: 95,
            roots,
        });
        let row = all_at(&w, 100);
        let a = round_owned(&mut w, &row);
        assert_eq!(keys(&a), [SPLIT_BRAIN_KEY]);
        let f = &a.findings[0];
        assert_eq!(f.severity, Severity::P1);
        assert_eq!(f.kind, IncidentKind::SplitBrain);
        let parts = f.evidence["partitions"].as_array().unwrap();
        assert_eq!(parts[0]["canonical"], true);
        assert_eq!(
            parts[0]["hash_at_compared_height"], "0xbb",
            "tie on validators: more nodes"
        );
        assert_eq!(f.evidence["first_differing_height"], 90);
        assert_eq!(f.evidence["bisection_requests"], 7);
    }

    #[test]
    fn rpc_nodes_off_the_validators_chain_is_a_p2_split_brain() {
        let mut w = world(4, 3);
        let rep = report(
            &[
                (
                    "0xaa",
                    &[
                        "validator-1",
                        "validator-2",
                        "validator-3",
                        "validator-4",
                        "rpc-1",
                    ],
                ),
                ("0xbb", &["rpc-2", "rpc-3"]),
            ],
            &w,
        );
        w.fleet.set_fork_report(rep);
        let row = all_at(&w, 100);
        let a = round_owned(&mut w, &row);
        assert_eq!(keys(&a), [SPLIT_BRAIN_KEY]);
        assert_eq!(a.findings[0].severity, Severity::P2);
    }

    #[test]
    fn one_node_alone_off_the_chain_is_its_corruption_not_a_split_brain() {
        let mut w = world(4, 3);
        let rep = report(
            &[
                (
                    "0xaa",
                    &[
                        "validator-1",
                        "validator-2",
                        "validator-3",
                        "validator-4",
                        "rpc-1",
                        "rpc-2",
                    ],
                ),
                ("0xcc", &["rpc-3"]),
            ],
            &w,
        );
        w.fleet.set_fork_report(rep);
        let row = all_at(&w, 100);
        let a = round_owned(&mut w, &row);
        assert_eq!(keys(&a), ["data_corruption:divergent:rpc-3"]);
        assert_eq!(a.findings[0].severity, Severity::P1);
        assert_eq!(a.findings[0].nodes, ["rpc-3"]);
        // agreement again: both keys are clear (not undecided)
        let rep = report(&[("0xaa", &["validator-1", "rpc-3"])], &w);
        w.fleet.set_fork_report(rep);
        let row = all_at(&w, 101);
        let a = round_owned(&mut w, &row);
        assert!(keys(&a).is_empty());
        assert!(!a.undecided.contains("data_corruption:divergent:rpc-3"));
        assert!(!a.undecided.contains(SPLIT_BRAIN_KEY));
    }

    #[test]
    fn one_node_off_while_nodes_that_are_up_did_not_answer_waits_for_the_next_check() {
        let mut w = world(4, 3);
        let mut rep = report(
            &[
                ("0xaa", &["validator-1", "validator-2", "rpc-1", "rpc-2"]),
                ("0xcc", &["rpc-3"]),
            ],
            &w,
        );
        rep.unanswered = vec!["validator-3".into(), "validator-4".into()];
        w.fleet.set_fork_report(rep.clone());
        // validator-3 and -4 answer their probes: they may be on rpc-3's branch
        let row = all_at(&w, 100);
        let a = round_owned(&mut w, &row);
        assert!(keys(&a).is_empty(), "{:?}", keys(&a));
        assert!(a.undecided.contains("data_corruption:divergent:rpc-3"));
        assert!(a.undecided.contains(SPLIT_BRAIN_KEY));
        // down, they hold nothing up: rpc-3 is alone
        w.fleet.set_fork_report(rep);
        let row: Vec<(String, Option<u64>)> = all_at(&w, 101)
            .into_iter()
            .map(|(n, h)| {
                let down = n == "validator-3" || n == "validator-4";
                (n, if down { None } else { h })
            })
            .collect();
        let a = round_owned(&mut w, &row);
        assert!(
            keys(&a).contains(&"data_corruption:divergent:rpc-3"),
            "{:?}",
            keys(&a)
        );
    }

    fn header(index: u64, primary: u32, time_ms: u64) -> crate::observation::HeaderInfo {
        crate::observation::HeaderInfo {
            hash: format!("0x{index:064x}"),
            index,
            time_ms,
            primary: Some(primary),
            next_consensus: String::new(),
            previous_hash: String::new(),
        }
    }

    #[test]
    fn a_validator_missing_its_turns_is_named_and_folded_into_its_node_down() {
        let mut w = world(4, 0);
        let row = all_at(&w, 40);
        round_owned(&mut w, &row); // getversion: 4 validators, 1000 ms
                                   // validator index 1 (validator-2) fails every turn: its blocks go to view 1
        for i in 0..40u64 {
            let view0 = (i % 4) as u32;
            let primary = if view0 == 1 { 0 } else { view0 };
            let extra = if view0 == 1 { 1000 } else { 0 };
            w.fleet.record_header(header(i, primary, i * 1000 + extra));
        }
        let a = round_owned(&mut w, &row);
        assert_eq!(keys(&a), ["consensus_failure:missed_turns:validator-2"]);
        let f = &a.findings[0];
        assert_eq!(f.severity, Severity::P3);
        assert_eq!(f.nodes, ["validator-2"]);
        assert_eq!(f.evidence["missed"], 5);
        assert_eq!(
            f.evidence["missed_blocks"],
            serde_json::json!([21, 25, 29, 33, 37])
        );
        // a slow-but-advancing chain with one failing primary is not a slow-blocks finding:
        // the median interval stays at the target
        assert!(!keys(&a).contains(&SLOW_BLOCKS_KEY));
        // now validator-2 is down: one incident (node_down), not two
        w.round(&[("validator-2", None)]);
        let a = w.round(&[("validator-2", None)]);
        assert_eq!(keys(&a), ["node_down:validator-2"]);
        assert!(a
            .undecided
            .contains("consensus_failure:missed_turns:validator-2"));
    }

    #[test]
    fn slow_blocks_by_median_not_by_one_stall_gap() {
        let mut w = world(4, 0);
        let row = all_at(&w, 30);
        round_owned(&mut w, &row);
        // one 30 s gap among 1 s blocks: not slow
        let mut t = 0;
        for i in 0..=20u64 {
            t += if i == 15 { 30_000 } else { 1000 };
            w.fleet.record_header(header(i, (i % 4) as u32, t));
        }
        let a = round_owned(&mut w, &row);
        assert!(!keys(&a).contains(&SLOW_BLOCKS_KEY), "{a:?}");
        // every block takes 2.5 s against 1 s: slow
        for i in 21..=40u64 {
            t += 2500;
            w.fleet.record_header(header(i, (i % 4) as u32, t));
        }
        let a = round_owned(&mut w, &row);
        let f = a
            .findings
            .iter()
            .find(|f| f.key == SLOW_BLOCKS_KEY)
            .expect("slow blocks");
        assert_eq!(f.severity, Severity::P3);
        assert_eq!(f.evidence["median_interval_ms"], 2500);
        assert_eq!(f.evidence["limit_ms"], 2000);
    }

    fn ok_with(node: &str, at: Timestamp, height: u64, latency_ms: u64, peers: u32) -> Observation {
        let mut o = ok(node, at, height);
        o.latency_ms = latency_ms;
        if let Ok(s) = &mut o.outcome {
            s.connections = Some(peers);
        }
        o
    }

    fn kpi_round(w: &mut World, obs: Vec<Observation>) -> Assessment {
        for o in obs {
            w.fleet.record(o);
        }
        w.fleet.end_round(&w.cfg);
        detect(&w.fleet, &w.cfg, w.clock.now())
    }

    #[test]
    fn rpc_latency_against_the_kpi_table() {
        let mut w = world(1, 1);
        let t = w.clock.now();
        let a = kpi_round(
            &mut w,
            vec![
                ok_with("validator-1", t, 5, 3, 8),
                ok_with("rpc-1", t, 5, 600, 8),
            ],
        );
        let f = a
            .findings
            .iter()
            .find(|f| f.key == "performance_degradation:rpc-1")
            .unwrap();
        assert_eq!(f.severity, Severity::P3);
        assert_eq!(f.evidence["breaches"][0]["metric"], "rpc_response_time");
        for _ in 0..3 {
            kpi_round(&mut w, vec![ok_with("rpc-1", t, 5, 2500, 8)]);
        }
        let a = kpi_round(&mut w, vec![ok_with("rpc-1", t, 5, 2500, 8)]);
        let f = a
            .findings
            .iter()
            .find(|f| f.key == "performance_degradation:rpc-1")
            .unwrap();
        assert_eq!(
            f.severity,
            Severity::P2,
            "median of the last 5 is now above 2000 ms"
        );
        assert!(
            !keys(&a).iter().any(|k| k.starts_with("node_down")),
            "slow is not down"
        );
    }

    #[test]
    fn peers_zero_is_its_own_critical_finding() {
        let mut w = world(1, 1);
        let t = w.clock.now();
        let a = kpi_round(
            &mut w,
            vec![
                ok_with("validator-1", t, 5, 3, 8),
                ok_with("rpc-1", t, 5, 3, 0),
            ],
        );
        assert_eq!(keys(&a), ["performance_degradation:peers:rpc-1"]);
        assert_eq!(a.findings[0].severity, Severity::P2);
        let a = kpi_round(&mut w, vec![ok_with("rpc-1", t, 5, 3, 2)]);
        assert_eq!(a.findings[0].severity, Severity::P3);
        let a = kpi_round(&mut w, vec![ok_with("rpc-1", t, 5, 3, 3)]);
        assert!(keys(&a).is_empty());
    }

    #[test]
    fn memory_cpu_iowait_from_metrics_and_agent() {
        use crate::telemetry::{HostSample, NodeMetrics};
        let mut w = world(1, 0);
        let t = w.clock.now();
        w.fleet.record_metrics(
            "validator-1",
            NodeMetrics {
                at: Some(t),
                memory_bytes: Some(7 * 1024 * 1024 * 1024),
                healthz_ok: Some(true),
                readyz_ok: Some(false),
                ..Default::default()
            },
        );
        w.fleet.record_host(
            "validator-1",
            HostSample {
                cpu_percent: Some(97.0),
                iowait_percent: Some(35.0),
                ..Default::default()
            },
        );
        let a = kpi_round(&mut w, vec![ok_with("validator-1", t, 5, 3, 8)]);
        let f = a
            .findings
            .iter()
            .find(|f| f.key == "performance_degradation:validator-1")
            .unwrap();
        assert_eq!(f.severity, Severity::P2, "CPU 97 % is critical");
        let metrics: Vec<&str> = f.evidence["breaches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["metric"].as_str().unwrap())
            .collect();
        assert_eq!(metrics, ["memory_rss", "cpu", "disk_io_wait"]);
        let h = a
            .findings
            .iter()
            .find(|f| f.key == "performance_degradation:health:validator-1")
            .unwrap();
        assert_eq!(h.severity, Severity::P3);
        assert_eq!(h.evidence["failing"], serde_json::json!(["readyz"]));
    }

    #[test]
    fn slow_rpc_with_a_flood_of_connections_is_an_attack_not_degradation() {
        use crate::telemetry::{HostSample, RemoteConnections};
        let mut w = world(1, 1);
        let t = w.clock.now();
        for node in ["validator-1", "rpc-1"] {
            w.fleet.record_host(
                node,
                HostSample {
                    p2p_established: Some(60),
                    rpc_established: Some(4),
                    top_remotes: vec![RemoteConnections {
                        ip: "203.0.113.9".into(),
                        p2p: 50,
                        rpc: 0,
                    }],
                    ..Default::default()
                },
            );
        }
        let a = kpi_round(
            &mut w,
            vec![
                ok_with("validator-1", t, 5, 900, 8),
                ok_with("rpc-1", t, 5, 900, 8),
            ],
        );
        assert_eq!(
            keys(&a),
            ["network_attack:rpc-1", "network_attack:validator-1"]
        );
        let v = a
            .findings
            .iter()
            .find(|f| f.key == "network_attack:validator-1")
            .unwrap();
        assert_eq!(v.severity, Severity::P1, "a validator is affected");
        assert_eq!(v.evidence["top_remote_ips"][0]["ip"], "203.0.113.9");
        let r = a
            .findings
            .iter()
            .find(|f| f.key == "network_attack:rpc-1")
            .unwrap();
        assert_eq!(r.severity, Severity::P2);
        // the same flood with fast RPC is not an attack finding
        let mut w2 = world(0, 1);
        w2.fleet.record_host(
            "rpc-1",
            HostSample {
                p2p_established: Some(60),
                top_remotes: vec![RemoteConnections {
                    ip: "203.0.113.9".into(),
                    p2p: 50,
                    rpc: 0,
                }],
                ..Default::default()
            },
        );
        let t2 = w2.clock.now();
        let a = kpi_round(&mut w2, vec![ok_with("rpc-1", t2, 5, 20, 8)]);
        assert!(keys(&a).is_empty(), "{a:?}");
    }

    #[test]
    fn negative_cases_small_lag_and_slow_but_advancing_chain() {
        let mut w = world(1, 1);
        // 5 blocks behind is normal
        let a = w.round(&[("validator-1", Some(105)), ("rpc-1", Some(100))]);
        assert!(keys(&a).is_empty());
        // a block every 2.5 s against msperblock 1000: slower than target, but never more
        // than 2 x 1000 + 800 ms without a block, so no stall (checked between blocks too)
        for h in 106..120u64 {
            w.tick(1250);
            let a = w.round(&[("validator-1", Some(h - 1)), ("rpc-1", Some(h - 1))]);
            assert!(!keys(&a).contains(&CONSENSUS_KEY), "{a:?}");
            w.tick(1250);
            let a = w.round(&[("validator-1", Some(h)), ("rpc-1", Some(h))]);
            assert!(!keys(&a).contains(&CONSENSUS_KEY), "{a:?}");
        }
    }

    #[test]
    fn a_node_whose_state_root_differs_alone_is_corrupt() {
        let mut w = world(2, 2);
        let t = w.clock.now();
        let mut roots: Vec<(String, String)> = ["validator-1", "validator-2", "rpc-1"]
            .iter()
            .map(|n| (n.to_string(), "0xgood".to_string()))
            .collect();
        roots.push(("rpc-2".into(), "0xbad".into()));
        w.fleet.set_state_roots(crate::fork::StateRootReport {
            at: t,
            index: 50,
            roots,
        });
        let row = all_at(&w, 60);
        let a = round_owned(&mut w, &row);
        assert_eq!(keys(&a), ["data_corruption:state:rpc-2"]);
        let f = &a.findings[0];
        assert_eq!(f.severity, Severity::P1);
        assert_eq!(f.evidence["state_root_mismatch"]["network_root"], "0xgood");
        assert_eq!(f.evidence["state_root_mismatch"]["index"], 50);
    }

    #[test]
    fn validated_root_stuck_while_local_climbs() {
        let mut w = world(1, 2);
        for local in 100..=125u64 {
            w.fleet.record_state_height("validator-1", local, local - 1);
            w.fleet.record_state_height("rpc-1", local, local - 1);
            w.fleet.record_state_height("rpc-2", local, 99);
        }
        let row = all_at(&w, 125);
        let a = round_owned(&mut w, &row);
        assert_eq!(keys(&a), ["data_corruption:state:rpc-2"], "{a:?}");
        assert_eq!(
            a.findings[0].evidence["validated_root_stuck"]["validatedrootindex"],
            99
        );
        // 19 blocks is within the normal signing lag
        let mut w = world(0, 2);
        for local in 100..=119u64 {
            w.fleet.record_state_height("rpc-1", local, local);
            w.fleet.record_state_height("rpc-2", local, 100);
        }
        let row = all_at(&w, 119);
        assert!(keys(&round_owned(&mut w, &row)).is_empty());
        // every node stuck: the state validators stopped signing, one network finding
        let mut w = world(0, 2);
        for local in 100..=130u64 {
            w.fleet.record_state_height("rpc-1", local, 100);
            w.fleet.record_state_height("rpc-2", local, 100);
        }
        let row = all_at(&w, 130);
        let a = round_owned(&mut w, &row);
        assert_eq!(keys(&a), [STATE_VALIDATION_KEY]);
        assert_eq!(a.findings[0].severity, Severity::P2);
    }

    #[test]
    fn a_node_whose_own_headers_do_not_link_is_corrupt() {
        let mut w = world(0, 2);
        let t = w.clock.now();
        let with_header = |node: &str, index: u64, hash: &str, prev: &str| {
            let mut o = ok(node, t, index);
            if let Ok(s) = &mut o.outcome {
                s.header = Some(header_linked(index, hash, prev));
            }
            o
        };
        let a = kpi_round(
            &mut w,
            vec![
                with_header("rpc-1", 10, "0xa10", "0xa9"),
                with_header("rpc-2", 10, "0xa10", "0xa9"),
            ],
        );
        assert!(keys(&a).is_empty(), "{:?}", keys(&a));
        let a = kpi_round(
            &mut w,
            vec![
                with_header("rpc-1", 11, "0xa11", "0xa10"),
                with_header("rpc-2", 11, "0xb11", "0xbad"),
            ],
        );
        assert_eq!(keys(&a), ["data_corruption:chain:rpc-2"]);
        assert_eq!(a.findings[0].evidence["previousblockhash"], "0xbad");
        assert_eq!(a.findings[0].severity, Severity::P1);
        // a node just seen on a fork changes its blocks when it rejoins: the fork's aftermath
        let rep = report(&[("0xaa", &["rpc-1"]), ("0xbb", &["rpc-2"])], &w);
        w.fleet.set_fork_report(rep);
        let a = kpi_round(&mut w, vec![with_header("rpc-2", 12, "0xa12", "0xa11")]);
        assert!(!keys(&a).contains(&"data_corruption:chain:rpc-2"), "{a:?}");
        let a = kpi_round(&mut w, vec![with_header("rpc-2", 13, "0xc13", "0xzz")]);
        assert!(!keys(&a).contains(&"data_corruption:chain:rpc-2"), "{a:?}");
        assert!(a.undecided.contains("data_corruption:chain:rpc-2"));
    }

    fn header_linked(index: u64, hash: &str, prev: &str) -> crate::observation::HeaderInfo {
        crate::observation::HeaderInfo {
            hash: hash.into(),
            index,
            time_ms: 1_767_225_600_000,
            primary: Some(0),
            next_consensus: String::new(),
            previous_hash: prev.into(),
        }
    }

    #[test]
    fn catching_up_on_old_blocks_is_not_a_stall() {
        let mut w = world(0, 2);
        // both nodes resync from blocks two years old: heights climb fast, block times are old
        for h in 1000..1020u64 {
            w.tick(500);
            let t = w.clock.now();
            let obs = ["rpc-1", "rpc-2"].map(|n| {
                let mut o = ok(n, t, h);
                if let Ok(s) = &mut o.outcome {
                    s.header = Some(header_linked(h, &format!("0x{h}"), &format!("0x{}", h - 1)));
                    if let Some(hd) = &mut s.header {
                        hd.time_ms = 1_700_000_000_000 + h * 15_000;
                    }
                }
                o
            });
            let a = kpi_round(&mut w, obs.to_vec());
            assert!(!keys(&a).contains(&CONSENSUS_KEY), "{a:?}");
        }
    }
}
