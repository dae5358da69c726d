//! What the incident KPIs read (issue 7): every incident opened since a time with its
//! timeline, in two queries (incidents, then all their events in one ordered scan) rather
//! than one query per incident, so `neo-ir report` and `/metrics` stay cheap over months.

use std::collections::BTreeMap;

use jiff::Timestamp;
use neo_ir_core::incident::{Incident, TimelineEvent};
use sqlx::Row;

use crate::{incident_from_row, json, ts, Result, Store};

impl Store {
    /// Every incident opened at or after `since` (oldest first), each with its timeline
    /// (oldest event first).
    pub async fn incidents_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(Incident, Vec<TimelineEvent>)>> {
        let since_ms = since.as_millisecond();
        let incidents = sqlx::query(
            &self.sql("SELECT * FROM incidents WHERE opened_at >= ? ORDER BY opened_at, id"),
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(incident_from_row)
        .collect::<Result<Vec<_>>>()?;
        let rows = sqlx::query(&self.sql(
            "SELECT e.incident_id AS incident_id, e.at AS at, e.type AS type, \
             e.message AS message, e.data AS data \
             FROM timeline_events e JOIN incidents i ON i.id = e.incident_id \
             WHERE i.opened_at >= ? ORDER BY e.incident_id, e.id",
        ))
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut timelines: BTreeMap<i64, Vec<TimelineEvent>> = BTreeMap::new();
        for r in &rows {
            timelines
                .entry(r.try_get("incident_id")?)
                .or_default()
                .push(TimelineEvent {
                    at: ts(r.try_get("at")?)?,
                    event_type: r.try_get("type")?,
                    message: r.try_get("message")?,
                    data: json(r.try_get::<String, _>("data")?)?,
                });
        }
        Ok(incidents
            .into_iter()
            .map(|i| {
                let events = timelines.remove(&i.id).unwrap_or_default();
                (i, events)
            })
            .collect())
    }
}
