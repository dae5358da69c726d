//! Incidents and the pure incident state machine.
//!
//! The detectors say what is true now (`Finding`s, plus which conditions cannot be judged
//! this round). `reconcile` compares that with the open incidents and returns the changes to
//! make: open a new incident, update one (severity raised, nodes joined), or resolve one.
//! One cause (the finding's `key`) is one incident however many rounds it fires, and an
//! incident is resolved only when its condition was positively seen to be clear.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The incident kinds of the playbook (a stable public contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    NodeDown,
    SyncFailure,
    ConsensusFailure,
    DataCorruption,
    NetworkAttack,
    SplitBrain,
    PerformanceDegradation,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 7] = [
        IncidentKind::NodeDown,
        IncidentKind::SyncFailure,
        IncidentKind::ConsensusFailure,
        IncidentKind::DataCorruption,
        IncidentKind::NetworkAttack,
        IncidentKind::SplitBrain,
        IncidentKind::PerformanceDegradation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::NodeDown => "node_down",
            IncidentKind::SyncFailure => "sync_failure",
            IncidentKind::ConsensusFailure => "consensus_failure",
            IncidentKind::DataCorruption => "data_corruption",
            IncidentKind::NetworkAttack => "network_attack",
            IncidentKind::SplitBrain => "split_brain",
            IncidentKind::PerformanceDegradation => "performance_degradation",
        }
    }
}

impl fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IncidentKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IncidentKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown incident kind {s:?}"))
    }
}

/// Playbook severities. `P1` is the most severe; `Ord` sorts P1 first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    P1,
    P2,
    P3,
    P4,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
            Severity::P4 => "P4",
        }
    }

    /// The playbook's response-time target: an incident of this severity is to be
    /// acknowledged within it (P1 15 min, P2 30 min, P3 2 h, P4 24 h).
    pub fn response_target(self) -> std::time::Duration {
        let minutes = match self {
            Severity::P1 => 15,
            Severity::P2 => 30,
            Severity::P3 => 120,
            Severity::P4 => 24 * 60,
        };
        std::time::Duration::from_secs(minutes * 60)
    }

    /// True when `self` is more severe than `other`.
    pub fn worse_than(self, other: Severity) -> bool {
        self < other
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "P1" => Ok(Severity::P1),
            "P2" => Ok(Severity::P2),
            "P3" => Ok(Severity::P3),
            "P4" => Ok(Severity::P4),
            _ => Err(format!("unknown severity {s:?} (expected P1..P4)")),
        }
    }
}

/// Where an incident stands. The response phases (triage, investigating, ...) extend this;
/// an incident is "open" in every status but `Resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Detected,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Detected => "detected",
            Status::Resolved => "resolved",
        }
    }

    pub fn is_open(self) -> bool {
        self != Status::Resolved
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "detected" => Ok(Status::Detected),
            "resolved" => Ok(Status::Resolved),
            _ => Err(format!("unknown status {s:?}")),
        }
    }
}

/// What a detector found this round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The cause: one key is one incident (e.g. `node_down:rpc-1`, `consensus_failure`).
    pub key: String,
    pub kind: IncidentKind,
    pub severity: Severity,
    /// Names of the nodes involved, sorted.
    pub nodes: Vec<String>,
    pub summary: String,
    /// What was observed, with numbers.
    pub evidence: serde_json::Value,
}

/// Keys of incidents people declared (playbook phase 1: a user report) start with this.
/// No detector fires them, so no detection round resolves them: people do.
pub const DECLARED_PREFIX: &str = "declared:";

/// Who declared an incident, and from where (the audit part of its `opened` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// A token name for the API, the OS user for the CLI.
    pub who: String,
    /// `api 10.0.0.7:51234`, `cli`.
    pub from: String,
}

/// Longest summary of a declared incident, in characters.
pub const MAX_SUMMARY: usize = 500;

