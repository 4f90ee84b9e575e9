//! The agent-facing forward proxy.
//!
//! This module owns the request path: the outer HTTP/1.1 connection (absolute-form plain HTTP
//! and `CONNECT`), the passthrough splice, and for intercepted routes the TLS termination with
//! a leaf from the bottle CA and the inner HTTP/1.1 service that checks, injects and forwards
//! every request on its own. One canonical authority per request: the CONNECT target or the
//! absolute URI, normalised; SNI, `Host` and an absolute target inside a tunnel must agree
//! with it, and upstream SNI and `Host` are always the route's host.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING,
    UPGRADE,
};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::addr::{normalise_host, Host};
use crate::audit::{ms_since, now_rfc3339, AuditSink, Counters, Record};
use crate::policy::{CompiledRoute, Policy, Refusal};
use crate::pool::{BoxError, Lease, Pool};
use crate::upstream::{connect_checked, find_error, resolve_checked, Connector};
use crate::Error;
use bottle_config::EgressLimits;
use bottle_tls::LeafCache;

/// Everything a connection task needs.
pub(crate) struct Shared {
    pub policy: Arc<ArcSwap<Policy>>,
    pub leaves: LeafCache,
    pub connector: Connector,
    pub pool: Pool,
    pub audit: AuditSink,
    pub counters: Counters,
    pub bottle: String,
    pub limits: EgressLimits,
}

/// The body sent back to the agent: a streamed upstream body or a proxy-made one.
pub(crate) type RespBody = Either<Counted, Full<Bytes>>;

const REFUSAL_HEADER: &str = "x-bottle-refusal";

fn http1_server(limits: &EgressLimits) -> http1::Builder {
    let mut b = http1::Builder::new();
    // hyper's floor for the read buffer is 8 KiB; a head larger than the buffer gets 431.
    b.max_buf_size(limits.max_header_bytes.max(8192))
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.idle_timeout_ms.max(1)))
        .keep_alive(true);
    b
}

/// Serves one accepted agent connection.
pub(crate) async fn serve_agent(shared: Arc<Shared>, tcp: TcpStream) {
    tune_accepted(&tcp);
    let s = shared.clone();
    let svc = service_fn(move |req| {
        let s = s.clone();
        async move { Ok::<_, std::convert::Infallible>(handle_outer(s, req).await) }
    });
    let _ = http1_server(&shared.limits)
        .serve_connection(TokioIo::new(tcp), svc)
        .with_upgrades()
        .await;
}

/// Socket options of an accepted agent connection: `TCP_NODELAY`, because Nagle on the agent
/// leg would hold small responses for a delayed-ACK period (~40 ms) on a fresh connection.
pub(crate) fn tune_accepted(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
}

/// What an audit line needs besides the outcome.
struct Ctx<'a> {
    method: &'a str,
    host: &'a str,
    port: u16,
    path: &'a str,
    route: Option<&'a str>,
}

// One argument per audit field the caller decides; a struct would only repeat `Record`.
#[allow(clippy::too_many_arguments)]
fn audit(
    shared: &Shared,
    c: &Ctx<'_>,
    decision: &str,
    reason: &str,
    injected: Option<&'static str>,
    status: u16,
    up: u64,
    down: u64,
    start: Instant,
) {
    shared.audit.log(&Record {
        time: now_rfc3339(),
        bottle: &shared.bottle,
        method: c.method,
        host: c.host,
        port: c.port,
        path: c.path,
        route: c.route,
        decision,
        reason,
        injected,
        status,
        bytes_up: up,
        bytes_down: down,
        duration_ms: ms_since(start),
    });
}

