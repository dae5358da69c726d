//! A drill in simulated time: the scenario's faults on a model of the built-in network, the
//! engine's decision path (fleet → detectors → debounce → lifecycle) at the configured probe
//! cadence, scripted responders, and the score. It runs in microseconds, so it answers "how
//! would this configuration respond to a consensus stall?" before a real drill, and it is how
//! the built-in scenarios are tested with exact numbers.
//!
//! The model is the simulator's (`crates/sim`) behaviour reduced to what probes see: heights
//! that advance every `msperblock` (not while the chain is stalled or more than `f`
//! validators are down), block hashes per branch (a fork from a height on), answers that are
//! refused (crash), never come (hang, or slower than the probe timeout), come late (slow), or
//! say a lie. A round probes every node; a node's first failure is re-probed at once (the
//! watch loop does that, `CONFIRM_MS` later), and a round is added at the stall deadline
//! (the watch loop wakes up then). The chain check's hash comparison runs every round.
//!
//! Not modelled (the real `neo-ir drill run` exercises them): network I/O timing, dBFT view
//! changes, block headers (so no primary attribution), state roots, host agents.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::json;

use super::{score, DrillScore, Scenario};
use crate::debounce::Debouncer;
use crate::detect::{detect, stall_deadline, DetectConfig};
use crate::fleet::{Fleet, NodeSpec};
use crate::fork::{partitions, FirstDifference, ForkReport};
use crate::incident::{Actor, Change, EventType, Incident, ResponseRole, TimelineEvent};
use crate::lifecycle::reconcile;
use crate::observation::{ChainStatus, FailureKind, NodeVersion, Observation, ProbeFailure, Role};
use crate::oncall::ResponseConfig;
use crate::runbook::{Run, RunStatus};

/// How long after a first failure the watch loop's re-probe answers.
pub const CONFIRM_MS: u64 = 50;
/// The network magic the model's nodes report (a private network, as the simulator's).
const MODEL_NETWORK: u32 = 0x004F_454E;

/// What the scripted responders do, counted from the first incident of the drill.
#[derive(Debug, Clone, PartialEq)]
pub struct Responders {
    /// Acknowledge every drill incident this long after it opens (`None`: nobody does).
    pub ack_after: Option<Duration>,
    /// Who acknowledges, and takes the incident commander role.
    pub commander: String,
    /// Post a status update this long after each update reminder (`None`: nobody does).
    pub update_after: Option<Duration>,
    /// Repair the network this long after the first incident (the faults are cleared).
    pub repair_after: Duration,
    /// Run the scenario's runbook this long after the repair (`None`: nobody does).
    pub runbook_after: Option<Duration>,
}

impl Default for Responders {
    fn default() -> Self {
        Self {
            ack_after: Some(Duration::from_secs(60)),
            commander: "drill-commander".into(),
            update_after: Some(Duration::from_secs(60)),
            repair_after: Duration::from_secs(5 * 60),
            runbook_after: Some(Duration::from_secs(30)),
        }
    }
}

/// The configuration a rehearsal runs with (the operator's, or the defaults).
#[derive(Debug, Clone)]
pub struct Setup {
    pub validators: usize,
    pub rpc: usize,
    pub msperblock: u64,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub detect: DetectConfig,
    pub response: ResponseConfig,
    /// Give up when the incidents are still open this long after the repair.
    pub settle_limit: Duration,
}

impl Setup {
    /// The built-in network (4 validators, 3 RPC nodes, 1 s blocks) with `config`'s probe,
    /// detection and response settings.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            validators: 4,
            rpc: 3,
            msperblock: 1000,
            probe_interval: config.probe.interval,
            probe_timeout: config.probe.timeout,
            detect: config.detect.clone(),
            response: config.response.clone(),
            settle_limit: Duration::from_secs(3 * 3600),
        }
    }
}

/// One line of the rehearsal's story.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Milliseconds after the fault.
    pub at_ms: u64,
    pub what: String,
}

