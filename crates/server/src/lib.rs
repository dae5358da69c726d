//! neo-ir's HTTP API. Everything it serves comes from the store, so any instance sharing the
//! store serves the same answers.
//!
//! Reads:
//! - `GET /api/v1/incidents` (`?status=open|all&limit=&cursor=`), `GET /api/v1/incidents/{id}`
//!   (with its timeline), `GET /api/v1/nodes`, `GET /api/v1/silences` (`?all=true`: ended
//!   ones too), `GET /api/v1/audit` (`?limit=&cursor=`: who did what, newest first).
//! - `/healthz` / `/readyz` (always open).
//! - The public status page: `GET /status` (HTML, no JavaScript) and `GET /api/v1/status`
//!   (the same as JSON). Always open, even with `server.protect_reads`: they show only public
//!   fields (see [`status`]).
//!
//! People's actions (each needs a `write` token, is written with its audit record):
//! - `POST /api/v1/incidents` declares an incident (201 with it);
//! - `POST /api/v1/incidents/{id}/ack` (200 `{"incident", "already"}`);
//! - `POST /api/v1/incidents/{id}/notes` `{"text", "kind": "note"|"action", "runbook_run"}`
//!   (201 with the event);
//! - `POST /api/v1/incidents/{id}/severity` `{"severity", "reason"}`,
//!   `POST /api/v1/incidents/{id}/roles` `{"role", "holder"}` (`null` releases),
//!   `POST /api/v1/incidents/{id}/transition` `{"to", "reason"}`: 200
//!   `{"incident", "events", "unchanged"}` (`"unchanged": true` with a `message` when it was
//!   already so: nothing is written);
//! - `POST /api/v1/silences` (201 with the silence), `DELETE /api/v1/silences/{id}` (ends it
//!   now; 200 with it).
//! - Runbook runs, approvals, the incident's checklist and attachments: see `runs.rs`.
//!
//! Tokens come from `[[server.tokens]]` and are compared in constant time; the audit record
//! and the timeline events name the token and the client address (`api 10.0.0.7:51234`).
//! Reads are open unless `server.protect_reads` (then any token works), except the audit
//! log, which always needs a token (it tells who did what from where). 401 without a valid
//! token, 403 for a read-only token on a mutation.
//!
//! Errors have the shape `{"error": {"code": "not_found", "message": "..."}}`: 400
//! `bad_request`, 401 `unauthorized`, 403 `forbidden`, 404 `not_found`, 409 `conflict` (not
//! possible in the incident's state, or it kept changing meanwhile), 503 `store_unavailable`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use jiff::Timestamp;
use neo_ir_core::config::Access;
use neo_ir_core::incident::{
    Actor, Incident, IncidentKind, Mutation, ResponseRole, Severity, Status, TimelineEvent,
};
use neo_ir_core::oncall::{self, ResponseConfig};
use neo_ir_core::respond::{self, Refusal};
use neo_ir_store::{Audit, ListFilter, NewSilence, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;

mod cache;
mod metrics;
mod review;
mod runs;
pub mod status;

/// Largest page of incidents (or audit entries) one request may ask for.
pub const MAX_LIMIT: u32 = 500;

/// One bearer token the API accepts.
#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub secret: String,
    pub access: Access,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("access", &self.access)
            .finish()
    }
}

/// Who may do what over the API.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub tokens: Vec<Token>,
    /// Reads need a token too.
    pub protect_reads: bool,
}

impl Auth {
    /// The name of the token in `headers` if it grants `needed`: 401 without a valid token,
    /// 403 when it is read-only and `needed` is write. Every token is compared, in constant
    /// time, whatever matched first.
    pub fn check(&self, headers: &HeaderMap, needed: Access) -> Result<String, ApiError> {
        use subtle::ConstantTimeEq;
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        let mut found: Option<&Token> = None;
        for t in &self.tokens {
            let same: bool = t.secret.as_bytes().ct_eq(given.as_bytes()).into();
            if same && !given.is_empty() {
                found = Some(t);
            }
        }
        match found {
            None => Err(ApiError::unauthorized(
                "a valid bearer token is needed (Authorization: Bearer ...)",
            )),
            Some(t) if needed == Access::Write && t.access == Access::Read => Err(
                ApiError::forbidden(format!("token {:?} is read-only", t.name)),
            ),
            Some(t) => Ok(t.name.clone()),
        }
    }
}