/// A proxy-made refusal: status, reason header, and a body naming what was refused and why.
fn refusal(status: StatusCode, r: Refusal, method: &str, target: &str) -> Response<RespBody> {
    let body = format!(
        "bot-bottle egress refused {method} {target}: {} ({})\n",
        r.why(),
        r.code()
    );
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(REFUSAL_HEADER, HeaderValue::from_static(r.code()));
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::BAD_REQUEST {
        // After a framing problem the rest of the connection cannot be trusted.
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn deny(shared: &Shared, c: &Ctx<'_>, r: Refusal, start: Instant) -> Response<RespBody> {
    Counters::inc(&shared.counters.denied);
    let status = match r {
        Refusal::AmbiguousLength | Refusal::NotProxyRequest => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    };
    audit(
        shared,
        c,
        "deny",
        r.code(),
        None,
        status.as_u16(),
        0,
        0,
        start,
    );
    let target = if c.method == "CONNECT" {
        format!("{}:{}", c.host, c.port)
    } else {
        format!("{}:{}{}", c.host, c.port, c.path)
    };
    refusal(status, r, c.method, &target)
}

fn upstream_error(
    shared: &Shared,
    c: &Ctx<'_>,
    err: &(dyn std::error::Error + 'static),
    start: Instant,
) -> Response<RespBody> {
    if let Some(Error::Refused(r)) = find_error(err) {
        return deny(shared, c, *r, start);
    }
    Counters::inc(&shared.counters.errors);
    let (status, code) = match find_error(err) {
        Some(Error::ConnectTimeout { .. }) => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
        Some(Error::UpstreamTls { .. }) => (StatusCode::BAD_GATEWAY, "upstream_tls"),
        _ => (StatusCode::BAD_GATEWAY, "upstream_error"),
    };
    audit(shared, c, "error", code, None, status.as_u16(), 0, 0, start);
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(format!(
        "bot-bottle egress could not reach {}:{}: {code}\n",
        c.host, c.port
    )))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("x-bottle-error", HeaderValue::from_static(code));
    resp
}

/// Both `Content-Length` and `Transfer-Encoding`: the classic smuggling shape; refuse.
fn ambiguous_length(h: &HeaderMap) -> bool {
    h.contains_key(TRANSFER_ENCODING) && h.contains_key(CONTENT_LENGTH)
}

/// Splits `host[:port]` (with IPv6 brackets) from a Host header or authority.
fn split_authority(s: &str) -> Option<(&str, Option<u16>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (h, rest) = s.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(p) => Some((h, Some(p.parse().ok()?))),
            None if rest.is_empty() => Some((h, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

/// True when the `Host` header (if any) names `host:port`.
fn host_header_agrees(h: &HeaderMap, host: &Host, port: u16, default_port: u16) -> bool {
    let mut values = h.get_all(HOST).iter();
    let Some(v) = values.next() else { return true };
    if values.next().is_some() {
        return false;
    }
    let Ok(s) = v.to_str() else { return false };
    let Some((hh, hp)) = split_authority(s) else {
        return false;
    };
    normalise_host(hh).ok().as_ref() == Some(host) && hp.unwrap_or(default_port) == port
}

async fn handle_outer(shared: Arc<Shared>, req: Request<Incoming>) -> Response<RespBody> {
    Counters::inc(&shared.counters.requests);
    if req.method() == Method::CONNECT {
        return handle_connect(shared, req).await;
    }
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    if req.uri().scheme_str() == Some("http") && req.uri().authority().is_some() {
        return handle_plain(shared, req).await;
    }
    let c = Ctx {
        method: method.as_str(),
        host: "-",
        port: 0,
        path: &path,
        route: None,
    };
    deny(&shared, &c, Refusal::NotProxyRequest, start)
}

async fn handle_connect(shared: Arc<Shared>, mut req: Request<Incoming>) -> Response<RespBody> {
    let start = Instant::now();
    let Some(auth) = req.uri().authority().cloned() else {
        let c = Ctx {
            method: "CONNECT",
            host: "-",
            port: 0,
            path: "",
            route: None,
        };
        return deny(&shared, &c, Refusal::InvalidHost, start);
    };
    let raw_host = auth.host();
    let port = auth.port_u16().unwrap_or(0);
    let mut c = Ctx {
        method: "CONNECT",
        host: raw_host,
        port,
        path: "",
        route: None,
    };
    if port == 0 || auth.as_str().contains('@') {
        return deny(&shared, &c, Refusal::InvalidHost, start);
    }
    let host = match normalise_host(raw_host) {
        Ok(h) => h,
        Err(e) => return deny(&shared, &c, e.into(), start),
    };
    let host_s = host.to_string();
    c.host = &host_s;
    let policy = shared.policy.load();
    let route = match policy.find(&host, port, 443) {
        Ok(r) => r,
        Err(r) => return deny(&shared, &c, r, start),
    };
    let route_host = route.route.host.clone();
    c.route = Some(&route_host);
    // Fail closed: no 200 before the destination is known to be allowed.
    let addrs = match resolve_checked(
        &host,
        port,
        route.allow_private(),
        shared.connector.overrides(),
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return deny(&shared, &c, r, start),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    Counters::inc(&shared.counters.tunnels);
    if !route.intercepts() {
        let timeout = Duration::from_millis(shared.limits.connect_timeout_ms);
        let upstream = match connect_checked(&addrs, timeout).await {
            Ok(s) => s,
            Err(e) => return upstream_error(&shared, &c, &e, start),
        };
        Counters::inc(&shared.counters.allowed);
        let s = shared.clone();
        tokio::spawn(async move {
            let Ok(agent) = on_upgrade.await else { return };
            let mut agent = TokioIo::new(agent);
            let mut upstream = upstream;
            let timeout = Duration::from_millis(s.limits.idle_timeout_ms.max(1));
            let first = tokio::time::timeout(timeout, peek_sni(&mut agent)).await;
            let hello = match first {
                Ok(Ok((sni, raw))) if sni_agrees(sni.as_deref(), &host) => raw,
                _ => {
                    // Another name's TLS session (domain fronting), no SNI, or not TLS at all.
                    Counters::inc(&s.counters.denied);
                    let c = Ctx {
                        method: "CONNECT",
                        host: &host_s,
                        port,
                        path: "",
                        route: Some(&route_host),
                    };
                    audit(
                        &s,
                        &c,
                        "deny",
                        Refusal::SniMismatch.code(),
                        None,
                        0,
                        0,
                        0,
                        start,
                    );
                    return;
                }
            };
            if tokio::io::AsyncWriteExt::write_all(&mut upstream, &hello)
                .await
                .is_err()
            {
                return;
            }
            let (up, down) = splice(agent, upstream).await;
            let up = up + hello.len() as u64;
            s.counters.bytes_up.fetch_add(up, Ordering::Relaxed);
            s.counters.bytes_down.fetch_add(down, Ordering::Relaxed);
            let c = Ctx {
                method: "CONNECT",
                host: &host_s,
                port,
                path: "",
                route: Some(&route_host),
            };
            audit(&s, &c, "allow", "passthrough", None, 200, up, down, start);
        });
        return Response::new(Either::Right(Full::new(Bytes::new())));
    }
    let tls_cfg = match shared.leaves.server_config(&host.bare()) {
        Ok(cfg) => cfg,
        Err(_) => {
            Counters::inc(&shared.counters.errors);
            audit(
                &shared,
                &c,
                "error",
                "leaf_mint_failed",
                None,
                500,
                0,
                0,
                start,
            );
            let mut r = Response::new(Either::Right(Full::new(Bytes::from_static(
                b"bot-bottle egress could not mint a certificate\n",
            ))));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return r;
        }
    };
    audit(&shared, &c, "allow", "intercept", None, 200, 0, 0, start);
    let s = shared.clone();
    tokio::spawn(async move {
        let Ok(agent) = on_upgrade.await else { return };
        let tunnel = Arc::new(Tunnel::new(host, port, host_s));
        intercept(s, TokioIo::new(agent), tls_cfg, tunnel).await;
    });
    Response::new(Either::Right(Full::new(Bytes::new())))
}

/// Largest ClientHello the passthrough check buffers.
const MAX_HELLO: usize = 16 * 1024;

/// Reads the agent's first bytes on a passthrough tunnel until rustls has parsed a whole
/// ClientHello; returns its SNI and the raw bytes (to be replayed upstream unchanged).
async fn peek_sni<A>(agent: &mut A) -> std::io::Result<(Option<String>, Vec<u8>)>
where
    A: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut acceptor = rustls::server::Acceptor::default();
    let mut raw = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    loop {
        let n = agent.read(&mut buf).await?;
        if n == 0 || raw.len() + n > MAX_HELLO {
            return Err(bad("no ClientHello"));
        }
        raw.extend_from_slice(&buf[..n]);
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            acceptor.read_tls(&mut chunk)?;
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let sni = accepted.client_hello().server_name().map(str::to_owned);
                return Ok((sni, raw));
            }
            Ok(None) => continue,
            Err(_) => return Err(bad("not TLS")),
        }
    }
}

/// A passthrough tunnel's SNI must name the CONNECT host; an IP-literal host has none.
fn sni_agrees(sni: Option<&str>, host: &Host) -> bool {
    match (sni, host) {
        (Some(s), h) => normalise_host(s).ok().as_ref() == Some(h),
        (None, Host::Ip(_)) => true,
        (None, Host::Name(_)) => false,
    }
}

/// Copies both ways until either side closes; returns (bytes up, bytes down). The bytes are
/// counted as they are read, so a tunnel that ends in a reset (which makes
/// `copy_bidirectional` return an error and no counts) still reports what it carried.
async fn splice<A>(agent: A, upstream: TcpStream) -> (u64, u64)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut agent = ReadCounter::new(agent);
    let mut upstream = ReadCounter::new(upstream);
    let _ = tokio::io::copy_bidirectional(&mut agent, &mut upstream).await;
    (agent.read, upstream.read)
}

/// A stream that counts the bytes read from it.
struct ReadCounter<S> {
    inner: S,
    read: u64,
}

impl<S> ReadCounter<S> {
    fn new(inner: S) -> Self {
        Self { inner, read: 0 }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for ReadCounter<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read += (buf.filled().len() - before) as u64;
        r
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for ReadCounter<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The canonical authority of one intercepted tunnel.
pub(crate) struct Tunnel {
    host: Host,
    port: u16,
    /// Display form (`[::1]` for IPv6) for URIs and audit lines.
    host_s: String,
    /// `Host` header value sent upstream.
    host_header: HeaderValue,
}

impl Tunnel {
    fn new(host: Host, port: u16, host_s: String) -> Self {
        let hv = if port == 443 {
            host_s.clone()
        } else {
            format!("{host_s}:{port}")
        };
        // host_s is a normalised name or IP literal: always a valid header value.
        let host_header = HeaderValue::from_str(&hv).unwrap_or(HeaderValue::from_static("invalid"));
        Self {
            host,
            port,
            host_s,
            host_header,
        }
    }
}

async fn intercept<IO>(
    shared: Arc<Shared>,
    io: IO,
    cfg: Arc<rustls::ServerConfig>,
    tunnel: Arc<Tunnel>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let start = Instant::now();
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let timeout = Duration::from_millis(shared.limits.idle_timeout_ms.max(1));
    let Ok(Ok(hello)) = tokio::time::timeout(timeout, acceptor).await else {
        // Not TLS (or too slow): close. Never fall back to a raw tunnel.
        return;
    };
    if let Some(sni) = hello.client_hello().server_name() {
        let agrees = match (normalise_host(sni), &tunnel.host) {
            (Ok(h), t) => &h == t,
            (Err(_), _) => false,
        };
        if !agrees {
            Counters::inc(&shared.counters.denied);
            let c = Ctx {
                method: "CONNECT",
                host: &tunnel.host_s,
                port: tunnel.port,
                path: "",
                route: None,
            };
            audit(
                &shared,
                &c,
                "deny",
                Refusal::SniMismatch.code(),
                None,
                0,
                0,
                0,
                start,
            );
            return;
        }
    }
    let Ok(Ok(tls)) = tokio::time::timeout(timeout, hello.into_stream(cfg)).await else {
        return;
    };
    let s = shared.clone();
    let svc = service_fn(move |req| {
        let s = s.clone();
        let t = tunnel.clone();
        async move { Ok::<_, std::convert::Infallible>(handle_inner(s, t, req).await) }
    });
    let _ = http1_server(&shared.limits)
        .serve_connection(TokioIo::new(tls), svc)
        .with_upgrades()
        .await;
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and proxy credentials never go upstream.
fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == UPGRADE))
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in [
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
    ] {
        h.remove(n);
    }
    if !keep_upgrade {
        h.remove(CONNECTION);
        h.remove(UPGRADE);
    }
}

fn is_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(UPGRADE)
        && h.get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

async fn handle_inner(
    shared: Arc<Shared>,
    tunnel: Arc<Tunnel>,
    mut req: Request<Incoming>,
) -> Response<RespBody> {
    let start = Instant::now();
    Counters::inc(&shared.counters.requests);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut c = Ctx {
        method: method.as_str(),
        host: &tunnel.host_s,
        port: tunnel.port,
        path: &path,
        route: None,
    };
    if ambiguous_length(req.headers()) {
        return deny(&shared, &c, Refusal::AmbiguousLength, start);
    }
    if let Some(a) = req.uri().authority() {
        let same = normalise_host(a.host()).ok().as_ref() == Some(&tunnel.host)
            && a.port_u16().unwrap_or(443) == tunnel.port
            && !a.as_str().contains('@');
        if !same {
            return deny(&shared, &c, Refusal::AuthorityMismatch, start);
        }
    }
    if !host_header_agrees(req.headers(), &tunnel.host, tunnel.port, 443) {
        return deny(&shared, &c, Refusal::HostMismatch, start);
    }
    // Per request, from the live policy: an approval or removal applies to open tunnels too.
    let policy = shared.policy.load();
    let route = match policy.find(&tunnel.host, tunnel.port, 443) {
        Ok(r) if r.intercepts() => r,
        Ok(_) => return deny(&shared, &c, Refusal::HostNotAllowed, start),
        Err(r) => return deny(&shared, &c, r, start),
    };
    c.route = Some(&route.route.host);
    if let Err(r) = route.check_request(&method, &path) {
        return deny(&shared, &c, r, start);
    }
    let upgrade = is_upgrade(req.headers());
    let injected = prepare(&mut req, route, &tunnel.host_header, upgrade);
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri = match Uri::try_from(format!("https://{}:{}{}", tunnel.host_s, tunnel.port, pq)) {
        Ok(u) => u,
        Err(_) => return deny(&shared, &c, Refusal::PathNotAllowed, start),
    };
    *req.uri_mut() = uri;
    forward(&shared, &c, req, injected, upgrade, start).await
}

/// Strips hop-by-hop headers, sets `Host` to the route's host and injects the credential,
/// replacing whatever the agent sent in that header. Returns the injected scheme.
fn prepare(
    req: &mut Request<Incoming>,
    route: &CompiledRoute,
    host: &HeaderValue,
    upgrade: bool,
) -> Option<&'static str> {
    let h = req.headers_mut();
    strip_hop_by_hop(h, upgrade);
    h.insert(HOST, host.clone());
    let inj = route.inject.as_ref()?;
    h.remove(&inj.name);
    h.insert(inj.name.clone(), inj.value.clone());
    Some(inj.label)
}

async fn forward(
    shared: &Arc<Shared>,
    c: &Ctx<'_>,
    req: Request<Incoming>,
    injected: Option<&'static str>,
    upgrade: bool,
    start: Instant,
) -> Response<RespBody> {
    let up_len = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if injected.is_some() {
        Counters::inc(&shared.counters.injected);
    }
    let result = if upgrade {
        forward_upgrade(shared, req).await.map(|r| (r, None))
    } else {
        shared.pool.send(req).await.map(|(r, l)| (r, Some(l)))
    };
    let (resp, lease) = match result {
        Ok(r) => r,
        Err(e) => return upstream_error(shared, c, e.as_ref(), start),
    };
    Counters::inc(&shared.counters.allowed);
    shared
        .counters
        .bytes_up
        .fetch_add(up_len, Ordering::Relaxed);
    let status = resp.status().as_u16();
    let pending = Pending {
        shared: shared.clone(),
        method: c.method.to_owned(),
        host: c.host.to_owned(),
        port: c.port,
        path: c.path.to_owned(),
        route: c.route.map(str::to_owned),
        injected,
        status,
        up: up_len,
        start,
    };
    resp.map(|b| {
        Either::Left(Counted {
            inner: b,
            bytes: 0,
            ended: false,
            lease,
            pending: Some(pending),
        })
    })
}

/// WebSocket (or other) upgrade: a dedicated upstream connection, then both upgraded streams
/// are spliced. Frames after the upgrade are opaque; the credential went in the upgrade request.
async fn forward_upgrade(
    shared: &Arc<Shared>,
    mut req: Request<Incoming>,
) -> std::result::Result<Response<Incoming>, BoxError> {
    let agent_upgrade = hyper::upgrade::on(&mut req);
    let io = shared.connector.connect(req.uri()).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    // The upstream sees origin-form.
    if let Some(pq) = req.uri().path_and_query().cloned() {
        *req.uri_mut() = Uri::from(pq);
    }
    let mut resp = sender.send_request(req).await?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let up_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            if let (Ok(a), Ok(u)) = (agent_upgrade.await, up_upgrade.await) {
                let (mut a, mut u) = (TokioIo::new(a), TokioIo::new(u));
                let _ = tokio::io::copy_bidirectional(&mut a, &mut u).await;
            }
        });
    }
    Ok(resp)
}

