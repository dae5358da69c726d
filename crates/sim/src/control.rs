//! The control HTTP API of a simulated network: read the chain and the nodes, inject and
//! clear faults. JSON in and out; the full reference is `crates/sim/CONTROL_API.md`.
//!
//! | Method and path              | Body                          | Answer                                  |
//! |------------------------------|-------------------------------|-----------------------------------------|
//! | `GET /nodes`                 |                               | `[{"name","role","rpc_url","height","faults":[...]}]` |
//! | `GET /chain`                 |                               | `{"height","stalled","msperblock","validators"}` |
//! | `POST /nodes/{name}/fault`   | `{"fault":"crash"}`, `{"fault":"slow","ms":500}`, `{"fault":"peers","count":0}`, `{"fault":"fork","height":120}` (optional `"branch":1`: nodes on one branch agree), `{"fault":"state_root","height":120}`, `{"fault":"hang"}`, `{"fault":"freeze"}`, `{"fault":"garbage"}`, `{"fault":"huge"}`, `{"fault":"lie"}` | `{"ok":true}` |
//! | `POST /nodes/{name}/recover` |                               | `{"ok":true}`                           |
//! | `POST /chain/stall`          |                               | `{"ok":true}`                           |
//! | `POST /chain/resume`         |                               | `{"ok":true}`                           |
//! | `POST /recover`              |                               | `{"ok":true}` (all nodes, and resume)   |
//!
//! Errors: `{"error":{"code":"not_found","message":"..."}}` with 404 (unknown node or path),
//! `bad_request` with 400 (body is not a fault), `method_not_allowed` with 405, and
//! `internal` with 500 (a listener could not be reopened).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::network::Shared;
use crate::node::Fault;
use crate::{SimError, SimRole};

/// The control router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/nodes", get(nodes))
        .route("/chain", get(chain))
        .route("/nodes/{name}/fault", post(fault))
        .route("/nodes/{name}/recover", post(recover_node))
        .route("/chain/stall", post(stall))
        .route("/chain/resume", post(resume))
        .route("/recover", post(recover_all))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .with_state(shared)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn sim_error(e: &SimError) -> Response {
    match e {
        SimError::UnknownNode(_) => error(StatusCode::NOT_FOUND, "not_found", &e.to_string()),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

fn ok() -> Response {
    Json(json!({"ok": true})).into_response()
}

#[derive(Serialize)]
struct NodeJson {
    name: String,
    role: SimRole,
    rpc_url: String,
    height: u64,
    faults: Vec<Fault>,
}

#[derive(Serialize)]
struct ChainJson {
    height: u64,
    stalled: bool,
    msperblock: u64,
    validators: u32,
}

async fn nodes(State(shared): State<Arc<Shared>>) -> Response {
    let list: Vec<NodeJson> = {
        let st = shared.state.lock().expect("state lock");
        shared
            .specs
            .iter()
            .enumerate()
            .map(|(i, spec)| NodeJson {
                name: spec.name.clone(),
                role: spec.role,
                rpc_url: shared.rpc_url(i),
                height: st.nodes[i].height(&st.chain),
                faults: st.nodes[i].fault_list(),
            })
            .collect()
    };
    Json(list).into_response()
}

async fn chain(State(shared): State<Arc<Shared>>) -> Response {
    let (height, stalled) = {
        let st = shared.state.lock().expect("state lock");
        (st.chain.height(), st.stalled)
    };
    Json(ChainJson {
        height,
        stalled,
        msperblock: shared.cfg.msperblock,
        validators: shared.cfg.validators,
    })
    .into_response()
}

async fn fault(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let idx = match shared.node_index(&name) {
        Ok(i) => i,
        Err(e) => return sim_error(&e),
    };
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("body is not a fault: {e}"),
            )
        }
    };
    match shared.inject(idx, fault).await {
        Ok(()) => ok(),
        Err(e) => sim_error(&e),
    }
}

async fn recover_node(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let idx = match shared.node_index(&name) {
        Ok(i) => i,
        Err(e) => return sim_error(&e),
    };
    match shared.recover(idx).await {
        Ok(()) => ok(),
        Err(e) => sim_error(&e),
    }
}

async fn stall(State(shared): State<Arc<Shared>>) -> Response {
    shared.set_stalled(true);
    ok()
}

async fn resume(State(shared): State<Arc<Shared>>) -> Response {
    shared.set_stalled(false);
    ok()
}

async fn recover_all(State(shared): State<Arc<Shared>>) -> Response {
    match shared.recover_all().await {
        Ok(()) => ok(),
        Err(e) => sim_error(&e),
    }
}