#[derive(Clone)]
struct AppState {
    store: Store,
    auth: Arc<Auth>,
    response: Arc<ResponseConfig>,
    /// The public status, computed at most every [`STATUS_TTL`].
    status: Arc<status::Cache>,
    /// Runs runbooks (`None` without a configuration: the run endpoints answer 503).
    runner: Option<Arc<neo_ir_runbook::runner::Runner>>,
}

/// How long the public status is served from its cache.
pub const STATUS_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl FromRef<AppState> for Store {
    fn from_ref(s: &AppState) -> Store {
        s.store.clone()
    }
}

/// Build the API router over a store: reads open, no mutations (no token configured), the
/// playbook's response configuration.
pub fn router(store: Store) -> Router {
    router_with(store, Auth::default(), ResponseConfig::default())
}

/// Build the API router over a store with its tokens and response configuration (the
/// escalation policies and update intervals people's actions compute deadlines with).
pub fn router_with(store: Store, auth: Auth, response: ResponseConfig) -> Router {
    router_full(store, auth, response, None)
}

/// [`router_with`] plus the runbook endpoints, which start, approve and execute runs with
/// `runner`.
pub fn router_full(
    store: Store,
    auth: Auth,
    response: ResponseConfig,
    runner: Option<Arc<neo_ir_runbook::runner::Runner>>,
) -> Router {
    let state = AppState {
        store,
        auth: Arc::new(auth),
        response: Arc::new(response),
        status: Arc::new(status::Cache::new(STATUS_TTL)),
        runner,
    };
    let api = Router::new()
        .route(
            "/api/v1/incidents",
            get(list_incidents).post(declare_incident),
        )
        .route("/api/v1/incidents/{id}", get(get_incident))
        .route("/api/v1/incidents/{id}/ack", post(acknowledge_incident))
        .route("/api/v1/incidents/{id}/notes", post(add_note))
        .route("/api/v1/incidents/{id}/severity", post(change_severity))
        .route("/api/v1/incidents/{id}/roles", post(set_role))
        .route("/api/v1/incidents/{id}/transition", post(transition))
        .route(
            "/api/v1/incidents/{id}/review",
            post(schedule_review)
                .get(review::get_review)
                .put(review::put_review),
        )
        .route(
            "/api/v1/incidents/{id}/review/items",
            post(review::add_item),
        )
        .route("/api/v1/review-items/{id}", patch(review::patch_item))
        .route("/api/v1/silences", get(list_silences).post(add_silence))
        .route("/api/v1/silences/{id}", delete(expire_silence))
        .route("/api/v1/audit", get(audit_log))
        .route("/api/v1/nodes", get(list_nodes))
        .route("/metrics", metrics::route())
        .route("/api/v1/runs", get(runs::list_runs).post(runs::start_run))
        .route("/api/v1/runs/{id}", get(runs::get_run))
        .route("/api/v1/runs/{id}/approve", post(runs::approve_run))
        .route("/api/v1/runs/{id}/decline", post(runs::decline_run))
        .route("/api/v1/incidents/{id}/runbook", get(runs::get_checklist))
        .route(
            "/api/v1/incidents/{id}/runbook/{key}",
            post(runs::mark_checklist),
        )
        .route(
            "/api/v1/incidents/{id}/attachments",
            get(runs::list_attachments),
        )
        .route("/api/v1/attachments/{id}", get(runs::get_attachment))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard_reads,
        ));
    // public: outside `guard_reads`, whatever `protect_reads` says
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status_page))
        .route("/api/v1/status", get(status_json))
        .merge(api)
        .fallback(not_found)
        .with_state(state)
}

/// Reads need a token only with `protect_reads`; mutations check their own (write) token,
/// the audit log its own (read) token.
async fn guard_reads(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if state.auth.protect_reads && req.method() == axum::http::Method::GET {
        state.auth.check(req.headers(), Access::Read)?;
    }
    Ok(next.run(req).await)
}

/// Serve the API on `listener` until `shutdown` completes: reads open, no mutations.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(
        listener,
        store,
        Auth::default(),
        ResponseConfig::default(),
        shutdown,
    )
    .await
}

