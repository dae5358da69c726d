//! `neo-ir drill rehearse SCENARIO`: a drill in simulated time (`neo_ir_core::drill::rehearse`)
//! with the operator's probe, detection and response settings and scripted responders. It
//! takes milliseconds and answers "with this configuration, when would a consensus stall be
//! detected, escalated, resolved, and what would the drill score be?" before a real drill.
//!
//! Exit: 0 when the fault was detected and classified, 1 when not, 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use neo_ir_core::config::{Config, ConfigError};
use neo_ir_core::drill::rehearse::{rehearse, Responders, Setup};
use neo_ir_core::incident::human_ms;

#[derive(clap::Args)]
pub struct RehearseArgs {
    /// A built-in scenario (`neo-ir drill list`); or give --file.
    scenario: Option<String>,
    /// A scenario file (TOML, as for `drill run`).
    #[arg(long, conflicts_with = "scenario")]
    file: Option<PathBuf>,
    /// The configuration whose probe, detection and response settings are rehearsed
    /// (default ./neo-ir.toml when present, else the built-in defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The responders acknowledge this long after each incident opens ("never": nobody).
    #[arg(long, default_value = "1m")]
    ack_after: String,
    /// They post a status update this long after each reminder ("never": nobody).
    #[arg(long, default_value = "1m")]
    update_after: String,
    /// They repair the network this long after the first incident.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    repair_after: Duration,
    /// They run the scenario's runbook this long after the repair ("never": nobody).
    #[arg(long, default_value = "30s")]
    runbook_after: String,
    /// Print the score, the story and the incidents as JSON.
    #[arg(long)]
    json: bool,
}

fn usage(file: Option<&PathBuf>, message: String) -> anyhow::Error {
    anyhow::Error::new(ConfigError {
        file: file.cloned().unwrap_or_else(|| "(command line)".into()),
        line: None,
        key: None,
        message,
    })
}

/// "never" or a duration.
fn maybe(flag: &str, v: &str) -> anyhow::Result<Option<Duration>> {
    if v == "never" {
        return Ok(None);
    }
    humantime::parse_duration(v).map(Some).map_err(|e| {
        usage(
            None,
            format!("--{flag} {v:?}: {e} (a duration like 2m, or never)"),
        )
    })
}

pub fn run(a: RehearseArgs) -> anyhow::Result<ExitCode> {
    let sc = crate::drill::find_scenario(a.scenario.as_ref(), a.file.as_ref())?;
    let config = match (&a.config, std::path::Path::new("neo-ir.toml").exists()) {
        (None, false) => Config::with_defaults(vec![], "sqlite::memory:"),
        (path, _) => crate::run::load_config(path.clone())?.1,
    };
    let responders = Responders {
        ack_after: maybe("ack-after", &a.ack_after)?,
        update_after: maybe("update-after", &a.update_after)?,
        repair_after: a.repair_after,
        runbook_after: maybe("runbook-after", &a.runbook_after)?,
        ..Responders::default()
    };
    // whole seconds: the story's times read like a clock's
    let start = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())?;
    let r = rehearse(&sc, &Setup::from_config(&config), &responders, start)
        .map_err(|m| usage(a.file.as_ref(), m))?;
    let ok = r.score.detect_ms.is_some() && r.score.classified;
    if a.json {
        let incidents: Vec<serde_json::Value> = r
            .incidents
            .iter()
            .map(|(i, t)| serde_json::json!({"incident": i, "timeline": t}))
            .collect();
        let mut v = serde_json::to_value(&r)?;
        v["incidents"] = incidents.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "rehearsal of drill {}: {} (simulated time; expect {})",
            sc.name, sc.title, sc.kind
        );
        for s in &r.story {
            println!("  +{:<12} {}", human_ms(s.at_ms), s.what);
        }
        println!("\nscore {}/100", r.score.points);
        crate::drill::print_score_lines(&r.score, r.resolved_ms);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
