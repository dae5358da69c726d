//! What the engine does to incidents each round, as pure functions of the open incidents,
//! the round's findings, the time and the response configuration.
//!
//! - A finding whose cause has no open incident opens one in `detected`, with its deadlines:
//!   acknowledgement (the severity's response target) and the escalation policy's first step.
//! - A finding for an open incident updates it: a severity worse than any the detector
//!   reported before raises it (never lowered automatically: only people lower), a changed
//!   node set is recorded, the latest evidence replaces the old. If the condition had
//!   cleared, that is a recurrence: the same incident goes back from `monitoring`.
//! - An open incident whose condition is positively seen clear (no finding, not undecided)
//!   moves to `monitoring`; it is resolved only after the stability window passes without
//!   recurrence.
//! - Deadlines fire: a missed response target, escalation steps while nobody acknowledged
//!   (recorded but not paged while a silence covers the incident), reminders to post an
//!   update, the end of the stability window.
//!
//! Every change is a [`Mutation`] of one incident version; the store writes it only if the
//! incident is still at that version, so a deadline fires once even with several writers.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::json;

use crate::clock::millis_between;
use crate::incident::{
    human_ms, Assessment, Change, EventType, Finding, Incident, Mutation, Severity, Status,
    TimelineEvent,
};
use crate::oncall::{plus, ResponseConfig, Silence};

/// A new incident for `finding`, opened at `now` in `detected`, with its deadlines.
pub fn open(finding: &Finding, now: Timestamp, cfg: &ResponseConfig) -> Incident {
    let mut incident = Incident {
        id: 0,
        version: 0,
        key: finding.key.clone(),
        kind: finding.kind,
        severity: finding.severity,
        status: Status::Detected,
        nodes: finding.nodes.clone(),
        summary: finding.summary.clone(),
        evidence: finding.evidence.clone(),
        opened_at: now,
        resolved_at: None,
        updated_at: now,
        detected_severity: finding.severity,
        cleared_at: None,
        roles: BTreeMap::new(),
        ack_due_at: None,
        acked_at: None,
        acked_by: None,
        ack_breached_at: None,
        escalation_policy: None,
        escalation_step: 0,
        escalation_due_at: None,
        last_update_at: None,
        update_due_at: None,
    };
    set_severity(&mut incident, finding.severity, cfg);
    incident
}

/// Set the severity. Before anyone acknowledged, the response target and the escalation
/// policy follow it: the acknowledgement is due at opened + the new target, and the policy
/// for the new severity takes over at the same step (a P3 raised to P1 escalates on P1's
/// times from then on).
pub fn set_severity(incident: &mut Incident, severity: Severity, cfg: &ResponseConfig) {
    incident.severity = severity;
    if !incident.is_open() {
        return;
    }
    if incident.acked_at.is_some() {
        // the update cadence is the new severity's: derived again by `due`
        incident.update_due_at = None;
        return;
    }
    incident.ack_due_at = Some(plus(incident.opened_at, severity.response_target()));
    match cfg.policy_for(severity) {
        Some(policy) => {
            incident.escalation_policy = Some(policy.name.clone());
            incident.escalation_due_at = policy.due(incident.escalation_step, incident.opened_at);
        }
        None => {
            incident.escalation_policy = None;
            incident.escalation_due_at = None;
        }
    }
}

/// Close an incident at `now`: nothing is due any more.
pub fn close(incident: &mut Incident, status: Status, now: Timestamp) {
    incident.status = status;
    incident.resolved_at = Some(now);
    incident.escalation_due_at = None;
    incident.update_due_at = None;
}

