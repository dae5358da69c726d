//! What people do to incidents, as pure functions: declare, acknowledge, move between
//! phases, change the severity with a reason, take and hand over roles, add notes and
//! record actions. Each returns the incident's next version with the events that record
//! who did it, from where and why, or a [`Refusal`] saying why not.
//!
//! Phase moves people may make:
//!
//! | from | to |
//! |---|---|
//! | any open phase | `triage`, `investigating`, `mitigating`, `monitoring`, `resolved` |
//! | `resolved` | `reviewed` (the post-incident review is done) |
//!
//! Nothing returns to `detected` (where every incident starts), a resolved incident does not
//! reopen (a recurrence after resolution is a new incident), `reviewed` is final. Moving an
//! unacknowledged incident acknowledges it: whoever works on it stops the pages.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

use crate::clock::millis_between;
use crate::incident::{
    human_ms, Actor, Change, EventType, Finding, Incident, IncidentKind, Mutation, ResponseRole,
    Severity, Status, TimelineEvent, DECLARED_PREFIX,
};
use crate::lifecycle::{close, set_severity};
use crate::oncall::{ResponseConfig, Silence};

/// Why a person's action was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request itself is malformed (an empty note, an unknown role): HTTP 400.
    #[error("{0}")]
    Invalid(String),
    /// Not possible in the incident's current state (resolving a reviewed one): HTTP 409.
    #[error("{0}")]
    Conflict(String),
    /// It is already so (acknowledged twice, the same holder): nothing to write.
    #[error("{0}")]
    Unchanged(String),
}

/// Longest summary of a declared incident, in characters.
pub const MAX_SUMMARY: usize = 500;
/// Longest note or action, in characters.
pub const MAX_NOTE: usize = 4000;
/// Longest reason for a phase or severity change, in characters.
pub const MAX_REASON: usize = 500;
/// Longest name of a person holding a role.
pub const MAX_NAME: usize = 100;

fn text(what: &str, s: &str, max: usize) -> Result<String, Refusal> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > max {
        return Err(Refusal::Invalid(format!(
            "{what} must be 1 to {max} characters"
        )));
    }
    Ok(s.to_string())
}

/// Refuse a change to a reviewed incident, whose record is final: `what` says what is part
/// of that record ("roles are", "its timeline is").
pub fn refuse_if_reviewed(incident: &Incident, what: &str) -> Result<(), Refusal> {
    if incident.status == Status::Reviewed {
        return Err(Refusal::Conflict(format!(
            "incident {} is reviewed: {what} part of the record now",
            incident.id
        )));
    }
    Ok(())
}

/// What a person declares (playbook phase 1: a user report).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Declaration {
    pub kind: IncidentKind,
    pub severity: Severity,
    pub summary: String,
    pub nodes: Vec<String>,
}

/// A person's declaration of an incident, as the change that opens it. The key is unique
/// per declaration (the time and a per-process sequence), so two declarations are two
/// incidents.
pub fn declare(
    d: &Declaration,
    actor: &Actor,
    now: Timestamp,
    cfg: &ResponseConfig,
    silences: &[Silence],
) -> Result<Change, Refusal> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let summary = text("a summary", &d.summary, MAX_SUMMARY)?;
    let (kind, severity) = (d.kind, d.severity);
    let mut nodes = d.nodes.clone();
    nodes.sort();
    nodes.dedup();
    let finding = Finding {
        key: format!(
            "{DECLARED_PREFIX}{}-{}-{}",
            now.as_millisecond(),
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ),
        kind,
        severity,
        nodes,
        summary: summary.clone(),
        evidence: json!({"declared_by": actor.who, "from": actor.from}),
    };
    let mut incident = crate::lifecycle::open(&finding, now, cfg);
    let mut events = vec![TimelineEvent::new(
        now,
        EventType::Opened,
        format!("{severity} {kind} declared by {}: {summary}", actor.who),
        json!({
            "severity": severity,
            "nodes": finding.nodes,
            "by": actor.who,
            "from": actor.from,
        }),
    )];
    events.extend(crate::lifecycle::due(&mut incident, now, cfg, silences));
    Ok(Change::Open { incident, events })
}

