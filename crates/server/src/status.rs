//! The public status page: what the network's users may see, and nothing else.
//!
//! [`build`] reads the store and keeps only public fields: the overall state (from the
//! open incidents' severities), each node group with its nodes (name, state, height, lag,
//! uptime over 30 days), the open incidents and those resolved in the last 30 days with a
//! public one-line summary and their latest public status update. Never the evidence,
//! notes, actions, roles, who acknowledged, node errors (they may hold addresses), user
//! agents or tokens.
//!
//! Never drills either ([`is_drill`]: a key under `drill:` or `evidence.drill`): a rehearsal
//! is not an outage, so it is left out of the overall state, the incident lists, the node
//! states and the uptime. The authenticated API still lists drills (marked by their key).
//!
//! Nor the incident's own `summary`: it is the detector's diagnosis for operators, and
//! some carry what must not be public (a node_down summary quotes the probe's error, a
//! network_attack summary the busiest client's IP and the limits that trip the detector).
//! The public summary is written from the kind and the nodes ([`public_summary`]); people
//! tell the public more with status updates.
//!
//! [`render_html`] draws it as one server-rendered page: no JavaScript, no external
//! resources, every dynamic string escaped, one column that fits a phone, refreshed by a
//! `<meta http-equiv="refresh">`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};
use neo_ir_core::fleet::NodeView;
use neo_ir_core::incident::{human_ms, EventType, Incident, IncidentKind, Severity};
use neo_ir_core::kpis::is_drill;
use neo_ir_core::notify::network_name;
use neo_ir_core::observation::Role;
use neo_ir_store::{ListFilter, Store, StoreError};
use serde::{Deserialize, Serialize};

/// How far back uptime and the resolved incidents go.
pub const WINDOW: SignedDuration = SignedDuration::from_hours(30 * 24);

/// Most resolved incidents listed.
pub const MAX_RESOLVED: usize = 100;

/// Incidents read per page while looking back over the window.
const PAGE: u32 = 500;

/// The whole network at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    /// No open incident.
    Operational,
    /// Only P3/P4 incidents are open.
    Degraded,
    /// A P2 incident is open (and no P1).
    PartialOutage,
    /// A P1 incident is open.
    MajorOutage,
}

impl Overall {
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Operational => "operational",
            Overall::Degraded => "degraded",
            Overall::PartialOutage => "partial_outage",
            Overall::MajorOutage => "major_outage",
        }
    }

    /// What the page's banner says.
    pub fn label(self) -> &'static str {
        match self {
            Overall::Operational => "All systems operational",
            Overall::Degraded => "Degraded performance",
            Overall::PartialOutage => "Partial outage",
            Overall::MajorOutage => "Major outage",
        }
    }

    /// The state the worst open incident gives the network.
    pub fn of(open: &[Incident]) -> Overall {
        match open.iter().map(|i| i.severity).min() {
            None => Overall::Operational,
            Some(Severity::P1) => Overall::MajorOutage,
            Some(Severity::P2) => Overall::PartialOutage,
            Some(Severity::P3 | Severity::P4) => Overall::Degraded,
        }
    }
}

/// A node's (or a group's) public state; `Ord` puts the worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Not probed yet.
    Unknown,
    Operational,
    /// Answering, but an open incident names it or its height is not believable.
    Degraded,
    /// Not answering.
    Down,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Unknown => "unknown",
            NodeState::Operational => "operational",
            NodeState::Degraded => "degraded",
            NodeState::Down => "down",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            NodeState::Unknown => "Unknown",
            NodeState::Operational => "Operational",
            NodeState::Degraded => "Degraded",
            NodeState::Down => "Down",
        }
    }

    /// From the node's latest view (`ok`, `down`, `implausible_height`, `unknown`), made
    /// `degraded` when an open incident whose condition still holds names an answering node.
    fn of(view: &NodeView, named_by_firing_incident: bool) -> NodeState {
        let state = match view.state.as_str() {
            "ok" => NodeState::Operational,
            "down" => NodeState::Down,
            "implausible_height" => NodeState::Degraded,
            _ => NodeState::Unknown,
        };
        if state == NodeState::Operational && named_by_firing_incident {
            NodeState::Degraded
        } else {
            state
        }
    }
}

