//! Split brain and single-node divergence, from the latest cross-node hash comparison.
//!
//! - Several partitions, with more than one node off the canonical chain: `split_brain`
//!   (P1 when validators are on different sides, else P2).
//! - Exactly one node off the canonical chain, alone: `data_corruption` of that node (P1).
//!
//! The canonical chain is the partition most validators are on (`fork::partitions`).

use serde_json::json;

use crate::fleet::Fleet;
use crate::fork::ForkReport;
use crate::incident::{Assessment, Finding, IncidentKind, Severity};

pub const SPLIT_BRAIN_KEY: &str = "split_brain";

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
    let evidence = evidence(report);
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
            "{} partitions disagree at height {}{}; canonical chain ({} validators: {}) is {}",
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

fn evidence(report: &ForkReport) -> serde_json::Value {
    json!({
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
