//! The playbook's messages: rendering a [`Notification`] into a title and a text.
//!
//! Each [`MessageKind`] has two templates: `<kind>.txt`, the body, and `<kind>.title.txt`,
//! the one-line title (an email's subject, a PagerDuty summary). The built-in ones
//! (`crates/notify/templates/`) follow the playbook's "Incident Communication Templates":
//! INCIDENT ALERT, INCIDENT UPDATE, INCIDENT RESOLVED, plus a page, a severity change and a
//! review notice. An operator overrides any of them with a directory of files of the same
//! names ([`Templates::with_overrides`]); the others stay built in.
//!
//! Templates are [MiniJinja](https://docs.rs/minijinja) (Jinja2) text, rendered with:
//! - no escaping (the output is plain text with light Markdown);
//! - strict undefined: a variable that does not exist is an error, never an empty string.
//!   Every variable of [`VARIABLES`] is always set; those that do not apply are `none`, so
//!   test them with `{% if x is not none %}`. A role nobody holds is not in `roles`: test
//!   `{% if "TL" in roles %}`;
//! - `trim_blocks` and `lstrip_blocks`: a line holding only a block tag (`{% if %}`,
//!   `{% for %}`, `{% endif %}`) leaves nothing in the output. Mind that a block tag ending a
//!   line takes the line's newline with it: end such a line with an expression
//!   (`{{ " by " ~ by if by is not none else "" }}`) instead of an inline `{% if %}`.
//!
//! After rendering, trailing spaces are removed from each line, runs of blank lines become
//! one and the text is trimmed; the title's lines are joined into one. A drill incident's
//! title and text then get `[DRILL] ` in front, whatever the template (built in or an
//! override): nobody may take a drill for a real incident, on any channel. A message that renders
//! empty is an error: nothing is ever sent empty. [`Templates::check`] renders every template
//! against sample notifications of every kind, so a template that fails does so at startup,
//! naming the file and line, not at the first incident.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use neo_ir_core::incident::{human_ms, EventType, Incident, ResponseRole, Severity};
use neo_ir_core::kpis::is_drill;
use neo_ir_core::notify::{MessageKind, Notification, Rendered};
use neo_ir_core::oncall::ResponseConfig;
use serde_json::json;

/// The variables every template sees: (name, meaning). Times read
/// `YYYY-MM-DD HH:MM:SS UTC`; "none" means the variable is set to `none` (test it with
/// `is none` / `is not none`).
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "kind",
        "the message: alert, update, severity, page, resolved or review",
    ),
    (
        "event",
        "the timeline event the message is about: opened, acknowledged, phase_changed, \
         status_update, condition_cleared, recurred, severity_raised, severity_changed, \
         escalated, resolved, review_scheduled, action_item_overdue",
    ),
    ("time", "when the event happened"),
    ("severity", "the incident's severity now: P1, P2, P3 or P4"),
    (
        "previous_severity",
        "the severity before a severity change (severity messages), else none",
    ),
    (
        "incident_id",
        "the incident's number (`neo-ir ack <incident_id>`)",
    ),
    (
        "incident_kind",
        "node_down, sync_failure, consensus_failure, data_corruption, network_attack, \
         split_brain or performance_degradation",
    ),
    (
        "service",
        "the nodes and network, e.g. \"Neo node rpc-1, rpc-2 (MainNet)\"; \
         \"(network unknown)\" when the network is not known",
    ),
    (
        "network",
        "MainNet, TestNet or \"private network <magic>\"; none when not known",
    ),
    ("nodes", "the names of the nodes involved (a list)"),
    ("impact", "the incident's summary"),
    (
        "status",
        "the phase, capitalized: Detected, Triage, Investigating, Mitigating, Monitoring, \
         Resolved, Reviewed",
    ),
    (
        "previous_status",
        "the phase before the event (phase changes, condition cleared or back), else none",
    ),
    (
        "ic",
        "who holds the Incident Commander role, or \"unassigned\"",
    ),
    (
        "roles",
        "who holds which role: a map from IC, TL, CL, OL to a name (only the roles held)",
    ),
    (
        "next_update",
        "when the next update is due: the time set by the update reminders, else \
         \"in 15 minutes\" from the severity's playbook interval (P1 15, P2 30, P3 60 \
         minutes), \"when there is news\" for P4, \"no further updates\" once resolved",
    ),
    (
        "duration",
        "how long the incident lasted: opened to resolved, or opened to the event",
    ),
    ("opened_at", "when the incident opened"),
    (
        "root_cause",
        "the root cause, when the event carries one (review messages), else none",
    ),
    (
        "evidence",
        "what the detector observed: a list of \"key: value\" strings (may be empty)",
    ),
    ("message", "the timeline event's own one-line description"),
    (
        "reason",
        "the reason a person gave (phase and severity changes), else none",
    ),
    ("by", "who made the change (a person's events), else none"),
    ("update", "the text of a person's status update, else none"),
    (
        "recipient",
        "who an escalation step pages (page messages), else none",
    ),
    (
        "step",
        "the escalation step paging (page messages, from 1), else none",
    ),
    (
        "of",
        "how many steps the escalation policy has (page messages), else none",
    ),
    (
        "review_at",
        "when the post-incident review is scheduled (review messages, and resolved messages \
         of an incident whose review was scheduled as it resolved: P1/P2), else none",
    ),
    (
        "drill",
        "true for a drill incident (its title and text start with [DRILL] anyway), else false",
    ),
    (
        "acknowledged_by",
        "who acknowledged the incident, or none while unacknowledged",
    ),
    (
        "link",
        "a link to the incident (when notify.public_url is set), else none",
    ),
    (
        "channel_suggestion",
        "the chat channel the playbook suggests: #incident-YYYY-MM-DD-<kind>",
    ),
];

/// What every drill message's title and text start with.
pub const DRILL_MARK: &str = "[DRILL] ";

