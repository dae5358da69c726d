//! Incident KPIs (issue 7, the playbook's "Continuous Improvement"): count, MTTD, MTTA,
//! MTTR, response-target breaches and escalations reached, per severity, kind and month.
//!
//! Computed from stored incidents and their timelines only, so the numbers stay right
//! after restarts and are the same whoever computes them (`neo-ir report`, `/metrics`):
//!
//! - fault start: `fault_started_at` in the evidence of the `opened` event (the detector's
//!   first failing observation), else in the incident's evidence; unknown → no MTTD sample.
//!   Declared incidents (a person reported them) have no MTTD.
//! - MTTD: fault start → the `opened` event.
//! - MTTA: `opened` → the first `acknowledged` event.
//! - MTTR: `opened` → the `resolved` event (the engine's) or the `phase_changed` event to
//!   `resolved` (a person's), whichever came first.
//! - breaches: incidents with a `response_target_breached` event.
//! - escalations: the highest step of the `escalated` events of each incident, counted per
//!   step (`{1: 4, 2: 1}`: four incidents stopped at step 1, one reached step 2).
//!
//! Drills (key starting with [`DRILL_PREFIX`], or `evidence.drill == true`) are excluded.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::clock::millis_between;
use crate::incident::{EventType, Incident, IncidentKind, Severity, Status, TimelineEvent};

/// Keys of drill incidents start with this (reserved for the drill feature); drills are not
/// real incidents and stay out of the KPIs.
pub const DRILL_PREFIX: &str = "drill:";

/// The evidence field where detectors record the first failing observation (RFC 3339).
pub const FAULT_STARTED_AT: &str = "fault_started_at";

/// What one incident contributes to the KPIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub id: i64,
    pub severity: Severity,
    pub kind: IncidentKind,
    /// `YYYY-MM` (UTC) of the opening.
    pub month: String,
    pub open: bool,
    pub declared: bool,
    /// Fault start → opened (`None`: declared, or the fault start is unknown).
    pub detect_ms: Option<u64>,
    /// Opened → first acknowledgement (`None`: not acknowledged).
    pub ack_ms: Option<u64>,
    /// Opened → resolution (`None`: not resolved).
    pub resolve_ms: Option<u64>,
    pub breached: bool,
    /// The highest escalation step reached (1-based; 0: no escalation event).
    pub escalation_step: u32,
}

/// True for drill incidents (excluded from the KPIs).
pub fn is_drill(incident: &Incident) -> bool {
    incident.key.starts_with(DRILL_PREFIX) || incident.evidence["drill"] == true
}

fn parse_ts(v: &serde_json::Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

/// When the fault began, as the detector recorded it at opening (else in the latest
/// evidence). Values that do not parse as RFC 3339 count as unknown.
pub fn fault_started_at(incident: &Incident, timeline: &[TimelineEvent]) -> Option<Timestamp> {
    timeline
        .iter()
        .find(|e| e.is(EventType::Opened))
        .and_then(|e| parse_ts(&e.data["evidence"][FAULT_STARTED_AT]))
        .or_else(|| parse_ts(&incident.evidence[FAULT_STARTED_AT]))
}

/// `YYYY-MM` in UTC.
pub fn month_of(t: Timestamp) -> String {
    t.strftime("%Y-%m").to_string()
}

/// Milliseconds from `from` to `to`, 0 when the clock says `to` came first.
use millis_between as span;

/// The facts of one incident, from its timeline (the incident's own fields fill in only
/// what an older timeline lacks).
pub fn facts(incident: &Incident, timeline: &[TimelineEvent]) -> Facts {
    let opened = timeline
        .iter()
        .find(|e| e.is(EventType::Opened))
        .map_or(incident.opened_at, |e| e.at);
    let declared = incident.is_declared();
    let detect_ms = if declared {
        None
    } else {
        fault_started_at(incident, timeline).map(|f| span(f, opened))
    };
    let acked = timeline
        .iter()
        .find(|e| e.is(EventType::Acknowledged))
        .map(|e| e.at)
        .or(incident.acked_at);
    let resolved = timeline
        .iter()
        .find(|e| {
            e.is(EventType::Resolved)
                || (e.is(EventType::PhaseChanged)
                    && e.data["to_phase"] == Status::Resolved.as_str())
        })
        .map(|e| e.at)
        .or(if incident.is_open() {
            None
        } else {
            incident.resolved_at
        });
    let breached = incident.ack_breached_at.is_some()
        || timeline
            .iter()
            .any(|e| e.is(EventType::ResponseTargetBreached));
    let escalation_step = timeline
        .iter()
        .filter(|e| e.is(EventType::Escalated))
        .filter_map(|e| e.data["step"].as_u64())
        .max()
        .map_or(0, |s| u32::try_from(s).unwrap_or(u32::MAX));
    Facts {
        id: incident.id,
        severity: incident.severity,
        kind: incident.kind,
        month: month_of(opened),
        open: incident.is_open(),
        declared,
        detect_ms,
        ack_ms: acked.map(|a| span(opened, a)),
        resolve_ms: resolved.map(|r| span(opened, r)),
        breached,
        escalation_step,
    }
}

/// Mean and median of a set of durations, with the number of samples.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub samples: usize,
    pub mean_ms: Option<u64>,
    pub median_ms: Option<u64>,
}