/// A person's update: the next reminder is due one interval after it. The engine derives
/// that time with its own configuration (the person may run a CLI without it), so this only
/// records the update and clears the old deadline.
fn updated(incident: &mut Incident, now: Timestamp) {
    incident.updated_at = now;
    if incident.is_open() && incident.acked_at.is_some() {
        incident.last_update_at = Some(now);
        incident.update_due_at = None;
    }
}

fn ack_in_place(incident: &mut Incident, actor: &Actor, now: Timestamp) -> TimelineEvent {
    let after_ms = millis_between(incident.opened_at, now);
    let within = incident.ack_due_at.is_none_or(|due| now <= due);
    incident.acked_at = Some(now);
    incident.acked_by = Some(actor.who.clone());
    incident.escalation_due_at = None;
    updated(incident, now);
    TimelineEvent::new(
        now,
        EventType::Acknowledged,
        format!("acknowledged by {} after {}", actor.who, human_ms(after_ms)),
        json!({
            "by": actor.who,
            "from": actor.from,
            "after_ms": after_ms,
            "within_target": within,
        }),
    )
}

/// Acknowledge: escalation stops, update reminders start.
pub fn acknowledge(
    incident: &Incident,
    actor: &Actor,
    now: Timestamp,
) -> Result<Mutation, Refusal> {
    if !incident.is_open() {
        return Err(Refusal::Conflict(format!(
            "incident {} is {}: there is nothing to acknowledge",
            incident.id, incident.status
        )));
    }
    if let (Some(at), Some(by)) = (incident.acked_at, &incident.acked_by) {
        return Err(Refusal::Unchanged(format!(
            "incident {} was acknowledged by {by} at {at}",
            incident.id
        )));
    }
    let mut next = incident.clone();
    let event = ack_in_place(&mut next, actor, now);
    Ok(Mutation {
        incident: next,
        events: vec![event],
    })
}

