//! Drills (issue 7): the record of each drill run and the reminders of scheduled drills.
//!
//! `neo-ir drill run` records a drill when it starts ([`Store::start_drill`]) and its score
//! when it ends ([`Store::finish_drill`]), or why it stopped ([`Store::abort_drill`]). While
//! a drill is `running` and not past its `expires_at` (so a drill whose process died stops
//! counting by itself), the leading watcher reads it ([`Store::active_drills`]) and marks
//! the incidents it opens on the drill's nodes as drill incidents; it notes when it first
//! saw the drill ([`Store::mark_drills_seen`]), so the drill injects its fault only once a
//! watcher will mark what follows. The history ([`Store::drill_history`]) is what
//! `neo-ir drill history` prints and what the schedule skips months by.
//!
//! Reminders of scheduled drills are remembered per drill day and channel
//! ([`Store::record_drill_reminder`], fenced like every engine write), so each is sent once
//! and a channel that failed is tried again.

use std::str::FromStr;

use jiff::Timestamp;
use neo_ir_core::drill::mark::ActiveDrill;
use neo_ir_core::drill::DrillScore;
use neo_ir_core::incident::IncidentKind;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{json, ts, Result, Store, StoreError};

/// Where a drill is played: the simulated network, or a designated test node.
pub const SIMULATED: &str = "simulated";

/// A drill to record as it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDrill {
    pub scenario: String,
    pub title: String,
    /// The incident kind a correct classification gives.
    pub kind: IncidentKind,
    /// [`SIMULATED`], or the test node's name.
    pub target: String,
    /// The nodes whose incidents are drill incidents; empty: every node.
    pub nodes: Vec<String>,
    pub commander: Option<String>,
    pub auto_respond: bool,
    pub started_at: Timestamp,
    /// After this a drill still `running` marks nothing (its process died).
    pub expires_at: Timestamp,
}

/// How a drill ended, or that it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrillStatus {
    Running,
    Scored,
    Aborted,
}

impl DrillStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DrillStatus::Running => "running",
            DrillStatus::Scored => "scored",
            DrillStatus::Aborted => "aborted",
        }
    }
}

impl FromStr for DrillStatus {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "running" => Ok(DrillStatus::Running),
            "scored" => Ok(DrillStatus::Scored),
            "aborted" => Ok(DrillStatus::Aborted),
            other => Err(format!("unknown drill status {other:?}")),
        }
    }
}

impl std::fmt::Display for DrillStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A drill as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDrill {
    pub id: i64,
    pub scenario: String,
    pub title: String,
    pub kind: IncidentKind,
    pub target: String,
    pub nodes: Vec<String>,
    pub commander: Option<String>,
    pub auto_respond: bool,
    pub status: DrillStatus,
    pub started_at: Timestamp,
    pub expires_at: Timestamp,
    pub seen_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// The [`DrillScore`] as JSON, once scored.
    pub score: Option<serde_json::Value>,
    pub points: Option<u32>,
    /// Why it was aborted.
    pub note: Option<String>,
}

impl Store {
    /// Record a drill as it starts (status `running`).
    pub async fn start_drill(&self, new: &NewDrill) -> Result<StoredDrill> {
        let nodes = serde_json::to_string(&new.nodes).expect("a list of strings serialises");
        let row = sqlx::query(&self.sql(
            "INSERT INTO drills (scenario, title, kind, target, nodes, commander, auto_respond, \
             status, started_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?) \
             RETURNING *",
        ))
        .bind(&new.scenario)
        .bind(&new.title)
        .bind(new.kind.as_str())
        .bind(&new.target)
        .bind(nodes)
        .bind(new.commander.as_deref())
        .bind(i64::from(new.auto_respond))
        .bind(new.started_at.as_millisecond())
        .bind(new.expires_at.as_millisecond())
        .fetch_one(&self.pool)
        .await?;
        drill_from_row(&row)
    }

    /// Store a running drill's score: it becomes `scored` and stops marking incidents.
    pub async fn finish_drill(
        &self,
        id: i64,
        score: &DrillScore,
        now: Timestamp,
    ) -> Result<StoredDrill> {
        let value = serde_json::to_string(score).expect("a score serialises");
        self.end_drill(
            id,
            DrillStatus::Scored,
            Some((value, score.points)),
            None,
            now,
        )
        .await
    }

    /// End a running drill without a score (the fault could not be injected, the drill was
    /// interrupted), saying why.
    pub async fn abort_drill(&self, id: i64, note: &str, now: Timestamp) -> Result<StoredDrill> {
        self.end_drill(id, DrillStatus::Aborted, None, Some(note), now)
            .await
    }

