//! The upstream leg: resolution with address checks, and TCP and TLS connects.
//!
//! This module owns the rule "resolve, check every address, connect to exactly the checked
//! address": [`resolve_checked`] is the only way to an upstream `SocketAddr`, and both the
//! passthrough splice and the [`Connector`] (used by the keep-alive pool, `crate::pool`, for
//! intercepted and plain-HTTP routes) go through it. Upstream TLS always uses the route's host
//! as SNI and verifies against the Mozilla roots plus the config's extra roots.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::addr::{normalise_host, Host};
use crate::policy::{check_addr, Policy, Refusal};
use crate::{Error, Result};

/// Static name → address overrides (like curl's `--resolve`), checked like DNS answers.
pub type Overrides = HashMap<String, Vec<IpAddr>>;

/// Resolves `host` and checks every address; all must pass, so a name with one public and one
/// private answer is refused (an attacker controls which one a client would pick).
pub async fn resolve_checked(
    host: &Host,
    port: u16,
    allow_private: bool,
    overrides: &Overrides,
) -> std::result::Result<Vec<SocketAddr>, Refusal> {
    let addrs: Vec<SocketAddr> = match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => match overrides.get(name) {
            Some(ips) => ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
            None => tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|_| Refusal::ResolveFailed)?
                .collect(),
        },
    };
    if addrs.is_empty() {
        return Err(Refusal::ResolveFailed);
    }
    let addrs: Vec<SocketAddr> = addrs
        .into_iter()
        .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
        .collect();
    for a in &addrs {
        check_addr(a.ip(), allow_private)?;
    }
    Ok(addrs)
}

/// Connects to the first reachable checked address, with `TCP_NODELAY` set.
pub async fn connect_checked(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream> {
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                // Without it a fresh connection stalls ~40 ms on Nagle + delayed ACK.
                s.set_nodelay(true).map_err(|source| Error::Connect {
                    addr: *addr,
                    source,
                })?;
                return Ok(s);
            }
            Ok(Err(source)) => {
                last = Some(Error::Connect {
                    addr: *addr,
                    source,
                })
            }
            Err(_) => last = Some(Error::ConnectTimeout { addr: *addr }),
        }
    }
    Err(last.unwrap_or(Error::Refused(Refusal::ResolveFailed)))
}

