//! The runbook tables: runs of the playbook's scripts (created, approved or declined by a
//! person, finished by the runner, failed when the process running them died), the
//! checklist items people mark on an incident, and files attached to an incident.
//!
//! Every state change of a run is one conditional `UPDATE ... WHERE status = ...`, so two
//! people approving at once, or an approval racing a decline, leave exactly one winner; a
//! person's change is written with its audit record in the same transaction.

use jiff::Timestamp;
use neo_ir_core::incident::{Actor, IncidentKind};
use neo_ir_core::runbook::{checklist, PastRun, Plan, Run, RunStatus, StepResult};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{insert_audit, json, opt_ts, ts, Audit, Dialect, Result, Store, StoreError};

/// The largest attachment the store keeps (16 MiB): a diagnostics bundle fits, a chain
/// snapshot does not belong here.
pub const MAX_ATTACHMENT_BYTES: usize = 16 * 1024 * 1024;

/// Longest attachment name, in characters.
const MAX_ATTACHMENT_NAME: usize = 200;

/// The summary of a run its process left `running` when it died.
pub const INTERRUPTED_SUMMARY: &str = "interrupted: neo-ir stopped while the run was in progress";

/// A run to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub script: String,
    pub args: Vec<String>,
    pub node: Option<String>,
    pub incident_id: Option<i64>,
    /// `DryRun`, `AwaitingApproval`, `Running` or `Refused` at creation.
    pub status: RunStatus,
    pub requested_by: String,
    /// Set when a policy or the requester's own approval covers it.
    pub approved_by: Option<String>,
    pub plan: Plan,
    pub report: serde_json::Value,
    pub summary: String,
    pub automatic: bool,
    pub created_at: Timestamp,
}

/// Which runs to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunFilter {
    pub incident_id: Option<i64>,
    pub status: Option<RunStatus>,
    /// Newest first, at most this many; 0 means 100.
    pub limit: u32,
}

/// Why a person's approval or decline of a run was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RunRefusal {
    #[error("run {0} does not exist")]
    NoSuchRun(i64),
    #[error("the run is {}, not awaiting approval", .0.as_str())]
    NotAwaitingApproval(RunStatus),
}

/// A checklist item marked on an incident (the latest mark wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistMark {
    pub key: String,
    pub done: bool,
    /// Who marked it last.
    pub by: String,
    pub at: Timestamp,
}

/// An attachment's metadata (the content is fetched on its own, by [`Store::attachment`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: i64,
    pub incident_id: i64,
    pub run_id: Option<i64>,
    pub name: String,
    pub content_type: String,
    /// The content's length.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub created_at: Timestamp,
}

/// Statuses an automatic run counts with for the circuit breaker: it acted on the node.
/// A dry run or a refusal changed nothing.
const ACTED: &str = "('awaiting_approval', 'running', 'succeeded', 'failed')";

impl Store {
    /// Record a new run; `finished_at` is `created_at` when the status is already final
    /// (a dry run, a refusal).
    pub async fn create_run(&self, new: &NewRun) -> Result<Run> {
        if !matches!(
            new.status,
            RunStatus::DryRun
                | RunStatus::AwaitingApproval
                | RunStatus::Running
                | RunStatus::Refused
        ) {
            return Err(StoreError::RunStatusNotAllowed {
                what: "created",
                status: new.status.as_str(),
                allowed: "dry_run, awaiting_approval, running or refused",
            });
        }
        let mut tx = self.begin().await?;
        if let Some(incident) = new.incident_id {
            incident_kind(self.dialect, &mut tx, incident).await?;
        }
        let row = sqlx::query(&self.sql(
            "INSERT INTO runs (script, args, node, incident_id, status, requested_by, \
             approved_by, approved_at, plan, results, report, summary, automatic, created_at, \
             finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?, ?, ?) RETURNING *",
        ))
        .bind(&new.script)
        .bind(to_json(&new.args))
        .bind(new.node.as_deref())
        .bind(new.incident_id)
        .bind(new.status.as_str())
        .bind(&new.requested_by)
        .bind(new.approved_by.as_deref())
        .bind(
            new.approved_by
                .as_ref()
                .map(|_| new.created_at.as_millisecond()),
        )
        .bind(to_json(&new.plan))
        .bind(new.report.to_string())
        .bind(&new.summary)
        .bind(i64::from(new.automatic))
        .bind(new.created_at.as_millisecond())
        .bind(
            new.status
                .is_final()
                .then_some(new.created_at.as_millisecond()),
        )
        .fetch_one(&mut *tx)
        .await?;
        let run = run_from_row(&row)?;
        tx.commit().await?;
        Ok(run)
    }

