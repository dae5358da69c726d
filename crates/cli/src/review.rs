//! `neo-ir review` and `neo-ir actions`: the post-incident review (playbook phase 5) from
//! the command line. `review ID` prints the review (the stored one, else the playbook's
//! template prefilled from the timeline); `--at` schedules it; `--edit` opens `$EDITOR` on
//! it and saves it; `--complete` marks it complete (the incident becomes `reviewed`);
//! `--action` adds an action item. `actions` lists the items, `--overdue` those past due.
//!
//! Exit codes: 0 done (or nothing to change), 1 refused in the incident's state or no such
//! incident, 2 usage error (a bad date, priority, name or empty review).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use jiff::civil::Date;
use neo_ir_core::respond::Refusal;
use neo_ir_core::review::{check_known_runbook, Priority};
use neo_ir_core::text::clip;
use neo_ir_store::{ActionItemUpdate, NewActionItem, Store, StoreError};
use serde_json::json;

use crate::people::{cli_actor, no_such_incident};
use crate::run::StoreArgs;

/// `neo-ir review ID [--at TIME | --edit | --complete | --action TEXT ...] [--json]`.
#[derive(clap::Args)]
pub struct ReviewArgs {
    /// The incident id.
    pub id: i64,
    /// Schedule the review at this time (RFC 3339, UTC); the notice goes to the incident's
    /// channels.
    #[arg(long, conflicts_with_all = ["edit", "complete", "action"])]
    pub at: Option<String>,
    /// Open $VISUAL or $EDITOR on the review's Markdown and save it when it changed.
    #[arg(long, conflicts_with_all = ["complete", "action"])]
    pub edit: bool,
    /// Mark the review complete: the incident becomes `reviewed` (final).
    #[arg(long, conflicts_with = "action")]
    pub complete: bool,
    /// Add an action item with this text.
    #[arg(long)]
    pub action: Option<String>,
    /// Who owns the action item.
    #[arg(long, requires = "action")]
    pub owner: Option<String>,
    /// When the action item is due (YYYY-MM-DD, UTC).
    #[arg(long, requires = "action")]
    pub due: Option<String>,
    /// high, medium or low (the playbook's template).
    #[arg(long, requires = "action", default_value = "medium")]
    pub priority: String,
    /// The runbook the action item updates: one of the playbook's six (node_down,
    /// consensus_failure, data_corruption, network_attack, split_brain,
    /// performance_degradation) or a script (e.g. restart_node). `neo-ir runbooks` shows
    /// when each was last reviewed.
    #[arg(long, requires = "action")]
    pub runbook: Option<String>,
    /// Print JSON: {incident_id, markdown, complete, saved, items} (or the item added).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `neo-ir actions [--overdue] [--all] [--done ITEM] [--json]`.
#[derive(clap::Args)]
pub struct ActionsArgs {
    /// Only items not done whose due date is past (UTC).
    #[arg(long, conflicts_with = "all")]
    pub overdue: bool,
    /// Include items that are done.
    #[arg(long)]
    pub all: bool,
    /// Mark this action item done (and list nothing).
    #[arg(long, value_name = "ITEM")]
    pub done: Option<i64>,
    /// Print JSON: an array of {incident_id, id, action, owner, due, priority, done, runbook}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn usage(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(2))
}

/// A person's refusal as the convention's exit code.
fn refused(r: Refusal) -> ExitCode {
    match r {
        Refusal::Unchanged(why) => {
            println!("{why}");
            ExitCode::SUCCESS
        }
        Refusal::Conflict(why) => {
            eprintln!("error: {why}");
            ExitCode::from(1)
        }
        Refusal::Invalid(why) => {
            eprintln!("error: {why}");
            ExitCode::from(2)
        }
    }
}

pub async fn review(a: ReviewArgs) -> anyhow::Result<ExitCode> {
    if let Some(at) = &a.at {
        return crate::people::review(a.id, at, a.store).await;
    }
    let store = a.store.open().await?;
    let code = if a.complete {
        complete(&store, a.id).await
    } else if a.edit {
        edit(&store, a.id).await
    } else if let Some(action) = &a.action {
        add_item(&store, &a, action).await
    } else {
        show(&store, a.id, a.json).await
    };
    store.close().await;
    match code {
        Err(e) => match e.downcast_ref::<StoreError>() {
            Some(StoreError::NoSuchIncident(id)) => Ok(no_such_incident(*id)),
            _ => Err(e),
        },
        ok => ok,
    }
}

async fn show(store: &Store, id: i64, as_json: bool) -> anyhow::Result<ExitCode> {
    let saved = store.review(id).await?;
    let (markdown, complete) = match &saved {
        Some(r) => (r.markdown.clone(), r.complete),
        None => (store.draft_review(id).await?, false),
    };
    if as_json {
        let items = store.action_items(id).await?;
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "incident_id": id,
                "markdown": markdown,
                "complete": complete,
                "saved": saved.is_some(),
                "items": items,
            }))?
        );
    } else {
        // a reader that stops early (`| head`) is no error
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(markdown.as_bytes());
        if !markdown.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn complete(store: &Store, id: i64) -> anyhow::Result<ExitCode> {
    match store
        .complete_review(id, &cli_actor(), jiff::Timestamp::now())
        .await?
    {
        Ok(_) => {
            println!("incident #{id}: the review is complete; the incident is reviewed");
            Ok(ExitCode::SUCCESS)
        }
        Err(r) => Ok(refused(r)),
    }
}

/// The editor command: $VISUAL, else $EDITOR, else `vi`, split on whitespace (`code -w`);
/// run as an argument vector, never through a shell.
fn editor() -> Vec<String> {
    let raw = std::env::var("VISUAL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| std::env::var("EDITOR").ok())
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "vi".into());
    raw.split_whitespace().map(str::to_string).collect()
}

/// A temp file only this user can read, created new (never an existing path), removed on
/// drop.
struct TempReview(PathBuf);

impl TempReview {
    fn create(id: i64, text: &str) -> anyhow::Result<TempReview> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "neo-ir-review-{id}-{}-{nanos}.md",
            std::process::id()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(text.as_bytes())?;
        Ok(TempReview(path))
    }
}

