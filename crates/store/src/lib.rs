//! Durable storage of incidents, their timelines and the latest view of each node.
//!
//! SQLite is the embedded default; PostgreSQL (`postgres://...`) is for several instances.
//! Both have the same schema, each with its own embedded migrations (`migrations/sqlite`,
//! `migrations/postgres`), behind one sqlx `Any` pool: every query is written once with `?`
//! placeholders (numbered for PostgreSQL by [`Dialect::sql`]), and the two statements where
//! the dialects differ (JSON arrays) are written twice. Every incident change is written
//! together with its timeline events in one transaction, so a crash at any point leaves
//! either both or neither. The database enforces one open incident per cause.

use std::borrow::Cow;
use std::time::Duration;

use jiff::Timestamp;
use neo_ir_core::fleet::NodeView;
use neo_ir_core::incident::{
    acknowledged_event, breach_event, Actor, Change, Incident, Severity, Status, TimelineEvent,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported store URL {0:?}: expected sqlite://PATH, sqlite::memory: or postgres://USER@HOST:PORT/DATABASE"
    )]
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

/// What acknowledging did.
#[derive(Debug, Clone, PartialEq)]
pub enum Ack {
    /// Acknowledged now (the incident as it is afterwards).
    Done(Incident),
    /// Someone acknowledged it earlier.
    Already(Incident),
    /// It is resolved; there is nothing to acknowledge.
    Resolved(Incident),
}

/// A node's last known height, for resuming the fleet view after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHeight {
    pub node: String,
    pub height: u64,
    pub since: Timestamp,
}

/// The SQL dialect of the store's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The dialect of a store URL, if it is one neo-ir can use.
    pub fn of_url(url: &str) -> Option<Dialect> {
        if url.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else {
            None
        }
    }

    /// `sql` (written with `?` placeholders) for this dialect: PostgreSQL numbers them
    /// (`$1`, `$2`, ...). No statement here has a `?` inside a string literal.
    pub fn sql(self, sql: &str) -> Cow<'_, str> {
        match self {
            Dialect::Sqlite => Cow::Borrowed(sql),
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 8);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                Cow::Owned(out)
            }
        }
    }
}

/// The store handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

impl Store {
    /// Open (creating if needed) the store at `url` and run migrations.
    /// `sqlite://neo-ir.db` (relative to the working directory), `sqlite:///abs/path.db`,
    /// `sqlite::memory:` for a throw-away store, or `postgres://user@host:5432/database`.
    pub async fn open(url: &str) -> Result<Store> {
        let dialect =
            Dialect::of_url(url).ok_or_else(|| StoreError::UnsupportedUrl(url.to_string()))?;
        sqlx::any::install_default_drivers();
        let opened = |source| StoreError::Open {
            url: redact(url),
            source,
        };
        let pool = match dialect {
            Dialect::Sqlite => {
                let memory = url.contains(":memory:");
                // create the file if missing (the `Any` driver takes options from the URL)
                let url = if memory || url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                AnyPoolOptions::new()
                    // one connection for an in-memory store: each would be its own database
                    .max_connections(if memory { 1 } else { 4 })
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            let journal = if memory { "MEMORY" } else { "WAL" };
                            // the busy timeout first: switching to WAL takes a lock that
                            // another process opening the same file may hold a moment
                            conn.execute(
                                format!(
                                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = {journal}; \
                                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
                                )
                                .as_str(),
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await
                    .map_err(opened)?
            }
            Dialect::Postgres => AnyPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await
                .map_err(opened)?,
        };
        match dialect {
            Dialect::Sqlite => {
                // Two processes opening one new file (the watcher and a CLI command) would
                // both find a migration missing and both apply it; one takes an exclusive
                // lock on the file for the migrations. (PostgreSQL's migrator takes an
                // advisory lock itself.)
                let _lock = match sqlite_path(url) {
                    Some(path) => {
                        Some(lock_exclusive(path).await.map_err(|e| StoreError::Open {
                            url: url.to_string(),
                            source: sqlx::Error::Io(e),
                        })?)
                    }
                    None => None,
                };
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?
            }
            Dialect::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Store { pool, dialect })
    }

    /// The SQL dialect of this store.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// `sql` for this store's dialect.
    fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        self.dialect.sql(sql)
    }