/// The outcome: the score, the incidents with their timelines, the runs, and the story.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    pub score: DrillScore,
    #[serde(skip)]
    pub incidents: Vec<(Incident, Vec<TimelineEvent>)>,
    #[serde(skip)]
    pub runs: Vec<Run>,
    pub story: Vec<Step>,
    /// Fault → every drill incident resolved, when they all did within the limit.
    pub resolved_ms: Option<u64>,
}

#[derive(Debug, Clone, Default)]
struct NodeModel {
    name: String,
    validator: bool,
    crashed: bool,
    hang: bool,
    slow_ms: Option<u64>,
    /// The height it stopped at (freeze, crash).
    stuck_at: Option<u64>,
    peers: Option<u32>,
    /// (from height, branch id)
    fork: Option<(u64, u32)>,
    garbage: bool,
    lie: bool,
}

impl NodeModel {
    fn down(&self) -> bool {
        self.crashed || self.hang || self.stuck_at.is_some()
    }
}

/// The model network: heights follow simulated time.
struct Net {
    nodes: Vec<NodeModel>,
    msperblock: u64,
    /// Height and time of the last block produced.
    height: u64,
    last_block: Timestamp,
    stalled: bool,
}

impl Net {
    fn new(s: &Setup, start: Timestamp) -> Self {
        let mut nodes = Vec::new();
        for i in 1..=s.validators {
            nodes.push(NodeModel {
                name: format!("validator-{i}"),
                validator: true,
                ..Default::default()
            });
        }
        for i in 1..=s.rpc {
            nodes.push(NodeModel {
                name: format!("rpc-{i}"),
                ..Default::default()
            });
        }
        Self {
            nodes,
            msperblock: s.msperblock,
            height: 0,
            last_block: start,
            stalled: false,
        }
    }

    /// dBFT needs `n - f` validators: with more than `f` down nothing is produced.
    fn producing(&self) -> bool {
        let n = self.nodes.iter().filter(|v| v.validator).count();
        let f = n.saturating_sub(1) / 3;
        let down = self
            .nodes
            .iter()
            .filter(|v| v.validator && v.down())
            .count();
        !self.stalled && down <= f
    }

    /// Produce the blocks due by `now`.
    fn advance(&mut self, now: Timestamp) {
        let step = SignedDuration::from_millis(self.msperblock as i64);
        while let Ok(next) = self.last_block.checked_add(step) {
            if next > now {
                break;
            }
            if self.producing() {
                self.height += 1;
            }
            self.last_block = next;
        }
    }

    fn hash(&self, node: &NodeModel, height: u64) -> String {
        let branch = match node.fork {
            Some((from, branch)) if height >= from => branch,
            _ => 0,
        };
        format!("0x{branch:04x}{height:060x}")
    }

    fn node_height(&self, node: &NodeModel) -> u64 {
        node.stuck_at.map_or(self.height, |s| s.min(self.height))
    }

