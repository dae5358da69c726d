//! Durable storage of incidents, their timelines and the latest view of each node.
//!
//! SQLite (via sqlx, with embedded migrations) is the embedded default. Every incident change
//! is written together with its timeline events in one transaction, so a crash at any point
//! leaves either both or neither. The database enforces one open incident per cause.

use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use neo_ir_core::fleet::NodeView;
use neo_ir_core::incident::{Change, Incident, Severity, Status, TimelineEvent};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported store URL {0:?}: expected sqlite://PATH or sqlite::memory:")]
    UnsupportedUrl(String),
    #[error("cannot open the store at {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("corrupt row in the store: {0}")]
    Corrupt(String),
    #[error("incident {0} does not exist")]
    NoSuchIncident(i64),
}

type Result<T> = std::result::Result<T, StoreError>;

/// Which incidents to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListFilter {
    /// Include resolved incidents.
    pub all: bool,
    pub limit: u32,
    /// Only incidents with an id below this one (the pagination cursor).
    pub before_id: Option<i64>,
}

impl Default for ListFilter {
    fn default() -> Self {
        Self {
            all: false,
            limit: 100,
            before_id: None,
        }
    }
}

/// A node's last known height, for resuming the fleet view after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHeight {
    pub node: String,
    pub height: u64,
    pub since: Timestamp,
}

