//! `validate_sync`: is every node in sync and on the same chain?
//!
//! Each node is probed once (height and best hash). The fleet's height is the
//! second-highest answering height (the highest alone could be a node lying about its
//! height, as the detectors screen it), or the only one. A node more than `max_lag` blocks
//! below it is behind. Then every answering node is asked for the block hash at the common
//! height (the lowest height among the nodes in sync), and the nodes are grouped by it: any
//! node outside the largest group is on another chain. The check passes when every node
//! answers, none is behind and all agree.

use std::collections::BTreeMap;

use neo_ir_probe::{NodeTarget, Prober};
use serde::Serialize;
use serde_json::json;

/// One node's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    /// Did not answer (the probe's error).
    Down {
        error: String,
    },
    /// This many blocks below the fleet's height.
    Behind {
        blocks: u64,
    },
    /// A different block at the common height.
    Diverged {
        hash: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSync {
    pub node: String,
    pub height: Option<u64>,
    /// The node's block hash at the common height, when it has that block.
    pub hash_at_common: Option<String>,
    #[serde(flatten)]
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub fleet_height: Option<u64>,
    pub common_height: Option<u64>,
    /// The hash most nodes have at the common height.
    pub canonical_hash: Option<String>,
    pub max_lag: u64,
    pub nodes: Vec<NodeSync>,
    /// Every node answered, none is behind, all agree.
    pub ok: bool,
}

/// Run the check over `targets`.
pub async fn validate_sync(prober: &Prober, targets: &[NodeTarget], max_lag: u64) -> SyncReport {
    let probes: Vec<_> = targets.iter().map(|t| (t.clone(), None)).collect();
    let observations = prober.probe_all(&probes).await;
    let mut heights: Vec<u64> = observations
        .iter()
        .filter_map(|o| o.status().map(|s| s.height()))
        .collect();
    heights.sort_unstable_by(|a, b| b.cmp(a));
    let fleet_height = match heights.as_slice() {
        [] => None,
        [only] => Some(*only),
        [_, second, ..] => Some(*second),
    };
    let in_sync = |h: u64| fleet_height.is_some_and(|f| f.saturating_sub(h) <= max_lag);
    let common_height = observations
        .iter()
        .filter_map(|o| o.status().map(|s| s.height()))
        .filter(|h| in_sync(*h))
        .min();
    // the block hash at the common height, from every node that has that block
    let hashes: Vec<Option<String>> = match common_height {
        None => vec![None; targets.len()],
        Some(c) => {
            futures::future::join_all(targets.iter().zip(&observations).map(|(t, o)| async move {
                let has_it = o.status().is_some_and(|s| s.height() >= c);
                if !has_it {
                    return None;
                }
                let v = prober.call(t, "getblockhash", json!([c])).await.ok()?;
                neo_ir_probe::parse::parse_hash(&v).ok()
            }))
            .await
        }
    };
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for h in hashes.iter().flatten() {
        *votes.entry(h.as_str()).or_default() += 1;
    }
    let canonical_hash = votes
        .iter()
        .max_by_key(|(hash, n)| (**n, std::cmp::Reverse(**hash)))
        .map(|(h, _)| h.to_string());
    let nodes: Vec<NodeSync> = targets
        .iter()
        .zip(&observations)
        .zip(&hashes)
        .map(|((t, o), hash)| {
            let height = o.status().map(|s| s.height());
            let verdict = match (o.failure(), height) {
                (Some(f), _) => Verdict::Down {
                    error: f.to_string(),
                },
                (None, Some(h)) if !in_sync(h) => Verdict::Behind {
                    blocks: fleet_height.unwrap_or(h).saturating_sub(h),
                },
                _ => match (hash, &canonical_hash) {
                    (Some(mine), Some(canon)) if mine != canon => {
                        Verdict::Diverged { hash: mine.clone() }
                    }
                    _ => Verdict::Ok,
                },
            };
            NodeSync {
                node: t.name.clone(),
                height,
                hash_at_common: hash.clone(),
                verdict,
            }
        })
        .collect();
    let ok = !nodes.is_empty() && nodes.iter().all(|n| n.verdict == Verdict::Ok);
    SyncReport {
        fleet_height,
        common_height,
        canonical_hash,
        max_lag,
        nodes,
        ok,
    }
}

impl SyncReport {
    /// The report as operators read it: one line per node, then the verdict.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "fleet height {}, common height {}, max lag {} blocks\n",
            self.fleet_height.map_or("-".into(), |h| h.to_string()),
            self.common_height.map_or("-".into(), |h| h.to_string()),
            self.max_lag
        );
        for n in &self.nodes {
            let what = match &n.verdict {
                Verdict::Ok => "in sync".to_string(),
                Verdict::Down { error } => format!("DOWN: {error}"),
                Verdict::Behind { blocks } => format!("BEHIND by {blocks} blocks"),
                Verdict::Diverged { hash } => format!(
                    "DIVERGED: block {hash} at the common height, the others have {}",
                    self.canonical_hash.as_deref().unwrap_or("-")
                ),
            };
            out.push_str(&format!(
                "  {:<20} {:>10}  {what}\n",
                n.node,
                n.height.map_or("-".into(), |h| h.to_string())
            ));
        }
        out.push_str(if self.ok {
            "validate_sync: OK, every node in sync on one chain\n"
        } else {
            "validate_sync: FAILED\n"
        });
        out
    }
}