    fn inject(&mut self, name: &str, fault: &serde_json::Value) -> Result<(), String> {
        let what = fault["fault"].as_str().unwrap_or_default();
        if name == "*" {
            return match what {
                "stall" => {
                    self.stalled = true;
                    Ok(())
                }
                _ => Err(format!("{what:?} needs a node, not \"*\"")),
            };
        }
        let height = self.height;
        let salt = 0x100 + self.nodes.iter().position(|n| n.name == name).unwrap_or(0) as u32;
        let n = self
            .nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| format!("no node {name:?} in the drill network"))?;
        let num = |k: &str| fault[k].as_u64();
        match what {
            "crash" => {
                n.crashed = true;
                n.stuck_at.get_or_insert(height);
            }
            "freeze" => {
                n.stuck_at.get_or_insert(height);
            }
            "hang" => n.hang = true,
            "slow" => n.slow_ms = Some(num("ms").ok_or("slow needs ms")?),
            "peers" => n.peers = Some(num("count").ok_or("peers needs count")? as u32),
            "fork" => {
                let from = num("height").ok_or("fork needs height")?;
                let branch = num("branch").map_or(salt, |b| 1 + b as u32);
                n.fork = Some((from, branch));
            }
            "garbage" | "huge" => n.garbage = true,
            "lie" => n.lie = true,
            other => {
                return Err(format!(
                    "the rehearsal does not model the {other:?} fault (run the drill on the \
                     simulated network instead)"
                ))
            }
        }
        Ok(())
    }

    fn repair(&mut self) {
        for n in &mut self.nodes {
            *n = NodeModel {
                name: std::mem::take(&mut n.name),
                validator: n.validator,
                ..Default::default()
            };
        }
        self.stalled = false;
    }

    fn observe(&self, n: &NodeModel, at: Timestamp, timeout_ms: u64) -> Observation {
        let fail = |kind, latency_ms, message: &str| Observation {
            node: n.name.clone(),
            at,
            latency_ms,
            outcome: Err(ProbeFailure::new(kind, message)),
        };
        if n.crashed {
            return fail(FailureKind::Refused, 1, "connection refused");
        }
        let latency = n.slow_ms.unwrap_or(3);
        if n.hang || latency >= timeout_ms {
            return fail(
                FailureKind::Timeout,
                timeout_ms,
                "no answer within the timeout",
            );
        }
        if n.garbage {
            return fail(FailureKind::Malformed, latency, "not a JSON-RPC answer");
        }
        let height = self.node_height(n);
        let reported = if n.lie { height + 1_000_000 } else { height };
        Observation {
            node: n.name.clone(),
            at,
            latency_ms: latency,
            outcome: Ok(ChainStatus {
                block_count: reported + 1,
                best_hash: self.hash(n, reported),
                connections: Some(n.peers.unwrap_or(6)),
                version: Some(NodeVersion {
                    user_agent: "/neo-ir-sim:0.1.0/".into(),
                    network: Some(MODEL_NETWORK),
                    msperblock: Some(self.msperblock),
                    validators_count: Some(self.nodes.iter().filter(|v| v.validator).count() as u32),
                    tcp_port: Some(20333),
                    nonce: Some(1),
                }),
                header: None,
                parent_header: None,
            }),
        }
    }

    /// The chain check: every answering node's hash at the lowest common height.
    fn fork_report(&self, at: Timestamp, timeout_ms: u64) -> ForkReport {
        let answering: Vec<&NodeModel> = self
            .nodes
            .iter()
            .filter(|n| self.observe(n, at, timeout_ms).outcome.is_ok() && !n.lie)
            .collect();
        let unanswered = self
            .nodes
            .iter()
            .filter(|n| !answering.iter().any(|a| a.name == n.name))
            .map(|n| n.name.clone())
            .collect();
        let height = answering
            .iter()
            .map(|n| self.node_height(n))
            .min()
            .unwrap_or(0);
        let answers: Vec<(String, String)> = answering
            .iter()
            .map(|n| (n.name.clone(), self.hash(n, height)))
            .collect();
        let roles: BTreeMap<String, Role> = self
            .nodes
            .iter()
            .map(|n| {
                let role = if n.validator {
                    Role::Validator
                } else {
                    Role::Rpc
                };
                (n.name.clone(), role)
            })
            .collect();
        let parts = partitions(&answers, &roles);
        let first_difference = (parts.len() > 1).then(|| {
            let first = answering
                .iter()
                .filter_map(|n| n.fork.map(|(from, _)| from))
                .min()
                .unwrap_or(height);
            FirstDifference {
                height: first,
                last_common: first.saturating_sub(1),
                hashes: parts.iter().map(|p| p.hash.clone()).collect(),
            }
        });
        ForkReport {
            at,
            height,
            partitions: parts,
            first_difference,
            bisection_requests: 0,
            unanswered,
        }
    }

    /// What the scenario's runbook would say now: `true` when it passes.
    fn runbook_passes(&self, script: &str) -> Result<bool, String> {
        let up = |n: &&NodeModel| !n.down() && n.slow_ms.is_none() && !n.garbage && !n.lie;
        Ok(match script {
            // every node answering, at the fleet's height, on one chain
            "validate_sync" | "check_network_partitions" | "identify_canonical_chain" => {
                self.nodes.iter().all(|n| up(&n) && n.fork.is_none())
            }
            "check_validator_connectivity" => {
                self.nodes.iter().filter(|n| n.validator).all(|n| up(&n)) && self.producing()
            }
            "performance_diagnostics" => self
                .nodes
                .iter()
                .all(|n| n.slow_ms.is_none() && n.peers.is_none_or(|p| p >= 3) && !n.hang),
            other => {
                return Err(format!(
                    "the rehearsal cannot judge {other:?} (a script on a node's host): run \
                     the drill on the simulated network"
                ))
            }
        })
    }
}

