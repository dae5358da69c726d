//! Post-incident reviews (playbook phase 5): the playbook's review template as Markdown,
//! prefilled from what neo-ir recorded (the incident, its timeline, its runbook runs and the
//! review's action items), and the action items' type with its checks.
//!
//! Everything the record knows is filled in with real times; what needs a person (what
//! happened and why, what went well or wrong, lessons) is marked [`TO_FILL`] so nobody
//! mistakes an empty section for a finished one. Pure: the same inputs give the same text
//! (the snapshot test relies on it).
//!
//! Also here: the daily reminder of an overdue action item ([`overdue_reminder`]), and the
//! runbooks' review state ([`runbook_reviews`]): the playbook's "Update Runbooks" step is an
//! action item pointing at a runbook, and a runbook's last review is the latest completion
//! of such an item.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use jiff::civil::Date;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::millis_between;
use crate::incident::{human_ms, EventType, Incident, IncidentKind, Severity, TimelineEvent};
use crate::runbook::Run;
use crate::text::clip;

/// The marker of a section a person has to write.
pub const TO_FILL: &str = "_to fill in_";

/// Longest action item text, in characters.
pub const MAX_ACTION: usize = 1000;
/// Longest owner name, in characters.
pub const MAX_OWNER: usize = 100;
/// Longest runbook name an action item may point at.
pub const MAX_RUNBOOK: usize = 64;
/// Longest review text, in bytes (a review is a page or two; this stops a runaway upload).
pub const MAX_REVIEW: usize = 256 * 1024;

/// An action item's priority. The playbook's template says High/Med/Low, so these are the
/// names (`med` is read as `medium`); `high` sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High,
    Medium,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "high" => Ok(Priority::High),
            "medium" | "med" => Ok(Priority::Medium),
            "low" => Ok(Priority::Low),
            _ => Err(format!(
                "unknown priority {s:?} (expected high, medium or low)"
            )),
        }
    }
}

/// A follow-up of a review: what, who, by when, how urgent, and optionally the runbook it
/// updates (the playbook's "Update Runbooks").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionItem {
    pub id: i64,
    pub action: String,
    pub owner: String,
    /// The due date (a calendar day, UTC): overdue from the day after.
    pub due: Option<Date>,
    pub priority: Priority,
    pub done: bool,
    /// The runbook this item changes: one of the playbook's [`PLAYBOOK_RUNBOOKS`] (named by
    /// its incident kind, e.g. `node_down`) or a script (e.g. `restart_node`).
    pub runbook: Option<String>,
    /// When it was marked done (`None` while open). A runbook's last review is the latest
    /// of these among the items pointing at it.
    #[serde(default)]
    pub done_at: Option<Timestamp>,
}

/// The calendar day (UTC) of `now`.
pub fn utc_day(now: Timestamp) -> Date {
    now.to_zoned(jiff::tz::TimeZone::UTC).date()
}

impl ActionItem {
    /// Not done and its due day is over (in UTC) at `now`.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        !self.done && self.due.is_some_and(|d| d < utc_day(now))
    }
}

/// Longest action text quoted in a reminder (the whole text is in the event's data).
const REMINDER_ACTION: usize = 300;

/// The reminder that `item` of incident `incident_id`'s review is overdue at `now`: an
/// `action_item_overdue` event for the incident's timeline, routed to its channels like any
/// other. `None` when the item is not overdue. Whoever calls it keeps it to once per item
/// and UTC day (the store remembers the day of the last reminder).
pub fn overdue_reminder(
    incident_id: i64,
    item: &ActionItem,
    now: Timestamp,
) -> Option<TimelineEvent> {
    if !item.is_overdue(now) {
        return None;
    }
    let due = item.due?;
    let days = utc_day(now).duration_since(due).as_hours() / 24;
    let runbook = item
        .runbook
        .as_deref()
        .map(|r| format!(", runbook {r}"))
        .unwrap_or_default();
    Some(TimelineEvent::new(
        now,
        EventType::ActionItemOverdue,
        format!(
            "Action item overdue: {} ({}, due {due}, {} priority{runbook}) — incident \
             #{incident_id} review, item {}",
            clip(&item.action, REMINDER_ACTION),
            clip(&item.owner, MAX_OWNER),
            item.priority,
            item.id,
        ),
        serde_json::json!({
            "item": item.id,
            "action": item.action,
            "owner": item.owner,
            "due": due,
            "priority": item.priority,
            "runbook": item.runbook,
            "days_overdue": days,
        }),
    ))
}

