//! `neo-ir run`, `approve`, `decline`, `runs` and the incident's runbook checklist
//! (`incident show ID --runbook`, `incident step ID KEY`): the runbook runner from the
//! command line, as the OS user, recorded in the configured store like the API's runs.
//!
//! Exit codes of `run` and `approve`: 0 the run succeeded (or a dry run was printed), 1 it
//! ran and failed or was refused (the check found a problem, the implementation is not
//! supported), 2 usage or configuration error, 3 it waits for an approval
//! (`neo-ir approve RUN`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use neo_ir_core::runbook::{Run, RunStatus, StepStatus};
use neo_ir_core::SystemClock;
use neo_ir_runbook::runner::{RunRequest, Runner, RunnerError};
use neo_ir_store::RunFilter;

use crate::people::cli_actor;
use crate::run::{load_config, StoreArgs};

/// Exit code of a run that waits for an approval.
pub const EXIT_AWAITING_APPROVAL: u8 = 3;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The script's name, as in the playbook without `.sh` (see the list below).
    script: String,
    /// The script's own arguments (e.g. `--latest`, `FILE`, `--count 3 --out DIR`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
    /// The node a host script acts on (default: the incident's only node).
    #[arg(long)]
    node: Option<String>,
    /// Record the run on this incident's timeline.
    #[arg(long)]
    incident: Option<i64>,
    /// Print exactly what would run and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the run as JSON (the same shape as GET /api/v1/runs/{id}).
    #[arg(long)]
    json: bool,
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Store URL (overrides the configuration's store.url).
    #[arg(long)]
    store: Option<String>,
}

/// Take our own flags out of the script's arguments (they may come after the script's).
fn split_flags(a: &mut RunArgs) -> anyhow::Result<()> {
    let mut rest = Vec::new();
    let mut it = std::mem::take(&mut a.args).into_iter();
    while let Some(x) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))
        };
        match x.as_str() {
            "--dry-run" => a.dry_run = true,
            "--json" => a.json = true,
            "--node" => a.node = Some(value("--node")?),
            "--incident" => {
                let v = value("--incident")?;
                a.incident = Some(
                    v.parse()
                        .with_context(|| format!("--incident expects an id, got {v:?}"))?,
                );
            }
            "--config" | "-c" => a.config = Some(PathBuf::from(value("--config")?)),
            "--store" => a.store = Some(value("--store")?),
            _ => rest.push(x),
        }
    }
    a.args = rest;
    Ok(())
}

async fn runner(config: Option<PathBuf>, store: Option<String>) -> anyhow::Result<Runner> {
    let (_, cfg) = load_config(config)?;
    let url = store.unwrap_or_else(|| cfg.store.url.clone());
    let store = neo_ir_store::Store::open(&url)
        .await
        .with_context(|| format!("opening the store {url}"))?;
    Runner::new(store, Arc::new(cfg), Arc::new(SystemClock)).map_err(usage_error)
}

/// A runner error that is the operator's input: exit 2.
fn usage_error(e: RunnerError) -> anyhow::Error {
    match e {
        RunnerError::Script(_) | RunnerError::Invalid(_) => {
            anyhow::Error::new(neo_ir_core::config::ConfigError {
                file: PathBuf::from("(command line)"),
                line: None,
                key: None,
                message: e.to_string(),
            })
        }
        e => anyhow::Error::new(e),
    }
}

/// `neo-ir run SCRIPT [ARGS...]`.
pub async fn run(mut a: RunArgs) -> anyhow::Result<ExitCode> {
    split_flags(&mut a)?;
    if neo_ir_runbook::scripts::find(&a.script).is_none() {
        eprintln!(
            "error: no script {:?}; neo-ir runs:\n{}",
            a.script,
            neo_ir_runbook::scripts::listing()
        );
        return Ok(ExitCode::from(2));
    }
    let runner = runner(a.config.clone(), a.store.clone()).await?;
    let mut req = RunRequest::new(&a.script, a.args.clone(), cli_actor());
    req.node = a.node.clone();
    req.incident_id = a.incident;
    req.dry_run = a.dry_run;
    let run = runner.request(req).await.map_err(usage_error)?;
    print_run(&run, a.json)?;
    Ok(exit_of(&run))
}

/// `neo-ir approve RUN`: approve a waiting run and execute it here.
pub async fn approve(
    id: i64,
    json: bool,
    config: Option<PathBuf>,
    store: Option<String>,
) -> anyhow::Result<ExitCode> {
    let runner = runner(config, store).await?;
    let run = match runner.approve(id, &cli_actor()).await {
        Ok(r) => r,
        Err(e @ (RunnerError::Conflict(_) | RunnerError::NoSuchRun(_))) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(usage_error(e)),
    };
    print_run(&run, json)?;
    Ok(exit_of(&run))
}

/// `neo-ir decline RUN --reason TEXT`.
pub async fn decline(
    id: i64,
    reason: &str,
    config: Option<PathBuf>,
    store: Option<String>,
) -> anyhow::Result<ExitCode> {
    let runner = runner(config, store).await?;
    match runner.decline(id, &cli_actor(), reason).await {
        Ok(run) => {
            println!("run {} declined: {}", run.id, run.summary);
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (RunnerError::Conflict(_) | RunnerError::NoSuchRun(_))) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(usage_error(e)),
    }
}