/// Why templates could not be loaded, checked or rendered. Each names the template: its
/// file for an override, `builtin:<name>` for a built-in one.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The override directory or one of its files could not be read.
    #[error("templates: cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file of the override directory whose name is not a template's.
    #[error(
        "template {}: unknown file name (expected <kind>.txt for a body or <kind>.title.txt \
         for a title, kind one of {})",
        path.display(),
        kinds()
    )]
    UnknownFile { path: PathBuf },
    /// A template that does not parse.
    #[error("template {template}{}: syntax error: {detail}", At(*line, source_line))]
    Syntax {
        template: String,
        line: Option<usize>,
        source_line: Option<String>,
        detail: String,
    },
    /// A template that fails to render (an unknown variable, a bad filter).
    #[error(
        "template {template}{}: {detail} (rendering {rendering})",
        At(*line, source_line)
    )]
    Render {
        template: String,
        line: Option<usize>,
        source_line: Option<String>,
        /// Which message: "the alert message, event `opened`".
        rendering: String,
        detail: String,
    },
    /// A template that renders nothing but whitespace.
    #[error(
        "template {template}: renders an empty {part} (rendering {rendering}; a message is \
         never sent empty)"
    )]
    Empty {
        template: String,
        part: &'static str,
        /// Which message: "the alert message, event `opened`".
        rendering: String,
    },
}

/// " line 3 (`{{ impcat }}`)" when the line is known.
struct At<'a>(Option<usize>, &'a Option<String>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.0 {
            write!(f, " line {line}")?;
            if let Some(text) = self.1 {
                write!(f, " (`{text}`)")?;
            }
        }
        Ok(())
    }
}

/// "the alert message, event `opened`", for errors.
fn rendering(n: &Notification) -> String {
    format!(
        "the {} message, event `{}`",
        n.kind.as_str(),
        n.event.event_type
    )
}

fn kinds() -> String {
    MessageKind::ALL.map(MessageKind::as_str).join(", ")
}

/// The built-in templates: (name in the environment, source).
const BUILTIN: [(&str, &str); 12] = [
    ("alert.txt", include_str!("../templates/alert.txt")),
    (
        "alert.title.txt",
        include_str!("../templates/alert.title.txt"),
    ),
    ("update.txt", include_str!("../templates/update.txt")),
    (
        "update.title.txt",
        include_str!("../templates/update.title.txt"),
    ),
    ("severity.txt", include_str!("../templates/severity.txt")),
    (
        "severity.title.txt",
        include_str!("../templates/severity.title.txt"),
    ),
    ("page.txt", include_str!("../templates/page.txt")),
    (
        "page.title.txt",
        include_str!("../templates/page.title.txt"),
    ),
    ("resolved.txt", include_str!("../templates/resolved.txt")),
    (
        "resolved.title.txt",
        include_str!("../templates/resolved.title.txt"),
    ),
    ("review.txt", include_str!("../templates/review.txt")),
    (
        "review.title.txt",
        include_str!("../templates/review.title.txt"),
    ),
];

/// Where a template came from, and its text (for error messages).
#[derive(Clone)]
struct Source {
    /// The override's file path, or `builtin:<name>`.
    origin: String,
    text: String,
}

/// The templates of every message kind, ready to render.
#[derive(Clone)]
pub struct Templates {
    env: Environment<'static>,
    /// By the template's name in `env` (`alert.txt`, `alert.title.txt`, ...).
    sources: BTreeMap<String, Source>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field(
                "templates",
                &self.sources.values().map(|s| &s.origin).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Templates::builtin()
    }
}

fn body_name(kind: MessageKind) -> String {
    format!("{}.txt", kind.as_str())
}

fn title_name(kind: MessageKind) -> String {
    format!("{}.title.txt", kind.as_str())
}

impl Templates {
    fn empty() -> Templates {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        Templates {
            env,
            sources: BTreeMap::new(),
        }
    }

    /// Add (or replace) template `name`.
    fn add(&mut self, name: &str, origin: String, text: String) -> Result<(), TemplateError> {
        let source = Source { origin, text };
        if let Err(e) = self
            .env
            .add_template_owned(name.to_string(), source.text.clone())
        {
            let line = e.line();
            return Err(TemplateError::Syntax {
                template: source.origin.clone(),
                line,
                source_line: line.and_then(|l| source_line(&source.text, l)),
                detail: e
                    .detail()
                    .map_or_else(|| e.kind().to_string(), str::to_string),
            });
        }
        self.sources.insert(name.to_string(), source);
        Ok(())
    }

    /// The built-in templates (the playbook's three, plus page, severity and review).
    pub fn builtin() -> Templates {
        let mut t = Templates::empty();
        for (name, text) in BUILTIN {
            t.add(name, format!("builtin:{name}"), text.to_string())
                .unwrap_or_else(|e| panic!("built-in template: {e}"));
        }
        t
    }