/// Builds the upstream TLS client config: Mozilla roots + `extra_roots_pem`, ALPN http/1.1.
pub fn client_tls(extra_roots_pem: Option<&str>) -> Result<Arc<ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_roots_pem {
        use rustls::pki_types::pem::PemObject;
        let mut n = 0;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| Error::ExtraRoots(format!("not valid PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::ExtraRoots(format!("certificate rejected: {e}")))?;
            n += 1;
        }
        if n == 0 {
            return Err(Error::ExtraRoots("no CERTIFICATE block found".into()));
        }
    }
    let mut cfg = ClientConfig::builder_with_provider(bottle_tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A TCP or TLS upstream stream.
pub enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The upstream connection as hyper sees it.
pub struct UpIo(TokioIo<MaybeTls>);

impl UpIo {
    /// The TCP socket under this connection (for tests of socket options).
    pub fn tcp(&self) -> &TcpStream {
        match self.0.inner() {
            MaybeTls::Plain(s) => s,
            MaybeTls::Tls(s) => s.get_ref().0,
        }
    }
}

impl hyper::rt::Read for UpIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        hyper::rt::Write::is_write_vectored(&self.0)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Opens upstream connections for the pool ([`crate::pool`]) and upgrades: looks the route up in the *current* policy (for
/// its `allow_private`), resolves and checks, connects, and does TLS for `https` URIs.
#[derive(Clone)]
pub struct Connector {
    inner: Arc<ConnectorInner>,
}

struct ConnectorInner {
    tls: tokio_rustls::TlsConnector,
    policy: Arc<ArcSwap<Policy>>,
    overrides: Overrides,
    timeout: Duration,
}

impl Connector {
    /// A connector over `policy`.
    pub fn new(
        tls: Arc<ClientConfig>,
        policy: Arc<ArcSwap<Policy>>,
        overrides: Overrides,
        timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(ConnectorInner {
                tls: tokio_rustls::TlsConnector::from(tls),
                policy,
                overrides,
                timeout,
            }),
        }
    }

    /// The name overrides.
    pub fn overrides(&self) -> &Overrides {
        &self.inner.overrides
    }

    /// Connects to the upstream named by `uri` (`https://host:port` or `http://host:port`).
    pub async fn connect(&self, uri: &Uri) -> Result<UpIo> {
        let inner = &self.inner;
        let tls = uri.scheme_str() == Some("https");
        let raw_host = uri.host().ok_or(Error::Refused(Refusal::InvalidHost))?;
        let host = normalise_host(raw_host).map_err(|e| Error::Refused(e.into()))?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let allow_private = {
            let policy = inner.policy.load();
            let route = policy
                .find(&host, port, if tls { 443 } else { 80 })
                .map_err(Error::Refused)?;
            route.allow_private()
        };
        let addrs = resolve_checked(&host, port, allow_private, &inner.overrides)
            .await
            .map_err(Error::Refused)?;
        let tcp = connect_checked(&addrs, inner.timeout).await?;
        if !tls {
            return Ok(UpIo(TokioIo::new(MaybeTls::Plain(tcp))));
        }
        let name = match &host {
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
            Host::Name(n) => {
                ServerName::try_from(n.clone()).map_err(|_| Error::Refused(Refusal::InvalidHost))?
            }
        };
        let stream = tokio::time::timeout(inner.timeout, inner.tls.connect(name, tcp))
            .await
            .map_err(|_| Error::UpstreamTls {
                host: host.to_string(),
                source: io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"),
            })?
            .map_err(|source| Error::UpstreamTls {
                host: host.to_string(),
                source,
            })?;
        Ok(UpIo(TokioIo::new(MaybeTls::Tls(Box::new(stream)))))
    }
}

/// Finds this crate's error in an upstream error's source chain.
pub fn find_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(ours) = e.downcast_ref::<Error>() {
            return Some(ours);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A connector whose policy allows plain and TLS connections to 127.0.0.1:`port`.
    pub(crate) fn loopback_connector(port: u16) -> Connector {
        let route = bottle_config::Route {
            host: "127.0.0.1".into(),
            ports: vec![port],
            methods: vec![],
            paths: vec![],
            tls: bottle_config::TlsMode::Intercept,
            auth: None,
            allow_private: true,
            origin: None,
        };
        let policy = Arc::new(ArcSwap::from_pointee(Policy::compile(&[route]).unwrap()));
        Connector::new(
            client_tls(None).unwrap(),
            policy,
            Overrides::new(),
            Duration::from_secs(5),
        )
    }

    #[tokio::test]
    async fn every_address_is_checked() {
        let mut o = Overrides::new();
        o.insert(
            "dual.test".into(),
            vec!["8.8.8.8".parse().unwrap(), "10.0.0.1".parse().unwrap()],
        );
        o.insert("imds.test".into(), vec!["169.254.169.254".parse().unwrap()]);
        o.insert("v6.test".into(), vec!["::ffff:127.0.0.1".parse().unwrap()]);
        let h = |s: &str| normalise_host(s).unwrap();
        assert_eq!(
            resolve_checked(&h("dual.test"), 443, false, &o).await,
            Err(Refusal::PrivateAddress)
        );
        assert!(resolve_checked(&h("dual.test"), 443, true, &o)
            .await
            .is_ok());
        assert_eq!(
            resolve_checked(&h("imds.test"), 80, true, &o).await,
            Err(Refusal::MetadataAddress)
        );
        let v6 = resolve_checked(&h("v6.test"), 1, true, &o).await.unwrap();
        assert_eq!(v6[0].ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            resolve_checked(&h("localhost"), 1, false, &o).await,
            Err(Refusal::PrivateAddress)
        );
    }

    #[tokio::test]
    async fn pooled_upstream_connections_have_nodelay() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let c = loopback_connector(port);
        let uri: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let io = c.connect(&uri).await.unwrap();
        assert!(io.tcp().nodelay().unwrap());
        // Not routed at all: refused before any socket is opened.
        let uri: Uri = format!("http://127.0.0.2:{port}/").parse().unwrap();
        assert!(matches!(
            c.connect(&uri).await,
            Err(Error::Refused(Refusal::HostNotAllowed))
        ));
    }

    #[tokio::test]
    async fn connected_sockets_have_nodelay() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let s = connect_checked(&[addr], Duration::from_secs(5))
            .await
            .unwrap();
        assert!(s.nodelay().unwrap());
    }
}
