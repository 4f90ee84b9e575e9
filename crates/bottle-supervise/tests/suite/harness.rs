//! A supervise server on loopback with a temp state dir, a recording egress admin server, and
//! helpers for an rmcp client and the control API.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bottle_config::{AdminEndpoint, BottleIdent, Secret, SuperviseConfig};
use bottle_supervise::types::Request;
use bottle_supervise::{BottleEndpoint, Supervise, SuperviseHandle};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{Peer, RoleClient, ServiceError, ServiceExt};
use serde_json::Value;
use tempfile::TempDir;

pub const CONTROL_TOKEN: &str = "control-token-5up3r53cr3t";
pub const ADMIN_TOKEN: &str = "admin-token-3gr355";
/// Bound on every network wait in the tests (never reached when things work).
pub const WAIT: Duration = Duration::from_secs(60);

/// What the recording egress admin server saw.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub authorization: Option<String>,
    pub body: Value,
}

/// A fake egress admin API that records `POST /routes`.
pub struct Recorder {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
    pub status: Arc<Mutex<u16>>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let status = Arc::new(Mutex::new(201u16));
        let app = axum::Router::new().route(
            "/routes",
            post({
                let seen = seen.clone();
                let status = status.clone();
                move |headers: HeaderMap, body: axum::body::Bytes| async move {
                    seen.lock().unwrap().push(Recorded {
                        authorization: headers
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_owned()),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                    let code = *status.lock().unwrap();
                    (StatusCode::from_u16(code).unwrap(), "recorded")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Recorder { url, seen, status }
    }

    pub fn seen(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

/// A running supervise service.
pub struct Harness {
    pub dir: TempDir,
    pub handle: SuperviseHandle,
    pub recorder: Recorder,
    pub timeout_secs: u64,
    pub slug: String,
}

impl Harness {
    pub async fn start(timeout_secs: u64) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::start().await;
        let handle = serve(dir.path(), &recorder, timeout_secs, "bottle-a1");
        Harness {
            dir,
            handle,
            recorder,
            timeout_secs,
            slug: "bottle-a1".into(),
        }
    }

    /// Stops the server and starts a new one on the same state dir (new ports).
    pub async fn restart(self) -> Harness {
        let Harness {
            dir,
            handle,
            recorder,
            timeout_secs,
            slug,
        } = self;
        tokio::time::timeout(WAIT, handle.shutdown()).await.unwrap();
        let handle = serve(dir.path(), &recorder, timeout_secs, &slug);
        Harness {
            dir,
            handle,
            recorder,
            timeout_secs,
            slug,
        }
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit/supervise.jsonl")
    }

    pub fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.audit_path())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.handle.mcp_addr())
    }

    pub fn control_url(&self) -> String {
        format!("http://{}", self.handle.control_addr())
    }

    pub fn endpoint(&self) -> BottleEndpoint {
        BottleEndpoint {
            slug: self.slug.clone(),
            name: "implementer".into(),
            label: Some("Fixer".into()),
            color: Some("cyan".into()),
            control_url: self.control_url(),
            control_token: Secret::new(CONTROL_TOKEN),
        }
    }

    pub async fn client(&self) -> RunningService<RoleClient, ()> {
        let transport = StreamableHttpClientTransport::from_uri(self.mcp_url());
        tokio::time::timeout(WAIT, ().serve(transport))
            .await
            .unwrap()
            .unwrap()
    }

    /// Polls the control API until `n` requests are pending.
    pub async fn wait_pending(&self, n: usize) -> Vec<Request> {
        let client = bottle_supervise::client::ControlClient::new(self.endpoint()).unwrap();
        tokio::time::timeout(WAIT, async {
            loop {
                let page = client.requests(false).await.unwrap();
                if page.requests.len() >= n {
                    return page.requests;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("requests never became pending")
    }

    /// A raw reqwest client and the control URL, for status-code tests.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }
}

fn serve(dir: &Path, recorder: &Recorder, timeout_secs: u64, slug: &str) -> SuperviseHandle {
    let config = SuperviseConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        control_listen: "127.0.0.1:0".parse().unwrap(),
        control_token: Secret::new(CONTROL_TOKEN),
        timeout_secs,
        egress_admin: AdminEndpoint {
            url: recorder.url.clone(),
            token: Secret::new(ADMIN_TOKEN),
        },
    };
    let ident = BottleIdent {
        slug: slug.into(),
        name: "implementer".into(),
        label: Some("Fixer".into()),
    };
    Supervise::builder(
        config,
        dir.join("state"),
        dir.join("audit/supervise.jsonl"),
        ident,
    )
    .build()
    .unwrap()
    .run()
    .unwrap()
}

/// Calls a tool with JSON arguments.
pub async fn call(
    client: &Peer<RoleClient>,
    tool: &'static str,
    args: Value,
) -> Result<CallToolResult, ServiceError> {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    tokio::time::timeout(
        WAIT,
        client.call_tool(CallToolRequestParams::new(tool).with_arguments(args)),
    )
    .await
    .expect("tool call hung")
}

/// The first text block of a result.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

/// The structured `status` of a result.
pub fn status(result: &CallToolResult) -> String {
    result.structured_content.as_ref().unwrap()["status"]
        .as_str()
        .unwrap()
        .to_owned()
}
