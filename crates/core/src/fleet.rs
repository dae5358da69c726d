//! The cross-node view: what each node last answered, its height and since when, the fleet's
//! best height and each node's lag. Fed one `Observation` at a time by the watch loop; read
//! by the detectors. Pure state, no I/O.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::chain::ChainHistory;
use crate::detect::DetectConfig;
use crate::fork::{ForkReport, StateRootReport};
use crate::observation::{HeaderInfo, NodeVersion, Observation, Role};
use crate::telemetry::{HostSample, NodeMetrics};

/// RPC latencies remembered per node (for medians).
const LATENCIES_KEPT: usize = 5;

/// A node the fleet tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    pub role: Role,
    /// A validator's position in the consensus order (the index dBFT's `primary` refers
    /// to). Validators without one get their position among the configured validators.
    pub validator_index: Option<u32>,
}

/// What the fleet knows about one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    pub name: String,
    pub role: Role,
    pub validator_index: Option<u32>,
    /// The latest probe (successful or not).
    pub last: Option<Observation>,
    /// Failed probes in a row (the confirming re-probe counts).
    pub consecutive_failures: u32,
    /// Time of the first failure of the current failure streak.
    pub failing_since: Option<Timestamp>,
    pub last_ok_at: Option<Timestamp>,
    /// Height from the latest successful probe.
    pub height: Option<u64>,
    /// When `height` was first seen at its current value.
    pub height_since: Option<Timestamp>,
    /// The latest `getversion` seen.
    pub version: Option<NodeVersion>,
    /// The newest block header the node gave (the probe asks for the header at the node's
    /// last known height: block time and primary).
    pub header: Option<HeaderInfo>,
    /// Latest scrape of the node's `/metrics` (+ health), and the one before (CPU rate).
    pub metrics: Option<NodeMetrics>,
    pub prev_metrics: Option<NodeMetrics>,
    /// Latest report of the host agent.
    pub host: Option<HostSample>,
    /// Recent RPC round trips in ms, newest last (a timeout counts as its full duration).
    pub latencies: std::collections::VecDeque<u64>,
    /// Two consecutive headers of this node that do not link (`previousblockhash` of block
    /// h+1 is not the hash this node gave for block h): (h, hash given, previous claimed).
    pub broken_link: Option<(u64, String, String)>,
    /// When a cross-node comparison last found this node off the canonical chain.
    pub off_canonical_at: Option<Timestamp>,
    /// `getstateheight`: (localrootindex, validatedrootindex), when the StateService is on.
    pub state_height: Option<(u64, u64)>,
    /// The validated root index and the local index when it last moved.
    pub validated_moved: Option<(u64, u64)>,
    /// The node claims a height the rest of the fleet contradicts (it is ignored for the
    /// fleet's best height).
    pub implausible: bool,
    /// The first answer of the current run of answers slower than the KPI table's warning
    /// (a timeout counts): where a performance or attack incident's fault started (MTTD).
    pub slow_since: Option<Timestamp>,
}

impl NodeState {
    fn new(spec: &NodeSpec, validator_index: Option<u32>) -> Self {
        Self {
            name: spec.name.clone(),
            role: spec.role,
            validator_index,
            last: None,
            consecutive_failures: 0,
            failing_since: None,
            last_ok_at: None,
            height: None,
            height_since: None,
            version: None,
            header: None,
            metrics: None,
            prev_metrics: None,
            host: None,
            latencies: std::collections::VecDeque::new(),
            broken_link: None,
            off_canonical_at: None,
            state_height: None,
            validated_moved: None,
            implausible: false,
            slow_since: None,
        }
    }

    /// The latest probe succeeded.
    pub fn answering(&self) -> bool {
        self.last.as_ref().is_some_and(|o| o.outcome.is_ok())
    }

    /// Answering with a height the fleet can believe.
    pub fn reachable(&self) -> bool {
        self.answering() && !self.implausible
    }

    /// Median of the recent RPC round trips.
    pub fn median_latency_ms(&self) -> Option<u64> {
        let mut v: Vec<u64> = self.latencies.iter().copied().collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    }

    /// Process CPU % of one core from two `/metrics` scrapes.
    pub fn metrics_cpu_percent(&self) -> Option<f64> {
        let (now, prev) = (self.metrics.as_ref()?, self.prev_metrics.as_ref()?);
        let secs = now.at?.duration_since(prev.at?).as_secs_f64();
        let used = now.cpu_seconds_total? - prev.cpu_seconds_total?;
        (secs > 0.0 && used >= 0.0).then(|| used / secs * 100.0)
    }
}

