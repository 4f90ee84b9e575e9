//! The sidecar side of supervise (feature `server`): builder → [`Supervise`] → [`SuperviseHandle`].
//!
//! Two listeners: the agent-facing MCP server (streamable HTTP at `/mcp`, rmcp) and the
//! operator control API (host side, bearer token). Both share one [`Core`]: the persisted request
//! store, the audit log and the egress admin client.

pub(crate) mod audit;
pub(crate) mod control;
pub(crate) mod egress;
pub(crate) mod jsonrpc;
pub(crate) mod mcp;
pub(crate) mod store;

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bottle_config::{BottleIdent, Secret, SuperviseConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::types::{AnswerBody, Decision, Request, RequestKind};
use audit::AuditLog;
use egress::EgressAdmin;
use store::Store;

/// What the MCP server and the control API share.
pub(crate) struct Core {
    pub(crate) store: Store,
    pub(crate) timeout: Duration,
    pub(crate) egress: EgressAdmin,
    pub(crate) control_token: Secret,
    pub(crate) ident: BottleIdent,
    /// Ends waiting tools and event long polls (first step of a shutdown).
    pub(crate) cancel: CancellationToken,
    /// Tool calls currently waiting for the operator.
    pub(crate) waiting: AtomicUsize,
}

/// Counts a waiting tool call for as long as it lives.
pub(crate) struct WaitingGuard<'a>(&'a AtomicUsize);

impl<'a> WaitingGuard<'a> {
    pub(crate) fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Core {
    /// Records an operator answer; an approved egress request first gets its route from the
    /// egress admin API, and stays pending if that fails (so the operator sees the failure and
    /// the agent is never told "approved" for a host it still cannot reach).
    pub(crate) async fn answer(&self, id: &str, body: &AnswerBody) -> Result<Request> {
        let request = self.store.check(id, body)?;
        if let (RequestKind::Egress { host, port, .. }, Decision::Approve) =
            (&request.kind, body.decision)
        {
            let route = EgressAdmin::route_for(host, *port);
            match self.egress.add_route(&route).await {
                Ok(()) => self
                    .store
                    .audit("egress_route_added", json!({ "id": id, "route": route }))?,
                Err(e) => {
                    // The failure line is best effort: the error itself goes back to the operator.
                    let _ = self.store.audit(
                        "egress_route_failed",
                        json!({ "id": id, "host": host, "port": port, "error": e.to_string() }),
                    );
                    return Err(e);
                }
            }
        }
        self.store.answer(id, body)
    }
}

/// Builds a [`Supervise`].
pub struct SuperviseBuilder {
    config: SuperviseConfig,
    state_dir: PathBuf,
    audit_log: PathBuf,
    ident: BottleIdent,
    allowed_hosts: Option<Vec<String>>,
}

impl SuperviseBuilder {
    /// Restricts the `Host` headers the MCP endpoint accepts (DNS-rebinding guard). By default
    /// any host is accepted, because the agent reaches the sidecar under a name the backend
    /// chooses; the listener itself is only reachable from the bottle's network.
    pub fn allowed_hosts(mut self, hosts: Vec<String>) -> Self {
        self.allowed_hosts = Some(hosts);
        self
    }

    /// Opens the store (restoring earlier requests), the audit log, and binds both listeners.
    pub fn build(self) -> Result<Supervise> {
        let audit = AuditLog::open(&self.audit_log, &self.ident.slug)?;
        let store = Store::open(&self.state_dir, audit)?;
        let egress = EgressAdmin::new(&self.config.egress_admin)?;
        let mcp = bind(self.config.listen)?;
        let control = bind(self.config.control_listen)?;
        let core = Arc::new(Core {
            store,
            timeout: Duration::from_secs(self.config.timeout_secs),
            egress,
            control_token: self.config.control_token,
            ident: self.ident,
            cancel: CancellationToken::new(),
            waiting: AtomicUsize::new(0),
        });
        Ok(Supervise {
            core,
            mcp,
            control,
            allowed_hosts: self.allowed_hosts,
        })
    }
}

fn bind(addr: SocketAddr) -> Result<StdTcpListener> {
    let listener = StdTcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| Error::Bind { addr, source })?;
    Ok(listener)
}

