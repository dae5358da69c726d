//! `neo-ir runbooks`: the playbook's runbooks and neo-ir's scripts with their review state
//! (playbook phase 5, "Update Runbooks"). A review's action item points at a runbook
//! (`neo-ir review ID --action ... --runbook NAME`); a runbook was last reviewed when the
//! latest item pointing at it was marked done (`neo-ir actions --done ITEM`), and its open
//! items are the updates still to make. The rule itself is in
//! [`neo_ir_core::review::runbook_reviews`].
//!
//! Exit codes: 0 listed, 2 usage or configuration error.

use std::process::ExitCode;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use neo_ir_core::review::{
    playbook_runbook, runbook_reviews, ActionItem, RunbookReview, PLAYBOOK_RUNBOOKS,
};
use neo_ir_core::text::clip;
use serde_json::json;

use crate::run::StoreArgs;

/// `neo-ir runbooks [--json] [--store URL | --config FILE]`.
#[derive(clap::Args)]
pub struct RunbooksArgs {
    /// Print JSON: {"runbooks": [{name, type (playbook, script or unknown), title, kind,
    /// last_reviewed, last_reviewed_incident, open_items}]}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Where a name comes from.
fn kind_of(name: &str) -> &'static str {
    if playbook_runbook(name).is_some() {
        "playbook"
    } else if neo_ir_runbook::scripts::find(name).is_some() {
        "script"
    } else {
        "unknown"
    }
}

/// The review date as a table shows it: the local calendar day, or "never".
fn day(t: Option<Timestamp>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| t.to_zoned(TimeZone::system()).date().to_string(),
    )
}

/// "2: #12 item 4, #15 item 7", or "none".
fn open_items(r: &RunbookReview, width: usize) -> String {
    if r.open_items.is_empty() {
        return "none".to_string();
    }
    let list: Vec<String> = r
        .open_items
        .iter()
        .map(|(incident, i)| format!("#{incident} item {}", i.id))
        .collect();
    clip(&format!("{}: {}", list.len(), list.join(", ")), width)
}

pub async fn run(a: RunbooksArgs) -> anyhow::Result<ExitCode> {
    let store = a.store.open().await?;
    let items = store.runbook_items().await;
    store.close().await;
    let items: Vec<(i64, ActionItem)> = items?
        .into_iter()
        .map(|t| (t.incident_id, t.item))
        .collect();
    let names: Vec<&str> = PLAYBOOK_RUNBOOKS
        .iter()
        .map(|r| r.name)
        .chain(neo_ir_runbook::scripts::ALL.iter().map(|s| s.name))
        .collect();
    let reviews = runbook_reviews(&names, &items);
    if a.json {
        let list: Vec<serde_json::Value> = reviews
            .iter()
            .map(|r| {
                let playbook = playbook_runbook(&r.runbook);
                json!({
                    "name": r.runbook,
                    "type": kind_of(&r.runbook),
                    "title": playbook.map(|p| p.title),
                    "kind": playbook.map(|p| p.kind),
                    "last_reviewed": r.last_reviewed,
                    "last_reviewed_incident": r.last_incident,
                    "open_items": r.open_items.iter().map(|(incident, i)| {
                        let mut v = serde_json::to_value(i).expect("an item serializes");
                        v["incident_id"] = json!(incident);
                        v
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"runbooks": list}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    // three sections, each within 100 columns: the playbook's runbooks, the scripts, and
    // any other name an item points at
    println!(
        "{:<23} {:<35} {:<13} OPEN ITEMS",
        "PLAYBOOK RUNBOOK", "TITLE", "LAST REVIEWED"
    );
    for r in reviews.iter().filter(|r| kind_of(&r.runbook) == "playbook") {
        let title = playbook_runbook(&r.runbook).map_or("", |p| p.title);
        println!(
            "{:<23} {:<35} {:<13} {}",
            r.runbook,
            title,
            day(r.last_reviewed),
            open_items(r, 26)
        );
    }
    println!();
    println!("{:<28} {:<13} OPEN ITEMS", "SCRIPT", "LAST REVIEWED");
    for r in reviews.iter().filter(|r| kind_of(&r.runbook) == "script") {
        println!(
            "{:<28} {:<13} {}",
            r.runbook,
            day(r.last_reviewed),
            open_items(r, 57)
        );
    }
    let unknown: Vec<&RunbookReview> = reviews
        .iter()
        .filter(|r| kind_of(&r.runbook) == "unknown")
        .collect();
    if !unknown.is_empty() {
        println!();
        println!(
            "{:<28} {:<13} OPEN ITEMS",
            "OTHER (NOT KNOWN)", "LAST REVIEWED"
        );
        for r in unknown {
            println!(
                "{:<28} {:<13} {}",
                clip(&r.runbook, 27),
                day(r.last_reviewed),
                open_items(r, 57)
            );
        }
    }
    println!(
        "\nLast reviewed: when an action item pointing at the runbook was last marked done\n\
         (`neo-ir review ID --action TEXT --owner WHO --runbook NAME`, `neo-ir actions --done ITEM`)."
    );
    Ok(ExitCode::SUCCESS)
}