/// Compare what is true now with the open incidents, fire what is due, and say what must
/// change: one `Change` per incident at most.
pub fn reconcile(
    open: &[Incident],
    assessment: &Assessment,
    now: Timestamp,
    cfg: &ResponseConfig,
    silences: &[Silence],
) -> Vec<Change> {
    let mut changes = Vec::new();
    let by_key: BTreeMap<&str, &Incident> = open
        .iter()
        .filter(|i| i.is_open())
        .map(|i| (i.key.as_str(), i))
        .collect();
    let mut firing = BTreeSet::new();
    let mut touched: BTreeMap<i64, Mutation> = BTreeMap::new();

    for f in &assessment.findings {
        if !firing.insert(f.key.as_str()) {
            continue; // one finding per cause per round
        }
        match by_key.get(f.key.as_str()) {
            None => {
                let incident = open_incident_and_due(f, now, cfg, silences);
                changes.push(incident);
            }
            Some(inc) => {
                if let Some(m) = still_firing(inc, f, now, cfg) {
                    touched.insert(inc.id, m);
                }
            }
        }
    }

    for inc in by_key.values() {
        if firing.contains(inc.key.as_str())
            || assessment.undecided.contains(&inc.key)
            || inc.is_declared()
            || inc.cleared_at.is_some()
        {
            continue;
        }
        touched.insert(inc.id, cleared(inc, now, cfg));
    }

    for inc in by_key.values() {
        let mut m = touched.remove(&inc.id).unwrap_or_else(|| Mutation {
            incident: (*inc).clone(),
            events: Vec::new(),
        });
        let before = m.incident.clone();
        let due = due(&mut m.incident, now, cfg, silences);
        m.events.extend(due);
        if m.incident != **inc || !m.events.is_empty() {
            if !m.events.is_empty() || m.incident != before {
                m.incident.updated_at = now;
            }
            changes.push(Change::Update(m));
        }
    }
    changes
}

/// Open an incident for `f`, and fire at once what is due at opening (an escalation step
/// at 0 min: the on-call engineer is paged with the opening).
fn open_incident_and_due(
    f: &Finding,
    now: Timestamp,
    cfg: &ResponseConfig,
    silences: &[Silence],
) -> Change {
    let mut incident = open(f, now, cfg);
    let opened = TimelineEvent::new(
        now,
        EventType::Opened,
        format!("{} {}: {}", f.severity, f.kind, f.summary),
        json!({
            "severity": f.severity,
            "nodes": f.nodes,
            "evidence": f.evidence,
        }),
    );
    // the first page goes out with the opening, written in the same transaction
    let mut events = vec![opened];
    events.extend(due(&mut incident, now, cfg, silences));
    Change::Open { incident, events }
}

/// An open incident whose finding fires this round.
fn still_firing(
    inc: &Incident,
    f: &Finding,
    now: Timestamp,
    cfg: &ResponseConfig,
) -> Option<Mutation> {
    let mut next = inc.clone();
    let mut events = Vec::new();
    if f.severity.worse_than(inc.detected_severity) {
        next.detected_severity = f.severity;
        if f.severity.worse_than(inc.severity) {
            events.push(TimelineEvent::new(
                now,
                EventType::SeverityRaised,
                format!(
                    "severity raised {} → {}: {}",
                    inc.severity, f.severity, f.summary
                ),
                json!({"from": inc.severity, "to": f.severity, "evidence": f.evidence}),
            ));
            set_severity(&mut next, f.severity, cfg);
        }
    }
    if f.nodes != inc.nodes {
        events.push(TimelineEvent::new(
            now,
            EventType::NodesChanged,
            format!("nodes now {}", f.nodes.join(", ")),
            json!({"from": inc.nodes, "to": f.nodes}),
        ));
    }
    if let Some(cleared) = inc.cleared_at {
        next.cleared_at = None;
        let back = if inc.status == Status::Monitoring {
            // people who acknowledged are on it: back to investigating; else it is as new
            let to = if inc.acked_at.is_some() {
                Status::Investigating
            } else {
                Status::Detected
            };
            next.status = to;
            format!("; back to {to}")
        } else {
            String::new()
        };
        events.push(TimelineEvent::new(
            now,
            EventType::Recurred,
            format!(
                "condition back after {} clear{back}: {}",
                human_ms(millis_between(cleared, now)),
                f.summary
            ),
            json!({
                "clear_ms": millis_between(cleared, now),
                "from_phase": inc.status,
                "to_phase": next.status,
                "evidence": f.evidence,
            }),
        ));
    }
    next.nodes = f.nodes.clone();
    next.summary = f.summary.clone();
    next.evidence = f.evidence.clone();
    (next != *inc || !events.is_empty()).then_some(Mutation {
        incident: next,
        events,
    })
}

