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
//! Every drill is recorded in its store as it starts (`drills` table): the watcher marks the
//! incidents of a running drill as drill incidents (`drill:` key, `evidence.drill`), and the
//! fault is injected only once the watcher has seen the drill. The score is stored at the
//! end; `neo-ir drill history` lists them.
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
use neo_ir_store::{ListFilter, NewDrill, RunFilter, Store, StoredDrill};

use crate::stage::{Stage, StageOptions};

const DRILL_STORE: &str = "sqlite://neo-ir-drills.db";

#[derive(clap::Subcommand)]
pub enum DrillAction {
    /// The built-in scenarios.
    List,
    /// Run a drill: inject the faults, wait for the response, repair, score.
    ///
    /// Example: neo-ir drill run node-crash --respond-within 10m --commander alice
    Run(RunArgs),
    /// The drills run so far, newest first: date, scenario, commander, target, points,
    /// detection and acknowledgement times, what lost points.
    ///
    /// Example: neo-ir drill history --limit 12
    History(HistoryArgs),
    /// The drill in simulated time, in milliseconds: your configuration's probe, detection
    /// and response settings against the scenario, with scripted responders; the story and
    /// the score it would get (no network, no store).
    ///
    /// Example: neo-ir drill rehearse consensus-stall --config neo-ir.toml --ack-after 10m
    Rehearse(crate::rehearse::RehearseArgs),
    /// The next monthly drills of `[drills]`: date, scenario, incident commander (the next
    /// person of the `commanders` rotation), reminder time.
    ///
    /// Example: neo-ir drill schedule --config neo-ir.toml --months 6
    Schedule(ScheduleArgs),
}

#[derive(clap::Args)]
pub struct ScheduleArgs {
    /// Configuration file with the `[drills]` section (default ./neo-ir.toml, then
    /// /etc/neo-ir/neo-ir.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// How many drills to list.
    #[arg(long, default_value_t = 6)]
    months: usize,
    /// The drill store whose history counts too (besides the configured store); a missing
    /// SQLite file is skipped, not created.
    #[arg(long, default_value = DRILL_STORE)]
    store: String,
    /// Print JSON (`{"drills": [...]}`).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// Store of the drills (`drill run`'s default; drills on a test node are in the
    /// configured store: pass it with --store).
    #[arg(long, default_value = DRILL_STORE)]
    store: String,
    /// Most drills listed.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON (`{"drills": [...]}`).
    #[arg(long)]
    json: bool,
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
    /// The drill's incident commander (recorded with the drill; `neo-ir drill schedule`
    /// says whose turn it is).
    #[arg(long)]
    commander: Option<String>,
    /// Break the designated test node (`[drills] test_node`) through its agent instead of
    /// the simulated network: the drill and its incidents go to the configured store, where
    /// the running `neo-ir watch` marks them. Only scenarios that crash one node.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "NODE")]
    test_node: Option<String>,
    /// Who approved breaking the test node (required with --test-node; the agent's stop is
    /// destructive).
    #[arg(long, value_name = "NAME")]
    approved_by: Option<String>,
    /// Configuration file (with --test-node: the nodes, the store and `[drills]`).
    #[arg(long, short)]
    config: Option<PathBuf>,
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
        DrillAction::History(a) => history(a).await,
        DrillAction::Rehearse(a) => crate::rehearse::run(a),
        DrillAction::Schedule(a) => schedule(a).await,
    }
}

fn scenario(a: &RunArgs) -> anyhow::Result<Scenario> {
    find_scenario(a.scenario.as_ref(), a.file.as_ref())
}

