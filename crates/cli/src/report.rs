//! `neo-ir report`: the incident KPIs (MTTD, MTTA, MTTR, response-target breaches,
//! escalations) over a period, per severity, kind and month, from the stored timelines
//! (definitions in docs/KPIS.md; the numbers come from `neo_ir_core::kpis`).

use std::fmt::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use jiff::Timestamp;
use neo_ir_core::incident::human_ms;
use neo_ir_core::kpis::{self, Group, Report, Stat, Summary};

use crate::output::local;
use crate::run::StoreArgs;

const JSON_HELP: &str = "\
JSON fields (stable): since, until (RFC 3339), drills_excluded, overall, by_severity, by_kind,
by_month, groups (per severity, kind and month). Each group has severity, kind, month (null
when summed over) and: count, open, declared, mttd, mttd_unknown, mtta, mttr (each
{samples, mean_ms, median_ms}; null means no sample), response_target_breaches,
escalations_by_max_step ({\"step\": incidents whose highest escalation step it was}).
Definitions: docs/KPIS.md.

Examples:
  neo-ir report --since 30d
  neo-ir report --since 2026-01-01 --markdown > kpis.md
  neo-ir report --since 12w --json --store sqlite://neo-ir.db";

/// Incident KPIs over a period.
#[derive(clap::Args)]
#[command(after_help = JSON_HELP)]
pub struct ReportArgs {
    /// The period: a duration back from now (30d, 12h, 2w) or a start date (2026-01-01,
    /// UTC) or time (RFC 3339).
    #[arg(long, default_value = "30d", value_parser = since_arg)]
    since: Timestamp,
    /// Print JSON (fields below).
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print Markdown tables (for a review or a monthly report).
    #[arg(long)]
    markdown: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let now = Timestamp::now();
    let since = args.since;
    let store = args.store.open().await?;
    let incidents = store
        .incidents_since(since)
        .await
        .context("reading the incidents")?;
    store.close().await;
    let r = kpis::report(&incidents, since, now);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else if args.markdown {
        print!("{}", markdown(&r));
    } else {
        print!("{}", table(&r));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since` as clap parses it (a bad value is a usage error, exit 2).
fn since_arg(s: &str) -> Result<Timestamp, String> {
    parse_since(s, Timestamp::now()).map_err(|e| e.to_string())
}

/// `30d`, `12h`, `2w` back from `now`; `2026-01-01` (UTC midnight); or an RFC 3339 time.
pub fn parse_since(s: &str, now: Timestamp) -> anyhow::Result<Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return Ok(d.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp());
    }
    let Ok(back) = humantime::parse_duration(s) else {
        bail!(
            "{s:?}: expected a duration back from now (30d, 12h, 2w), a date \
             (2026-01-01) or an RFC 3339 time"
        );
    };
    let back = jiff::SignedDuration::try_from(back)
        .ok()
        .and_then(|d| now.checked_sub(d).ok());
    match back {
        Some(t) => Ok(t),
        None => bail!("{s:?} reaches before the earliest time neo-ir can represent"),
    }
}

/// Durations short enough for a table cell: `4.2s`, `3m05s`, `2h01m`, `3d04h`.
pub fn short_ms(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// `mean/median (samples)`, or `n/a` (with a mark when the reason is an unknown fault start).
fn cell(stat: &Stat, mark: bool, dur: fn(u64) -> String) -> String {
    match (stat.mean_ms, stat.median_ms) {
        (Some(mean), Some(median)) if stat.samples > 0 => {
            format!("{}/{} ({})", dur(mean), dur(median), stat.samples)
        }
        _ if mark => "n/a*".into(),
        _ => "n/a".into(),
    }
}

fn label(g: &Group) -> String {
    let parts: Vec<&str> = [
        g.severity.map(|s| s.as_str()),
        g.month.as_deref(),
        g.kind.map(|k| k.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    parts.join(" ")
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

fn escalations(s: &Summary) -> String {
    if s.escalations_by_max_step.is_empty() {
        return "none".into();
    }
    s.escalations_by_max_step
        .iter()
        .map(|(step, n)| format!("step {step}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn period(r: &Report) -> String {
    let ms = neo_ir_core::clock::millis_between(r.since, r.until);
    let length = if ms >= 86_400_000 {
        format!("{:.1} days", ms as f64 / 86_400_000.0)
    } else {
        human_ms(ms)
    };
    let mut out = format!(
        "Incident KPIs from {} to {} ({length})",
        local(r.since),
        local(r.until)
    );
    if r.drills_excluded > 0 {
        let _ = write!(out, "\n{} drill(s) excluded", r.drills_excluded);
    }
    out
}

fn unknown_note(r: &Report) -> Option<String> {
    (r.overall.mttd_unknown > 0).then(|| {
        format!(
            "* MTTD n/a (fault start unknown): {} incident(s) whose detector did not record when \
             the fault began",
            r.overall.mttd_unknown
        )
    })
}

/// The report as fixed-width tables (at most 100 columns).
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", period(r));
    if r.overall.count == 0 {
        out.push_str("no incidents in the period\n");
        return out;
    }
    let header = format!(
        "{:<24}  {:>4}  {:<18} {:<18} {:<18}  {:>6}",
        "GROUP", "N", "MTTD mean/med (n)", "MTTA mean/med (n)", "MTTR mean/med (n)", "BREACH"
    );
    let row = |out: &mut String, name: &str, s: &Summary| {
        let _ = writeln!(
            out,
            "{:<24}  {:>4}  {:<18} {:<18} {:<18}  {:>6}",
            clip(name, 24),
            s.count,
            cell(&s.mttd, s.mttd_unknown > 0, short_ms),
            cell(&s.mtta, false, short_ms),
            cell(&s.mttr, false, short_ms),
            s.response_target_breaches
        );
    };
    let sections: [(&str, &[Group]); 4] = [
        ("By severity", &r.by_severity),
        ("By kind", &r.by_kind),
        ("By month", &r.by_month),
        ("By severity, month and kind", &r.groups),
    ];
    out.push('\n');
    let _ = writeln!(out, "{header}");
    row(&mut out, "all", &r.overall);
    for (title, groups) in sections.into_iter().filter(|(_, g)| !g.is_empty()) {
        let _ = writeln!(out, "\n{title}");
        for g in groups {
            row(&mut out, &label(g), &g.kpis);
        }
    }
    let _ = writeln!(
        out,
        "\nOpen now: {}. Escalations (highest step per incident): {}.",
        r.overall.open,
        escalations(&r.overall)
    );
    for g in &r.by_severity {
        if !g.kpis.escalations_by_max_step.is_empty() {
            let _ = writeln!(out, "  {}: {}", label(g), escalations(&g.kpis));
        }
    }
    if let Some(n) = unknown_note(r) {
        let _ = writeln!(out, "{n}");
    }
    out
}

/// The report as Markdown tables.
pub fn markdown(r: &Report) -> String {
    let mut out = format!("# {}\n", period(r));
    if r.overall.count == 0 {
        out.push_str("\nNo incidents in the period.\n");
        return out;
    }
    let stat = |s: &Stat, mark: bool| -> [String; 2] {
        match (s.mean_ms, s.median_ms) {
            (Some(mean), Some(median)) => [
                format!("{} (n={})", human_ms(mean), s.samples),
                human_ms(median),
            ],
            _ if mark => ["n/a (fault start unknown)".into(), "n/a".into()],
            _ => ["n/a".into(), "n/a".into()],
        }
    };
    let sections: [(&str, Vec<(String, &Summary)>); 5] = [
        ("Overall", vec![("all".into(), &r.overall)]),
        (
            "By severity",
            r.by_severity.iter().map(|g| (label(g), &g.kpis)).collect(),
        ),
        (
            "By kind",
            r.by_kind.iter().map(|g| (label(g), &g.kpis)).collect(),
        ),
        (
            "By month",
            r.by_month.iter().map(|g| (label(g), &g.kpis)).collect(),
        ),
        (
            "By severity, month and kind",
            r.groups.iter().map(|g| (label(g), &g.kpis)).collect(),
        ),
    ];
    for (title, rows) in sections {
        let _ = writeln!(out, "\n## {title}\n");
        out.push_str(
            "| Group | Count | Open | MTTD mean | MTTD median | MTTA mean | MTTA median \
             | MTTR mean | MTTR median | Breaches | Escalations |\n",
        );
        out.push_str("|---|---:|---:|---|---|---|---|---|---|---:|---|\n");
        for (name, s) in rows {
            let [dm, dd] = stat(&s.mttd, s.mttd_unknown > 0);
            let [am, ad] = stat(&s.mtta, false);
            let [rm, rd] = stat(&s.mttr, false);
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {dm} | {dd} | {am} | {ad} | {rm} | {rd} | {} | {} |",
                s.count,
                s.open,
                s.response_target_breaches,
                escalations(s)
            );
        }
    }
    if let Some(n) = unknown_note(r) {
        let _ = writeln!(out, "\n{}", n.trim_start_matches("* "));
    }
    out.push_str("\nDefinitions: docs/KPIS.md.\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use neo_ir_core::incident::{IncidentKind, Severity};
    use std::collections::BTreeMap;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn since_forms() {
        let now = t("2026-03-01T00:00:00Z");
        assert_eq!(parse_since("30d", now).unwrap(), t("2026-01-30T00:00:00Z"));
        assert_eq!(parse_since("12h", now).unwrap(), t("2026-02-28T12:00:00Z"));
        assert_eq!(
            parse_since("2026-01-01", now).unwrap(),
            t("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_since("2026-01-01T10:00:00+02:00", now).unwrap(),
            t("2026-01-01T08:00:00Z")
        );
        let e = parse_since("last tuesday", now).unwrap_err().to_string();
        assert!(e.contains("expected a duration"), "{e}");
        assert!(parse_since("100000000000d", now).is_err());
    }

    #[test]
    fn short_durations() {
        assert_eq!(short_ms(4200), "4.2s");
        assert_eq!(short_ms(185_000), "3m05s");
        assert_eq!(short_ms(3_660_000), "1h01m");
        assert_eq!(short_ms(90_000_000), "1d01h");
    }

    fn sample() -> Report {
        let kpis = Summary {
            count: 12,
            open: 1,
            declared: 0,
            mttd: Stat::default(),
            mttd_unknown: 12,
            mtta: Stat {
                samples: 11,
                mean_ms: Some(3_600_000 * 23 + 59 * 60_000),
                median_ms: Some(86_400_000 * 12),
            },
            mttr: Stat {
                samples: 1234,
                mean_ms: Some(59_900),
                median_ms: Some(4200),
            },
            response_target_breaches: 999,
            escalations_by_max_step: BTreeMap::from([(1, 3), (3, 1)]),
        };
        let g = Group {
            severity: Some(Severity::P4),
            kind: Some(IncidentKind::PerformanceDegradation),
            month: Some("2026-02".into()),
            kpis: kpis.clone(),
        };
        Report {
            since: t("2026-01-01T00:00:00Z"),
            until: t("2026-03-01T00:00:00Z"),
            drills_excluded: 2,
            overall: kpis,
            by_severity: vec![],
            by_kind: vec![],
            by_month: vec![],
            groups: vec![g],
        }
    }

    #[test]
    fn table_fits_100_columns_and_says_why_mttd_is_missing() {
        let out = table(&sample());
        for line in out.lines() {
            assert!(line.chars().count() <= 100, "{} > 100: {line}", line.len());
        }
        assert!(out.contains("P4 2026-02 performance_…"), "{out}");
        assert!(out.contains("23h59m/12d00h (11)"), "{out}");
        assert!(out.contains("59.9s/4.2s (1234)"), "{out}");
        assert!(out.contains("n/a*"), "{out}");
        assert!(out.contains("n/a (fault start unknown)"), "{out}");
        assert!(out.contains("step 1: 3, step 3: 1"), "{out}");
        assert!(out.contains("2 drill(s) excluded"), "{out}");
        let md = markdown(&sample());
        assert!(
            md.contains(
                "| P4 2026-02 performance_degradation | 12 | 1 | n/a (fault start unknown) |"
            ),
            "{md}"
        );
    }
}
