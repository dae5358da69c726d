//! Human-readable output: incident tables (≤ 100 columns, local time with zone) and details.

use std::fmt::Write;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use neo_ir_core::incident::{human_ms, Incident, TimelineEvent};

/// Local time with zone, e.g. "2026-11-29 01:02:03 UTC".
pub fn local(t: Timestamp) -> String {
    t.to_zoned(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// The incident list as a table.
pub fn incident_table(list: &[Incident]) -> String {
    if list.is_empty() {
        return "no incidents\n".to_string();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5}  {:<3}  {:<17}  {:<9}  {:<23}  NODES / SUMMARY",
        "ID", "SEV", "KIND", "STATUS", "OPENED"
    );
    for i in list {
        let _ = writeln!(
            out,
            "{:>5}  {:<3}  {:<17}  {:<9}  {:<23}  {}",
            i.id,
            i.severity.as_str(),
            i.kind.as_str(),
            i.status.as_str(),
            local(i.opened_at),
            clip(&i.nodes.join(","), 30)
        );
        let _ = writeln!(out, "{:>5}  {}", "", clip(&i.summary, 93));
    }
    out
}

/// One incident with evidence and timeline.
pub fn incident_detail(i: &Incident, timeline: &[TimelineEvent]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Incident {}  {} {}  [{}]",
        i.id,
        i.severity,
        i.kind,
        i.status.as_str()
    );
    let _ = writeln!(out, "Summary:  {}", i.summary);
    let _ = writeln!(out, "Nodes:    {}", i.nodes.join(", "));
    let _ = writeln!(out, "Opened:   {}", local(i.opened_at));
    match i.resolved_at {
        Some(r) => {
            let ms = neo_ir_core::clock::millis_between(i.opened_at, r);
            let _ = writeln!(out, "Resolved: {} (after {})", local(r), human_ms(ms));
        }
        None => {
            let _ = writeln!(out, "Resolved: not yet");
        }
    }
    match (i.acked_at, &i.acked_by, i.ack_due_at) {
        (Some(at), by, _) => {
            let ms = neo_ir_core::clock::millis_between(i.opened_at, at);
            let _ = writeln!(
                out,
                "Acked:    {} by {} (after {})",
                local(at),
                by.as_deref().unwrap_or("someone"),
                human_ms(ms)
            );
        }
        (None, _, Some(due)) => {
            let missed = if i.ack_breached_at.is_some() {
                ", MISSED"
            } else {
                ""
            };
            let when = if i.is_open() { "not yet" } else { "never" };
            let _ = writeln!(out, "Acked:    {when} (due {}{missed})", local(due));
        }
        (None, _, None) => {}
    }
    if !i.roles.is_empty() {
        let _ = writeln!(
            out,
            "Roles:    {}",
            neo_ir_core::respond::roles_line(&i.roles)
        );
    }
    if let Some(c) = i.cleared_at.filter(|_| i.is_open()) {
        let _ = writeln!(out, "Cleared:  since {} (resolves when stable)", local(c));
    }
    if let (Some(due), Some(policy)) = (i.escalation_due_at, &i.escalation_policy) {
        let _ = writeln!(
            out,
            "Escalate: step {} of policy {policy} at {} unless acknowledged",
            i.escalation_step + 1,
            local(due)
        );
    }
    if let Some(due) = i.update_due_at {
        let _ = writeln!(out, "Update:   next one due {}", local(due));
    }
    let _ = writeln!(out, "Evidence:");
    if let Some(map) = i.evidence.as_object() {
        for (k, v) in map {
            if !v.is_null() {
                let _ = writeln!(out, "  {k:<24} {}", clip(&v.to_string(), 72));
            }
        }
    }
    let _ = writeln!(out, "Timeline:");
    for e in timeline {
        let _ = writeln!(
            out,
            "  {}  {:<24} {}",
            local(e.at),
            e.event_type,
            clip(&e.message, 120)
        );
    }
    out
}