/// A built-in scenario by name, or a scenario file; a usage error (exit 2) naming the file
/// or listing the built-in names otherwise.
pub(crate) fn find_scenario(
    name: Option<&String>,
    file: Option<&PathBuf>,
) -> anyhow::Result<Scenario> {
    let usage = |m: String| {
        anyhow::Error::new(neo_ir_core::config::ConfigError {
            file: file.cloned().unwrap_or_else(|| "(command line)".into()),
            line: None,
            key: None,
            message: m,
        })
    };
    match (name, file) {
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
    if a.test_node.is_some() {
        return on_test_node(a, sc).await;
    }
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
    let json = a.json;
    let say = move |t: &str| {
        if !json {
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
    let field = Field::Simulated {
        stage: &stage,
        faults,
    };
    let drill = record(&stage.store, &sc, &a, neo_ir_store::SIMULATED, vec![]).await?;
    let played = play(&sc, &a, &stage.store, &stage.runner, &field, &drill, &say).await;
    let _store = stage.stop().await;
    let score = played?;
    print_score(&score, drill.id, a.auto_respond, a.json)?;
    Ok(exit_of(&score))
}

/// Exit 0 when the pipeline detected and classified the fault, 1 when not.
fn exit_of(score: &DrillScore) -> ExitCode {
    if score.detect_ms.is_some() && score.classified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Where the faults go.
enum Field<'a> {
    /// The built-in simulated network: the scenario's faults as they are.
    Simulated {
        stage: &'a Stage,
        faults: Vec<(String, Option<Fault>, Duration)>,
    },
    /// The designated test node, through its agent: each fault (a crash) is the agent's
    /// `service_stop` (the `stop_node` script, approved), the repair its `service_start`.
    TestNode {
        runner: &'a neo_ir_runbook::runner::Runner,
        node: String,
        approved_by: String,
        /// When each crash is due after the drill starts.
        crashes: Vec<Duration>,
        resolve_within: Duration,
    },
}

impl Field<'_> {
    async fn inject(&self, say: &dyn Fn(&str)) -> anyhow::Result<()> {
        match self {
            Field::Simulated { stage, faults } => {
                for (node, fault, after) in faults {
                    if !after.is_zero() {
                        tokio::time::sleep(*after).await;
                    }
                    match fault {
                        None => stage.net.stall(),
                        Some(f) => stage
                            .net
                            .inject(node, f.clone())
                            .await
                            .with_context(|| format!("injecting {f:?} into {node}"))?,
                    }
                    say(&format!("injected {} on {node}", fault_name(fault)));
                }
            }
            Field::TestNode {
                runner,
                node,
                approved_by,
                crashes,
                ..
            } => {
                for after in crashes {
                    if !after.is_zero() {
                        tokio::time::sleep(*after).await;
                    }
                    let run = test_node_run(runner, "stop_node", node, approved_by).await?;
                    say(&format!(
                        "stopped {node} through its agent (run {}, approved by {approved_by}): {}",
                        run.id, run.summary
                    ));
                }
            }
        }
        Ok(())
    }

    async fn repair(&self, say: &dyn Fn(&str)) -> anyhow::Result<()> {
        match self {
            Field::Simulated { stage, .. } => {
                stage.net.recover_all().await;
                stage.net.resume();
                say("network repaired");
            }
            Field::TestNode {
                runner,
                node,
                approved_by,
                ..
            } => {
                let run = test_node_run(runner, "start_node", node, approved_by).await?;
                say(&format!(
                    "started {node} through its agent (run {}): {}",
                    run.id, run.summary
                ));
            }
        }
        Ok(())
    }

    /// How long the drill's incidents have to resolve after the repair.
    fn resolve_within(&self) -> Duration {
        match self {
            Field::Simulated { .. } => Duration::from_secs(60),
            Field::TestNode { resolve_within, .. } => *resolve_within,
        }
    }
}

/// Record the drill as it starts and wait until the watcher has seen it (so the incidents
/// of the fault are marked from the first round).
async fn record(
    store: &Store,
    sc: &Scenario,
    a: &RunArgs,
    target: &str,
    nodes: Vec<String>,
) -> anyhow::Result<StoredDrill> {
    let now = Timestamp::now();
    // a drill whose process died stops marking by itself once it is surely over
    let longest = a.respond_within + sc.detect_within * 3 + Duration::from_secs(3600);
    crate::stage::start_drill(
        store,
        &NewDrill {
            scenario: sc.name.clone(),
            title: sc.title.clone(),
            kind: sc.kind,
            target: target.to_string(),
            nodes,
            commander: a.commander.clone(),
            auto_respond: a.auto_respond,
            started_at: now,
            expires_at: neo_ir_core::oncall::plus(now, longest),
        },
    )
    .await
}

/// Inject, wait for the response, repair, wait for the resolution, score and store the
/// score. On an error the drill is recorded as aborted.
#[allow(clippy::too_many_arguments)]
async fn play(
    sc: &Scenario,
    a: &RunArgs,
    store: &Store,
    runner: &neo_ir_runbook::runner::Runner,
    field: &Field<'_>,
    drill: &StoredDrill,
    say: &dyn Fn(&str),
) -> anyhow::Result<DrillScore> {
    match play_inner(sc, a, store, runner, field, drill.id, say).await {
        Ok(score) => {
            store
                .finish_drill(drill.id, &score, Timestamp::now())
                .await?;
            Ok(score)
        }
        Err(e) => {
            let _ = store
                .abort_drill(drill.id, &format!("{e:#}"), Timestamp::now())
                .await;
            Err(e)
        }
    }
}

async fn play_inner(
    sc: &Scenario,
    a: &RunArgs,
    store: &Store,
    runner: &neo_ir_runbook::runner::Runner,
    field: &Field<'_>,
    drill_id: i64,
    say: &dyn Fn(&str),
) -> anyhow::Result<DrillScore> {
    // the fault
    let fault_at = Timestamp::now();
    field.inject(say).await?;

    // the response
    let deadline = Instant::now() + a.respond_within;
    let limit = sc.detect_within * 3;
    let detected = crate::stage::poll(limit, || async {
        drill_incidents(store, fault_at, drill_id)
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
            let r = store
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
        crate::stage::poll(
            deadline.saturating_duration_since(Instant::now()),
            || async { responded(store, sc, fault_at, drill_id).await.then_some(()) },
        )
        .await;
    }

    // the repair
    field.repair(say).await?;
    if a.auto_respond {
        if let (Some(script), Some(list)) = (&sc.runbook, &detected) {
            let incident = list
                .iter()
                .find(|(i, _)| i.kind == sc.kind)
                .or(list.first());
            if let Some((i, _)) = incident {
                let ran = crate::stage::poll(Duration::from_secs(30), || async {
                    let mut req =
                        neo_ir_runbook::runner::RunRequest::new(script, vec![], bot.clone());
                    req.incident_id = Some(i.id);
                    let run = runner.request(req).await.ok()?;
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
    let resolved = crate::stage::poll(field.resolve_within(), || async {
        let list = drill_incidents(store, fault_at, drill_id).await.ok()?;
        list.iter().all(|(i, _)| !i.is_open()).then_some(())
    })
    .await
    .is_some();
    if !resolved {
        say("some drill incidents are still open after the repair");
    }

    // the score
    let incidents = drill_incidents(store, fault_at, drill_id).await?;
    let runs = runs_since(store, fault_at).await?;
    Ok(drill::score(sc, fault_at, &incidents, &runs))
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

/// The incidents of drill `drill_id` opened since the fault, with their timelines: only
/// the ones the watcher marked for this drill (a drill on a test node shares its store with
/// real incidents).
async fn drill_incidents(
    store: &Store,
    since: Timestamp,
    drill_id: i64,
) -> anyhow::Result<Vec<(Incident, Vec<TimelineEvent>)>> {
    incidents_since(store, since, |i| {
        neo_ir_core::kpis::is_drill(i) && i.evidence["drill_id"].as_i64() == Some(drill_id)
    })
    .await
}

/// The incidents opened since `since` that `keep` keeps, with their timelines.
pub(crate) async fn incidents_since(
    store: &Store,
    since: Timestamp,
    keep: impl Fn(&Incident) -> bool,
) -> anyhow::Result<Vec<(Incident, Vec<TimelineEvent>)>> {
    let all = store
        .list_incidents(ListFilter {
            all: true,
            limit: 200,
            before_id: None,
        })
        .await?;
    let mut out = Vec::new();
    for i in all.into_iter().filter(|i| i.opened_at >= since && keep(i)) {
        if let Some(pair) = store.incident(i.id).await? {
            out.push(pair);
        }
    }
    Ok(out)
}

/// The runbook runs started since the fault (what the score looks at).
pub(crate) async fn runs_since(
    store: &Store,
    since: Timestamp,
) -> anyhow::Result<Vec<neo_ir_core::runbook::Run>> {
    Ok(store
        .runs(&RunFilter {
            incident_id: None,
            status: None,
            limit: 500,
        })
        .await?
        .into_iter()
        .filter(|r| r.created_at >= since)
        .collect())
}

/// Every drill incident acknowledged and, when the scenario has a runbook, a run of it.
async fn responded(store: &Store, sc: &Scenario, since: Timestamp, drill_id: i64) -> bool {
    let Ok(list) = drill_incidents(store, since, drill_id).await else {
        return false;
    };
    let acked = !list.is_empty() && list.iter().all(|(i, _)| i.acked_at.is_some());
    let ids: Vec<i64> = list.iter().map(|(i, _)| i.id).collect();
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
                runs.iter().any(|r| {
                    &r.script == script
                        && r.created_at >= since
                        && r.incident_id.is_some_and(|id| ids.contains(&id))
                })
            })
            .unwrap_or(false),
    };
    acked && ran
}

fn print_score(s: &DrillScore, drill_id: i64, auto: bool, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(s)?;
        v["auto_respond"] = serde_json::json!(auto);
        v["drill_id"] = serde_json::json!(drill_id);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "\nscore of drill {} ({}): {}/100{}",
        drill_id,
        s.scenario,
        s.points,
        if auto {
            " (auto-respond: the pipeline, not people)"
        } else {
            ""
        }
    );
    print_score_lines(s, None);
    Ok(())
}

/// The score's lines under its heading (and when every incident resolved, if known).
pub(crate) fn print_score_lines(s: &DrillScore, resolved_ms: Option<u64>) {
    let t = |v: Option<u64>| {
        v.map(neo_ir_core::incident::human_ms)
            .unwrap_or_else(|| "-".into())
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("  detected after       {}", t(s.detect_ms));
    println!(
        "  classified after     {}{}",
        t(s.classified_ms),
        if s.classified { "" } else { " (wrong kind)" }
    );
    println!("  acknowledged after   {}", t(s.ack_ms));
    println!("  runbook ran          {}", yes(s.runbook_ran));
    println!("  updates on time      {}", yes(s.updates_on_time));
    if resolved_ms.is_some() {
        println!("  all resolved after   {}", t(resolved_ms));
    }
    for n in &s.notes {
        println!("  - {n}");
    }
}

/// `neo-ir drill history`.
async fn history(a: HistoryArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(&a.store)
        .await
        .with_context(|| format!("opening the store {}", a.store))?;
    let drills = store.drill_history(a.limit).await?;
    store.close().await;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "drills": drills }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", history_table(&drills));
    Ok(ExitCode::SUCCESS)
}

/// The history as a table (within 100 columns), each drill's notes below it.
fn history_table(drills: &[StoredDrill]) -> String {
    use std::fmt::Write;
    if drills.is_empty() {
        return "no drills yet (neo-ir drill run SCENARIO)\n".into();
    }
    // within n characters, `…` included
    let clip = |s: &str, n: usize| {
        if s.chars().count() <= n {
            s.to_string()
        } else {
            neo_ir_core::text::clip(s, n - 1)
        }
    };
    let ms = |d: &StoredDrill, key: &str| {
        d.score
            .as_ref()
            .and_then(|s| s[key].as_u64())
            .map(neo_ir_core::incident::human_ms)
            .unwrap_or_else(|| "-".into())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>4}  {:<20}  {:<15}  {:<10}  {:<10}  {:>7}  {:>8}  {:>8}",
        "ID", "STARTED", "SCENARIO", "TARGET", "COMMANDER", "POINTS", "DETECT", "ACK"
    );
    let mut bots = false;
    for d in drills {
        let points = match (d.status, d.points) {
            (neo_ir_store::DrillStatus::Scored, Some(p)) if d.auto_respond => {
                bots = true;
                format!("{p}*")
            }
            (neo_ir_store::DrillStatus::Scored, Some(p)) => p.to_string(),
            (status, _) => status.to_string(),
        };
        let started = d
            .started_at
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string();
        let _ = writeln!(
            out,
            "{:>4}  {:<20}  {:<15}  {:<10}  {:<10}  {:>7}  {:>8}  {:>8}",
            d.id,
            clip(&started, 20),
            clip(&d.scenario, 15),
            clip(&d.target, 10),
            clip(d.commander.as_deref().unwrap_or("-"), 10),
            points,
            ms(d, "detect_ms"),
            ms(d, "ack_ms"),
        );
        let notes = d
            .score
            .as_ref()
            .and_then(|s| s["notes"].as_array().cloned())
            .unwrap_or_default();
        for n in notes.iter().filter_map(|n| n.as_str()) {
            let _ = writeln!(out, "        - {}", clip(n, 90));
        }
        if let Some(n) = &d.note {
            let _ = writeln!(out, "        - {}", clip(n, 90));
        }
    }
    if bots {
        let _ = writeln!(
            out,
            "* auto-respond: a bot responded (the score is the pipeline's, not people's)"
        );
    }
    out
}

/// `neo-ir drill schedule`.
async fn schedule(a: ScheduleArgs) -> anyhow::Result<ExitCode> {
    let (path, cfg) = crate::run::load_config(a.config.clone())?;
    let settings = drill_settings(&path, &cfg)?;
    let held = held_drills(&[cfg.store.url.as_str(), a.store.as_str()]).await?;
    let list = upcoming(settings, &cfg, &held, a.months);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "drills": list }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "drills:       day {} of each month, {} UTC",
        settings.day,
        settings.at.strftime("%H:%M")
    );
    println!(
        "commander:    {}",
        settings
            .commanders
            .as_deref()
            .map(|c| format!("the next person of rotation {c:?} each month"))
            .unwrap_or_else(|| "not set ([drills] commanders)".into())
    );
    println!(
        "reminders:    {} before, to {}",
        humantime::format_duration(settings.remind_before),
        if settings.channels.is_empty() {
            "no channel".to_string()
        } else {
            settings.channels.join(", ")
        }
    );
    if !settings.participants.is_empty() {
        println!("participants: {}", settings.participants.join(", "));
    }
    println!(
        "\n{:<17}  {:<16}  {:<18}  REMINDER (UTC)",
        "DATE (UTC)", "SCENARIO", "COMMANDER"
    );
    for d in &list {
        let utc = |t: Timestamp| t.strftime("%Y-%m-%d %H:%M").to_string();
        println!(
            "{:<17}  {:<16}  {:<18}  {}",
            utc(d.at),
            d.scenario,
            d.commander.as_deref().unwrap_or("-"),
            utc(d.remind_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The `[drills]` section, or a configuration error saying to add it.
fn drill_settings<'a>(
    path: &std::path::Path,
    cfg: &'a neo_ir_core::config::Config,
) -> anyhow::Result<&'a neo_ir_core::drill::schedule::DrillSettings> {
    cfg.drills.as_ref().ok_or_else(|| {
        anyhow::Error::new(neo_ir_core::config::ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: Some("drills".into()),
            message: "no [drills] section: add one (day, at, commanders, participants, \
                      scenarios, remind_before, channels, test_node; see docs/DRILLS.md)"
                .into(),
        })
    })
}

/// The next `n` scheduled drills at this moment.
fn upcoming(
    settings: &neo_ir_core::drill::schedule::DrillSettings,
    cfg: &neo_ir_core::config::Config,
    held: &[Timestamp],
    n: usize,
) -> Vec<neo_ir_core::drill::schedule::ScheduledDrill> {
    neo_ir_core::drill::schedule::upcoming(
        settings,
        &cfg.response.schedules,
        held,
        Timestamp::now(),
        n,
    )
}

/// Start times of the drills people held (not aborted, not a bot's) in these stores; a
/// SQLite store whose file does not exist has none (and is not created).
async fn held_drills(urls: &[&str]) -> anyhow::Result<Vec<Timestamp>> {
    let mut held = Vec::new();
    let mut done = Vec::new();
    for url in urls {
        if done.contains(url) {
            continue;
        }
        done.push(*url);
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if !std::path::Path::new(path).exists() {
                continue;
            }
        }
        let store = Store::open(url)
            .await
            .with_context(|| format!("opening the store {url}"))?;
        held.extend(
            store
                .drill_history(1000)
                .await?
                .into_iter()
                .filter(|d| d.status != neo_ir_store::DrillStatus::Aborted && !d.auto_respond)
                .map(|d| d.started_at),
        );
        store.close().await;
    }
    Ok(held)
}

/// Exit code of a drill on the test node without `--approved-by`, as of a run waiting for
/// an approval.
const EXIT_NOT_APPROVED: u8 = crate::runs::EXIT_AWAITING_APPROVAL;

/// `drill run SCENARIO --test-node [NODE] --approved-by NAME`: the scenario's crash on the
/// designated test node through its agent, recorded in the configured store, where the
/// running watcher marks its incidents; then the response, the repair and the score as on
/// the simulated network.
async fn on_test_node(a: RunArgs, sc: Scenario) -> anyhow::Result<ExitCode> {
    let (path, cfg) = crate::run::load_config(a.config.clone())?;
    let usage = |key: Option<&str>, m: String| {
        anyhow::Error::new(neo_ir_core::config::ConfigError {
            file: path.clone(),
            line: None,
            key: key.map(str::to_string),
            message: m,
        })
    };
    let settings = drill_settings(&path, &cfg)?;
    let Some(node) = settings.test_node.clone() else {
        return Err(usage(
            Some("drills.test_node"),
            "no test node configured: set [drills] test_node to a node with an agent".into(),
        ));
    };
    match a.test_node.as_deref() {
        Some(given) if !given.is_empty() && given != node => {
            return Err(usage(
                Some("drills.test_node"),
                format!(
                    "{given:?} is not the designated test node ({node:?}): drills break only \
                     the node [drills] test_node names"
                ),
            ))
        }
        _ => {}
    }
    let crashes = test_node_faults(&sc, &node).map_err(|m| usage(None, m))?;
    let Some(approved_by) = a
        .approved_by
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
    else {
        eprintln!(
            "error: drill {} stops the test node {node} through its agent: a destructive \
             operation on a real node needs an approval. Run it again with --approved-by NAME \
             (who approved it). Nothing was changed.",
            sc.name
        );
        return Ok(ExitCode::from(EXIT_NOT_APPROVED));
    };
    let store = Store::open(&cfg.store.url)
        .await
        .with_context(|| format!("opening the store {}", cfg.store.url))?;
    let runner = neo_ir_runbook::runner::Runner::new(
        store.clone(),
        std::sync::Arc::new(cfg.clone()),
        std::sync::Arc::new(neo_ir_core::SystemClock),
    )
    .map_err(|e| usage(None, format!("runbooks: {e}")))?;
    let mut a = a;
    if a.commander.is_none() {
        let held = held_drills(&[cfg.store.url.as_str()]).await?;
        a.commander = upcoming(settings, &cfg, &held, 1)
            .into_iter()
            .next()
            .and_then(|d| d.commander);
    }
    let started = Instant::now();
    let json = a.json;
    let say = move |t: &str| {
        if !json {
            println!("[{:>5.1}s] {t}", started.elapsed().as_secs_f64())
        }
    };
    say(&format!(
        "DRILL {} on the test node {node} (approved by {approved_by}; IC {}): {} (expect {}; {})",
        sc.name,
        a.commander.as_deref().unwrap_or("-"),
        sc.title,
        sc.kind,
        sc.brief
    ));
    let drill = record(&store, &sc, &a, &node, vec![node.clone()]).await?;
    say(&format!(
        "drill {} recorded in {}: the watcher marks its incidents",
        drill.id, cfg.store.url
    ));
    // the cleared condition is held `clear_for`, then monitored for the stability window
    let resolve_within = cfg.response.stability_window
        + cfg.detect.debounce.clear_for
        + cfg.runbook.agent_timeout.min(Duration::from_secs(120))
        + Duration::from_secs(60);
    let field = Field::TestNode {
        runner: &runner,
        node,
        approved_by,
        crashes,
        resolve_within,
    };
    let played = play(&sc, &a, &store, &runner, &field, &drill, &say).await;
    store.close().await;
    let score = played?;
    print_score(&score, drill.id, a.auto_respond, a.json)?;
    Ok(exit_of(&score))
}

/// The scenario's faults as crashes of the test node, when and in what order: a scenario
/// that needs the whole network (a stall, several nodes) or a fault no agent operation
/// makes is refused, saying why.
fn test_node_faults(sc: &Scenario, node: &str) -> Result<Vec<Duration>, String> {
    let nodes: std::collections::BTreeSet<&str> =
        sc.faults.iter().map(|f| f.node.as_str()).collect();
    if nodes.contains("*")
        || nodes.len() > 1
        || sc.faults.iter().any(|f| f.fault["fault"] == "stall")
    {
        return Err(format!(
            "scenario {} needs the whole network ({}): on the test node {node} only a \
             scenario that breaks one node runs (e.g. node-crash); run this one on the \
             simulated network (without --test-node)",
            sc.name,
            nodes.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    sc.faults
        .iter()
        .map(|f| match f.fault["fault"].as_str() {
            Some("crash") => Ok(f.after.unwrap_or_default()),
            other => Err(format!(
                "scenario {}: no agent operation injects {:?} on a real node (the agent \
                 stops and starts it: a crash); run it on the simulated network",
                sc.name,
                other.unwrap_or("?")
            )),
        })
        .collect()
}

/// Run `script` (`stop_node`, `start_node`) on the test node through the runner (recorded
/// in the store like any run, with who approved it); an error unless it succeeded.
async fn test_node_run(
    runner: &neo_ir_runbook::runner::Runner,
    script: &str,
    node: &str,
    approved_by: &str,
) -> anyhow::Result<neo_ir_core::runbook::Run> {
    let mut actor = crate::people::cli_actor();
    actor.from = "drill run --test-node".into();
    let mut req = neo_ir_runbook::runner::RunRequest::new(script, vec![], actor);
    req.node = Some(node.to_string());
    req.approved_by = Some(approved_by.to_string());
    let run = runner
        .request(req)
        .await
        .with_context(|| format!("{script} on {node}"))?;
    if run.status != RunStatus::Succeeded {
        anyhow::bail!(
            "{script} on {node} (run {}) {}: {}",
            run.id,
            run.status.as_str(),
            run.summary
        );
    }
    Ok(run)
}
