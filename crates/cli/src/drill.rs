//! `neo-ir drill list` and `neo-ir drill run SCENARIO`: the playbook's monthly drills on the
//! built-in simulated network. The drill injects the scenario's faults, gives the responders
//! (people using `neo-ir ack/run --store URL` or the API it prints) `--respond-within` to
//! respond, repairs the network, waits for the incidents to resolve and scores the response
//! from what the store recorded (`neo_ir_core::drill::score`).
//!
//! Drills run on their own network and store (default `sqlite://neo-ir-drills.db`), so their
//! incidents never mix with real ones (KPIs, status page, channels). `--auto-respond` lets
//! a bot named `drill-bot` acknowledge and run the scenario's runbook: it scores the pipeline
//! itself (for demos and tests), and the report says so.
//!
//! Exit: 0 when the drill ran and the fault was detected and classified, 1 when not (the
//! pipeline failed the drill), 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use jiff::Timestamp;
use neo_ir_core::drill::{self, DrillScore, Scenario};
use neo_ir_core::incident::{Actor, Incident, TimelineEvent};
use neo_ir_core::runbook::RunStatus;
use neo_ir_sim::Fault;
use neo_ir_store::{ListFilter, RunFilter, Store};

use crate::stage::{Stage, StageOptions};

const DRILL_STORE: &str = "sqlite://neo-ir-drills.db";