/// The public status (`GET /api/v1/status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// "MainNet", "TestNet", "private network N": the magic most nodes report; null before
    /// any node answered `getversion`.
    pub network: Option<String>,
    pub overall: Overall,
    /// Validators, then RPC nodes (a group without nodes is left out).
    pub groups: Vec<Group>,
    /// Open incidents, newest first.
    pub open: Vec<OpenIncident>,
    /// Incidents resolved in the last 30 days, the latest resolved first (at most 100).
    pub resolved_30d: Vec<ResolvedIncident>,
    pub generated_at: Timestamp,
}

/// One group of nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// "Validators" or "RPC nodes".
    pub name: String,
    /// The worst state of its nodes (`unknown` only when none was probed yet).
    pub state: NodeState,
    pub nodes: Vec<PublicNode>,
}

/// A node as the public sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicNode {
    pub name: String,
    pub state: NodeState,
    pub height: Option<u64>,
    /// Blocks behind the network's best height (null when not reachable).
    pub lag: Option<u64>,
    /// 100 × (1 − time under `node_down` incidents naming it in the last 30 days / 30 days),
    /// rounded to 3 decimals.
    pub uptime_30d_percent: f64,
}

/// A person's latest public status update on an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub at: Timestamp,
    pub text: String,
}

/// An open incident as the public sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenIncident {
    pub id: i64,
    pub kind: IncidentKind,
    pub severity: Severity,
    pub phase: neo_ir_core::incident::Status,
    pub nodes: Vec<String>,
    pub opened_at: Timestamp,
    /// From the kind and the nodes ([`public_summary`]), not the detector's text.
    pub summary: String,
    pub latest_update: Option<Update>,
}

/// A resolved incident as the public sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedIncident {
    pub id: i64,
    pub kind: IncidentKind,
    pub severity: Severity,
    pub opened_at: Timestamp,
    pub resolved_at: Timestamp,
    pub duration_ms: i64,
    /// From the kind and the nodes ([`public_summary`]), not the detector's text.
    pub summary: String,
    pub latest_update: Option<Update>,
}

/// The public status as of `now`, from the store.
///
/// Uptime and the resolved list come from the incidents of the window: pages of all
/// incidents, newest first, until one opened before the window and resolved before it too;
/// the open incidents are read on their own, so one open for longer than the window counts.
/// Drill incidents are left out of everything.
pub async fn build(store: &Store, now: Timestamp) -> Result<Status, StoreError> {
    let since = now - WINDOW;
    let open: Vec<Incident> = store
        .open_incidents()
        .await?
        .into_iter()
        .filter(|i| !is_drill(i))
        .collect();
    let mut recent: Vec<Incident> = Vec::new();
    let mut before_id = None;
    'pages: loop {
        let page = store
            .list_incidents(ListFilter {
                all: true,
                limit: PAGE,
                before_id,
            })
            .await?;
        let full = page.len() == PAGE as usize;
        before_id = page.last().map(|i| i.id);
        for i in page {
            if i.opened_at < since && i.resolved_at.is_some_and(|r| r < since) {
                break 'pages;
            }
            if !i.is_open() && !is_drill(&i) {
                recent.push(i);
            }
        }
        if !full {
            break;
        }
    }

    let nodes = store.nodes().await?;
    let mut downtime: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for i in open.iter().chain(&recent) {
        if i.kind != IncidentKind::NodeDown {
            continue;
        }
        let from = i.opened_at.max(since).as_millisecond();
        let to = i.resolved_at.unwrap_or(now).min(now).as_millisecond();
        if to > from {
            for n in &i.nodes {
                downtime.entry(n.as_str()).or_default().push((from, to));
            }
        }
    }
    let firing: BTreeSet<&str> = open
        .iter()
        .filter(|i| i.cleared_at.is_none())
        .flat_map(|i| i.nodes.iter().map(String::as_str))
        .collect();
    let window_ms = WINDOW.as_millis() as i64;
    let public = |v: &NodeView| PublicNode {
        name: v.name.clone(),
        state: NodeState::of(v, firing.contains(v.name.as_str())),
        height: v.height,
        lag: v.lag,
        uptime_30d_percent: uptime_percent(
            downtime.get(v.name.as_str()).cloned().unwrap_or_default(),
            window_ms,
        ),
    };
    let groups = [(Role::Validator, "Validators"), (Role::Rpc, "RPC nodes")]
        .into_iter()
        .filter_map(|(role, name)| {
            let nodes: Vec<PublicNode> = nodes
                .iter()
                .filter(|v| v.role == role)
                .map(public)
                .collect();
            let known = nodes
                .iter()
                .map(|n| n.state)
                .filter(|s| *s != NodeState::Unknown);
            let state = known.max().unwrap_or(NodeState::Unknown);
            (!nodes.is_empty()).then(|| Group {
                name: name.to_string(),
                state,
                nodes,
            })
        })
        .collect();

    let mut public_open = Vec::with_capacity(open.len());
    for i in &open {
        public_open.push(OpenIncident {
            id: i.id,
            kind: i.kind,
            severity: i.severity,
            phase: i.status,
            nodes: i.nodes.clone(),
            opened_at: i.opened_at,
            summary: public_summary(i.kind, &i.nodes),
            latest_update: latest_update(store, i.id).await?,
        });
    }

    let mut resolved: Vec<(Timestamp, &Incident)> = recent
        .iter()
        .filter_map(|i| i.resolved_at.filter(|r| *r >= since).map(|r| (r, i)))
        .collect();
    resolved.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.id.cmp(&a.1.id)));
    let mut resolved_30d = Vec::new();
    for (resolved_at, i) in resolved.into_iter().take(MAX_RESOLVED) {
        resolved_30d.push(ResolvedIncident {
            id: i.id,
            kind: i.kind,
            severity: i.severity,
            opened_at: i.opened_at,
            resolved_at,
            duration_ms: resolved_at.as_millisecond() - i.opened_at.as_millisecond(),
            summary: public_summary(i.kind, &i.nodes),
            latest_update: latest_update(store, i.id).await?,
        });
    }

    Ok(Status {
        network: network(&nodes),
        overall: Overall::of(&open),
        groups,
        open: public_open,
        resolved_30d,
        generated_at: now,
    })
}