/// A person's declaration of an incident, as the change that opens it, or why it is
/// refused (an empty or too long summary). The key is unique per declaration (the time and
/// a per-process sequence), so two declarations are two incidents.
pub fn declare(
    kind: IncidentKind,
    severity: Severity,
    summary: &str,
    mut nodes: Vec<String>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Change, String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let summary = summary.trim();
    if summary.is_empty() || summary.chars().count() > MAX_SUMMARY {
        return Err(format!("summary must be 1 to {MAX_SUMMARY} characters"));
    }
    nodes.sort();
    nodes.dedup();
    let key = format!(
        "{DECLARED_PREFIX}{}-{}-{}",
        now.as_millisecond(),
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    );
    let finding = Finding {
        key,
        kind,
        severity,
        nodes,
        summary: summary.to_string(),
        evidence: serde_json::json!({"declared_by": actor.who, "from": actor.from}),
    };
    let event = TimelineEvent::new(
        now,
        EventType::Opened,
        format!("{severity} {kind} declared by {}: {summary}", actor.who),
        serde_json::json!({
            "severity": severity,
            "nodes": finding.nodes,
            "declared_by": actor.who,
            "from": actor.from,
        }),
    );
    Ok(Change::Open {
        finding,
        at: now,
        event,
    })
}

/// The timeline event of a person acknowledging `incident` at `at`.
pub fn acknowledged_event(incident: &Incident, actor: &Actor, at: Timestamp) -> TimelineEvent {
    let after_ms = crate::clock::millis_between(incident.opened_at, at);
    TimelineEvent::new(
        at,
        EventType::Acknowledged,
        format!("acknowledged by {} after {}", actor.who, human_ms(after_ms)),
        serde_json::json!({
            "by": actor.who,
            "from": actor.from,
            "after_ms": after_ms,
            "within_target": incident.ack_due_at.is_none_or(|due| at <= due),
        }),
    )
}

/// Longest note, in characters.
pub const MAX_NOTE: usize = 4000;

/// A person's note on the timeline (what they saw, did or decided), or why it is refused.
pub fn note_event(text: &str, actor: &Actor, at: Timestamp) -> Result<TimelineEvent, String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_NOTE {
        return Err(format!("a note has 1 to {MAX_NOTE} characters"));
    }
    Ok(TimelineEvent::new(
        at,
        EventType::Note,
        format!("{}: {text}", actor.who),
        serde_json::json!({"by": actor.who, "from": actor.from, "text": text}),
    ))
}

/// The timeline event of `incident` missing its response target, recorded at `now`.
pub fn breach_event(incident: &Incident, now: Timestamp) -> TimelineEvent {
    let target = incident.severity.response_target();
    TimelineEvent::new(
        now,
        EventType::ResponseTargetBreached,
        format!(
            "not acknowledged within the {} response target of {}",
            incident.severity,
            human_ms(target.as_millis() as u64)
        ),
        serde_json::json!({
            "severity": incident.severity,
            "target_ms": target.as_millis() as u64,
            "due_at": incident.ack_due_at,
        }),
    )
}

/// The outcome of one detection round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assessment {
    pub findings: Vec<Finding>,
    /// Keys whose condition could not be judged this round (e.g. a node that did not answer
    /// cannot be judged for sync). Open incidents with these keys stay as they are.
    pub undecided: BTreeSet<String>,
}

/// An incident as stored (the projection of its timeline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: i64,
    pub key: String,
    pub kind: IncidentKind,
    pub severity: Severity,
    pub status: Status,
    pub nodes: Vec<String>,
    pub summary: String,
    pub evidence: serde_json::Value,
    pub opened_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// When acknowledgement is due: opened + the severity's response target (moved when the
    /// severity is raised before anyone acknowledged).
    #[serde(default)]
    pub ack_due_at: Option<Timestamp>,
    #[serde(default)]
    pub acked_at: Option<Timestamp>,
    /// Who acknowledged (a token name or an OS user).
    #[serde(default)]
    pub acked_by: Option<String>,
    /// When the missed response target was recorded (once per incident).
    #[serde(default)]
    pub ack_breached_at: Option<Timestamp>,
}

