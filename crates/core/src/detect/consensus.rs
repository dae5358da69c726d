//! dBFT attribution from block headers: which validators missed their turn as primary, and
//! whether blocks come slower than the protocol's target.
//!
//! - A validator that missed at least `missed_turns` of its last `turn_window` turns is a P3
//!   `consensus_failure` on that validator, even while the chain advances.
//! - The median of the last `slow_window` block intervals above `slow_factor × msperblock`
//!   is a P3 `consensus_failure` (slow blocks). The median ignores one long gap, so the block
//!   after a stall (already its own P1 incident) does not raise a second incident.

use serde_json::json;

use super::DetectConfig;
use crate::fleet::Fleet;
use crate::incident::{Assessment, Finding, IncidentKind, Severity};

pub const SLOW_BLOCKS_KEY: &str = "consensus_failure:slow_blocks";

pub fn missed_turns_key(validator: &str) -> String {
    format!("consensus_failure:missed_turns:{validator}")
}

pub(super) fn attribution(fleet: &Fleet, cfg: &DetectConfig, msperblock: u64, a: &mut Assessment) {
    let Some(n) = fleet.validators_count() else {
        a.undecided.insert(SLOW_BLOCKS_KEY.to_string());
        return;
    };
    for rec in fleet.chain().primary_records(n) {
        let name = fleet.validator_name(rec.validator);
        let key = missed_turns_key(&name);
        if rec.turns.len() < cfg.missed_turns {
            a.undecided.insert(key);
            continue;
        }
        let missed = rec.missed_in_last(cfg.turn_window);
        if missed < cfg.missed_turns {
            continue;
        }
        let last: Vec<bool> = rec
            .turns
            .iter()
            .rev()
            .take(cfg.turn_window)
            .rev()
            .copied()
            .collect();
        a.findings.push(Finding {
            key,
            kind: IncidentKind::ConsensusFailure,
            severity: Severity::P3,
            nodes: fleet.validator_node(rec.validator).into_iter().collect(),
            summary: format!(
                "validator {name} (index {}) missed {missed} of its last {} turns as primary \
                 (blocks {}); the chain advances through view changes",
                rec.validator,
                last.len(),
                rec.missed_blocks
                    .iter()
                    .rev()
                    .take(missed)
                    .rev()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            evidence: json!({
                "validator_index": rec.validator,
                "validator": name,
                "missed": missed,
                "window": cfg.turn_window,
                "threshold": cfg.missed_turns,
                "last_turns": last.iter().map(|ok| if *ok { "proposed" } else { "missed" }).collect::<Vec<_>>(),
                "missed_blocks": rec.missed_blocks.iter().rev().take(cfg.turn_window).rev().collect::<Vec<_>>(),
                "validators": n,
            }),
        });
    }

    let Some((mut intervals, first, last)) = fleet.chain().recent_intervals(cfg.slow_window) else {
        a.undecided.insert(SLOW_BLOCKS_KEY.to_string());
        return;
    };
    let shown = intervals.clone();
    intervals.sort_unstable();
    let median = intervals[intervals.len() / 2];
    let limit = cfg.slow_factor * msperblock;
    if median <= limit {
        return;
    }
    let rounds = fleet.chain().rounds(n);
    let failed: Vec<u32> = rounds
        .iter()
        .filter(|r| r.index > first && r.index <= last)
        .flat_map(|r| r.failed_primaries.clone())
        .collect();
    let mut failed_names: Vec<String> = failed.iter().map(|v| fleet.validator_name(*v)).collect();
    failed_names.sort();
    failed_names.dedup();
    a.findings.push(Finding {
        key: SLOW_BLOCKS_KEY.to_string(),
        kind: IncidentKind::ConsensusFailure,
        severity: Severity::P3,
        nodes: failed
            .iter()
            .filter_map(|v| fleet.validator_node(*v))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        summary: format!(
            "blocks {first}..{last} came every {} ms (median) against a target of {msperblock} ms \
             (limit {limit} ms){}",
            median,
            if failed_names.is_empty() {
                String::new()
            } else {
                format!("; failed primaries: {}", failed_names.join(", "))
            }
        ),
        evidence: json!({
            "median_interval_ms": median,
            "intervals_ms": shown,
            "first_block": first,
            "last_block": last,
            "msperblock": msperblock,
            "limit_ms": limit,
            "failed_primaries": failed_names,
        }),
    });
}
