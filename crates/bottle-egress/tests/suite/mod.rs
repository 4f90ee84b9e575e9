//! Shared harness: a test origin CA, HTTPS/HTTP upstreams on loopback, a proxy with routes,
//! and curl/raw-socket clients.

mod admin;
mod fuzz;
mod policy;
mod streaming;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottle_config::{
    AuthScheme, CaMaterial, EgressConfig, EgressLimits, Injection, Route, Secret, TlsMode,
};
use bottle_egress::{EgressHandle, EgressProxy};
use bottle_tls::{Ca, LeafCache};
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const REAL: &str = "real-token-7f3c9e1d2b";
pub const ADMIN: &str = "admin-token-55aa";
pub const PLACEHOLDER: &str = bottle_config::PLACEHOLDER;
pub const T: Duration = Duration::from_secs(20);

pub type Body = BoxBody<Bytes, Infallible>;
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

pub fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

/// What an upstream received.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
}

pub type SeenLog = Arc<Mutex<Vec<Seen>>>;

/// The origin CA: signs upstream certificates for any SNI; trusted by the proxy as extra root.
pub fn origin() -> Arc<LeafCache> {
    static O: std::sync::OnceLock<Arc<LeafCache>> = std::sync::OnceLock::new();
    O.get_or_init(|| Arc::new(LeafCache::new(Ca::generate("test origin CA").unwrap())))
        .clone()
}

#[derive(Debug)]
struct SniMint(Arc<LeafCache>);
impl rustls::server::ResolvesServerCert for SniMint {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let name = hello.server_name().unwrap_or("localhost").to_owned();
        self.0.certified_key(&name).ok()
    }
}

pub fn origin_server_config() -> Arc<rustls::ServerConfig> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(bottle_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniMint(origin())));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Records the request, then answers `200 hello <path>`.
pub fn echo_handler(seen: SeenLog) -> Handler {
    Arc::new(move |req: Request<Incoming>| {
        let seen = seen.clone();
        Box::pin(async move {
            record(&seen, &req);
            Response::new(full(format!("hello {}", req.uri().path())))
        })
    })
}

pub fn record(seen: &SeenLog, req: &Request<Incoming>) {
    seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        headers: req.headers().clone(),
    });
}

/// An HTTPS (tls = true) or HTTP upstream on 127.0.0.1.
pub async fn upstream(tls: bool, handler: Handler) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(origin_server_config());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let h = handler.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let h = h.clone();
                    async move { Ok::<_, Infallible>(h(req).await) }
                });
                let b = hyper::server::conn::http1::Builder::new();
                if tls {
                    if let Ok(s) = acceptor.accept(tcp).await {
                        let _ = b
                            .serve_connection(TokioIo::new(s), svc)
                            .with_upgrades()
                            .await;
                    }
                } else {
                    let _ = b
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                }
            });
        }
    });
    addr
}

pub fn route(host: &str, port: u16) -> Route {
    Route {
        host: host.into(),
        ports: vec![port],
        methods: vec![],
        paths: vec![],
        tls: TlsMode::Intercept,
        auth: None,
        allow_private: true,
        origin: Some("test".into()),
    }
}

pub fn bearer(mut r: Route) -> Route {
    r.auth = Some(Injection {
        scheme: AuthScheme::Bearer,
        secret: Secret::new(REAL),
    });
    r
}

pub struct Env {
    pub proxy: EgressHandle,
    pub dir: tempfile::TempDir,
    pub bottle_ca: PathBuf,
    pub origin_ca: PathBuf,
    pub audit: PathBuf,
}

/// Names the tests use, all answered with 127.0.0.1 by the proxy's resolver override.
pub const NAMES: &[&str] = &[
    "api.test",
    "other.test",
    "evil.test",
    "plain.test",
    "ws.test",
    "sse.test",
    "noopt.test",
    "late.test",
    "redir.test",
];

pub async fn proxy(routes: Vec<Route>) -> Env {
    proxy_with(routes, EgressLimits::default(), &[]).await
}

