//! Who is paged, when, and what keeps quiet: escalation policies, on-call schedules, update
//! reminders, the stability window and silences (pure data and lookups, no I/O).
//!
//! The playbook's chain reads "On-Call Engineer (5 min) → Team Lead (15 min) → Engineering
//! Manager (30 min) → CTO/VP Engineering (1 hour)". neo-ir reads each time as the moment,
//! counted from when the incident opened, by which that level must have acknowledged: the
//! on-call engineer is paged at once, the team lead at 5 min if nobody acknowledged, the
//! engineering manager at 15 min, the CTO/VP at 30 min (the 1 hour is the CTO's own limit,
//! after which no one further is left to page). Acknowledging stops the chain.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::incident::{Incident, IncidentKind, Severity};

/// How neo-ir runs the response: escalation, schedules, reminders, stability.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseConfig {
    /// How long a cleared condition must stay clear in `monitoring` before the incident is
    /// resolved (playbook phase 4: "watch for 30 minutes").
    pub stability_window: Duration,
    /// How often a person is expected to post an update, per severity (P1..P4); `None`:
    /// no reminders. Playbook: "Next Update: in [15/30/60] minutes".
    pub update_every: [Option<Duration>; 4],
    /// Escalation policies; the first whose `severities` holds an incident's severity applies.
    pub escalation: Vec<EscalationPolicy>,
    pub schedules: Vec<Schedule>,
    /// When the post-incident review of a P1 or P2 incident is scheduled after it resolves
    /// (`[response] review_after`, default 48 h; `None`: "off", people schedule it).
    pub review_after: Option<Duration>,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(m * 60);
        Self {
            stability_window: min(30),
            update_every: [Some(min(15)), Some(min(30)), Some(min(60)), None],
            escalation: vec![EscalationPolicy::playbook()],
            schedules: Vec::new(),
            review_after: Some(Duration::from_secs(48 * 3600)),
        }
    }
}

impl ResponseConfig {
    /// The policy for an incident of `severity`, if any applies.
    pub fn policy_for(&self, severity: Severity) -> Option<&EscalationPolicy> {
        self.escalation
            .iter()
            .find(|p| p.severities.contains(&severity))
    }

    pub fn policy(&self, name: &str) -> Option<&EscalationPolicy> {
        self.escalation.iter().find(|p| p.name == name)
    }

    /// The update interval for `severity`.
    pub fn update_every(&self, severity: Severity) -> Option<Duration> {
        self.update_every[severity as usize]
    }

    /// Who `notify` means at `at`: the person on call when it names a schedule, else the
    /// name itself (a person, a team, a channel).
    pub fn recipient(&self, notify: &str, at: Timestamp) -> String {
        match self.schedules.iter().find(|s| s.name == notify) {
            Some(s) => s.on_call(at).unwrap_or_else(|| notify.to_string()),
            None => notify.to_string(),
        }
    }
}

/// A named escalation chain for some severities.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationPolicy {
    pub name: String,
    pub severities: Vec<Severity>,
    pub steps: Vec<EscalationStep>,
}

impl EscalationPolicy {
    /// The playbook's chain, for every severity.
    pub fn playbook() -> Self {
        let step = |m: u64, who: &str| EscalationStep {
            after: Duration::from_secs(m * 60),
            notify: who.to_string(),
        };
        Self {
            name: "playbook".into(),
            severities: vec![Severity::P1, Severity::P2, Severity::P3, Severity::P4],
            steps: vec![
                step(0, "on-call engineer"),
                step(5, "team lead"),
                step(15, "engineering manager"),
                step(30, "CTO/VP engineering"),
            ],
        }
    }

    /// When step `index` is due for an incident opened at `opened`.
    pub fn due(&self, index: u32, opened: Timestamp) -> Option<Timestamp> {
        let step = self.steps.get(index as usize)?;
        Some(plus(opened, step.after))
    }
}

/// One step of a chain: page `notify` when the incident is still unacknowledged `after` it
/// opened. `notify` is a schedule's name (the person on call then) or a literal recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationStep {
    pub after: Duration,
    pub notify: String,
}

/// A simple on-call rotation: `people` take turns, each for one `rotation` period counted
/// from `start`; an override puts someone else on call for a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    pub rotation: Duration,
    pub start: Timestamp,
    pub people: Vec<String>,
    pub overrides: Vec<Override>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub who: String,
    pub from: Timestamp,
    pub until: Timestamp,
}

impl Schedule {
    /// Who is on call at `at` (the latest-starting override in force wins); `None` before
    /// the rotation starts or without people.
    pub fn on_call(&self, at: Timestamp) -> Option<String> {
        if let Some(o) = self
            .overrides
            .iter()
            .filter(|o| o.from <= at && at < o.until)
            .max_by_key(|o| o.from)
        {
            return Some(o.who.clone());
        }
        if self.people.is_empty() || at < self.start || self.rotation.is_zero() {
            return None;
        }
        let elapsed = crate::clock::millis_between(self.start, at) as u128;
        let turn = elapsed / self.rotation.as_millis();
        Some(self.people[(turn % self.people.len() as u128) as usize].clone())
    }
}

