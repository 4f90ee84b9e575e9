//! The client of the egress proxy's admin API: an approved `request_egress` becomes a live route.

use std::time::Duration;

use bottle_config::{AdminEndpoint, Route, Secret, TlsMode};

use crate::error::{Error, Result};

/// Where approved egress routes are sent.
pub(crate) struct EgressAdmin {
    http: reqwest::Client,
    routes_url: String,
    token: Secret,
}

impl EgressAdmin {
    pub(crate) fn new(endpoint: &AdminEndpoint) -> Result<Self> {
        let http = reqwest::Client::builder()
            // The admin API is the sidecar's own; an HTTP(S)_PROXY in the environment must not
            // route this call (and its token) elsewhere.
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(Error::HttpClient)?;
        Ok(Self {
            http,
            routes_url: format!("{}/routes", endpoint.url.trim_end_matches('/')),
            token: endpoint.token.clone(),
        })
    }

    /// The route an approved request adds: passthrough, no credential, marked as from supervise.
    pub(crate) fn route_for(host: &str, port: u16) -> Route {
        Route {
            host: host.to_owned(),
            ports: vec![port],
            methods: vec![],
            paths: vec![],
            tls: TlsMode::Passthrough,
            auth: None,
            allow_private: false,
            origin: Some("supervise".to_owned()),
        }
    }

    /// `POST <admin>/routes` with the route as JSON.
    pub(crate) async fn add_route(&self, route: &Route) -> Result<()> {
        let response = self
            .http
            .post(&self.routes_url)
            .bearer_auth(self.token.expose())
            .json(route)
            .send()
            .await
            // Without the URL: reqwest errors name it, and the operator needs only the cause.
            .map_err(|e| Error::EgressAdminHttp(e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(Error::EgressAdminStatus {
            status: status.as_u16(),
            message: truncate(body.trim(), 300),
        })
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