    /// The built-ins overridden by the files of `dir`: `<kind>.txt` for the body and
    /// optionally `<kind>.title.txt` for the one-line title, kind in alert, update,
    /// severity, page, resolved, review. Any other file is an error naming it (a typo must
    /// not be silently ignored); hidden entries (names starting with `.`, e.g. the `..data`
    /// links of a mounted Kubernetes ConfigMap) are skipped. After loading, [`check`]
    /// renders every template against sample notifications.
    ///
    /// [`check`]: Templates::check
    pub fn with_overrides(dir: &Path) -> Result<Templates, TemplateError> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TemplateError::Read { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
            let entry = entry.map_err(read_err(dir))?;
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(TemplateError::UnknownFile { path });
            };
            if name.starts_with('.') {
                continue;
            }
            let kind = name
                .strip_suffix(".title.txt")
                .or_else(|| name.strip_suffix(".txt"))
                .and_then(|k| k.parse::<MessageKind>().ok());
            if kind.is_none() {
                return Err(TemplateError::UnknownFile { path });
            }
            files.push((name.to_string(), path));
        }
        files.sort();
        let mut t = Templates::builtin();
        for (name, path) in files {
            let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
            t.add(&name, path.display().to_string(), text)?;
        }
        t.check()?;
        Ok(t)
    }

    /// Render every template against sample notifications of every kind (each kind's
    /// events, with and without the optional parts: network, link, roles, evidence), so a
    /// template that fails (an unknown variable, a bad filter, an empty rendering) fails at
    /// startup, naming the file and line, not at the first incident.
    pub fn check(&self) -> Result<(), TemplateError> {
        for n in samples() {
            self.render(&n)?;
        }
        Ok(())
    }

    /// Render one notification: the title (one line, trimmed) and the text (trimmed). An
    /// empty rendering is an error: a message is never sent empty.
    pub fn render(&self, n: &Notification) -> Result<Rendered, TemplateError> {
        let ctx = context(n);
        let title = self.render_one(&title_name(n.kind), n, &ctx)?;
        let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = tidy(&self.render_one(&body_name(n.kind), n, &ctx)?);
        for (part, value, name) in [
            ("title", &title, title_name(n.kind)),
            ("text", &text, body_name(n.kind)),
        ] {
            if value.is_empty() {
                return Err(TemplateError::Empty {
                    template: self.origin(&name),
                    part,
                    rendering: rendering(n),
                });
            }
        }
        if is_drill(&n.incident) {
            // here, not in the templates: an override cannot forget it
            return Ok(Rendered {
                title: format!("{DRILL_MARK}{title}"),
                text: format!("{DRILL_MARK}{text}"),
            });
        }
        Ok(Rendered { title, text })
    }

    fn origin(&self, name: &str) -> String {
        self.sources
            .get(name)
            .map_or_else(|| name.to_string(), |s| s.origin.clone())
    }

    fn render_one(
        &self,
        name: &str,
        n: &Notification,
        ctx: &Value,
    ) -> Result<String, TemplateError> {
        let render = || self.env.get_template(name)?.render(ctx);
        render().map_err(|e| {
            // the template the error is in (an `include` may name another)
            let at = e.name().unwrap_or(name);
            let line = e.line();
            TemplateError::Render {
                template: self.origin(at),
                line,
                source_line: line
                    .and_then(|l| self.sources.get(at).and_then(|s| source_line(&s.text, l))),
                rendering: rendering(n),
                detail: describe(&e),
            }
        })
    }
}

/// The error's kind and detail, without minijinja's own "(in name:line)" suffix.
fn describe(e: &minijinja::Error) -> String {
    let mut s = match (e.kind(), e.detail()) {
        (kind, Some(d)) => format!("{kind}: {d}"),
        (minijinja::ErrorKind::UndefinedError, None) => {
            "undefined value (not a variable of the list, or a missing attribute or key)"
                .to_string()
        }
        (kind, None) => kind.to_string(),
    };
    // the cause, when the error wraps one (e.g. inside an included template)
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(" ({c})"));
        cause = c.source();
    }
    s
}

/// Line `line` (1-based) of `text`, trimmed, when short enough to quote.
fn source_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?.trim();
    (!l.is_empty() && l.chars().count() <= 120).then(|| l.to_string())
}

/// Trailing spaces off each line, runs of blank lines down to one, the whole trimmed.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out.trim().to_string()
}

/// A time as templates show it: `2024-05-01 12:00:00 UTC`.
fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn millis(from: Timestamp, to: Timestamp) -> u64 {
    (to.as_millisecond() - from.as_millisecond()).max(0) as u64
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// "in 15 minutes", for an update interval.
fn in_words(every: std::time::Duration) -> String {
    let m = every.as_secs() / 60;
    if m == 0 || every != std::time::Duration::from_secs(m * 60) {
        format!("in {}", human_ms(every.as_millis() as u64))
    } else if m == 1 {
        "in 1 minute".to_string()
    } else {
        format!("in {m} minutes")
    }
}

/// When the next update is due, in words.
fn next_update(inc: &Incident) -> String {
    if !inc.is_open() {
        return "no further updates".to_string();
    }
    if let Some(due) = inc.update_due_at {
        return time(due);
    }
    match ResponseConfig::default().update_every(inc.severity) {
        Some(every) => in_words(every),
        None => "when there is news".to_string(),
    }
}

/// The variables of [`VARIABLES`] for `n`.
fn context(n: &Notification) -> Value {
    let inc = &n.incident;
    let ev = &n.event;
    let data = &ev.data;
    let is = |t: EventType| ev.is(t);
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let previous_severity = if is(EventType::SeverityRaised) {
        text("from")
    } else if is(EventType::SeverityChanged) {
        text("from_severity")
    } else {
        None
    };
    let previous_status =
        (is(EventType::PhaseChanged) || is(EventType::ConditionCleared) || is(EventType::Recurred))
            .then(|| text("from_phase").map(|p| capitalized(&p)))
            .flatten();
    let paging = is(EventType::Escalated);
    let count = |key: &str| data.get(key).and_then(|v| v.as_u64()).filter(|_| paging);
    // the review notice's date; a resolution carries the review scheduled with it
    let resolution =
        is(EventType::Resolved) || (is(EventType::PhaseChanged) && data["to_phase"] == "resolved");
    let review_at = if is(EventType::ReviewScheduled) {
        text("at")
    } else if resolution {
        text("review_at")
    } else {
        None
    }
    .map(|at| at.parse::<Timestamp>().map_or(at, time));
    let acknowledged_by = inc
        .acked_by
        .clone()
        .or_else(|| is(EventType::Acknowledged).then(|| text("by")).flatten());
    let network = n.network.as_deref().unwrap_or("network unknown");
    let service = if inc.nodes.is_empty() {
        format!("Neo node ({network})")
    } else {
        format!("Neo node {} ({network})", inc.nodes.join(", "))
    };
    let evidence: Vec<String> = match inc.evidence.as_object() {
        Some(fields) => fields
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v.as_str() {
                Some(s) => format!("{k}: {s}"),
                None => format!("{k}: {v}"),
            })
            .collect(),
        None => Vec::new(),
    };
    let roles: BTreeMap<&str, &str> = inc
        .roles
        .iter()
        .map(|(r, who)| (r.as_str(), who.as_str()))
        .collect();
    let ic = inc
        .roles
        .get(&ResponseRole::IC)
        .cloned()
        .unwrap_or_else(|| "unassigned".to_string());
    let end = inc.resolved_at.unwrap_or(ev.at);
    Value::from_serialize(json!({
        "kind": n.kind.as_str(),
        "event": ev.event_type,
        "time": time(ev.at),
        "severity": inc.severity.as_str(),
        "previous_severity": previous_severity,
        "incident_id": inc.id,
        "incident_kind": inc.kind.as_str(),
        "service": service,
        "network": n.network,
        "nodes": inc.nodes,
        "impact": inc.summary,
        "status": capitalized(inc.status.as_str()),
        "previous_status": previous_status,
        "ic": ic,
        "roles": roles,
        "next_update": next_update(inc),
        "duration": human_ms(millis(inc.opened_at, end)),
        "opened_at": time(inc.opened_at),
        "root_cause": text("root_cause"),
        "evidence": evidence,
        "message": ev.message,
        "reason": text("reason"),
        "by": text("by"),
        "update": is(EventType::StatusUpdate).then(|| text("text")).flatten(),
        "recipient": paging.then(|| text("recipient")).flatten(),
        "step": count("step"),
        "of": count("of"),
        "review_at": review_at,
        "drill": is_drill(inc),
        "acknowledged_by": acknowledged_by,
        "link": n.link,
        "channel_suggestion": n.channel_suggestion(),
    }))
}

