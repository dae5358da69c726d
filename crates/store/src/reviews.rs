//! Post-incident reviews and their action items (playbook phase 5).
//!
//! A review is written once its incident is resolved; people save it as often as they like
//! (each save audited `review.save`) until it is complete. Completing it moves the incident
//! to `reviewed` ([`neo_ir_core::respond::transition`]) in the same transaction as the
//! review's `complete` flag and its audit record, so neither can be true without the other.
//! Action items stay tracked after the review is complete (that is when they are worked
//! on): they are added, updated (done, owner, due date) and listed, overdue ones across
//! incidents for reminders. The leader reminds of each overdue item once per UTC day
//! ([`Store::remind_overdue`]): an `action_item_overdue` event on the incident's timeline,
//! routed to its channels like any other, also when the incident is reviewed (a reminder
//! changes nothing of the incident, so it is appended without a new version).

use jiff::civil::Date;
use jiff::Timestamp;
use neo_ir_core::incident::{Actor, Incident, Status, TimelineEvent};
use neo_ir_core::respond::{self, Refusal};
use neo_ir_core::review::{
    check_action, check_markdown, check_owner, check_runbook, overdue_reminder, pir_markdown,
    utc_day, ActionItem, Priority,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{
    insert_audit, insert_event_routed, opt_ts, ts, write_mutation, Audit, Result, RunFilter, Store,
    StoreError,
};

/// A review as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReview {
    pub incident_id: i64,
    pub markdown: String,
    pub complete: bool,
    pub updated_by: String,
    pub updated_at: Timestamp,
}

/// An action item to add to an incident's review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewActionItem {
    pub action: String,
    pub owner: String,
    pub due: Option<Date>,
    pub priority: Priority,
    pub runbook: Option<String>,
}

/// What a person changes on an action item (`None`: left as it is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionItemUpdate {
    pub done: Option<bool>,
    pub owner: Option<String>,
    /// `Some(None)` removes the due date.
    pub due: Option<Option<Date>>,
}

/// An action item with the incident it follows up, as the overdue list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedItem {
    pub incident_id: i64,
    #[serde(flatten)]
    pub item: ActionItem,
}

fn refuse<T>(why: String) -> Result<std::result::Result<T, Refusal>> {
    Ok(Err(Refusal::Conflict(why)))
}