/// Move to phase `to` (see the module's table), without the review's scheduling.
fn move_to(
    incident: &Incident,
    to: Status,
    reason: Option<&str>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Mutation, Refusal> {
    let reason = reason
        .map(|r| text("a reason", r, MAX_REASON))
        .transpose()?;
    let from = incident.status;
    let refuse = |why: String| Err(Refusal::Conflict(format!("{from} → {to}: {why}")));
    if from == to {
        return Err(Refusal::Unchanged(format!(
            "incident {} is already in {to}",
            incident.id
        )));
    }
    match (from, to) {
        (_, Status::Detected) => return refuse("every incident starts in detected; no phase returns to it".into()),
        (Status::Reviewed, _) => return refuse("reviewed is final".into()),
        (Status::Resolved, Status::Reviewed) => {}
        (Status::Resolved, _) => return refuse("a resolved incident does not reopen: declare a new one (a recurrence after resolution opens a new one by itself)".into()),
        (_, Status::Reviewed) => return refuse("only a resolved incident can be reviewed: resolve it first".into()),
        _ => {}
    }
    let mut next = incident.clone();
    let mut events = Vec::new();
    if next.is_open() && next.acked_at.is_none() {
        events.push(ack_in_place(&mut next, actor, now));
    }
    let mut note = String::new();
    match to {
        Status::Resolved => {
            if !incident.is_declared() && incident.cleared_at.is_none() {
                note = "; the condition was still firing: if it persists, detection opens a new incident".into();
            }
            close(&mut next, Status::Resolved, now);
        }
        Status::Reviewed => next.status = Status::Reviewed,
        Status::Monitoring => {
            // a declared incident has no detector to see it clear: the person moving it to
            // monitoring says it is, and the stability window starts now
            if incident.is_declared() && next.cleared_at.is_none() {
                next.cleared_at = Some(now);
            }
            next.status = to;
        }
        _ => next.status = to,
    }
    updated(&mut next, now);
    let why = reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    events.push(TimelineEvent::new(
        now,
        EventType::PhaseChanged,
        format!("{from} → {to} by {}{why}{note}", actor.who),
        json!({
            "from_phase": from,
            "to_phase": to,
            "reason": reason,
            "by": actor.who,
            "from": actor.from,
        }),
    ));
    Ok(Mutation {
        incident: next,
        events,
    })
}

/// When a P1 or P2 review is scheduled after resolution unless the configuration says
/// otherwise ([`ResponseConfig::review_after`]'s default).
pub const DEFAULT_REVIEW_AFTER: Option<Duration> = Some(Duration::from_secs(48 * 3600));

/// Move to phase `to` (see the module's table). Resolving a P1 or P2 incident schedules its
/// review [`DEFAULT_REVIEW_AFTER`] later; [`transition_with`] takes the configured delay.
pub fn transition(
    incident: &Incident,
    to: Status,
    reason: Option<&str>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Mutation, Refusal> {
    transition_with(incident, to, reason, None, actor, now, DEFAULT_REVIEW_AFTER)
}

/// Resolve, optionally with the root cause: it goes into the resolution notice (and the
/// review). A P1 or P2 incident gets its review scheduled [`DEFAULT_REVIEW_AFTER`] later.
pub fn resolve(
    incident: &Incident,
    reason: Option<&str>,
    root_cause: Option<&str>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Mutation, Refusal> {
    transition_with(
        incident,
        Status::Resolved,
        reason,
        root_cause,
        actor,
        now,
        DEFAULT_REVIEW_AFTER,
    )
}

/// Move to phase `to`; with `resolved`, `root_cause` is recorded (and refused with any other
/// phase), and a P1 or P2 incident gets its post-incident review scheduled `review_after`
/// later (`None`: people schedule it). Callers with the configuration pass
/// `cfg.review_after`.
pub fn transition_with(
    incident: &Incident,
    to: Status,
    reason: Option<&str>,
    root_cause: Option<&str>,
    actor: &Actor,
    now: Timestamp,
    review_after: Option<Duration>,
) -> Result<Mutation, Refusal> {
    if root_cause.is_some() && to != Status::Resolved {
        return Err(Refusal::Invalid("a root cause goes with resolving".into()));
    }
    let root = root_cause
        .map(|r| text("a root cause", r, MAX_REASON))
        .transpose()?;
    let mut m = move_to(incident, to, reason, actor, now)?;
    let review = (to == Status::Resolved)
        .then(|| review_on_resolve(&m.incident, root.as_deref(), now, review_after))
        .flatten();
    for e in m
        .events
        .iter_mut()
        .filter(|e| e.is(EventType::PhaseChanged))
    {
        if let Some(r) = &root {
            e.data["root_cause"] = json!(r);
            e.message.push_str(&format!("; root cause: {r}"));
        }
        if let Some(rev) = &review {
            e.data["review_at"] = rev.data["at"].clone();
        }
    }
    m.events.extend(review);
    Ok(m)
}

/// The review scheduled by itself when `resolved` (just resolved at `now`) is P1 or P2 and
/// a delay is configured: a `review_scheduled` event `review_after` from now, marked
/// automatic, with the root cause for the review notice.
pub fn review_on_resolve(
    resolved: &Incident,
    root_cause: Option<&str>,
    now: Timestamp,
    review_after: Option<Duration>,
) -> Option<TimelineEvent> {
    let after = review_after.filter(|_| crate::review::review_required(resolved.severity))?;
    // a meeting: on the next whole minute, not at 10:41:47.928
    let at = crate::oncall::plus(now, after);
    let at = Timestamp::from_second((at.as_second() + 59).div_euclid(60) * 60).unwrap_or(at);
    Some(TimelineEvent::new(
        now,
        EventType::ReviewScheduled,
        format!(
            "post-incident review scheduled for {} ({} incidents are reviewed)",
            crate::review::time(at),
            resolved.severity
        ),
        json!({"at": at, "automatic": true, "root_cause": root_cause}),
    ))
}

/// A person sets the severity, with a reason. Raising and lowering are both allowed; the
/// engine raises again only if a detector later reports worse than it ever did.
pub fn change_severity(
    incident: &Incident,
    to: Severity,
    reason: &str,
    actor: &Actor,
    now: Timestamp,
    cfg: &ResponseConfig,
) -> Result<Mutation, Refusal> {
    let reason = text("a reason", reason, MAX_REASON)?;
    if !incident.is_open() {
        return Err(Refusal::Conflict(format!(
            "incident {} is {}: its severity is part of the record now",
            incident.id, incident.status
        )));
    }
    let from = incident.severity;
    if from == to {
        return Err(Refusal::Unchanged(format!(
            "incident {} is already {to}",
            incident.id
        )));
    }
    let mut next = incident.clone();
    set_severity(&mut next, to, cfg);
    updated(&mut next, now);
    let word = if to.worse_than(from) {
        "raised"
    } else {
        "lowered"
    };
    Ok(Mutation {
        incident: next,
        events: vec![TimelineEvent::new(
            now,
            EventType::SeverityChanged,
            format!("severity {word} {from} → {to} by {}: {reason}", actor.who),
            json!({
                "from_severity": from,
                "to_severity": to,
                "reason": reason,
                "by": actor.who,
                "from": actor.from,
            }),
        )],
    })
}

/// Give `role` to `holder` (assign, or hand over from whoever has it), or release it
/// (`holder` = `None`).
pub fn set_role(
    incident: &Incident,
    role: ResponseRole,
    holder: Option<&str>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Mutation, Refusal> {
    refuse_if_reviewed(incident, "roles are")?;
    let holder = holder
        .map(|h| text("a role holder", h, MAX_NAME))
        .transpose()?;
    if holder
        .as_deref()
        .is_some_and(|h| h.chars().any(char::is_control))
    {
        return Err(Refusal::Invalid(
            "a role holder's name has no control characters".into(),
        ));
    }
    let current = incident.roles.get(&role);
    let mut next = incident.clone();
    let (t, message) = match (current, &holder) {
        (Some(c), Some(h)) if c == h => {
            return Err(Refusal::Unchanged(format!("{h} already holds {role}")))
        }
        (None, None) => return Err(Refusal::Unchanged(format!("nobody holds {role}"))),
        (None, Some(h)) => (
            EventType::RoleAssigned,
            format!(
                "{h} is {} ({role}), assigned by {}",
                role.title(),
                actor.who
            ),
        ),
        (Some(c), Some(h)) => (
            EventType::RoleHandedOver,
            format!(
                "{} ({role}) handed over from {c} to {h} by {}",
                role.title(),
                actor.who
            ),
        ),
        (Some(c), None) => (
            EventType::RoleReleased,
            format!("{c} released {} ({role}), by {}", role.title(), actor.who),
        ),
    };
    let previous = current.cloned();
    match &holder {
        Some(h) => next.roles.insert(role, h.clone()),
        None => next.roles.remove(&role),
    };
    updated(&mut next, now);
    Ok(Mutation {
        incident: next,
        events: vec![TimelineEvent::new(
            now,
            t,
            message,
            json!({
                "role": role,
                "holder": holder,
                "previous": previous,
                "by": actor.who,
                "from": actor.from,
            }),
        )],
    })
}

/// A person's text on the timeline, as event `t`: checked, counted as an update, and
/// recorded with who wrote it and from where (plus `extra` fields).
fn text_event(
    incident: &Incident,
    (t, what): (EventType, &str),
    text_: &str,
    actor: &Actor,
    now: Timestamp,
    message: impl FnOnce(&str) -> String,
    extra: serde_json::Value,
) -> Result<Mutation, Refusal> {
    let body = text(what, text_, MAX_NOTE)?;
    let mut next = incident.clone();
    updated(&mut next, now);
    let mut data = json!({"by": actor.who, "from": actor.from, "text": body});
    if let (Some(d), serde_json::Value::Object(more)) = (data.as_object_mut(), extra) {
        d.extend(more);
    }
    Ok(Mutation {
        incident: next,
        events: vec![TimelineEvent::new(now, t, message(&body), data)],
    })
}

/// A person's note on the timeline (what they saw or decided).
pub fn note(
    incident: &Incident,
    text_: &str,
    actor: &Actor,
    now: Timestamp,
) -> Result<Mutation, Refusal> {
    text_event(
        incident,
        (EventType::Note, "a note"),
        text_,
        actor,
        now,
        |body| format!("{}: {body}", actor.who),
        json!({}),
    )
}

/// An action a person took (restarted the node, blocked an IP), optionally linking the
/// runbook run that did it.
pub fn action(
    incident: &Incident,
    text_: &str,
    runbook_run: Option<&str>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Mutation, Refusal> {
    if let Some(run) = runbook_run {
        let ok = !run.is_empty()
            && run.len() <= 100
            && run
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if !ok {
            return Err(Refusal::Invalid(
                "a runbook run id is 1 to 100 characters of letters, digits, '-', '_', '.', ':'"
                    .into(),
            ));
        }
    }
    let link = runbook_run
        .map(|r| format!(" (runbook run {r})"))
        .unwrap_or_default();
    text_event(
        incident,
        (EventType::Action, "an action"),
        text_,
        actor,
        now,
        |body| format!("{} did: {body}{link}", actor.who),
        json!({"runbook_run": runbook_run}),
    )
}

/// Put a machine-made event on the timeline (a runbook run's request, approval or output,
/// a checklist mark, an auto-remediation step). It does not count as a person's update (the
/// update reminder keeps running: a script's output is not a message to stakeholders), and a
/// reviewed incident's record is final.
pub fn record(
    incident: &Incident,
    t: EventType,
    message: String,
    data: serde_json::Value,
    now: Timestamp,
) -> Result<Mutation, Refusal> {
    refuse_if_reviewed(incident, "its timeline is")?;
    let mut next = incident.clone();
    next.updated_at = now;
    Ok(Mutation {
        incident: next,
        events: vec![TimelineEvent::new(now, t, message, data)],
    })
}

/// A person's public status update (the playbook's INCIDENT UPDATE): it goes to the
/// incident's channels and the status page, unlike a note, which stays internal.
pub fn status_update(
    incident: &Incident,
    text_: &str,
    actor: &Actor,
    now: Timestamp,
) -> Result<Mutation, Refusal> {
    refuse_if_reviewed(incident, "its updates are")?;
    text_event(
        incident,
        (EventType::StatusUpdate, "a status update"),
        text_,
        actor,
        now,
        |body| format!("update by {}: {body}", actor.who),
        json!({}),
    )
}

/// Schedule the post-incident review of a resolved incident at `at` (playbook phase 5); the
/// review notice goes to the incident's channels.
pub fn schedule_review(
    incident: &Incident,
    at: Timestamp,
    actor: &Actor,
    now: Timestamp,
) -> Result<Mutation, Refusal> {
    if incident.status != Status::Resolved {
        return Err(Refusal::Conflict(format!(
            "incident {} is {}: a review is scheduled once it is resolved (and before it is reviewed)",
            incident.id, incident.status
        )));
    }
    if at <= now {
        return Err(Refusal::Invalid(
            "a review is scheduled in the future".into(),
        ));
    }
    let mut next = incident.clone();
    next.updated_at = now;
    Ok(Mutation {
        incident: next,
        events: vec![TimelineEvent::new(
            now,
            EventType::ReviewScheduled,
            format!(
                "post-incident review scheduled for {} by {}",
                crate::review::time(at),
                actor.who
            ),
            json!({"at": at, "by": actor.who, "from": actor.from}),
        )],
    })
}

/// Roles as `IC alice, TL bob` (empty when nobody holds one).
pub fn roles_line(roles: &BTreeMap<ResponseRole, String>) -> String {
    roles
        .iter()
        .map(|(r, h)| format!("{r} {h}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::incident::Assessment;
    use crate::lifecycle::reconcile;
    use std::time::Duration;

    fn alice() -> Actor {
        Actor {
            who: "alice".into(),
            from: "api 127.0.0.1:5000".into(),
        }
    }

    fn declared(clock: &ManualClock, cfg: &ResponseConfig) -> Incident {
        let Change::Open { mut incident, .. } = declare(
            &Declaration {
                kind: IncidentKind::PerformanceDegradation,
                severity: Severity::P3,
                summary: "users report slow RPC".into(),
                nodes: vec!["rpc-2".into(), "rpc-1".into(), "rpc-2".into()],
            },
            &alice(),
            clock.now(),
            cfg,
            &[],
        )
        .unwrap() else {
            panic!("a declaration opens an incident")
        };
        incident.id = 1;
        incident
    }

    #[test]
    fn declarations_are_checked_and_never_resolved_by_detection() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = ResponseConfig::default();
        for summary in ["", "  ", &"x".repeat(MAX_SUMMARY + 1)] {
            let refused = declare(
                &Declaration {
                    kind: IncidentKind::NodeDown,
                    severity: Severity::P2,
                    summary: summary.to_string(),
                    nodes: vec![],
                },
                &alice(),
                clock.now(),
                &cfg,
                &[],
            );
            assert!(matches!(refused, Err(Refusal::Invalid(_))), "{summary:?}");
        }
        let one = declared(&clock, &cfg);
        let two = declared(&clock, &cfg);
        assert!(one.key.starts_with(DECLARED_PREFIX));
        assert_ne!(one.key, two.key, "two declarations, two incidents");
        assert_eq!(one.nodes, ["rpc-1", "rpc-2"]);
        assert_eq!(one.status, Status::Detected);
        for _ in 0..3 {
            clock.advance(Duration::from_secs(60));
            let changes = reconcile(
                std::slice::from_ref(&one),
                &Assessment::default(),
                clock.now(),
                &cfg,
                &[],
            );
            assert!(changes.is_empty(), "{changes:?}");
        }
    }

    #[test]
    fn phases_move_as_the_playbook_says_and_impossible_moves_are_refused() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = ResponseConfig::default();
        let inc = declared(&clock, &cfg);
        let refused = |inc: &Incident, to| transition(inc, to, None, &alice(), clock.now());
        assert!(
            matches!(refused(&inc, Status::Reviewed), Err(Refusal::Conflict(m)) if m.contains("resolve it first"))
        );
        assert!(matches!(
            refused(&inc, Status::Detected),
            Err(Refusal::Unchanged(_))
        ));

        clock.advance(Duration::from_secs(120));
        let m = transition(&inc, Status::Triage, Some("looking"), &alice(), clock.now()).unwrap();
        assert_eq!(
            m.events
                .iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
            ["acknowledged", "phase_changed"],
            "moving it acknowledges it"
        );
        assert_eq!(m.events[1].data["reason"], "looking");
        let inc = m.incident;
        assert_eq!(inc.escalation_due_at, None, "pages stop");
        assert_eq!(inc.last_update_at, Some(clock.now()));
        assert_eq!(
            inc.update_due_at, None,
            "derived by the engine, with its config"
        );
        assert!(matches!(
            refused(&inc, Status::Triage),
            Err(Refusal::Unchanged(_))
        ));
        let mut inc = inc;
        for to in [
            Status::Investigating,
            Status::Mitigating,
            Status::Investigating,
            Status::Monitoring,
        ] {
            inc = transition(&inc, to, None, &alice(), clock.now())
                .unwrap()
                .incident;
            assert_eq!(inc.status, to);
        }
        assert_eq!(
            inc.cleared_at,
            Some(clock.now()),
            "a declared incident's window starts"
        );
        let resolved = transition(&inc, Status::Resolved, None, &alice(), clock.now())
            .unwrap()
            .incident;
        assert_eq!(resolved.resolved_at, Some(clock.now()));
        assert_eq!(resolved.update_due_at, None);
        assert!(
            matches!(refused(&resolved, Status::Investigating), Err(Refusal::Conflict(m)) if m.contains("does not reopen"))
        );
        let reviewed = transition(&resolved, Status::Reviewed, None, &alice(), clock.now())
            .unwrap()
            .incident;
        for to in Status::ALL {
            assert!(refused(&reviewed, to).is_err(), "reviewed → {to}");
        }
        let triage = transition(
            &declared(&clock, &cfg),
            Status::Triage,
            None,
            &alice(),
            clock.now(),
        )
        .unwrap()
        .incident;
        assert!(
            matches!(refused(&triage, Status::Detected), Err(Refusal::Conflict(m)) if m.contains("starts in detected"))
        );
    }

    #[test]
    fn a_person_resolving_a_p1_or_p2_schedules_its_review() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = ResponseConfig::default();
        let p3 = declared(&clock, &cfg);
        clock.advance(Duration::from_secs(600));
        let m = resolve(&p3, None, Some("a full disk"), &alice(), clock.now()).unwrap();
        assert!(
            !m.events.iter().any(|e| e.is(EventType::ReviewScheduled)),
            "P3: people decide"
        );
        let mut p2 = p3.clone();
        p2.severity = Severity::P2;
        let m = resolve(&p2, None, Some("a full disk"), &alice(), clock.now()).unwrap();
        let types: Vec<_> = m.events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["acknowledged", "phase_changed", "review_scheduled"]);
        let at = crate::oncall::plus(clock.now(), Duration::from_secs(48 * 3600));
        assert_eq!(m.events[2].data["at"], json!(at));
        assert_eq!(m.events[2].data["root_cause"], "a full disk");
        assert_eq!(m.events[1].data["review_at"], json!(at));
        assert_eq!(m.events[1].data["root_cause"], "a full disk");
        // the configured delay, or none
        let m = transition_with(
            &p2,
            Status::Resolved,
            None,
            None,
            &alice(),
            clock.now(),
            Some(Duration::from_secs(3600)),
        )
        .unwrap();
        assert_eq!(
            m.events[2].data["at"],
            json!(crate::oncall::plus(clock.now(), Duration::from_secs(3600)))
        );
        let m = transition_with(
            &p2,
            Status::Resolved,
            None,
            None,
            &alice(),
            clock.now(),
            None,
        )
        .unwrap();
        assert_eq!(m.events.len(), 2, "off: people schedule it");
        assert!(matches!(
            transition_with(
                &p2,
                Status::Triage,
                None,
                Some("x"),
                &alice(),
                clock.now(),
                None
            ),
            Err(Refusal::Invalid(_))
        ));
        // moving to monitoring schedules nothing
        let m = transition(&p2, Status::Monitoring, None, &alice(), clock.now()).unwrap();
        assert!(!m.events.iter().any(|e| e.is(EventType::ReviewScheduled)));
    }

    #[test]
    fn acknowledging_twice_or_a_resolved_incident_is_refused() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = ResponseConfig::default();
        let inc = declared(&clock, &cfg);
        clock.advance(Duration::from_secs(3 * 3600));
        let m = acknowledge(&inc, &alice(), clock.now()).unwrap();
        assert_eq!(m.events[0].data["within_target"], false, "P3: 2 h target");
        assert_eq!(m.events[0].data["after_ms"], 3 * 3600 * 1000);
        assert!(matches!(
            acknowledge(&m.incident, &alice(), clock.now()),
            Err(Refusal::Unchanged(_))
        ));
        let resolved = transition(&m.incident, Status::Resolved, None, &alice(), clock.now())
            .unwrap()
            .incident;
        assert!(matches!(
            acknowledge(&resolved, &alice(), clock.now()),
            Err(Refusal::Conflict(_))
        ));
    }

    #[test]
    fn severity_changes_need_a_reason_and_move_the_response_target() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = ResponseConfig::default();
        let inc = declared(&clock, &cfg);
        assert!(matches!(
            change_severity(&inc, Severity::P1, " ", &alice(), clock.now(), &cfg),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            change_severity(&inc, Severity::P3, "same", &alice(), clock.now(), &cfg),
            Err(Refusal::Unchanged(_))
        ));
        let m = change_severity(
            &inc,
            Severity::P1,
            "validators affected",
            &alice(),
            clock.now(),
            &cfg,
        )
        .unwrap();
        assert_eq!(m.incident.severity, Severity::P1);
        assert_eq!(
            m.incident.ack_due_at,
            Some(crate::oncall::plus(inc.opened_at, Duration::from_secs(900)))
        );
        assert_eq!(m.events[0].event_type, "severity_changed");
        assert_eq!(m.events[0].data["reason"], "validators affected");
        assert!(m.events[0].message.contains("raised P3 → P1"));
    }

    #[test]
    fn roles_are_assigned_handed_over_and_released() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = ResponseConfig::default();
        let inc = declared(&clock, &cfg);
        let m = set_role(&inc, ResponseRole::IC, Some("bob"), &alice(), clock.now()).unwrap();
        assert_eq!(m.events[0].event_type, "role_assigned");
        let inc = m.incident;
        assert!(matches!(
            set_role(&inc, ResponseRole::IC, Some("bob"), &alice(), clock.now()),
            Err(Refusal::Unchanged(_))
        ));
        let m = set_role(&inc, ResponseRole::IC, Some("carol"), &alice(), clock.now()).unwrap();
        assert_eq!(m.events[0].event_type, "role_handed_over");
        assert_eq!(m.events[0].data["previous"], "bob");
        assert_eq!(roles_line(&m.incident.roles), "IC carol");
        let m = set_role(&m.incident, ResponseRole::IC, None, &alice(), clock.now()).unwrap();
        assert_eq!(m.events[0].event_type, "role_released");
        assert!(m.incident.roles.is_empty());
        assert!(matches!(
            set_role(&m.incident, ResponseRole::TL, None, &alice(), clock.now()),
            Err(Refusal::Unchanged(_))
        ));
        assert!(matches!(
            set_role(
                &inc,
                ResponseRole::TL,
                Some("a\u{7}b"),
                &alice(),
                clock.now()
            ),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn notes_and_actions_move_the_update_deadline() {
        let clock = ManualClock::at_epoch_2026();
        let cfg = ResponseConfig::default();
        let inc = acknowledge(&declared(&clock, &cfg), &alice(), clock.now())
            .unwrap()
            .incident;
        clock.advance(Duration::from_secs(600));
        let m = action(
            &inc,
            "restarted neo-cli",
            Some("run-42"),
            &alice(),
            clock.now(),
        )
        .unwrap();
        assert_eq!(m.incident.last_update_at, Some(clock.now()));
        assert_eq!(m.events[0].data["runbook_run"], "run-42");
        assert!(action(&inc, "x", Some("bad id!"), &alice(), clock.now()).is_err());
        assert!(note(&inc, "", &alice(), clock.now()).is_err());
        assert!(note(&inc, &"x".repeat(MAX_NOTE + 1), &alice(), clock.now()).is_err());
        let n = note(&inc, "disk full on rpc-1", &alice(), clock.now()).unwrap();
        assert_eq!(n.events[0].data["text"], "disk full on rpc-1");
    }
}