/// What the public reads about an incident of `kind` on `nodes`: "rpc-1 is not answering",
/// "Blocks are slow or stalled (validator-2)". Only the kind and the configured node names,
/// never the detector's diagnosis (see the module's documentation).
pub fn public_summary(kind: IncidentKind, nodes: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut names = nodes
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if nodes.len() > SHOWN {
        let _ = write!(names, " and {} more", nodes.len() - SHOWN);
    }
    let one = nodes.len() == 1;
    let subject = |singular: &str, plural: &str, general: &str| match nodes.len() {
        0 => general.to_string(),
        _ if one => format!("{names} {singular}"),
        _ => format!("{names} {plural}"),
    };
    let about = |what: &str| {
        if nodes.is_empty() {
            what.to_string()
        } else {
            format!("{what} ({names})")
        }
    };
    match kind {
        IncidentKind::NodeDown => subject(
            "is not answering",
            "are not answering",
            "Nodes are not answering",
        ),
        IncidentKind::SyncFailure => subject(
            "is behind the chain",
            "are behind the chain",
            "Nodes are behind the chain",
        ),
        IncidentKind::ConsensusFailure => about("Blocks are slow or stalled"),
        IncidentKind::DataCorruption => subject(
            "gives data the network does not confirm",
            "give data the network does not confirm",
            "Nodes give data the network does not confirm",
        ),
        IncidentKind::NetworkAttack => subject(
            "is under unusual load",
            "are under unusual load",
            "Nodes are under unusual load",
        ),
        IncidentKind::SplitBrain => about("Nodes disagree about the chain"),
        IncidentKind::PerformanceDegradation => subject(
            "is slow or degraded",
            "are slow or degraded",
            "Service is slow or degraded",
        ),
    }
}

/// The network most nodes report (the lowest magic on a tie), by name.
fn network(nodes: &[NodeView]) -> Option<String> {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for magic in nodes.iter().filter_map(|n| n.network) {
        *counts.entry(magic).or_default() += 1;
    }
    // max_by_key keeps the last of equals: iterate highest magic first
    counts
        .into_iter()
        .rev()
        .max_by_key(|(_, n)| *n)
        .map(|(magic, _)| network_name(magic))
}

