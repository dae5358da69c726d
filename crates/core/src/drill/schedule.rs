//! The monthly drill schedule (`[drills]`): when the next drills are, which scenario each
//! practises and who is its incident commander. Pure: the configuration, the on-call
//! schedules, the drill history and a time in; the upcoming drills out.
//!
//! The rules, so everyone (the CLI, the watcher's reminders) computes the same schedule:
//! - A drill is held every month on `day` (1 to 28, so every month has it) at `at` UTC.
//! - Drills are counted in months from an anchor: the month (UTC) in which the `commanders`
//!   rotation starts, or January of year 0 without one. The drill of month `k` practises
//!   `scenarios[k % len]` (every built-in scenario by default, so each kind is drilled in
//!   turn) and its incident commander is `people[k % len]` of the `commanders` rotation:
//!   the IC rotates one person per monthly drill, whoever is on call that day (overrides
//!   do not apply; swap by running the drill with `--commander`).
//! - A month in which a drill was already held (any drill people responded to, i.e. not
//!   aborted and not `--auto-respond`) has no drill left: the schedule goes on with the next
//!   month. Drills before `now` are past.
//! - The reminder of a drill is due `remind_before` it, until it starts.

use std::time::Duration;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use crate::oncall::Schedule;

/// `[drills]`: the monthly schedule, its people and channels, and the test node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillSettings {
    /// Day of the month, 1 to 28.
    pub day: i8,
    /// Time of day, UTC.
    pub at: Time,
    /// The `[[schedule]]` whose people take turns as incident commander.
    pub commanders: Option<String>,
    /// Who takes part (named in reminders).
    pub participants: Vec<String>,
    /// The scenarios in turn (built-in names).
    pub scenarios: Vec<String>,
    /// How long before a drill its reminder goes out.
    pub remind_before: Duration,
    /// The channels of drill reminders (`[[notify.channels]]` names).
    pub channels: Vec<String>,
    /// The node drills may break through its agent (`drill run --test-node`).
    pub test_node: Option<String>,
}

impl Default for DrillSettings {
    fn default() -> Self {
        DrillSettings {
            day: 15,
            at: Time::constant(14, 0, 0, 0),
            commanders: None,
            participants: Vec::new(),
            scenarios: super::builtin().into_iter().map(|s| s.name).collect(),
            remind_before: Duration::from_secs(3 * 86_400),
            channels: Vec::new(),
            test_node: None,
        }
    }
}

/// One drill of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledDrill {
    /// When it starts.
    pub at: Timestamp,
    /// Its day, `YYYY-MM-DD` (UTC): what its reminder is remembered by.
    pub day: String,
    pub scenario: String,
    /// The incident commander; `None` without a `commanders` rotation.
    pub commander: Option<String>,
    pub participants: Vec<String>,
    /// When its reminder is due.
    pub remind_at: Timestamp,
}

impl ScheduledDrill {
    /// Is its reminder due at `now` (from `remind_at` until the drill starts)?
    pub fn reminder_due(&self, now: Timestamp) -> bool {
        self.remind_at <= now && now < self.at
    }
}

/// A month as a number: `year * 12 + month - 1`.
fn month_index(d: Date) -> i64 {
    i64::from(d.year()) * 12 + i64::from(d.month()) - 1
}

fn utc_date(t: Timestamp) -> Date {
    t.to_zoned(TimeZone::UTC).date()
}