/// A sample incident for [`Templates::check`] and the tests: opened as the engine opens
/// one, then moved to investigating with an IC.
fn sample_incident(severity: Severity) -> Incident {
    let opened: Timestamp = "2024-05-01T12:00:00Z".parse().expect("a timestamp");
    let finding = neo_ir_core::incident::Finding {
        key: "consensus_failure".to_string(),
        kind: neo_ir_core::incident::IncidentKind::ConsensusFailure,
        severity,
        nodes: vec!["rpc-1".to_string(), "rpc-2".to_string()],
        summary: "no new block for 90 s on 2 of 2 nodes".to_string(),
        evidence: json!({"height": 5_123_456, "stalled_s": 90, "view": null, "leader": "cn-3"}),
    };
    let mut incident = neo_ir_core::lifecycle::open(
        &finding,
        opened,
        &neo_ir_core::oncall::ResponseConfig::default(),
    );
    incident.id = 42;
    incident.status = neo_ir_core::incident::Status::Investigating;
    incident.roles = BTreeMap::from([(ResponseRole::IC, "alice".to_string())]);
    incident
}

/// Sample notifications of every kind, for every event that calls for one, in a full and a
/// bare variant (network, link, roles, evidence, acknowledgement present or not).
fn samples() -> Vec<Notification> {
    use neo_ir_core::incident::{Status, TimelineEvent};
    let at: Timestamp = "2024-05-01T12:20:00Z".parse().expect("a timestamp");
    let events: Vec<(MessageKind, EventType, &str, serde_json::Value)> = vec![
        (
            MessageKind::Alert,
            EventType::Opened,
            "P1 consensus_failure: no new block",
            json!({"severity": "P1", "nodes": ["rpc-1", "rpc-2"]}),
        ),
        (
            MessageKind::Update,
            EventType::Acknowledged,
            "acknowledged by alice after 4 min 0 s",
            json!({"by": "alice", "from": "cli", "after_ms": 240_000, "within_target": true}),
        ),
        (
            MessageKind::Update,
            EventType::PhaseChanged,
            "investigating → mitigating by alice: restarting rpc-2",
            json!({"from_phase": "investigating", "to_phase": "mitigating",
                   "reason": "restarting rpc-2", "by": "alice", "from": "cli"}),
        ),
        (
            MessageKind::Update,
            EventType::PhaseChanged,
            "triage → investigating by bob",
            json!({"from_phase": "triage", "to_phase": "investigating",
                   "reason": null, "by": "bob", "from": "api"}),
        ),
        (
            MessageKind::Update,
            EventType::StatusUpdate,
            "update by alice: rpc-2 restarted, catching up",
            json!({"by": "alice", "from": "cli", "text": "rpc-2 restarted, catching up"}),
        ),
        (
            MessageKind::Update,
            EventType::ConditionCleared,
            "condition cleared after 20 min 0 s; monitoring for 30 min 0 s before resolving",
            json!({"after_ms": 1_200_000, "from_phase": "investigating",
                   "to_phase": "monitoring"}),
        ),
        (
            MessageKind::Update,
            EventType::Recurred,
            "condition back after 2 min 0 s clear; back to investigating: no new block",
            json!({"clear_ms": 120_000, "from_phase": "monitoring",
                   "to_phase": "investigating"}),
        ),
        (
            MessageKind::Severity,
            EventType::SeverityRaised,
            "severity raised P2 → P1: no new block",
            json!({"from": "P2", "to": "P1"}),
        ),
        (
            MessageKind::Severity,
            EventType::SeverityChanged,
            "severity lowered P1 → P3 by alice: one node only",
            json!({"from_severity": "P1", "to_severity": "P3",
                   "reason": "one node only", "by": "alice", "from": "cli"}),
        ),
        (
            MessageKind::Page,
            EventType::Escalated,
            "escalation step 2 of 4: paging bob (primary), unacknowledged after 15 min 0 s",
            json!({"policy": "playbook", "step": 2, "of": 4, "notify": "primary",
                   "recipient": "bob"}),
        ),
        (
            MessageKind::Resolved,
            EventType::Resolved,
            "stable for 30 min 0 s since the condition cleared: resolved after 1 h 0 min",
            json!({"duration_ms": 3_600_000, "stable_ms": 1_800_000,
                   "review_at": "2024-05-03T12:20:00Z"}),
        ),
        (
            MessageKind::Resolved,
            EventType::PhaseChanged,
            "monitoring → resolved by alice; root cause: a full disk on rpc-2",
            json!({"from_phase": "monitoring", "to_phase": "resolved", "reason": null,
                   "by": "alice", "from": "cli", "root_cause": "a full disk on rpc-2"}),
        ),
        (
            MessageKind::Review,
            EventType::ReviewScheduled,
            "post-incident review scheduled for 2024-05-03 14:00:00 UTC by alice",
            json!({"at": "2024-05-03T14:00:00Z", "by": "alice",
                   "root_cause": "a full disk on rpc-2"}),
        ),
        (
            MessageKind::Review,
            EventType::ReviewScheduled,
            "post-incident review scheduled",
            json!({}),
        ),
        (
            MessageKind::Review,
            EventType::ActionItemOverdue,
            "Action item overdue: alert on disk usage (dave, due 2024-04-30, high priority) — \
             incident #42 review, item 3",
            json!({"item": 3, "action": "alert on disk usage", "owner": "dave",
                   "due": "2024-04-30", "priority": "high", "runbook": null, "days_overdue": 1}),
        ),
    ];
    let mut out = Vec::new();
    for (kind, t, message, data) in events {
        for (full, severity) in [(true, Severity::P1), (false, Severity::P4)] {
            let mut incident = sample_incident(severity);
            if !full {
                incident.roles.clear();
                incident.nodes.clear();
                incident.evidence = json!({});
                // and a drill, so `drill` is seen true too
                incident.key = format!("{}{}", neo_ir_core::kpis::DRILL_PREFIX, incident.key);
            }
            // the incident as the event left it
            let field = |key: &str| data.get(key).and_then(|v| v.as_str());
            if let Some(to) = field("to").or(field("to_severity")) {
                incident.severity = to.parse().expect("a severity");
            }
            if let Some(to) = field("to_phase") {
                incident.status = to.parse().expect("a phase");
            }
            if t == EventType::ConditionCleared {
                incident.cleared_at = Some(at);
            }
            if kind == MessageKind::Resolved || kind == MessageKind::Review {
                incident.status = if kind == MessageKind::Review {
                    Status::Reviewed
                } else {
                    Status::Resolved
                };
                incident.resolved_at = Some(at);
            }
            if full && kind != MessageKind::Alert && kind != MessageKind::Page {
                incident.acked_at = Some(at);
                incident.acked_by = Some("alice".to_string());
                incident.update_due_at = Some(at + jiff::SignedDuration::from_mins(15));
            }
            out.push(Notification {
                kind,
                channel: "ops".to_string(),
                incident,
                event: TimelineEvent::new(at, t, message.to_string(), data.clone()),
                event_id: 7,
                idempotency_key: Notification::key(42, 7, "ops"),
                network: full.then(|| "MainNet".to_string()),
                link: full.then(|| "https://neo-ir.example.org/incidents/42".to_string()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use neo_ir_core::incident::{Status, TimelineEvent};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A notification of `kind` about event `t` with `data`, on a P1 consensus failure on
    /// rpc-1 and rpc-2 (MainNet), opened at 12:00, the event at 12:20, IC alice.
    fn notification(kind: MessageKind, t: EventType, data: serde_json::Value) -> Notification {
        Notification {
            kind,
            channel: "ops".to_string(),
            incident: sample_incident(Severity::P1),
            event: TimelineEvent::new(ts("2024-05-01T12:20:00Z"), t, "an event".into(), data),
            event_id: 7,
            idempotency_key: Notification::key(42, 7, "ops"),
            network: Some("MainNet".to_string()),
            link: Some("https://neo-ir.example.org/incidents/42".to_string()),
        }
    }

    fn alert() -> Notification {
        notification(MessageKind::Alert, EventType::Opened, json!({}))
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn builtins_parse_and_pass_the_check() {
        let t = Templates::builtin();
        assert_eq!(t.sources.len(), 12);
        t.check().unwrap();
        for n in samples() {
            let r = t.render(&n).unwrap();
            assert!(!r.title.contains('\n'), "{}", r.title);
            assert!(!r.text.contains("\n\n\n"), "{}", r.text);
            assert!(!r.text.contains("none"), "{}", r.text);
            // the bare samples are drills: every kind says so first, in title and text
            let drill = is_drill(&n.incident);
            assert_eq!(r.title.starts_with(DRILL_MARK), drill, "{}", r.title);
            assert_eq!(r.text.starts_with(DRILL_MARK), drill, "{}", r.text);
            assert_eq!(r.text.matches("[DRILL]").count(), usize::from(drill));
        }
        let kinds: std::collections::BTreeSet<&str> = samples()
            .iter()
            .filter(|n| is_drill(&n.incident))
            .map(|n| n.kind.as_str())
            .collect();
        assert_eq!(kinds.len(), MessageKind::ALL.len(), "{kinds:?}");
    }

    #[test]
    fn a_drill_is_marked_whatever_the_template() {
        let mut n = alert();
        n.incident.evidence["drill"] = json!(true);
        let r = Templates::builtin().render(&n).unwrap();
        assert_eq!(
            r.title,
            "[DRILL] [P1] INCIDENT ALERT: consensus_failure — no new block for 90 s on 2 of 2 nodes"
        );
        assert!(
            r.text
                .starts_with("[DRILL] **INCIDENT ALERT**\n\n**Time:**"),
            "{}",
            r.text
        );
        // an override cannot drop the mark, and sees `drill`
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "alert.txt",
            "{{ \"practice: \" if drill else \"\" }}{{ impact }}\n",
        );
        write(dir.path(), "alert.title.txt", "{{ incident_kind }}\n");
        let t = Templates::with_overrides(dir.path()).unwrap();
        let r = t.render(&n).unwrap();
        assert_eq!(r.title, "[DRILL] consensus_failure");
        assert_eq!(
            r.text,
            "[DRILL] practice: no new block for 90 s on 2 of 2 nodes"
        );
        let real = t.render(&alert()).unwrap();
        assert_eq!(
            (real.title.as_str(), real.text.as_str()),
            ("consensus_failure", "no new block for 90 s on 2 of 2 nodes")
        );
    }

    #[test]
    fn the_resolution_notice_gives_the_review_date() {
        let t = Templates::builtin();
        let mut n = notification(
            MessageKind::Resolved,
            EventType::Resolved,
            json!({"duration_ms": 4_500_000, "stable_ms": 1_800_000,
                   "review_at": "2024-05-03T13:15:00Z"}),
        );
        n.incident.status = Status::Resolved;
        n.incident.resolved_at = Some(ts("2024-05-01T13:15:00Z"));
        let text = t.render(&n).unwrap().text;
        assert!(
            text.contains(
                "**Follow-up Actions:**\n- Post-incident review scheduled for \
                 2024-05-03 13:15:00 UTC\n"
            ),
            "{text}"
        );
        assert!(!text.contains("to be scheduled"), "{text}");

        // resolved by a person: the phase change carries it the same way
        n.event = TimelineEvent::new(
            ts("2024-05-01T13:15:00Z"),
            EventType::PhaseChanged,
            "monitoring → resolved by alice".into(),
            json!({"from_phase": "monitoring", "to_phase": "resolved", "by": "alice",
                   "review_at": "2024-05-03T13:15:00Z"}),
        );
        let text = t.render(&n).unwrap().text;
        assert!(
            text.contains("- Post-incident review scheduled for 2024-05-03 13:15:00 UTC\n"),
            "{text}"
        );

        // a P3 resolves without a review: still to be scheduled (by people, if at all)
        n.event.data = json!({"from_phase": "monitoring", "to_phase": "resolved"});
        let text = t.render(&n).unwrap().text;
        assert!(
            text.contains("- Post-incident review to be scheduled\n"),
            "{text}"
        );
        // a review date on another event is not a resolution's
        let mut update = notification(
            MessageKind::Update,
            EventType::StatusUpdate,
            json!({"text": "x", "review_at": "2024-05-03T13:15:00Z"}),
        );
        update.incident.status = Status::Investigating;
        assert!(!t.render(&update).unwrap().text.contains("2024-05-03"));
    }

    #[test]
    fn alert_follows_the_playbook() {
        let r = Templates::builtin().render(&alert()).unwrap();
        let text = &r.text;
        assert!(text.starts_with("**INCIDENT ALERT**\n\n**Time:** 2024-05-01 12:20:00 UTC\n"));
        for want in [
            "**Severity:** P1\n",
            "**Service:** Neo node rpc-1, rpc-2 (MainNet)\n",
            "**Impact:** no new block for 90 s on 2 of 2 nodes\n\n",
            "**Current Status:** Investigating\n\n",
            "**Next Update:** in 15 minutes\n\n",
            "IC: alice\n",
            "Evidence:\n- height: 5123456\n- leader: cn-3\n- stalled_s: 90\n",
            "Channel: #incident-2024-05-01-consensus-failure\n",
            "Details: https://neo-ir.example.org/incidents/42",
            "neo-ir ack 42",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(!text.contains("view"), "null evidence is left out:\n{text}");
        assert_eq!(
            r.title,
            "[P1] INCIDENT ALERT: consensus_failure — no new block for 90 s on 2 of 2 nodes"
        );
    }

    #[test]
    fn alert_without_network_link_or_ic() {
        let mut n = alert();
        n.network = None;
        n.link = None;
        n.incident.roles.clear();
        n.incident.severity = Severity::P4;
        let text = Templates::builtin().render(&n).unwrap().text;
        assert!(text.contains("**Service:** Neo node rpc-1, rpc-2 (network unknown)\n"));
        assert!(text.contains("IC: unassigned"));
        assert!(text.contains("**Next Update:** when there is news"));
        assert!(!text.contains("Details:"), "{text}");
    }

    #[test]
    fn next_update_follows_the_severity_or_the_reminder() {
        let mut inc = sample_incident(Severity::P2);
        assert_eq!(next_update(&inc), "in 30 minutes");
        inc.severity = Severity::P3;
        assert_eq!(next_update(&inc), "in 60 minutes");
        inc.update_due_at = Some(ts("2024-05-01T13:00:00Z"));
        assert_eq!(next_update(&inc), "2024-05-01 13:00:00 UTC");
        inc.status = Status::Resolved;
        assert_eq!(next_update(&inc), "no further updates");
        let secs = std::time::Duration::from_secs;
        assert_eq!(in_words(secs(60)), "in 1 minute");
        assert_eq!(in_words(secs(90)), "in 1 min 30 s");
        assert_eq!(in_words(secs(7200)), "in 120 minutes");
    }

    #[test]
    fn update_names_the_event_and_the_phase() {
        let t = Templates::builtin();
        let mut n = notification(
            MessageKind::Update,
            EventType::StatusUpdate,
            json!({"by": "alice", "text": "rpc-2 restarted, catching up"}),
        );
        n.incident.severity = Severity::P2;
        let r = t.render(&n).unwrap();
        assert!(r
            .text
            .starts_with("**INCIDENT UPDATE**\n\n**Time:** 2024-05-01 12:20:00 UTC\n"));
        assert!(r
            .text
            .contains("**Severity:** P2 (unchanged)\n\n**Progress:**\n"));
        assert!(r
            .text
            .contains("- rpc-2 restarted, catching up (alice)\n- Current status: Investigating\n"));
        assert!(
            r.text.ends_with("**Next Update:** in 30 minutes"),
            "{}",
            r.text
        );
        assert_eq!(
            r.title,
            "[P2] INCIDENT UPDATE: consensus_failure — Investigating"
        );

        let mut n = notification(
            MessageKind::Update,
            EventType::PhaseChanged,
            json!({"from_phase": "investigating", "to_phase": "mitigating",
                   "reason": "restarting rpc-2", "by": "bob", "from": "cli"}),
        );
        n.incident.status = Status::Mitigating;
        let text = t.render(&n).unwrap().text;
        assert!(text.contains(
            "- Moved from Investigating to Mitigating by bob: restarting rpc-2\n- Current status: Mitigating\n"
        ), "{text}");

        let mut n = notification(
            MessageKind::Update,
            EventType::Acknowledged,
            json!({"by": "carol", "after_ms": 240_000}),
        );
        n.incident.acked_by = Some("carol".to_string());
        let text = t.render(&n).unwrap().text;
        assert!(text.contains("- Acknowledged by carol\n"), "{text}");

        let mut n = notification(MessageKind::Update, EventType::ConditionCleared, json!({}));
        n.event.message = "condition cleared after 20 min 0 s".to_string();
        let text = t.render(&n).unwrap().text;
        assert!(
            text.contains("- condition cleared after 20 min 0 s\n"),
            "{text}"
        );
    }

    #[test]
    fn severity_changes_say_upgraded_or_downgraded() {
        let t = Templates::builtin();
        let mut n = notification(
            MessageKind::Severity,
            EventType::SeverityChanged,
            json!({"from_severity": "P1", "to_severity": "P3", "reason": "one node only",
                   "by": "alice"}),
        );
        n.incident.severity = Severity::P3;
        let r = t.render(&n).unwrap();
        assert!(r.text.starts_with("**INCIDENT UPDATE**\n"));
        assert!(
            r.text.contains("**Severity:** P3 (downgraded from P1)\n"),
            "{}",
            r.text
        );
        assert!(r
            .text
            .contains("- Severity downgraded by alice: one node only\n"));
        assert!(r.text.contains("**Next Update:** in 60 minutes"));
        assert_eq!(
            r.title,
            "[P3] INCIDENT UPDATE: consensus_failure — severity P3 (was P1)"
        );

        let n = notification(
            MessageKind::Severity,
            EventType::SeverityRaised,
            json!({"from": "P2", "to": "P1"}),
        );
        let text = t.render(&n).unwrap().text;
        assert!(
            text.contains("**Severity:** P1 (upgraded from P2)\n"),
            "{text}"
        );
        assert!(text.contains("- Severity upgraded: no new block for 90 s on 2 of 2 nodes\n"));
    }

    #[test]
    fn page_names_the_recipient_and_how_to_ack() {
        let n = notification(
            MessageKind::Page,
            EventType::Escalated,
            json!({"policy": "playbook", "step": 2, "of": 4, "notify": "primary",
                   "recipient": "bob"}),
        );
        let r = Templates::builtin().render(&n).unwrap();
        assert!(
            r.text.starts_with(
                "[P1] PAGE (step 2 of 4): bob, incident #42 consensus_failure is unacknowledged \
             after 20 min 0 s: no new block for 90 s on 2 of 2 nodes\n"
            ),
            "{}",
            r.text
        );
        assert!(r.text.contains("https://neo-ir.example.org/incidents/42"));
        assert!(r.text.ends_with("Acknowledge: neo-ir ack 42"));
        assert!(!r.title.contains('\n'));
        assert!(r.title.starts_with("[P1] PAGE: incident #42"));
    }

    #[test]
    fn resolved_and_review_follow_the_playbook() {
        let t = Templates::builtin();
        let mut n = notification(
            MessageKind::Resolved,
            EventType::Resolved,
            json!({"duration_ms": 4_500_000, "stable_ms": 1_800_000}),
        );
        n.incident.status = Status::Resolved;
        n.incident.resolved_at = Some(ts("2024-05-01T13:15:00Z"));
        let r = t.render(&n).unwrap();
        let want = "**INCIDENT RESOLVED**\n\n**Time:** 2024-05-01 12:20:00 UTC\n\
                    **Duration:** 1 h 15 min\n**Root Cause:** under review\n\n\
                    **Impact Summary:**\n- no new block for 90 s on 2 of 2 nodes\n";
        assert!(r.text.starts_with(want), "{}", r.text);
        assert!(r
            .text
            .contains("**Follow-up Actions:**\n- Post-incident review to be scheduled\n"));
        assert!(r.text.ends_with("Thank you for your patience."));
        assert!(r
            .title
            .starts_with("[P1] INCIDENT RESOLVED: consensus_failure after 1 h 15 min"));

        // resolved by a person, with the root cause
        let mut by_hand = n.clone();
        by_hand.event = TimelineEvent::new(
            ts("2024-05-01T13:15:00Z"),
            EventType::PhaseChanged,
            "monitoring → resolved by alice".into(),
            json!({"from_phase": "monitoring", "to_phase": "resolved", "by": "alice",
                   "root_cause": "a full disk on rpc-2"}),
        );
        let text = t.render(&by_hand).unwrap().text;
        assert!(
            text.contains("**Root Cause:** a full disk on rpc-2"),
            "{text}"
        );
        assert!(text.starts_with("**INCIDENT RESOLVED**"), "{text}");

        n.kind = MessageKind::Review;
        n.incident.status = Status::Reviewed;
        n.event = TimelineEvent::new(
            ts("2024-05-02T09:00:00Z"),
            EventType::ReviewScheduled,
            "review scheduled".into(),
            json!({"at": "2024-05-03T14:00:00Z", "by": "alice", "root_cause": "a full disk"}),
        );
        let text = t.render(&n).unwrap().text;
        assert!(
            text.contains(
                "Post-incident review for incident #42 (consensus_failure, P1) scheduled for \
             2024-05-03 14:00:00 UTC by alice."
            ),
            "{text}"
        );
        assert!(text.contains("**Root Cause:** a full disk"));
        assert!(text.contains("**Duration:** 1 h 15 min"));
    }

    #[test]
    fn an_overdue_action_item_is_a_review_reminder() {
        let mut n = notification(
            MessageKind::Review,
            EventType::ActionItemOverdue,
            json!({"item": 3, "action": "alert on disk usage", "owner": "dave",
                   "due": "2024-04-30", "priority": "high", "days_overdue": 1}),
        );
        n.event.message = "Action item overdue: alert on disk usage (dave, due 2024-04-30, \
                           high priority) — incident #42 review, item 3"
            .into();
        n.incident.status = Status::Reviewed;
        let r = Templates::builtin().render(&n).unwrap();
        assert_eq!(
            r.title,
            "[P1] Action item overdue: incident #42 consensus_failure review"
        );
        assert!(
            r.text.starts_with(
                "**ACTION ITEM OVERDUE**\n\nAction item overdue: alert on disk usage (dave, due \
                 2024-04-30, high priority) — incident #42 review, item 3\n"
            ),
            "{}",
            r.text
        );
        assert!(!r.text.contains("POST-INCIDENT REVIEW"), "{}", r.text);
    }

    #[test]
    fn variables_are_documented_and_all_set() {
        let ctx = context(&alert());
        let names: Vec<&str> = VARIABLES.iter().map(|(n, _)| *n).collect();
        let set: Vec<String> = ctx
            .try_iter()
            .unwrap()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        let mut documented = names.clone();
        documented.sort();
        assert_eq!(documented, set, "VARIABLES and the context differ");
    }

    #[test]
    fn an_override_replaces_one_kind_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "alert.txt",
            "ALERT {{ severity }} {{ service }}\n{% for e in evidence %}\n* {{ e }}\n{% endfor %}\n",
        );
        write(dir.path(), "page.title.txt", "page {{ recipient }}\n\n");
        write(dir.path(), ".hidden", "skipped");
        let t = Templates::with_overrides(dir.path()).unwrap();
        let r = t.render(&alert()).unwrap();
        assert_eq!(
            r.text,
            "ALERT P1 Neo node rpc-1, rpc-2 (MainNet)\n* height: 5123456\n* leader: cn-3\n* stalled_s: 90"
        );
        // the alert's title stays built in
        assert!(r
            .title
            .starts_with("[P1] INCIDENT ALERT: consensus_failure"));
        let page = notification(
            MessageKind::Page,
            EventType::Escalated,
            json!({"step": 1, "of": 2, "recipient": "bob"}),
        );
        let r = t.render(&page).unwrap();
        assert_eq!(r.title, "page bob");
        assert!(r.text.starts_with("[P1] PAGE (step 1 of 2): bob"));
        let n = notification(
            MessageKind::Update,
            EventType::StatusUpdate,
            json!({"text": "x"}),
        );
        assert!(t
            .render(&n)
            .unwrap()
            .text
            .starts_with("**INCIDENT UPDATE**"));
    }

    #[test]
    fn an_unknown_file_name_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "alret.txt", "{{ severity }}");
        let e = Templates::with_overrides(dir.path()).unwrap_err();
        assert!(matches!(e, TemplateError::UnknownFile { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("alret.txt"), "{msg}");
        assert!(
            msg.contains("alert, update, severity, page, resolved, review"),
            "{msg}"
        );

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "alert.md", "x");
        let msg = Templates::with_overrides(dir.path())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("alert.md"), "{msg}");

        let msg = Templates::with_overrides(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("cannot read") && msg.contains("missing"),
            "{msg}"
        );
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "update.txt",
            "**INCIDENT UPDATE**\n\n{% if %}\nx\n{% endif %}\n",
        );
        let e = Templates::with_overrides(dir.path()).unwrap_err();
        assert!(
            matches!(e, TemplateError::Syntax { line: Some(3), .. }),
            "{e:?}"
        );
        let msg = e.to_string();
        let file = dir.path().join("update.txt").display().to_string();
        assert!(msg.contains(&file), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("syntax error"), "{msg}");
    }

    #[test]
    fn an_unknown_variable_fails_at_load_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "resolved.txt",
            "**INCIDENT RESOLVED**\n\n**Impact:** {{ impcat }}\n",
        );
        let e = Templates::with_overrides(dir.path()).unwrap_err();
        assert!(
            matches!(e, TemplateError::Render { line: Some(3), .. }),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&dir.path().join("resolved.txt").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("impcat"), "{msg}");

        // a filter that fails on an absent value fails too: the check renders bare samples
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "alert.txt",
            "{{ severity }}\n{{ link | length }}\n",
        );
        let msg = Templates::with_overrides(dir.path())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("alert.txt line 2"), "{msg}");
    }

    #[test]
    fn an_override_rendering_to_whitespace_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "review.txt",
            "  \n{% if false %}x{% endif %}\n\t\n",
        );
        let e = Templates::with_overrides(dir.path()).unwrap_err();
        assert!(
            matches!(e, TemplateError::Empty { part: "text", .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("review.txt"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "alert.title.txt", "{{ \"\" }}\n");
        let e = Templates::with_overrides(dir.path()).unwrap_err();
        assert!(
            matches!(e, TemplateError::Empty { part: "title", .. }),
            "{e:?}"
        );
    }

    #[test]
    fn titles_are_one_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "alert.title.txt",
            "  [{{ severity }}]\n\n  {{ incident_kind }}  \n",
        );
        let t = Templates::with_overrides(dir.path()).unwrap();
        assert_eq!(t.render(&alert()).unwrap().title, "[P1] consensus_failure");
    }

    #[test]
    fn builtin_errors_name_the_builtin() {
        let mut t = Templates::builtin();
        t.add("page.txt", "builtin:page.txt".into(), "{{ nope }}".into())
            .unwrap();
        let msg = t.check().unwrap_err().to_string();
        assert!(msg.starts_with("template builtin:page.txt line 1"), "{msg}");
    }
}