impl Stat {
    /// Mean rounded to the nearest ms; median of an even count is the mean of the middle two.
    pub fn of(values: &[u64]) -> Stat {
        if values.is_empty() {
            return Stat::default();
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        let n = v.len();
        let sum: u128 = v.iter().map(|&x| u128::from(x)).sum();
        let mean = ((sum + n as u128 / 2) / n as u128) as u64;
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (u128::from(v[n / 2 - 1]) + u128::from(v[n / 2])).div_ceil(2) as u64
        };
        Stat {
            samples: n,
            mean_ms: Some(mean),
            median_ms: Some(median),
        }
    }
}

/// The KPIs of a set of incidents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    /// Still open now.
    pub open: usize,
    /// Declared by a person (no MTTD by definition).
    pub declared: usize,
    pub mttd: Stat,
    /// Detected incidents whose fault start is unknown (no MTTD sample).
    pub mttd_unknown: usize,
    pub mtta: Stat,
    pub mttr: Stat,
    /// Incidents not acknowledged within their severity's response target.
    pub response_target_breaches: usize,
    /// Highest escalation step reached → number of incidents (incidents never escalated are
    /// not counted).
    pub escalations_by_max_step: BTreeMap<u32, usize>,
}

/// Sum up the facts of several incidents.
pub fn summarize<'a>(facts: impl IntoIterator<Item = &'a Facts>) -> Summary {
    let mut s = Summary::default();
    let (mut d, mut a, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for f in facts {
        s.count += 1;
        s.open += usize::from(f.open);
        s.declared += usize::from(f.declared);
        match f.detect_ms {
            Some(ms) => d.push(ms),
            None if !f.declared => s.mttd_unknown += 1,
            None => {}
        }
        a.extend(f.ack_ms);
        r.extend(f.resolve_ms);
        s.response_target_breaches += usize::from(f.breached);
        if f.escalation_step > 0 {
            *s.escalations_by_max_step
                .entry(f.escalation_step)
                .or_default() += 1;
        }
    }
    s.mttd = Stat::of(&d);
    s.mtta = Stat::of(&a);
    s.mttr = Stat::of(&r);
    s
}

/// One group of the report: the fields that are `None` are summed over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub severity: Option<Severity>,
    pub kind: Option<IncidentKind>,
    pub month: Option<String>,
    #[serde(flatten)]
    pub kpis: Summary,
}

/// The KPI report over the incidents opened in `[since, until]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub since: Timestamp,
    pub until: Timestamp,
    /// Drill incidents left out.
    pub drills_excluded: usize,
    pub overall: Summary,
    pub by_severity: Vec<Group>,
    pub by_kind: Vec<Group>,
    pub by_month: Vec<Group>,
    /// Per (severity, kind, month), every combination that has incidents.
    pub groups: Vec<Group>,
}