/// Types of timeline events written by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Opened,
    SeverityRaised,
    NodesChanged,
    Acknowledged,
    ResponseTargetBreached,
    Note,
    Resolved,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Opened => "opened",
            EventType::SeverityRaised => "severity_raised",
            EventType::NodesChanged => "nodes_changed",
            EventType::Acknowledged => "acknowledged",
            EventType::ResponseTargetBreached => "response_target_breached",
            EventType::Note => "note",
            EventType::Resolved => "resolved",
        }
    }
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub at: Timestamp,
    #[serde(rename = "type")]
    pub event_type: String,
    pub message: String,
    pub data: serde_json::Value,
}

impl TimelineEvent {
    fn new(at: Timestamp, t: EventType, message: String, data: serde_json::Value) -> Self {
        Self {
            at,
            event_type: t.as_str().to_string(),
            message,
            data,
        }
    }
}

/// A change the store must apply (each in one transaction with its events).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Open {
        finding: Finding,
        at: Timestamp,
        event: TimelineEvent,
    },
    Update {
        id: i64,
        at: Timestamp,
        severity: Severity,
        nodes: Vec<String>,
        summary: String,
        evidence: serde_json::Value,
        /// Empty when only the evidence numbers moved.
        events: Vec<TimelineEvent>,
    },
    Resolve {
        id: i64,
        at: Timestamp,
        event: TimelineEvent,
    },
}

/// Compare what is true now with the open incidents and say what must change.
///
/// - A finding whose key has no open incident opens one.
/// - A finding for an open incident updates it: a worse severity is raised (never lowered
///   automatically), a changed node set is recorded, the latest evidence replaces the old.
/// - An open incident whose key has no finding and is not `undecided` is resolved.
pub fn reconcile(open: &[Incident], assessment: &Assessment, now: Timestamp) -> Vec<Change> {
    let mut changes = Vec::new();
    let by_key: BTreeMap<&str, &Incident> = open
        .iter()
        .filter(|i| i.status.is_open())
        .map(|i| (i.key.as_str(), i))
        .collect();
    let mut firing = BTreeSet::new();

    for f in &assessment.findings {
        if !firing.insert(f.key.as_str()) {
            continue; // one finding per cause per round
        }
        match by_key.get(f.key.as_str()) {
            None => changes.push(Change::Open {
                finding: f.clone(),
                at: now,
                event: TimelineEvent::new(
                    now,
                    EventType::Opened,
                    format!("{} {}: {}", f.severity, f.kind, f.summary),
                    serde_json::json!({
                        "severity": f.severity,
                        "nodes": f.nodes,
                        "evidence": f.evidence,
                    }),
                ),
            }),
            Some(inc) => {
                let mut events = Vec::new();
                let mut severity = inc.severity;
                if f.severity.worse_than(inc.severity) {
                    severity = f.severity;
                    events.push(TimelineEvent::new(
                        now,
                        EventType::SeverityRaised,
                        format!("severity raised {} → {}: {}", inc.severity, f.severity, f.summary),
                        serde_json::json!({"from": inc.severity, "to": f.severity, "evidence": f.evidence}),
                    ));
                }
                if f.nodes != inc.nodes {
                    events.push(TimelineEvent::new(
                        now,
                        EventType::NodesChanged,
                        format!("nodes now {}", f.nodes.join(", ")),
                        serde_json::json!({"from": inc.nodes, "to": f.nodes}),
                    ));
                }
                if !events.is_empty() || f.evidence != inc.evidence || f.summary != inc.summary {
                    changes.push(Change::Update {
                        id: inc.id,
                        at: now,
                        severity,
                        nodes: f.nodes.clone(),
                        summary: f.summary.clone(),
                        evidence: f.evidence.clone(),
                        events,
                    });
                }
            }
        }
    }

    for inc in by_key.values() {
        if firing.contains(inc.key.as_str())
            || assessment.undecided.contains(&inc.key)
            || inc.key.starts_with(DECLARED_PREFIX)
        {
            continue;
        }
        let lasted_ms = crate::clock::millis_between(inc.opened_at, now);
        changes.push(Change::Resolve {
            id: inc.id,
            at: now,
            event: TimelineEvent::new(
                now,
                EventType::Resolved,
                format!(
                    "condition cleared after {}: {}",
                    human_ms(lasted_ms),
                    inc.summary
                ),
                serde_json::json!({"duration_ms": lasted_ms, "last_evidence": inc.evidence}),
            ),
        });
    }
    changes
}