/// The engine's state in the rehearsal: incidents with timelines, kept in memory.
struct Engine {
    fleet: Fleet,
    debouncer: Debouncer,
    incidents: Vec<(Incident, Vec<TimelineEvent>)>,
}

impl Engine {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Open {
                mut incident,
                events,
            } => {
                incident.id = self.incidents.len() as i64 + 1;
                incident.version = 1;
                self.incidents.push((incident, events));
            }
            Change::Update(m) => self.mutate(m),
        }
    }

    fn mutate(&mut self, m: crate::incident::Mutation) {
        if let Some((inc, timeline)) = self
            .incidents
            .iter_mut()
            .find(|(i, _)| i.id == m.incident.id)
        {
            *inc = m.incident;
            inc.version += 1;
            timeline.extend(m.events);
        }
    }

    fn incident(&self, id: i64) -> Option<Incident> {
        self.incidents
            .iter()
            .find(|(i, _)| i.id == id)
            .map(|(i, _)| i.clone())
    }

    fn open(&self) -> Vec<Incident> {
        self.incidents
            .iter()
            .filter(|(i, _)| i.is_open())
            .map(|(i, _)| i.clone())
            .collect()
    }
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    crate::oncall::plus(t, d)
}

fn ms(from: Timestamp, to: Timestamp) -> u64 {
    crate::clock::millis_between(from, to)
}

