//! Drills: the playbook's monthly incident-response drills as scripted scenarios on the
//! simulated network, and the score of a response from what the store recorded.
//!
//! A [`Scenario`] names the faults to inject (in the simulator's control-API form,
//! `{"fault": "crash"}`, so scenario files and the simulator speak the same words), the
//! incident kind a correct classification gives, and the runbook the playbook calls for.
//! [`score`] reads the drill's incidents, timelines and runs and says how the response went:
//! time to detect, to acknowledge, to the correct classification, whether the right runbook
//! ran, whether updates came on time. Pure: the CLI runs the drill, this judges it.

pub mod mark;

pub mod rehearse;
pub mod schedule;

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::incident::{EventType, Incident, IncidentKind, TimelineEvent};
use crate::runbook::{Run, RunStatus};

/// One fault of a scenario: on `node` (a simulated node's name), or the whole chain
/// (`node = "*"` with `{"fault": "stall"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioFault {
    pub node: String,
    /// As the simulator's control API takes it: `{"fault":"slow","ms":800}`.
    pub fault: serde_json::Value,
    /// Inject it this long after the drill starts (default at once).
    #[serde(default, with = "humantime_serde_opt")]
    pub after: Option<Duration>,
}

/// A drill: what breaks, what a good response finds and does. The built-in scenarios run on
/// the simulated network without host agents, so their runbook is the check that confirms the
/// repair (a node-host script needs an agent; scenario files may name one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub title: String,
    /// The incident kind a correct classification gives.
    pub kind: IncidentKind,
    pub faults: Vec<ScenarioFault>,
    /// The playbook's runbook for it (a script name), when there is one.
    #[serde(default)]
    pub runbook: Option<String>,
    /// Detection slower than this loses points.
    #[serde(with = "humantime_serde")]
    pub detect_within: Duration,
    /// What the incident commander should practise.
    #[serde(default)]
    pub brief: String,
}

fn fault(node: &str, fault: serde_json::Value) -> ScenarioFault {
    ScenarioFault {
        node: node.to_string(),
        fault,
        after: None,
    }
}

/// The built-in scenarios, one per incident kind of the playbook. The network attack is a
/// flood of connections (`getconnectioncount`) with slow answers: what the attack detector
/// reads when no host agent reports per-IP counts.
pub fn builtin() -> Vec<Scenario> {
    use serde_json::json;
    let s = |name: &str, title: &str, kind, faults, runbook: Option<&str>, secs, brief: &str| {
        Scenario {
            name: name.to_string(),
            title: title.to_string(),
            kind,
            faults,
            runbook: runbook.map(str::to_string),
            detect_within: Duration::from_secs(secs),
            brief: brief.to_string(),
        }
    };
    vec![
        s(
            "node-crash",
            "An RPC node crashes",
            IncidentKind::NodeDown,
            vec![fault("rpc-1", json!({"fault": "crash"}))],
            Some("validate_sync"),
            10,
            "Runbook 1: diagnostics, quick recovery, then verify with validate_sync.",
        ),
        s(
            "node-frozen",
            "An RPC node stops following the chain",
            IncidentKind::SyncFailure,
            vec![fault("rpc-1", json!({"fault": "freeze"}))],
            Some("validate_sync"),
            30,
            "Compare the node with the fleet; restart it; verify it caught up.",
        ),
        s(
            "consensus-stall",
            "The chain stops: no validator produces a block",
            IncidentKind::ConsensusFailure,
            vec![fault("*", json!({"fault": "stall"}))],
            Some("check_validator_connectivity"),
            15,
            "Runbook 2: check every validator, then coordinate the restart of the failing ones.",
        ),
        s(
            "lone-fork",
            "One RPC node follows its own chain",
            IncidentKind::DataCorruption,
            vec![fault("rpc-1", json!({"fault": "fork", "height": 0}))],
            Some("check_network_partitions"),
            20,
            "Runbook 3: find the lone node, stop it, back up, check, repair or restore; verify one chain.",
        ),
        s(
            "split-brain",
            "Validators on two branches",
            IncidentKind::SplitBrain,
            vec![
                fault(
                    "validator-3",
                    json!({"fault": "fork", "height": 0, "branch": 1}),
                ),
                fault(
                    "validator-4",
                    json!({"fault": "fork", "height": 0, "branch": 1}),
                ),
                fault("rpc-3", json!({"fault": "fork", "height": 0, "branch": 1})),
            ],
            Some("check_network_partitions"),
            20,
            "Runbook 5: identify the partitions and the canonical chain; resync the minority.",
        ),
        s(
            "slow-rpc",
            "An RPC node answers slowly (load or an attack)",
            IncidentKind::PerformanceDegradation,
            // slower than the KPI table's 500 ms warning, faster than the probe timeout (a
            // node that does not answer in time is down, not slow)
            vec![fault("rpc-1", json!({"fault": "slow", "ms": 800}))],
            Some("performance_diagnostics"),
            30,
            "Runbook 6: measure, find the bottleneck; for an attack, runbook 4.",
        ),
        s(
            "ddos",
            "An RPC node under a connection flood",
            IncidentKind::NetworkAttack,
            vec![
                fault("rpc-2", json!({"fault": "peers", "count": 600})),
                fault("rpc-2", json!({"fault": "slow", "ms": 800})),
            ],
            Some("performance_diagnostics"),
            30,
            "Runbook 4: confirm the attack from the connection counts, block the sources \
             (block_ips through the node's agent), enable rate limits; verify response times.",
        ),
    ]
}