/// The newest `status_update` of incident `id` (only that type: notes and actions are
/// internal).
async fn latest_update(store: &Store, id: i64) -> Result<Option<Update>, StoreError> {
    let Some((_, timeline)) = store.incident(id).await? else {
        return Ok(None);
    };
    Ok(timeline
        .iter()
        .rev()
        .filter(|e| e.is(EventType::StatusUpdate))
        .find_map(|e| {
            e.data["text"].as_str().map(|t| Update {
                at: e.at,
                text: t.to_string(),
            })
        }))
}

/// Milliseconds covered by `intervals` (`[from, to)`), overlaps counted once.
pub fn covered_ms(mut intervals: Vec<(i64, i64)>) -> i64 {
    intervals.sort_unstable();
    let mut total = 0;
    let mut current: Option<(i64, i64)> = None;
    for (from, to) in intervals {
        match current {
            Some((s, e)) if from <= e => current = Some((s, e.max(to))),
            _ => {
                if let Some((s, e)) = current {
                    total += e - s;
                }
                current = Some((from, to));
            }
        }
    }
    total + current.map_or(0, |(s, e)| e - s)
}

/// 100 × (1 − covered / window), rounded to 3 decimals.
pub fn uptime_percent(down: Vec<(i64, i64)>, window_ms: i64) -> f64 {
    let down = covered_ms(down).clamp(0, window_ms) as f64;
    let percent = 100.0 * (1.0 - down / window_ms as f64);
    (percent * 1000.0).round() / 1000.0
}

/// `s` safe in HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "2026-01-01 08:05 UTC".
fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// "node_down" → "Node down".
fn kind_label(kind: IncidentKind) -> String {
    let s = kind.as_str().replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => s,
    }
}

fn update_html(out: &mut String, u: &Option<Update>) {
    if let Some(u) = u {
        let _ = write!(
            out,
            "<p class=\"update\"><span class=\"meta\">Update, {}:</span> {}</p>",
            escape(&time(u.at)),
            escape(&u.text)
        );
    }
}

