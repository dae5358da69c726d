//! Forks: comparing block hashes across nodes at a common height, grouping nodes into
//! partitions, naming the canonical chain, and bisecting to the first differing height.
//!
//! dBFT has one-block finality, so two nodes with different hashes at the same height are a
//! fork or a corruption, never a benign reorganisation. The watch loop asks each node for its
//! hash at the common height; when they differ it bisects with `Bisection`, which asks
//! O(log n) heights instead of scanning. Everything here is pure.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::observation::Role;

/// Nodes that agree on the hash at the compared height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub hash: String,
    /// Node names, sorted.
    pub nodes: Vec<String>,
    /// The validators among `nodes`.
    pub validators: Vec<String>,
}

/// The first height where two partitions differ, with both hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstDifference {
    pub height: u64,
    /// The last height where they still agreed (`height - 1` once bisection is complete).
    pub last_common: u64,
    /// Hash at `height` per partition (canonical first).
    pub hashes: Vec<String>,
}

/// The outcome of one cross-node hash comparison (produced by the watch loop, read by the
/// split-brain and corruption detectors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkReport {
    pub at: Timestamp,
    /// The height compared: the lowest height every compared node has.
    pub height: u64,
    /// Partitions by hash at `height`; the canonical one first. One partition: all agree.
    pub partitions: Vec<Partition>,
    /// Present when the partitions differ and bisection ran.
    pub first_difference: Option<FirstDifference>,
    /// JSON-RPC requests the bisection used (O(log height)).
    pub bisection_requests: u32,
    /// Nodes that could not be asked (timeouts, errors); not part of any partition.
    pub unanswered: Vec<String>,
}

impl ForkReport {
    pub fn diverged(&self) -> bool {
        self.partitions.len() > 1
    }
}

/// State roots of several nodes at one height (`getstateroot`), from the watch loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRootReport {
    pub at: Timestamp,
    /// The state root index compared (the lowest `localrootindex` of the nodes asked).
    pub index: u64,
    /// `(node, roothash)`.
    pub roots: Vec<(String, String)>,
}

/// Group `(node, hash)` answers into partitions, the canonical one first: the partition with
/// the most validators, then the most nodes, then the smallest hash (a stable order).
pub fn partitions(answers: &[(String, String)], roles: &BTreeMap<String, Role>) -> Vec<Partition> {
    let mut by_hash: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (node, hash) in answers {
        by_hash.entry(hash.as_str()).or_default().push(node.clone());
    }
    let mut out: Vec<Partition> = by_hash
        .into_iter()
        .map(|(hash, mut nodes)| {
            nodes.sort();
            let validators = nodes
                .iter()
                .filter(|n| roles.get(*n) == Some(&Role::Validator))
                .cloned()
                .collect();
            Partition {
                hash: hash.to_string(),
                nodes,
                validators,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.validators
            .len()
            .cmp(&a.validators.len())
            .then(b.nodes.len().cmp(&a.nodes.len()))
            .then(a.hash.cmp(&b.hash))
    });
    out
}

/// Binary search for the first height where two nodes' chains differ, knowing they agree at
/// `agree` and differ at `differ`. Ask `next()`; report the answer with `record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bisection {
    agree: u64,
    differ: u64,
    requests: u32,
}

impl Bisection {
    /// `agree < differ`. With no known agreeing height, start at 0 (genesis is shared by
    /// every node of one network).
    pub fn new(agree: u64, differ: u64) -> Self {
        assert!(agree < differ, "bisection needs agree < differ");
        Self {
            agree,
            differ,
            requests: 0,
        }
    }

    /// The next height to compare, or `None` when the first difference is found.
    pub fn next(&self) -> Option<u64> {
        (self.differ - self.agree > 1).then(|| self.agree + (self.differ - self.agree) / 2)
    }

    /// The two nodes' hashes at the height `next()` gave.
    pub fn record(&mut self, height: u64, same: bool) {
        self.requests += 1;
        if same {
            self.agree = self.agree.max(height);
        } else {
            self.differ = self.differ.min(height);
        }
    }

    /// The first differing height (final once `next()` is `None`).
    pub fn first_difference(&self) -> u64 {
        self.differ
    }

    pub fn last_common(&self) -> u64 {
        self.agree
    }

    /// Comparisons made (each costs one request per node compared).
    pub fn requests(&self) -> u32 {
        self.requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> BTreeMap<String, Role> {
        [
            ("v1", Role::Validator),
            ("v2", Role::Validator),
            ("v3", Role::Validator),
            ("r1", Role::Rpc),
            ("r2", Role::Rpc),
        ]
        .into_iter()
        .map(|(n, r)| (n.to_string(), r))
        .collect()
    }

    fn ans(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, h)| (n.to_string(), h.to_string()))
            .collect()
    }

    #[test]
    fn canonical_partition_is_the_one_most_validators_are_on() {
        let p = partitions(
            &ans(&[
                ("v1", "0xa"),
                ("v2", "0xb"),
                ("v3", "0xb"),
                ("r1", "0xa"),
                ("r2", "0xa"),
            ]),
            &roles(),
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].hash, "0xb", "two validators beat three nodes");
        assert_eq!(p[0].validators, ["v2", "v3"]);
        assert_eq!(p[1].nodes, ["r1", "r2", "v1"]);
        let agree = partitions(&ans(&[("v1", "0xa"), ("r1", "0xa")]), &roles());
        assert_eq!(agree.len(), 1);
    }

    #[test]
    fn bisection_finds_the_first_difference_in_log_steps() {
        for fork_at in [1u64, 2, 17, 4_096, 999_999] {
            let top = 1_000_000;
            let mut b = Bisection::new(0, top);
            while let Some(h) = b.next() {
                b.record(h, h < fork_at);
            }
            assert_eq!(b.first_difference(), fork_at);
            assert_eq!(b.last_common(), fork_at - 1);
            assert!(
                b.requests() <= 20,
                "{} requests for 1e6 blocks",
                b.requests()
            );
        }
    }

    #[test]
    fn adjacent_bounds_need_no_request() {
        let b = Bisection::new(9, 10);
        assert_eq!(b.next(), None);
        assert_eq!(b.first_difference(), 10);
    }
}