/// Rehearse `scenario` with `setup` and `responders`, starting at `start`: a warm-up of ten
/// rounds, the faults (at `start` + 10.3 s, off the probe cadence, plus each fault's
/// `after`), the response, the repair, until every drill incident resolved or
/// `settle_limit` after the repair.
pub fn rehearse(
    scenario: &Scenario,
    setup: &Setup,
    responders: &Responders,
    start: Timestamp,
) -> Result<Rehearsal, String> {
    let interval = setup.probe_interval.as_millis().max(1) as u64;
    let timeout_ms = setup.probe_timeout.as_millis() as u64;
    let mut net = Net::new(setup, start);
    let specs: Vec<NodeSpec> = net
        .nodes
        .iter()
        .map(|n| NodeSpec {
            name: n.name.clone(),
            role: if n.validator {
                Role::Validator
            } else {
                Role::Rpc
            },
            validator_index: None,
        })
        .collect();
    let mut engine = Engine {
        fleet: Fleet::new(&specs),
        debouncer: Debouncer::default(),
        incidents: Vec::new(),
    };
    // the faults, in time order
    let fault_at = plus(start, Duration::from_millis(10_300));
    let mut faults: Vec<(Timestamp, &super::ScenarioFault)> = scenario
        .faults
        .iter()
        .map(|f| (plus(fault_at, f.after.unwrap_or_default()), f))
        .collect();
    faults.sort_by_key(|(t, _)| *t);
    let mut pending_faults = faults.into_iter().peekable();

    let actor = Actor {
        who: responders.commander.clone(),
        from: "drill rehearsal".into(),
    };
    let mut story = Vec::new();
    let mut say = |now: Timestamp, what: String| {
        story.push(Step {
            at_ms: ms(fault_at, now),
            what,
        })
    };
    let mut runs: Vec<Run> = Vec::new();
    let mut first_incident: Option<Timestamp> = None;
    let mut repaired_at: Option<Timestamp> = None;
    let mut next_round = start;
    let mut confirm_at: Option<Timestamp> = None;
    let mut stall_at: Option<Timestamp> = None;
    let mut now = start;
    let mut resolved_ms = None;
    // one pass per moment something happens: a round, a re-probe, a stall wake-up, a fault,
    // a responder's action
    for _ in 0..2_000_000 {
        // what the responders do at `now`
        if let Some(after) = responders.ack_after {
            for inc in engine.open() {
                if inc.acked_at.is_none() && plus(inc.opened_at, after) <= now {
                    if let Ok(m) = crate::respond::acknowledge(&inc, &actor, now) {
                        engine.mutate(m);
                        say(now, format!("{} acknowledged #{}", actor.who, inc.id));
                    }
                    if let Some(cur) = engine.incident(inc.id) {
                        if let Ok(m) = crate::respond::set_role(
                            &cur,
                            ResponseRole::IC,
                            Some(&actor.who),
                            &actor,
                            now,
                        ) {
                            engine.mutate(m);
                        }
                    }
                }
            }
        }
        if let Some(after) = responders.update_after {
            let due: Vec<i64> = engine
                .incidents
                .iter()
                .filter(|(i, _)| i.is_open())
                .filter_map(|(i, t)| {
                    let reminders = t.iter().filter(|e| e.is(EventType::UpdateDue)).count();
                    let updates = t.iter().filter(|e| e.is(EventType::StatusUpdate)).count();
                    let last = t.iter().rev().find(|e| e.is(EventType::UpdateDue))?;
                    (reminders > updates && plus(last.at, after) <= now).then_some(i.id)
                })
                .collect();
            for id in due {
                if let Some(inc) = engine.incident(id) {
                    if let Ok(m) = crate::respond::status_update(
                        &inc,
                        "Investigating; next update on schedule.",
                        &actor,
                        now,
                    ) {
                        engine.mutate(m);
                        say(
                            now,
                            format!("{} posted a status update on #{id}", actor.who),
                        );
                    }
                }
            }
        }
        if let Some(first) = first_incident {
            if repaired_at.is_none() && plus(first, responders.repair_after) <= now {
                net.repair();
                repaired_at = Some(now);
                say(now, "network repaired (faults cleared)".into());
            }
        }
        if let (Some(rep), Some(after), Some(script)) = (
            repaired_at,
            responders.runbook_after,
            scenario.runbook.as_deref(),
        ) {
            // the responders run it once
            if runs.is_empty() && plus(rep, after) <= now {
                let passes = net.runbook_passes(script)?;
                let target = engine
                    .incidents
                    .iter()
                    .find(|(i, _)| i.kind == scenario.kind)
                    .or(engine.incidents.first())
                    .map(|(i, _)| i.clone());
                let status = if passes {
                    RunStatus::Succeeded
                } else {
                    RunStatus::Failed
                };
                let summary = format!("{script}: {}", if passes { "passed" } else { "failed" });
                if let Some(inc) = &target {
                    if let Ok(m) = crate::respond::record(
                        inc,
                        EventType::RunbookRun,
                        summary.clone(),
                        json!({"script": script, "status": status}),
                        now,
                    ) {
                        engine.mutate(m);
                    }
                }
                runs.push(Run {
                    id: runs.len() as i64 + 1,
                    script: script.to_string(),
                    args: vec![],
                    node: None,
                    incident_id: target.as_ref().map(|i| i.id),
                    status,
                    requested_by: actor.who.clone(),
                    approved_by: None,
                    plan: Default::default(),
                    results: vec![],
                    report: json!({}),
                    summary: summary.clone(),
                    created_at: now,
                    finished_at: Some(now),
                    automatic: false,
                });
                say(now, format!("{} ran {summary}", actor.who));
            }
        }

        // the network and the faults
        net.advance(now);
        while let Some((t, f)) = pending_faults.next_if(|(t, _)| *t <= now) {
            net.inject(&f.node, &f.fault)?;
            say(t, format!("injected {} on {}", f.fault, f.node));
        }

        // a probe round (or the re-probe / the stall wake-up)
        let is_round = now >= next_round
            || confirm_at.is_some_and(|c| c <= now)
            || stall_at.is_some_and(|s| s <= now);
        if is_round {
            let full = now >= next_round || stall_at.is_some_and(|s| s <= now);
            if now >= next_round {
                next_round = plus(next_round, Duration::from_millis(interval));
            }
            let mut newly_failed = false;
            for n in &net.nodes {
                let before = engine.fleet.node(&n.name).map(|s| s.consecutive_failures);
                if !full && before.is_none_or(|c| c == 0) {
                    continue; // the re-probe asks only the nodes that just failed
                }
                let obs = net.observe(n, now, timeout_ms);
                newly_failed |= obs.outcome.is_err() && before == Some(0);
                engine.fleet.record(obs);
            }
            engine
                .fleet
                .set_fork_report(net.fork_report(now, timeout_ms));
            confirm_at = newly_failed.then(|| plus(now, Duration::from_millis(CONFIRM_MS)));
            engine.fleet.end_round(&setup.detect);
            let raw = detect(&engine.fleet, &setup.detect, now);
            let assessment = engine.debouncer.apply(raw, &setup.detect.debounce, now);
            stall_at = stall_deadline(&engine.fleet, &setup.detect).filter(|s| *s > now);
            for change in reconcile(&engine.open(), &assessment, now, &setup.response, &[]) {
                for e in change.events() {
                    if now >= fault_at {
                        say(now, e.message.clone());
                    }
                }
                if matches!(change, Change::Open { .. }) && now >= fault_at {
                    first_incident.get_or_insert(now);
                }
                engine.apply(change);
            }
        }

        // done when the repair is in and every drill incident resolved
        if repaired_at.is_some()
            && first_incident.is_some()
            && engine.open().is_empty()
            && (!runs.is_empty()
                || responders.runbook_after.is_none()
                || scenario.runbook.is_none())
        {
            resolved_ms = Some(ms(fault_at, now));
            break;
        }
        if let Some(rep) = repaired_at {
            if now > plus(rep, setup.settle_limit) {
                break;
            }
        }
        if first_incident.is_none() && now > plus(fault_at, Duration::from_secs(3600)) {
            // nothing detected within an hour: the score says so
            break;
        }

        // the next moment something happens
        let mut next = next_round;
        let mut consider = |t: Option<Timestamp>| {
            if let Some(t) = t.filter(|t| *t > now) {
                next = next.min(t);
            }
        };
        consider(confirm_at);
        consider(stall_at);
        consider(pending_faults.peek().map(|(t, _)| *t));
        if let Some(after) = responders.ack_after {
            for i in engine.open() {
                if i.acked_at.is_none() {
                    consider(Some(plus(i.opened_at, after)));
                }
            }
        }
        if let Some(after) = responders.update_after {
            for (i, t) in &engine.incidents {
                if let (true, Some(e)) = (
                    i.is_open(),
                    t.iter().rev().find(|e| e.is(EventType::UpdateDue)),
                ) {
                    consider(Some(plus(e.at, after)));
                }
            }
        }
        consider(first_incident.map(|f| plus(f, responders.repair_after)));
        consider(
            repaired_at
                .zip(responders.runbook_after)
                .map(|(r, a)| plus(r, a)),
        );
        now = next;
    }
    let incidents: Vec<(Incident, Vec<TimelineEvent>)> = engine.incidents;
    let score = score(scenario, fault_at, &incidents, &runs);
    Ok(Rehearsal {
        score,
        incidents,
        runs,
        story,
        resolved_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::incident::{IncidentKind, Severity};

    fn setup() -> Setup {
        Setup::from_config(&Config::with_defaults(vec![], "sqlite::memory:"))
    }

    fn start() -> Timestamp {
        "2026-03-01T10:00:00Z".parse().unwrap()
    }

    /// Every built-in scenario with the default configuration (1 s probes, 2 s timeout, 1 s
    /// blocks) and responders who acknowledge after a minute, repair after five and verify
    /// 30 s later: detected and classified at the times the detectors' rules give, full
    /// points, resolved after the 30 min stability window.
    #[test]
    fn every_builtin_scenario_scores_with_the_expected_numbers() {
        // the fault lands at 10.3 s, 700 ms before a probe round
        let expected: &[(&str, IncidentKind, Severity, u64, i64)] = &[
            // the round sees "connection refused", the re-probe 50 ms later confirms
            ("node-crash", IncidentKind::NodeDown, Severity::P2, 750, 700),
            // frozen at height 10 (at 10.0 s) while the fleet reaches 13 at 13.0 s
            (
                "node-frozen",
                IncidentKind::SyncFailure,
                Severity::P2,
                2_700,
                700,
            ),
            // last block at 10.0 s + threshold 2 × 1 s + 0.8 s: the stall wake-up at 12.801 s
            (
                "consensus-stall",
                IncidentKind::ConsensusFailure,
                Severity::P1,
                2_501,
                -300,
            ),
            // the chain check at the next round sees the other hash
            (
                "lone-fork",
                IncidentKind::DataCorruption,
                Severity::P1,
                700,
                700,
            ),
            (
                "split-brain",
                IncidentKind::SplitBrain,
                Severity::P1,
                700,
                700,
            ),
            // the median of the recent answers is slow from the round at 13 s; 3 s `for`
            (
                "slow-rpc",
                IncidentKind::PerformanceDegradation,
                Severity::P3,
                5_700,
                700,
            ),
            // slow from the round at 13 s with 600 connections; 2 s `for`
            (
                "ddos",
                IncidentKind::NetworkAttack,
                Severity::P2,
                4_700,
                700,
            ),
        ];
        let builtin = super::super::builtin();
        assert_eq!(builtin.len(), expected.len());
        for (name, kind, severity, detect_ms, first_seen_ms) in expected {
            let sc = super::super::find(name).unwrap();
            let r = rehearse(&sc, &setup(), &Responders::default(), start()).unwrap();
            let s = &r.score;
            let story: Vec<String> = r
                .story
                .iter()
                .map(|s| format!("{} {}", s.at_ms, s.what))
                .collect();
            assert_eq!(s.detect_ms, Some(*detect_ms), "{name}: {story:#?}");
            assert_eq!(s.classified_ms, Some(*detect_ms), "{name}");
            assert_eq!(s.ack_ms, Some(detect_ms + 60_000), "{name}");
            assert!(
                s.classified && s.runbook_ran && s.updates_on_time,
                "{name}: {s:?}"
            );
            assert_eq!(s.points, 100, "{name}: {:?}", s.notes);
            assert_eq!(r.incidents.len(), 1, "{name}: one incident, {story:#?}");
            let (inc, timeline) = &r.incidents[0];
            assert_eq!((inc.kind, inc.severity), (*kind, *severity), "{name}");
            assert_eq!(inc.status, crate::incident::Status::Resolved, "{name}");
            // repaired at detection + 5 min; clear for 5 s (a few more for the slow median to
            // drop); then the 30 min stability window
            let resolved = r.resolved_ms.unwrap();
            let after_repair = resolved - (detect_ms + 300_000);
            assert!(
                (1_800_000 + 4_000..=1_800_000 + 12_000).contains(&after_repair),
                "{name}: resolved {after_repair} ms after the repair"
            );
            assert!(
                timeline.iter().any(|e| e.is(EventType::RunbookRun)),
                "{name}"
            );
            // MTTD counts from the first failing observation, which the detector put in the
            // evidence: the first round after the fault, at 700 ms; a stall's from the last
            // block, 300 ms before the fault
            let fault = crate::kpis::fault_started_at(inc, timeline);
            let fault_at = plus(start(), Duration::from_millis(10_300));
            assert_eq!(
                fault.map(|f| f.as_millisecond() - fault_at.as_millisecond()),
                Some(*first_seen_ms),
                "{name}: {:?}",
                inc.evidence
            );
            // P1 and P2 get their review scheduled with the resolution
            assert_eq!(
                timeline.iter().any(|e| e.is(EventType::ReviewScheduled)),
                *severity <= Severity::P2,
                "{name}"
            );
            // the same inputs give the same drill
            let again = rehearse(&sc, &setup(), &Responders::default(), start()).unwrap();
            assert_eq!(again.score, r.score);
            assert_eq!(again.story, r.story);
        }
    }

    #[test]
    fn a_late_response_loses_the_points_it_should_and_says_why() {
        let sc = super::super::find("consensus-stall").unwrap();
        // acknowledged after 10 min, no updates, repaired after an hour
        let late = Responders {
            ack_after: Some(Duration::from_secs(600)),
            update_after: None,
            repair_after: Duration::from_secs(3600),
            ..Responders::default()
        };
        let r = rehearse(&sc, &setup(), &late, start()).unwrap();
        let s = &r.score;
        assert_eq!(s.ack_ms, Some(2_501 + 600_000));
        assert!(!s.updates_on_time);
        // detection 30 + classification 20 + late ack 10 + runbook 20, no updates
        assert_eq!(s.points, 80, "{:?}", s.notes);
        let notes = s.notes.join("; ");
        assert!(notes.contains("acknowledged after 10 min 2 s"), "{notes}");
        assert!(notes.contains("update reminder"), "{notes}");
        // nobody acknowledged during an hour: the whole escalation chain fired (the
        // playbook's 4 steps)
        let none = Responders {
            ack_after: None,
            repair_after: Duration::from_secs(3600),
            ..Responders::default()
        };
        let r = rehearse(&sc, &setup(), &none, start()).unwrap();
        assert_eq!(r.score.ack_ms, None);
        let steps = r.incidents[0]
            .1
            .iter()
            .filter(|e| e.is(EventType::Escalated))
            .count();
        assert_eq!(steps, 4, "{:#?}", r.story);
        assert!(r.score.notes.contains(&"nobody acknowledged".to_string()));
    }

    #[test]
    fn a_runbook_run_before_the_repair_fails_and_unmodelled_faults_are_refused() {
        let mut net = Net::new(&setup(), start());
        net.inject("rpc-1", &json!({"fault": "crash"})).unwrap();
        assert!(!net.runbook_passes("validate_sync").unwrap());
        net.repair();
        assert!(net.runbook_passes("validate_sync").unwrap());
        assert!(net.runbook_passes("quick_recovery").is_err());
        let mut sc = super::super::find("node-crash").unwrap();
        sc.faults[0].fault = json!({"fault": "state_root", "height": 5});
        let e = rehearse(&sc, &setup(), &Responders::default(), start()).unwrap_err();
        assert!(e.contains("state_root"), "{e}");
        sc.faults[0] = super::super::ScenarioFault {
            node: "rpc-9".into(),
            fault: json!({"fault": "crash"}),
            after: None,
        };
        let e = rehearse(&sc, &setup(), &Responders::default(), start()).unwrap_err();
        assert!(e.contains("rpc-9"), "{e}");
    }
}