impl Store {
    /// The stored review of incident `id`, if one was saved.
    pub async fn review(&self, incident_id: i64) -> Result<Option<StoredReview>> {
        sqlx::query(&self.sql("SELECT * FROM reviews WHERE incident_id = ?"))
            .bind(incident_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(review_from_row)
            .transpose()
    }

    /// The review as it stands: the saved one, else the playbook's template prefilled from
    /// the incident's timeline, runs and action items (not stored).
    pub async fn review_or_draft(&self, incident_id: i64) -> Result<(String, bool)> {
        if let Some(r) = self.review(incident_id).await? {
            return Ok((r.markdown, r.complete));
        }
        Ok((self.draft_review(incident_id).await?, false))
    }

    /// The playbook's template for incident `id`, prefilled (see
    /// [`neo_ir_core::review::pir_markdown`]).
    pub async fn draft_review(&self, incident_id: i64) -> Result<String> {
        let (incident, timeline) = self
            .incident(incident_id)
            .await?
            .ok_or(StoreError::NoSuchIncident(incident_id))?;
        let runs = self
            .runs(&RunFilter {
                incident_id: Some(incident_id),
                limit: 1000,
                ..Default::default()
            })
            .await?;
        let items = self.action_items(incident_id).await?;
        Ok(pir_markdown(&incident, &timeline, &runs, &items))
    }

    /// Save the review's Markdown (audited `review.save`). Refused while the incident is
    /// open (nothing to review yet) and once the review is complete (the record is final).
    pub async fn save_review(
        &self,
        incident_id: i64,
        markdown: &str,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<std::result::Result<StoredReview, Refusal>> {
        if let Err(why) = check_markdown(markdown) {
            return Ok(Err(Refusal::Invalid(why)));
        }
        let incident = self.incident_row(incident_id).await?;
        let mut tx = self.pool.begin().await?;
        if let Err(why) = writable(&incident) {
            return refuse(why);
        }
        if self.complete_in(&mut tx, incident_id).await? {
            return refuse(format!(
                "the review of incident {incident_id} is complete: it is part of the record now"
            ));
        }
        let row = sqlx::query(&self.sql(
            "INSERT INTO reviews (incident_id, markdown, complete, updated_by, updated_at) \
             VALUES (?, ?, 0, ?, ?) ON CONFLICT (incident_id) DO UPDATE SET \
             markdown = excluded.markdown, updated_by = excluded.updated_by, \
             updated_at = excluded.updated_at RETURNING *",
        ))
        .bind(incident_id)
        .bind(markdown)
        .bind(&actor.who)
        .bind(now.as_millisecond())
        .fetch_one(&mut *tx)
        .await?;
        let review = review_from_row(&row)?;
        let audit = Audit::new(actor, "review.save", json!({"bytes": markdown.len()}));
        insert_audit(self.dialect, &mut tx, &audit, Some(incident_id)).await?;
        tx.commit().await?;
        Ok(Ok(review))
    }

    /// Mark the review complete and move the incident to `reviewed`, in one transaction
    /// with the audit record `review.complete`. Refused unless the incident is resolved. A
    /// review nobody saved is stored as the prefilled template (what was reviewed).
    pub async fn complete_review(
        &self,
        incident_id: i64,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<std::result::Result<StoredReview, Refusal>> {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let current = self.incident_row(incident_id).await?;
            if current.status == Status::Reviewed {
                return Ok(Err(Refusal::Unchanged(format!(
                    "incident {incident_id} is already reviewed"
                ))));
            }
            let m = match respond::transition(
                &current,
                Status::Reviewed,
                Some("the post-incident review is complete"),
                actor,
                now,
            ) {
                Ok(m) => m,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let draft = match self.review(incident_id).await? {
                Some(_) => None,
                None => Some(self.draft_review(incident_id).await?),
            };
            let mut tx = self.pool.begin().await?;
            match write_mutation(self.dialect, &mut tx, &m).await {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
            let row = sqlx::query(&self.sql(
                "INSERT INTO reviews (incident_id, markdown, complete, updated_by, updated_at) \
                 VALUES (?, ?, 1, ?, ?) ON CONFLICT (incident_id) DO UPDATE SET complete = 1, \
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at RETURNING *",
            ))
            .bind(incident_id)
            .bind(draft.unwrap_or_default())
            .bind(&actor.who)
            .bind(now.as_millisecond())
            .fetch_one(&mut *tx)
            .await?;
            let review = review_from_row(&row)?;
            let audit = Audit::new(actor, "review.complete", json!({}));
            insert_audit(self.dialect, &mut tx, &audit, Some(incident_id)).await?;
            tx.commit().await?;
            return Ok(Ok(review));
        }
        Err(StoreError::Conflict(incident_id))
    }

    /// Add an action item to incident `id`'s review (audited `review.item.add`). Refused
    /// while the incident is open.
    pub async fn add_action_item(
        &self,
        incident_id: i64,
        new: &NewActionItem,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<std::result::Result<ActionItem, Refusal>> {
        let checked = (|| {
            Ok::<_, String>((
                check_action(&new.action)?,
                check_owner(&new.owner)?,
                new.runbook.as_deref().map(check_runbook).transpose()?,
            ))
        })();
        let (action, owner, runbook) = match checked {
            Ok(c) => c,
            Err(why) => return Ok(Err(Refusal::Invalid(why))),
        };
        let incident = self.incident_row(incident_id).await?;
        if incident.is_open() {
            return refuse(format!(
                "incident {incident_id} is {}: action items follow a review, once it is resolved",
                incident.status
            ));
        }
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&self.sql(
            "INSERT INTO action_items (incident_id, action, owner, due, priority, done, runbook, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?) RETURNING *",
        ))
        .bind(incident_id)
        .bind(&action)
        .bind(&owner)
        .bind(new.due.map(|d| d.to_string()))
        .bind(new.priority.as_str())
        .bind(runbook.as_deref())
        .bind(now.as_millisecond())
        .bind(now.as_millisecond())
        .fetch_one(&mut *tx)
        .await?;
        let item = item_from_row(&row)?;
        let audit = Audit::new(
            actor,
            "review.item.add",
            json!({"item": item.id, "action": action, "owner": owner, "due": new.due,
                   "priority": new.priority, "runbook": runbook}),
        );
        insert_audit(self.dialect, &mut tx, &audit, Some(incident_id)).await?;
        tx.commit().await?;
        Ok(Ok(item))
    }

    /// Change an action item (done, owner, due date), audited `review.item.update`;
    /// [`StoreError::NoSuchActionItem`] when there is no such item.
    pub async fn update_action_item(
        &self,
        id: i64,
        update: &ActionItemUpdate,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<std::result::Result<(i64, ActionItem), Refusal>> {
        let owner = match update.owner.as_deref().map(check_owner).transpose() {
            Ok(o) => o,
            Err(why) => return Ok(Err(Refusal::Invalid(why))),
        };
        if update.done.is_none() && owner.is_none() && update.due.is_none() {
            return Ok(Err(Refusal::Invalid(
                "nothing to change: give done, owner or due".into(),
            )));
        }
        let mut tx = self.pool.begin().await?;
        let current = sqlx::query(&self.sql("SELECT * FROM action_items WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NoSuchActionItem(id))?;
        let incident_id: i64 = current.try_get("incident_id")?;
        let mut item = item_from_row(&current)?;
        if let Some(done) = update.done {
            // the completion time is when it became done (a runbook's last review), kept
            // through later edits
            if done != item.done {
                item.done_at = done.then_some(now);
            }
            item.done = done;
        }
        if let Some(o) = &owner {
            item.owner = o.clone();
        }
        if let Some(due) = update.due {
            item.due = due;
        }
        sqlx::query(&self.sql(
            "UPDATE action_items SET done = ?, done_at = ?, owner = ?, due = ?, updated_at = ? \
             WHERE id = ?",
        ))
        .bind(i64::from(item.done))
        .bind(item.done_at.map(|t| t.as_millisecond()))
        .bind(&item.owner)
        .bind(item.due.map(|d| d.to_string()))
        .bind(now.as_millisecond())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let audit = Audit::new(
            actor,
            "review.item.update",
            json!({"item": id, "done": update.done, "owner": owner, "due": update.due}),
        );
        insert_audit(self.dialect, &mut tx, &audit, Some(incident_id)).await?;
        tx.commit().await?;
        Ok(Ok((incident_id, item)))
    }

    /// One action item with its incident.
    pub async fn action_item(&self, id: i64) -> Result<Option<TrackedItem>> {
        sqlx::query(&self.sql("SELECT * FROM action_items WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tracked_from_row)
            .transpose()
    }

    /// Incident `id`'s action items, in the order they were added.
    pub async fn action_items(&self, incident_id: i64) -> Result<Vec<ActionItem>> {
        sqlx::query(&self.sql("SELECT * FROM action_items WHERE incident_id = ? ORDER BY id"))
            .bind(incident_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(item_from_row)
            .collect()
    }

    /// Every action item, or only the open ones, newest first (at most `limit`, 0: 1000).
    pub async fn all_action_items(&self, open_only: bool, limit: u32) -> Result<Vec<TrackedItem>> {
        let sql = if open_only {
            "SELECT * FROM action_items WHERE done = 0 ORDER BY id DESC LIMIT ?"
        } else {
            "SELECT * FROM action_items ORDER BY id DESC LIMIT ?"
        };
        let limit = if limit == 0 { 1000 } else { limit };
        sqlx::query(&self.sql(sql))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(tracked_from_row)
            .collect()
    }

    /// Items not done whose due day (UTC) is over at `now`, the most overdue first.
    pub async fn overdue_action_items(&self, now: Timestamp) -> Result<Vec<TrackedItem>> {
        let today = now.to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
        sqlx::query(&self.sql(
            "SELECT * FROM action_items WHERE done = 0 AND due IS NOT NULL AND due < ? \
             ORDER BY due, id",
        ))
        .bind(today)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(tracked_from_row)
        .collect()
    }

    /// Remind of every overdue action item not yet reminded of on `now`'s UTC day: an
    /// `action_item_overdue` event ([`overdue_reminder`]) on its incident's timeline, left
    /// for the router (so it reaches the incident's route's channels), and the day
    /// remembered with the item, in one transaction: at most one reminder per item and day,
    /// whoever leads. Fenced on the leader's handle. Reviewed incidents get theirs too: the
    /// event is appended without changing the incident. Returns (incident id, event) of the
    /// reminders written, the most overdue first.
    pub async fn remind_overdue(&self, now: Timestamp) -> Result<Vec<(i64, TimelineEvent)>> {
        let today = utc_day(now).to_string();
        const DUE: &str = "SELECT * FROM action_items WHERE done = 0 AND due IS NOT NULL \
                           AND due < ? AND (reminded_on IS NULL OR reminded_on < ?)";
        // most rounds find nothing: ask without the leader's write transaction first
        let any = sqlx::query(&self.sql(&format!("{DUE} LIMIT 1")))
            .bind(&today)
            .bind(&today)
            .fetch_optional(&self.pool)
            .await?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let due = sqlx::query(&self.sql(&format!("{DUE} ORDER BY due, id")))
            .bind(&today)
            .bind(&today)
            .fetch_all(&mut *tx)
            .await?;
        let mut written = Vec::new();
        for row in &due {
            let t = tracked_from_row(row)?;
            let Some(event) = overdue_reminder(t.incident_id, &t.item, now) else {
                continue;
            };
            // the same conditions again: a person marking it done meanwhile wins
            let claimed = sqlx::query(&self.sql(
                "UPDATE action_items SET reminded_on = ? WHERE id = ? AND done = 0 \
                 AND (reminded_on IS NULL OR reminded_on < ?)",
            ))
            .bind(&today)
            .bind(t.item.id)
            .bind(&today)
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() == 1 {
                insert_event_routed(self.dialect, &mut tx, t.incident_id, &event, false).await?;
                written.push((t.incident_id, event));
            }
        }
        tx.commit().await?;
        Ok(written)
    }

    /// Every action item that points at a runbook, in the order they were added (for the
    /// runbooks' review state, [`neo_ir_core::review::runbook_reviews`]).
    pub async fn runbook_items(&self) -> Result<Vec<TrackedItem>> {
        sqlx::query(&self.sql("SELECT * FROM action_items WHERE runbook IS NOT NULL ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(tracked_from_row)
            .collect()
    }

    async fn complete_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        incident_id: i64,
    ) -> Result<bool> {
        Ok(
            sqlx::query(&self.sql("SELECT complete FROM reviews WHERE incident_id = ?"))
                .bind(incident_id)
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| r.try_get::<i64, _>("complete"))
                .transpose()?
                == Some(1),
        )
    }
}

/// A review is written about a resolved incident.
fn writable(incident: &Incident) -> std::result::Result<(), String> {
    match incident.status {
        Status::Resolved => Ok(()),
        Status::Reviewed => Err(format!(
            "incident {} is reviewed: its review is part of the record now",
            incident.id
        )),
        s => Err(format!(
            "incident {} is {s}: a review is written once it is resolved",
            incident.id
        )),
    }
}

fn review_from_row(r: &AnyRow) -> Result<StoredReview> {
    Ok(StoredReview {
        incident_id: r.try_get("incident_id")?,
        markdown: r.try_get("markdown")?,
        complete: r.try_get::<i64, _>("complete")? != 0,
        updated_by: r.try_get("updated_by")?,
        updated_at: ts(r.try_get("updated_at")?)?,
    })
}

fn item_from_row(r: &AnyRow) -> Result<ActionItem> {
    let corrupt = |what: &str, e: String| StoreError::Corrupt(format!("action item {what}: {e}"));
    Ok(ActionItem {
        id: r.try_get("id")?,
        action: r.try_get("action")?,
        owner: r.try_get("owner")?,
        due: r
            .try_get::<Option<String>, _>("due")?
            .map(|d| d.parse::<Date>().map_err(|e| corrupt("due", e.to_string())))
            .transpose()?,
        priority: r
            .try_get::<String, _>("priority")?
            .parse()
            .map_err(|e| corrupt("priority", e))?,
        done: r.try_get::<i64, _>("done")? != 0,
        runbook: r.try_get("runbook")?,
        done_at: opt_ts(r, "done_at")?,
    })
}

fn tracked_from_row(r: &AnyRow) -> Result<TrackedItem> {
    Ok(TrackedItem {
        incident_id: r.try_get("incident_id")?,
        item: item_from_row(r)?,
    })
}