/// An open incident whose condition is seen clear for the first time.
fn cleared(inc: &Incident, now: Timestamp, cfg: &ResponseConfig) -> Mutation {
    let mut next = inc.clone();
    next.cleared_at = Some(now);
    let moves = matches!(
        inc.status,
        Status::Detected | Status::Triage | Status::Investigating | Status::Mitigating
    );
    if moves {
        next.status = Status::Monitoring;
    }
    let watch = if next.status == Status::Monitoring {
        format!(
            "; monitoring for {} before resolving",
            human_ms(cfg.stability_window.as_millis() as u64)
        )
    } else {
        format!("; stays in {} (a person moved it there)", next.status)
    };
    let event = TimelineEvent::new(
        now,
        EventType::ConditionCleared,
        format!(
            "condition cleared after {}{watch}",
            human_ms(millis_between(inc.opened_at, now))
        ),
        json!({
            "after_ms": millis_between(inc.opened_at, now),
            "from_phase": inc.status,
            "to_phase": next.status,
            "stable_at": plus(now, cfg.stability_window),
            "last_evidence": inc.evidence,
        }),
    );
    Mutation {
        incident: next,
        events: vec![event],
    }
}

/// Fire what is due on `incident` at `now`; returns the events (empty: nothing was due).
pub fn due(
    incident: &mut Incident,
    now: Timestamp,
    cfg: &ResponseConfig,
    silences: &[Silence],
) -> Vec<TimelineEvent> {
    let mut events = Vec::new();
    if !incident.is_open() {
        return events;
    }
    derive(incident, cfg);
    if incident.acked_at.is_none()
        && incident.ack_breached_at.is_none()
        && incident.ack_due_at.is_some_and(|d| d <= now)
    {
        incident.ack_breached_at = Some(now);
        events.push(breach_event(incident, now));
    }
    // No pages for steps that come due while the condition is clear (a blip that healed
    // itself wakes nobody more); a recurrence pages on at once with whatever became due
    // meanwhile. A step that came due while it still fired fires even if the round that
    // sees it is the one that sees the clear (neo-ir itself was down in between): never lost.
    while incident.acked_at.is_none() {
        let Some(due_at) = incident
            .escalation_due_at
            .filter(|d| *d <= now && incident.cleared_at.is_none_or(|c| *d < c))
        else {
            break;
        };
        let Some(policy) = incident
            .escalation_policy
            .as_deref()
            .and_then(|name| cfg.policy(name))
        else {
            incident.escalation_due_at = None; // `derive` keeps the policy configured
            break;
        };
        let index = incident.escalation_step;
        let Some(step) = policy.steps.get(index as usize) else {
            incident.escalation_due_at = None;
            break;
        };
        let recipient = cfg.recipient(&step.notify, now);
        let silence = silences.iter().find(|s| s.covers(incident, now));
        // "alice (primary)" when a schedule named the person, else just the recipient
        let whom = if recipient == step.notify {
            recipient.clone()
        } else {
            format!("{recipient} ({})", step.notify)
        };
        let message = match silence {
            None => format!(
                "escalation step {} of {}: paging {whom}, unacknowledged after {}",
                index + 1,
                policy.steps.len(),
                human_ms(millis_between(incident.opened_at, due_at))
            ),
            Some(s) => format!(
                "escalation step {} of {}: {whom} not paged, silenced by #{} until {} ({})",
                index + 1,
                policy.steps.len(),
                s.id,
                s.ends_at,
                s.reason
            ),
        };
        events.push(TimelineEvent::new(
            now,
            EventType::Escalated,
            message,
            json!({
                "policy": policy.name,
                "step": index + 1,
                "of": policy.steps.len(),
                "notify": step.notify,
                "recipient": recipient,
                "due_at": due_at,
                "paged": silence.is_none(),
                "silence": silence.map(|s| s.id),
            }),
        ));
        incident.escalation_step = index + 1;
        incident.escalation_due_at = policy.due(index + 1, incident.opened_at);
    }
    if let Some(due_at) = incident.update_due_at.filter(|d| *d <= now) {
        let every = cfg.update_every(incident.severity);
        events.push(TimelineEvent::new(
            now,
            EventType::UpdateDue,
            format!(
                "no update since {}: post one ({} incidents are updated every {})",
                // the last person's update is recorded: no need to work it back from the due
                // time (which, after the first reminder, is no longer one interval after it)
                human_ms(millis_between(
                    incident.last_update_at.unwrap_or(due_at),
                    now
                )),
                incident.severity,
                every.map_or("—".into(), |e| human_ms(e.as_millis() as u64)),
            ),
            json!({"due_at": due_at, "every_ms": every.map(|e| e.as_millis() as u64)}),
        ));
        // the next reminder one interval on, past `now` (after a long outage of neo-ir
        // itself: one reminder, not one per missed interval)
        incident.update_due_at = every.map(|e| {
            let mut next = plus(due_at, e);
            while next <= now {
                next = plus(next, e);
            }
            next
        });
    }
    if incident.status == Status::Monitoring {
        if let Some(cleared) = incident.cleared_at {
            let stable_at = plus(cleared, cfg.stability_window);
            if stable_at <= now {
                let lasted = millis_between(incident.opened_at, now);
                close(incident, Status::Resolved, now);
                events.push(TimelineEvent::new(
                    now,
                    EventType::Resolved,
                    format!(
                        "stable for {} since the condition cleared: resolved after {}: {}",
                        human_ms(millis_between(cleared, now)),
                        human_ms(lasted),
                        incident.summary
                    ),
                    json!({
                        "duration_ms": lasted,
                        "stable_ms": millis_between(cleared, now),
                        "last_evidence": incident.evidence,
                    }),
                ));
                // P1 and P2 are reviewed: the review's date goes with the resolution
                let review =
                    crate::respond::review_on_resolve(incident, None, now, cfg.review_after);
                if let (Some(rev), Some(resolved)) = (&review, events.last_mut()) {
                    resolved.data["review_at"] = rev.data["at"].clone();
                }
                events.extend(review);
            }
        }
    }
    events
}