/// One of the playbook's six incident runbooks ("Specific Incident Runbooks"). It is named
/// by the incident kind whose procedure it is ([`crate::runbook::checklist`]), so an action
/// item says `--runbook node_down` for "Node Crash/Unresponsive".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlaybookRunbook {
    pub name: &'static str,
    /// The playbook's heading.
    pub title: &'static str,
    pub kind: IncidentKind,
}

/// The playbook's six incident runbooks, in its order.
pub const PLAYBOOK_RUNBOOKS: [PlaybookRunbook; 6] = [
    PlaybookRunbook {
        name: "node_down",
        title: "Node Crash/Unresponsive",
        kind: IncidentKind::NodeDown,
    },
    PlaybookRunbook {
        name: "consensus_failure",
        title: "Consensus Failure (Validator Nodes)",
        kind: IncidentKind::ConsensusFailure,
    },
    PlaybookRunbook {
        name: "data_corruption",
        title: "Data Corruption",
        kind: IncidentKind::DataCorruption,
    },
    PlaybookRunbook {
        name: "network_attack",
        title: "Network Attack (DDoS)",
        kind: IncidentKind::NetworkAttack,
    },
    PlaybookRunbook {
        name: "split_brain",
        title: "Split Brain Scenario",
        kind: IncidentKind::SplitBrain,
    },
    PlaybookRunbook {
        name: "performance_degradation",
        title: "Performance Degradation",
        kind: IncidentKind::PerformanceDegradation,
    },
];

/// The playbook runbook called `name`.
pub fn playbook_runbook(name: &str) -> Option<&'static PlaybookRunbook> {
    PLAYBOOK_RUNBOOKS.iter().find(|r| r.name == name)
}

/// Check that an action item's runbook is one neo-ir knows: a playbook runbook or one of
/// `scripts` (the runbook crate's script names). An unknown name would hide the item from
/// `neo-ir runbooks`, so it is refused with the names that exist.
pub fn check_known_runbook<'a>(
    name: &str,
    scripts: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<String, String> {
    let name = check_runbook(name)?;
    if playbook_runbook(&name).is_some() || scripts.clone().into_iter().any(|s| s == name) {
        return Ok(name);
    }
    let playbook: Vec<&str> = PLAYBOOK_RUNBOOKS.iter().map(|r| r.name).collect();
    let scripts: Vec<&str> = scripts.into_iter().collect();
    Err(format!(
        "unknown runbook {name:?}: expected a playbook runbook ({}) or a script ({})",
        playbook.join(", "),
        scripts.join(", ")
    ))
}

/// A runbook's review state: when an action item pointing at it was last completed, and
/// the items still open.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunbookReview {
    pub runbook: String,
    /// The latest `done_at` of the items pointing at it (`None`: never reviewed).
    pub last_reviewed: Option<Timestamp>,
    /// The incident whose item that was.
    pub last_incident: Option<i64>,
    /// Open items pointing at it: (incident id, item), in the order given.
    pub open_items: Vec<(i64, ActionItem)>,
}

/// The review state of each of `runbooks` (in that order) from every action item with its
/// incident id, then of any other runbook an item names (an item stored before names were
/// checked), by name: nothing an item points at is hidden.
///
/// The rule: a runbook was last reviewed when the latest action item pointing at it was
/// marked done. A completed review whose items are still open has not changed the runbook
/// yet; those items are its open items.
pub fn runbook_reviews(runbooks: &[&str], items: &[(i64, ActionItem)]) -> Vec<RunbookReview> {
    let mut names: Vec<String> = runbooks.iter().map(|s| s.to_string()).collect();
    let mut others: BTreeSet<&str> = BTreeSet::new();
    for (_, i) in items {
        if let Some(r) = i.runbook.as_deref() {
            if !runbooks.contains(&r) {
                others.insert(r);
            }
        }
    }
    names.extend(others.into_iter().map(str::to_string));
    names
        .into_iter()
        .map(|name| {
            let mine = items
                .iter()
                .filter(|(_, i)| i.runbook.as_deref() == Some(name.as_str()));
            let last = mine
                .clone()
                .filter(|(_, i)| i.done)
                .filter_map(|(inc, i)| i.done_at.map(|at| (at, *inc)))
                .max();
            RunbookReview {
                last_reviewed: last.map(|(at, _)| at),
                last_incident: last.map(|(_, inc)| inc),
                open_items: mine.filter(|(_, i)| !i.done).cloned().collect(),
                runbook: name,
            }
        })
        .collect()
}