/// A maintenance window or silence: findings that match are recorded as incidents as
/// always, but nobody is paged for them while it lasts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: i64,
    /// The node it covers; `None`: every node.
    pub node: Option<String>,
    /// The incident kind it covers; `None`: every kind.
    pub kind: Option<IncidentKind>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub reason: String,
    pub created_by: String,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
}

impl Silence {
    /// Does this silence cover `incident` at `at`? A node silence covers an incident when
    /// every node of the incident is that node (a silenced node does not mute a fleet-wide
    /// incident that also involves others).
    pub fn covers(&self, incident: &Incident, at: Timestamp) -> bool {
        if at < self.starts_at || at >= self.ends_at {
            return false;
        }
        if self.kind.is_some_and(|k| k != incident.kind) {
            return false;
        }
        match &self.node {
            None => true,
            Some(node) => !incident.nodes.is_empty() && incident.nodes.iter().all(|n| n == node),
        }
    }
}

/// Longest silence: a maintenance window longer than this is a configuration change.
pub const MAX_SILENCE: Duration = Duration::from_secs(30 * 86_400);

/// Check a silence to be created at `now`: it names a node or a kind (or both), has a
/// reason, ends after it starts and after `now`, and lasts at most [`MAX_SILENCE`].
pub fn check_silence(
    node: Option<&str>,
    kind: Option<IncidentKind>,
    starts_at: Timestamp,
    ends_at: Timestamp,
    reason: &str,
    now: Timestamp,
) -> Result<(), String> {
    if node.is_none() && kind.is_none() {
        return Err("a silence names a node, an incident kind, or both".into());
    }
    if node.is_some_and(|n| n.trim().is_empty() || n.len() > 200) {
        return Err("a node name is 1 to 200 characters".into());
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err("a silence needs a reason of 1 to 500 characters".into());
    }
    if ends_at <= starts_at || ends_at <= now {
        return Err("a silence ends after it starts, and in the future".into());
    }
    if crate::clock::millis_between(starts_at, ends_at) > MAX_SILENCE.as_millis() as u64 {
        return Err("a silence lasts at most 30 days".into());
    }
    Ok(())
}

/// `t + d`, saturating at the far future.
pub fn plus(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn weekly_rotation_with_an_override() {
        let s = Schedule {
            name: "primary".into(),
            rotation: Duration::from_secs(7 * 86_400),
            start: t("2026-11-02T09:00:00Z"),
            people: vec!["alice".into(), "bob".into(), "carol".into()],
            overrides: vec![Override {
                who: "dave".into(),
                from: t("2026-11-20T00:00:00Z"),
                until: t("2026-11-21T00:00:00Z"),
            }],
        };
        assert_eq!(
            s.on_call(t("2026-11-01T00:00:00Z")),
            None,
            "before the start"
        );
        assert_eq!(s.on_call(t("2026-11-02T09:00:00Z")).unwrap(), "alice");
        assert_eq!(s.on_call(t("2026-11-09T08:59:59Z")).unwrap(), "alice");
        assert_eq!(s.on_call(t("2026-11-09T09:00:00Z")).unwrap(), "bob");
        assert_eq!(s.on_call(t("2026-11-20T12:00:00Z")).unwrap(), "dave");
        assert_eq!(s.on_call(t("2026-11-21T00:00:00Z")).unwrap(), "carol");
        assert_eq!(
            s.on_call(t("2026-11-23T09:00:00Z")).unwrap(),
            "alice",
            "wraps"
        );
        let cfg = ResponseConfig {
            schedules: vec![s],
            ..Default::default()
        };
        assert_eq!(cfg.recipient("primary", t("2026-11-10T00:00:00Z")), "bob");
        assert_eq!(
            cfg.recipient("team lead", t("2026-11-10T00:00:00Z")),
            "team lead"
        );
    }

    #[test]
    fn the_playbook_chain_by_default() {
        let cfg = ResponseConfig::default();
        let p = cfg.policy_for(Severity::P1).unwrap();
        let opened = t("2026-01-01T00:00:00Z");
        assert_eq!(p.due(0, opened), Some(opened));
        assert_eq!(p.due(1, opened), Some(t("2026-01-01T00:05:00Z")));
        assert_eq!(p.due(3, opened), Some(t("2026-01-01T00:30:00Z")));
        assert_eq!(p.due(4, opened), None);
        assert_eq!(
            cfg.update_every(Severity::P2),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(cfg.update_every(Severity::P4), None);
    }
}