/// Serve the API with its tokens and response configuration on `listener` until
/// `shutdown` completes.
pub async fn serve_with(
    listener: TcpListener,
    store: Store,
    auth: Auth,
    response: ResponseConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_full(listener, store, auth, response, None, shutdown).await
}

/// [`serve_with`] plus the runbook endpoints (see [`router_full`]).
pub async fn serve_full(
    listener: TcpListener,
    store: Store,
    auth: Auth,
    response: ResponseConfig,
    runner: Option<Arc<neo_ir_runbook::runner::Runner>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router_full(store, auth, response, runner)
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Bind `addr` (use port 0 in tests) and return the listener and the bound address.
pub async fn bind(addr: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

/// An API error with its HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchIncident(n) => {
                ApiError::not_found(format!("incident {n} does not exist"))
            }
            StoreError::NoSuchSilence(n) => {
                ApiError::not_found(format!("silence {n} does not exist or has ended"))
            }
            StoreError::Conflict(n) => ApiError::conflict(format!(
                "incident {n} kept changing while this was written: try again"
            )),
            e => {
                tracing::error!(error = %e, "store error while serving the API");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    e.to_string(),
                )
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Invalid(m) => ApiError::bad_request(m),
            // `Unchanged` is answered before it gets here; a conflict if it ever does
            Refusal::Conflict(m) | Refusal::Unchanged(m) => ApiError::conflict(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no such endpoint; see /api/v1/incidents, /api/v1/nodes, /api/v1/silences, \
         /api/v1/runs, /api/v1/audit, /api/v1/status, /status, /healthz",
    )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the store answers; says which instance leads (the lease's holder, which
/// names host and process) so an operator of several instances sees it at a glance.
async fn readyz(State(store): State<Store>) -> Response {
    match store.ping().await {
        Ok(()) => {
            let leader = match store.lease().await {
                Ok(Some(l)) => json!({
                    "holder": l.holder,
                    "epoch": l.epoch,
                    "expires_at": l.expires_at,
                }),
                _ => serde_json::Value::Null,
            };
            Json(json!({"status": "ready", "store": "ok", "leader": leader})).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "store": e.to_string()})),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// A page's size and cursor from the query: `limit` 1..=[`MAX_LIMIT`] (default 100), the
/// cursor a decimal id (only entries below it).
fn page(limit: Option<&str>, cursor: Option<&str>) -> Result<(u32, Option<i64>), ApiError> {
    let limit = match limit {
        None => 100,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit must be a number from 1 to {MAX_LIMIT}, got {s:?}"
                )))
            }
        },
    };
    let before_id = match cursor {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid cursor {c:?}")))?,
        ),
    };
    Ok((limit, before_id))
}

/// The cursor of the page after `items` (set whenever the page is full).
fn next_cursor<T>(items: &[T], limit: u32, id: impl Fn(&T) -> i64) -> Option<String> {
    (items.len() == limit as usize)
        .then(|| items.last().map(|i| id(i).to_string()))
        .flatten()
}

/// The incident list: `{"incidents": [...], "next_cursor": "12" | null}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct IncidentList {
    pub incidents: Vec<Incident>,
    pub next_cursor: Option<String>,
}

/// One incident with its timeline.
#[derive(Debug, Serialize, Deserialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    pub timeline: Vec<TimelineEvent>,
}

async fn list_incidents(
    State(store): State<Store>,
    Query(q): Query<ListQuery>,
) -> Result<Json<IncidentList>, ApiError> {
    let all = match q.status.as_deref() {
        None | Some("open") => false,
        Some("all") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status must be \"open\" or \"all\", got {other:?}"
            )))
        }
    };
    let (limit, before_id) = page(q.limit.as_deref(), q.cursor.as_deref())?;
    let incidents = store
        .list_incidents(ListFilter {
            all,
            limit,
            before_id,
        })
        .await?;
    let next_cursor = next_cursor(&incidents, limit, |i| i.id);
    Ok(Json(IncidentList {
        incidents,
        next_cursor,
    }))
}

async fn get_incident(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let n = incident_id(&id)?;
    let (incident, timeline) = stored_incident(&store, n).await?;
    Ok(Json(IncidentDetail { incident, timeline }))
}