/// Check an action item's text: trimmed, 1 to [`MAX_ACTION`] characters.
pub fn check_action(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > MAX_ACTION {
        return Err(format!("an action is 1 to {MAX_ACTION} characters"));
    }
    Ok(s.to_string())
}

/// Check an owner's name: 1 to [`MAX_OWNER`] characters, no control characters.
pub fn check_owner(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > MAX_OWNER || s.chars().any(char::is_control) {
        return Err(format!(
            "an owner is 1 to {MAX_OWNER} characters without control characters"
        ));
    }
    Ok(s.to_string())
}

/// Check a runbook name: 1 to [`MAX_RUNBOOK`] of `a-z`, `0-9`, `_` (the scripts' names).
pub fn check_runbook(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_RUNBOOK
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(format!(
            "a runbook is named by 1 to {MAX_RUNBOOK} of a-z, 0-9 and '_' (e.g. restart_node)"
        ));
    }
    Ok(s.to_string())
}

/// Check a review's Markdown: not empty, at most [`MAX_REVIEW`] bytes, no NUL.
pub fn check_markdown(s: &str) -> Result<(), String> {
    if s.trim().is_empty() || s.len() > MAX_REVIEW || s.contains('\0') {
        return Err(format!(
            "a review is 1 to {MAX_REVIEW} bytes of text (no NUL characters)"
        ));
    }
    Ok(())
}

/// `2026-03-02 10:00:00 UTC`: times as the review and its notices print them.
pub fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn date(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// The person in `requested_by`/`approved_by` (`alice via cli` → `alice`); `None` for the
/// machine (`auto-remediation`).
fn person(s: &str) -> Option<String> {
    // the runner writes `who (from)`; older records `who via from`
    let who = s.split(" via ").next().unwrap_or(s);
    let who = match who.split_once(" (") {
        Some((name, rest)) if rest.ends_with(')') => name,
        _ => who,
    }
    .trim();
    (!who.is_empty() && who != "auto-remediation").then(|| who.to_string())
}

fn text<'a>(e: &'a TimelineEvent, key: &str) -> Option<&'a str> {
    e.data.get(key).and_then(Value::as_str)
}

/// A table cell: one line, no `|` breaking the table.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Everyone who took part: held a role, acknowledged, wrote, moved or resolved the
/// incident (the events' `by` and role holders), requested or approved a run.
pub fn participants(incident: &Incident, timeline: &[TimelineEvent], runs: &[Run]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for e in timeline {
        for key in ["by", "holder", "previous"] {
            if let Some(who) = text(e, key).and_then(person) {
                out.insert(who);
            }
        }
    }
    out.extend(incident.roles.values().cloned());
    for r in runs {
        out.extend(person(&r.requested_by));
        out.extend(r.approved_by.as_deref().and_then(person));
    }
    out.into_iter().collect()
}

/// What the evidence says about the impact, from every piece of evidence recorded.
#[derive(Debug, Default, PartialEq)]
struct Impact {
    stalled_ms: Option<u64>,
    lag_blocks: Option<u64>,
    heights: Option<(u64, u64)>,
}

fn impact(incident: &Incident, timeline: &[TimelineEvent]) -> Impact {
    let mut all: Vec<&Value> = vec![&incident.evidence];
    for e in timeline {
        for key in ["evidence", "last_evidence"] {
            if let Some(v) = e.data.get(key) {
                all.push(v);
            }
        }
    }
    let mut out = Impact::default();
    let mut visit = |v: &Value| {
        let n = |k: &str| v.get(k).and_then(Value::as_u64);
        if let Some(s) = n("stalled_ms") {
            out.stalled_ms = Some(out.stalled_ms.map_or(s, |m| m.max(s)));
        }
        if let Some(l) = n("lag_blocks") {
            out.lag_blocks = Some(out.lag_blocks.map_or(l, |m| m.max(l)));
        }
        if let Some(h) = n("height") {
            out.heights = Some(
                out.heights
                    .map_or((h, h), |(lo, hi)| (lo.min(h), hi.max(h))),
            );
        }
    };
    for v in all {
        visit(v);
    }
    out
}

/// The nodes the incident touched: its nodes now and every node set it had.
fn nodes(incident: &Incident, timeline: &[TimelineEvent]) -> Vec<String> {
    let mut out: BTreeSet<String> = incident.nodes.iter().cloned().collect();
    for e in timeline
        .iter()
        .filter(|e| e.is(EventType::NodesChanged) || e.is(EventType::Opened))
    {
        for key in ["from", "to", "nodes"] {
            if let Some(list) = e.data.get(key).and_then(Value::as_array) {
                out.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
            }
        }
    }
    out.into_iter().collect()
}

