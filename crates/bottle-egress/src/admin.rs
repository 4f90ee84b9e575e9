//! The admin API: health, policy view, live route changes, counters.
//!
//! This module owns the operator-side listener. It is separate from the agent-facing one (the
//! backend binds it where the agent has no route) and every request needs
//! `Authorization: Bearer <admin_token>`, compared in constant time. Route secrets are never
//! returned: `GET /policy` shows the injection scheme only.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use subtle::ConstantTimeEq;
use tokio::net::TcpStream;

use bottle_config::{Route, Secret};

use crate::policy::{CompiledRoute, Policy};
use crate::proxy::Shared;

/// Largest admin request body (a route as JSON).
const MAX_BODY: usize = 64 * 1024;

pub(crate) async fn serve_admin(shared: Arc<Shared>, token: Arc<Secret>, tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let svc = service_fn(move |req| {
        let s = shared.clone();
        let t = token.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(s, &t, req).await) }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), svc)
        .await;
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": msg }))
}

fn authorised(req: &Request<Incoming>, token: &Secret) -> bool {
    let Some(v) = req.headers().get(AUTHORIZATION) else {
        return false;
    };
    let Some(given) = v.as_bytes().strip_prefix(b"Bearer ") else {
        return false;
    };
    !token.is_empty() && bool::from(given.ct_eq(token.expose().as_bytes()))
}

/// A route as shown to the operator: the secret replaced by `<redacted>`.
pub(crate) fn redacted(route: &Route) -> Route {
    let mut r = route.clone();
    if let Some(a) = r.auth.as_mut() {
        a.secret = Secret::new("<redacted>");
    }
    r
}

fn policy_view(p: &Policy) -> serde_json::Value {
    let routes: Vec<Route> = p.routes().iter().map(|r| redacted(&r.route)).collect();
    serde_json::json!({ "routes": routes })
}

async fn handle(
    shared: Arc<Shared>,
    token: &Secret,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if !authorised(&req, token) {
        let mut r = error(StatusCode::UNAUTHORIZED, "admin token required");
        r.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        return r;
    }
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/healthz") => json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        (Method::GET, "/policy") => json(StatusCode::OK, &policy_view(&shared.policy.load())),
        (Method::GET, "/counters") => json(StatusCode::OK, &shared.counters.snapshot()),
        (Method::POST, "/routes") => {
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body too large or unreadable",
                    )
                }
            };
            let route: Route = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return error(StatusCode::BAD_REQUEST, &format!("not a route: {e}")),
            };
            let compiled = match CompiledRoute::compile(&route) {
                Ok(c) => c,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            shared
                .policy
                .rcu(|p| Arc::new(p.with_route(compiled.clone())));
            json(
                StatusCode::CREATED,
                &serde_json::json!({ "added": redacted(&route) }),
            )
        }
        (Method::DELETE, p) if p.starts_with("/routes/") => {
            let host = &p["/routes/".len()..];
            let mut removed = false;
            shared.policy.rcu(|pol| {
                let (next, r) = pol.without_route(host);
                removed = r;
                Arc::new(next)
            });
            if removed {
                json(StatusCode::OK, &serde_json::json!({ "removed": host }))
            } else {
                error(StatusCode::NOT_FOUND, "no route for that host")
            }
        }
        _ => error(StatusCode::NOT_FOUND, "unknown admin endpoint"),
    }
}
