//! PagerDuty Events API v2: trigger, acknowledge and resolve one PagerDuty incident per
//! neo-ir incident (one `dedup_key`).

use reqwest::Url;
use serde_json::{json, Value};

use super::http::{post_json, to_body};
use super::{truncate_chars, Channel, Delivered, SendError};
use neo_ir_core::incident::Severity;
use neo_ir_core::notify::{MessageKind, Notification, Rendered};

pub(super) const API: &str = "https://events.pagerduty.com";

/// PagerDuty's limits for `summary` and `dedup_key`.
const MAX_SUMMARY: usize = 1024;
const MAX_DEDUP_KEY: usize = 255;

/// `trigger`, `acknowledge` or `resolve`.
pub fn event_action(n: &Notification) -> &'static str {
    if n.kind == MessageKind::Resolved {
        "resolve"
    } else if n.event.event_type == "acknowledged" {
        "acknowledge"
    } else {
        "trigger"
    }
}

pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::P1 => "critical",
        Severity::P2 => "error",
        Severity::P3 => "warning",
        Severity::P4 => "info",
    }
}

/// The event to enqueue.
pub fn event(routing_key: &str, n: &Notification, r: &Rendered) -> Value {
    let action = event_action(n);
    let dedup_key: String = n.dedup_key().chars().take(MAX_DEDUP_KEY).collect();
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key,
    });
    if action == "trigger" {
        let inc = &n.incident;
        let summary = if r.title.trim().is_empty() {
            &inc.summary
        } else {
            &r.title
        };
        let mut payload = json!({
            "summary": truncate_chars(summary, MAX_SUMMARY),
            "source": "neo-ir",
            "severity": severity(inc.severity),
            "timestamp": n.event.at.to_string(),
            "group": n.network.as_deref().unwrap_or("neo"),
            "class": inc.kind.as_str(),
            "custom_details": {
                "text": r.text,
                "incident_id": inc.id,
                "evidence": inc.evidence,
            },
        });
        if !inc.nodes.is_empty() {
            payload["component"] = json!(inc.nodes.join(", "));
        }
        event["payload"] = payload;
        if let Some(link) = &n.link {
            event["client"] = json!("neo-ir");
            event["client_url"] = json!(link);
        }
    }
    event
}

pub(super) async fn send(
    ch: &Channel,
    url: &Url,
    n: &Notification,
    r: &Rendered,
) -> Result<Delivered, SendError> {
    let key = ch.secret.as_deref().unwrap_or_default();
    let body = to_body(&event(key, n, r))?;
    let reply = post_json(ch, url, body, &[]).await?;
    let v = reply.json().unwrap_or_default();
    if reply.status.is_success() {
        let detail = v["dedup_key"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| n.dedup_key());
        return Ok(Delivered {
            status: reply.status.as_u16(),
            detail,
        });
    }
    let what = v["message"].as_str().map(|m| {
        let errors: Vec<&str> = v["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let text = if errors.is_empty() {
            m.to_string()
        } else {
            format!("{m}: {}", errors.join("; "))
        };
        truncate_chars(&text, 500)
    });
    Err(reply.error(what))
}
