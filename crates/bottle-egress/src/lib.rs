//! The bottle's egress proxy as a library.
//!
//! This crate owns the bottle's only way out: an HTTP/1.1 forward proxy (absolute-form plain
//! HTTP and `CONNECT`) that allows only routed hosts, intercepts TLS with the bottle's CA where
//! a route asks for it, injects the route's credential in place of the agent's placeholder,
//! streams responses, writes one audit line per request or tunnel, and serves an admin API for
//! live route changes. The sidecar binary builds it from its `SidecarConfig`:
//!
//! ```no_run
//! # async fn f(cfg: bottle_config::EgressConfig) -> bottle_egress::Result<()> {
//! let handle = bottle_egress::EgressProxy::builder(cfg)
//!     .bottle("claude-implementer-3f9k2a")
//!     .audit_log("/audit/egress.jsonl")
//!     .build()?
//!     .start()
//!     .await?;
//! println!("proxy on {}, admin on {}", handle.local_addr(), handle.admin_addr());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

pub mod addr;
mod admin;
pub mod audit;
pub mod policy;
mod pool;
mod proxy;
pub mod upstream;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bottle_config::{EgressConfig, Secret};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

pub use policy::Refusal;

/// Errors of the egress proxy. Upstream-side errors say which upstream; none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A route in the config (or posted to the admin API) is invalid.
    #[error("egress route {host:?} is invalid: {reason}")]
    BadRoute { host: String, reason: String },
    /// The bottle CA could not be loaded or a leaf could not be minted.
    #[error("bottle CA: {0}")]
    Ca(#[from] bottle_tls::Error),
    /// `extra_roots_pem` could not be used.
    #[error("egress extra_roots_pem: {0}")]
    ExtraRoots(String),
    /// rustls refused the TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A listener could not be bound.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The audit log could not be opened.
    #[error("cannot open audit log {path}: {source}")]
    Audit {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Policy refused the upstream (raised by the connector, reported to the agent as 403).
    #[error("refused by egress policy: {}", .0.code())]
    Refused(Refusal),
    /// Upstream TCP connect failed.
    #[error("upstream connect to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Upstream TCP connect timed out.
    #[error("upstream connect to {addr} timed out")]
    ConnectTimeout { addr: SocketAddr },
    /// Upstream TLS handshake or verification failed.
    #[error("upstream TLS with {host} failed: {source}")]
    UpstreamTls {
        host: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`EgressProxy`].
#[derive(Debug)]
pub struct EgressProxyBuilder {
    config: EgressConfig,
    audit: Option<PathBuf>,
    bottle: String,
    overrides: HashMap<String, Vec<IpAddr>>,
}

impl EgressProxyBuilder {
    /// Audit log file (JSON lines, appended). Without it, no audit lines are written.
    pub fn audit_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.audit = Some(path.into());
        self
    }

    /// The bottle slug written in every audit line.
    pub fn bottle(mut self, slug: impl Into<String>) -> Self {
        self.bottle = slug.into();
        self
    }

    /// Answers `host` with `addrs` instead of DNS (like curl's `--resolve`). The addresses are
    /// still checked against the deny table. For tests and benchmarks.
    pub fn resolve(mut self, host: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        let key = match addr::normalise_host(host) {
            Ok(addr::Host::Name(n)) => n,
            _ => host.to_ascii_lowercase(),
        };
        self.overrides.entry(key).or_default().extend(addrs);
        self
    }

    /// Validates the config (routes, CA, extra roots, audit path) and prepares the proxy.
    pub fn build(self) -> Result<EgressProxy> {
        let policy = Arc::new(ArcSwap::from_pointee(policy::Policy::compile(
            &self.config.routes,
        )?));
        let ca =
            bottle_tls::Ca::from_pem(&self.config.ca.cert_pem, self.config.ca.key_pem.expose())?;
        let tls = upstream::client_tls(self.config.extra_roots_pem.as_deref())?;
        let limits = self.config.limits;
        let connector = upstream::Connector::new(
            tls,
            policy.clone(),
            self.overrides,
            Duration::from_millis(limits.connect_timeout_ms.max(1)),
        );
        // Like nginx's `keepalive 64`: bursts may open more, but only this many stay idle.
        let pool = pool::Pool::new(connector.clone(), 64, Duration::from_secs(60));
        let audit = match &self.audit {
            Some(p) => audit::AuditSink::open(p)?,
            None => audit::AuditSink::disabled(),
        };
        let shared = Arc::new(proxy::Shared {
            policy,
            leaves: bottle_tls::LeafCache::new(ca),
            connector,
            pool,
            audit,
            counters: audit::Counters::default(),
            bottle: self.bottle,
            limits,
        });
        Ok(EgressProxy {
            shared,
            listen: self.config.listen,
            admin_listen: self.config.admin_listen,
            admin_token: Arc::new(self.config.admin_token),
        })
    }
}

/// A built, not yet listening, egress proxy.
pub struct EgressProxy {
    shared: Arc<proxy::Shared>,
    listen: SocketAddr,
    admin_listen: SocketAddr,
    admin_token: Arc<Secret>,
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressProxy")
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .finish_non_exhaustive()
    }
}