const CSS: &str = "\
*{box-sizing:border-box}\
html{-webkit-text-size-adjust:100%}\
body{margin:0;background:#f4f5f7;color:#1b1f24;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
main{max-width:46rem;margin:0 auto;padding:1rem}\
h1{font-size:1.5rem;margin:.25rem 0}\
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}\
h3{font-size:1rem;margin:0}\
.card h2{margin:0}\
p{margin:.25rem 0}\
.net,.meta,footer{color:#57606a;font-size:.9rem}\
.banner{border-radius:.5rem;padding:1rem;margin:1rem 0;font-size:1.25rem;font-weight:600;color:#fff}\
.operational{background:#1a7f37}.degraded{background:#9a6700}\
.partial_outage{background:#bc4c00}.major_outage,.down{background:#cf222e}\
.unknown{background:#6e7781}\
.card{background:#fff;border:1px solid #d0d7de;border-radius:.5rem;padding:.75rem 1rem;margin:.5rem 0}\
.head{display:flex;flex-wrap:wrap;gap:.25rem .5rem;align-items:center;justify-content:space-between}\
.pill{display:inline-block;border-radius:1rem;padding:0 .6rem;font-size:.85rem;font-weight:600;color:#fff;white-space:nowrap}\
ul{list-style:none;margin:.5rem 0 0;padding:0}\
li{border-top:1px solid #eaeef2;padding:.5rem 0}\
.name,.summary,.update{overflow-wrap:anywhere}\
.name{font-weight:600}\
.update{background:#f6f8fa;border-left:3px solid #8c959f;padding:.25rem .5rem;margin-top:.5rem}\
footer{margin:2rem 0 1rem}";

/// The status as one HTML page.
pub fn render_html(s: &Status) -> String {
    let mut out = String::with_capacity(8 * 1024);
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"refresh\" content=\"30\">\n\
         <title>Neo network status</title>\n<style>",
    );
    out.push_str(CSS);
    out.push_str("</style>\n</head>\n<body>\n<main>\n<h1>Neo network status</h1>\n");
    if let Some(n) = &s.network {
        let _ = writeln!(out, "<p class=\"net\">{}</p>", escape(n));
    }
    let _ = writeln!(
        out,
        "<div class=\"banner {}\" id=\"overall\">{}</div>",
        s.overall.as_str(),
        s.overall.label()
    );

    for g in &s.groups {
        let _ = write!(
            out,
            "<section class=\"card\">\n<div class=\"head\"><h2>{}</h2>\
             <span class=\"pill {}\">{}</span></div>\n<ul>\n",
            escape(&g.name),
            g.state.as_str(),
            g.state.label()
        );
        for n in &g.nodes {
            let height = n.height.map_or("–".to_string(), |h| h.to_string());
            let lag = match n.lag {
                Some(l) if l > 0 => format!(" · {l} behind"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "<li><div class=\"head\"><span class=\"name\">{}</span>\
                 <span class=\"pill {}\">{}</span></div>\
                 <p class=\"meta\">height {height}{lag} · {:.3}% uptime (30 days)</p></li>",
                escape(&n.name),
                n.state.as_str(),
                n.state.label(),
                n.uptime_30d_percent
            );
        }
        out.push_str("</ul>\n</section>\n");
    }

    out.push_str("<h2>Open incidents</h2>\n");
    if s.open.is_empty() {
        out.push_str("<p class=\"card\">No open incidents.</p>\n");
    }
    for i in &s.open {
        let since_ms = (s.generated_at.as_millisecond() - i.opened_at.as_millisecond()).max(0);
        let _ = write!(
            out,
            "<article class=\"card\" id=\"incident-{id}\">\n<div class=\"head\"><h3>#{id} {kind}</h3>\
             <span class=\"pill {cls}\">{sev}</span></div>\n\
             <p class=\"summary\">{summary}</p>\n\
             <p class=\"meta\">{phase} · since {since} ({ago})</p>\n",
            id = i.id,
            kind = escape(&kind_label(i.kind)),
            cls = severity_class(i.severity),
            sev = i.severity.as_str(),
            summary = escape(&i.summary),
            phase = escape(&capitalized(i.phase.as_str())),
            since = escape(&time(i.opened_at)),
            ago = escape(&human_ms(since_ms as u64)),
        );
        update_html(&mut out, &i.latest_update);
        out.push_str("</article>\n");
    }

    out.push_str("<h2>Resolved in the last 30 days</h2>\n");
    if s.resolved_30d.is_empty() {
        out.push_str("<p class=\"card\">No incidents in the last 30 days.</p>\n");
    }
    for i in &s.resolved_30d {
        let _ = write!(
            out,
            "<article class=\"card\" id=\"incident-{id}\">\n<div class=\"head\"><h3>#{id} {kind}</h3>\
             <span class=\"pill operational\">Resolved</span></div>\n\
             <p class=\"summary\">{summary}</p>\n\
             <p class=\"meta\">{sev} · {opened} to {resolved} ({lasted})</p>\n",
            id = i.id,
            kind = escape(&kind_label(i.kind)),
            summary = escape(&i.summary),
            sev = i.severity.as_str(),
            opened = escape(&time(i.opened_at)),
            resolved = escape(&time(i.resolved_at)),
            lasted = escape(&human_ms(i.duration_ms.max(0) as u64)),
        );
        update_html(&mut out, &i.latest_update);
        out.push_str("</article>\n");
    }

    let _ = write!(
        out,
        "<footer>Updated {} · refreshes every 30 s · \
         <a href=\"api/v1/status\">JSON</a></footer>\n</main>\n</body>\n</html>\n",
        escape(&time(s.generated_at))
    );
    out
}

fn severity_class(s: Severity) -> &'static str {
    match s {
        Severity::P1 => "major_outage",
        Severity::P2 => "partial_outage",
        Severity::P3 | Severity::P4 => "degraded",
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The status, computed at most once per TTL: the page is public and refreshes itself, so
/// many viewers cost one computation (a few queries per incident) every few seconds.
pub(crate) type Cache = crate::cache::TtlCache<Status>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralizes_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        assert_eq!(
            escape("rpc-1 is 12 blocks behind"),
            "rpc-1 is 12 blocks behind"
        );
    }

    #[test]
    fn overlapping_downtime_counts_once() {
        assert_eq!(covered_ms(vec![]), 0);
        assert_eq!(covered_ms(vec![(10, 20), (0, 5), (15, 30), (30, 40)]), 35);
        assert_eq!(covered_ms(vec![(0, 100), (10, 20)]), 100);
        let day = 86_400_000;
        assert_eq!(uptime_percent(vec![], 30 * day), 100.0);
        assert_eq!(uptime_percent(vec![(0, day)], 30 * day), 96.667);
        assert_eq!(uptime_percent(vec![(0, 3_600_000)], 30 * day), 99.861);
        assert_eq!(uptime_percent(vec![(0, 31 * day)], 30 * day), 0.0);
    }

    #[test]
    fn public_summaries_name_only_the_kind_and_the_nodes() {
        let nodes = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            public_summary(IncidentKind::NodeDown, &nodes(&["rpc-1"])),
            "rpc-1 is not answering"
        );
        assert_eq!(
            public_summary(IncidentKind::SyncFailure, &nodes(&["rpc-1", "rpc-2"])),
            "rpc-1, rpc-2 are behind the chain"
        );
        assert_eq!(
            public_summary(IncidentKind::ConsensusFailure, &nodes(&["validator-2"])),
            "Blocks are slow or stalled (validator-2)"
        );
        assert_eq!(
            public_summary(IncidentKind::ConsensusFailure, &[]),
            "Blocks are slow or stalled"
        );
        assert_eq!(
            public_summary(IncidentKind::PerformanceDegradation, &[]),
            "Service is slow or degraded"
        );
        let many = nodes(&["a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!(
            public_summary(IncidentKind::NetworkAttack, &many),
            "a, b, c, d, e and 2 more are under unusual load"
        );
        for k in IncidentKind::ALL {
            assert!(!public_summary(k, &nodes(&["n"])).is_empty());
        }
    }

    #[test]
    fn the_worst_open_severity_sets_the_overall_state() {
        let t = Timestamp::from_second(1_767_225_600).unwrap();
        let at = |severity| {
            let f = neo_ir_core::incident::Finding {
                key: "k".into(),
                kind: IncidentKind::SyncFailure,
                severity,
                nodes: vec![],
                summary: String::new(),
                evidence: serde_json::Value::Null,
            };
            neo_ir_core::lifecycle::open(&f, t, &Default::default())
        };
        assert_eq!(Overall::of(&[]), Overall::Operational);
        assert_eq!(
            Overall::of(&[at(Severity::P4), at(Severity::P3)]),
            Overall::Degraded
        );
        assert_eq!(
            Overall::of(&[at(Severity::P3), at(Severity::P2)]),
            Overall::PartialOutage
        );
        assert_eq!(
            Overall::of(&[at(Severity::P2), at(Severity::P1)]),
            Overall::MajorOutage
        );
    }

    #[test]
    fn the_page_escapes_and_has_no_script() {
        let t = Timestamp::from_second(1_767_225_600).unwrap();
        let s = Status {
            network: Some("MainNet".into()),
            overall: Overall::Degraded,
            groups: vec![Group {
                name: "RPC nodes".into(),
                state: NodeState::Degraded,
                nodes: vec![PublicNode {
                    name: "rpc-<1>".into(),
                    state: NodeState::Degraded,
                    height: Some(7),
                    lag: Some(3),
                    uptime_30d_percent: 99.5,
                }],
            }],
            open: vec![OpenIncident {
                id: 4,
                kind: IncidentKind::SyncFailure,
                severity: Severity::P3,
                phase: neo_ir_core::incident::Status::Investigating,
                nodes: vec!["rpc-<1>".into()],
                opened_at: t,
                summary: "<script>alert(1)</script>".into(),
                latest_update: Some(Update {
                    at: t,
                    text: "we \"know\" & <i>fix</i>".into(),
                }),
            }],
            resolved_30d: vec![],
            generated_at: t + SignedDuration::from_mins(5),
        };
        let html = render_html(&s);
        assert!(!html.to_lowercase().contains("<script"), "{html}");
        assert!(!html.contains("<i>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("we &quot;know&quot; &amp; &lt;i&gt;fix&lt;/i&gt;"));
        assert!(html.contains("rpc-&lt;1&gt;"));
        assert!(html.contains("height 7 · 3 behind · 99.500% uptime"));
        assert!(html.contains("Investigating · since 2026-01-01 00:00 UTC (5 min 0 s)"));
        assert!(html.contains("<title>Neo network status</title>"));
        assert!(html.contains("Degraded performance"));
    }
}
