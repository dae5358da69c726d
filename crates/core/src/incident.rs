//! Incidents: kinds, severities, phases, roles, the incident record and its timeline events.
//!
//! The state machine that moves incidents lives in [`crate::lifecycle`] (what the engine
//! does each round) and [`crate::respond`] (what people do); both are pure functions from an
//! incident to its next version plus the events that record why.

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

/// The playbook's phases an incident moves through. `detected` is where every incident
/// starts; `resolved` and `reviewed` are closed (see [`crate::respond::transition`] for the
/// moves people may make, [`crate::lifecycle`] for the automatic ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Detected,
    Triage,
    Investigating,
    Mitigating,
    Monitoring,
    Resolved,
    Reviewed,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Detected,
        Status::Triage,
        Status::Investigating,
        Status::Mitigating,
        Status::Monitoring,
        Status::Resolved,
        Status::Reviewed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Detected => "detected",
            Status::Triage => "triage",
            Status::Investigating => "investigating",
            Status::Mitigating => "mitigating",
            Status::Monitoring => "monitoring",
            Status::Resolved => "resolved",
            Status::Reviewed => "reviewed",
        }
    }

    /// Open: not yet resolved (every phase before `resolved`).
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Resolved | Status::Reviewed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown phase {s:?} (expected one of {})",
                    Status::ALL.map(Status::as_str).join(", ")
                )
            })
    }
}

/// The playbook's response roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResponseRole {
    /// Incident Commander: overall coordination.
    IC,
    /// Technical Lead: investigation and resolution.
    TL,
    /// Communications Lead: stakeholder updates.
    CL,
    /// Operations Lead: system changes and monitoring.
    OL,
}

impl ResponseRole {
    pub const ALL: [ResponseRole; 4] = [
        ResponseRole::IC,
        ResponseRole::TL,
        ResponseRole::CL,
        ResponseRole::OL,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseRole::IC => "IC",
            ResponseRole::TL => "TL",
            ResponseRole::CL => "CL",
            ResponseRole::OL => "OL",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ResponseRole::IC => "Incident Commander",
            ResponseRole::TL => "Technical Lead",
            ResponseRole::CL => "Communications Lead",
            ResponseRole::OL => "Operations Lead",
        }
    }
}

impl fmt::Display for ResponseRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResponseRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResponseRole::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown role {s:?} (expected IC, TL, CL or OL)"))
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

/// Who did something, and from where (the audit part of every person's event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// A token name for the API, the OS user for the CLI.
    pub who: String,
    /// `api 10.0.0.7:51234`, `cli`.
    pub from: String,
}

/// The outcome of one detection round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assessment {
    pub findings: Vec<Finding>,
    /// Keys whose condition could not be judged this round (e.g. a node that did not answer
    /// cannot be judged for sync). Open incidents with these keys stay as they are.
    pub undecided: BTreeSet<String>,
}

/// An incident as stored (the projection of its timeline). Every deadline is an absolute
/// time stored here, derived from timeline events, so it survives restarts; each is fired
/// by one guarded write (see `version`), so it fires once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: i64,
    /// Bumped by every write: a write computed from an older version is refused by the
    /// store (optimistic concurrency between the engine, people and other instances).
    #[serde(default)]
    pub version: i64,
    pub key: String,
    pub kind: IncidentKind,
    pub severity: Severity,
    /// The phase.
    pub status: Status,
    pub nodes: Vec<String>,
    pub summary: String,
    pub evidence: serde_json::Value,
    pub opened_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// The worst severity a detector reported: the engine raises `severity` only when a
    /// finding is worse than this, so a person's lowering is not undone by the same finding.
    pub detected_severity: Severity,
    /// Since when the condition is seen clear (`None` while it fires). The incident resolves
    /// when it stayed clear, in `monitoring`, for the stability window.
    #[serde(default)]
    pub cleared_at: Option<Timestamp>,
    /// Who holds which response role now.
    #[serde(default)]
    pub roles: BTreeMap<ResponseRole, String>,
    /// When acknowledgement is due: opened + the severity's response target (moved when the
    /// severity changes before anyone acknowledged).
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
    /// The escalation policy in force, the index of its next step and when that step is due
    /// (`None`: nothing left to page, or acknowledged).
    #[serde(default)]
    pub escalation_policy: Option<String>,
    #[serde(default)]
    pub escalation_step: u32,
    #[serde(default)]
    pub escalation_due_at: Option<Timestamp>,
    /// When the last person's update was made (the acknowledgement, a note, an action, a
    /// phase, role or severity change).
    #[serde(default)]
    pub last_update_at: Option<Timestamp>,
    /// When the next update reminder fires: derived by the engine, with its configuration,
    /// from `last_update_at` and the severity (`None` until then, or when none is due).
    #[serde(default)]
    pub update_due_at: Option<Timestamp>,
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.status.is_open()
    }

    pub fn is_declared(&self) -> bool {
        self.key.starts_with(DECLARED_PREFIX)
    }
}