pub async fn proxy_with(routes: Vec<Route>, limits: EgressLimits, extra: &[(&str, IpAddr)]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("bottle test CA").unwrap();
    let bottle_ca = dir.path().join("bottle-ca.pem");
    std::fs::write(&bottle_ca, ca.cert_pem()).unwrap();
    let origin_ca = dir.path().join("origin-ca.pem");
    std::fs::write(&origin_ca, origin().ca().cert_pem()).unwrap();
    let audit = dir.path().join("egress.jsonl");
    let cfg = EgressConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Secret::new(ADMIN),
        ca: CaMaterial {
            cert_pem: ca.cert_pem().into(),
            key_pem: Secret::new(ca.key_pem()),
        },
        extra_roots_pem: Some(origin().ca().cert_pem().into()),
        routes,
        limits,
    };
    let mut b = EgressProxy::builder(cfg)
        .bottle("test-bottle")
        .audit_log(&audit);
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    for n in NAMES {
        b = b.resolve(n, [lo]);
    }
    for (n, ip) in extra {
        b = b.resolve(n, [*ip]);
    }
    let proxy = b.build().unwrap().start().await.unwrap();
    Env {
        proxy,
        dir,
        bottle_ca,
        origin_ca,
        audit,
    }
}

impl Env {
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.proxy.local_addr())
    }

    /// Audit lines written so far (waits briefly for the writer thread).
    pub async fn audit_lines(&self, at_least: usize) -> Vec<serde_json::Value> {
        for _ in 0..200 {
            let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.len() >= at_least {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "fewer than {at_least} audit lines in {}",
            self.audit.display()
        );
    }

    pub fn audit_text(&self) -> String {
        std::fs::read_to_string(&self.audit).unwrap_or_default()
    }

    /// Runs curl through the proxy. Returns (exit code, http code, connect code, headers, body).
    pub async fn curl(&self, args: &[&str]) -> Curl {
        let hdr = self.dir.path().join(format!("h-{}", rand_suffix()));
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args([
            "-sS",
            "--max-time",
            "15",
            "--noproxy",
            "",
            "--proxy",
            &self.proxy_url(),
        ])
        .args(["--cacert", self.bottle_ca.to_str().unwrap()])
        .args([
            "-D",
            hdr.to_str().unwrap(),
            "-w",
            "\n%{http_code} %{http_connect}",
        ])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY");
        let out = tokio::time::timeout(T, cmd.output())
            .await
            .expect("curl timed out")
            .expect("curl runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, codes) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
        let mut it = codes.split_whitespace();
        let code: u16 = it.next().unwrap_or("0").parse().unwrap_or(0);
        let connect: u16 = it.next().unwrap_or("0").parse().unwrap_or(0);
        Curl {
            exit: out.status.code().unwrap_or(-1),
            code,
            connect,
            headers: std::fs::read_to_string(&hdr).unwrap_or_default(),
            body: body.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug)]
pub struct Curl {
    pub exit: i32,
    pub code: u16,
    pub connect: u16,
    pub headers: String,
    pub body: String,
    pub stderr: String,
}

/// Sends raw bytes to the proxy and reads the reply until close or `until` appears.
pub async fn raw(proxy: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_reply(&mut s).await
}

/// Reads one response head + body (up to close, or the body of a small response).
pub async fn read_reply(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            let text = String::from_utf8_lossy(&buf);
            if let Some(i) = text.find("\r\n\r\n") {
                let head = &text[..i];
                let cl = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                });
                match cl {
                    Some(n) if buf.len() >= i + 4 + n => break,
                    None if head.starts_with("HTTP/1.1 200") => break,
                    _ => {}
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Opens a CONNECT tunnel and returns the stream after a 200 (or the refusal text).
pub async fn connect_tunnel(proxy: SocketAddr, target: &str) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let reply = read_reply(&mut s).await;
    if reply.starts_with("HTTP/1.1 200") {
        Ok(s)
    } else {
        Err(reply)
    }
}

/// A rustls client config trusting only `ca_pem`.
pub fn client_tls(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(bottle_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Asserts the secret appears nowhere the agent or the log can see.
pub fn assert_no_secret(texts: &[&str]) {
    for t in texts {
        assert!(!t.contains(REAL), "secret leaked: {t}");
    }
}
