//! Cross-node chain checks that run beside the probe rounds, off the decision path (a slow
//! node delays only the check, never a round):
//!
//! - every node's hash at the common height (the lowest height of the reachable nodes),
//!   grouped into partitions; when they differ, a bisection per off-canonical partition
//!   finds the first differing height in O(log height) requests (cached while the fork
//!   lasts: with one-block finality the first difference cannot move);
//! - the canonical headers the history lacks (dBFT views, block times), fetched in one batch
//!   from a node at the best height.

use std::collections::{BTreeMap, HashMap};

use futures::future::join_all;
use jiff::Timestamp;
use neo_ir_core::fork::{partitions, Bisection, FirstDifference, ForkReport, StateRootReport};
use neo_ir_core::{HeaderInfo, Role};
use neo_ir_probe::{parse, NodeTarget, Prober};
use serde_json::json;

/// What one check needs, taken from the fleet view at the end of a round.
pub struct CheckInput {
    /// Reachable nodes with believable heights.
    pub nodes: Vec<(NodeTarget, u64)>,
    pub roles: BTreeMap<String, Role>,
    /// Where to fetch missing headers from, and which.
    pub header_source: Option<NodeTarget>,
    pub missing_headers: Vec<u64>,
    /// First differences already found, by (canonical node, other node).
    pub known: HashMap<(String, String), FirstDifference>,
    /// Each node's newest block as (height, hash), from its own latest probe.
    pub headers_seen: HashMap<String, (u64, String)>,
    /// The nodes whose state roots this check compares (a rotating sample in big fleets).
    pub state_sample: Vec<String>,
}

impl CheckInput {
    /// The target of a node taking part in the check.
    fn target(&self, name: &str) -> Option<&NodeTarget> {
        self.nodes
            .iter()
            .find(|(t, _)| t.name == name)
            .map(|(t, _)| t)
    }
}

/// Distinct heights the quick agreement check asks the reference node about, at most.
const QUICK_HEIGHTS: usize = 32;
/// Nodes the quick check asks again before it falls back to the full comparison, at most.
const QUICK_SUSPECTS: usize = 64;

pub struct CheckOutput {
    pub fork: Option<ForkReport>,
    /// `(node, localrootindex, validatedrootindex)` of nodes with a StateService.
    pub state_heights: Vec<(String, u64, u64)>,
    pub state_roots: Option<StateRootReport>,
    pub headers: Vec<HeaderInfo>,
    pub known: HashMap<(String, String), FirstDifference>,
}

async fn hash_at(prober: &Prober, t: &NodeTarget, height: u64) -> Option<String> {
    let v = prober.call(t, "getblockhash", json!([height])).await.ok()?;
    parse::parse_hash(&v).ok()
}

pub async fn run(prober: Prober, input: CheckInput) -> CheckOutput {
    let at = Timestamp::now();
    let (fork, known) = compare(&prober, &input, at).await;
    // state roots no higher than the blocks just compared, so a fork's block and state
    // differences are seen together (the fork explains the state difference)
    let compared = fork.as_ref().map(|r| r.height);
    let (state_heights, state_roots) = state(&prober, &input, at, compared).await;
    let headers = match &input.header_source {
        Some(src) if !input.missing_headers.is_empty() => {
            let calls: Vec<(&str, serde_json::Value)> = input
                .missing_headers
                .iter()
                .map(|i| ("getblockheader", json!([i, true])))
                .collect();
            match prober.batch(src, &calls).await {
                Ok(results) => results
                    .into_iter()
                    .filter_map(|r| r.ok())
                    .filter_map(|v| parse::parse_header(&v).ok())
                    .collect(),
                Err(_) => Vec::new(),
            }
        }
        _ => Vec::new(),
    };
    CheckOutput {
        fork,
        state_heights,
        state_roots,
        headers,
        known,
    }
}