impl EgressProxy {
    /// Starts building a proxy from its config.
    pub fn builder(config: EgressConfig) -> EgressProxyBuilder {
        EgressProxyBuilder {
            config,
            audit: None,
            bottle: String::new(),
            overrides: HashMap::new(),
        }
    }

    /// Binds both listeners and serves in the background.
    pub async fn start(self) -> Result<EgressHandle> {
        let bind = |what: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind { what, addr, source })
        };
        let agent = bind("the egress proxy", self.listen).await?;
        let admin = bind("the egress admin API", self.admin_listen).await?;
        let local = agent.local_addr().map_err(|source| Error::Bind {
            what: "the egress proxy",
            addr: self.listen,
            source,
        })?;
        let admin_addr = admin.local_addr().map_err(|source| Error::Bind {
            what: "the egress admin API",
            addr: self.admin_listen,
            source,
        })?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let max = self.shared.limits.max_connections.max(1);
        let sem = Arc::new(Semaphore::new(max));
        let shared = self.shared.clone();
        let mut stop = stop_rx.clone();
        let agent_task = tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    r = agent.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = stop.changed() => return,
                };
                Counters::inc(&shared.counters.connections);
                let Ok(permit) = sem.clone().try_acquire_owned() else {
                    // Over the cap: close at once rather than queue (the agent retries).
                    Counters::inc(&shared.counters.connections_rejected);
                    drop(tcp);
                    continue;
                };
                let s = shared.clone();
                tokio::spawn(async move {
                    s.counters
                        .connections_active
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    proxy::serve_agent(s.clone(), tcp).await;
                    s.counters
                        .connections_active
                        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    drop(permit);
                });
            }
        });
        let shared = self.shared.clone();
        let token = self.admin_token.clone();
        let mut stop = stop_rx;
        let admin_task = tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    r = admin.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = stop.changed() => return,
                };
                tokio::spawn(admin::serve_admin(shared.clone(), token.clone(), tcp));
            }
        });
        Ok(EgressHandle {
            local,
            admin: admin_addr,
            stop: stop_tx,
            tasks: vec![agent_task, admin_task],
        })
    }

    /// Binds and serves until the listeners stop (i.e. forever, for the sidecar).
    pub async fn run(self) -> Result<()> {
        self.start().await?.wait().await;
        Ok(())
    }
}

use audit::Counters;

/// A running proxy.
#[derive(Debug)]
pub struct EgressHandle {
    local: SocketAddr,
    admin: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl EgressHandle {
    /// Where the agent-facing proxy listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Where the admin API listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// Stops accepting connections (open connections finish on their own).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.wait().await;
    }

    /// Waits until the listeners stop.
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
