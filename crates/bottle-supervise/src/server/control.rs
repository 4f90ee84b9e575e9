//! The operator control API (host side only; every call needs the bottle's bearer token).
//!
//! * `GET /requests?state=pending|all` → [`RequestsPage`]
//! * `GET /events?since=N&wait=S` → [`EventsPage`]: long poll, returns at once when there are
//!   events after `N`, else waits up to `S` seconds (at most 60) for one
//! * `POST /requests/<id>/answer` with an [`AnswerBody`] → the answered [`Request`]
//!
//! Errors are `{"error": "..."}` with 400 (bad body), 401 (token), 404 (unknown id), 409 (not
//! pending), 502 (egress admin API failed; the request stays pending).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request as HttpRequest, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::Core;
use crate::error::Error;
use crate::types::{AnswerBody, ErrorBody, RequestsPage};

const MAX_WAIT_SECS: u64 = 60;

/// The control API's router.
pub(crate) fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/requests", get(list))
        .route("/events", get(events))
        .route("/requests/{id}/answer", post(answer))
        .layer(middleware::from_fn_with_state(core.clone(), authorise))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(core)
}

async fn authorise(State(core): State<Arc<Core>>, request: HttpRequest, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = core.control_token.expose().as_bytes();
    // Constant time over the bytes; an empty configured token never matches.
    let ok = !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected));
    if !ok {
        let mut response = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    state: Option<String>,
}

async fn list(
    State(core): State<Arc<Core>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let all = match query.as_ref().map(|q| q.state.as_deref()) {
        Ok(None | Some("pending")) => false,
        Ok(Some("all")) => true,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "query: state must be `pending` or `all`",
            )
        }
    };
    Json(RequestsPage {
        bottle: core.ident.clone(),
        requests: core.store.list(all),
    })
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    wait: Option<u64>,
}

async fn events(
    State(core): State<Arc<Core>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "query: since and wait must be non-negative integers",
        );
    };
    let wait = Duration::from_secs(q.wait.unwrap_or(25).min(MAX_WAIT_SECS));
    Json(core.store.wait_events(q.since, wait, &core.cancel).await).into_response()
}

async fn answer(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
    body: Result<Json<AnswerBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("body: {}", rejection.body_text()),
            )
        }
    };
    match core.answer(&id, &body).await {
        Ok(request) => Json(request).into_response(),
        Err(e) => {
            let status = match &e {
                Error::UnknownRequest { .. } => StatusCode::NOT_FOUND,
                Error::Answer {
                    source: crate::types::AnswerRejection::NotPending { .. },
                    ..
                } => StatusCode::CONFLICT,
                Error::Answer { .. } => StatusCode::BAD_REQUEST,
                Error::EgressAdminHttp(_) | Error::EgressAdminStatus { .. } => {
                    StatusCode::BAD_GATEWAY
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, &e.to_string())
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.to_owned(),
        }),
    )
        .into_response()
}