/// The root cause given at resolution, if any (the last one given).
pub fn root_cause(timeline: &[TimelineEvent]) -> Option<String> {
    timeline
        .iter()
        .rev()
        .filter(|e| e.is(EventType::PhaseChanged) || e.is(EventType::Resolved))
        .find_map(|e| text(e, "root_cause").map(str::to_string))
}

/// The playbook's post-incident review template for `incident`, prefilled.
pub fn pir_markdown(
    incident: &Incident,
    timeline: &[TimelineEvent],
    runs: &[Run],
    items: &[ActionItem],
) -> String {
    let mut timeline: Vec<&TimelineEvent> = timeline.iter().collect();
    timeline.sort_by_key(|e| e.at); // stable: same-time events keep their order
    let events: Vec<TimelineEvent> = timeline.into_iter().cloned().collect();
    let first = |t: EventType| events.iter().find(|e| e.is(t));
    let mut md = String::new();
    let w = &mut md;

    let _ = writeln!(w, "# Post-Incident Review: Incident #{}\n", incident.id);
    let _ = writeln!(
        w,
        "**Incident:** {} — {}  ",
        incident.kind,
        cell(&incident.summary)
    );
    let _ = writeln!(w, "**Date:** {}  ", date(incident.opened_at));
    let end = incident.resolved_at;
    let _ = writeln!(
        w,
        "**Duration:** {} - {}{}  ",
        time(incident.opened_at),
        end.map_or("not resolved".into(), time),
        end.map_or(String::new(), |e| format!(
            " ({})",
            human_ms(millis_between(incident.opened_at, e))
        )),
    );
    let changes: Vec<String> = events
        .iter()
        .filter_map(|e| {
            let (from, to) = if e.is(EventType::SeverityRaised) {
                (text(e, "from")?, text(e, "to")?)
            } else if e.is(EventType::SeverityChanged) {
                (text(e, "from_severity")?, text(e, "to_severity")?)
            } else {
                return None;
            };
            let by = text(e, "by")
                .map(|b| format!(" by {b}"))
                .unwrap_or_default();
            Some(format!("{from} → {to} at {}{by}", time(e.at)))
        })
        .collect();
    let severity = if changes.is_empty() {
        incident.severity.to_string()
    } else {
        format!("{} ({})", incident.severity, changes.join("; "))
    };
    let _ = writeln!(w, "**Severity:** {severity}  ");
    let people = participants(incident, &events, runs);
    let _ = writeln!(
        w,
        "**Participants:** {}\n",
        if people.is_empty() {
            TO_FILL.to_string()
        } else {
            people.join(", ")
        }
    );

    // the playbook's steps in the order they happened; a step that did not happen is said
    // after them
    let mut steps: Vec<(Timestamp, String)> = Vec::new();
    let mut missing: Vec<&str> = Vec::new();
    let mut step = |at: Timestamp, what: &str, how: &str| {
        steps.push((at, format!("- {}: {what} - {}", time(at), cell(how))));
    };
    match first(EventType::Opened) {
        Some(e) => step(e.at, "Detection", &e.message),
        None => step(incident.opened_at, "Detection", &incident.summary),
    }
    match first(EventType::Acknowledged) {
        Some(e) => step(e.at, "Response began", &e.message),
        None => missing.push("- Response began - nobody acknowledged"),
    }
    for e in events.iter().filter(|e| e.is(EventType::Escalated)) {
        step(e.at, "Escalation", &e.message);
    }
    let mut runs: Vec<&Run> = runs.iter().collect();
    runs.sort_by_key(|r| (r.created_at, r.id));
    for r in &runs {
        let node = r
            .node
            .as_deref()
            .map(|n| format!(" on {n}"))
            .unwrap_or_default();
        let approved = r
            .approved_by
            .as_deref()
            .map(|a| format!(", approved by {a}"))
            .unwrap_or_default();
        let outcome = if r.summary.is_empty() {
            String::new()
        } else {
            format!(": {}", r.summary)
        };
        let how = format!(
            "runbook {}{node} (run {}): {}, requested by {}{approved}{outcome}",
            r.script,
            r.id,
            r.status.as_str(),
            r.requested_by,
        );
        step(r.created_at, "Mitigation", &how);
    }
    for e in events.iter().filter(|e| e.is(EventType::Action)) {
        step(e.at, "Mitigation", &e.message);
    }
    if let Some(e) = events
        .iter()
        .rev()
        .find(|e| e.is(EventType::ConditionCleared))
    {
        step(e.at, "Condition cleared", &e.message);
    }
    let resolution = events.iter().rev().find(|e| {
        e.is(EventType::Resolved)
            || (e.is(EventType::PhaseChanged) && text(e, "to_phase") == Some("resolved"))
    });
    match resolution {
        Some(e) => step(e.at, "Resolution", &e.message),
        None => missing.push("- Resolution - not resolved yet"),
    }
    match (incident.resolved_at, resolution) {
        (Some(at), Some(e)) if e.is(EventType::Resolved) => step(
            at,
            "All clear",
            "stable for the stability window, resolved by neo-ir",
        ),
        (Some(at), _) => step(at, "All clear", "resolved by a person"),
        (None, _) => missing.push("- All clear - not yet"),
    }
    steps.sort_by_key(|(at, _)| *at); // stable: the playbook's order at the same time
    let _ = writeln!(w, "## Timeline");
    for (_, l) in &steps {
        let _ = writeln!(w, "{l}");
    }
    for l in missing {
        let _ = writeln!(w, "{l}");
    }

    let _ = writeln!(w, "\n## Root Cause Analysis\n");
    let _ = writeln!(w, "### What Happened\n{TO_FILL}\n");
    let _ = writeln!(
        w,
        "### Why It Happened\n{}\n",
        root_cause(&events)
            .map(|r| format!("Root cause given at resolution: {r}"))
            .unwrap_or_else(|| TO_FILL.to_string())
    );
    let _ = writeln!(w, "### Impact");
    let affected = nodes(incident, &events);
    let _ = writeln!(
        w,
        "- Nodes affected: {}",
        if affected.is_empty() {
            "none recorded".into()
        } else {
            affected.join(", ")
        }
    );
    let im = impact(incident, &events);
    if let Some(s) = im.stalled_ms {
        let _ = writeln!(w, "- Time without new blocks: {}", human_ms(s));
    }
    if let Some((lo, hi)) = im.heights {
        if lo == hi {
            let _ = writeln!(w, "- Height: {lo}");
        } else {
            let _ = writeln!(w, "- Heights: {lo} to {hi}");
        }
    }
    if let Some(l) = im.lag_blocks {
        let _ = writeln!(w, "- Largest lag: {l} blocks");
    }
    let _ = writeln!(w, "- User impact: {TO_FILL}");
    let _ = writeln!(w, "- Data impact: {TO_FILL}");
    let _ = writeln!(w, "- Business impact: {TO_FILL}\n");

    let _ = writeln!(w, "## What Went Well\n- {TO_FILL}\n");
    let _ = writeln!(w, "## What Went Wrong\n- {TO_FILL}\n");

    let _ = writeln!(w, "## Action Items");
    let _ = writeln!(
        w,
        "| Action | Owner | Due Date | Priority | Runbook | Done |"
    );
    let _ = writeln!(
        w,
        "|--------|-------|----------|----------|---------|------|"
    );
    if items.is_empty() {
        let _ = writeln!(w, "| {TO_FILL} | | | | | |");
    }
    for i in items {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&i.action),
            cell(&i.owner),
            i.due.map_or("—".into(), |d| d.to_string()),
            i.priority,
            i.runbook.as_deref().unwrap_or("—"),
            if i.done { "yes" } else { "no" }
        );
    }
    let _ = writeln!(w, "\n## Lessons Learned\n{TO_FILL}");
    md
}