impl Drop for TempReview {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn edit(store: &Store, id: i64) -> anyhow::Result<ExitCode> {
    if let Some(r) = store.review(id).await? {
        if r.complete {
            return Ok(refused(Refusal::Conflict(format!(
                "the review of incident {id} is complete: it is part of the record now"
            ))));
        }
    }
    let (before, _) = store.review_or_draft(id).await?;
    let file = TempReview::create(id, &before)?;
    let argv = editor();
    // No timeout here, unlike every other command neo-ir runs: a person is writing.
    let status = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .arg(&file.0)
        .kill_on_drop(true)
        .status()
        .await
        .with_context(|| format!("starting the editor {:?} (set $EDITOR)", argv[0]))?;
    if !status.success() {
        eprintln!(
            "error: the editor {:?} exited with {status}: the review was not saved",
            argv[0]
        );
        return Ok(ExitCode::from(1));
    }
    let after = std::fs::read_to_string(&file.0)
        .with_context(|| format!("reading {} back", file.0.display()))?;
    if after == before && store.review(id).await?.is_some() {
        println!("incident #{id}: the review is unchanged");
        return Ok(ExitCode::SUCCESS);
    }
    match store
        .save_review(id, &after, &cli_actor(), jiff::Timestamp::now())
        .await?
    {
        Ok(r) => {
            println!("incident #{id}: review saved ({} bytes)", r.markdown.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(r) => Ok(refused(r)),
    }
}

async fn add_item(store: &Store, a: &ReviewArgs, action: &str) -> anyhow::Result<ExitCode> {
    let Some(owner) = &a.owner else {
        return usage("--action needs --owner (who does it)");
    };
    let due = match a.due.as_deref().map(str::parse::<Date>).transpose() {
        Ok(d) => d,
        Err(e) => return usage(format!("--due: expected a date such as 2026-12-15: {e}")),
    };
    let priority: Priority = match a.priority.parse() {
        Ok(p) => p,
        Err(e) => return usage(format!("--priority: {e}")),
    };
    // a name neo-ir does not know would hide the item from `neo-ir runbooks`
    let runbook = match a
        .runbook
        .as_deref()
        .map(|r| check_known_runbook(r, neo_ir_runbook::scripts::ALL.iter().map(|s| s.name)))
        .transpose()
    {
        Ok(r) => r,
        Err(e) => return usage(format!("--runbook: {e}")),
    };
    let new = NewActionItem {
        action: action.to_string(),
        owner: owner.clone(),
        due,
        priority,
        runbook,
    };
    match store
        .add_action_item(a.id, &new, &cli_actor(), jiff::Timestamp::now())
        .await?
    {
        Ok(item) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&item)?);
            } else {
                println!(
                    "incident #{}: action item {} added ({}, {}, due {})",
                    a.id,
                    item.id,
                    item.owner,
                    item.priority,
                    item.due.map_or("—".into(), |d| d.to_string())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(r) => Ok(refused(r)),
    }
}

pub async fn actions(a: ActionsArgs) -> anyhow::Result<ExitCode> {
    let store = a.store.open().await?;
    let now = jiff::Timestamp::now();
    if let Some(item) = a.done {
        let update = ActionItemUpdate {
            done: Some(true),
            ..Default::default()
        };
        let code = match store
            .update_action_item(item, &update, &cli_actor(), now)
            .await
        {
            Ok(Ok((incident, _))) => {
                println!("action item {item} (incident #{incident}) is done");
                ExitCode::SUCCESS
            }
            Ok(Err(r)) => refused(r),
            Err(StoreError::NoSuchActionItem(_)) => {
                eprintln!("error: action item {item} does not exist");
                ExitCode::from(1)
            }
            Err(e) => return Err(e.into()),
        };
        store.close().await;
        return Ok(code);
    }
    let items = if a.overdue {
        store.overdue_action_items(now).await?
    } else {
        store.all_action_items(!a.all, 0).await?
    };
    store.close().await;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    if items.is_empty() {
        println!(
            "no {}action items",
            if a.overdue {
                "overdue "
            } else if a.all {
                ""
            } else {
                "open "
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<5} {:<8} {:<6} {:<10} {:<4} {:<14} ACTION",
        "ID", "INCIDENT", "PRIO", "DUE", "DONE", "OWNER"
    );
    for t in &items {
        let i = &t.item;
        let runbook = i
            .runbook
            .as_deref()
            .map(|r| format!(" [{r}]"))
            .unwrap_or_default();
        println!(
            "{:<5} {:<8} {:<6} {:<10} {:<4} {:<14} {}",
            i.id,
            format!("#{}", t.incident_id),
            i.priority.as_str(),
            i.due.map_or("—".into(), |d| d.to_string()),
            if i.done { "yes" } else { "no" },
            clip(&i.owner, 13),
            clip(&format!("{}{runbook}", i.action), 43)
        );
    }
    Ok(ExitCode::SUCCESS)
}
