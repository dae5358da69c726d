//! `check_validator_connectivity`: is every validator reachable, connected to peers and
//! proposing blocks?
//!
//! Each validator is probed once (height, `getconnectioncount`, and `getpeers` for the
//! connected peers). Then the last `lookback` block headers are read from the reachable node
//! with the highest block (`getblockheader [i, true]`, batched) and read the way the
//! consensus detector reads them ([`ChainHistory::primary_records`]): dBFT's primary of view
//! `v` for block `i` is `(i − v) mod n`, so a block made in view `v > 0` names the validators
//! whose turns timed out before it. A validator's index is its configured `validator_index`
//! or, by default, its position among the validator nodes (as the configuration defaults it).
//!
//! A validator is ok when it answers, has at least one peer and proposed at least one block
//! in the window (when the window held a turn of its). Missed turns are counted and named
//! either way: a validator that proposes some blocks and misses others passes, with the
//! missed blocks listed, so one view change does not fail the check.

use std::collections::BTreeMap;

use neo_ir_core::chain::ChainHistory;
use neo_ir_core::observation::HeaderInfo;
use neo_ir_core::Role;
use neo_ir_probe::{NodeTarget, Prober};
use serde::Serialize;
use serde_json::json;

/// Most blocks read back (a check, not an archive scan).
pub const MAX_LOOKBACK: u64 = 1000;
/// Headers asked for in one batched request.
const HEADER_BATCH: usize = 50;