/// A built supervise service with its listeners bound, not yet serving.
pub struct Supervise {
    core: Arc<Core>,
    mcp: StdTcpListener,
    control: StdTcpListener,
    allowed_hosts: Option<Vec<String>>,
}

impl Supervise {
    /// Starts building: `config` from the `SidecarConfig`, `state_dir` its `state_dir` (the queue
    /// goes to `state_dir/supervise/requests.json`), `audit_log_path` e.g.
    /// `audit_dir/supervise.jsonl`.
    pub fn builder(
        config: SuperviseConfig,
        state_dir: impl Into<PathBuf>,
        audit_log_path: impl Into<PathBuf>,
        ident: BottleIdent,
    ) -> SuperviseBuilder {
        SuperviseBuilder {
            config,
            state_dir: state_dir.into(),
            audit_log: audit_log_path.into(),
            ident,
            allowed_hosts: None,
        }
    }

    /// Where the MCP server listens (its URL is `http://<addr>/mcp`).
    pub fn mcp_addr(&self) -> Result<SocketAddr> {
        local_addr(&self.mcp)
    }

    /// Where the control API listens.
    pub fn control_addr(&self) -> Result<SocketAddr> {
        local_addr(&self.control)
    }

    /// Starts serving on the current tokio runtime.
    pub fn run(self) -> Result<SuperviseHandle> {
        let mcp_addr = local_addr(&self.mcp)?;
        let control_addr = local_addr(&self.control)?;
        let to_tokio = |l: StdTcpListener, addr| {
            tokio::net::TcpListener::from_std(l).map_err(|source| Error::Bind { addr, source })
        };
        let mcp_listener = to_tokio(self.mcp, mcp_addr)?;
        let control_listener = to_tokio(self.control, control_addr)?;
        // The servers stop only after waiting tools have returned "unavailable" (see `shutdown`).
        let cancel = CancellationToken::new();

        let mut http_config =
            StreamableHttpServerConfig::default().with_cancellation_token(cancel.child_token());
        http_config = match self.allowed_hosts {
            Some(hosts) => http_config.with_allowed_hosts(hosts),
            None => http_config.disable_allowed_hosts(),
        };
        let factory_core = self.core.clone();
        let service = StreamableHttpService::new(
            move || Ok(mcp::SuperviseMcp::new(factory_core.clone())),
            Arc::new(LocalSessionManager::default()),
            http_config,
        );
        let mcp_router = axum::Router::new()
            .nest_service("/mcp", service)
            .layer(axum::middleware::from_fn(jsonrpc::guard));
        let control_router = control::router(self.core.clone());

        let mcp_task = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                axum::serve(mcp_listener, mcp_router)
                    .with_graceful_shutdown(cancel.cancelled_owned())
                    .await
            }
        });
        let control_task = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                axum::serve(control_listener, control_router)
                    .with_graceful_shutdown(cancel.cancelled_owned())
                    .await
            }
        });
        Ok(SuperviseHandle {
            mcp_addr,
            control_addr,
            core: self.core,
            cancel,
            tasks: vec![mcp_task, control_task],
        })
    }
}

fn local_addr(listener: &StdTcpListener) -> Result<SocketAddr> {
    listener.local_addr().map_err(|source| Error::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// A running supervise service.
pub struct SuperviseHandle {
    mcp_addr: SocketAddr,
    control_addr: SocketAddr,
    core: Arc<Core>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

impl SuperviseHandle {
    /// Where the MCP server listens (its URL is `http://<addr>/mcp`).
    pub fn mcp_addr(&self) -> SocketAddr {
        self.mcp_addr
    }

    /// Where the control API listens.
    pub fn control_addr(&self) -> SocketAddr {
        self.control_addr
    }

    /// Stops both servers: waiting tools return "unavailable", open connections get a few
    /// seconds to finish, then are dropped. Pending requests stay in the store for the next run.
    pub async fn shutdown(self) {
        // First let waiting tools return their "unavailable" result over their open streams,
        // then stop the servers.
        self.core.cancel.cancel();
        let drained = async {
            while self.core.waiting.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // One more beat for the last result to be written out.
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drained).await;
        self.cancel.cancel();
        for mut task in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}
