//! neo-ir's HTTP API: `/api/v1/incidents` (list; `POST` declares an incident),
//! `/api/v1/incidents/{id}`, `/api/v1/nodes`, and `/healthz` / `/readyz`. Everything it
//! serves comes from the store, so any instance sharing the store serves the same answers.
//!
//! Mutations need a bearer token with `write` access (`[[server.tokens]]`, compared in
//! constant time); the mutation's timeline event names the token and the client address
//! (the audit log). Reads are open unless `server.protect_reads`. 401 without a valid
//! token, 403 for a read-only token on a mutation.
//!
//! Errors have the shape `{"error": {"code": "not_found", "message": "..."}}`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use neo_ir_core::config::Access;
use neo_ir_core::incident::{declare, Actor, Incident, IncidentKind, Severity, TimelineEvent};
use neo_ir_store::{ListFilter, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;

/// Largest page of incidents one request may ask for.
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
}

impl FromRef<AppState> for Store {
    fn from_ref(s: &AppState) -> Store {
        s.store.clone()
    }
}

/// Build the API router over a store: reads open, no mutations (no token configured).
pub fn router(store: Store) -> Router {
    router_with(store, Auth::default())
}

/// Build the API router over a store with its tokens.
pub fn router_with(store: Store, auth: Auth) -> Router {
    let state = AppState {
        store,
        auth: Arc::new(auth),
    };
    let reads = Router::new()
        .route(
            "/api/v1/incidents",
            get(list_incidents).post(declare_incident),
        )
        .route("/api/v1/incidents/{id}", get(get_incident))
        .route(
            "/api/v1/incidents/{id}/ack",
            axum::routing::post(acknowledge_incident),
        )
        .route(
            "/api/v1/incidents/{id}/notes",
            axum::routing::post(add_note),
        )
        .route("/api/v1/nodes", get(list_nodes))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard_reads,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(reads)
        .fallback(not_found)
        .with_state(state)
}

/// Reads need a token only with `protect_reads`; mutations check their own (write) token.
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
    serve_with(listener, store, Auth::default(), shutdown).await
}

/// Serve the API with its tokens on `listener` until `shutdown` completes.
pub async fn serve_with(
    listener: TcpListener,
    store: Store,
    auth: Auth,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router_with(store, auth).into_make_service_with_connect_info::<SocketAddr>(),
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
}

impl From<neo_ir_store::StoreError> for ApiError {
    fn from(e: neo_ir_store::StoreError) -> Self {
        if let neo_ir_store::StoreError::NoSuchIncident(n) = e {
            return ApiError::not_found(format!("incident {n} does not exist"));
        }
        tracing::error!(error = %e, "store error while serving the API");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )
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
    ApiError::not_found("no such endpoint; see /api/v1/incidents, /api/v1/nodes, /healthz")
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(store): State<Store>) -> Response {
    match store.ping().await {
        Ok(()) => Json(json!({"status": "ready", "store": "ok"})).into_response(),
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
    let limit = match q.limit.as_deref() {
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
    let before_id = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid cursor {c:?}")))?,
        ),
    };
    let incidents = store
        .list_incidents(ListFilter {
            all,
            limit,
            before_id,
        })
        .await?;
    let next_cursor = (incidents.len() == limit as usize)
        .then(|| incidents.last().map(|i| i.id.to_string()))
        .flatten();
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
    let (incident, timeline) = store
        .incident(n)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("incident {n} does not exist")))?;
    Ok(Json(IncidentDetail { incident, timeline }))
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
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|e| ApiError::bad_request(format!("unreadable body (64 KiB at most): {e}")))?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

async fn declare_incident(
    State(state): State<AppState>,
    req: Request,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    let (parts, body) = req.into_parts();
    let actor = writer(&state.auth, &parts)?;
    let d: Declaration = json_body(body, "declaration").await?;
    let kind: IncidentKind = d.kind.parse().map_err(ApiError::bad_request)?;
    let severity: Severity = d.severity.parse().map_err(ApiError::bad_request)?;
    let change = declare(
        kind,
        severity,
        &d.summary,
        d.nodes,
        &actor,
        jiff::Timestamp::now(),
    )
    .map_err(ApiError::bad_request)?;
    let incident = state.store.apply(&change).await?;
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
    let n = incident_id(&id)?;
    match state
        .store
        .acknowledge(n, &actor, jiff::Timestamp::now())
        .await?
    {
        neo_ir_store::Ack::Done(i) => Ok(Json(json!({"incident": i, "already": false}))),
        neo_ir_store::Ack::Already(i) => Ok(Json(json!({"incident": i, "already": true}))),
        neo_ir_store::Ack::Resolved(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("incident {n} is resolved; there is nothing to acknowledge"),
        )),
    }
}

/// `POST /api/v1/incidents/{id}/notes` with `{"text": "..."}`: 201 with the event.
async fn add_note(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<TimelineEvent>), ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoteBody {
        text: String,
    }
    let (parts, body) = req.into_parts();
    let actor = writer(&state.auth, &parts)?;
    let n = incident_id(&id)?;
    let note: NoteBody = json_body(body, "note").await?;
    let event = neo_ir_core::incident::note_event(&note.text, &actor, jiff::Timestamp::now())
        .map_err(ApiError::bad_request)?;
    state.store.add_event(n, &event).await?;
    Ok((StatusCode::CREATED, Json(event)))
}

async fn list_nodes(State(store): State<Store>) -> Result<Json<serde_json::Value>, ApiError> {
    let nodes = store.nodes().await?;
    Ok(Json(json!({ "nodes": nodes })))
}
