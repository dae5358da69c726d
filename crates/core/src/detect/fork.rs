//! Split brain and single-node divergence, from the latest cross-node hash comparison.
//!
//! - Several partitions, with more than one node off the canonical chain: `split_brain`
//!   (P1 when validators are on different sides, else P2).
//! - Exactly one node off the canonical chain, alone: `data_corruption` of that node (P1).
//!
//! The canonical chain is the partition most validators are on (`fork::partitions`).

use serde_json::json;

use super::DetectConfig;
use crate::fleet::Fleet;
use crate::fork::{partitions, ForkReport};
use crate::incident::{Assessment, Finding, IncidentKind, Severity};

pub const SPLIT_BRAIN_KEY: &str = "split_brain";

pub const STATE_SPLIT_KEY: &str = "split_brain:state";
pub const STATE_VALIDATION_KEY: &str = "consensus_failure:state_validation";

pub fn state_key(node: &str) -> String {
    format!("data_corruption:state:{node}")
}

pub fn divergence_key(node: &str) -> String {
    format!("data_corruption:divergent:{node}")
}

pub(super) fn split_brain(fleet: &Fleet, a: &mut Assessment) {
    let Some(report) = fleet.fork_report() else {
        a.undecided.insert(SPLIT_BRAIN_KEY.to_string());
        for n in fleet.nodes() {
            a.undecided.insert(divergence_key(&n.name));
        }
        return;
    };
    for n in &report.unanswered {
        a.undecided.insert(divergence_key(n));
    }
    if !report.diverged() {
        return;
    }
    let canonical = &report.partitions[0];
    let off: Vec<&crate::fork::Partition> = report.partitions[1..].iter().collect();
    let off_nodes: usize = off.iter().map(|p| p.nodes.len()).sum();
    // One node off the canonical chain while others that are up did not answer at the
    // compared height (they may be on its branch, a block behind): alone or a split brain
    // is for the next check to say. An unanswered node that is down does not hold it up
    // (a corrupt node is still found while another one is crashed).
    if off_nodes == 1
        && report
            .unanswered
            .iter()
            .any(|n| fleet.node(n).is_some_and(|s| s.answering()))
    {
        a.undecided.insert(SPLIT_BRAIN_KEY.to_string());
        for p in &off {
            for n in &p.nodes {
                a.undecided.insert(divergence_key(n));
            }
        }
        return;
    }
    let evidence = evidence(report, fleet.diverged_since());
    if off_nodes == 1
        && report
            .partitions
            .iter()
            .map(|p| p.nodes.len())
            .sum::<usize>()
            > 2
    {
        let node = &off[0].nodes[0];
        let first = report.first_difference.as_ref();
        a.findings.push(Finding {
            key: divergence_key(node),
            kind: IncidentKind::DataCorruption,
            severity: Severity::P1,
            nodes: vec![node.clone()],
            summary: format!(
                "{node} diverges alone from the canonical chain: hash {} at height {} where {} \
                 other nodes have {}{}",
                short(&off[0].hash),
                report.height,
                canonical.nodes.len(),
                short(&canonical.hash),
                first
                    .map(|d| format!("; first differing block {}", d.height))
                    .unwrap_or_default()
            ),
            evidence,
        });
        // one node alone is that node's corruption, not a split brain
        return;
    }
    let validators_split = report
        .partitions
        .iter()
        .filter(|p| !p.validators.is_empty())
        .count()
        > 1;
    let severity = if validators_split {
        Severity::P1
    } else {
        Severity::P2
    };
    let mut nodes: Vec<String> = report
        .partitions
        .iter()
        .flat_map(|p| p.nodes.iter().cloned())
        .collect();
    nodes.sort();
    a.findings.push(Finding {
        key: SPLIT_BRAIN_KEY.to_string(),
        kind: IncidentKind::SplitBrain,
        severity,
        nodes,
        summary: format!(
            "{} partitions disagree at height {}{}; canonical chain ({} validators; nodes {}) is {}",
            report.partitions.len(),
            report.height,
            report
                .first_difference
                .as_ref()
                .map(|d| format!(" (first differing block {})", d.height))
                .unwrap_or_default(),
            canonical.validators.len(),
            canonical.nodes.join(", "),
            short(&canonical.hash),
        ),
        evidence,
    });
    for n in fleet.nodes() {
        // the split brain incident covers these nodes; no per-node divergence on top
        a.undecided.remove(&divergence_key(&n.name));
    }
}

