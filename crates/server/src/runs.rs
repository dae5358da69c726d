//! Runbook runs over the API: start a script (dry run, or real with approval for destructive
//! steps), approve or decline a waiting run, list and read runs, the incident's runbook
//! checklist with marks, and attachments (diagnostics archives).
//!
//! - `GET /api/v1/runs` (`?incident=&status=&limit=`), `GET /api/v1/runs/{id}`
//! - `POST /api/v1/runs` `{"script", "args", "node", "incident_id", "dry_run"}`: 201 with the
//!   run when it is final or waits for an approval, 202 when it is running (it executes in
//!   the background; poll `GET /api/v1/runs/{id}`).
//! - `POST /api/v1/runs/{id}/approve` (202, running), `POST /api/v1/runs/{id}/decline`
//!   `{"reason"}` (200)
//! - `GET /api/v1/incidents/{id}/runbook`, `POST /api/v1/incidents/{id}/runbook/{key}`
//!   `{"done": true|false}`
//! - `GET /api/v1/incidents/{id}/attachments`, `GET /api/v1/attachments/{id}` (the bytes)
//!
//! Starting, approving, declining and marking need a `write` token; the token's name is who
//! did it. Without a runner (no configuration) the run endpoints answer 503.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use neo_ir_core::runbook::{Run, RunStatus};
use neo_ir_runbook::runner::{RunRequest, Runner, RunnerError};
use neo_ir_store::{RunFilter, Store};
use serde::Deserialize;
use serde_json::json;

use crate::{incident_id, person_request, stored_incident, ApiError, AppState};

impl From<RunnerError> for ApiError {
    fn from(e: RunnerError) -> Self {
        match e {
            RunnerError::Script(e) => ApiError::bad_request(e.to_string()),
            RunnerError::Invalid(m) => ApiError::bad_request(m),
            RunnerError::NoSuchRun(n) => ApiError::not_found(format!("run {n} does not exist")),
            RunnerError::NoSuchIncident(n) => {
                ApiError::not_found(format!("incident {n} does not exist"))
            }
            RunnerError::Conflict(m) => ApiError::conflict(m),
            RunnerError::Store(e) => e.into(),
        }
    }
}

