//! neo-ir's HTTP API: `/api/v1/incidents`, `/api/v1/incidents/{id}`, `/api/v1/nodes`, and
//! `/healthz` / `/readyz`. Read-only in this version; everything it serves comes from the
//! store, so any instance sharing the store serves the same answers.
//!
//! Errors have the shape `{"error": {"code": "not_found", "message": "..."}}`.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use neo_ir_core::incident::{Incident, TimelineEvent};
use neo_ir_store::{ListFilter, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;

/// Largest page of incidents one request may ask for.
pub const MAX_LIMIT: u32 = 500;

/// Build the API router over a store.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/{id}", get(get_incident))
        .route("/api/v1/nodes", get(list_nodes))
        .fallback(not_found)
        .with_state(store)
}

/// Serve the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(store))
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
    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }
}

impl From<neo_ir_store::StoreError> for ApiError {
    fn from(e: neo_ir_store::StoreError) -> Self {
        tracing::error!(error = %e, "store error while serving the API");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "store_unavailable",
            message: e.to_string(),
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
    let n: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("incident {id:?} does not exist")))?;
    let (incident, timeline) = store
        .incident(n)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("incident {n} does not exist")))?;
    Ok(Json(IncidentDetail { incident, timeline }))
}

async fn list_nodes(State(store): State<Store>) -> Result<Json<serde_json::Value>, ApiError> {
    let nodes = store.nodes().await?;
    Ok(Json(json!({ "nodes": nodes })))
}
