//! `GET /healthz`: answered once every service is listening, so the backend knows when the
//! bottle's network path is ready. It says nothing about the config.

use std::future::Future;
use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;

use crate::{Error, Result};

/// Binds the health endpoint now (so a bind failure stops startup) and returns the serving
/// future, which only ends on an error.
pub async fn serve(addr: SocketAddr) -> Result<impl Future<Output = Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Health { addr, source })?;
    let app = Router::new().route("/healthz", get(|| async { "ok\n" }));
    Ok(async move {
        axum::serve(listener, app)
            .await
            .map_err(|source| Error::Health { addr, source })
    })
}