    /// Is the database answering?
    pub async fn ping(&self) -> Result<()> {
        sqlx::query(&self.sql("SELECT 1"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every incident not yet resolved.
    pub async fn open_incidents(&self) -> Result<Vec<Incident>> {
        let rows = sqlx::query(
            &self.sql("SELECT * FROM incidents WHERE status <> 'resolved' ORDER BY id DESC"),
        )
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
        let rows = sqlx::query(&self.sql(sql))
            .bind(filter.before_id.unwrap_or(i64::MAX))
            .bind(filter.limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(incident_from_row).collect()
    }

    /// One incident with its timeline (oldest event first).
    pub async fn incident(&self, id: i64) -> Result<Option<(Incident, Vec<TimelineEvent>)>> {
        let Some(row) = sqlx::query(&self.sql("SELECT * FROM incidents WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let incident = incident_from_row(&row)?;
        let events = sqlx::query(&self.sql(
            "SELECT at, type, message, data FROM timeline_events WHERE incident_id = ? ORDER BY id",
        ))
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
                    &self.sql("INSERT INTO incidents (key, kind, severity, status, nodes, summary, evidence, \
                     opened_at, resolved_at, updated_at, ack_due_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?) RETURNING id"),
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
                .bind(ms + target_ms(finding.severity))
                .fetch_one(&mut *tx)
                .await?
                .try_get("id")?;
                insert_event(self.dialect, &mut tx, id, event).await?;
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
                let done = sqlx::query(&self.sql(
                    "UPDATE incidents SET severity = ?, nodes = ?, summary = ?, evidence = ?, \
                     updated_at = ?, ack_due_at = CASE WHEN acked_at IS NULL \
                     THEN opened_at + ? ELSE ack_due_at END WHERE id = ?",
                ))
                .bind(severity.as_str())
                .bind(serde_json::to_string(nodes).expect("names serialize"))
                .bind(summary)
                .bind(evidence.to_string())
                .bind(at)
                .bind(target_ms(*severity))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NoSuchIncident(*id));
                }
                for e in events {
                    insert_event(self.dialect, &mut tx, *id, e).await?;
                }
                *id
            }
            Change::Resolve { id, at, event } => {
                let ms = at.as_millisecond();
                let done = sqlx::query(&self.sql(
                    "UPDATE incidents SET status = 'resolved', resolved_at = ?, updated_at = ? \
                     WHERE id = ? AND status <> 'resolved'",
                ))
                .bind(ms)
                .bind(ms)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NoSuchIncident(*id));
                }
                insert_event(self.dialect, &mut tx, *id, event).await?;
                *id
            }
        };
        let row = sqlx::query(&self.sql("SELECT * FROM incidents WHERE id = ?"))
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
        let sql = match self.dialect {
            Dialect::Sqlite => {
                "INSERT INTO node_status (name, view, height, height_since, updated_at) \
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
                        json_extract(value, '$[2]'), json_extract(value, '$[3]'), ? \
                 FROM json_each(?) WHERE true \
                 ON CONFLICT(name) DO UPDATE SET view = excluded.view, \
                 height = excluded.height, height_since = excluded.height_since, \
                 updated_at = excluded.updated_at"
            }
            Dialect::Postgres => {
                "INSERT INTO node_status (name, view, height, height_since, updated_at) \
                 SELECT r->>0, r->>1, (r->>2)::bigint, (r->>3)::bigint, ? \
                 FROM jsonb_array_elements(CAST(? AS jsonb)) AS r \
                 ON CONFLICT(name) DO UPDATE SET view = excluded.view, \
                 height = excluded.height, height_since = excluded.height_since, \
                 updated_at = excluded.updated_at"
            }
        };
        sqlx::query(&self.sql(sql))
            .bind(now.as_millisecond())
            .bind(rows)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forget nodes that are no longer configured (their old views would mislead).
    pub async fn retain_nodes(&self, names: &[String]) -> Result<()> {
        let keep = serde_json::to_string(names).expect("names serialize");
        let sql = match self.dialect {
            Dialect::Sqlite => {
                "DELETE FROM node_status WHERE name NOT IN (SELECT value FROM json_each(?))"
            }
            Dialect::Postgres => {
                "DELETE FROM node_status WHERE name NOT IN \
                 (SELECT jsonb_array_elements_text(CAST(? AS jsonb)))"
            }
        };
        sqlx::query(&self.sql(sql))
            .bind(keep)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The latest view of each node, by name.
    pub async fn nodes(&self) -> Result<Vec<NodeView>> {
        sqlx::query(&self.sql("SELECT view FROM node_status ORDER BY name"))
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
        sqlx::query(&self.sql(
            "SELECT name, height, height_since FROM node_status \
             WHERE height IS NOT NULL AND height_since IS NOT NULL",
        ))
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

    /// Acknowledge an open incident (who and when, with whether it was within its response
    /// target). Acknowledging twice changes nothing and says so.
    pub async fn acknowledge(&self, id: i64, actor: &Actor, at: Timestamp) -> Result<Ack> {
        let mut tx = self.pool.begin().await?;
        let ms = at.as_millisecond();
        let done = sqlx::query(&self.sql(
            "UPDATE incidents SET acked_at = ?, acked_by = ?, updated_at = ? \
             WHERE id = ? AND acked_at IS NULL AND status <> 'resolved'",
        ))
        .bind(ms)
        .bind(&actor.who)
        .bind(ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&self.sql("SELECT * FROM incidents WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NoSuchIncident(id))?;
        let incident = incident_from_row(&row)?;
        if done.rows_affected() == 0 {
            return Ok(if incident.acked_at.is_some() {
                Ack::Already(incident)
            } else {
                Ack::Resolved(incident)
            });
        }
        let event = acknowledged_event(&incident, actor, at);
        insert_event(self.dialect, &mut tx, id, &event).await?;
        tx.commit().await?;
        Ok(Ack::Done(incident))
    }

    /// Add `event` (a person's note) to an incident's timeline, resolved or not.
    pub async fn add_event(&self, id: i64, event: &TimelineEvent) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query(&self.sql("SELECT id FROM incidents WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::NoSuchIncident(id));
        }
        insert_event(self.dialect, &mut tx, id, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record, once each, the open incidents nobody acknowledged by their response target
    /// (`now` past `ack_due_at`): a timeline event and `ack_breached_at`, in one transaction
    /// guarded so that a second writer (or a second call) records nothing. Returns the
    /// incidents recorded by this call.
    pub async fn record_breaches(&self, now: Timestamp) -> Result<Vec<Incident>> {
        let ms = now.as_millisecond();
        let due = sqlx::query(&self.sql(
            "SELECT * FROM incidents WHERE status <> 'resolved' AND acked_at IS NULL \
             AND ack_breached_at IS NULL AND ack_due_at <= ? ORDER BY id",
        ))
        .bind(ms)
        .fetch_all(&self.pool)
        .await?;
        let mut recorded = Vec::new();
        for row in &due {
            let incident = incident_from_row(row)?;
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(&self.sql(
                "UPDATE incidents SET ack_breached_at = ?, updated_at = ? \
                 WHERE id = ? AND ack_breached_at IS NULL AND acked_at IS NULL",
            ))
            .bind(ms)
            .bind(ms)
            .bind(incident.id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                continue; // acknowledged or recorded meanwhile
            }
            let event = breach_event(&incident, now);
            insert_event(self.dialect, &mut tx, incident.id, &event).await?;
            tx.commit().await?;
            recorded.push(incident);
        }
        Ok(recorded)
    }

    /// Close the pool (flushes the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn insert_event(
    dialect: Dialect,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    incident_id: i64,
    e: &TimelineEvent,
) -> Result<()> {
    sqlx::query(&dialect.sql(
        "INSERT INTO timeline_events (incident_id, at, type, message, data) VALUES (?, ?, ?, ?, ?)",
    ))
    .bind(incident_id)
    .bind(e.at.as_millisecond())
    .bind(&e.event_type)
    .bind(&e.message)
    .bind(e.data.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The severity's response target in ms.
fn target_ms(severity: Severity) -> i64 {
    severity.response_target().as_millis() as i64
}

fn ts(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("time {ms}: {e}")))
}

fn json(text: String) -> Result<serde_json::Value> {
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("json {text:?}: {e}")))
}

fn incident_from_row(r: &AnyRow) -> Result<Incident> {
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
        ack_due_at: opt_ts(r, "ack_due_at")?,
        acked_at: opt_ts(r, "acked_at")?,
        acked_by: r.try_get("acked_by")?,
        ack_breached_at: opt_ts(r, "ack_breached_at")?,
    })
}

fn opt_ts(r: &AnyRow, column: &str) -> Result<Option<Timestamp>> {
    r.try_get::<Option<i64>, _>(column)?.map(ts).transpose()
}

/// The file of an `sqlite:` URL (`None` for an in-memory store).
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    if url.contains(":memory:") {
        return None;
    }
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty()).then(|| std::path::PathBuf::from(path))
}

/// An exclusive advisory lock (`flock`) on `path`, held until the file is dropped. SQLite
/// locks with `fcntl`, which this does not touch.
async fn lock_exclusive(path: std::path::PathBuf) -> std::io::Result<std::fs::File> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// `url` with any password replaced, for messages.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) => {
                let user = user.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:<redacted>@{host}")
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}
