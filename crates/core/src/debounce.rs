//! `for` durations and hysteresis between the detectors and the incident engine, like
//! Prometheus rules' `for` and `keep_firing_for`: a condition must hold for `for` before it
//! fires, and once firing it must be clear for `clear_for` before its incident may resolve.
//! While pending or clearing, the key is reported `undecided`, so an open incident stays as
//! it is and nothing flaps. Pure state, driven by the round's `now`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::clock::millis_between;
use crate::incident::{Assessment, IncidentKind};

/// Durations per incident kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebounceRules {
    /// How long a condition must hold before it fires, per kind (default 0: at once).
    pub for_by_kind: BTreeMap<IncidentKind, Duration>,
    /// How long a firing condition must be clear before it resolves.
    pub clear_for: Duration,
}

impl Default for DebounceRules {
    fn default() -> Self {
        Self {
            // KPI breaches must last a few seconds: one slow answer is not a degradation
            for_by_kind: [
                (IncidentKind::PerformanceDegradation, Duration::from_secs(3)),
                (IncidentKind::NetworkAttack, Duration::from_secs(2)),
            ]
            .into(),
            clear_for: Duration::from_secs(5),
        }
    }
}

impl DebounceRules {
    fn pending_for(&self, kind: IncidentKind) -> u64 {
        self.for_by_kind
            .get(&kind)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct KeyState {
    since: Timestamp,
    last_seen: Timestamp,
    firing: bool,
}

/// The debouncer's memory of each key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Debouncer {
    keys: BTreeMap<String, KeyState>,
}

impl Debouncer {
    /// Keys of incidents that were open before a restart: they count as firing, seen `now`.
    pub fn resume(&mut self, open_keys: impl IntoIterator<Item = String>, now: Timestamp) {
        for k in open_keys {
            self.keys.insert(
                k,
                KeyState {
                    since: now,
                    last_seen: now,
                    firing: true,
                },
            );
        }
    }

    /// Filter one round's assessment.
    pub fn apply(&mut self, raw: Assessment, rules: &DebounceRules, now: Timestamp) -> Assessment {
        let mut out = Assessment {
            findings: Vec::new(),
            undecided: raw.undecided.clone(),
        };
        let mut present = std::collections::BTreeSet::new();
        for f in raw.findings {
            present.insert(f.key.clone());
            let st = self.keys.entry(f.key.clone()).or_insert(KeyState {
                since: now,
                last_seen: now,
                firing: false,
            });
            st.last_seen = now;
            if !st.firing && millis_between(st.since, now) >= rules.pending_for(f.kind) {
                st.firing = true;
            }
            if st.firing {
                out.findings.push(f);
            } else {
                out.undecided.insert(f.key);
            }
        }
        let clear_ms = rules.clear_for.as_millis() as u64;
        self.keys.retain(|key, st| {
            if present.contains(key) {
                return true;
            }
            if raw.undecided.contains(key) {
                // cannot be judged: keep the memory as it is
                return true;
            }
            if st.firing && millis_between(st.last_seen, now) < clear_ms {
                out.undecided.insert(key.clone());
                return true;
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::incident::{Finding, Severity};

    fn firing(key: &str, kind: IncidentKind) -> Assessment {
        Assessment {
            findings: vec![Finding {
                key: key.into(),
                kind,
                severity: Severity::P3,
                nodes: vec![],
                summary: String::new(),
                evidence: serde_json::Value::Null,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn pending_until_for_then_firing_then_clear_after_clear_for() {
        let clock = ManualClock::at_epoch_2026();
        let rules = DebounceRules {
            for_by_kind: [(IncidentKind::PerformanceDegradation, Duration::from_secs(5))].into(),
            clear_for: Duration::from_secs(10),
        };
        let mut d = Debouncer::default();
        let k = "performance_degradation:rpc-1";
        let a = d.apply(
            firing(k, IncidentKind::PerformanceDegradation),
            &rules,
            clock.now(),
        );
        assert!(a.findings.is_empty() && a.undecided.contains(k), "pending");
        clock.advance(Duration::from_secs(5));
        let a = d.apply(
            firing(k, IncidentKind::PerformanceDegradation),
            &rules,
            clock.now(),
        );
        assert_eq!(a.findings.len(), 1, "fires after `for`");
        // flaps: clear for 9 s, then back — never resolves
        clock.advance(Duration::from_secs(9));
        let a = d.apply(Assessment::default(), &rules, clock.now());
        assert!(a.undecided.contains(k), "clearing is undecided");
        let a = d.apply(
            firing(k, IncidentKind::PerformanceDegradation),
            &rules,
            clock.now(),
        );
        assert_eq!(a.findings.len(), 1, "still firing, no pending again");
        // clear for 10 s: now it is clear
        clock.advance(Duration::from_secs(10));
        let a = d.apply(Assessment::default(), &rules, clock.now());
        assert!(a.findings.is_empty() && !a.undecided.contains(k));
    }

    #[test]
    fn a_blip_shorter_than_for_never_fires() {
        let clock = ManualClock::at_epoch_2026();
        let rules = DebounceRules {
            for_by_kind: [(IncidentKind::NetworkAttack, Duration::from_secs(3))].into(),
            clear_for: Duration::ZERO,
        };
        let mut d = Debouncer::default();
        let k = "network_attack:rpc-1";
        d.apply(firing(k, IncidentKind::NetworkAttack), &rules, clock.now());
        clock.advance(Duration::from_secs(2));
        let a = d.apply(Assessment::default(), &rules, clock.now());
        assert!(a.findings.is_empty() && !a.undecided.contains(k));
        clock.advance(Duration::from_secs(2));
        let a = d.apply(firing(k, IncidentKind::NetworkAttack), &rules, clock.now());
        assert!(a.findings.is_empty(), "the `for` timer restarted");
    }

    #[test]
    fn zero_for_fires_at_once_and_resumed_keys_wait_clear_for() {
        let clock = ManualClock::at_epoch_2026();
        let rules = DebounceRules::default();
        let mut d = Debouncer::default();
        let a = d.apply(
            firing("node_down:a", IncidentKind::NodeDown),
            &rules,
            clock.now(),
        );
        assert_eq!(a.findings.len(), 1);
        d.resume(["consensus_failure".to_string()], clock.now());
        clock.advance(Duration::from_secs(1));
        let a = d.apply(Assessment::default(), &rules, clock.now());
        assert!(a.undecided.contains("consensus_failure"));
    }
}