/// Incident `n` with its timeline, or 404.
async fn stored_incident(
    store: &Store,
    n: i64,
) -> Result<(Incident, Vec<TimelineEvent>), ApiError> {
    store
        .incident(n)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("incident {n} does not exist")))
}

/// An incident id from the path; a non-numeric one does not exist.
fn incident_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("incident {id:?} does not exist")))
}

/// The person behind a mutation: the name of its `write` token, and the client address.
fn writer(auth: &Auth, parts: &axum::http::request::Parts) -> Result<Actor, ApiError> {
    let who = auth.check(&parts.headers, Access::Write)?;
    let from = match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => format!("api {addr}"),
        None => "api".to_string(),
    };
    Ok(Actor { who, from })
}

/// A mutation's JSON body (64 KiB at most); `what` names it in the error.
async fn json_body<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    what: &str,
) -> Result<T, ApiError> {
    json_body_within(body, what, 64 * 1024, "64 KiB at most").await
}

/// A JSON body of at most `limit` bytes (`limit_text` says so in the error).
async fn json_body_within<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    what: &str,
    limit: usize,
    limit_text: &str,
) -> Result<T, ApiError> {
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| ApiError::bad_request(format!("unreadable body ({limit_text}): {e}")))?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

/// A mutation's person (a `write` token, 401/403 first) and its JSON body.
async fn person_request<T: serde::de::DeserializeOwned>(
    auth: &Auth,
    req: Request,
    what: &str,
) -> Result<(Actor, T), ApiError> {
    let (parts, body) = req.into_parts();
    let actor = writer(auth, &parts)?;
    let body = json_body(body, what).await?;
    Ok((actor, body))
}

/// What a person's action on an incident came to.
enum Outcome {
    /// Written: the incident as stored and the events that record it.
    Done(Mutation),
    /// It was already so: nothing written; the incident as it is.
    Unchanged { incident: Incident, message: String },
}

impl Outcome {
    /// `{"incident", "events", "unchanged"}` (with `"message"` when unchanged).
    fn into_json(self) -> Json<serde_json::Value> {
        Json(match self {
            Outcome::Done(m) => {
                json!({"incident": m.incident, "events": m.events, "unchanged": false})
            }
            Outcome::Unchanged { incident, message } => json!({
                "incident": incident,
                "events": [],
                "unchanged": true,
                "message": message,
            }),
        })
    }
}

/// Run a person's action on incident `id` (from the path) with its audit record: `f`
/// computes the next version from the stored one, again if it changed meanwhile. A refusal
/// is 400 (invalid) or 409 (not possible now); "already so" is an [`Outcome::Unchanged`].
async fn act<F>(
    state: &AppState,
    id: &str,
    actor: &Actor,
    action: &str,
    detail: serde_json::Value,
    f: F,
) -> Result<Outcome, ApiError>
where
    F: Fn(&Incident, &Actor, Timestamp, &ResponseConfig) -> Result<Mutation, Refusal>,
{
    let n = incident_id(id)?;
    let now = Timestamp::now();
    let cfg = &*state.response;
    let audit = Audit::new(actor, action, detail);
    match state
        .store
        .mutate(n, &audit, |i| f(i, actor, now, cfg))
        .await?
    {
        Ok(m) => Ok(Outcome::Done(m)),
        Err(Refusal::Unchanged(message)) => {
            let (incident, _) = stored_incident(&state.store, n).await?;
            Ok(Outcome::Unchanged { incident, message })
        }
        Err(refusal) => Err(refusal.into()),
    }
}

/// `POST /api/v1/incidents`: a person declares an incident (a user report).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Declaration {
    kind: String,
    severity: String,
    summary: String,
    #[serde(default)]
    nodes: Vec<String>,
}

async fn declare_incident(
    State(state): State<AppState>,
    req: Request,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    let (actor, d): (_, Declaration) = person_request(&state.auth, req, "declaration").await?;
    let kind: IncidentKind = d.kind.parse().map_err(ApiError::bad_request)?;
    let severity: Severity = d.severity.parse().map_err(ApiError::bad_request)?;
    let now = Timestamp::now();
    let silences = state.store.silences(Some(now)).await?;
    let d = respond::Declaration {
        kind,
        severity,
        summary: d.summary,
        nodes: d.nodes,
    };
    let change = respond::declare(&d, &actor, now, &state.response, &silences)?;
    let detail = serde_json::to_value(&d).expect("a declaration serializes");
    let incident = state
        .store
        .declare(&change, &Audit::new(&actor, "declare", detail))
        .await?;
    Ok((StatusCode::CREATED, Json(incident)))
}