/// A scenario by name.
pub fn find(name: &str) -> Option<Scenario> {
    builtin().into_iter().find(|s| s.name == name)
}

/// A scenario file (TOML, the fields of [`Scenario`]).
pub fn parse_scenario(text: &str) -> Result<Scenario, String> {
    let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
    if s.faults.is_empty() {
        return Err("a scenario needs at least one [[faults]]".into());
    }
    for (i, f) in s.faults.iter().enumerate() {
        if f.fault.get("fault").and_then(|v| v.as_str()).is_none() {
            return Err(format!(
                "faults[{i}].fault needs a \"fault\" name, e.g. {{ fault = \"crash\" }}"
            ));
        }
    }
    Ok(s)
}

/// How the response to a drill went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillScore {
    pub scenario: String,
    /// Fault injected → first incident opened.
    pub detect_ms: Option<u64>,
    /// Fault injected → first acknowledgement of a drill incident.
    pub ack_ms: Option<u64>,
    /// Fault injected → an incident of the expected kind opened (or a person set it).
    pub classified_ms: Option<u64>,
    pub classified: bool,
    /// The expected runbook ran successfully on a drill incident.
    pub runbook_ran: bool,
    /// No update reminder went unanswered (each `update_due` followed by a status update).
    pub updates_on_time: bool,
    /// 0..=100.
    pub points: u32,
    /// What lost points, in words.
    pub notes: Vec<String>,
}

fn ms(from: Timestamp, to: Timestamp) -> u64 {
    (to.as_millisecond() - from.as_millisecond()).max(0) as u64
}

