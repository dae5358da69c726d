//! Durable storage of incidents, their timelines and the latest view of each node.
//!
//! SQLite is the embedded default; PostgreSQL (`postgres://...`) is for several instances.
//! Both have the same schema, each with its own embedded migrations (`migrations/sqlite`,
//! `migrations/postgres`), behind one sqlx `Any` pool: every query is written once with `?`
//! placeholders (numbered for PostgreSQL by [`Dialect::sql`]), and the two statements where
//! the dialects differ (JSON arrays) are written twice. Every incident change is written
//! together with its timeline events in one transaction, so a crash at any point leaves
//! either both or neither. The database enforces one open incident per cause.
//!
//! Concurrency: every incident carries a `version`; a write computed from an older version
//! is refused ([`StoreError::Conflict`]), so the engine, people and other instances never
//! overwrite each other and a deadline fires once. With several instances, one leader holds
//! a lease ([`Store::try_lead`]); its handle is [`Store::fenced`] with the lease's epoch, and
//! each of its writes checks that epoch inside its own transaction (PostgreSQL: holding a
//! share lock on the lease row until commit), so a leader that lost its lease while frozen
//! cannot write anything when it runs again.

use std::borrow::Cow;
use std::time::Duration;

use jiff::Timestamp;
use neo_ir_core::fleet::NodeView;
use neo_ir_core::incident::{
    Actor, Change, Incident, IncidentKind, Mutation, Severity, Status, TimelineEvent,
};
use neo_ir_core::notify::{MessageKind, Notification};
use neo_ir_core::oncall::Silence;
use neo_ir_core::respond::Refusal;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

mod drills;
mod kpi;
mod reviews;
mod runs;

pub use drills::{DrillStatus, NewDrill, StoredDrill, SIMULATED};
pub use neo_ir_core::drill::mark::ActiveDrill;
pub use reviews::{ActionItemUpdate, NewActionItem, StoredReview, TrackedItem};
pub use runs::{
    Attachment, ChecklistMark, NewRun, RunFilter, RunRefusal, INTERRUPTED_SUMMARY,
    MAX_ATTACHMENT_BYTES,
};

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
    #[error("incident {0} changed meanwhile: the write was computed from an older version")]
    Conflict(i64),
    #[error("silence {0} does not exist or has ended")]
    NoSuchSilence(i64),
    #[error(
        "this instance no longer holds the leader's lease (epoch {epoch}): another instance leads"
    )]
    LostLease { epoch: i64 },
    #[error("run {0} does not exist")]
    NoSuchRun(i64),
    #[error("run {id} is {status}, not running: only a running run can finish")]
    RunNotRunning { id: i64, status: &'static str },
    #[error("a run cannot be {what} as {status}: expected {allowed}")]
    RunStatusNotAllowed {
        what: &'static str,
        status: &'static str,
        allowed: &'static str,
    },
    #[error("{key:?} is not an item of the {kind} checklist: expected one of {known}")]
    UnknownChecklistItem {
        key: String,
        kind: &'static str,
        known: String,
    },
    #[error("attachment of {bytes} bytes refused: at most {max} bytes (16 MiB)")]
    AttachmentTooLarge { bytes: usize, max: usize },
    #[error("attachment refused: {0}")]
    InvalidAttachment(String),
    #[error("run {run} belongs to another incident than {incident}")]
    RunOfAnotherIncident { run: i64, incident: i64 },
    #[error("action item {0} does not exist")]
    NoSuchActionItem(i64),
    #[error("drill {0} does not exist")]
    NoSuchDrill(i64),
    #[error("drill {id} is {status}: only a running drill ends")]
    DrillEnded { id: i64, status: &'static str },
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

/// The leader's lease as granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    /// Grows at every change of holder (and when a holder comes back after expiry).
    pub epoch: i64,
    pub expires_at: Timestamp,
}

/// What a leader's writes are fenced with: they land only while `holder` still holds the
/// lease at `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub holder: String,
    pub epoch: i64,
    /// The lease's length: a transaction left idle this long (its process frozen) is ended
    /// by PostgreSQL, so a frozen leader cannot hold the lease row locked.
    pub lease: Duration,
}