/// The next `n` drills after `now`. `schedules` are the on-call rotations
/// (`[[schedule]]`), `held` the start times of the drills already held (see the module's
/// rules for which count).
pub fn upcoming(
    settings: &DrillSettings,
    schedules: &[Schedule],
    held: &[Timestamp],
    now: Timestamp,
    n: usize,
) -> Vec<ScheduledDrill> {
    let rotation = settings
        .commanders
        .as_deref()
        .and_then(|name| schedules.iter().find(|s| s.name == name))
        .filter(|s| !s.people.is_empty());
    let anchor = rotation.map_or(0, |s| month_index(utc_date(s.start)));
    let held: std::collections::BTreeSet<i64> =
        held.iter().map(|t| month_index(utc_date(*t))).collect();
    let start = utc_date(now);
    let mut out = Vec::with_capacity(n);
    // 1200 months: the loop ends even if every month were held
    for offset in 0..1200 {
        if out.len() >= n {
            break;
        }
        let Ok(first) = start
            .first_of_month()
            .checked_add(jiff::Span::new().months(offset))
        else {
            break;
        };
        let Ok(date) = Date::new(first.year(), first.month(), settings.day) else {
            continue;
        };
        let Ok(at) = date.to_datetime(settings.at).to_zoned(TimeZone::UTC) else {
            continue;
        };
        let at = at.timestamp();
        let m = month_index(date);
        if at <= now || held.contains(&m) {
            continue;
        }
        let k = m - anchor;
        let pick = |list: &[String]| -> Option<String> {
            (!list.is_empty()).then(|| list[k.rem_euclid(list.len() as i64) as usize].clone())
        };
        let Some(scenario) = pick(&settings.scenarios) else {
            break;
        };
        let remind_at = jiff::SignedDuration::try_from(settings.remind_before)
            .ok()
            .and_then(|d| at.checked_sub(d).ok())
            .unwrap_or(Timestamp::MIN);
        out.push(ScheduledDrill {
            at,
            day: date.to_string(),
            scenario,
            commander: rotation.and_then(|s| pick(&s.people)),
            participants: settings.participants.clone(),
            remind_at,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn rotation() -> Schedule {
        Schedule {
            name: "primary".into(),
            rotation: Duration::from_secs(7 * 86_400),
            start: t("2026-01-05T09:00:00Z"),
            people: vec!["alice".into(), "bob".into(), "carol".into()],
            overrides: vec![],
        }
    }

    fn settings() -> DrillSettings {
        DrillSettings {
            commanders: Some("primary".into()),
            participants: vec!["dave".into(), "erin".into()],
            ..DrillSettings::default()
        }
    }

    #[test]
    fn monthly_on_the_day_with_a_rotating_commander_and_every_scenario_in_turn() {
        let s = settings();
        let list = upcoming(&s, &[rotation()], &[], t("2026-01-20T00:00:00Z"), 8);
        let days: Vec<&str> = list.iter().map(|d| d.day.as_str()).collect();
        assert_eq!(
            days,
            [
                "2026-02-15",
                "2026-03-15",
                "2026-04-15",
                "2026-05-15",
                "2026-06-15",
                "2026-07-15",
                "2026-08-15",
                "2026-09-15"
            ]
        );
        assert_eq!(list[0].at, t("2026-02-15T14:00:00Z"));
        assert_eq!(list[0].remind_at, t("2026-02-12T14:00:00Z"));
        // the rotation starts in January 2026: January's drill was alice's, February's is
        // bob's, whoever is on call on the day
        let ics: Vec<&str> = list
            .iter()
            .map(|d| d.commander.as_deref().unwrap())
            .collect();
        assert_eq!(
            ics,
            ["bob", "carol", "alice", "bob", "carol", "alice", "bob", "carol"]
        );
        assert_ne!(
            rotation().on_call(list[0].at).as_deref(),
            Some("bob"),
            "not whoever is on call (carol is, that week)"
        );
        // every built-in scenario within as many months as there are
        let n = s.scenarios.len();
        let seen: std::collections::BTreeSet<&str> =
            list[..n].iter().map(|d| d.scenario.as_str()).collect();
        assert_eq!(seen.len(), n, "{list:?}");
        assert_eq!(list[0].participants, ["dave", "erin"]);
    }

    #[test]
    fn a_month_whose_drill_was_held_is_skipped_and_the_turns_stay() {
        let s = settings();
        let now = t("2026-02-10T00:00:00Z");
        let before = upcoming(&s, &[rotation()], &[], now, 2);
        assert_eq!(before[0].day, "2026-02-15");
        // February's drill was run early, on the 9th
        let after = upcoming(&s, &[rotation()], &[t("2026-02-09T10:00:00Z")], now, 2);
        assert_eq!(after[0].day, "2026-03-15");
        assert_eq!(after[0], before[1], "March's drill is the same either way");
        // the day itself: before 14:00 it is ahead, after it, past
        let on = upcoming(&s, &[rotation()], &[], t("2026-02-15T13:59:00Z"), 1);
        assert_eq!(on[0].day, "2026-02-15");
        let past = upcoming(&s, &[rotation()], &[], t("2026-02-15T14:00:00Z"), 1);
        assert_eq!(past[0].day, "2026-03-15");
    }

    #[test]
    fn reminders_are_due_before_the_drill_until_it_starts() {
        let s = settings();
        let d = &upcoming(&s, &[rotation()], &[], t("2026-02-01T00:00:00Z"), 1)[0];
        assert!(!d.reminder_due(t("2026-02-12T13:59:59Z")));
        assert!(d.reminder_due(t("2026-02-12T14:00:00Z")));
        assert!(d.reminder_due(t("2026-02-15T13:59:59Z")));
        assert!(!d.reminder_due(t("2026-02-15T14:00:00Z")));
    }

    #[test]
    fn without_a_rotation_there_is_no_commander_and_the_scenarios_still_turn() {
        let s = DrillSettings {
            day: 1,
            at: Time::constant(9, 30, 0, 0),
            scenarios: vec!["node-crash".into(), "split-brain".into()],
            ..DrillSettings::default()
        };
        let list = upcoming(&s, &[], &[], t("2026-12-01T09:30:00Z"), 3);
        let got: Vec<(&str, &str)> = list
            .iter()
            .map(|d| (d.day.as_str(), d.scenario.as_str()))
            .collect();
        // months counted from year 0: 2027-01 is an even month index
        assert_eq!(
            got,
            [
                ("2027-01-01", "node-crash"),
                ("2027-02-01", "split-brain"),
                ("2027-03-01", "node-crash")
            ]
        );
        assert!(list.iter().all(|d| d.commander.is_none()));
        assert_eq!(list[0].at, t("2027-01-01T09:30:00Z"));
    }
}
