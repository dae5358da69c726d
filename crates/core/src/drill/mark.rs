//! Marking drill incidents: while a drill runs, what the detectors find on its nodes is a
//! drill incident, so it stays out of the real KPIs, the status page and the real channels.
//!
//! The contract is [`crate::kpis::is_drill`]: a drill incident's key starts with
//! [`DRILL_PREFIX`] (`drill:node_down:rpc-1`) and its evidence has `drill: true`, with the
//! drill's `drill_id` and `drill_scenario`. [`mark`] rewrites one round's debounced
//! assessment before it is reconciled with the open incidents:
//!
//! - A finding is marked when a running drill covers it: the drill names no nodes (a drill on
//!   the simulated network covers every node), or every node of the finding is one of the
//!   drill's (a drill on a test node never marks a fleet-wide incident that involves other,
//!   real nodes).
//! - A finding whose drill incident is still open stays marked after its drill ended (the
//!   drill's incident resolves as one, instead of a real incident opening in its place).
//! - A finding whose real incident was open before the drill started stays real.
//! - The debouncer works on the detectors' keys, before marking: a key it holds undecided
//!   (pending, or clearing under `clear_for`) is undecided for its drill incident too, so a
//!   marked incident clears, is monitored and resolves exactly as a real one does.

use std::collections::BTreeMap;

use crate::incident::{Assessment, Finding, Incident};
pub use crate::kpis::DRILL_PREFIX;

/// A running drill as the watcher reads it from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveDrill {
    pub id: i64,
    pub scenario: String,
    /// The nodes whose incidents are drill incidents; empty: every node.
    pub nodes: Vec<String>,
}

impl ActiveDrill {
    /// Does this drill cover a finding on `nodes`?
    pub fn covers(&self, nodes: &[String]) -> bool {
        self.nodes.is_empty() || (!nodes.is_empty() && nodes.iter().all(|n| self.nodes.contains(n)))
    }
}

/// The key of the drill incident for a detector's key.
pub fn drill_key(key: &str) -> String {
    format!("{DRILL_PREFIX}{key}")
}