/// The audit record of a person's mutation (written with it, in its transaction).
#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    pub actor: Actor,
    /// `acknowledge`, `transition`, `silence.create`, ...
    pub action: String,
    pub detail: serde_json::Value,
}

impl Audit {
    pub fn new(actor: &Actor, action: &str, detail: serde_json::Value) -> Self {
        Self {
            actor: actor.clone(),
            action: action.to_string(),
            detail,
        }
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub who: String,
    pub from: String,
    pub action: String,
    pub incident_id: Option<i64>,
    pub detail: serde_json::Value,
}

/// A silence to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSilence {
    pub node: Option<String>,
    pub kind: Option<IncidentKind>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub reason: String,
}

/// One message of the outbox.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub incident_id: i64,
    pub event_id: i64,
    pub channel: String,
    pub kind: MessageKind,
    pub idempotency_key: String,
    pub notification: Notification,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// The message this one stands in for, on a fallback channel.
    pub fallback_of: Option<i64>,
    /// Which of the route's fallback channels comes next if this one gives up.
    pub fallback_index: u32,
}

/// How many times a person's mutation is recomputed when the incident changed meanwhile.
const MUTATE_ATTEMPTS: usize = 5;

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
    /// Set on the leader's handle: every engine write checks it.
    fence: Option<Fence>,
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
        // Two processes opening one new SQLite file (the watcher and a CLI command) would
        // both find a migration missing and both apply it: creating the file, switching it
        // to WAL and migrating happen under an exclusive lock on its directory.
        let creating = match sqlite_path(url) {
            Some(path) if dialect == Dialect::Sqlite => {
                Some(lock_directory(path).await.map_err(|e| StoreError::Open {
                    url: url.to_string(),
                    source: sqlx::Error::Io(e),
                })?)
            }
            _ => None,
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
            Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            // PostgreSQL's migrator takes an advisory lock itself
            Dialect::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        drop(creating);
        Ok(Store {
            pool,
            dialect,
            fence: None,
        })
    }

    /// A handle whose engine writes (`apply`, `save_nodes`, `retain_nodes`) land only while
    /// `fence` still holds the leader's lease.
    pub fn fenced(&self, fence: Fence) -> Store {
        Store {
            fence: Some(fence),
            ..self.clone()
        }
    }

    /// Take or renew the leader's lease for `holder` until `now + lease`. `None`: another
    /// holder's lease has not expired. The epoch stays while the same holder renews in
    /// time, and grows at every takeover (and when a holder comes back after its expiry).
    pub async fn try_lead(
        &self,
        holder: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<Lease>> {
        let now_ms = now.as_millisecond();
        let expires = neo_ir_core::oncall::plus(now, lease);
        let row = sqlx::query(&self.sql(
            "INSERT INTO leases (name, holder, epoch, expires_at) VALUES ('leader', ?, 1, ?) \
             ON CONFLICT (name) DO UPDATE SET \
             epoch = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > ? \
                     THEN leases.epoch ELSE leases.epoch + 1 END, \
             holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= ? \
             RETURNING epoch",
        ))
        .bind(holder)
        .bind(expires.as_millisecond())
        .bind(now_ms)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(Lease {
                holder: holder.to_string(),
                epoch: r.try_get("epoch")?,
                expires_at: expires,
            }),
            None => None,
        })
    }

    /// The lease as stored (who leads, until when).
    pub async fn lease(&self) -> Result<Option<Lease>> {
        let row = sqlx::query(
            &self.sql("SELECT holder, epoch, expires_at FROM leases WHERE name = 'leader'"),
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Lease {
                holder: r.try_get("holder")?,
                epoch: r.try_get("epoch")?,
                expires_at: ts(r.try_get("expires_at")?)?,
            })
        })
        .transpose()
    }

    /// Give the lease up at once (a clean shutdown), so a follower need not wait for it to
    /// expire.
    pub async fn release(&self, holder: &str) -> Result<()> {
        sqlx::query(
            &self.sql("UPDATE leases SET expires_at = 0 WHERE name = 'leader' AND holder = ?"),
        )
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Begin a transaction; on the leader's handle, check the fence first (and keep the
    /// lease row share-locked until commit on PostgreSQL, so no takeover can land between
    /// the check and the write).
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.pool.begin().await?;
        if let Some(f) = &self.fence {
            let held = match self.dialect {
                Dialect::Postgres => {
                    sqlx::query(
                        "SELECT set_config('idle_in_transaction_session_timeout', $1, true)",
                    )
                    .bind(f.lease.as_millis().max(1).to_string())
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "SELECT epoch FROM leases WHERE name = 'leader' AND holder = $1 \
                         AND epoch = $2 FOR SHARE",
                    )
                    .bind(&f.holder)
                    .bind(f.epoch)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some()
                }
                // SQLite: the check is a write, so the transaction takes the write lock at
                // its first statement (waiting out other writers with the busy timeout). A
                // read first would make the later write fail at once (SQLITE_BUSY_SNAPSHOT)
                // whenever another connection wrote in between: a message sent and then
                // not marked sent, sent again (found by the SIGKILL notification test).
                Dialect::Sqlite => {
                    sqlx::query(
                        "UPDATE leases SET epoch = epoch WHERE name = 'leader' AND holder = ? \
                         AND epoch = ?",
                    )
                    .bind(&f.holder)
                    .bind(f.epoch)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1
                }
            };
            if !held {
                return Err(StoreError::LostLease { epoch: f.epoch });
            }
        }
        Ok(tx)
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
            &self.sql("SELECT * FROM incidents WHERE resolved_at IS NULL ORDER BY id DESC"),
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
            "SELECT * FROM incidents WHERE id < ? AND resolved_at IS NULL ORDER BY id DESC LIMIT ?"
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

    /// Apply one change of the incident engine with its timeline events, atomically (fenced
    /// on the leader's handle). Returns the incident as it is afterwards. An update computed
    /// from an older version is refused with [`StoreError::Conflict`].
    pub async fn apply(&self, change: &Change) -> Result<Incident> {
        let mut tx = self.begin().await?;
        let incident = match change {
            Change::Open { incident, events } => {
                insert_incident(self.dialect, &mut tx, incident, events).await?
            }
            Change::Update(m) => write_mutation(self.dialect, &mut tx, m).await?,
        };
        tx.commit().await?;
        Ok(incident)
    }

    /// Open a declared incident, with its audit record.
    pub async fn declare(&self, change: &Change, audit: &Audit) -> Result<Incident> {
        let Change::Open { incident, events } = change else {
            return Err(StoreError::Corrupt(
                "a declaration opens an incident".into(),
            ));
        };
        let mut tx = self.pool.begin().await?;
        let stored = insert_incident(self.dialect, &mut tx, incident, events).await?;
        insert_audit(self.dialect, &mut tx, audit, Some(stored.id)).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// A person's action on incident `id`: `f` computes the next version from the stored
    /// one (or refuses), and it is written with `audit` in one transaction. When the
    /// incident changed meanwhile, `f` runs again on the newer version.
    pub async fn mutate<F>(
        &self,
        id: i64,
        audit: &Audit,
        f: F,
    ) -> Result<std::result::Result<Mutation, Refusal>>
    where
        F: Fn(&Incident) -> std::result::Result<Mutation, Refusal>,
    {
        for _ in 0..MUTATE_ATTEMPTS {
            let current = self.incident_row(id).await?;
            let m = match f(&current) {
                Ok(m) => m,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let mut tx = self.pool.begin().await?;
            match write_mutation(self.dialect, &mut tx, &m).await {
                Ok(stored) => {
                    insert_audit(self.dialect, &mut tx, audit, Some(id)).await?;
                    tx.commit().await?;
                    return Ok(Ok(Mutation {
                        incident: stored,
                        events: m.events,
                    }));
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(id))
    }

    async fn incident_row(&self, id: i64) -> Result<Incident> {
        let row = sqlx::query(&self.sql("SELECT * FROM incidents WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NoSuchIncident(id))?;
        incident_from_row(&row)
    }

    /// Create a silence (with its audit record).
    pub async fn add_silence(
        &self,
        new: &NewSilence,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Silence> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(&self.sql(
            "INSERT INTO silences (node, kind, starts_at, ends_at, reason, created_by, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(new.node.as_deref())
        .bind(new.kind.map(|k| k.as_str()))
        .bind(new.starts_at.as_millisecond())
        .bind(new.ends_at.as_millisecond())
        .bind(&new.reason)
        .bind(&actor.who)
        .bind(now.as_millisecond())
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let silence = Silence {
            id,
            node: new.node.clone(),
            kind: new.kind,
            starts_at: new.starts_at,
            ends_at: new.ends_at,
            reason: new.reason.clone(),
            created_by: actor.who.clone(),
            created_at: Some(now),
        };
        let detail = serde_json::to_value(&silence).expect("a silence serializes");
        insert_audit(
            self.dialect,
            &mut tx,
            &Audit::new(actor, "silence.create", detail),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(silence)
    }

    /// Silences not yet ended at `now` (in force or starting later), or every silence.
    pub async fn silences(&self, now: Option<Timestamp>) -> Result<Vec<Silence>> {
        let rows =
            sqlx::query(&self.sql("SELECT * FROM silences WHERE ends_at > ? ORDER BY id DESC"))
                .bind(now.map_or(i64::MIN, |t| t.as_millisecond()))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(silence_from_row).collect()
    }

    /// End a silence now (with its audit record).
    pub async fn expire_silence(&self, id: i64, actor: &Actor, now: Timestamp) -> Result<Silence> {
        let mut tx = self.pool.begin().await?;
        let ms = now.as_millisecond();
        let done =
            sqlx::query(&self.sql("UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?"))
                .bind(ms)
                .bind(id)
                .bind(ms)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSuchSilence(id));
        }
        let row = sqlx::query(&self.sql("SELECT * FROM silences WHERE id = ?"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let silence = silence_from_row(&row)?;
        insert_audit(
            self.dialect,
            &mut tx,
            &Audit::new(actor, "silence.expire", serde_json::json!({"silence": id})),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(silence)
    }

    /// The audit log, newest first.
    pub async fn audit_log(&self, limit: u32, before_id: Option<i64>) -> Result<Vec<AuditEntry>> {
        sqlx::query(&self.sql("SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?"))
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: ts(r.try_get("at")?)?,
                    who: r.try_get("who")?,
                    from: r.try_get("origin")?,
                    action: r.try_get("action")?,
                    incident_id: r.try_get("incident_id")?,
                    detail: json(r.try_get("detail")?)?,
                })
            })
            .collect()
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
        let mut tx = self.begin().await?;
        sqlx::query(&self.sql(sql))
            .bind(now.as_millisecond())
            .bind(rows)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
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
        let mut tx = self.begin().await?;
        sqlx::query(&self.sql(sql))
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
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

    /// Route the timeline events not yet routed (oldest first, at most `limit`): `route`
    /// says which messages each calls for, and they enter the outbox in the transaction
    /// that marks the events routed, so each event is routed once whatever crashes. Fenced
    /// on the leader's handle. Returns the messages queued.
    pub async fn route_pending<F>(&self, limit: u32, now: Timestamp, route: F) -> Result<usize>
    where
        F: Fn(&Incident, &TimelineEvent, i64) -> Vec<Notification>,
    {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&self.sql(
            "SELECT id, incident_id, at, type, message, data FROM timeline_events \
             WHERE routed = 0 ORDER BY id LIMIT ?",
        ))
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut incidents: std::collections::HashMap<i64, Incident> = Default::default();
        let mut queued = 0;
        let mut last = 0i64;
        for r in &rows {
            let event_id: i64 = r.try_get("id")?;
            let incident_id: i64 = r.try_get("incident_id")?;
            last = last.max(event_id);
            let event = TimelineEvent {
                at: ts(r.try_get("at")?)?,
                event_type: r.try_get("type")?,
                message: r.try_get("message")?,
                data: json(r.try_get::<String, _>("data")?)?,
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = incidents.entry(incident_id) {
                let row = sqlx::query(&self.sql("SELECT * FROM incidents WHERE id = ?"))
                    .bind(incident_id)
                    .fetch_one(&mut *tx)
                    .await?;
                slot.insert(incident_from_row(&row)?);
            }
            for n in route(&incidents[&incident_id], &event, event_id) {
                let done = sqlx::query(&self.sql(
                    "INSERT INTO outbox (incident_id, event_id, channel, kind, idempotency_key, \
                     notification, status, attempts, next_attempt_at, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?) \
                     ON CONFLICT (idempotency_key) DO NOTHING",
                ))
                .bind(incident_id)
                .bind(event_id)
                .bind(&n.channel)
                .bind(n.kind.as_str())
                .bind(&n.idempotency_key)
                .bind(serde_json::to_string(&n).expect("a notification serializes"))
                .bind(now.as_millisecond())
                .bind(now.as_millisecond())
                .execute(&mut *tx)
                .await?;
                queued += done.rows_affected() as usize;
            }
        }
        sqlx::query(
            &self.sql("UPDATE timeline_events SET routed = 1 WHERE routed = 0 AND id <= ?"),
        )
        .bind(last)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(queued)
    }

    /// Messages still to send, oldest first (at most `limit`).
    pub async fn pending_messages(&self, limit: u32) -> Result<Vec<OutboxMessage>> {
        sqlx::query(&self.sql("SELECT * FROM outbox WHERE status = 'pending' ORDER BY id LIMIT ?"))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(message_from_row)
            .collect()
    }

    /// Every message of one incident, in order (the API and tests).
    pub async fn messages(&self, incident_id: i64) -> Result<Vec<OutboxMessage>> {
        sqlx::query(&self.sql("SELECT * FROM outbox WHERE incident_id = ? ORDER BY id"))
            .bind(incident_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(message_from_row)
            .collect()
    }

    /// A message was delivered (fenced).
    pub async fn message_sent(&self, id: i64, attempts: u32, at: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(&self.sql(
            "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = ?, last_error = NULL \
             WHERE id = ? AND status = 'pending'",
        ))
        .bind(at.as_millisecond())
        .bind(attempts as i64)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A send failed in a way worth retrying: try again at `next` (fenced).
    pub async fn message_retry(
        &self,
        id: i64,
        attempts: u32,
        next: Timestamp,
        error: &str,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(&self.sql(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? \
             WHERE id = ? AND status = 'pending'",
        ))
        .bind(attempts as i64)
        .bind(next.as_millisecond())
        .bind(error)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A message gave up on its channel (fenced): marked failed, the reason on the
    /// incident's timeline (`event`, internal), and the message queued on the fallback
    /// channel when there is one, all in one transaction.
    pub async fn message_failed(
        &self,
        m: &OutboxMessage,
        attempts: u32,
        error: &str,
        event: &TimelineEvent,
        fallback: Option<&Notification>,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(&self.sql(
            "UPDATE outbox SET status = 'failed', attempts = ?, last_error = ? \
             WHERE id = ? AND status = 'pending'",
        ))
        .bind(attempts as i64)
        .bind(error)
        .bind(m.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(());
        }
        insert_event_routed(self.dialect, &mut tx, m.incident_id, event, true).await?;
        if let Some(n) = fallback {
            sqlx::query(&self.sql(
                "INSERT INTO outbox (incident_id, event_id, channel, kind, idempotency_key, \
                 notification, status, attempts, next_attempt_at, created_at, fallback_of, \
                 fallback_index) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?) \
                 ON CONFLICT (idempotency_key) DO NOTHING",
            ))
            .bind(m.incident_id)
            .bind(m.event_id)
            .bind(&n.channel)
            .bind(n.kind.as_str())
            .bind(&n.idempotency_key)
            .bind(serde_json::to_string(n).expect("a notification serializes"))
            .bind(now.as_millisecond())
            .bind(now.as_millisecond())
            .bind(m.id)
            .bind(m.fallback_index as i64 + 1)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
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
    insert_event_routed(dialect, tx, incident_id, e, false).await
}

/// Insert a timeline event; `routed = false` leaves it for the router (it may call for a
/// message), true marks it internal to the outbox itself.
async fn insert_event_routed(
    dialect: Dialect,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    incident_id: i64,
    e: &TimelineEvent,
    routed: bool,
) -> Result<()> {
    sqlx::query(&dialect.sql(
        "INSERT INTO timeline_events (incident_id, at, type, message, data, routed) \
         VALUES (?, ?, ?, ?, ?, ?)",
    ))
    .bind(incident_id)
    .bind(e.at.as_millisecond())
    .bind(&e.event_type)
    .bind(&e.message)
    .bind(e.data.to_string())
    .bind(i32::from(routed))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The columns every write of an incident sets, in the order [`bind_incident`] binds them.
const INCIDENT_COLUMNS: [&str; 19] = [
    "severity",
    "status",
    "nodes",
    "summary",
    "evidence",
    "resolved_at",
    "updated_at",
    "ack_due_at",
    "acked_at",
    "acked_by",
    "ack_breached_at",
    "detected_severity",
    "cleared_at",
    "roles",
    "escalation_policy",
    "escalation_step",
    "escalation_due_at",
    "last_update_at",
    "update_due_at",
];

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Bind the values of [`INCIDENT_COLUMNS`] of `i`.
fn bind_incident<'q>(q: AnyQuery<'q>, i: &'q Incident) -> AnyQuery<'q> {
    q.bind(i.severity.as_str())
        .bind(i.status.as_str())
        .bind(serde_json::to_string(&i.nodes).expect("names serialize"))
        .bind(&i.summary)
        .bind(i.evidence.to_string())
        .bind(ms(i.resolved_at))
        .bind(i.updated_at.as_millisecond())
        .bind(ms(i.ack_due_at))
        .bind(ms(i.acked_at))
        .bind(i.acked_by.as_deref())
        .bind(ms(i.ack_breached_at))
        .bind(i.detected_severity.as_str())
        .bind(ms(i.cleared_at))
        .bind(serde_json::to_string(&i.roles).expect("roles serialize"))
        .bind(i.escalation_policy.as_deref())
        .bind(i.escalation_step as i64)
        .bind(ms(i.escalation_due_at))
        .bind(ms(i.last_update_at))
        .bind(ms(i.update_due_at))
}

static INSERT_INCIDENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO incidents (key, kind, opened_at, version, {}) VALUES (?, ?, ?, 0, {}) \
         RETURNING id",
        INCIDENT_COLUMNS.join(", "),
        vec!["?"; INCIDENT_COLUMNS.len()].join(", ")
    )
});

static UPDATE_INCIDENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE incidents SET {}, version = version + 1 WHERE id = ? AND version = ?",
        INCIDENT_COLUMNS.map(|c| format!("{c} = ?")).join(", ")
    )
});

/// Insert a new incident with its events; returns it with its id.
async fn insert_incident(
    dialect: Dialect,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    i: &Incident,
    events: &[TimelineEvent],
) -> Result<Incident> {
    let sql = dialect.sql(&INSERT_INCIDENT);
    let q = sqlx::query(&sql)
        .bind(&i.key)
        .bind(i.kind.as_str())
        .bind(i.opened_at.as_millisecond());
    let id: i64 = bind_incident(q, i)
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
    for e in events {
        insert_event(dialect, tx, id, e).await?;
    }
    Ok(Incident {
        id,
        version: 0,
        ..i.clone()
    })
}

/// Write `m` if the stored incident is still at `m.incident.version` (bumping it), with its
/// events; returns the incident as stored.
async fn write_mutation(
    dialect: Dialect,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    m: &Mutation,
) -> Result<Incident> {
    let i = &m.incident;
    let sql = dialect.sql(&UPDATE_INCIDENT);
    let done = bind_incident(sqlx::query(&sql), i)
        .bind(i.id)
        .bind(i.version)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        let exists = sqlx::query(&dialect.sql("SELECT id FROM incidents WHERE id = ?"))
            .bind(i.id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
        return Err(if exists {
            StoreError::Conflict(i.id)
        } else {
            StoreError::NoSuchIncident(i.id)
        });
    }
    for e in &m.events {
        insert_event(dialect, tx, i.id, e).await?;
    }
    Ok(Incident {
        version: i.version + 1,
        ..i.clone()
    })
}

async fn insert_audit(
    dialect: Dialect,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    a: &Audit,
    incident_id: Option<i64>,
) -> Result<()> {
    sqlx::query(&dialect.sql(
        "INSERT INTO audit_log (at, who, origin, action, incident_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
    ))
    .bind(Timestamp::now().as_millisecond())
    .bind(&a.actor.who)
    .bind(&a.actor.from)
    .bind(&a.action)
    .bind(incident_id)
    .bind(a.detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.as_millisecond())
}

fn message_from_row(r: &AnyRow) -> Result<OutboxMessage> {
    let notification: Notification = serde_json::from_str(&r.try_get::<String, _>("notification")?)
        .map_err(|e| StoreError::Corrupt(format!("outbox notification: {e}")))?;
    Ok(OutboxMessage {
        id: r.try_get("id")?,
        incident_id: r.try_get("incident_id")?,
        event_id: r.try_get("event_id")?,
        channel: r.try_get("channel")?,
        kind: r
            .try_get::<String, _>("kind")?
            .parse()
            .map_err(StoreError::Corrupt)?,
        idempotency_key: r.try_get("idempotency_key")?,
        notification,
        status: r.try_get("status")?,
        attempts: r.try_get::<i64, _>("attempts")? as u32,
        next_attempt_at: ts(r.try_get("next_attempt_at")?)?,
        created_at: ts(r.try_get("created_at")?)?,
        sent_at: opt_ts(r, "sent_at")?,
        last_error: r.try_get("last_error")?,
        fallback_of: r.try_get("fallback_of")?,
        fallback_index: r.try_get::<i64, _>("fallback_index")? as u32,
    })
}

fn silence_from_row(r: &AnyRow) -> Result<Silence> {
    Ok(Silence {
        id: r.try_get("id")?,
        node: r.try_get("node")?,
        kind: r
            .try_get::<Option<String>, _>("kind")?
            .map(|k| k.parse())
            .transpose()
            .map_err(StoreError::Corrupt)?,
        starts_at: ts(r.try_get("starts_at")?)?,
        ends_at: ts(r.try_get("ends_at")?)?,
        reason: r.try_get("reason")?,
        created_by: r.try_get("created_by")?,
        created_at: opt_ts(r, "created_at")?,
    })
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
        version: r.try_get("version")?,
        detected_severity: r
            .try_get::<Option<String>, _>("detected_severity")?
            .map(|s| s.parse::<Severity>())
            .transpose()
            .map_err(|e| corrupt("detected_severity", e))?
            .unwrap_or(Severity::P4),
        cleared_at: opt_ts(r, "cleared_at")?,
        roles: serde_json::from_str(&r.try_get::<String, _>("roles")?)
            .map_err(|e| corrupt("roles", e.to_string()))?,
        escalation_policy: r.try_get("escalation_policy")?,
        escalation_step: r.try_get::<i64, _>("escalation_step")? as u32,
        escalation_due_at: opt_ts(r, "escalation_due_at")?,
        last_update_at: opt_ts(r, "last_update_at")?,
        update_due_at: opt_ts(r, "update_due_at")?,
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

/// An exclusive advisory lock (`flock`) on the directory of the database file `path`, held
/// until the returned handle is dropped. Never on the database file itself: SQLite locks
/// it with POSIX `fcntl` locks, and closing any other descriptor of that file drops every
/// such lock of the process (including the WAL's), which let another process recover the
/// WAL under a live connection: "disk I/O error" (found by the SIGKILL crash test).
async fn lock_directory(path: std::path::PathBuf) -> std::io::Result<std::fs::File> {
    tokio::task::spawn_blocking(move || {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let file = std::fs::File::open(&dir)?;
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
