//! `check_network_partitions` and `identify_canonical_chain`: which nodes are on which
//! chain, and which chain dBFT backs.
//!
//! Every answering node is asked for its block hash at the common height (the lowest height
//! among them); the answers are grouped with the split-brain detector's own
//! [`partitions`] (the canonical partition first: most validators, then most nodes). When
//! there is more than one, each other partition is bisected against the canonical one
//! ([`Bisection`], O(log height) requests) to the first differing block. A chain is backed
//! by consensus when at least M = n − ⌊(n − 1) / 3⌋ of the n configured validators are on it.

use std::collections::BTreeMap;

use neo_ir_core::fork::{partitions, Bisection, Partition};
use neo_ir_core::Role;
use neo_ir_probe::{NodeTarget, Prober};
use serde::Serialize;
use serde_json::json;

/// Where a partition leaves the canonical chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Divergence {
    /// The partition's hash at the common height.
    pub hash: String,
    pub nodes: Vec<String>,
    /// The first height where it differs from the canonical chain (None: not found, a node
    /// stopped answering during the bisection).
    pub first_differing_height: Option<u64>,
    pub last_common_height: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    /// The height compared.
    pub height: Option<u64>,
    /// The canonical partition first.
    pub partitions: Vec<Partition>,
    pub divergences: Vec<Divergence>,
    pub unanswered: Vec<String>,
    /// Validators configured, and how many must agree for dBFT to make blocks (M).
    pub validators: usize,
    pub consensus_needs: usize,
    /// The canonical chain has at least M validators.
    pub canonical_backed: bool,
    pub bisection_requests: u32,
}

impl PartitionReport {
    /// One chain, every node answering.
    pub fn ok(&self) -> bool {
        self.partitions.len() == 1 && self.unanswered.is_empty()
    }
}

async fn hash_at(prober: &Prober, t: &NodeTarget, height: u64) -> Option<String> {
    let v = prober.call(t, "getblockhash", json!([height])).await.ok()?;
    neo_ir_probe::parse::parse_hash(&v).ok()
}

/// Compare the chains of `targets`.
pub async fn check_network_partitions(prober: &Prober, targets: &[NodeTarget]) -> PartitionReport {
    let probes: Vec<_> = targets.iter().map(|t| (t.clone(), None)).collect();
    let observations = prober.probe_all(&probes).await;
    let height = observations
        .iter()
        .filter_map(|o| o.status().map(|s| s.height()))
        .min();
    let validators = targets.iter().filter(|t| t.role == Role::Validator).count();
    let consensus_needs = validators - validators.saturating_sub(1) / 3;
    let roles: BTreeMap<String, Role> = targets.iter().map(|t| (t.name.clone(), t.role)).collect();
    let mut unanswered = Vec::new();
    let mut answers = Vec::new();
    if let Some(h) = height {
        let hashes = futures::future::join_all(targets.iter().map(|t| hash_at(prober, t, h))).await;
        for (t, hash) in targets.iter().zip(hashes) {
            match hash {
                Some(hash) => answers.push((t.name.clone(), hash)),
                None => unanswered.push(t.name.clone()),
            }
        }
    } else {
        unanswered = targets.iter().map(|t| t.name.clone()).collect();
    }
    let parts = partitions(&answers, &roles);
    let by_name = |name: &str| targets.iter().find(|t| t.name == name);
    let mut divergences = Vec::new();
    let mut requests = 0;
    if let (Some(h), Some(canon)) = (height, parts.first()) {
        for other in parts.iter().skip(1) {
            let (Some(a), Some(b)) = (by_name(&canon.nodes[0]), by_name(&other.nodes[0])) else {
                continue;
            };
            let mut found = h > 0;
            let mut bisection = Bisection::new(0, h.max(1));
            while let Some(next) = bisection.next().filter(|_| found) {
                let (x, y) = tokio::join!(hash_at(prober, a, next), hash_at(prober, b, next));
                match (x, y) {
                    (Some(x), Some(y)) => bisection.record(next, x == y),
                    _ => found = false,
                }
            }
            requests += bisection.requests();
            divergences.push(Divergence {
                hash: other.hash.clone(),
                nodes: other.nodes.clone(),
                first_differing_height: found.then(|| bisection.first_difference()),
                last_common_height: found.then(|| bisection.last_common()),
            });
        }
    }
    let canonical_backed = parts
        .first()
        .is_some_and(|p| validators > 0 && p.validators.len() >= consensus_needs);
    PartitionReport {
        height,
        partitions: parts,
        divergences,
        unanswered,
        validators,
        consensus_needs,
        canonical_backed,
        bisection_requests: requests,
    }
}

impl PartitionReport {
    /// The partitions, as operators read them.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "compared at height {}; {} validators configured, dBFT needs {}\n",
            self.height.map_or("-".into(), |h| h.to_string()),
            self.validators,
            self.consensus_needs
        );
        for (i, p) in self.partitions.iter().enumerate() {
            out.push_str(&format!(
                "  {} {}: {} ({} validators)\n",
                if i == 0 { "canonical" } else { "other    " },
                p.hash,
                p.nodes.join(", "),
                p.validators.len()
            ));
        }
        for d in &self.divergences {
            out.push_str(&format!(
                "  {} left the canonical chain at height {} (last common {})\n",
                d.nodes.join(", "),
                d.first_differing_height
                    .map_or("?".into(), |h| h.to_string()),
                d.last_common_height.map_or("?".into(), |h| h.to_string())
            ));
        }
        if !self.unanswered.is_empty() {
            out.push_str(&format!(
                "  not answering: {}\n",
                self.unanswered.join(", ")
            ));
        }
        out
    }
}