/// The whole fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    nodes: BTreeMap<String, NodeState>,
    best: Option<u64>,
    /// Recent canonical headers (dBFT views, block times).
    chain: ChainHistory,
    /// The latest cross-node hash comparison.
    fork: Option<ForkReport>,
    diverged_since: Option<Timestamp>,
    /// The latest cross-node state root comparison.
    state_roots: Option<StateRootReport>,
    /// The earliest time each recent height was seen on a believable node (when a node
    /// first showed it). Says since when the fleet has been past a given height.
    first_seen: BTreeMap<u64, Timestamp>,
}

/// Heights remembered in `Fleet::first_seen` (older ones are dropped).
const FIRST_SEEN_KEPT: usize = 10_000;
/// Canonical headers kept for dBFT attribution and block times.
pub const HEADERS_KEPT: usize = 200;

/// A node's line in the fleet view (served by `GET /api/v1/nodes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub name: String,
    pub role: Role,
    /// "ok", "down" (failing), "implausible_height" or "unknown" (not probed yet).
    pub state: String,
    pub height: Option<u64>,
    pub lag: Option<u64>,
    pub height_since: Option<Timestamp>,
    pub connections: Option<u32>,
    pub latency_ms: Option<u64>,
    pub user_agent: Option<String>,
    pub network: Option<u32>,
    pub msperblock: Option<u64>,
    /// Index and time (ms) of the newest header seen, and its dBFT primary.
    pub header_index: Option<u64>,
    pub header_time_ms: Option<u64>,
    pub header_primary: Option<u32>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub consecutive_failures: u32,
    pub last_probe_at: Option<Timestamp>,
    pub last_ok_at: Option<Timestamp>,
    /// Median of the recent RPC round trips.
    #[serde(default)]
    pub median_latency_ms: Option<u64>,
    /// Latest `/metrics` (+ health) scrape, when configured.
    #[serde(default)]
    pub metrics: Option<NodeMetrics>,
    /// Latest host agent report, when configured.
    #[serde(default)]
    pub host: Option<HostSample>,
}

impl Fleet {
    pub fn new(specs: &[NodeSpec]) -> Self {
        let mut position = 0u32;
        let nodes = specs
            .iter()
            .map(|s| {
                let index = (s.role == Role::Validator).then(|| {
                    position += 1;
                    s.validator_index.unwrap_or(position - 1)
                });
                (s.name.clone(), NodeState::new(s, index))
            })
            .collect();
        Self {
            nodes,
            best: None,
            chain: ChainHistory::new(HEADERS_KEPT),
            fork: None,
            diverged_since: None,
            state_roots: None,
            first_seen: BTreeMap::new(),
        }
    }

    /// Restore what a previous run knew of a node's height (so a stall that began before a
    /// restart is still measured from its real start).
    pub fn restore(&mut self, node: &str, height: u64, since: Timestamp) {
        if let Some(n) = self.nodes.get_mut(node) {
            if n.height.is_none() {
                n.height = Some(height);
                n.height_since = Some(since);
            }
        }
    }

    /// Take one probe result into account. Unknown node names are ignored.
    pub fn record(&mut self, obs: Observation) {
        let Some(n) = self.nodes.get_mut(&obs.node) else {
            return;
        };
        match &obs.outcome {
            Ok(status) => {
                let h = status.height();
                if n.height != Some(h) {
                    n.height = Some(h);
                    n.height_since = Some(obs.at);
                }
                n.consecutive_failures = 0;
                n.failing_since = None;
                n.last_ok_at = Some(obs.at);
                if let Some(v) = &status.version {
                    n.version = Some(v.clone());
                }
                if let Some(h) = &status.header {
                    // the node's own answers must form a chain: this header and the one
                    // below it, asked together or in consecutive rounds
                    let below = status.parent_header.as_ref().or(n.header.as_ref());
                    if let Some(old) = below.filter(|old| old.index + 1 == h.index) {
                        n.broken_link = (h.previous_hash != old.hash)
                            .then(|| (old.index, old.hash.clone(), h.previous_hash.clone()));
                    }
                    if n.header.as_ref().is_none_or(|old| h.index >= old.index) {
                        n.header = Some(h.clone());
                    }
                    // only headers of nodes on the canonical chain describe its consensus
                    let off_canonical = self.fork.as_ref().is_some_and(|r| {
                        r.partitions[1..]
                            .iter()
                            .any(|p| p.nodes.contains(&obs.node))
                    });
                    if !off_canonical {
                        self.chain.insert(h.clone());
                    }
                }
            }
            Err(_) => {
                n.consecutive_failures += 1;
                n.failing_since.get_or_insert(obs.at);
            }
        }
        let timed_out = obs
            .failure()
            .is_some_and(|f| f.kind == crate::observation::FailureKind::Timeout);
        if obs.outcome.is_ok() || timed_out {
            n.latencies.push_back(obs.latency_ms);
            while n.latencies.len() > LATENCIES_KEPT {
                n.latencies.pop_front();
            }
        }
        n.last = Some(obs);
    }