#[derive(clap::Subcommand)]
pub enum DrillAction {
    /// The built-in scenarios.
    List,
    /// Run a drill: inject the faults, wait for the response, repair, score.
    ///
    /// Example: neo-ir drill run node-crash --respond-within 10m
    Run(RunArgs),
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// A built-in scenario (`neo-ir drill list`); or give --file.
    scenario: Option<String>,
    /// A scenario file (TOML: name, title, kind, detect_within, runbook, [[faults]]).
    #[arg(long, conflicts_with = "scenario")]
    file: Option<PathBuf>,
    /// How long the responders have (acknowledge, run the runbook) before the network is
    /// repaired.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    respond_within: Duration,
    /// A bot acknowledges and runs the scenario's runbook (scores the pipeline, not people).
    #[arg(long)]
    auto_respond: bool,
    /// Store of the drills (their incidents, runs and timelines).
    #[arg(long, default_value = DRILL_STORE)]
    store: String,
    /// API address for the responders (a free port when taken).
    #[arg(long, default_value = "127.0.0.1:9796")]
    listen: String,
    /// Block time of the simulated network, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    msperblock: u64,
    /// Print the score as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(action: DrillAction) -> anyhow::Result<ExitCode> {
    match action {
        DrillAction::List => {
            for s in drill::builtin() {
                println!(
                    "{:<16} {:<18} {}\n{:<16} runbook: {}; detect within {}",
                    s.name,
                    s.kind.as_str(),
                    s.title,
                    "",
                    s.runbook.as_deref().unwrap_or("-"),
                    humantime::format_duration(s.detect_within)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DrillAction::Run(a) => run_drill(a).await,
    }
}

fn scenario(a: &RunArgs) -> anyhow::Result<Scenario> {
    let usage = |m: String| {
        anyhow::Error::new(neo_ir_core::config::ConfigError {
            file: a.file.clone().unwrap_or_else(|| "(command line)".into()),
            line: None,
            key: None,
            message: m,
        })
    };
    match (&a.scenario, &a.file) {
        (Some(name), None) => drill::find(name).ok_or_else(|| {
            let names: Vec<String> = drill::builtin().into_iter().map(|s| s.name).collect();
            usage(format!(
                "no scenario {name:?}; built in: {}",
                names.join(", ")
            ))
        }),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| usage(format!("cannot read the scenario: {e}")))?;
            drill::parse_scenario(&text).map_err(usage)
        }
        _ => Err(usage("give a scenario name or --file".into())),
    }
}

async fn run_drill(a: RunArgs) -> anyhow::Result<ExitCode> {
    let sc = scenario(&a)?;
    let faults: Vec<(String, Option<Fault>, Duration)> = sc
        .faults
        .iter()
        .map(|f| {
            let fault = if f.fault["fault"] == "stall" {
                None
            } else {
                Some(
                    serde_json::from_value::<Fault>(f.fault.clone())
                        .with_context(|| format!("fault {} on {}", f.fault, f.node))?,
                )
            };
            Ok((f.node.clone(), fault, f.after.unwrap_or_default()))
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    let say = |t: &str| {
        if !a.json {
            println!("[{:>5.1}s] {t}", started.elapsed().as_secs_f64())
        }
    };
    let stage = Stage::start(StageOptions {
        store_url: &a.store,
        listen: &a.listen,
        msperblock: a.msperblock,
        stability: Duration::from_secs(3),
    })
    .await?;
    say(&format!(
        "DRILL {}: {} (expect {}; {})",
        sc.name, sc.title, sc.kind, sc.brief
    ));
    say(&format!(
        "responders: API http://{}/api/v1/incidents, or neo-ir ack ID --store {}",
        stage.addr, a.store
    ));
    let mut rounds = stage.handle.rounds();
    rounds
        .wait_for(|r| *r >= 3)
        .await
        .context("the watcher stopped")?;

    // the fault
    let fault_at = Timestamp::now();
    let net = &stage.net;
    for (node, fault, after) in &faults {
        if !after.is_zero() {
            tokio::time::sleep(*after).await;
        }
        match fault {
            None => net.stall(),
            Some(f) => net
                .inject(node, f.clone())
                .await
                .with_context(|| format!("injecting {f:?} into {node}"))?,
        }
        say(&format!("injected {} on {node}", fault_name(fault)));
    }

    // the response
    let deadline = Instant::now() + a.respond_within;
    let limit = sc.detect_within * 3;
    let detected = wait(limit, || async {
        drill_incidents(&stage.store, fault_at)
            .await
            .ok()
            .filter(|v| !v.is_empty())
    })
    .await;
    match &detected {
        Some(list) => {
            for (i, _) in list {
                say(&format!(
                    "incident #{} {} {}: {}",
                    i.id, i.severity, i.kind, i.summary
                ));
            }
        }
        None => say(&format!(
            "nothing detected within {}",
            humantime::format_duration(limit)
        )),
    }
    let bot = Actor {
        who: "drill-bot".into(),
        from: "drill --auto-respond".into(),
    };
    if a.auto_respond {
        for (i, _) in detected.iter().flatten() {
            let r = stage
                .store
                .mutate(
                    i.id,
                    &neo_ir_store::Audit::new(&bot, "acknowledge", serde_json::json!({})),
                    |cur| neo_ir_core::respond::acknowledge(cur, &bot, Timestamp::now()),
                )
                .await?;
            if r.is_ok() {
                say(&format!("drill-bot acknowledged #{}", i.id));
            }
        }
    } else if detected.is_some() {
        say(&format!(
            "waiting up to {} for the responders",
            humantime::format_duration(a.respond_within)
        ));
        wait(
            deadline.saturating_duration_since(Instant::now()),
            || async { responded(&stage.store, &sc, fault_at).await.then_some(()) },
        )
        .await;
    }

    // the repair
    net.recover_all().await;
    net.resume();
    say("network repaired");
    if a.auto_respond {
        if let (Some(script), Some(list)) = (&sc.runbook, &detected) {
            let incident = list
                .iter()
                .find(|(i, _)| i.kind == sc.kind)
                .or(list.first());
            if let Some((i, _)) = incident {
                let ran = wait(Duration::from_secs(30), || async {
                    let mut req =
                        neo_ir_runbook::runner::RunRequest::new(script, vec![], bot.clone());
                    req.incident_id = Some(i.id);
                    let run = stage.runner.request(req).await.ok()?;
                    (run.status == RunStatus::Succeeded).then_some(run)
                })
                .await;
                match ran {
                    Some(run) => say(&format!("drill-bot ran {script}: {}", run.summary)),
                    None => say(&format!("drill-bot's {script} did not succeed")),
                }
            }
        }
    }
    let resolved = wait(Duration::from_secs(60), || async {
        let list = drill_incidents(&stage.store, fault_at).await.ok()?;
        list.iter().all(|(i, _)| !i.is_open()).then_some(())
    })
    .await
    .is_some();
    if !resolved {
        say("some drill incidents are still open after the repair");
    }

    // the score
    let incidents = drill_incidents(&stage.store, fault_at).await?;
    let runs: Vec<_> = stage
        .store
        .runs(&RunFilter {
            incident_id: None,
            status: None,
            limit: 500,
        })
        .await?
        .into_iter()
        .filter(|r| r.created_at >= fault_at)
        .collect();
    let score = drill::score(&sc, fault_at, &incidents, &runs);
    let _store = stage.stop().await;
    print_score(&score, a.auto_respond, a.json)?;
    Ok(if score.detect_ms.is_some() && score.classified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn fault_name(f: &Option<Fault>) -> String {
    match f {
        None => "a chain-wide stall".into(),
        Some(f) => serde_json::to_value(f)
            .ok()
            .and_then(|v| v["fault"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{f:?}")),
    }
}

/// Poll `f` every 200 ms until it gives a value or `limit` passes.
async fn wait<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The incidents opened since the fault, with their timelines.
async fn drill_incidents(
    store: &Store,
    since: Timestamp,
) -> anyhow::Result<Vec<(Incident, Vec<TimelineEvent>)>> {
    let all = store
        .list_incidents(ListFilter {
            all: true,
            limit: 200,
            before_id: None,
        })
        .await?;
    let mut out = Vec::new();
    for i in all.into_iter().filter(|i| i.opened_at >= since) {
        if let Some(pair) = store.incident(i.id).await? {
            out.push(pair);
        }
    }
    Ok(out)
}

/// Every drill incident acknowledged and, when the scenario has a runbook, a run of it.
async fn responded(store: &Store, sc: &Scenario, since: Timestamp) -> bool {
    let Ok(list) = drill_incidents(store, since).await else {
        return false;
    };
    let acked = !list.is_empty() && list.iter().all(|(i, _)| i.acked_at.is_some());
    let ran = match &sc.runbook {
        None => true,
        Some(script) => store
            .runs(&RunFilter {
                incident_id: None,
                status: Some(RunStatus::Succeeded),
                limit: 100,
            })
            .await
            .map(|runs| {
                runs.iter()
                    .any(|r| &r.script == script && r.created_at >= since)
            })
            .unwrap_or(false),
    };
    acked && ran
}

fn print_score(s: &DrillScore, auto: bool, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(s)?;
        v["auto_respond"] = serde_json::json!(auto);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let t = |v: Option<u64>| {
        v.map(neo_ir_core::incident::human_ms)
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "\nscore of drill {}: {}/100{}",
        s.scenario,
        s.points,
        if auto {
            " (auto-respond: the pipeline, not people)"
        } else {
            ""
        }
    );
    println!("  detected after       {}", t(s.detect_ms));
    println!(
        "  classified after     {}{}",
        t(s.classified_ms),
        if s.classified { "" } else { " (wrong kind)" }
    );
    println!("  acknowledged after   {}", t(s.ack_ms));
    println!(
        "  runbook ran          {}",
        if s.runbook_ran { "yes" } else { "no" }
    );
    println!(
        "  updates on time      {}",
        if s.updates_on_time { "yes" } else { "no" }
    );
    for n in &s.notes {
        println!("  - {n}");
    }
    Ok(())
}