/// `POST /api/v1/incidents/{id}/ack`: 200 with the incident; 409 when it is resolved.
/// Acknowledging twice answers 200 with `"already": true` and records nothing.
async fn acknowledge_incident(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (parts, _) = req.into_parts();
    let actor = writer(&state.auth, &parts)?;
    let outcome = act(
        &state,
        &id,
        &actor,
        "acknowledge",
        json!({}),
        |i, a, now, _| respond::acknowledge(i, a, now),
    )
    .await?;
    Ok(Json(match outcome {
        Outcome::Done(m) => json!({"incident": m.incident, "already": false}),
        Outcome::Unchanged { incident, .. } => json!({"incident": incident, "already": true}),
    }))
}

/// `POST /api/v1/incidents/{id}/notes`: `{"text": "..."}` (a note), or
/// `{"text": "...", "kind": "action", "runbook_run": "run-42"}` (an action taken, with the
/// runbook run behind it): 201 with the event.
async fn add_note(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<TimelineEvent>), ApiError> {
    #[derive(Deserialize, Clone, Copy, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum NoteKind {
        Note,
        Action,
        /// A public status update: it goes to the incident's channels.
        Update,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoteBody {
        text: String,
        #[serde(default = "note_kind")]
        kind: NoteKind,
        runbook_run: Option<String>,
    }
    fn note_kind() -> NoteKind {
        NoteKind::Note
    }
    let (actor, b): (_, NoteBody) = person_request(&state.auth, req, "note").await?;
    if b.kind != NoteKind::Action && b.runbook_run.is_some() {
        return Err(ApiError::bad_request(
            "runbook_run links the run behind an action: send \"kind\": \"action\"",
        ));
    }
    let (action, detail) = match b.kind {
        NoteKind::Note => ("note", json!({"text": b.text})),
        NoteKind::Update => ("status_update", json!({"text": b.text})),
        NoteKind::Action => (
            "action",
            json!({"text": b.text, "runbook_run": b.runbook_run}),
        ),
    };
    let outcome = act(
        &state,
        &id,
        &actor,
        action,
        detail,
        |i, a, now, _| match b.kind {
            NoteKind::Note => respond::note(i, &b.text, a, now),
            NoteKind::Action => respond::action(i, &b.text, b.runbook_run.as_deref(), a, now),
            NoteKind::Update => respond::status_update(i, &b.text, a, now),
        },
    )
    .await?;
    match outcome {
        Outcome::Done(mut m) if !m.events.is_empty() => {
            Ok((StatusCode::CREATED, Json(m.events.swap_remove(0))))
        }
        _ => Err(ApiError::conflict("nothing was recorded")),
    }
}

/// `POST /api/v1/incidents/{id}/severity` with `{"severity": "P1", "reason": "..."}`.
async fn change_severity(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SeverityBody {
        severity: String,
        #[serde(default)]
        reason: String,
    }
    let (actor, b): (_, SeverityBody) = person_request(&state.auth, req, "severity change").await?;
    let to: Severity = b.severity.parse().map_err(ApiError::bad_request)?;
    let detail = json!({"to": to, "reason": b.reason});
    let outcome = act(&state, &id, &actor, "severity", detail, |i, a, now, cfg| {
        respond::change_severity(i, to, &b.reason, a, now, cfg)
    })
    .await?;
    Ok(outcome.into_json())
}

/// `POST /api/v1/incidents/{id}/roles` with `{"role": "IC", "holder": "alice"}` (assign or
/// hand over) or `{"role": "IC", "holder": null}` (release).
async fn set_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RoleBody {
        role: String,
        /// `None`: absent; `Some(None)`: `null` (release).
        #[serde(default, deserialize_with = "present")]
        holder: Option<Option<String>>,
    }
    let (actor, b): (_, RoleBody) = person_request(&state.auth, req, "role change").await?;
    let role: ResponseRole = b.role.parse().map_err(ApiError::bad_request)?;
    let holder = b.holder.ok_or_else(|| {
        ApiError::bad_request("holder is needed: who takes the role, or null to release it")
    })?;
    let detail = json!({"role": role, "holder": holder});
    let outcome = act(&state, &id, &actor, "role", detail, |i, a, now, _| {
        respond::set_role(i, role, holder.as_deref(), a, now)
    })
    .await?;
    Ok(outcome.into_json())
}