/// Score the response: `incidents` are those opened at or after `fault_at` (with their
/// timelines), `runs` the runbook runs of that time.
///
/// Points: detection 30 (full within `detect_within`, half within twice that), correct
/// classification 20, acknowledgement 20 (full within the severity's response target is
/// not known here: within 5 minutes full, 15 half), the right runbook 20, updates on time 10.
pub fn score(
    scenario: &Scenario,
    fault_at: Timestamp,
    incidents: &[(Incident, Vec<TimelineEvent>)],
    runs: &[Run],
) -> DrillScore {
    let mut notes = Vec::new();
    let mine: Vec<&(Incident, Vec<TimelineEvent>)> = incidents
        .iter()
        .filter(|(i, _)| i.opened_at >= fault_at)
        .collect();
    let detect_ms = mine.iter().map(|(i, _)| ms(fault_at, i.opened_at)).min();
    let ack_ms = mine
        .iter()
        .flat_map(|(_, t)| t.iter().filter(|e| e.is(EventType::Acknowledged)))
        .map(|e| ms(fault_at, e.at))
        .min();
    let classified_ms = mine
        .iter()
        .filter(|(i, _)| i.kind == scenario.kind)
        .map(|(i, _)| ms(fault_at, i.opened_at))
        .min();
    let ids: Vec<i64> = mine.iter().map(|(i, _)| i.id).collect();
    let runbook_ran = scenario.runbook.as_deref().is_none_or(|want| {
        runs.iter().any(|r| {
            r.script == want
                && r.status == RunStatus::Succeeded
                && r.incident_id.is_some_and(|id| ids.contains(&id))
        })
    });
    let updates_on_time = mine.iter().all(|(_, t)| {
        let mut waiting = false;
        for e in t {
            if e.is(EventType::UpdateDue) {
                if waiting {
                    return false;
                }
                waiting = true;
            } else if e.is(EventType::StatusUpdate) {
                waiting = false;
            }
        }
        true
    });

    let mut points = 0;
    let within = scenario.detect_within.as_millis() as u64;
    match detect_ms {
        Some(d) if d <= within => points += 30,
        Some(d) if d <= 2 * within => {
            points += 15;
            notes.push(format!(
                "detected in {}, slower than the {} target",
                crate::incident::human_ms(d),
                crate::incident::human_ms(within)
            ));
        }
        Some(d) => notes.push(format!(
            "detected in {}, more than twice the target",
            crate::incident::human_ms(d)
        )),
        None => notes.push("not detected".into()),
    }
    if classified_ms.is_some() {
        points += 20;
    } else {
        let seen: Vec<String> = mine.iter().map(|(i, _)| i.kind.to_string()).collect();
        notes.push(format!(
            "no {} incident (seen: {})",
            scenario.kind,
            if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            }
        ));
    }
    match ack_ms {
        Some(a) if a <= 5 * 60_000 => points += 20,
        Some(a) if a <= 15 * 60_000 => {
            points += 10;
            notes.push(format!(
                "acknowledged after {}",
                crate::incident::human_ms(a)
            ));
        }
        Some(a) => notes.push(format!(
            "acknowledged after {}",
            crate::incident::human_ms(a)
        )),
        None => notes.push("nobody acknowledged".into()),
    }
    if runbook_ran {
        points += 20;
    } else if let Some(r) = &scenario.runbook {
        notes.push(format!("the playbook's {r} did not run on the incident"));
    }
    if updates_on_time {
        points += 10;
    } else {
        notes.push("an update reminder went unanswered".into());
    }
    DrillScore {
        scenario: scenario.name.clone(),
        detect_ms,
        ack_ms,
        classified_ms,
        classified: classified_ms.is_some(),
        runbook_ran,
        updates_on_time,
        points,
        notes,
    }
}

