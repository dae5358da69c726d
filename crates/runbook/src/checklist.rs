//! The playbook's procedure for an incident's kind as a checklist on the incident: each item
//! done or not, by whom and when, either marked by a person or done by a successful run of
//! the item's script on that incident. `neo-ir incident show ID --runbook` and
//! `GET /api/v1/incidents/{id}/runbook` show it; marks go on the timeline.

use jiff::Timestamp;
use neo_ir_core::incident::{Actor, EventType, Incident};
use neo_ir_core::respond::Refusal;
use neo_ir_core::runbook::{checklist, ChecklistItem, Run, RunStatus};
use neo_ir_store::{RunFilter, Store, StoreError};
use serde::Serialize;
use serde_json::json;

/// One item with its state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub item: ChecklistItem,
    pub done: bool,
    /// Who marked it (a person) or which run did it.
    pub by: Option<String>,
    pub at: Option<Timestamp>,
    /// The run of the item's script that did it, when one did.
    pub run_id: Option<i64>,
    /// Runs of the item's script on this incident, newest first.
    pub runs: Vec<RunRef>,
}

/// A run, as listed under an item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRef {
    pub id: i64,
    pub status: RunStatus,
    pub summary: String,
}

/// The checklist of `incident` with what is done.
pub async fn view(store: &Store, incident: &Incident) -> Result<Vec<Entry>, StoreError> {
    let marks = store.checklist_marks(incident.id).await?;
    let runs = store
        .runs(&RunFilter {
            incident_id: Some(incident.id),
            status: None,
            limit: 500,
        })
        .await?;
    Ok(checklist(incident.kind)
        .iter()
        .map(|item| entry(item, &marks, &runs))
        .collect())
}

fn entry(item: &ChecklistItem, marks: &[neo_ir_store::ChecklistMark], runs: &[Run]) -> Entry {
    let mine: Vec<&Run> = runs
        .iter()
        .filter(|r| item.script.is_some_and(|s| s == r.script))
        .collect();
    let mut e = Entry {
        item: *item,
        done: false,
        by: None,
        at: None,
        run_id: None,
        runs: mine
            .iter()
            .map(|r| RunRef {
                id: r.id,
                status: r.status,
                summary: r.summary.clone(),
            })
            .collect(),
    };
    // a person's mark wins (done or undone); otherwise a successful run does it
    if let Some(m) = marks.iter().find(|m| m.key == item.key) {
        e.done = m.done;
        e.by = Some(m.by.clone());
        e.at = Some(m.at);
    } else if let Some(r) = mine.iter().find(|r| r.status == RunStatus::Succeeded) {
        e.done = true;
        e.by = Some(format!("run {}", r.id));
        e.at = r.finished_at;
        e.run_id = Some(r.id);
    }
    e
}

/// Why a mark was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A person marks item `key` of incident `id` done or undone: stored, and on the timeline.
pub async fn mark(
    store: &Store,
    id: i64,
    key: &str,
    done: bool,
    actor: &Actor,
    now: Timestamp,
) -> Result<Incident, MarkError> {
    let (incident, _) = store
        .incident(id)
        .await?
        .ok_or(StoreError::NoSuchIncident(id))?;
    neo_ir_core::respond::refuse_if_reviewed(&incident, "its checklist is")?;
    let list = checklist(incident.kind);
    let Some(item) = list.iter().find(|i| i.key == key) else {
        let keys: Vec<&str> = list.iter().map(|i| i.key).collect();
        return Err(Refusal::Invalid(format!(
            "{} has no checklist item {key:?}; items: {}",
            incident.kind,
            keys.join(", ")
        ))
        .into());
    };
    let message = format!(
        "{} marked {:?} {}",
        actor.who,
        item.text,
        if done { "done" } else { "not done" }
    );
    let data = json!({"key": key, "done": done, "by": actor.who, "from": actor.from});
    store.set_checklist_item(id, key, done, actor, now).await?;
    if let Err(e) =
        crate::runner::record_event(store, id, EventType::ChecklistStep, message, data, now).await
    {
        tracing::warn!(incident = id, error = %e, "checklist mark not put on the timeline");
    }
    Ok(incident)
}

/// The checklist as text, for `neo-ir incident show ID --runbook`.
pub fn to_text(kind: neo_ir_core::incident::IncidentKind, entries: &[Entry]) -> String {
    let mut out = format!("runbook for {kind} (the playbook's procedure):\n");
    for e in entries {
        let mark = if e.done { "[x]" } else { "[ ]" };
        out.push_str(&format!("{mark} {:<15} {}\n", e.item.key, e.item.text));
        if let Some(s) = e.item.script {
            out.push_str(&format!("      script: neo-ir run {s}"));
            if let Some(r) = e.runs.first() {
                out.push_str(&format!(
                    "  (last: run {} {}: {})",
                    r.id,
                    r.status.as_str(),
                    r.summary
                ));
            }
            out.push('\n');
        }
        if let (true, Some(by)) = (e.done, &e.by) {
            let at = e.at.map(|a| format!(" at {a}")).unwrap_or_default();
            out.push_str(&format!("      done by {by}{at}\n"));
        }
    }
    out
}