/// A field that is present (even as `null`): `Some(value)`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `POST /api/v1/incidents/{id}/transition` with `{"to": "mitigating", "reason": "..."}`.
async fn transition(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TransitionBody {
        to: String,
        reason: Option<String>,
        /// With `resolved`: the root cause, for the resolution notice.
        root_cause: Option<String>,
    }
    let (actor, b): (_, TransitionBody) = person_request(&state.auth, req, "transition").await?;
    let to: Status = b.to.parse().map_err(ApiError::bad_request)?;
    if b.root_cause.is_some() && to != Status::Resolved {
        return Err(ApiError::bad_request(
            "root_cause goes with resolving: send \"to\": \"resolved\"",
        ));
    }
    let detail = json!({"to": to, "reason": b.reason, "root_cause": b.root_cause});
    let outcome = act(
        &state,
        &id,
        &actor,
        "transition",
        detail,
        // a P1/P2 resolved here gets its review scheduled after the configured delay
        |i, a, now, cfg| {
            respond::transition_with(
                i,
                to,
                b.reason.as_deref(),
                b.root_cause.as_deref(),
                a,
                now,
                cfg.review_after,
            )
        },
    )
    .await?;
    Ok(outcome.into_json())
}

/// `POST /api/v1/incidents/{id}/review` with `{"at": "2026-12-01T10:00:00Z"}`: schedule the
/// post-incident review of a resolved incident (the notice goes to its channels).
async fn schedule_review(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ReviewBody {
        at: String,
    }
    let (actor, b): (_, ReviewBody) = person_request(&state.auth, req, "review").await?;
    let at: Timestamp = b.at.parse().map_err(|e| {
        ApiError::bad_request(format!(
            "at: expected a time such as 2026-12-01T10:00:00Z: {e}"
        ))
    })?;
    let detail = json!({"at": at});
    let outcome = act(
        &state,
        &id,
        &actor,
        "review_scheduled",
        detail,
        |i, a, now, _| respond::schedule_review(i, at, a, now),
    )
    .await?;
    Ok(outcome.into_json())
}

#[derive(Debug, Deserialize)]
struct SilenceQuery {
    all: Option<String>,
}

/// `GET /api/v1/silences`: those not yet ended (in force or starting later), newest first;
/// `?all=true`: every one.
async fn list_silences(
    State(store): State<Store>,
    Query(q): Query<SilenceQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = match q.all.as_deref() {
        None | Some("false") => Some(Timestamp::now()),
        Some("true") => None,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "all must be \"true\" or \"false\", got {other:?}"
            )))
        }
    };
    let silences = store.silences(now).await?;
    Ok(Json(json!({ "silences": silences })))
}

/// `POST /api/v1/silences`: a maintenance window. Findings it covers are recorded as always;
/// nobody is paged for them while it lasts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    node: Option<String>,
    kind: Option<String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    duration: Option<String>,
    #[serde(default)]
    reason: String,
}

/// An RFC 3339 time from a body field `what`.
fn time_field(what: &str, s: &str) -> Result<Timestamp, ApiError> {
    s.parse().map_err(|e| {
        ApiError::bad_request(format!(
            "{what} must be an RFC 3339 time such as 2026-01-01T08:00:00Z, got {s:?}: {e}"
        ))
    })
}