async fn handle_plain(shared: Arc<Shared>, mut req: Request<Incoming>) -> Response<RespBody> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let Some(auth) = req.uri().authority().cloned() else {
        let c = Ctx {
            method: method.as_str(),
            host: "-",
            port: 0,
            path: &path,
            route: None,
        };
        return deny(&shared, &c, Refusal::NotProxyRequest, start);
    };
    let port = auth.port_u16().unwrap_or(80);
    let mut c = Ctx {
        method: method.as_str(),
        host: auth.host(),
        port,
        path: &path,
        route: None,
    };
    if auth.as_str().contains('@') {
        return deny(&shared, &c, Refusal::InvalidHost, start);
    }
    if ambiguous_length(req.headers()) {
        return deny(&shared, &c, Refusal::AmbiguousLength, start);
    }
    let host = match normalise_host(auth.host()) {
        Ok(h) => h,
        Err(e) => return deny(&shared, &c, e.into(), start),
    };
    let host_s = host.to_string();
    c.host = &host_s;
    // RFC 9112 §3.2.2 says a proxy uses the target and ignores Host; we refuse a disagreement
    // instead, so nothing downstream can be confused by it.
    if !host_header_agrees(req.headers(), &host, port, 80) {
        return deny(&shared, &c, Refusal::HostMismatch, start);
    }
    let policy = shared.policy.load();
    let route = match policy.find(&host, port, 80) {
        Ok(r) => r,
        Err(r) => return deny(&shared, &c, r, start),
    };
    c.route = Some(&route.route.host);
    if route.inject.is_some() {
        return deny(&shared, &c, Refusal::TlsRequired, start);
    }
    if let Err(r) = route.check_request(&method, &path) {
        return deny(&shared, &c, r, start);
    }
    let hv = if port == 80 {
        host_s.clone()
    } else {
        format!("{host_s}:{port}")
    };
    let host_header = HeaderValue::from_str(&hv).unwrap_or(HeaderValue::from_static("invalid"));
    let injected = prepare(&mut req, route, &host_header, false);
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    match Uri::try_from(format!("http://{host_s}:{port}{pq}")) {
        Ok(u) => *req.uri_mut() = u,
        Err(_) => return deny(&shared, &c, Refusal::InvalidHost, start),
    }
    forward(&shared, &c, req, injected, false, start).await
}