fn runner(state: &AppState) -> Result<Arc<Runner>, ApiError> {
    state.runner.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "runbooks_unavailable",
            "this instance runs no runbooks (it was started without a configuration)",
        )
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunsQuery {
    incident: Option<String>,
    status: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/runs`: `{"runs": [...]}`, newest first.
pub(crate) async fn list_runs(
    State(store): State<Store>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let incident_id =
        match q.incident.as_deref() {
            None => None,
            Some(s) => Some(s.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("incident must be a number, got {s:?}"))
            })?),
        };
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status must be one of dry_run, awaiting_approval, running, succeeded, failed, refused; got {s:?}"
            ))
        })?),
    };
    let (limit, _) = crate::page(q.limit.as_deref(), None)?;
    let runs = store
        .runs(&RunFilter {
            incident_id,
            status,
            limit,
        })
        .await?;
    Ok(Json(json!({ "runs": runs })))
}

fn run_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("run {id:?} does not exist")))
}

/// `GET /api/v1/runs/{id}`.
pub(crate) async fn get_run(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    let n = run_id(&id)?;
    store
        .run(n)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("run {n} does not exist")))
}

/// 202 while it runs (in the background), 201 when it is already final or waits.
fn run_response(run: Run) -> Response {
    let code = if run.status == RunStatus::Running {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    (code, Json(run)).into_response()
}

/// Execute in the background: the request does not wait for a restart or a backup.
fn execute_later(
    runner: Arc<Runner>,
    run: &Run,
    resolved: Option<neo_ir_runbook::runner::Resolved>,
    actor: neo_ir_core::incident::Actor,
) {
    if let Some(resolved) = resolved {
        let run = run.clone();
        tokio::spawn(async move {
            let id = run.id;
            if let Err(e) = runner.execute(run, resolved, &actor).await {
                tracing::error!(run = id, error = %e, "runbook run could not be recorded");
            }
        });
    }
}

/// `POST /api/v1/runs`.
pub(crate) async fn start_run(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        script: String,
        #[serde(default)]
        args: Vec<String>,
        node: Option<String>,
        incident_id: Option<i64>,
        #[serde(default)]
        dry_run: bool,
    }
    let runner = runner(&state)?;
    let (actor, b): (_, Body) = person_request(&state.auth, req, "run request").await?;
    let mut r = RunRequest::new(&b.script, b.args, actor.clone());
    r.node = b.node;
    r.incident_id = b.incident_id;
    r.dry_run = b.dry_run;
    let (run, resolved) = runner.prepare(r).await?;
    execute_later(runner, &run, resolved, actor);
    Ok(run_response(run))
}

/// `POST /api/v1/runs/{id}/approve`.
pub(crate) async fn approve_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let runner = runner(&state)?;
    let n = run_id(&id)?;
    let (parts, _) = req.into_parts();
    let actor = crate::writer(&state.auth, &parts)?;
    let (run, resolved) = runner.approve_only(n, &actor).await?;
    execute_later(runner, &run, resolved, actor);
    Ok(run_response(run))
}

/// `POST /api/v1/runs/{id}/decline` with `{"reason": "..."}`.
pub(crate) async fn decline_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<Run>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        reason: String,
    }
    let runner = runner(&state)?;
    let n = run_id(&id)?;
    let (actor, b): (_, Body) = person_request(&state.auth, req, "decline").await?;
    if b.reason.trim().is_empty() || b.reason.chars().count() > 500 {
        return Err(ApiError::bad_request(
            "a reason must be 1 to 500 characters",
        ));
    }
    Ok(Json(runner.decline(n, &actor, b.reason.trim()).await?))
}

/// `GET /api/v1/incidents/{id}/runbook`: the kind's checklist with what is done.
pub(crate) async fn get_checklist(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let n = incident_id(&id)?;
    let (incident, _) = stored_incident(&store, n).await?;
    let items = neo_ir_runbook::checklist::view(&store, &incident).await?;
    Ok(Json(
        json!({"incident_id": n, "kind": incident.kind, "items": items}),
    ))
}

/// `POST /api/v1/incidents/{id}/runbook/{key}` with `{"done": true|false}`.
pub(crate) async fn mark_checklist(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        done: bool,
    }
    let n = incident_id(&id)?;
    let (actor, b): (_, Body) = person_request(&state.auth, req, "checklist mark").await?;
    let now = jiff::Timestamp::now();
    match neo_ir_runbook::checklist::mark(&state.store, n, &key, b.done, &actor, now).await {
        Ok(_) => {}
        Err(neo_ir_runbook::checklist::MarkError::Refused(r)) => return Err(r.into()),
        Err(neo_ir_runbook::checklist::MarkError::Store(e)) => return Err(e.into()),
    }
    let (incident, _) = stored_incident(&state.store, n).await?;
    let items = neo_ir_runbook::checklist::view(&state.store, &incident).await?;
    Ok(Json(
        json!({"incident_id": n, "kind": incident.kind, "items": items}),
    ))
}

/// `GET /api/v1/incidents/{id}/attachments`: metadata, newest first.
pub(crate) async fn list_attachments(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let n = incident_id(&id)?;
    stored_incident(&store, n).await?;
    Ok(Json(json!({"attachments": store.attachments(n).await?})))
}

/// `GET /api/v1/attachments/{id}`: the file, as a download.
pub(crate) async fn get_attachment(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let n: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("attachment {id:?} does not exist")))?;
    let Some((meta, bytes)) = store.attachment(n).await? else {
        return Err(ApiError::not_found(format!(
            "attachment {n} does not exist"
        )));
    };
    let disposition = format!("attachment; filename=\"{}\"", meta.name.replace('"', ""));
    Ok((
        [
            (header::CONTENT_TYPE, meta.content_type.clone()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}