/// `neo-ir runs [ID]`: one run in full, or the list (newest first).
pub async fn list(
    id: Option<i64>,
    incident: Option<i64>,
    waiting: bool,
    json: bool,
    store: StoreArgs,
) -> anyhow::Result<ExitCode> {
    let store = store.open().await?;
    if let Some(id) = id {
        let Some(run) = store.run(id).await? else {
            eprintln!("error: run {id} does not exist");
            return Ok(ExitCode::from(1));
        };
        print_run(&run, json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let runs = store
        .runs(&RunFilter {
            incident_id: incident,
            status: waiting.then_some(RunStatus::AwaitingApproval),
            limit: 100,
        })
        .await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"runs": runs}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>5}  {:<17}  {:<26}  {:<12}  {:>8}  SUMMARY",
        "RUN", "STATUS", "SCRIPT", "NODE", "INCIDENT"
    );
    for r in &runs {
        println!(
            "{:>5}  {:<17}  {:<26}  {:<12}  {:>8}  {}",
            r.id,
            r.status.as_str(),
            r.script,
            r.node.as_deref().unwrap_or("-"),
            r.incident_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into()),
            neo_ir_core::text::clip(&r.summary, 60)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `neo-ir incident step ID KEY [--undone]`.
pub async fn step(id: i64, key: &str, undone: bool, store: StoreArgs) -> anyhow::Result<ExitCode> {
    let store = store.open().await?;
    let now = jiff::Timestamp::now();
    match neo_ir_runbook::checklist::mark(&store, id, key, !undone, &cli_actor(), now).await {
        Ok(incident) => {
            let entries = neo_ir_runbook::checklist::view(&store, &incident).await?;
            print!(
                "{}",
                neo_ir_runbook::checklist::to_text(incident.kind, &entries)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(neo_ir_runbook::checklist::MarkError::Refused(r)) => {
            eprintln!("error: {r}");
            Ok(ExitCode::from(match r {
                neo_ir_core::respond::Refusal::Invalid(_) => 2,
                _ => 1,
            }))
        }
        Err(neo_ir_runbook::checklist::MarkError::Store(
            neo_ir_store::StoreError::NoSuchIncident(n),
        )) => {
            eprintln!("error: incident {n} does not exist");
            Ok(ExitCode::from(1))
        }
        Err(neo_ir_runbook::checklist::MarkError::Store(e)) => Err(e.into()),
    }
}

/// The checklist of incident `id`, as text or JSON.
pub async fn checklist(id: i64, json: bool, store: StoreArgs) -> anyhow::Result<ExitCode> {
    let store = store.open().await?;
    let Some((incident, _)) = store.incident(id).await? else {
        eprintln!("error: incident {id} does not exist");
        return Ok(ExitCode::from(1));
    };
    let entries = neo_ir_runbook::checklist::view(&store, &incident).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "incident_id": id, "kind": incident.kind, "items": entries
            }))?
        );
    } else {
        print!(
            "{}",
            neo_ir_runbook::checklist::to_text(incident.kind, &entries)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn exit_of(run: &Run) -> ExitCode {
    match run.status {
        RunStatus::Succeeded | RunStatus::DryRun | RunStatus::Running => ExitCode::SUCCESS,
        RunStatus::AwaitingApproval => ExitCode::from(EXIT_AWAITING_APPROVAL),
        RunStatus::Failed | RunStatus::Refused => ExitCode::from(1),
    }
}

fn print_run(run: &Run, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(run)?);
        return Ok(());
    }
    let target = run
        .node
        .as_deref()
        .map(|n| format!(" on {n}"))
        .unwrap_or_default();
    let incident = run
        .incident_id
        .map(|i| format!(" (incident {i})"))
        .unwrap_or_default();
    println!(
        "run {}: {}{target}{incident}: {}",
        run.id,
        run.script,
        run.status.as_str()
    );
    match run.status {
        RunStatus::DryRun | RunStatus::AwaitingApproval => {
            print!("{}", run.plan.describe());
            if run.status == RunStatus::AwaitingApproval {
                println!(
                    "run {id} has destructive steps and waits for an approval:\n  neo-ir approve {id}\n  neo-ir decline {id} --reason \"...\"",
                    id = run.id
                );
            } else {
                println!("dry run: nothing was changed");
            }
        }
        _ => {
            for r in &run.results {
                let status = match r.status {
                    StepStatus::Ok => "ok",
                    StepStatus::Failed => "FAILED",
                    StepStatus::TimedOut => "TIMED OUT",
                    StepStatus::Skipped => "skipped",
                };
                let exit = r
                    .exit_code
                    .map(|c| format!(", exit {c}"))
                    .unwrap_or_default();
                println!("-- {} {status}{exit} ({} ms)", r.name, r.duration_ms);
                if !r.output.trim().is_empty() {
                    println!("{}", r.output.trim_end());
                }
            }
            println!("{}: {}", run.script, run.summary);
        }
    }
    Ok(())
}