/// The store handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Open (creating if needed) the store at `url` and run migrations.
    /// `sqlite://neo-ir.db` (relative to the working directory), `sqlite:///abs/path.db`,
    /// or `sqlite::memory:` for a throw-away store.
    pub async fn open(url: &str) -> Result<Store> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        }
        let memory = url.contains(":memory:");
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|source| StoreError::Open {
                url: url.to_string(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(if memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            // one connection for an in-memory store: each connection would be its own database
            .max_connections(if memory { 1 } else { 4 })
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                url: url.to_string(),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    /// Is the database answering?
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Every incident not yet resolved.
    pub async fn open_incidents(&self) -> Result<Vec<Incident>> {
        let rows =
            sqlx::query("SELECT * FROM incidents WHERE status <> 'resolved' ORDER BY id DESC")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(incident_from_row).collect()
    }

    /// Incidents, newest first.
    pub async fn list_incidents(&self, filter: ListFilter) -> Result<Vec<Incident>> {
        // ids grow with time, so id order is newest-first and a stable cursor
        let sql = if filter.all {
            "SELECT * FROM incidents WHERE id < ? ORDER BY id DESC LIMIT ?"
        } else {
            "SELECT * FROM incidents WHERE id < ? AND status <> 'resolved' ORDER BY id DESC LIMIT ?"
        };
        let rows = sqlx::query(sql)
            .bind(filter.before_id.unwrap_or(i64::MAX))
            .bind(filter.limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(incident_from_row).collect()
    }

    /// One incident with its timeline (oldest event first).
    pub async fn incident(&self, id: i64) -> Result<Option<(Incident, Vec<TimelineEvent>)>> {
        let Some(row) = sqlx::query("SELECT * FROM incidents WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let incident = incident_from_row(&row)?;
        let events = sqlx::query(
            "SELECT at, type, message, data FROM timeline_events WHERE incident_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TimelineEvent {
                at: ts(r.try_get("at")?)?,
                event_type: r.try_get("type")?,
                message: r.try_get("message")?,
                data: json(r.try_get::<String, _>("data")?)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(Some((incident, events)))
    }

    /// Apply one change of the incident engine with its timeline events, atomically.
    /// Returns the incident as it is afterwards.
    pub async fn apply(&self, change: &Change) -> Result<Incident> {
        let mut tx = self.pool.begin().await?;
        let id = match change {
            Change::Open { finding, at, event } => {
                let ms = at.as_millisecond();
                let id: i64 = sqlx::query(
                    "INSERT INTO incidents (key, kind, severity, status, nodes, summary, evidence, \
                     opened_at, resolved_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) \
                     RETURNING id",
                )
                .bind(&finding.key)
                .bind(finding.kind.as_str())
                .bind(finding.severity.as_str())
                .bind(Status::Detected.as_str())
                .bind(serde_json::to_string(&finding.nodes).expect("names serialize"))
                .bind(&finding.summary)
                .bind(finding.evidence.to_string())
                .bind(ms)
                .bind(ms)
                .fetch_one(&mut *tx)
                .await?
                .try_get("id")?;
                insert_event(&mut tx, id, event).await?;
                id
            }
            Change::Update {
                id,
                at,
                severity,
                nodes,
                summary,
                evidence,
                events,
            } => {
                let at = at.as_millisecond();
                let done = sqlx::query(
                    "UPDATE incidents SET severity = ?, nodes = ?, summary = ?, evidence = ?, \
                     updated_at = ? WHERE id = ?",
                )
                .bind(severity.as_str())
                .bind(serde_json::to_string(nodes).expect("names serialize"))
                .bind(summary)
                .bind(evidence.to_string())
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NoSuchIncident(*id));
                }
                for e in events {
                    insert_event(&mut tx, *id, e).await?;
                }
                *id
            }
            Change::Resolve { id, at, event } => {
                let ms = at.as_millisecond();
                let done = sqlx::query(
                    "UPDATE incidents SET status = 'resolved', resolved_at = ?, updated_at = ? \
                     WHERE id = ? AND status <> 'resolved'",
                )
                .bind(ms)
                .bind(ms)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NoSuchIncident(*id));
                }
                insert_event(&mut tx, *id, event).await?;
                *id
            }
        };
        let row = sqlx::query("SELECT * FROM incidents WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let incident = incident_from_row(&row)?;
        tx.commit().await?;
        Ok(incident)
    }

    /// Save the latest view of every node (one transaction per round).
    pub async fn save_nodes(&self, views: &[NodeView], now: Timestamp) -> Result<()> {
        if views.is_empty() {
            return Ok(());
        }
        // One statement over a JSON array, not one per node: a fleet of 10,000 nodes would
        // otherwise cost 10,000 round trips to SQLite's worker thread (bench `scale`).
        let rows: Vec<(&str, String, Option<i64>, Option<i64>)> = views
            .iter()
            .map(|v| {
                (
                    v.name.as_str(),
                    serde_json::to_string(v).expect("view serializes"),
                    v.height.map(|h| h as i64),
                    v.height_since.map(|t| t.as_millisecond()),
                )
            })
            .collect();
        let rows = serde_json::to_string(&rows).expect("rows serialize");
        sqlx::query(
            "INSERT INTO node_status (name, view, height, height_since, updated_at) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
                    json_extract(value, '$[2]'), json_extract(value, '$[3]'), ? \
             FROM json_each(?) WHERE true \
             ON CONFLICT(name) DO UPDATE SET view = excluded.view, \
             height = excluded.height, height_since = excluded.height_since, \
             updated_at = excluded.updated_at",
        )
        .bind(now.as_millisecond())
        .bind(rows)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forget nodes that are no longer configured (their old views would mislead).
    pub async fn retain_nodes(&self, names: &[String]) -> Result<()> {
        let keep = serde_json::to_string(names).expect("names serialize");
        sqlx::query("DELETE FROM node_status WHERE name NOT IN (SELECT value FROM json_each(?))")
            .bind(keep)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The latest view of each node, by name.
    pub async fn nodes(&self) -> Result<Vec<NodeView>> {
        sqlx::query("SELECT view FROM node_status ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let text: String = r.try_get("view")?;
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// Last known heights, to resume stall measurement after a restart.
    pub async fn stored_heights(&self) -> Result<Vec<StoredHeight>> {
        sqlx::query(
            "SELECT name, height, height_since FROM node_status \
             WHERE height IS NOT NULL AND height_since IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(StoredHeight {
                node: r.try_get("name")?,
                height: r.try_get::<i64, _>("height")? as u64,
                since: ts(r.try_get("height_since")?)?,
            })
        })
        .collect()
    }

    /// Close the pool (flushes the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    incident_id: i64,
    e: &TimelineEvent,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO timeline_events (incident_id, at, type, message, data) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(incident_id)
    .bind(e.at.as_millisecond())
    .bind(&e.event_type)
    .bind(&e.message)
    .bind(e.data.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn ts(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("time {ms}: {e}")))
}

fn json(text: String) -> Result<serde_json::Value> {
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("json {text:?}: {e}")))
}

fn incident_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Incident> {
    let corrupt = |what: &str, e: String| StoreError::Corrupt(format!("{what}: {e}"));
    Ok(Incident {
        id: r.try_get("id")?,
        key: r.try_get("key")?,
        kind: r
            .try_get::<String, _>("kind")?
            .parse()
            .map_err(|e| corrupt("kind", e))?,
        severity: r
            .try_get::<String, _>("severity")?
            .parse::<Severity>()
            .map_err(|e| corrupt("severity", e))?,
        status: r
            .try_get::<String, _>("status")?
            .parse::<Status>()
            .map_err(|e| corrupt("status", e))?,
        nodes: serde_json::from_str(&r.try_get::<String, _>("nodes")?)
            .map_err(|e| corrupt("nodes", e.to_string()))?,
        summary: r.try_get("summary")?,
        evidence: json(r.try_get("evidence")?)?,
        opened_at: ts(r.try_get("opened_at")?)?,
        resolved_at: r
            .try_get::<Option<i64>, _>("resolved_at")?
            .map(ts)
            .transpose()?,
        updated_at: ts(r.try_get("updated_at")?)?,
    })
}