/// "4.2 s", "3 min 5 s", "2 h 1 min": durations as operators read them.
pub fn human_ms(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use std::time::Duration;

    fn finding(key: &str, sev: Severity, nodes: &[&str]) -> Finding {
        Finding {
            key: key.into(),
            kind: IncidentKind::NodeDown,
            severity: sev,
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            summary: format!("{key} fired"),
            evidence: serde_json::json!({"n": 1}),
        }
    }

    #[test]
    fn a_declared_incident_is_never_resolved_by_a_detection_round() {
        let clock = ManualClock::at_epoch_2026();
        let actor = Actor {
            who: "ops".into(),
            from: "api 127.0.0.1:5000".into(),
        };
        let first = declare(
            IncidentKind::PerformanceDegradation,
            Severity::P3,
            "users report slow RPC",
            vec!["rpc-2".into(), "rpc-1".into(), "rpc-2".into()],
            &actor,
            clock.now(),
        )
        .unwrap();
        let second = declare(
            IncidentKind::PerformanceDegradation,
            Severity::P3,
            "users report slow RPC",
            vec![],
            &actor,
            clock.now(),
        )
        .unwrap();
        for summary in ["", "  ", &"x".repeat(MAX_SUMMARY + 1)] {
            let refused = declare(
                IncidentKind::NodeDown,
                Severity::P2,
                summary,
                vec![],
                &actor,
                clock.now(),
            );
            assert!(refused.is_err(), "{summary:?}");
        }
        let (Change::Open { finding, event, .. }, Change::Open { finding: other, .. }) =
            (&first, &second)
        else {
            panic!("declarations open incidents");
        };
        assert!(finding.key.starts_with(DECLARED_PREFIX));
        assert_ne!(finding.key, other.key, "two declarations, two incidents");
        assert_eq!(finding.nodes, ["rpc-1", "rpc-2"]);
        assert_eq!(event.event_type, "opened");
        assert_eq!(event.data["declared_by"], "ops");
        assert_eq!(event.data["from"], "api 127.0.0.1:5000");

        let mut open = Vec::new();
        let mut next = 0;
        apply(&mut open, vec![first], &mut next);
        for _ in 0..3 {
            clock.advance(Duration::from_secs(60));
            let changes = reconcile(&open, &Assessment::default(), clock.now());
            assert!(changes.is_empty(), "{changes:?}");
        }
    }

    /// Apply changes the way a store would, assigning ids.
    fn apply(open: &mut Vec<Incident>, changes: Vec<Change>, next_id: &mut i64) {
        for c in changes {
            match c {
                Change::Open { finding, at, .. } => {
                    *next_id += 1;
                    open.push(Incident {
                        id: *next_id,
                        key: finding.key,
                        kind: finding.kind,
                        severity: finding.severity,
                        status: Status::Detected,
                        nodes: finding.nodes,
                        summary: finding.summary,
                        evidence: finding.evidence,
                        opened_at: at,
                        resolved_at: None,
                        updated_at: at,
                        ack_due_at: None,
                        acked_at: None,
                        acked_by: None,
                        ack_breached_at: None,
                    })
                }
                Change::Update {
                    id,
                    severity,
                    nodes,
                    evidence,
                    ..
                } => {
                    let i = open.iter_mut().find(|i| i.id == id).unwrap();
                    i.severity = severity;
                    i.nodes = nodes;
                    i.evidence = evidence;
                }
                Change::Resolve { id, at, .. } => {
                    let i = open.iter_mut().find(|i| i.id == id).unwrap();
                    i.status = Status::Resolved;
                    i.resolved_at = Some(at);
                }
            }
        }
        open.retain(|i| i.status.is_open());
    }

    #[test]
    fn one_cause_is_one_incident_however_many_rounds() {
        let clock = ManualClock::at_epoch_2026();
        let mut open = Vec::new();
        let mut id = 0;
        let a = Assessment {
            findings: vec![finding("node_down:rpc-1", Severity::P2, &["rpc-1"])],
            ..Default::default()
        };
        for _ in 0..10 {
            let ch = reconcile(&open, &a, clock.now());
            apply(&mut open, ch, &mut id);
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(open.len(), 1);
        assert_eq!(id, 1, "exactly one incident was opened");
    }

    #[test]
    fn severity_is_raised_never_lowered() {
        let clock = ManualClock::at_epoch_2026();
        let mut open = Vec::new();
        let mut id = 0;
        let mut a = Assessment {
            findings: vec![finding("k", Severity::P2, &["a"])],
            ..Default::default()
        };
        let ch = reconcile(&open, &a, clock.now());
        apply(&mut open, ch, &mut id);
        a.findings[0].severity = Severity::P1;
        let ch = reconcile(&open, &a, clock.now());
        assert!(
            matches!(&ch[0], Change::Update { severity: Severity::P1, events, .. }
            if events[0].event_type == "severity_raised")
        );
        apply(&mut open, ch, &mut id);
        a.findings[0].severity = Severity::P3;
        let ch = reconcile(&open, &a, clock.now());
        assert!(ch.is_empty(), "a lower severity changes nothing: {ch:?}");
        assert_eq!(open[0].severity, Severity::P1);
    }

    #[test]
    fn resolves_only_when_clear_not_when_undecided() {
        let clock = ManualClock::at_epoch_2026();
        let mut open = Vec::new();
        let mut id = 0;
        let firing = Assessment {
            findings: vec![finding("sync_failure:rpc-2", Severity::P2, &["rpc-2"])],
            ..Default::default()
        };
        let ch = reconcile(&open, &firing, clock.now());
        apply(&mut open, ch, &mut id);
        let undecided = Assessment {
            findings: vec![],
            undecided: ["sync_failure:rpc-2".to_string()].into(),
        };
        clock.advance(Duration::from_secs(5));
        assert!(reconcile(&open, &undecided, clock.now()).is_empty());
        clock.advance(Duration::from_secs(5));
        let ch = reconcile(&open, &Assessment::default(), clock.now());
        match &ch[..] {
            [Change::Resolve { id: 1, at, event }] => {
                assert_eq!(*at, clock.now());
                assert_eq!(event.data["duration_ms"], 10_000);
            }
            other => panic!("expected one resolve, got {other:?}"),
        }
    }

    #[test]
    fn node_set_change_is_a_timeline_event() {
        let clock = ManualClock::at_epoch_2026();
        let mut open = Vec::new();
        let mut id = 0;
        let mut a = Assessment {
            findings: vec![finding("consensus_failure", Severity::P1, &["a", "b"])],
            ..Default::default()
        };
        let ch = reconcile(&open, &a, clock.now());
        apply(&mut open, ch, &mut id);
        a.findings[0].nodes = vec!["a".into()];
        let ch = reconcile(&open, &a, clock.now());
        assert!(
            matches!(&ch[0], Change::Update { events, .. } if events[0].event_type == "nodes_changed")
        );
    }

    #[test]
    fn kinds_and_severities_round_trip() {
        for k in IncidentKind::ALL {
            assert_eq!(k.as_str().parse::<IncidentKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert!(Severity::P1.worse_than(Severity::P2));
        assert_eq!("P3".parse::<Severity>().unwrap(), Severity::P3);
        assert_eq!(human_ms(4200), "4.2 s");
        assert_eq!(human_ms(185_000), "3 min 5 s");
    }
}
