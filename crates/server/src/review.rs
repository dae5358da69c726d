//! Post-incident reviews over the API (playbook phase 5).
//!
//! - `GET /api/v1/incidents/{id}/review`: with `Accept: text/markdown`, the review as
//!   Markdown; else `{"incident_id", "markdown", "complete", "saved", "items"}`. The review
//!   is the stored one, else the playbook's template prefilled from the timeline.
//! - `PUT /api/v1/incidents/{id}/review` `{"markdown", "complete"?}`: save it (once the
//!   incident is resolved); `"complete": true` also completes it (the incident becomes
//!   `reviewed`). `markdown` may be left out when only completing.
//! - `POST /api/v1/incidents/{id}/review/items` `{"action", "owner", "due"?, "priority"?,
//!   "runbook"?}`: 201 with the item. `runbook` names one of the playbook's six runbooks (by
//!   incident kind, e.g. `node_down`) or a script (e.g. `restart_node`); another name is a
//!   400 listing them.
//! - `PATCH /api/v1/review-items/{id}` `{"done"?, "owner"?, "due"?}` (`"due": null`
//!   removes it).
//!
//! Writes need a `write` token; its name is who did it. (`POST .../review` with `{"at"}`,
//! scheduling the review, is in the crate root.)

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::civil::Date;
use neo_ir_core::review::{check_known_runbook, Priority, MAX_REVIEW};
use neo_ir_store::{ActionItemUpdate, NewActionItem, Store, StoreError};
use serde::Deserialize;
use serde_json::json;

use crate::{incident_id, person_request, stored_incident, writer, ApiError, AppState};

fn wants_markdown(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/markdown"))
}

async fn review_json(store: &Store, n: i64) -> Result<serde_json::Value, ApiError> {
    let saved = store.review(n).await?;
    let (markdown, complete) = match &saved {
        Some(r) => (r.markdown.clone(), r.complete),
        None => (store.draft_review(n).await?, false),
    };
    Ok(json!({
        "incident_id": n,
        "markdown": markdown,
        "complete": complete,
        "saved": saved.is_some(),
        "updated_by": saved.as_ref().map(|r| &r.updated_by),
        "updated_at": saved.as_ref().map(|r| r.updated_at),
        "items": store.action_items(n).await?,
    }))
}

/// `GET /api/v1/incidents/{id}/review`.
pub(crate) async fn get_review(
    State(store): State<Store>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let n = incident_id(&id)?;
    stored_incident(&store, n).await?;
    if wants_markdown(&headers) {
        let (markdown, _) = store.review_or_draft(n).await?;
        return Ok((
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            markdown,
        )
            .into_response());
    }
    Ok(Json(review_json(&store, n).await?).into_response())
}

/// `PUT /api/v1/incidents/{id}/review` with `{"markdown", "complete"?}`.
pub(crate) async fn put_review(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        markdown: Option<String>,
        #[serde(default)]
        complete: bool,
    }
    let n = incident_id(&id)?;
    let (parts, body) = req.into_parts();
    let actor = writer(&state.auth, &parts)?;
    // a review is longer than other bodies: its own limit (the Markdown plus JSON quoting)
    let b: Body = crate::json_body_within(
        body,
        "review",
        2 * MAX_REVIEW + 1024,
        &format!("a review is at most {MAX_REVIEW} bytes"),
    )
    .await?;
    if b.markdown.is_none() && !b.complete {
        return Err(ApiError::bad_request(
            "give \"markdown\" (the review), \"complete\": true, or both",
        ));
    }
    stored_incident(&state.store, n).await?;
    let now = jiff::Timestamp::now();
    if let Some(md) = &b.markdown {
        state.store.save_review(n, md, &actor, now).await??;
    }
    if b.complete {
        match state.store.complete_review(n, &actor, now).await? {
            Ok(_) | Err(neo_ir_core::respond::Refusal::Unchanged(_)) => {}
            Err(r) => return Err(r.into()),
        }
    }
    Ok(Json(review_json(&state.store, n).await?))
}

fn date(field: &str, s: &str) -> Result<Date, ApiError> {
    s.parse().map_err(|e| {
        ApiError::bad_request(format!("{field}: expected a date such as 2026-12-15: {e}"))
    })
}

/// `POST /api/v1/incidents/{id}/review/items`: 201 with the item.
pub(crate) async fn add_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        action: String,
        owner: String,
        due: Option<String>,
        priority: Option<String>,
        runbook: Option<String>,
    }
    let n = incident_id(&id)?;
    let (actor, b): (_, Body) = person_request(&state.auth, req, "action item").await?;
    let new = NewActionItem {
        action: b.action,
        owner: b.owner,
        due: b.due.as_deref().map(|d| date("due", d)).transpose()?,
        priority: match b.priority.as_deref() {
            None => Priority::Medium,
            Some(p) => p.parse().map_err(ApiError::bad_request)?,
        },
        runbook: b
            .runbook
            .as_deref()
            .map(|r| {
                check_known_runbook(r, neo_ir_runbook::scripts::ALL.iter().map(|s| s.name))
                    .map_err(ApiError::bad_request)
            })
            .transpose()?,
    };
    let item = state
        .store
        .add_action_item(n, &new, &actor, jiff::Timestamp::now())
        .await??;
    Ok((
        StatusCode::CREATED,
        Json(json!({"incident_id": n, "item": item})),
    ))
}

/// `PATCH /api/v1/review-items/{id}` with `{"done"?, "owner"?, "due"?}`.
pub(crate) async fn patch_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        done: Option<bool>,
        owner: Option<String>,
        /// Absent: unchanged; `null`: removed.
        #[serde(default, deserialize_with = "serde_with_none::deserialize")]
        due: Option<Option<String>>,
    }
    let not_found = || ApiError::not_found(format!("action item {id:?} does not exist"));
    let n: i64 = id.parse().map_err(|_| not_found())?;
    let (actor, b): (_, Body) = person_request(&state.auth, req, "action item update").await?;
    let update = ActionItemUpdate {
        done: b.done,
        owner: b.owner,
        due: match b.due {
            None => None,
            Some(None) => Some(None),
            Some(Some(d)) => Some(Some(date("due", &d)?)),
        },
    };
    match state
        .store
        .update_action_item(n, &update, &actor, jiff::Timestamp::now())
        .await
    {
        Ok(Ok((incident, item))) => Ok(Json(json!({"incident_id": incident, "item": item}))),
        Ok(Err(r)) => Err(r.into()),
        Err(StoreError::NoSuchActionItem(_)) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// `Option<Option<T>>` from JSON: absent → `None` (by `default`), `null` → `Some(None)`.
mod serde_with_none {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}