/// The audit line of a forwarded request, written when its response body ends or is dropped.
pub(crate) struct Pending {
    shared: Arc<Shared>,
    method: String,
    host: String,
    port: u16,
    path: String,
    route: Option<String>,
    injected: Option<&'static str>,
    status: u16,
    up: u64,
    start: Instant,
}

/// An upstream response body that counts bytes, writes the audit line at its end and, if it
/// was read to the end, gives its upstream connection back to the pool.
pub(crate) struct Counted {
    inner: Incoming,
    bytes: u64,
    /// The upstream sent the whole body (the connection can carry another request).
    ended: bool,
    lease: Option<Lease>,
    pending: Option<Pending>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            // hyper may stop polling once `is_end_stream` says so (known lengths, empty
            // bodies), hence both checks. A body dropped early closes the connection.
            if self.ended || self.inner.is_end_stream() {
                lease.release();
            }
        }
        if let Some(p) = self.pending.take() {
            p.shared
                .counters
                .bytes_down
                .fetch_add(self.bytes, Ordering::Relaxed);
            let c = Ctx {
                method: &p.method,
                host: &p.host,
                port: p.port,
                path: &p.path,
                route: p.route.as_deref(),
            };
            let reason = if p.injected.is_some() {
                "inject"
            } else {
                "forward"
            };
            audit(
                &p.shared, &c, "allow", reason, p.injected, p.status, p.up, self.bytes, p.start,
            );
        }
    }
}