    /// One run.
    pub async fn run(&self, id: i64) -> Result<Option<Run>> {
        sqlx::query(&self.sql("SELECT * FROM runs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(run_from_row)
            .transpose()
    }

    /// Runs, newest first.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        let mut sql = String::from("SELECT * FROM runs WHERE true");
        if filter.incident_id.is_some() {
            sql.push_str(" AND incident_id = ?");
        }
        if filter.status.is_some() {
            sql.push_str(" AND status = ?");
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        let sql = self.sql(&sql);
        let mut q = sqlx::query(&sql);
        if let Some(incident) = filter.incident_id {
            q = q.bind(incident);
        }
        if let Some(status) = filter.status {
            q = q.bind(status.as_str());
        }
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        q.bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(run_from_row)
            .collect()
    }

    /// A person approves a run awaiting approval: awaiting_approval -> running in one
    /// conditional UPDATE (two approvers racing: exactly one wins), `approved_by` set, with
    /// the audit record `run.approve` in the same transaction.
    pub async fn approve_run(
        &self,
        id: i64,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<std::result::Result<Run, RunRefusal>> {
        self.decide(
            id,
            actor,
            "UPDATE runs SET status = 'running', approved_by = ?, approved_at = ? \
             WHERE id = ? AND status = 'awaiting_approval' RETURNING *",
            vec![
                Bind::Text(actor.who.clone()),
                Bind::Int(now.as_millisecond()),
                Bind::Int(id),
            ],
            "run.approve",
            None,
        )
        .await
    }

    /// A person declines a run awaiting approval: awaiting_approval -> refused, finished
    /// now, with the audit record `run.decline`.
    pub async fn decline_run(
        &self,
        id: i64,
        actor: &Actor,
        reason: &str,
        now: Timestamp,
    ) -> Result<std::result::Result<Run, RunRefusal>> {
        let reason = clip(reason.trim(), 1000);
        let summary = if reason.is_empty() {
            format!("declined by {}", actor.who)
        } else {
            format!("declined by {}: {reason}", actor.who)
        };
        self.decide(
            id,
            actor,
            "UPDATE runs SET status = 'refused', summary = ?, finished_at = ? \
             WHERE id = ? AND status = 'awaiting_approval' RETURNING *",
            vec![
                Bind::Text(summary),
                Bind::Int(now.as_millisecond()),
                Bind::Int(id),
            ],
            "run.decline",
            Some(reason),
        )
        .await
    }

    /// One person's decision on a run awaiting approval: `update` (guarded by the status)
    /// and its audit record in one transaction, or the reason nothing changed.
    async fn decide(
        &self,
        id: i64,
        actor: &Actor,
        update: &str,
        binds: Vec<Bind>,
        action: &str,
        reason: Option<String>,
    ) -> Result<std::result::Result<Run, RunRefusal>> {
        let mut tx = self.pool.begin().await?;
        let sql = self.sql(update);
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = match b {
                Bind::Text(s) => q.bind(s),
                Bind::Int(i) => q.bind(i),
            };
        }
        let Some(row) = q.fetch_optional(&mut *tx).await? else {
            let status = run_status(self.dialect, &mut tx, id).await?;
            return Ok(Err(match status {
                None => RunRefusal::NoSuchRun(id),
                Some(s) => RunRefusal::NotAwaitingApproval(s),
            }));
        };
        let run = run_from_row(&row)?;
        let mut detail = serde_json::json!({"run": run.id, "script": run.script, "node": run.node});
        if let Some(reason) = reason {
            detail["reason"] = reason.into();
        }
        insert_audit(
            self.dialect,
            &mut tx,
            &Audit::new(actor, action, detail),
            run.incident_id,
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(run))
    }

    /// The runner finished a run: running -> succeeded or failed (only from running), with
    /// the step results, the report, the summary and `finished_at`.
    pub async fn finish_run(
        &self,
        id: i64,
        status: RunStatus,
        results: &[StepResult],
        report: &serde_json::Value,
        summary: &str,
        now: Timestamp,
    ) -> Result<Run> {
        if !matches!(status, RunStatus::Succeeded | RunStatus::Failed) {
            return Err(StoreError::RunStatusNotAllowed {
                what: "finished",
                status: status.as_str(),
                allowed: "succeeded or failed",
            });
        }
        let mut tx = self.begin().await?;
        let row = sqlx::query(&self.sql(
            "UPDATE runs SET status = ?, results = ?, report = ?, summary = ?, finished_at = ? \
             WHERE id = ? AND status = 'running' RETURNING *",
        ))
        .bind(status.as_str())
        .bind(to_json(results))
        .bind(report.to_string())
        .bind(summary)
        .bind(now.as_millisecond())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(match run_status(self.dialect, &mut tx, id).await? {
                None => StoreError::NoSuchRun(id),
                Some(s) => StoreError::RunNotRunning {
                    id,
                    status: s.as_str(),
                },
            });
        };
        let run = run_from_row(&row)?;
        tx.commit().await?;
        Ok(run)
    }

    /// Automatic runs on `node` created after `since`, oldest first, for the circuit
    /// breaker. Only runs that acted count (not dry runs or refusals); a run is failed when
    /// its status is failed or its report says `"verified": false`.
    pub async fn automatic_runs(&self, node: &str, since: Timestamp) -> Result<Vec<PastRun>> {
        sqlx::query(&self.sql(&format!(
            "SELECT node, created_at, status, report FROM runs \
             WHERE node = ? AND automatic = 1 AND created_at > ? AND status IN {ACTED} \
             ORDER BY created_at, id"
        )))
        .bind(node)
        .bind(since.as_millisecond())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let status = parse_status(&r.try_get::<String, _>("status")?)?;
            let report = json(r.try_get("report")?)?;
            Ok(PastRun {
                node: r.try_get("node")?,
                at: ts(r.try_get("created_at")?)?,
                failed: status == RunStatus::Failed || report["verified"] == false,
            })
        })
        .collect()
    }

    /// Runs left `running` by a process that died (created before `before`, normally the
    /// time this process started): marked failed with [`INTERRUPTED_SUMMARY`], finished at
    /// `before`; their results and report are kept. Returns how many. Call it from the
    /// process that runs the runs (the leader): another live process's runs would be
    /// failed too.
    pub async fn fail_interrupted_runs(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(&self.sql(
            "UPDATE runs SET status = 'failed', summary = ?, finished_at = ? \
             WHERE status = 'running' AND created_at < ?",
        ))
        .bind(INTERRUPTED_SUMMARY)
        .bind(before.as_millisecond())
        .bind(before.as_millisecond())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Mark an item of the incident kind's checklist done or undone (the latest mark
    /// wins), with the audit record `checklist.mark`.
    pub async fn set_checklist_item(
        &self,
        incident_id: i64,
        key: &str,
        done: bool,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let kind = incident_kind(self.dialect, &mut tx, incident_id).await?;
        let items = checklist(kind);
        if !items.iter().any(|i| i.key == key) {
            return Err(StoreError::UnknownChecklistItem {
                key: clip(key, 64),
                kind: kind.as_str(),
                known: items.iter().map(|i| i.key).collect::<Vec<_>>().join(", "),
            });
        }
        sqlx::query(&self.sql(
            "INSERT INTO checklist_marks (incident_id, key, done, marked_by, marked_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (incident_id, key) DO UPDATE SET \
             done = excluded.done, marked_by = excluded.marked_by, marked_at = excluded.marked_at",
        ))
        .bind(incident_id)
        .bind(key)
        .bind(i64::from(done))
        .bind(&actor.who)
        .bind(now.as_millisecond())
        .execute(&mut *tx)
        .await?;
        insert_audit(
            self.dialect,
            &mut tx,
            &Audit::new(
                actor,
                "checklist.mark",
                serde_json::json!({"key": key, "done": done}),
            ),
            Some(incident_id),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The checklist marks of an incident, by key.
    pub async fn checklist_marks(&self, incident_id: i64) -> Result<Vec<ChecklistMark>> {
        sqlx::query(&self.sql(
            "SELECT key, done, marked_by, marked_at FROM checklist_marks \
             WHERE incident_id = ? ORDER BY key",
        ))
        .bind(incident_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ChecklistMark {
                key: r.try_get("key")?,
                done: r.try_get::<i64, _>("done")? != 0,
                by: r.try_get("marked_by")?,
                at: ts(r.try_get("marked_at")?)?,
            })
        })
        .collect()
    }

    /// Attach a file to an incident (and to one of its runs): the name is a file name (no
    /// `/`, no `..`, at most 200 characters), the content at most
    /// [`MAX_ATTACHMENT_BYTES`]; its SHA-256 is computed here.
    pub async fn add_attachment(
        &self,
        incident_id: i64,
        run_id: Option<i64>,
        name: &str,
        content_type: &str,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<Attachment> {
        check_attachment_name(name)?;
        check_content_type(content_type)?;
        if bytes.len() > MAX_ATTACHMENT_BYTES {
            return Err(StoreError::AttachmentTooLarge {
                bytes: bytes.len(),
                max: MAX_ATTACHMENT_BYTES,
            });
        }
        let mut tx = self.pool.begin().await?;
        incident_kind(self.dialect, &mut tx, incident_id).await?;
        if let Some(run) = run_id {
            let row = sqlx::query(&self.sql("SELECT incident_id FROM runs WHERE id = ?"))
                .bind(run)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NoSuchRun(run))?;
            let of: Option<i64> = row.try_get("incident_id")?;
            if of.is_some_and(|of| of != incident_id) {
                return Err(StoreError::RunOfAnotherIncident {
                    run,
                    incident: incident_id,
                });
            }
        }
        let row = sqlx::query(&self.sql(&format!(
            "INSERT INTO attachments (incident_id, run_id, name, content_type, size, sha256, \
             content, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {ATTACHMENT_COLUMNS}"
        )))
        .bind(incident_id)
        .bind(run_id)
        .bind(name)
        .bind(content_type)
        .bind(bytes.len() as i64)
        .bind(hex::encode(Sha256::digest(bytes)))
        .bind(bytes)
        .bind(now.as_millisecond())
        .fetch_one(&mut *tx)
        .await?;
        let attachment = attachment_from_row(&row)?;
        tx.commit().await?;
        Ok(attachment)
    }

    /// The attachments of an incident, oldest first (metadata only).
    pub async fn attachments(&self, incident_id: i64) -> Result<Vec<Attachment>> {
        sqlx::query(&self.sql(&format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE incident_id = ? ORDER BY id"
        )))
        .bind(incident_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(attachment_from_row)
        .collect()
    }

    /// One attachment with its content.
    pub async fn attachment(&self, id: i64) -> Result<Option<(Attachment, Vec<u8>)>> {
        let Some(row) = sqlx::query(&self.sql(&format!(
            "SELECT {ATTACHMENT_COLUMNS}, content FROM attachments WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let meta = attachment_from_row(&row)?;
        let content: Vec<u8> = row.try_get("content")?;
        if content.len() as u64 != meta.bytes {
            return Err(StoreError::Corrupt(format!(
                "attachment {id}: {} bytes stored, {} recorded",
                content.len(),
                meta.bytes
            )));
        }
        Ok(Some((meta, content)))
    }
}

/// A value bound to one of [`Store::decide`]'s statements.
enum Bind {
    Text(String),
    Int(i64),
}

/// The metadata columns of `attachments` (everything but the content).
const ATTACHMENT_COLUMNS: &str =
    "id, incident_id, run_id, name, content_type, size, sha256, created_at";

/// The kind of incident `id`, or [`StoreError::NoSuchIncident`].
async fn incident_kind(
    dialect: Dialect,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
) -> Result<IncidentKind> {
    let row = sqlx::query(&dialect.sql("SELECT kind FROM incidents WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NoSuchIncident(id))?;
    row.try_get::<String, _>("kind")?
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("incident {id} kind: {e}")))
}

/// The status of run `id`, if it exists.
async fn run_status(
    dialect: Dialect,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
) -> Result<Option<RunStatus>> {
    sqlx::query(&dialect.sql("SELECT status FROM runs WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| parse_status(&r.try_get::<String, _>("status")?))
        .transpose()
}

fn parse_status(s: &str) -> Result<RunStatus> {
    RunStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("run status {s:?}")))
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("runbook types serialize")
}

/// A JSON text column decoded into `T`.
fn column<T: serde::de::DeserializeOwned>(r: &AnyRow, name: &str) -> Result<T> {
    let text: String = r.try_get(name)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("run {name}: {e}")))
}

fn run_from_row(r: &AnyRow) -> Result<Run> {
    Ok(Run {
        id: r.try_get("id")?,
        script: r.try_get("script")?,
        args: column(r, "args")?,
        node: r.try_get("node")?,
        incident_id: r.try_get("incident_id")?,
        status: parse_status(&r.try_get::<String, _>("status")?)?,
        requested_by: r.try_get("requested_by")?,
        approved_by: r.try_get("approved_by")?,
        plan: column(r, "plan")?,
        results: column(r, "results")?,
        report: json(r.try_get("report")?)?,
        summary: r.try_get("summary")?,
        created_at: ts(r.try_get("created_at")?)?,
        finished_at: opt_ts(r, "finished_at")?,
        automatic: r.try_get::<i64, _>("automatic")? != 0,
    })
}

fn attachment_from_row(r: &AnyRow) -> Result<Attachment> {
    let size: i64 = r.try_get("size")?;
    Ok(Attachment {
        id: r.try_get("id")?,
        incident_id: r.try_get("incident_id")?,
        run_id: r.try_get("run_id")?,
        name: r.try_get("name")?,
        content_type: r.try_get("content_type")?,
        bytes: u64::try_from(size)
            .map_err(|_| StoreError::Corrupt(format!("attachment size {size}")))?,
        sha256: r.try_get("sha256")?,
        created_at: ts(r.try_get("created_at")?)?,
    })
}

/// At most `max` characters of `s` (for messages and stored reasons).
fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A file name that stays a file name wherever it is written or served: no separators, no
/// `..`, no control characters, not empty, at most [`MAX_ATTACHMENT_NAME`] characters.
fn check_attachment_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.chars().count() > MAX_ATTACHMENT_NAME {
        Some("it is longer than 200 characters")
    } else if name.contains('/') || name.contains('\\') {
        Some("it holds a path separator")
    } else if name.contains("..") {
        Some("it holds `..`")
    } else if name.chars().any(char::is_control) {
        Some("it holds control characters")
    } else if name == "." || name.trim() != name {
        Some("it is `.` or starts or ends with white space")
    } else {
        None
    };
    match why {
        Some(why) => Err(StoreError::InvalidAttachment(format!(
            "name {:?} refused: {why}; use a plain file name like diagnostics.tar.gz",
            clip(name, 60)
        ))),
        None => Ok(()),
    }
}