    async fn end_drill(
        &self,
        id: i64,
        status: DrillStatus,
        score: Option<(String, u32)>,
        note: Option<&str>,
        now: Timestamp,
    ) -> Result<StoredDrill> {
        let (score, points) = score.unzip();
        let row = sqlx::query(&self.sql(
            "UPDATE drills SET status = ?, ended_at = ?, score = ?, points = ?, note = ? \
             WHERE id = ? AND status = 'running' RETURNING *",
        ))
        .bind(status.as_str())
        .bind(now.as_millisecond())
        .bind(score)
        .bind(points.map(i64::from))
        .bind(note)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => drill_from_row(&r),
            None => match self.drill(id).await? {
                None => Err(StoreError::NoSuchDrill(id)),
                Some(d) => Err(StoreError::DrillEnded {
                    id,
                    status: d.status.as_str(),
                }),
            },
        }
    }

    /// One drill.
    pub async fn drill(&self, id: i64) -> Result<Option<StoredDrill>> {
        sqlx::query(&self.sql("SELECT * FROM drills WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(drill_from_row)
            .transpose()
    }

    /// The drills running at `now` (started, not ended, not expired), oldest first.
    pub async fn active_drills(&self, now: Timestamp) -> Result<Vec<ActiveDrill>> {
        let ms = now.as_millisecond();
        sqlx::query(&self.sql(
            "SELECT id, scenario, nodes FROM drills WHERE status = 'running' \
             AND expires_at > ? AND started_at <= ? ORDER BY id",
        ))
        .bind(ms)
        .bind(ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ActiveDrill {
                id: r.try_get("id")?,
                scenario: r.try_get("scenario")?,
                nodes: nodes(r)?,
            })
        })
        .collect()
    }

    /// Note that a leading watcher read these drills (the first time only). Fenced on the
    /// leader's handle.
    pub async fn mark_drills_seen(&self, ids: &[i64], now: Timestamp) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for id in ids {
            sqlx::query(
                &self.sql("UPDATE drills SET seen_at = ? WHERE id = ? AND seen_at IS NULL"),
            )
            .bind(now.as_millisecond())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The drills, newest first (at most `limit`; 0: 1000).
    pub async fn drill_history(&self, limit: u32) -> Result<Vec<StoredDrill>> {
        let limit = if limit == 0 { 1000 } else { limit };
        sqlx::query(&self.sql("SELECT * FROM drills ORDER BY started_at DESC, id DESC LIMIT ?"))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(drill_from_row)
            .collect()
    }

    /// The channels the reminder of the drill on `day` (`YYYY-MM-DD`) went to.
    pub async fn drill_reminders_sent(&self, day: &str) -> Result<Vec<String>> {
        sqlx::query(
            &self.sql("SELECT channel FROM drill_reminders WHERE drill_day = ? ORDER BY channel"),
        )
        .bind(day)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok(r.try_get("channel")?))
        .collect()
    }

    /// Remember that the reminder of the drill on `day` went to `channel`; false when it
    /// was already recorded. Fenced on the leader's handle.
    pub async fn record_drill_reminder(
        &self,
        day: &str,
        channel: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(&self.sql(
            "INSERT INTO drill_reminders (drill_day, channel, sent_at) VALUES (?, ?, ?) \
             ON CONFLICT (drill_day, channel) DO NOTHING",
        ))
        .bind(day)
        .bind(channel)
        .bind(now.as_millisecond())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done == 1)
    }
}

fn nodes(r: &AnyRow) -> Result<Vec<String>> {
    serde_json::from_str(&r.try_get::<String, _>("nodes")?)
        .map_err(|e| StoreError::Corrupt(format!("drill nodes: {e}")))
}

fn drill_from_row(r: &AnyRow) -> Result<StoredDrill> {
    let corrupt = |what: &str, e: String| StoreError::Corrupt(format!("drill {what}: {e}"));
    let opt_ts = |col: &str| -> Result<Option<Timestamp>> {
        r.try_get::<Option<i64>, _>(col)?.map(ts).transpose()
    };
    Ok(StoredDrill {
        id: r.try_get("id")?,
        scenario: r.try_get("scenario")?,
        title: r.try_get("title")?,
        kind: r
            .try_get::<String, _>("kind")?
            .parse()
            .map_err(|e| corrupt("kind", e))?,
        target: r.try_get("target")?,
        nodes: nodes(r)?,
        commander: r.try_get("commander")?,
        auto_respond: r.try_get::<i64, _>("auto_respond")? != 0,
        status: r
            .try_get::<String, _>("status")?
            .parse()
            .map_err(|e| corrupt("status", e))?,
        started_at: ts(r.try_get("started_at")?)?,
        expires_at: ts(r.try_get("expires_at")?)?,
        seen_at: opt_ts("seen_at")?,
        ended_at: opt_ts("ended_at")?,
        score: r
            .try_get::<Option<String>, _>("score")?
            .map(json)
            .transpose()?,
        points: r
            .try_get::<Option<i64>, _>("points")?
            .map(|p| u32::try_from(p).map_err(|e| corrupt("points", e.to_string())))
            .transpose()?,
        note: r.try_get("note")?,
    })
}