/// `"30s"`-style durations in scenario files.
mod humantime_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::humantime_serde::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::incident::{Finding, Severity};

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn incident(id: i64, kind: IncidentKind, opened: i64) -> Incident {
        let mut i = crate::lifecycle::open(
            &Finding {
                key: format!("k{id}"),
                kind,
                severity: Severity::P2,
                nodes: vec!["rpc-1".into()],
                summary: "s".into(),
                evidence: json!({}),
            },
            at(opened),
            &crate::oncall::ResponseConfig::default(),
        );
        i.id = id;
        i
    }

    fn event(t: EventType, s: i64) -> TimelineEvent {
        TimelineEvent::new(at(s), t, String::new(), json!({}))
    }

    fn run(script: &str, incident: i64, status: RunStatus) -> Run {
        Run {
            id: 1,
            script: script.into(),
            args: vec![],
            node: Some("rpc-1".into()),
            incident_id: Some(incident),
            status,
            requested_by: "alice".into(),
            approved_by: None,
            plan: Default::default(),
            results: vec![],
            report: json!({}),
            summary: String::new(),
            created_at: at(1100),
            finished_at: Some(at(1110)),
            automatic: false,
        }
    }

    #[test]
    fn a_good_response_scores_full_points() {
        let sc = find("node-crash").unwrap();
        let i = incident(7, IncidentKind::NodeDown, 1004);
        let t = vec![
            event(EventType::Opened, 1004),
            event(EventType::Acknowledged, 1064),
            event(EventType::UpdateDue, 1900),
            event(EventType::StatusUpdate, 1950),
        ];
        let s = score(
            &sc,
            at(1000),
            &[(i, t)],
            &[run("validate_sync", 7, RunStatus::Succeeded)],
        );
        assert_eq!(s.detect_ms, Some(4000));
        assert_eq!(s.ack_ms, Some(64_000));
        assert!(s.classified && s.runbook_ran && s.updates_on_time);
        assert_eq!(s.points, 100, "{:?}", s.notes);
    }

    #[test]
    fn what_was_missed_costs_points_and_says_why() {
        let sc = find("node-crash").unwrap();
        // slow detection (15 s for a 10 s target), wrong kind, no ack, failed runbook, and
        // two reminders in a row without an update
        let i = incident(7, IncidentKind::SyncFailure, 1015);
        let t = vec![
            event(EventType::Opened, 1015),
            event(EventType::UpdateDue, 1900),
            event(EventType::UpdateDue, 2800),
        ];
        let s = score(
            &sc,
            at(1000),
            &[(i, t)],
            &[run("validate_sync", 7, RunStatus::Failed)],
        );
        assert_eq!(s.points, 15, "{:?}", s.notes);
        assert!(!s.classified && !s.runbook_ran && !s.updates_on_time);
        let notes = s.notes.join("; ");
        for want in [
            "slower than",
            "no node_down incident",
            "nobody acknowledged",
            "validate_sync",
            "update reminder",
        ] {
            assert!(notes.contains(want), "{want}: {notes}");
        }
        // incidents from before the fault are not the drill's
        let old = incident(3, IncidentKind::NodeDown, 900);
        let s = score(&sc, at(1000), &[(old, vec![])], &[]);
        assert_eq!(s.detect_ms, None);
        assert!(s.notes.contains(&"not detected".to_string()));
    }

    #[test]
    fn every_kind_has_a_builtin_scenario_and_files_parse() {
        let kinds: Vec<IncidentKind> = builtin().iter().map(|s| s.kind).collect();
        for k in IncidentKind::ALL {
            assert!(kinds.contains(&k), "{k}");
        }
        let s = parse_scenario(
            "name = \"mine\"\ntitle = \"two crashes\"\nkind = \"node_down\"\ndetect_within = \"10s\"\n\
             runbook = \"quick_recovery\"\n\
             [[faults]]\nnode = \"rpc-1\"\nfault = { fault = \"crash\" }\n\
             [[faults]]\nnode = \"rpc-2\"\nfault = { fault = \"slow\", ms = 900 }\nafter = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(s.faults[1].after, Some(Duration::from_secs(5)));
        assert_eq!(s.faults[1].fault["ms"], 900);
        assert!(parse_scenario("name = \"x\"\ntitle = \"t\"\nkind = \"node_down\"\ndetect_within = \"1s\"\nfaults = []\n").is_err());
        assert!(parse_scenario("name = \"x\"\ntitle = \"t\"\nkind = \"node_down\"\ndetect_within = \"1s\"\n[[faults]]\nnode = \"a\"\nfault = { ms = 3 }\n").is_err());
        assert!(parse_scenario("name = \"x\"\nkind = \"meltdown\"\n").is_err());
    }
}