async fn compare(
    prober: &Prober,
    input: &CheckInput,
    at: Timestamp,
) -> (
    Option<ForkReport>,
    HashMap<(String, String), FirstDifference>,
) {
    let Some(lowest) = input.nodes.iter().map(|(_, h)| *h).min() else {
        return (None, HashMap::new());
    };
    // Compare where a difference was seen (nodes below that height cannot be compared there
    // yet and are left out), else at the lowest height of all.
    let height = match quick_agreement(prober, input, at).await {
        Ok(report) => return (Some(report), HashMap::new()),
        Err(Some(differs_at)) => differs_at,
        Err(None) => lowest,
    };
    let (askable, below): (Vec<_>, Vec<_>) = input.nodes.iter().partition(|(_, h)| *h >= height);
    let answers = join_all(
        askable
            .iter()
            .map(|(t, _)| async move { (t.name.clone(), hash_at(prober, t, height).await) }),
    )
    .await;
    let mut got = Vec::new();
    let mut unanswered: Vec<String> = below.iter().map(|(t, _)| t.name.clone()).collect();
    for (name, hash) in answers {
        match hash {
            Some(h) => got.push((name, h)),
            None => unanswered.push(name),
        }
    }
    if got.is_empty() {
        return (None, input.known.clone());
    }
    let parts = partitions(&got, &input.roles);
    let mut known = HashMap::new();
    let mut requests = 0;
    let mut first_difference: Option<FirstDifference> = None;
    for other in parts.iter().skip(1) {
        let (a, b) = (parts[0].nodes[0].clone(), other.nodes[0].clone());
        let diff = match input.known.get(&(a.clone(), b.clone())) {
            Some(d) => Some(d.clone()),
            None => match (input.target(&a), input.target(&b)) {
                (Some(ta), Some(tb)) => {
                    let (d, used) =
                        bisect(prober, ta, tb, height, &parts[0].hash, &other.hash).await;
                    requests += used;
                    d
                }
                _ => None,
            },
        };
        if let Some(d) = diff {
            known.insert((a, b), d.clone());
            if first_difference
                .as_ref()
                .is_none_or(|f| d.height < f.height)
            {
                first_difference = Some(d);
            }
        }
    }
    let report = ForkReport {
        at,
        height,
        partitions: parts,
        first_difference,
        bisection_requests: requests,
        unanswered,
    };
    (Some(report), known)
}

/// Find where `a` and `b` first differ, knowing they differ at `height`. Returns the first
/// difference (None when a node stopped answering) and the requests used.
async fn bisect(
    prober: &Prober,
    a: &NodeTarget,
    b: &NodeTarget,
    height: u64,
    hash_a: &str,
    hash_b: &str,
) -> (Option<FirstDifference>, u32) {
    if height == 0 {
        let d = FirstDifference {
            height: 0,
            last_common: 0,
            hashes: vec![hash_a.to_string(), hash_b.to_string()],
        };
        return (Some(d), 0);
    }
    let mut search = Bisection::new(0, height);
    let mut at_differ = (hash_a.to_string(), hash_b.to_string());
    let mut used = 0;
    while let Some(mid) = search.next() {
        let (ha, hb) = tokio::join!(hash_at(prober, a, mid), hash_at(prober, b, mid));
        used += 2;
        let (Some(ha), Some(hb)) = (ha, hb) else {
            return (None, used);
        };
        let same = ha == hb;
        search.record(mid, same);
        if !same {
            at_differ = (ha, hb);
        }
    }
    let d = FirstDifference {
        height: search.first_difference(),
        last_common: search.last_common(),
        hashes: vec![at_differ.0, at_differ.1],
    };
    (Some(d), used)
}