    /// Take a scrape of a node's `/metrics` into account.
    pub fn record_metrics(&mut self, node: &str, m: NodeMetrics) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.prev_metrics = n.metrics.take();
            n.metrics = Some(m);
        }
    }

    /// Take a host agent report into account.
    pub fn record_host(&mut self, node: &str, h: HostSample) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.host = Some(h);
        }
    }

    /// Close a probe round: screen out implausible heights and move the best height.
    ///
    /// A height is believed when a second node corroborates it (or it is the only one): the
    /// reference is the second-highest answering height. A node more than
    /// `cfg.implausible_lead` blocks above the reference is marked implausible.
    pub fn end_round(&mut self, cfg: &DetectConfig) {
        let mut heights: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| n.answering())
            .filter_map(|n| n.height)
            .collect();
        heights.sort_unstable_by(|a, b| b.cmp(a));
        let reference = heights.get(1).or(heights.first()).copied();
        for n in self.nodes.values_mut() {
            n.implausible = match (reference, n.height, n.answering()) {
                (Some(r), Some(h), true) => h > r.saturating_add(cfg.implausible_lead),
                _ => false,
            };
            if let Some(last) = &n.last {
                let timed_out = last
                    .failure()
                    .is_some_and(|f| f.kind == crate::observation::FailureKind::Timeout);
                if timed_out
                    || (last.outcome.is_ok() && last.latency_ms > cfg.kpi.rpc_latency_warn_ms)
                {
                    n.slow_since.get_or_insert(last.at);
                } else if last.outcome.is_ok() {
                    n.slow_since = None;
                }
            }
        }
        for n in self.nodes.values().filter(|n| n.reachable()) {
            if let (Some(h), Some(since)) = (n.height, n.height_since) {
                let t = self.first_seen.entry(h).or_insert(since);
                *t = (*t).min(since);
            }
        }
        while self.first_seen.len() > FIRST_SEEN_KEPT {
            self.first_seen.pop_first();
        }
        if let Some(b) = self
            .nodes
            .values()
            .filter(|n| n.reachable())
            .filter_map(|n| n.height)
            .max()
        {
            self.best = Some(b);
        }
    }

    /// The highest believable height of an answering node (kept when all nodes fail).
    pub fn best_height(&self) -> Option<u64> {
        self.best
    }

    /// Since when some believable node has been above `height` (the earliest time a higher
    /// block was seen). `None` while no node is known above it.
    pub fn passed_since(&self, height: u64) -> Option<Timestamp> {
        self.first_seen
            .range(height.saturating_add(1)..)
            .next()
            .map(|(_, t)| *t)
    }

    /// Number of nodes watched.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.nodes.get(name)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &NodeState> {
        self.nodes.values()
    }

    /// Blocks a node is behind the best height.
    pub fn lag(&self, node: &NodeState) -> Option<u64> {
        Some(self.best?.saturating_sub(node.height?))
    }

    /// Recent canonical headers.
    pub fn chain(&self) -> &ChainHistory {
        &self.chain
    }

    /// A header fetched to fill the history (from a node on the canonical chain).
    pub fn record_header(&mut self, h: HeaderInfo) {
        self.chain.insert(h);
    }

    pub fn set_fork_report(&mut self, report: ForkReport) {
        if report.diverged() {
            self.diverged_since.get_or_insert(report.at);
        } else {
            self.diverged_since = None;
        }
        for p in report.partitions.iter().skip(1) {
            for name in &p.nodes {
                if let Some(n) = self.nodes.get_mut(name) {
                    n.off_canonical_at = Some(report.at);
                }
            }
        }
        self.fork = Some(report);
    }

    pub fn fork_report(&self) -> Option<&ForkReport> {
        self.fork.as_ref()
    }

    /// The first comparison of the current run of comparisons that found chains differing:
    /// where a split brain's or a divergent node's fault started (MTTD).
    pub fn diverged_since(&self) -> Option<Timestamp> {
        self.diverged_since
    }

    pub fn set_state_roots(&mut self, report: StateRootReport) {
        self.state_roots = Some(report);
    }

    pub fn state_roots(&self) -> Option<&StateRootReport> {
        self.state_roots.as_ref()
    }

    /// A node's `getstateheight`.
    pub fn record_state_height(&mut self, node: &str, local: u64, validated: u64) {
        if let Some(n) = self.nodes.get_mut(node) {
            if n.validated_moved.is_none_or(|(v, _)| v != validated) {
                n.validated_moved = Some((validated, local));
            }
            n.state_height = Some((local, validated));
        }
    }

    /// The configured node that is validator `index`, if any.
    pub fn validator_node(&self, index: u32) -> Option<String> {
        self.nodes
            .values()
            .find(|n| n.validator_index == Some(index))
            .map(|n| n.name.clone())
    }

    /// A validator's node name, or `#index` for a validator neo-ir does not watch.
    pub fn validator_name(&self, index: u32) -> String {
        self.validator_node(index)
            .unwrap_or_else(|| format!("#{index}"))
    }

    /// The validator count most nodes' `getversion` reports.
    pub fn validators_count(&self) -> Option<u32> {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for v in self.nodes.values().filter_map(|n| n.version.as_ref()) {
            if let Some(c) = v.validators_count.filter(|c| *c > 0) {
                *counts.entry(c).or_default() += 1;
            }
        }
        counts.into_iter().max_by_key(|(_, n)| *n).map(|(c, _)| c)
    }

    /// The target block time: what most nodes' `getversion` says (validators first), else
    /// `fallback`. Never hard-coded: TestNet and MainNet differ.
    pub fn msperblock(&self, fallback: u64) -> u64 {
        let mut counts: BTreeMap<(bool, u64), usize> = BTreeMap::new();
        for n in self.nodes.values() {
            if let Some(ms) = n.version.as_ref().and_then(|v| v.msperblock) {
                *counts.entry((n.role == Role::Validator, ms)).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .max_by_key(|((validator, _), count)| (*validator, *count))
            .map(|((_, ms), _)| ms)
            .filter(|ms| *ms > 0)
            .unwrap_or(fallback)
    }

    /// The fleet view, one line per node.
    pub fn view(&self) -> Vec<NodeView> {
        self.nodes
            .values()
            .map(|n| {
                let last = n.last.as_ref();
                let status = last.and_then(|o| o.status());
                let failure = last.and_then(|o| o.failure());
                let state = match (last, n.implausible) {
                    (None, _) => "unknown",
                    (Some(_), true) => "implausible_height",
                    (Some(o), false) if o.outcome.is_ok() => "ok",
                    _ => "down",
                };
                let (error_kind, error) = if n.implausible {
                    (
                        Some("implausible_height".to_string()),
                        Some(format!(
                            "claims height {} that no other node corroborates (best believable {})",
                            n.height.unwrap_or_default(),
                            self.best.unwrap_or_default()
                        )),
                    )
                } else {
                    (
                        failure.map(|f| f.kind.as_str().to_string()),
                        failure.map(|f| f.to_string()),
                    )
                };
                NodeView {
                    name: n.name.clone(),
                    role: n.role,
                    state: state.to_string(),
                    height: n.height,
                    lag: if n.reachable() { self.lag(n) } else { None },
                    height_since: n.height_since,
                    connections: status.and_then(|s| s.connections),
                    latency_ms: last.map(|o| o.latency_ms),
                    user_agent: n.version.as_ref().map(|v| v.user_agent.clone()),
                    network: n.version.as_ref().and_then(|v| v.network),
                    msperblock: n.version.as_ref().and_then(|v| v.msperblock),
                    header_index: n.header.as_ref().map(|h| h.index),
                    header_time_ms: n.header.as_ref().map(|h| h.time_ms),
                    header_primary: n.header.as_ref().and_then(|h| h.primary),
                    error_kind,
                    error,
                    consecutive_failures: n.consecutive_failures,
                    last_probe_at: last.map(|o| o.at),
                    last_ok_at: n.last_ok_at,
                    median_latency_ms: n.median_latency_ms(),
                    metrics: n.metrics.clone(),
                    host: n.host.clone(),
                }
            })
            .collect()
    }
}