impl SilenceBody {
    /// The silence to create at `now`, checked.
    fn check(self, now: Timestamp) -> Result<NewSilence, ApiError> {
        let kind: Option<IncidentKind> = self
            .kind
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(ApiError::bad_request)?;
        let starts_at = match self.starts_at.as_deref() {
            Some(s) => time_field("starts_at", s)?,
            None => now,
        };
        let ends_at = match (self.ends_at.as_deref(), self.duration.as_deref()) {
            (Some(e), None) => time_field("ends_at", e)?,
            (None, Some(d)) => {
                let d = humantime::parse_duration(d).map_err(|e| {
                    ApiError::bad_request(format!(
                        "duration must be such as 30m or 2h, got {d:?}: {e}"
                    ))
                })?;
                oncall::plus(starts_at, d)
            }
            _ => {
                return Err(ApiError::bad_request(
                    "give exactly one of ends_at and duration",
                ))
            }
        };
        let node = self.node.map(|n| n.trim().to_string());
        let reason = self.reason.trim().to_string();
        oncall::check_silence(node.as_deref(), kind, starts_at, ends_at, &reason, now)
            .map_err(ApiError::bad_request)?;
        Ok(NewSilence {
            node,
            kind,
            starts_at,
            ends_at,
            reason,
        })
    }
}

async fn add_silence(
    State(state): State<AppState>,
    req: Request,
) -> Result<(StatusCode, Json<oncall::Silence>), ApiError> {
    let (actor, b): (_, SilenceBody) = person_request(&state.auth, req, "silence").await?;
    let now = Timestamp::now();
    let new = b.check(now)?;
    let silence = state.store.add_silence(&new, &actor, now).await?;
    Ok((StatusCode::CREATED, Json(silence)))
}

/// `DELETE /api/v1/silences/{id}`: end it now; 404 when it does not exist or has ended.
async fn expire_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<oncall::Silence>, ApiError> {
    let (parts, _) = req.into_parts();
    let actor = writer(&state.auth, &parts)?;
    let n: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("silence {id:?} does not exist")))?;
    let silence = state
        .store
        .expire_silence(n, &actor, Timestamp::now())
        .await?;
    Ok(Json(silence))
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/v1/audit`: `{"entries": [...], "next_cursor": "12" | null}`, newest first. It
/// tells who did what from where, so it needs a token (read access is enough) even when
/// reads are open.
async fn audit_log(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.auth.check(&headers, Access::Read)?;
    let (limit, before_id) = page(q.limit.as_deref(), q.cursor.as_deref())?;
    let entries = state.store.audit_log(limit, before_id).await?;
    let next_cursor = next_cursor(&entries, limit, |e| e.id);
    Ok(Json(
        json!({"entries": entries, "next_cursor": next_cursor}),
    ))
}

async fn list_nodes(State(store): State<Store>) -> Result<Json<serde_json::Value>, ApiError> {
    let nodes = store.nodes().await?;
    Ok(Json(json!({ "nodes": nodes })))
}

/// The public status, or why not: the store's error is logged, not shown (the page is
/// public).
async fn public_status(state: &AppState) -> Result<Arc<status::Status>, StatusCode> {
    state
        .status
        .get(|| status::build(&state.store, Timestamp::now()))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "store error while computing the public status");
            StatusCode::SERVICE_UNAVAILABLE
        })
}

/// Headers of the public answers: nothing runs, nothing loads from elsewhere, nothing is
/// cached for longer than the page's own refresh.
fn public_headers(content_type: &'static str) -> [(axum::http::HeaderName, &'static str); 5] {
    use axum::http::header;
    [
        (header::CONTENT_TYPE, content_type),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ]
}

/// `GET /api/v1/status`: the public status as JSON (always open).
async fn status_json(State(state): State<AppState>) -> Response {
    match public_status(&state).await {
        Ok(s) => (
            public_headers("application/json"),
            serde_json::to_string(&*s).expect("the status serializes"),
        )
            .into_response(),
        Err(code) => ApiError::new(
            code,
            "store_unavailable",
            "the status is unavailable right now",
        )
        .into_response(),
    }
}

/// `GET /status`: the public status page (always open).
async fn status_page(State(state): State<AppState>) -> Response {
    let html = "text/html; charset=utf-8";
    match public_status(&state).await {
        Ok(s) => (public_headers(html), status::render_html(&s)).into_response(),
        Err(code) => (
            code,
            public_headers(html),
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta http-equiv=\"refresh\" content=\"30\">\
             <title>Neo network status</title></head>\
             <body><h1>Neo network status</h1>\
             <p>The status is unavailable right now; this page tries again in 30 s.</p>\
             </body></html>\n",
        )
            .into_response(),
    }
}