/// The severities whose incidents get a review scheduled when they resolve (playbook:
/// every major incident is reviewed).
pub fn review_required(severity: Severity) -> bool {
    matches!(severity, Severity::P1 | Severity::P2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{IncidentKind, ResponseRole, Status};
    use crate::runbook::{Plan, RunStatus};
    use serde_json::json;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ev(at: &str, ty: EventType, message: &str, data: Value) -> TimelineEvent {
        TimelineEvent::new(t(at), ty, message.into(), data)
    }

    /// A P2 stall raised to P1, acknowledged, escalated, a restart run approved by bob, a
    /// person's resolution with a root cause after the condition cleared.
    fn known() -> (Incident, Vec<TimelineEvent>, Vec<Run>, Vec<ActionItem>) {
        let opened = t("2026-03-02T10:00:00Z");
        let evidence = json!({"height": 1200, "stalled_ms": 540000, "lag_blocks": 36});
        let mut roles = std::collections::BTreeMap::new();
        roles.insert(ResponseRole::IC, "carol".to_string());
        let incident = Incident {
            id: 42,
            version: 9,
            key: "consensus_failure".into(),
            kind: IncidentKind::ConsensusFailure,
            severity: Severity::P1,
            status: Status::Resolved,
            nodes: vec!["cn-1".into(), "cn-2".into()],
            summary: "no new block for 9 min at height 1200".into(),
            evidence: evidence.clone(),
            opened_at: opened,
            resolved_at: Some(t("2026-03-02T11:15:00Z")),
            updated_at: t("2026-03-02T11:15:00Z"),
            detected_severity: Severity::P1,
            cleared_at: Some(t("2026-03-02T10:40:00Z")),
            roles,
            ack_due_at: None,
            acked_at: Some(t("2026-03-02T10:04:00Z")),
            acked_by: Some("alice".into()),
            ack_breached_at: None,
            escalation_policy: None,
            escalation_step: 1,
            escalation_due_at: None,
            last_update_at: None,
            update_due_at: None,
        };
        let timeline = vec![
            ev(
                "2026-03-02T10:00:00Z",
                EventType::Opened,
                "P2 consensus_failure opened: no new block for 3 min at height 1200",
                json!({"severity": "P2", "nodes": ["cn-1"], "evidence": {"height": 1200, "stalled_ms": 180000}}),
            ),
            ev(
                "2026-03-02T10:00:00Z",
                EventType::Escalated,
                "paging on-call engineer (step 1 of 3)",
                json!({"recipient": "on-call engineer", "step": 1}),
            ),
            ev(
                "2026-03-02T10:04:00Z",
                EventType::Acknowledged,
                "acknowledged by alice after 4 min 0 s",
                json!({"by": "alice", "from": "cli"}),
            ),
            ev(
                "2026-03-02T10:06:00Z",
                EventType::SeverityRaised,
                "severity raised P2 → P1: no new block for 6 min",
                json!({"from": "P2", "to": "P1", "evidence": evidence}),
            ),
            ev(
                "2026-03-02T10:07:00Z",
                EventType::NodesChanged,
                "nodes now cn-1, cn-2",
                json!({"from": ["cn-1"], "to": ["cn-1", "cn-2"]}),
            ),
            ev(
                "2026-03-02T10:08:00Z",
                EventType::RoleAssigned,
                "carol is Incident Commander (IC), assigned by alice",
                json!({"role": "IC", "holder": "carol", "previous": null, "by": "alice"}),
            ),
            ev(
                "2026-03-02T10:20:00Z",
                EventType::Note,
                "dave: cn-2 disk full",
                json!({"by": "dave", "text": "cn-2 disk full"}),
            ),
            ev(
                "2026-03-02T10:40:00Z",
                EventType::ConditionCleared,
                "condition cleared after 40 min 0 s",
                json!({"after_ms": 2400000, "last_evidence": evidence}),
            ),
            ev(
                "2026-03-02T11:15:00Z",
                EventType::PhaseChanged,
                "monitoring → resolved by carol; root cause: cn-2's disk filled up",
                json!({"from_phase": "monitoring", "to_phase": "resolved", "by": "carol",
                       "root_cause": "cn-2's disk filled up"}),
            ),
        ];
        let runs = vec![Run {
            id: 7,
            script: "restart_node".into(),
            args: vec![],
            node: Some("cn-2".into()),
            incident_id: Some(42),
            status: RunStatus::Succeeded,
            requested_by: "erin via cli".into(),
            approved_by: Some("bob via api".into()),
            plan: Plan {
                steps: vec![],
                notes: vec![],
            },
            results: vec![],
            report: json!({}),
            summary: "cn-2 restarted, height 1201".into(),
            created_at: t("2026-03-02T10:30:00Z"),
            finished_at: Some(t("2026-03-02T10:32:00Z")),
            automatic: false,
        }];
        let items = vec![ActionItem {
            id: 1,
            action: "alert on disk usage above 80% | on validators".into(),
            owner: "dave".into(),
            due: Some("2026-03-16".parse().unwrap()),
            priority: Priority::High,
            done: false,
            runbook: Some("emergency_cleanup".into()),
            done_at: None,
        }];
        (incident, timeline, runs, items)
    }

    #[test]
    fn the_review_of_a_known_timeline_matches_its_snapshot() {
        let (i, tl, runs, items) = known();
        insta::assert_snapshot!(pir_markdown(&i, &tl, &runs, &items));
    }

    #[test]
    fn participants_are_everyone_who_took_part() {
        let (i, tl, runs, _) = known();
        assert_eq!(
            participants(&i, &tl, &runs),
            ["alice", "bob", "carol", "dave", "erin"]
        );
        // as the runner writes it: `who (from)`
        let mut theirs = runs.clone();
        theirs[0].requested_by = "erin (cli)".into();
        assert_eq!(participants(&i, &tl, &theirs), participants(&i, &tl, &runs));
        let mut auto = runs.clone();
        auto[0].requested_by = "auto-remediation".into();
        auto[0].approved_by = None;
        assert_eq!(
            participants(&i, &tl, &auto),
            ["alice", "carol", "dave"],
            "the machine is no participant"
        );
    }

    #[test]
    fn times_come_from_the_timeline_and_missing_ones_are_said() {
        let (i, tl, runs, items) = known();
        let md = pir_markdown(&i, &tl, &runs, &items);
        assert!(md.contains("**Date:** 2026-03-02"));
        assert!(md.contains("2026-03-02 10:00:00 UTC - 2026-03-02 11:15:00 UTC (1 h 15 min)"));
        assert!(md.contains("- 2026-03-02 10:04:00 UTC: Response began - acknowledged by alice"));
        assert!(md.contains("- 2026-03-02 10:30:00 UTC: Mitigation - runbook restart_node on cn-2 (run 7): succeeded, requested by erin via cli, approved by bob via api"));
        assert!(
            md.contains("- 2026-03-02 11:15:00 UTC: Resolution - monitoring → resolved by carol")
        );
        assert!(md.contains("- 2026-03-02 10:40:00 UTC: Condition cleared"));
        assert!(md.contains("Root cause given at resolution: cn-2's disk filled up"));
        assert!(md.contains("**Severity:** P1 (P2 → P1 at 2026-03-02 10:06:00 UTC)"));
        assert!(md.contains("- Nodes affected: cn-1, cn-2"));
        assert!(md.contains("- Time without new blocks: 9 min 0 s"));
        assert!(md.contains("alert on disk usage above 80% \\| on validators"));
        assert_eq!(md.matches(TO_FILL).count(), 7, "{md}");

        // an open incident nobody acknowledged
        let mut open = i.clone();
        open.resolved_at = None;
        open.status = Status::Detected;
        let md = pir_markdown(&open, &tl[..2], &[], &[]);
        assert!(md.contains("- Response began - nobody acknowledged"));
        assert!(md.contains("- Resolution - not resolved yet"));
        assert!(md.contains("- All clear - not yet"));
        assert!(md.contains("### Why It Happened\n_to fill in_"));
        assert!(md.contains(&format!("| {TO_FILL} | | | | | |")));
    }

    #[test]
    fn the_engine_resolution_is_the_all_clear_at_the_end_of_the_window() {
        let (i, mut tl, _, _) = known();
        tl.pop();
        tl.push(ev(
            "2026-03-02T11:10:00Z",
            EventType::Resolved,
            "stable for 30 min 0 s since the condition cleared: resolved after 1 h 10 min",
            json!({"duration_ms": 4200000}),
        ));
        let mut i = i;
        i.resolved_at = Some(t("2026-03-02T11:10:00Z"));
        let md = pir_markdown(&i, &tl, &[], &[]);
        assert!(
            md.contains("- 2026-03-02 11:10:00 UTC: All clear - stable for the stability window")
        );
        assert!(md.contains("### Why It Happened\n_to fill in_"));
    }

    #[test]
    fn items_priorities_and_names_are_checked() {
        assert_eq!("Med".parse::<Priority>().unwrap(), Priority::Medium);
        assert!("urgent".parse::<Priority>().is_err());
        assert_eq!(serde_json::to_value(Priority::High).unwrap(), "high");
        assert!(check_action(" ").is_err());
        assert!(check_action(&"x".repeat(MAX_ACTION + 1)).is_err());
        assert_eq!(check_owner(" alice ").unwrap(), "alice");
        assert!(check_owner("a\u{1b}[31m").is_err());
        assert!(check_runbook("restart_node").is_ok());
        for bad in ["", "../etc", "Restart", "a b", &"a".repeat(65)] {
            assert!(check_runbook(bad).is_err(), "{bad:?}");
        }
        assert!(check_markdown("").is_err());
        assert!(check_markdown("a\0b").is_err());
        let (_, _, _, items) = known();
        assert!(
            !items[0].is_overdue(t("2026-03-16T23:59:59Z")),
            "due that day"
        );
        assert!(items[0].is_overdue(t("2026-03-17T00:00:00Z")));
        let mut done = items[0].clone();
        done.done = true;
        assert!(!done.is_overdue(t("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn an_overdue_item_is_reminded_with_its_action_owner_due_date_and_priority() {
        let (_, _, _, items) = known();
        let item = &items[0];
        assert_eq!(overdue_reminder(42, item, t("2026-03-16T12:00:00Z")), None);
        let e = overdue_reminder(42, item, t("2026-03-19T08:00:00Z")).unwrap();
        assert!(e.is(EventType::ActionItemOverdue));
        assert_eq!(e.event_type, "action_item_overdue");
        assert_eq!(
            e.message,
            "Action item overdue: alert on disk usage above 80% | on validators (dave, due \
             2026-03-16, high priority, runbook emergency_cleanup) — incident #42 review, item 1"
        );
        assert_eq!(e.data["item"], 1);
        assert_eq!(e.data["due"], "2026-03-16");
        assert_eq!(e.data["priority"], "high");
        assert_eq!(e.data["days_overdue"], 3);
        let mut done = item.clone();
        done.done = true;
        assert_eq!(overdue_reminder(42, &done, t("2026-04-01T00:00:00Z")), None);
        let mut long = item.clone();
        long.action = format!("{}\nsecond line", "x".repeat(400));
        long.runbook = None;
        let e = overdue_reminder(42, &long, t("2026-04-01T00:00:00Z")).unwrap();
        assert!(!e.message.contains('\n'), "one line: {}", e.message);
        assert!(e.message.contains("…"), "clipped: {}", e.message);
        assert_eq!(
            e.data["action"],
            long.action.as_str(),
            "the whole text is kept"
        );
    }

    #[test]
    fn a_runbook_was_last_reviewed_when_an_item_pointing_at_it_was_done() {
        let (_, _, _, items) = known();
        let item = |id, runbook: &str, done_at: Option<&str>| ActionItem {
            id,
            runbook: Some(runbook.into()),
            done: done_at.is_some(),
            done_at: done_at.map(t),
            ..items[0].clone()
        };
        let all = vec![
            (1, item(1, "node_down", Some("2026-03-01T10:00:00Z"))),
            (2, item(2, "node_down", Some("2026-04-01T10:00:00Z"))),
            (3, item(3, "node_down", None)),
            (3, item(4, "restart_node", None)),
            (4, item(5, "old_name", None)),
            (
                4,
                ActionItem {
                    runbook: None,
                    ..items[0].clone()
                },
            ),
        ];
        let r = runbook_reviews(&["node_down", "split_brain", "restart_node"], &all);
        let names: Vec<&str> = r.iter().map(|r| r.runbook.as_str()).collect();
        assert_eq!(
            names,
            ["node_down", "split_brain", "restart_node", "old_name"]
        );
        assert_eq!(r[0].last_reviewed, Some(t("2026-04-01T10:00:00Z")));
        assert_eq!(r[0].last_incident, Some(2));
        assert_eq!(r[0].open_items.len(), 1);
        assert_eq!(r[0].open_items[0].1.id, 3);
        assert_eq!(r[1].last_reviewed, None, "never");
        assert!(r[1].open_items.is_empty());
        assert_eq!(r[2].last_reviewed, None);
        assert_eq!(r[2].open_items[0].0, 3);
        assert_eq!(r[3].open_items[0].1.id, 5, "an unknown name is not hidden");
    }

    #[test]
    fn runbook_names_are_the_playbooks_or_scripts() {
        assert_eq!(PLAYBOOK_RUNBOOKS.len(), 6);
        for r in PLAYBOOK_RUNBOOKS {
            assert_eq!(r.name, r.kind.as_str());
            assert!(!crate::runbook::checklist(r.kind).is_empty(), "{}", r.name);
            assert!(check_runbook(r.name).is_ok());
        }
        let scripts = ["restart_node", "quick_recovery"];
        assert_eq!(
            check_known_runbook("split_brain", scripts).unwrap(),
            "split_brain"
        );
        assert!(check_known_runbook("restart_node", scripts).is_ok());
        let e = check_known_runbook("restart_nodes", scripts).unwrap_err();
        assert!(
            e.contains("\"restart_nodes\"") && e.contains("node_down"),
            "{e}"
        );
        assert!(e.contains("quick_recovery"), "{e}");
        assert!(check_known_runbook("../etc", scripts).is_err());
    }
}