/// A MIME type (`type/subtype`, optional parameters) of printable ASCII, safe in a
/// Content-Type header.
fn check_content_type(ct: &str) -> Result<()> {
    let ok = !ct.is_empty()
        && ct.len() <= 127
        && ct.bytes().all(|b| (0x20..0x7f).contains(&b))
        && ct
            .split(';')
            .next()
            .and_then(|t| t.trim().split_once('/'))
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty());
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidAttachment(format!(
            "content type {:?} refused: expected a MIME type like application/gzip",
            clip(ct, 60)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types_are_checked() {
        for good in ["diagnostics.tar.gz", "run-7 output.txt", "a.b", "ñ.log"] {
            check_attachment_name(good).unwrap();
        }
        for bad in [
            "", ".", "..", "../etc", "a/b", "a\\b", "x\0y", " x", "a..b", "\n",
        ] {
            assert!(check_attachment_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_attachment_name(&"x".repeat(200)).is_ok());
        assert!(check_attachment_name(&"x".repeat(201)).is_err());
        check_content_type("application/gzip").unwrap();
        check_content_type("text/plain; charset=utf-8").unwrap();
        for bad in ["", "text", "/x", "text/plain\r\nX-Evil: 1", "téxt/plain"] {
            assert!(check_content_type(bad).is_err(), "{bad:?}");
        }
    }
}