/// Mark one round's (debounced) assessment for the running `drills`, given the `open`
/// incidents (see the module's rules).
pub fn mark(assessment: Assessment, drills: &[ActiveDrill], open: &[Incident]) -> Assessment {
    let by_key: BTreeMap<&str, &Incident> = open
        .iter()
        .filter(|i| i.is_open())
        .map(|i| (i.key.as_str(), i))
        .collect();
    if drills.is_empty() && !by_key.keys().any(|k| k.starts_with(DRILL_PREFIX)) {
        return assessment;
    }
    let Assessment {
        findings,
        mut undecided,
    } = assessment;
    let findings = findings
        .into_iter()
        .map(|f| {
            if f.key.starts_with(DRILL_PREFIX) {
                return f;
            }
            let key = drill_key(&f.key);
            if let Some(inc) = by_key.get(key.as_str()) {
                let id = inc.evidence["drill_id"].as_i64().unwrap_or_default();
                let scenario = inc.evidence["drill_scenario"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                return marked(f, key, id, &scenario);
            }
            if by_key.contains_key(f.key.as_str()) {
                return f;
            }
            match drills.iter().find(|d| d.covers(&f.nodes)) {
                Some(d) => marked(f, key, d.id, &d.scenario),
                None => f,
            }
        })
        .collect();
    let held: Vec<String> = undecided
        .iter()
        .map(|k| drill_key(k))
        .filter(|k| by_key.contains_key(k.as_str()))
        .collect();
    undecided.extend(held);
    Assessment {
        findings,
        undecided,
    }
}

fn marked(mut f: Finding, key: String, id: i64, scenario: &str) -> Finding {
    f.key = key;
    if !f.evidence.is_object() {
        f.evidence = if f.evidence.is_null() {
            serde_json::json!({})
        } else {
            serde_json::json!({ "value": f.evidence })
        };
    }
    f.evidence["drill"] = true.into();
    f.evidence["drill_id"] = id.into();
    f.evidence["drill_scenario"] = scenario.into();
    f
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::debounce::{DebounceRules, Debouncer};
    use crate::incident::{Change, IncidentKind, Severity, Status};
    use crate::kpis::is_drill;
    use crate::lifecycle::reconcile;
    use crate::oncall::ResponseConfig;

    fn finding(key: &str, nodes: &[&str]) -> Finding {
        Finding {
            key: key.into(),
            kind: IncidentKind::NodeDown,
            severity: Severity::P2,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            summary: format!("{key} fired"),
            evidence: json!({"error_kind": "refused"}),
        }
    }

    fn drill(id: i64, nodes: &[&str]) -> ActiveDrill {
        ActiveDrill {
            id,
            scenario: "node-crash".into(),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn firing(fs: Vec<Finding>) -> Assessment {
        Assessment {
            findings: fs,
            ..Default::default()
        }
    }

    /// The store's part of a round: apply the changes to the open incidents.
    fn apply(open: &mut Vec<Incident>, changes: Vec<Change>, next_id: &mut i64) {
        for c in changes {
            match c {
                Change::Open { mut incident, .. } => {
                    incident.id = *next_id;
                    *next_id += 1;
                    open.push(incident);
                }
                Change::Update(m) => {
                    let i = open.iter_mut().find(|i| i.id == m.incident.id).unwrap();
                    *i = m.incident;
                }
            }
        }
        open.retain(|i| i.is_open());
    }

    #[test]
    fn covered_findings_are_marked_with_the_drill() {
        let a = firing(vec![
            finding("node_down:rpc-1", &["rpc-1"]),
            finding("consensus_failure", &["rpc-1", "validator-1"]),
            finding("node_down:rpc-2", &["rpc-2"]),
        ]);
        // a drill on the test node rpc-1: the fleet-wide finding involves real nodes too
        let m = mark(a.clone(), &[drill(4, &["rpc-1"])], &[]);
        assert_eq!(m.findings[0].key, "drill:node_down:rpc-1");
        assert_eq!(m.findings[0].evidence["drill"], true);
        assert_eq!(m.findings[0].evidence["drill_id"], 4);
        assert_eq!(m.findings[0].evidence["drill_scenario"], "node-crash");
        assert_eq!(
            m.findings[0].evidence["error_kind"], "refused",
            "evidence kept"
        );
        assert_eq!(m.findings[1].key, "consensus_failure");
        assert_eq!(m.findings[2].key, "node_down:rpc-2");
        // a drill on the simulated network covers every node
        let m = mark(a.clone(), &[drill(5, &[])], &[]);
        assert!(m.findings.iter().all(|f| f.key.starts_with("drill:")));
        // no drill: nothing changes
        assert_eq!(mark(a.clone(), &[], &[]), a);
        assert!(
            !drill(1, &["a"]).covers(&[]),
            "a node drill covers no node-less finding"
        );
    }

    #[test]
    fn a_real_incident_open_before_the_drill_stays_real() {
        let now = Timestamp::from_second(1_767_225_600).unwrap();
        let cfg = ResponseConfig::default();
        let f = finding("node_down:rpc-1", &["rpc-1"]);
        let real = crate::lifecycle::open(&f, now, &cfg);
        let m = mark(firing(vec![f]), &[drill(1, &[])], &[real]);
        assert_eq!(m.findings[0].key, "node_down:rpc-1");
        assert_eq!(m.findings[0].evidence.get("drill"), None);
    }

    /// The whole path: detector keys → debouncer → mark → reconcile. The drill incident
    /// opens marked, stays marked after the drill ended while the condition lasts, then
    /// clears (after `clear_for`), is monitored and resolves; no real incident ever opens.
    #[test]
    fn a_marked_incident_clears_is_monitored_and_resolves() {
        let clock = ManualClock::at_epoch_2026();
        let rules = DebounceRules {
            clear_for: Duration::from_secs(5),
            ..Default::default()
        };
        let cfg = ResponseConfig {
            stability_window: Duration::from_secs(10),
            ..Default::default()
        };
        let mut debouncer = Debouncer::default();
        let mut open: Vec<Incident> = Vec::new();
        let mut next_id = 1;
        let d = [drill(9, &[])];
        let mut round = |raw: Assessment, drills: &[ActiveDrill], open: &mut Vec<Incident>| {
            let a = debouncer.apply(raw, &rules, clock.now());
            let a = mark(a, drills, open);
            let changes = reconcile(open, &a, clock.now(), &cfg, &[]);
            apply(open, changes, &mut next_id);
            clock.advance(Duration::from_secs(1));
        };
        let down = || firing(vec![finding("node_down:rpc-1", &["rpc-1"])]);
        round(down(), &d, &mut open);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].key, "drill:node_down:rpc-1");
        assert!(is_drill(&open[0]));
        assert_eq!(open[0].evidence["drill_id"], 9);
        // the drill ends (scored) while the node is still down: still the drill incident
        for _ in 0..3 {
            round(down(), &[], &mut open);
        }
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].key, "drill:node_down:rpc-1");
        assert_eq!(open[0].status, Status::Detected);
        // repaired: clearing for 5 s is undecided for the drill key too: nothing moves
        for _ in 0..4 {
            round(Assessment::default(), &[], &mut open);
            assert_eq!(open[0].status, Status::Detected, "held while clearing");
        }
        let mut monitoring = false;
        for _ in 0..20 {
            round(Assessment::default(), &[], &mut open);
            if open.first().is_some_and(|i| i.status == Status::Monitoring) {
                monitoring = true;
            }
        }
        assert!(monitoring, "the drill incident went through monitoring");
        assert!(open.is_empty(), "and resolved: {open:?}");
    }

    #[test]
    fn undecided_keys_hold_their_open_drill_incident() {
        let now = Timestamp::from_second(1_767_225_600).unwrap();
        let cfg = ResponseConfig::default();
        let f = finding("sync_failure:rpc-1", &["rpc-1"]);
        let marked = mark(firing(vec![f]), &[drill(2, &[])], &[]);
        let inc = crate::lifecycle::open(&marked.findings[0], now, &cfg);
        let mut a = Assessment::default();
        a.undecided.insert("sync_failure:rpc-1".into());
        a.undecided.insert("sync_failure:rpc-2".into());
        let m = mark(a, &[], std::slice::from_ref(&inc));
        assert!(m.undecided.contains("drill:sync_failure:rpc-1"));
        assert!(m.undecided.contains("sync_failure:rpc-1"));
        assert!(!m.undecided.contains("drill:sync_failure:rpc-2"));
    }
}