/// `getstateheight` of every node, then `getstateroot` at the lowest local root index of
/// those that have one. Nodes without the StateService (method not found) are left out.
async fn state(
    prober: &Prober,
    input: &CheckInput,
    at: Timestamp,
    compared: Option<u64>,
) -> (Vec<(String, u64, u64)>, Option<StateRootReport>) {
    let sampled = input
        .nodes
        .iter()
        .filter(|(t, _)| input.state_sample.contains(&t.name));
    let heights = join_all(sampled.map(|(t, _)| async move {
        let v = prober.call(t, "getstateheight", json!([])).await.ok()?;
        let h = parse::parse_state_height(&v).ok()?;
        Some((t.name.clone(), h.local_root_index?, h.validated_root_index?))
    }))
    .await;
    let heights: Vec<(String, u64, u64)> = heights.into_iter().flatten().collect();
    let block_height =
        compared.unwrap_or_else(|| input.nodes.iter().map(|(_, h)| *h).min().unwrap_or(0));
    let Some(index) = heights.iter().map(|(_, local, _)| *local).min() else {
        return (heights, None);
    };
    let index = index.min(block_height);
    let roots = join_all(heights.iter().map(|(name, ..)| async move {
        let (t, _) = input.nodes.iter().find(|(t, _)| &t.name == name)?;
        let v = prober.call(t, "getstateroot", json!([index])).await.ok()?;
        Some((name.clone(), parse::parse_state_root(&v).ok()?.root_hash))
    }))
    .await;
    let roots: Vec<(String, String)> = roots.into_iter().flatten().collect();
    let report = (!roots.is_empty()).then_some(StateRootReport { at, index, roots });
    (heights, report)
}

/// The common case, cheaply: every node's own newest block (height and hash, from its
/// probes) matches the reference node's hash at that height, asked in one batch. Otherwise
/// `Err(Some(h))`, the lowest height where a node differs, or `Err(None)` when it cannot
/// tell; the full comparison then asks every node.
async fn quick_agreement(
    prober: &Prober,
    input: &CheckInput,
    at: Timestamp,
) -> Result<ForkReport, Option<u64>> {
    quick(prober, input, at).await.ok_or(None)?
}

async fn quick(
    prober: &Prober,
    input: &CheckInput,
    at: Timestamp,
) -> Option<Result<ForkReport, Option<u64>>> {
    let source = input.header_source.as_ref()?;
    let mut seen = Vec::with_capacity(input.nodes.len());
    for (t, _) in &input.nodes {
        seen.push((t.name.clone(), input.headers_seen.get(&t.name)?.clone()));
    }
    let mut heights: Vec<u64> = seen.iter().map(|(_, (i, _))| *i).collect();
    heights.sort_unstable();
    heights.dedup();
    if heights.len() > QUICK_HEIGHTS {
        return None;
    }
    let calls: Vec<(&str, serde_json::Value)> = heights
        .iter()
        .map(|h| ("getblockhash", json!([h])))
        .collect();
    let answers = prober.batch(source, &calls).await.ok()?;
    let mut reference = HashMap::new();
    for (h, a) in heights.iter().zip(answers) {
        reference.insert(*h, parse::parse_hash(&a.ok()?).ok()?);
    }
    // A node whose seen block differs from the reference is asked once more, at that
    // height: a block landing between `getblockcount` and `getbestblockhash` of one batch
    // pairs a height with the next block's hash, and that is no fork. Only nodes that
    // still differ (or too many to ask) make the full comparison run.
    let suspects: Vec<(&str, u64)> = seen
        .iter()
        .filter(|(_, (i, hash))| reference.get(i) != Some(hash))
        .map(|(n, (i, _))| (n.as_str(), *i))
        .collect();
    if suspects.len() > QUICK_SUSPECTS {
        return Some(Err(suspects.iter().map(|(_, h)| *h).min()));
    }
    let second_look = join_all(suspects.iter().map(|&(name, h)| async move {
        let answer = match input.target(name) {
            Some(t) => hash_at(prober, t, h).await,
            None => None,
        };
        (h, answer)
    }))
    .await;
    let differs = second_look
        .into_iter()
        .filter(|(h, answer)| answer.as_ref() != reference.get(h))
        .map(|(h, _)| h)
        .min();
    if let Some(h) = differs {
        return Some(Err(Some(h)));
    }
    let lowest = heights[0];
    let agreeing: Vec<(String, String)> = seen
        .into_iter()
        .map(|(n, _)| (n, reference[&lowest].clone()))
        .collect();
    Some(Ok(ForkReport {
        at,
        height: lowest,
        partitions: partitions(&agreeing, &input.roles),
        first_difference: None,
        bisection_requests: 0,
        unanswered: Vec::new(),
    }))
}