fn evidence(report: &ForkReport, diverged_since: Option<jiff::Timestamp>) -> serde_json::Value {
    json!({
        // the first comparison that saw the chains differ (MTTD counts from it)
        crate::kpis::FAULT_STARTED_AT: diverged_since,
        "compared_height": report.height,
        "checked_at": report.at,
        "canonical_hash": report.partitions[0].hash,
        "partitions": report.partitions.iter().enumerate().map(|(i, p)| json!({
            "canonical": i == 0,
            "hash_at_compared_height": p.hash,
            "nodes": p.nodes,
            "validators": p.validators,
        })).collect::<Vec<_>>(),
        "first_differing_height": report.first_difference.as_ref().map(|d| d.height),
        "last_common_height": report.first_difference.as_ref().map(|d| d.last_common),
        "hashes_at_first_difference": report.first_difference.as_ref().map(|d| d.hashes.clone()),
        "bisection_requests": report.bisection_requests,
        "unanswered": report.unanswered,
    })
}

fn short(hash: &str) -> String {
    if hash.len() > 14 {
        format!("{}…", &hash[..14])
    } else {
        hash.to_string()
    }
}

/// State roots: a node whose root hash differs alone from the others at the same index, or
/// whose `validatedrootindex` stays put while its `localrootindex` climbs `stateroot_lag`
/// blocks, has a state that no longer matches the network's: `data_corruption` (P1) of that
/// node, one incident for both signs. Groups that disagree are a state split brain; every
/// node stuck at once means the state validators stopped signing (P2 consensus finding).
pub(super) fn state_roots(fleet: &Fleet, cfg: &DetectConfig, a: &mut Assessment) {
    let mut per_node: std::collections::BTreeMap<
        String,
        serde_json::Map<String, serde_json::Value>,
    > = Default::default();
    for n in fleet.nodes().filter(|n| !n.reachable()) {
        a.undecided.insert(state_key(&n.name));
    }
    let roles = fleet.nodes().map(|n| (n.name.clone(), n.role)).collect();

    // Nodes on another block chain have other state roots as a consequence: the block
    // fork's incident covers them, and a state split next to a block split is the same cause.
    let off_chain: Vec<&str> = fleet
        .fork_report()
        .filter(|f| f.diverged())
        .map(|f| {
            f.partitions[1..]
                .iter()
                .flat_map(|p| p.nodes.iter().map(String::as_str))
                .collect()
        })
        .unwrap_or_default();
    if let Some(r) = fleet.state_roots() {
        // big fleets compare a rotating sample: nodes outside it cannot be judged now
        for n in fleet.nodes() {
            if !r.roots.iter().any(|(name, _)| name == &n.name)
                || off_chain.contains(&n.name.as_str())
            {
                a.undecided.insert(state_key(&n.name));
            }
        }
        let roots: Vec<(String, String)> = r
            .roots
            .iter()
            .filter(|(n, _)| !off_chain.contains(&n.as_str()))
            .cloned()
            .collect();
        if !off_chain.is_empty() {
            a.undecided.insert(STATE_SPLIT_KEY.into());
        }
        let parts = partitions(&roots, &roles);
        let total: usize = parts.iter().map(|p| p.nodes.len()).sum();
        if parts.len() > 1 {
            let off: usize = parts[1..].iter().map(|p| p.nodes.len()).sum();
            if off == 1 && total > 2 {
                let node = parts[1].nodes[0].clone();
                per_node.entry(node).or_default().insert(
                    "state_root_mismatch".into(),
                    json!({
                        "index": r.index,
                        "node_root": parts[1].hash,
                        "network_root": parts[0].hash,
                        "agreeing_nodes": parts[0].nodes,
                    }),
                );
            } else {
                let validators_split =
                    parts.iter().filter(|p| !p.validators.is_empty()).count() > 1;
                let mut nodes: Vec<String> = parts.iter().flat_map(|p| p.nodes.clone()).collect();
                nodes.sort();
                a.findings.push(Finding {
                    key: STATE_SPLIT_KEY.into(),
                    kind: IncidentKind::SplitBrain,
                    severity: if validators_split { Severity::P1 } else { Severity::P2 },
                    nodes,
                    summary: format!(
                        "{} groups of nodes have different state roots at index {}; the validators' majority has {}",
                        parts.len(),
                        r.index,
                        short(&parts[0].hash)
                    ),
                    evidence: json!({
                        "index": r.index,
                        "groups": parts.iter().enumerate().map(|(i, p)| json!({
                            "canonical": i == 0, "roothash": p.hash, "nodes": p.nodes, "validators": p.validators,
                        })).collect::<Vec<_>>(),
                    }),
                });
            }
        }
    } else {
        a.undecided.insert(STATE_SPLIT_KEY.into());
    }

    let with_state: Vec<_> = fleet.nodes().filter(|n| n.state_height.is_some()).collect();
    let stuck: Vec<_> = with_state
        .iter()
        .filter_map(|n| {
            let (local, validated) = n.state_height?;
            let (v, local_then) = n.validated_moved?;
            let climbed = local.saturating_sub(local_then);
            (v == validated && climbed >= cfg.stateroot_lag)
                .then_some((*n, local, validated, climbed))
        })
        .collect();
    if with_state.len() >= 2 && stuck.len() == with_state.len() {
        let mut nodes: Vec<String> = stuck.iter().map(|(n, ..)| n.name.clone()).collect();
        nodes.sort();
        a.findings.push(Finding {
            key: STATE_VALIDATION_KEY.into(),
            kind: IncidentKind::ConsensusFailure,
            severity: Severity::P2,
            nodes,
            summary: format!(
                "no node's validated state root advances: state validators have not signed for {}+ blocks",
                cfg.stateroot_lag
            ),
            evidence: json!({
                "nodes": stuck.iter().map(|(n, local, validated, climbed)| json!({
                    "node": n.name, "localrootindex": local, "validatedrootindex": validated, "local_climbed": climbed,
                })).collect::<Vec<_>>(),
                "stateroot_lag": cfg.stateroot_lag,
            }),
        });
    } else {
        for (n, local, validated, climbed) in &stuck {
            per_node.entry(n.name.clone()).or_default().insert(
                "validated_root_stuck".into(),
                json!({
                    "localrootindex": local,
                    "validatedrootindex": validated,
                    "local_climbed_since_validated_moved": climbed,
                    "stateroot_lag": cfg.stateroot_lag,
                }),
            );
        }
    }

    for (node, signs) in per_node {
        let what: Vec<&str> = signs
            .keys()
            .map(|k| {
                if k == "state_root_mismatch" {
                    "its state root differs from every other node's"
                } else {
                    "its validated state root index is stuck while the local one climbs"
                }
            })
            .collect();
        let mut evidence = signs;
        evidence.insert("node".into(), json!(node));
        a.findings.push(Finding {
            key: state_key(&node),
            kind: IncidentKind::DataCorruption,
            severity: Severity::P1,
            nodes: vec![node.clone()],
            summary: format!("{node}'s state diverged: {}", what.join("; and ")),
            evidence: serde_json::Value::Object(evidence),
        });
    }
}