/// Types of timeline events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Opened,
    SeverityRaised,
    SeverityChanged,
    NodesChanged,
    ConditionCleared,
    Recurred,
    PhaseChanged,
    Acknowledged,
    ResponseTargetBreached,
    Escalated,
    UpdateDue,
    RoleAssigned,
    RoleHandedOver,
    RoleReleased,
    Note,
    Action,
    /// A person's public progress update (the playbook's INCIDENT UPDATE).
    StatusUpdate,
    ReviewScheduled,
    /// A message gave up on a channel (the reason, and the fallback it went to).
    NotificationFailed,
    /// A runbook run on this incident: requested, awaiting approval, approved, finished (with
    /// its output).
    RunbookRun,
    /// A checklist item of the incident kind's runbook marked done or undone.
    ChecklistStep,
    /// Auto-remediation: a policy started a run, or its circuit breaker opened.
    Remediation,
    /// A review's action item is past its due date and not done: the daily reminder to the
    /// incident's channels (also on a reviewed incident: it changes nothing of the record).
    ActionItemOverdue,
    Resolved,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Opened => "opened",
            EventType::SeverityRaised => "severity_raised",
            EventType::SeverityChanged => "severity_changed",
            EventType::NodesChanged => "nodes_changed",
            EventType::ConditionCleared => "condition_cleared",
            EventType::Recurred => "recurred",
            EventType::PhaseChanged => "phase_changed",
            EventType::Acknowledged => "acknowledged",
            EventType::ResponseTargetBreached => "response_target_breached",
            EventType::Escalated => "escalated",
            EventType::UpdateDue => "update_due",
            EventType::RoleAssigned => "role_assigned",
            EventType::RoleHandedOver => "role_handed_over",
            EventType::RoleReleased => "role_released",
            EventType::Note => "note",
            EventType::Action => "action",
            EventType::StatusUpdate => "status_update",
            EventType::ReviewScheduled => "review_scheduled",
            EventType::NotificationFailed => "notification_failed",
            EventType::RunbookRun => "runbook_run",
            EventType::ChecklistStep => "checklist_step",
            EventType::Remediation => "remediation",
            EventType::ActionItemOverdue => "action_item_overdue",
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
    pub fn new(at: Timestamp, t: EventType, message: String, data: serde_json::Value) -> Self {
        Self {
            at,
            event_type: t.as_str().to_string(),
            message,
            data,
        }
    }

    pub fn is(&self, t: EventType) -> bool {
        self.event_type == t.as_str()
    }
}

/// An incident after a change, with the timeline events that record the change. The store
/// writes it only if the stored incident is still at `incident.version` (and bumps it).
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub incident: Incident,
    pub events: Vec<TimelineEvent>,
}

/// A change the store must apply (each in one transaction with its events).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new incident (its `id` and `version` are assigned by the store), with its events:
    /// `opened` first, then what fired with the opening (the first escalation step).
    Open {
        incident: Incident,
        events: Vec<TimelineEvent>,
    },
    Update(Mutation),
}

impl Change {
    pub fn events(&self) -> &[TimelineEvent] {
        match self {
            Change::Open { events, .. } => events,
            Change::Update(m) => &m.events,
        }
    }
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

    #[test]
    fn kinds_severities_phases_and_roles_round_trip() {
        for k in IncidentKind::ALL {
            assert_eq!(k.as_str().parse::<IncidentKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for p in Status::ALL {
            assert_eq!(p.as_str().parse::<Status>().unwrap(), p);
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        for r in ResponseRole::ALL {
            assert_eq!(r.as_str().parse::<ResponseRole>().unwrap(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!("ic".parse::<ResponseRole>().unwrap(), ResponseRole::IC);
        assert!("XX".parse::<ResponseRole>().is_err());
        assert!(Severity::P1.worse_than(Severity::P2));
        assert_eq!("P3".parse::<Severity>().unwrap(), Severity::P3);
        assert_eq!(human_ms(4200), "4.2 s");
        assert_eq!(human_ms(185_000), "3 min 5 s");
    }
}