/// The facts of the real (not drill) incidents opened in `[since, until]`, and how many
/// drills were left out.
pub fn collect(
    incidents: &[(Incident, Vec<TimelineEvent>)],
    since: Timestamp,
    until: Timestamp,
) -> (Vec<Facts>, usize) {
    let mut drills = 0;
    let mut out = Vec::new();
    for (inc, timeline) in incidents {
        if inc.opened_at < since || inc.opened_at > until {
            continue;
        }
        if is_drill(inc) {
            drills += 1;
            continue;
        }
        out.push(facts(inc, timeline));
    }
    (out, drills)
}

/// Group facts by a key, in the key's order.
pub fn group_by<K: Ord>(facts: &[Facts], key: impl Fn(&Facts) -> K) -> BTreeMap<K, Summary> {
    let mut parts: BTreeMap<K, Vec<&Facts>> = BTreeMap::new();
    for f in facts {
        parts.entry(key(f)).or_default().push(f);
    }
    parts.into_iter().map(|(k, v)| (k, summarize(v))).collect()
}

/// The report over the incidents opened in `[since, until]`.
pub fn report(
    incidents: &[(Incident, Vec<TimelineEvent>)],
    since: Timestamp,
    until: Timestamp,
) -> Report {
    let (facts, drills_excluded) = collect(incidents, since, until);
    let group = |severity, kind, month, kpis| Group {
        severity,
        kind,
        month,
        kpis,
    };
    Report {
        since,
        until,
        drills_excluded,
        overall: summarize(&facts),
        by_severity: group_by(&facts, |f| f.severity)
            .into_iter()
            .map(|(s, k)| group(Some(s), None, None, k))
            .collect(),
        by_kind: group_by(&facts, |f| f.kind)
            .into_iter()
            .map(|(kind, k)| group(None, Some(kind), None, k))
            .collect(),
        by_month: group_by(&facts, |f| f.month.clone())
            .into_iter()
            .map(|(m, k)| group(None, None, Some(m), k))
            .collect(),
        groups: group_by(&facts, |f| (f.severity, f.kind, f.month.clone()))
            .into_iter()
            .map(|((s, kind, m), k)| group(Some(s), Some(kind), Some(m), k))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::DECLARED_PREFIX;
    use serde_json::json;

    const T0: &str = "2026-01-31T23:50:00Z";

    fn at(offset_s: i64) -> Timestamp {
        let t0: Timestamp = T0.parse().unwrap();
        t0.checked_add(jiff::SignedDuration::from_secs(offset_s))
            .unwrap()
    }

    fn ev(offset_s: i64, t: EventType, data: serde_json::Value) -> TimelineEvent {
        TimelineEvent::new(at(offset_s), t, String::new(), data)
    }

    /// An incident opened at `open_s` (seconds after T0) with a fault start `fault_s`
    /// seconds after T0 in its opening evidence.
    fn incident(
        id: i64,
        key: &str,
        severity: Severity,
        kind: IncidentKind,
        open_s: i64,
        fault_s: Option<i64>,
    ) -> (Incident, Vec<TimelineEvent>) {
        let evidence = match fault_s {
            Some(f) => json!({ FAULT_STARTED_AT: at(f) }),
            None => json!({}),
        };
        let finding = crate::incident::Finding {
            key: key.into(),
            kind,
            severity,
            nodes: vec![],
            summary: String::new(),
            evidence: evidence.clone(),
        };
        let mut inc = crate::lifecycle::open(&finding, at(open_s), &Default::default());
        inc.id = id;
        let opened = ev(open_s, EventType::Opened, json!({ "evidence": evidence }));
        (inc, vec![opened])
    }

    fn resolve(i: &mut (Incident, Vec<TimelineEvent>), s: i64, by_person: bool) {
        i.0.status = Status::Resolved;
        i.0.resolved_at = Some(at(s));
        i.1.push(if by_person {
            ev(s, EventType::PhaseChanged, json!({"to_phase": "resolved"}))
        } else {
            ev(s, EventType::Resolved, json!({}))
        });
    }

    fn book() -> Vec<(Incident, Vec<TimelineEvent>)> {
        use IncidentKind::*;
        use Severity::*;
        // 1: node down, fault 30 s before opening (January), acked after 4 min, escalated to
        // step 2, breached nothing, resolved by the engine after 20 min
        let mut a = incident(1, "node_down:rpc-1", P2, NodeDown, 0, Some(-30));
        a.1.push(ev(0, EventType::Escalated, json!({"step": 1})));
        a.1.push(ev(240, EventType::Acknowledged, json!({})));
        a.1.push(ev(300, EventType::Escalated, json!({"step": 2})));
        resolve(&mut a, 1200, false);
        // 2: node down in February (opened 11 min after T0), fault 10 s before, acked after
        // 2 min (a second ack event later is ignored), resolved by a person after 10 min
        let mut b = incident(2, "node_down:rpc-2", P2, NodeDown, 660, Some(650));
        b.1.push(ev(660, EventType::Escalated, json!({"step": 1})));
        b.1.push(ev(780, EventType::Acknowledged, json!({})));
        b.1.push(ev(900, EventType::Acknowledged, json!({})));
        resolve(&mut b, 1260, true);
        // 3: consensus P1 in February, fault start unknown, breached its target, never acked,
        // still open
        let mut c = incident(3, "consensus_failure", P1, ConsensusFailure, 700, None);
        c.1.push(ev(700, EventType::Escalated, json!({"step": 1})));
        c.1.push(ev(1600, EventType::ResponseTargetBreached, json!({})));
        c.0.ack_breached_at = Some(at(1600));
        // 4: declared P1 in February (no MTTD even with a fault start), acked after 60 s,
        // resolved after 1 h
        let mut d = incident(
            4,
            &format!("{DECLARED_PREFIX}7"),
            P1,
            ConsensusFailure,
            800,
            Some(0),
        );
        d.1.push(ev(860, EventType::Acknowledged, json!({})));
        resolve(&mut d, 4400, true);
        // 5 and 6: drills, excluded whatever they say
        let mut e = incident(5, "drill:node_down:rpc-1", P1, NodeDown, 100, Some(0));
        resolve(&mut e, 200, false);
        let mut f = incident(6, "node_down:rpc-3", P1, NodeDown, 100, Some(0));
        f.0.evidence["drill"] = json!(true);
        // 7: before the window
        let g = incident(7, "node_down:rpc-4", P4, NodeDown, -100_000, Some(-100_100));
        vec![a, b, c, d, e, f, g]
    }

    #[test]
    fn stat_mean_and_median() {
        assert_eq!(Stat::of(&[]), Stat::default());
        assert_eq!(
            Stat::of(&[30, 10, 20]),
            Stat {
                samples: 3,
                mean_ms: Some(20),
                median_ms: Some(20)
            }
        );
        assert_eq!(
            Stat::of(&[1, 2, 3, 100]),
            Stat {
                samples: 4,
                mean_ms: Some(27),
                median_ms: Some(3)
            }
        );
    }

    #[test]
    fn facts_from_a_timeline() {
        let b = book();
        let f = facts(&b[0].0, &b[0].1);
        assert_eq!(f.month, "2026-01");
        assert_eq!(f.detect_ms, Some(30_000));
        assert_eq!(f.ack_ms, Some(240_000));
        assert_eq!(f.resolve_ms, Some(1_200_000));
        assert_eq!(f.escalation_step, 2);
        assert!(!f.breached && !f.open);
        let f = facts(&b[1].0, &b[1].1);
        assert_eq!(f.month, "2026-02");
        assert_eq!(f.ack_ms, Some(120_000), "the first acknowledgement counts");
        assert_eq!(f.resolve_ms, Some(600_000), "a person's resolution counts");
        let f = facts(&b[2].0, &b[2].1);
        assert_eq!((f.detect_ms, f.ack_ms, f.resolve_ms), (None, None, None));
        assert!(f.breached && f.open);
        let f = facts(&b[3].0, &b[3].1);
        assert!(f.declared);
        assert_eq!(f.detect_ms, None, "declared incidents have no MTTD");
        assert_eq!(f.resolve_ms, Some(3_600_000));
        assert!(is_drill(&b[4].0) && is_drill(&b[5].0) && !is_drill(&b[0].0));
    }

    #[test]
    fn fault_start_from_the_opening_beats_later_evidence() {
        let (mut inc, tl) = incident(1, "k", Severity::P2, IncidentKind::NodeDown, 0, Some(-5));
        inc.evidence = json!({ FAULT_STARTED_AT: at(-500) });
        assert_eq!(facts(&inc, &tl).detect_ms, Some(5_000));
        // an older timeline without it: the incident's evidence
        let mut old = tl.clone();
        old[0].data = json!({});
        assert_eq!(facts(&inc, &old).detect_ms, Some(500_000));
        // garbage is unknown, not a crash; a fault start after the opening is 0
        inc.evidence = json!({ FAULT_STARTED_AT: "yesterday" });
        assert_eq!(facts(&inc, &old).detect_ms, None);
        inc.evidence = json!({ FAULT_STARTED_AT: at(10) });
        assert_eq!(facts(&inc, &old).detect_ms, Some(0));
    }

    #[test]
    fn report_per_severity_kind_and_month() {
        let r = report(&book(), at(-3600), at(10_000));
        assert_eq!(r.drills_excluded, 2);
        let o = &r.overall;
        assert_eq!((o.count, o.open, o.declared, o.mttd_unknown), (4, 1, 1, 1));
        assert_eq!(
            o.mttd,
            Stat {
                samples: 2,
                mean_ms: Some(20_000),
                median_ms: Some(20_000)
            }
        );
        // acks: 240 s, 120 s, 60 s
        assert_eq!(
            o.mtta,
            Stat {
                samples: 3,
                mean_ms: Some(140_000),
                median_ms: Some(120_000)
            }
        );
        // resolutions: 1200 s, 600 s, 3600 s
        assert_eq!(o.mttr.mean_ms, Some(1_800_000));
        assert_eq!(o.mttr.median_ms, Some(1_200_000));
        assert_eq!(o.response_target_breaches, 1);
        assert_eq!(o.escalations_by_max_step, BTreeMap::from([(1, 2), (2, 1)]));

        let sev: Vec<(Option<Severity>, usize)> = r
            .by_severity
            .iter()
            .map(|g| (g.severity, g.kpis.count))
            .collect();
        assert_eq!(sev, [(Some(Severity::P1), 2), (Some(Severity::P2), 2)]);
        let p1 = &r.by_severity[0].kpis;
        assert_eq!(p1.mttd.samples, 0);
        assert_eq!(p1.mtta.mean_ms, Some(60_000));
        assert_eq!(p1.response_target_breaches, 1);
        let months: Vec<(String, usize)> = r
            .by_month
            .iter()
            .map(|g| (g.month.clone().unwrap(), g.kpis.count))
            .collect();
        assert_eq!(months, [("2026-01".into(), 1), ("2026-02".into(), 3)]);
        assert_eq!(r.by_kind.len(), 2);
        let keys: Vec<(Severity, IncidentKind, &str)> = r
            .groups
            .iter()
            .map(|g| {
                (
                    g.severity.unwrap(),
                    g.kind.unwrap(),
                    g.month.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                (Severity::P1, IncidentKind::ConsensusFailure, "2026-02"),
                (Severity::P2, IncidentKind::NodeDown, "2026-01"),
                (Severity::P2, IncidentKind::NodeDown, "2026-02"),
            ]
        );
        // stable JSON field names
        let j = serde_json::to_value(&r.groups[1]).unwrap();
        assert_eq!(j["severity"], "P2");
        assert_eq!(j["kind"], "node_down");
        assert_eq!(j["mttd"]["mean_ms"], 30_000);
        assert_eq!(j["escalations_by_max_step"]["2"], 1);
    }

    #[test]
    fn empty_window_has_no_samples() {
        let r = report(&book(), at(20_000), at(30_000));
        assert_eq!(r.overall, Summary::default());
        assert!(r.groups.is_empty());
    }
}