/// Make the deadlines that depend on the configuration agree with the engine's: the
/// escalation policy for the incident's severity (a person's CLI may have run without the
/// configuration, or the configuration changed), and the next update reminder one interval
/// after the last person's update.
fn derive(incident: &mut Incident, cfg: &ResponseConfig) {
    if incident.acked_at.is_none() {
        let want = cfg.policy_for(incident.severity);
        if incident.escalation_policy.as_deref() != want.map(|p| p.name.as_str()) {
            incident.escalation_policy = want.map(|p| p.name.clone());
            incident.escalation_due_at =
                want.and_then(|p| p.due(incident.escalation_step, incident.opened_at));
        }
    } else if incident.update_due_at.is_none() {
        incident.update_due_at = incident
            .last_update_at
            .zip(cfg.update_every(incident.severity))
            .map(|(last, every)| plus(last, every));
    }
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
        json!({
            "severity": incident.severity,
            "target_ms": target.as_millis() as u64,
            "due_at": incident.ack_due_at,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::incident::IncidentKind;
    use std::time::Duration;

    pub(crate) fn finding(key: &str, sev: Severity, nodes: &[&str]) -> Finding {
        Finding {
            key: key.into(),
            kind: IncidentKind::NodeDown,
            severity: sev,
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            summary: format!("{key} fired"),
            evidence: json!({"n": 1}),
        }
    }

    /// A store in memory: applies changes as the real one does (version check, ids).
    #[derive(Default)]
    pub(crate) struct Book {
        pub incidents: Vec<Incident>,
        pub events: BTreeMap<i64, Vec<TimelineEvent>>,
    }

    impl Book {
        pub fn apply(&mut self, changes: Vec<Change>) {
            for c in changes {
                match c {
                    Change::Open {
                        mut incident,
                        events,
                    } => {
                        incident.id = self.incidents.len() as i64 + 1;
                        self.events.entry(incident.id).or_default().extend(events);
                        self.incidents.push(incident);
                    }
                    Change::Update(m) => self.write(m).expect("no concurrent writer"),
                }
            }
        }

        pub fn write(&mut self, mut m: Mutation) -> Result<(), &'static str> {
            let slot = &mut self.incidents[m.incident.id as usize - 1];
            if slot.version != m.incident.version {
                return Err("conflict");
            }
            m.incident.version += 1;
            *slot = m.incident.clone();
            self.events.entry(slot.id).or_default().extend(m.events);
            Ok(())
        }

        pub fn round(&mut self, a: &Assessment, now: Timestamp, cfg: &ResponseConfig) {
            let changes = reconcile(&self.incidents, a, now, cfg, &[]);
            self.apply(changes);
        }

        pub fn types(&self, id: i64) -> Vec<String> {
            self.events[&id]
                .iter()
                .map(|e| e.event_type.clone())
                .collect()
        }
    }

    fn fires(findings: Vec<Finding>) -> Assessment {
        Assessment {
            findings,
            ..Default::default()
        }
    }

    fn quiet() -> ResponseConfig {
        ResponseConfig {
            escalation: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn one_cause_is_one_incident_however_many_rounds() {
        let clock = ManualClock::at_epoch_2026();
        let mut book = Book::default();
        let a = fires(vec![finding("node_down:rpc-1", Severity::P2, &["rpc-1"])]);
        for _ in 0..10 {
            book.round(&a, clock.now(), &quiet());
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(book.incidents.len(), 1);
        assert_eq!(
            book.types(1),
            ["opened"],
            "no event for an unchanged finding"
        );
    }

    #[test]
    fn severity_is_raised_automatically_never_lowered() {
        let clock = ManualClock::at_epoch_2026();
        let mut book = Book::default();
        let mut a = fires(vec![finding("k", Severity::P2, &["a"])]);
        book.round(&a, clock.now(), &quiet());
        assert_eq!(
            book.incidents[0].ack_due_at,
            Some(plus(clock.now(), Duration::from_secs(1800)))
        );
        a.findings[0].severity = Severity::P1;
        book.round(&a, clock.now(), &quiet());
        assert_eq!(book.incidents[0].severity, Severity::P1);
        assert_eq!(
            book.incidents[0].ack_due_at,
            Some(plus(clock.now(), Duration::from_secs(900))),
            "the response target follows the raise"
        );
        a.findings[0].severity = Severity::P3;
        book.round(&a, clock.now(), &quiet());
        assert_eq!(book.incidents[0].severity, Severity::P1);
        assert_eq!(book.types(1), ["opened", "severity_raised"]);
    }

    #[test]
    fn a_person_lowering_is_not_undone_by_the_same_finding() {
        let clock = ManualClock::at_epoch_2026();
        let mut book = Book::default();
        let mut a = fires(vec![finding("k", Severity::P2, &["a"])]);
        book.round(&a, clock.now(), &quiet());
        let mut lowered = book.incidents[0].clone();
        set_severity(&mut lowered, Severity::P4, &quiet());
        book.write(Mutation {
            incident: lowered,
            events: vec![],
        })
        .unwrap();
        book.round(&a, clock.now(), &quiet());
        assert_eq!(
            book.incidents[0].severity,
            Severity::P4,
            "P2 again: no raise"
        );
        a.findings[0].severity = Severity::P1;
        book.round(&a, clock.now(), &quiet());
        assert_eq!(
            book.incidents[0].severity,
            Severity::P1,
            "worse than seen: raised"
        );
    }

    #[test]
    fn cleared_then_monitoring_then_resolved_after_the_stability_window() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = quiet();
        let mut book = Book::default();
        let a = fires(vec![finding(
            "sync_failure:rpc-2",
            Severity::P2,
            &["rpc-2"],
        )]);
        book.round(&a, clock.now(), &cfg);
        // undecided: nothing moves
        let undecided = Assessment {
            findings: vec![],
            undecided: ["sync_failure:rpc-2".to_string()].into(),
        };
        clock.advance(Duration::from_secs(5));
        book.round(&undecided, clock.now(), &cfg);
        assert_eq!(book.incidents[0].status, Status::Detected);
        clock.advance(Duration::from_secs(5));
        book.round(&Assessment::default(), clock.now(), &cfg);
        assert_eq!(book.incidents[0].status, Status::Monitoring);
        assert_eq!(book.incidents[0].cleared_at, Some(clock.now()));
        // 29 min 59 s later: still monitoring
        clock.advance(Duration::from_secs(30 * 60 - 1));
        book.round(&Assessment::default(), clock.now(), &cfg);
        assert_eq!(book.incidents[0].status, Status::Monitoring);
        clock.advance(Duration::from_secs(1));
        book.round(&Assessment::default(), clock.now(), &cfg);
        let inc = &book.incidents[0];
        assert_eq!(inc.status, Status::Resolved);
        assert_eq!(inc.resolved_at, Some(clock.now()));
        assert_eq!(
            book.types(1),
            [
                "opened",
                "condition_cleared",
                "response_target_breached",
                "resolved",
                "review_scheduled"
            ],
            "nobody acknowledged within P2's 30 min: recorded even though it healed"
        );
        let resolved = &book.events[&1][3];
        assert_eq!(resolved.data["stable_ms"], 1_800_000);
        assert_eq!(resolved.data["duration_ms"], 1_810_000);
        // after resolution the same cause opens a new incident
        book.round(&a, clock.now(), &cfg);
        assert_eq!(book.incidents.len(), 2);
    }

    #[test]
    fn p1_and_p2_get_their_review_scheduled_when_the_engine_resolves_them() {
        let run = |severity: Severity, cfg: &ResponseConfig| {
            let clock = ManualClock::at_epoch_2026();
            let mut book = Book::default();
            let a = fires(vec![finding("k", severity, &["a"])]);
            book.round(&a, clock.now(), cfg);
            clock.advance(Duration::from_secs(60));
            book.round(&Assessment::default(), clock.now(), cfg);
            clock.advance(cfg.stability_window);
            book.round(&Assessment::default(), clock.now(), cfg);
            assert_eq!(book.incidents[0].status, Status::Resolved);
            (clock.now(), book.events[&1].clone())
        };
        for severity in [Severity::P1, Severity::P2] {
            let (now, events) = run(severity, &quiet());
            let review = events.last().unwrap();
            assert_eq!(review.event_type, "review_scheduled", "{severity}");
            assert_eq!(review.at, now);
            let at = plus(now, Duration::from_secs(48 * 3600));
            assert_eq!(review.data["at"], json!(at));
            assert_eq!(review.data["automatic"], true);
            let resolved = &events[events.len() - 2];
            assert_eq!(resolved.event_type, "resolved");
            assert_eq!(
                resolved.data["review_at"],
                json!(at),
                "the notice carries it"
            );
        }
        let (_, events) = run(Severity::P3, &quiet());
        assert_eq!(
            events.last().unwrap().event_type,
            "resolved",
            "P3: people decide"
        );
        assert!(events.last().unwrap().data.get("review_at").is_none());
        let off = ResponseConfig {
            review_after: None,
            ..quiet()
        };
        let (_, events) = run(Severity::P1, &off);
        assert_eq!(events.last().unwrap().event_type, "resolved", "off");
        let soon = ResponseConfig {
            review_after: Some(Duration::from_secs(3600)),
            ..quiet()
        };
        let (now, events) = run(Severity::P2, &soon);
        assert_eq!(
            events.last().unwrap().data["at"],
            json!(plus(now, Duration::from_secs(3600)))
        );
    }

    #[test]
    fn recurrence_during_monitoring_reopens_the_same_incident() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = quiet();
        let mut book = Book::default();
        let a = fires(vec![finding("node_down:a", Severity::P1, &["a"])]);
        book.round(&a, clock.now(), &cfg);
        clock.advance(Duration::from_secs(60));
        book.round(&Assessment::default(), clock.now(), &cfg);
        clock.advance(Duration::from_secs(600));
        book.round(&a, clock.now(), &cfg);
        assert_eq!(book.incidents.len(), 1, "the same incident");
        assert_eq!(book.incidents[0].status, Status::Detected, "nobody acked");
        assert_eq!(book.incidents[0].cleared_at, None);
        let recurred = book.events[&1].last().unwrap();
        assert_eq!(recurred.event_type, "recurred");
        assert_eq!(recurred.data["clear_ms"], 600_000);
        // the stability window starts again at the next clear
        clock.advance(Duration::from_secs(60));
        book.round(&Assessment::default(), clock.now(), &cfg);
        clock.advance(Duration::from_secs(25 * 60));
        book.round(&Assessment::default(), clock.now(), &cfg);
        assert_eq!(book.incidents[0].status, Status::Monitoring);
        clock.advance(Duration::from_secs(5 * 60));
        book.round(&Assessment::default(), clock.now(), &cfg);
        assert_eq!(book.incidents[0].status, Status::Resolved);
    }

    #[test]
    fn escalation_steps_fire_on_time_once_each_and_stop_on_ack() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = ResponseConfig::default();
        let mut book = Book::default();
        let a = fires(vec![finding("node_down:a", Severity::P1, &["a"])]);
        book.round(&a, clock.now(), &cfg);
        assert_eq!(
            book.types(1),
            ["opened", "escalated"],
            "on-call paged at once"
        );
        assert_eq!(book.events[&1][1].data["recipient"], "on-call engineer");
        assert_eq!(book.incidents[0].escalation_step, 1);
        // every second for 20 minutes: team lead at 5 min, manager at 15, breach at 15
        for _ in 0..1200 {
            clock.advance(Duration::from_secs(1));
            book.round(&a, clock.now(), &cfg);
        }
        let escalations: Vec<_> = book.events[&1]
            .iter()
            .filter(|e| e.is(EventType::Escalated))
            .map(|e| (e.data["recipient"].clone(), e.at))
            .collect();
        let t0 = book.incidents[0].opened_at;
        assert_eq!(
            escalations,
            [
                (json!("on-call engineer"), t0),
                (json!("team lead"), plus(t0, Duration::from_secs(300))),
                (
                    json!("engineering manager"),
                    plus(t0, Duration::from_secs(900))
                ),
            ]
        );
        assert_eq!(
            book.types(1)
                .iter()
                .filter(|t| *t == "response_target_breached")
                .count(),
            1
        );
        // acknowledged: the CTO step at 30 min never fires
        let mut acked = book.incidents[0].clone();
        acked.acked_at = Some(clock.now());
        acked.escalation_due_at = None;
        book.write(Mutation {
            incident: acked,
            events: vec![],
        })
        .unwrap();
        clock.advance(Duration::from_secs(3600));
        book.round(&a, clock.now(), &cfg);
        assert_eq!(
            book.types(1).iter().filter(|t| *t == "escalated").count(),
            3
        );
    }

    #[test]
    fn overdue_steps_fire_at_the_first_round_after_an_outage_once() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = ResponseConfig::default();
        let mut book = Book::default();
        let a = fires(vec![finding("node_down:a", Severity::P2, &["a"])]);
        book.round(&a, clock.now(), &cfg);
        // neo-ir was down for 40 minutes
        clock.advance(Duration::from_secs(40 * 60));
        let changes = reconcile(&book.incidents, &a, clock.now(), &cfg, &[]);
        // a second writer computed from the same version: only one write lands
        let twin = changes.clone();
        book.apply(changes);
        for c in twin {
            let Change::Update(m) = c else { panic!() };
            assert!(
                book.write(m).is_err(),
                "the second write of a deadline is refused"
            );
        }
        let types = book.types(1);
        assert_eq!(types.iter().filter(|t| *t == "escalated").count(), 4);
        assert_eq!(
            types
                .iter()
                .filter(|t| *t == "response_target_breached")
                .count(),
            1
        );
        assert_eq!(book.incidents[0].escalation_due_at, None, "chain exhausted");
    }

    #[test]
    fn a_silence_records_the_step_but_pages_nobody() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = ResponseConfig::default();
        let silence = Silence {
            id: 7,
            node: Some("a".into()),
            kind: None,
            starts_at: clock.now(),
            ends_at: plus(clock.now(), Duration::from_secs(3600)),
            reason: "disk swap".into(),
            created_by: "ops".into(),
            created_at: None,
        };
        let a = fires(vec![finding("node_down:a", Severity::P1, &["a"])]);
        let changes = reconcile(&[], &a, clock.now(), &cfg, std::slice::from_ref(&silence));
        let Change::Open { events, .. } = &changes[0] else {
            panic!()
        };
        assert_eq!(events[1].data["paged"], false);
        assert_eq!(events[1].data["silence"], 7);
        // another node is not covered
        let b = fires(vec![finding("node_down:b", Severity::P1, &["a", "b"])]);
        let changes = reconcile(&[], &b, clock.now(), &cfg, &[silence]);
        let Change::Open { events, .. } = &changes[0] else {
            panic!()
        };
        assert_eq!(events[1].data["paged"], true);
    }

    #[test]
    fn update_reminders_once_per_interval() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = quiet();
        let mut book = Book::default();
        let a = fires(vec![finding("k", Severity::P1, &["a"])]);
        book.round(&a, clock.now(), &cfg);
        let mut acked = book.incidents[0].clone();
        acked.acked_at = Some(clock.now());
        acked.last_update_at = Some(clock.now());
        book.write(Mutation {
            incident: acked,
            events: vec![],
        })
        .unwrap();
        for _ in 0..(46 * 60) {
            clock.advance(Duration::from_secs(1));
            book.round(&a, clock.now(), &cfg);
        }
        let reminders: Vec<_> = book.events[&1]
            .iter()
            .filter(|e| e.is(EventType::UpdateDue))
            .map(|e| millis_between(book.incidents[0].opened_at, e.at) / 1000)
            .collect();
        assert_eq!(reminders, [900, 1800, 2700]);
    }

    #[test]
    fn the_engine_derives_cadence_and_policy_from_its_own_configuration() {
        // a person acknowledged and raised the severity from a CLI without the
        // configuration: the policy and the update interval are the engine's
        let clock = ManualClock::at_epoch_2026();
        let engine = ResponseConfig {
            update_every: [Some(Duration::from_secs(60)); 4],
            escalation: vec![crate::oncall::EscalationPolicy {
                name: "ops".into(),
                severities: vec![Severity::P1, Severity::P2],
                steps: vec![crate::oncall::EscalationStep {
                    after: Duration::from_secs(120),
                    notify: "ops".into(),
                }],
            }],
            ..Default::default()
        };
        let mut book = Book::default();
        let a = fires(vec![finding("k", Severity::P2, &["a"])]);
        book.round(&a, clock.now(), &engine);
        let mut foreign = book.incidents[0].clone();
        foreign.escalation_policy = Some("playbook".into());
        foreign.escalation_due_at = None;
        book.write(Mutation {
            incident: foreign,
            events: vec![],
        })
        .unwrap();
        book.round(&a, clock.now(), &engine);
        let i = &book.incidents[0];
        assert_eq!(i.escalation_policy.as_deref(), Some("ops"));
        assert_eq!(
            i.escalation_due_at,
            Some(plus(i.opened_at, Duration::from_secs(120)))
        );

        let mut acked = book.incidents[0].clone();
        acked.acked_at = Some(clock.now());
        acked.last_update_at = Some(clock.now());
        book.write(Mutation {
            incident: acked,
            events: vec![],
        })
        .unwrap();
        book.round(&a, clock.now(), &engine);
        assert_eq!(
            book.incidents[0].update_due_at,
            Some(plus(clock.now(), Duration::from_secs(60))),
            "one interval of the engine's after the last update"
        );
    }
}