/// One validator's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum ValidatorVerdict {
    Ok,
    /// Did not answer (the probe's error).
    Unreachable {
        error: String,
    },
    /// Answers but has no peers: isolated, it cannot take part in consensus.
    NoPeers,
    /// Had turns in the window and proposed none of the blocks.
    NotProposing {
        missed: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatorConnectivity {
    pub node: String,
    /// Its index in the validator list (the primary of view 0 for block `i` is `i mod n`).
    pub index: u32,
    pub reachable: bool,
    pub height: Option<u64>,
    /// `getconnectioncount`.
    pub connections: Option<u32>,
    /// `getpeers`' connected list, counted.
    pub peers_connected: Option<u32>,
    /// The highest block in the window it proposed.
    pub last_proposed: Option<u64>,
    /// Blocks in the window it proposed.
    pub proposed: u32,
    /// Turns in the window it missed (its view timed out), and at which blocks.
    pub missed: u32,
    pub missed_blocks: Vec<u64>,
    #[serde(flatten)]
    pub verdict: ValidatorVerdict,
    /// Everything noticed, in words (also when the verdict is ok).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectivityReport {
    /// `n`: given, else what most validators' `getversion` says, else the validator nodes
    /// configured.
    pub validators_count: Option<u32>,
    pub lookback: u64,
    /// The blocks read (first, last), when any were.
    pub window: Option<(u64, u64)>,
    /// The node the headers came from.
    pub header_source: Option<String>,
    /// Why the headers could not be read, when they could not.
    pub header_error: Option<String>,
    pub validators: Vec<ValidatorConnectivity>,
    /// Every validator reachable, with peers, proposing within the window.
    pub ok: bool,
}

/// The validator targets with their indexes: `configured` (node name → `validator_index`)
/// where given, else the position among the validator targets, as `Fleet` numbers them.
pub fn validator_indexes(
    targets: &[NodeTarget],
    configured: &BTreeMap<String, u32>,
) -> Vec<(NodeTarget, u32)> {
    targets
        .iter()
        .filter(|t| t.role == Role::Validator)
        .enumerate()
        .map(|(position, t)| {
            let index = configured.get(&t.name).copied().unwrap_or(position as u32);
            (t.clone(), index)
        })
        .collect()
}

/// Run the check over the validators among `targets` (others are ignored, except as a
/// source of headers), each at its default index. See [`check_validators`] for configured
/// indexes.
pub async fn check_validator_connectivity(
    prober: &Prober,
    targets: &[NodeTarget],
    validators_count: Option<u32>,
    lookback: u64,
) -> ConnectivityReport {
    let validators = validator_indexes(targets, &BTreeMap::new());
    check_validators(prober, targets, &validators, validators_count, lookback).await
}

struct Probed {
    height: Option<u64>,
    connections: Option<u32>,
    peers: Option<u32>,
    error: Option<String>,
    validators_count: Option<u32>,
}

async fn probe_validator(prober: &Prober, t: &NodeTarget) -> Probed {
    let o = prober.probe(t, None).await;
    match o.status() {
        None => Probed {
            height: None,
            connections: None,
            peers: None,
            error: Some(
                o.failure()
                    .map_or_else(|| "no answer".to_string(), |f| f.to_string()),
            ),
            validators_count: None,
        },
        Some(s) => {
            let peers = match prober.call(t, "getpeers", json!([])).await {
                Ok(v) => neo_ir_probe::parse::parse_peers(&v)
                    .ok()
                    .map(|p| u32::try_from(p.connected.len()).unwrap_or(u32::MAX)),
                Err(_) => None,
            };
            Probed {
                height: Some(s.height()),
                connections: s.connections,
                peers,
                error: None,
                validators_count: s.version.as_ref().and_then(|v| v.validators_count),
            }
        }
    }
}

/// Headers `first..=last` from `t`, in order, or why not.
async fn headers(
    prober: &Prober,
    t: &NodeTarget,
    first: u64,
    last: u64,
) -> Result<Vec<HeaderInfo>, String> {
    let indexes: Vec<u64> = (first..=last).collect();
    let mut out = Vec::with_capacity(indexes.len());
    for chunk in indexes.chunks(HEADER_BATCH) {
        let calls: Vec<(&str, serde_json::Value)> = chunk
            .iter()
            .map(|i| ("getblockheader", json!([i, true])))
            .collect();
        let answers = prober
            .batch(t, &calls)
            .await
            .map_err(|e| format!("{}: {e}", t.name))?;
        for (i, answer) in chunk.iter().zip(answers) {
            let v = answer.map_err(|e| format!("{}: getblockheader {i}: {e}", t.name))?;
            let h = neo_ir_probe::parse::parse_header(&v)
                .map_err(|e| format!("{}: getblockheader {i}: {e}", t.name))?;
            if h.index != *i {
                return Err(format!(
                    "{}: asked for header {i}, got header {}",
                    t.name, h.index
                ));
            }
            out.push(h);
        }
    }
    Ok(out)
}

/// Run the check for `validators` (target, index), reading headers from any of `targets`.
pub async fn check_validators(
    prober: &Prober,
    targets: &[NodeTarget],
    validators: &[(NodeTarget, u32)],
    validators_count: Option<u32>,
    lookback: u64,
) -> ConnectivityReport {
    let lookback = lookback.clamp(1, MAX_LOOKBACK);
    let probed =
        futures::future::join_all(validators.iter().map(|(t, _)| probe_validator(prober, t))).await;
    // n: given, else the count most validators report, else the validators configured
    let n = validators_count.filter(|n| *n > 0).or_else(|| {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for c in probed.iter().filter_map(|p| p.validators_count) {
            *counts.entry(c).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by_key(|(_, k)| *k)
            .map(|(c, _)| c)
            .or_else(|| u32::try_from(validators.len()).ok().filter(|n| *n > 0))
    });

    // headers from the reachable node with the highest block; the next one if it fails
    let mut sources: Vec<(u64, &NodeTarget)> = Vec::new();
    let others: Vec<&NodeTarget> = targets
        .iter()
        .filter(|t| !validators.iter().any(|(v, _)| v.name == t.name))
        .collect();
    let other_obs = prober
        .probe_all(
            &others
                .iter()
                .map(|t| ((*t).clone(), None))
                .collect::<Vec<_>>(),
        )
        .await;
    for ((t, _), p) in validators.iter().zip(&probed) {
        if let Some(h) = p.height {
            sources.push((h, t));
        }
    }
    for (t, o) in others.iter().zip(&other_obs) {
        if let Some(s) = o.status() {
            sources.push((s.height(), t));
        }
    }
    sources.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let mut history = None;
    let mut header_source = None;
    let mut header_error = None;
    let mut window = None;
    for (best, t) in &sources {
        if *best == 0 {
            header_error = Some("the chain has only its genesis block".to_string());
            break;
        }
        // block 0 has no consensus round
        let first = best.saturating_sub(lookback - 1).max(1);
        match headers(prober, t, first, *best).await {
            Ok(hs) => {
                let mut h = ChainHistory::new(hs.len());
                for x in hs {
                    h.insert(x);
                }
                history = Some(h);
                header_source = Some(t.name.clone());
                header_error = None;
                window = Some((first, *best));
                break;
            }
            Err(e) => header_error = Some(e),
        }
    }
    if sources.is_empty() {
        header_error = Some("no node answered".to_string());
    }

    let records = match (&history, n) {
        (Some(h), Some(n)) => h.primary_records(n),
        _ => Vec::new(),
    };
    let rounds = match (&history, n) {
        (Some(h), Some(n)) => h.rounds(n),
        _ => Vec::new(),
    };
    let headers_without_primary = history.is_some() && rounds.is_empty();

    let results: Vec<ValidatorConnectivity> = validators
        .iter()
        .zip(probed)
        .map(|((t, index), p)| {
            let index = *index;
            let mut notes = Vec::new();
            let rec = records.iter().find(|r| r.validator == index);
            let proposed = rec.map_or(0, |r| r.turns.iter().filter(|ok| **ok).count() as u32);
            let missed = rec.map_or(0, |r| r.turns.iter().filter(|ok| !**ok).count() as u32);
            let missed_blocks = rec.map_or_else(Vec::new, |r| r.missed_blocks.clone());
            let last_proposed = rounds
                .iter()
                .filter(|r| r.primary == index)
                .map(|r| r.index)
                .max();
            // a view-0 turn of its in the window: block i with i mod n == index
            let had_turn = match (n, window) {
                (Some(n), Some((first, last))) => {
                    (first..=last).any(|i| i % u64::from(n) == u64::from(index))
                }
                _ => false,
            };
            if n.is_some_and(|n| index >= n) {
                notes.push(format!(
                    "index {index} is not below the validator count {}: check validator_index",
                    n.unwrap_or(0)
                ));
            }
            let peers = p.connections.or(p.peers);
            let verdict = if let Some(error) = p.error.clone() {
                notes.push(format!("unreachable: {error}"));
                ValidatorVerdict::Unreachable { error }
            } else if peers == Some(0) {
                notes.push("no peers".to_string());
                ValidatorVerdict::NoPeers
            } else if history.is_some() && !headers_without_primary && had_turn && proposed == 0 {
                ValidatorVerdict::NotProposing { missed }
            } else {
                ValidatorVerdict::Ok
            };
            if peers.is_none() && p.error.is_none() {
                notes.push("peer count unknown (getconnectioncount and getpeers failed)".into());
            }
            if missed > 0 {
                notes.push(format!(
                    "missed {missed} turn(s) as primary (blocks {})",
                    missed_blocks
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if history.is_some() && !headers_without_primary && had_turn && proposed == 0 {
                notes.push(format!(
                    "proposed no block in the last {} blocks",
                    window.map_or(0, |(a, b)| b - a + 1)
                ));
            }
            ValidatorConnectivity {
                node: t.name.clone(),
                index,
                reachable: p.error.is_none(),
                height: p.height,
                connections: p.connections,
                peers_connected: p.peers,
                last_proposed,
                proposed,
                missed,
                missed_blocks,
                verdict,
                notes,
            }
        })
        .collect();
    if headers_without_primary {
        header_error = Some(format!(
            "the headers from {} carry no `primary`: turns cannot be attributed",
            header_source.as_deref().unwrap_or("-")
        ));
    }
    let ok = !results.is_empty()
        && history.is_some()
        && !headers_without_primary
        && results.iter().all(|v| v.verdict == ValidatorVerdict::Ok);
    ConnectivityReport {
        validators_count: n,
        lookback,
        window,
        header_source,
        header_error,
        validators: results,
        ok,
    }
}

impl ConnectivityReport {
    /// The report as operators read it: one line per validator, then the verdict.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} validators; blocks {} read from {}\n",
            self.validators_count.map_or("?".into(), |n| n.to_string()),
            self.window
                .map_or("-".into(), |(a, b)| format!("{a}..={b}")),
            self.header_source.as_deref().unwrap_or("-"),
        );
        if let Some(e) = &self.header_error {
            out.push_str(&format!("  headers: {e}\n"));
        }
        for v in &self.validators {
            let what = match &v.verdict {
                ValidatorVerdict::Ok => "ok".to_string(),
                ValidatorVerdict::Unreachable { error } => format!("UNREACHABLE: {error}"),
                ValidatorVerdict::NoPeers => "NO PEERS".to_string(),
                ValidatorVerdict::NotProposing { missed } => {
                    format!("NOT PROPOSING ({missed} turns missed)")
                }
            };
            out.push_str(&format!(
                "  {:<20} #{:<3} height {:>10}  peers {:>4}  proposed {:>3}  missed {:>3}  last {:>10}  {what}\n",
                v.node,
                v.index,
                v.height.map_or("-".into(), |h| h.to_string()),
                v.connections
                    .or(v.peers_connected)
                    .map_or("-".into(), |p| p.to_string()),
                v.proposed,
                v.missed,
                v.last_proposed.map_or("-".into(), |h| h.to_string()),
            ));
            for n in v.notes.iter().filter(|n| !n.starts_with("unreachable")) {
                out.push_str(&format!("      {n}\n"));
            }
        }
        out.push_str(if self.ok {
            "check_validator_connectivity: OK, every validator reachable, connected and proposing\n"
        } else {
            "check_validator_connectivity: FAILED\n"
        });
        out
    }
}
