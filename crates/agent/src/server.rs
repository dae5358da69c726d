//! The agent's HTTP server (axum): `GET /healthz` without auth; `GET /v1/report` and
//! `POST /v1/ops/{op}` behind a bearer token compared in constant time. Errors are JSON
//! `{"error":{"code","message"}}`; a refused destructive operation also carries its `plan`.

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::collect::Collector;
use crate::config::AgentConfig;
use crate::ops::{OpRequest, Ops, Refusal};

/// Largest `POST /v1/ops/{op}` body (a blocklist of 65,536 entries fits).
pub const MAX_OP_REQUEST_BYTES: usize = 1 << 20;

/// What the handlers share.
struct AppState {
    collector: Arc<Collector>,
    ops: Ops,
}

/// Serve the agent on `listener` until `shutdown` completes. Fails at once when the
/// configuration is unusable (empty token, invalid unit name).
pub async fn serve(
    cfg: AgentConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    cfg.validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let app = router(cfg);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "neo-ir agent listening");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The agent's routes, for embedding or tests. Does not validate `cfg` (see `serve`).
pub fn router(cfg: AgentConfig) -> Router {
    let collector = Arc::new(Collector::new(cfg.normalized()));
    let state = Arc::new(AppState {
        ops: Ops::new(collector.clone()),
        collector,
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/report", get(report))
        .route(
            "/v1/ops/{op}",
            post(run_op).layer(DefaultBodyLimit::max(MAX_OP_REQUEST_BYTES)),
        )
        .fallback(not_found)
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn report(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let collector = &state.collector;
    if let Err(resp) = authorize(&headers, &collector.config().token) {
        return resp;
    }
    let report = collector.report().await;
    let mut resp = Json(report).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `POST /v1/ops/{op}`: authorize, parse the `OpRequest`, run (or plan) the operation.
async fn run_op(
    State(state): State<Arc<AppState>>,
    Path(op): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(resp) = authorize(&headers, &state.collector.config().token) {
        return resp;
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("the request body is larger than {MAX_OP_REQUEST_BYTES} bytes"),
            )
        }
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_args",
                &format!("unreadable request body: {}", e.body_text()),
            )
        }
    };
    let req: OpRequest = if body.iter().all(u8::is_ascii_whitespace) {
        OpRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid_args",
                    &format!("the body is not an operation request: {e}"),
                )
            }
        }
    };
    let mut resp = match state.ops.run(&op, req).await {
        Ok(report) => Json(report).into_response(),
        Err(refusal) => refusal_response(&refusal),
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn refusal_response(r: &Refusal) -> Response {
    let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = json!({"error": {"code": r.code(), "message": r.to_string()}});
    if let Refusal::ApprovalRequired(plan) = r {
        body["plan"] = json!(plan);
        body["error"]["message"] = json!(format!(
            "the plan has destructive steps; send approved_by to run it:\n{}",
            plan.describe()
        ));
    }
    (status, Json(body)).into_response()
}

/// 401 without (or with a non-Bearer) `Authorization`, 403 for a wrong token.
#[allow(clippy::result_large_err)]
fn authorize(headers: &HeaderMap, token: &str) -> Result<(), Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized("missing Authorization: Bearer header"));
    };
    let value = value.as_bytes();
    let presented = match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => value[7..].trim_ascii(),
        _ => return Err(unauthorized("Authorization is not a Bearer token")),
    };
    if token.is_empty() || !constant_time_eq(presented, token.as_bytes()) {
        tracing::warn!("agent request refused: wrong bearer token");
        return Err(error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "wrong bearer token",
        ));
    }
    Ok(())
}

fn unauthorized(message: &str) -> Response {
    let mut r = error_response(StatusCode::UNAUTHORIZED, "unauthorized", message);
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Equality whose time depends only on the lengths, not on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret1"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn authorization_header() {
        let mut h = HeaderMap::new();
        let status = |r: Result<(), Response>| r.err().map(|r| r.status());
        assert_eq!(status(authorize(&h, "tok")), Some(StatusCode::UNAUTHORIZED));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dG9r"),
        );
        assert_eq!(status(authorize(&h, "tok")), Some(StatusCode::UNAUTHORIZED));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert_eq!(status(authorize(&h, "tok")), Some(StatusCode::FORBIDDEN));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer tok"),
        );
        assert_eq!(status(authorize(&h, "tok")), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(status(authorize(&h, "tok")), Some(StatusCode::FORBIDDEN));
    }
}
