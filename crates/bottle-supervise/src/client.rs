//! The control-API client: one bottle's requests, events and answers over HTTP.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::endpoint::BottleEndpoint;
use crate::error::{Error, Result};
use crate::types::{AnswerBody, ErrorBody, EventsPage, Request, RequestsPage};

/// A client for one bottle's control API.
#[derive(Debug, Clone)]
pub struct ControlClient {
    http: reqwest::Client,
    endpoint: BottleEndpoint,
}

impl ControlClient {
    /// A client for `endpoint`.
    pub fn new(endpoint: BottleEndpoint) -> Result<Self> {
        let http = reqwest::Client::builder()
            // The control API is on this host; a proxy from the environment must never see the
            // bottle's token.
            .no_proxy()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(Error::HttpClient)?;
        Ok(Self { http, endpoint })
    }

    /// The bottle this client talks to.
    pub fn endpoint(&self) -> &BottleEndpoint {
        &self.endpoint
    }

    /// `GET /requests?state=pending|all`.
    pub async fn requests(&self, all: bool) -> Result<RequestsPage> {
        let state = if all { "all" } else { "pending" };
        let request = self
            .http
            .get(format!(
                "{}/requests?state={state}",
                self.endpoint.control_url
            ))
            .timeout(Duration::from_secs(10));
        self.send(request).await
    }

    /// `GET /events?since=N&wait=S`: returns at once if there are events after `since`, else
    /// waits up to `wait_secs` for one.
    pub async fn events(&self, since: u64, wait_secs: u64) -> Result<EventsPage> {
        let request = self
            .http
            .get(format!(
                "{}/events?since={since}&wait={wait_secs}",
                self.endpoint.control_url
            ))
            .timeout(Duration::from_secs(wait_secs + 10));
        self.send(request).await
    }

    /// `POST /requests/<id>/answer`.
    pub async fn answer(&self, id: &str, body: &AnswerBody) -> Result<Request> {
        let request = self
            .http
            .post(format!(
                "{}/requests/{}/answer",
                self.endpoint.control_url,
                encode_segment(id)
            ))
            .json(body)
            // Approving egress waits on the proxy's admin API.
            .timeout(Duration::from_secs(30));
        self.send(request).await
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let bottle = &self.endpoint.slug;
        let http_err = |source: reqwest::Error| Error::ControlHttp {
            bottle: bottle.clone(),
            source: source.without_url(),
        };
        let response = request
            .bearer_auth(self.endpoint.control_token.expose())
            .send()
            .await
            .map_err(http_err)?;
        let status = response.status();
        if status.is_success() {
            return response.json().await.map_err(http_err);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or_else(|_| text.chars().take(300).collect());
        Err(Error::ControlStatus {
            bottle: bottle.clone(),
            status: status.as_u16(),
            message,
        })
    }
}

/// Percent-encodes a path segment (ids are plain letters; anything else is escaped).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