impl Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) => this.ended = true,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_agent_sockets_get_nodelay() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = l.accept().await.unwrap();
        assert!(!tcp.nodelay().unwrap());
        tune_accepted(&tcp);
        assert!(tcp.nodelay().unwrap());
    }

    #[tokio::test]
    async fn splice_counts_bytes_even_when_the_tunnel_ends_in_a_reset() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut far = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (upstream, _) = l.accept().await.unwrap();
        let (agent, mut agent_peer) = tokio::io::duplex(1024);
        let task = tokio::spawn(splice(agent, upstream));
        agent_peer.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        far.read_exact(&mut got).await.unwrap();
        far.write_all(b"world!").await.unwrap();
        let mut back = [0u8; 6];
        agent_peer.read_exact(&mut back).await.unwrap();
        // A zero linger makes the close a reset instead of a FIN.
        far.set_zero_linger().unwrap();
        drop(far);
        let counts = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(counts, (5, 6));
    }

    #[test]
    fn authority_splitting() {
        assert_eq!(split_authority("a.test:8443"), Some(("a.test", Some(8443))));
        assert_eq!(split_authority("a.test"), Some(("a.test", None)));
        assert_eq!(split_authority("[::1]:443"), Some(("[::1]", Some(443))));
        assert_eq!(split_authority("[::1]"), Some(("[::1]", None)));
        assert_eq!(split_authority("a:b"), None);
        assert_eq!(split_authority("[::1]x"), None);
    }
}
