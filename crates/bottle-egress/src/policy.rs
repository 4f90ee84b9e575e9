//! The routing policy: which (host, port, method, path) the agent may reach, and what is
//! injected there.
//!
//! This module owns route compilation (validation of a config [`Route`] into a matcher with a
//! ready-made injection header) and the per-request decision. It does no I/O; address checks
//! of resolved names live in [`crate::addr`] and are applied by the upstream connector.

use std::net::IpAddr;

use base64::Engine as _;
use bottle_config::{AuthScheme, Route, TlsMode};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::Method;

use crate::addr::{normalise_host, Host, HostError};
use crate::{Error, Result};

/// Why a request was refused. [`Refusal::code`] is the machine-readable reason sent in
/// `X-Bottle-Refusal` and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    HostNotAllowed,
    PortNotAllowed,
    MethodNotAllowed,
    PathNotAllowed,
    InvalidHost,
    BadIpLiteral,
    HostMismatch,
    SniMismatch,
    AuthorityMismatch,
    PrivateAddress,
    MetadataAddress,
    UnroutableAddress,
    ResolveFailed,
    NotProxyRequest,
    AmbiguousLength,
    TlsRequired,
}

impl Refusal {
    /// The reason code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::HostNotAllowed => "host_not_allowed",
            Refusal::PortNotAllowed => "port_not_allowed",
            Refusal::MethodNotAllowed => "method_not_allowed",
            Refusal::PathNotAllowed => "path_not_allowed",
            Refusal::InvalidHost => "invalid_host",
            Refusal::BadIpLiteral => "bad_ip_literal",
            Refusal::HostMismatch => "host_mismatch",
            Refusal::SniMismatch => "sni_mismatch",
            Refusal::AuthorityMismatch => "authority_mismatch",
            Refusal::PrivateAddress => "private_address",
            Refusal::MetadataAddress => "metadata_address",
            Refusal::UnroutableAddress => "unroutable_address",
            Refusal::ResolveFailed => "resolve_failed",
            Refusal::NotProxyRequest => "not_proxy_request",
            Refusal::AmbiguousLength => "ambiguous_length",
            Refusal::TlsRequired => "tls_required",
        }
    }

    /// A sentence for the refusal body.
    pub fn why(self) -> &'static str {
        match self {
            Refusal::HostNotAllowed => "no egress route allows this host",
            Refusal::PortNotAllowed => "the route for this host does not allow this port",
            Refusal::MethodNotAllowed => "the route for this host does not allow this method",
            Refusal::PathNotAllowed => "the route for this host does not allow this path",
            Refusal::InvalidHost => "the host is not a valid DNS name or IP literal",
            Refusal::BadIpLiteral => "the host looks like an IP literal but does not parse as one",
            Refusal::HostMismatch => "the Host header does not name the proxied host",
            Refusal::SniMismatch => "the TLS server name does not match the CONNECT host",
            Refusal::AuthorityMismatch => "the request target names a different host than the tunnel",
            Refusal::PrivateAddress => "the host resolves to a private or loopback address and the route does not allow_private",
            Refusal::MetadataAddress => "the host resolves to a cloud metadata address, which is always refused",
            Refusal::UnroutableAddress => "the host resolves to an unspecified, multicast or reserved address",
            Refusal::ResolveFailed => "the host name did not resolve",
            Refusal::NotProxyRequest => "this is a forward proxy: use CONNECT or an absolute http:// URI",
            Refusal::AmbiguousLength => "the request has both Content-Length and Transfer-Encoding (request smuggling)",
            Refusal::TlsRequired => "this route injects a credential, which is only sent over TLS: use https://",
        }
    }
}

impl From<HostError> for Refusal {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Invalid => Refusal::InvalidHost,
            HostError::BadIpLiteral => Refusal::BadIpLiteral,
        }
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(Host),
    /// `.example.com` for `*.example.com`: names strictly below it.
    Suffix(String),
}

/// A ready-to-insert credential header.
#[derive(Clone)]
pub struct Inject {
    /// Header replaced on the wire.
    pub name: HeaderName,
    /// The real value (marked sensitive so hyper never logs it).
    pub value: HeaderValue,
    /// `bearer`, `basic` or `header`, for the audit log.
    pub label: &'static str,
}

impl std::fmt::Debug for Inject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inject")
            .field("name", &self.name)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// A validated route.
#[derive(Debug, Clone)]
pub struct CompiledRoute {
    /// The route as configured (its secret is redacted wherever it is shown).
    pub route: Route,
    matcher: Matcher,
    methods: Vec<Method>,
    /// The upstream host: the route's host for exact routes, the request's for wildcards.
    pub inject: Option<Inject>,
}

impl CompiledRoute {
    /// Compiles one route; errors name the route's host and the field.
    pub fn compile(route: &Route) -> Result<Self> {
        let bad = |reason: String| Error::BadRoute {
            host: route.host.clone(),
            reason,
        };
        let matcher = if let Some(suffix) = route.host.strip_prefix("*.") {
            match normalise_host(suffix) {
                Ok(Host::Name(n)) if n.contains('.') || n == "localhost" => {
                    Matcher::Suffix(format!(".{n}"))
                }
                Ok(Host::Name(_)) => {
                    return Err(bad(
                        "a wildcard must cover at least two labels (`*.example.com`)".into(),
                    ))
                }
                Ok(Host::Ip(_)) => return Err(bad("a wildcard cannot cover an IP literal".into())),
                Err(_) => return Err(bad("not a valid DNS name".into())),
            }
        } else {
            Matcher::Exact(
                normalise_host(&route.host)
                    .map_err(|_| bad("not a valid DNS name or IP literal".into()))?,
            )
        };
        let mut methods = Vec::new();
        for m in &route.methods {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad(format!("method {m:?} must be upper case letters")));
            }
            methods.push(
                Method::from_bytes(m.as_bytes())
                    .map_err(|_| bad(format!("method {m:?} is not valid")))?,
            );
        }
        for p in &route.paths {
            if !p.starts_with('/') {
                return Err(bad(format!("path prefix {p:?} must start with `/`")));
            }
        }
        if route.tls == TlsMode::Passthrough
            && (route.auth.is_some() || !route.methods.is_empty() || !route.paths.is_empty())
        {
            return Err(bad("auth, methods and paths need `tls: intercept` (a passthrough route cannot see requests)".into()));
        }
        let inject = match &route.auth {
            None => None,
            Some(inj) => {
                let (name, raw, label) = match &inj.scheme {
                    AuthScheme::Bearer => (
                        AUTHORIZATION,
                        format!("Bearer {}", inj.secret.expose()),
                        "bearer",
                    ),
                    AuthScheme::Basic => (
                        AUTHORIZATION,
                        format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(inj.secret.expose())
                        ),
                        "basic",
                    ),
                    AuthScheme::Header { name } => (
                        HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                            bad(format!(
                                "auth header name {name:?} is not a valid header name"
                            ))
                        })?,
                        inj.secret.expose().to_owned(),
                        "header",
                    ),
                };
                if inj.secret.is_empty() {
                    return Err(bad("auth secret is empty".into()));
                }
                // The error deliberately does not carry the value.
                let mut value = HeaderValue::from_str(&raw).map_err(|_| {
                    bad("auth secret contains characters not allowed in a header".into())
                })?;
                value.set_sensitive(true);
                Some(Inject { name, value, label })
            }
        };
        Ok(Self {
            route: route.clone(),
            matcher,
            methods,
            inject,
        })
    }

    fn host_matches(&self, host: &Host) -> Option<usize> {
        match (&self.matcher, host) {
            (Matcher::Exact(h), _) if h == host => Some(usize::MAX),
            (Matcher::Suffix(s), Host::Name(n)) if n.len() > s.len() && n.ends_with(s.as_str()) => {
                Some(s.len())
            }
            _ => None,
        }
    }

    fn port_allowed(&self, port: u16, default_port: u16) -> bool {
        if self.route.ports.is_empty() {
            port == default_port
        } else {
            self.route.ports.contains(&port)
        }
    }

    /// True when this route terminates TLS.
    pub fn intercepts(&self) -> bool {
        self.route.tls == TlsMode::Intercept
    }

    /// Checks method and path (intercepted routes; the path without query).
    pub fn check_request(&self, method: &Method, path: &str) -> std::result::Result<(), Refusal> {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return Err(Refusal::MethodNotAllowed);
        }
        if !self.route.paths.is_empty() {
            // Dot segments and encoded separators could walk out of a prefix at the origin.
            let lower = path.to_ascii_lowercase();
            if lower.contains("%2e")
                || lower.contains("%2f")
                || lower.contains("%5c")
                || has_dot_segment(path)
            {
                return Err(Refusal::PathNotAllowed);
            }
            if !self.route.paths.iter().any(|p| prefix_matches(p, path)) {
                return Err(Refusal::PathNotAllowed);
            }
        }
        Ok(())
    }

    /// Whether private addresses are allowed for this route.
    pub fn allow_private(&self) -> bool {
        self.route.allow_private
    }
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..") || path.contains('\\')
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if !path.starts_with(prefix) {
        return false;
    }
    prefix.ends_with('/') || path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/'
}

/// All routes, compiled.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    routes: Vec<CompiledRoute>,
}

impl Policy {
    /// Compiles every route; the first bad one is the error.
    pub fn compile(routes: &[Route]) -> Result<Self> {
        let routes = routes
            .iter()
            .map(CompiledRoute::compile)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { routes })
    }

    /// The routes.
    pub fn routes(&self) -> &[CompiledRoute] {
        &self.routes
    }

    /// A copy with `route` added (replacing a route with the same host).
    pub fn with_route(&self, route: CompiledRoute) -> Self {
        let mut routes: Vec<CompiledRoute> = self
            .routes
            .iter()
            .filter(|r| r.route.host != route.route.host)
            .cloned()
            .collect();
        routes.push(route);
        Self { routes }
    }

    /// A copy without the route for `host`, and whether one was removed.
    pub fn without_route(&self, host: &str) -> (Self, bool) {
        let routes: Vec<CompiledRoute> = self
            .routes
            .iter()
            .filter(|r| !r.route.host.eq_ignore_ascii_case(host))
            .cloned()
            .collect();
        let removed = routes.len() != self.routes.len();
        (Self { routes }, removed)
    }

    /// The most specific route allowing `host:port` (`default_port`: 443 in a tunnel, 80 for
    /// plain HTTP, used when a route lists no ports).
    pub fn find(
        &self,
        host: &Host,
        port: u16,
        default_port: u16,
    ) -> std::result::Result<&CompiledRoute, Refusal> {
        let mut best: Option<(usize, &CompiledRoute)> = None;
        let mut host_seen = false;
        for r in &self.routes {
            if let Some(score) = r.host_matches(host) {
                host_seen = true;
                if r.port_allowed(port, default_port) && best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, r));
                }
            }
        }
        match best {
            Some((_, r)) => Ok(r),
            None if host_seen => Err(Refusal::PortNotAllowed),
            None => Err(Refusal::HostNotAllowed),
        }
    }
}

/// Classifies a resolved address against a route's opt-in.
pub fn check_addr(ip: IpAddr, allow_private: bool) -> std::result::Result<(), Refusal> {
    use crate::addr::{classify, AddrClass};
    match classify(ip) {
        None => Ok(()),
        Some(AddrClass::Metadata) => Err(Refusal::MetadataAddress),
        Some(AddrClass::Unroutable) => Err(Refusal::UnroutableAddress),
        Some(AddrClass::Private) if allow_private => Ok(()),
        Some(AddrClass::Private) => Err(Refusal::PrivateAddress),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottle_config::{Injection, Secret};

    fn route(host: &str) -> Route {
        Route {
            host: host.into(),
            ports: vec![],
            methods: vec![],
            paths: vec![],
            tls: TlsMode::Intercept,
            auth: None,
            allow_private: false,
            origin: None,
        }
    }

    fn h(s: &str) -> Host {
        normalise_host(s).unwrap()
    }

    #[test]
    fn exact_beats_wildcard_and_ports_default() {
        let mut exact = route("api.example.com");
        exact.methods = vec!["GET".into()];
        let p = Policy::compile(&[route("*.example.com"), exact]).unwrap();
        let r = p.find(&h("API.example.com."), 443, 443).unwrap();
        assert_eq!(r.route.host, "api.example.com");
        assert_eq!(
            p.find(&h("x.example.com"), 443, 443).unwrap().route.host,
            "*.example.com"
        );
        assert_eq!(
            p.find(&h("example.com"), 443, 443).unwrap_err(),
            Refusal::HostNotAllowed
        );
        assert_eq!(
            p.find(&h("api.example.com"), 22, 443).unwrap_err(),
            Refusal::PortNotAllowed
        );
        assert_eq!(
            p.find(&h("evilexample.com"), 443, 443).unwrap_err(),
            Refusal::HostNotAllowed
        );
        assert_eq!(
            p.find(&h("api.example.com.evil.net"), 443, 443)
                .unwrap_err(),
            Refusal::HostNotAllowed
        );
    }

    #[test]
    fn ip_literal_matches_only_its_literal_route() {
        let p = Policy::compile(&[route("localhost"), route("127.0.0.1")]).unwrap();
        assert!(p.find(&h("2130706433"), 443, 443).is_ok());
        let p = Policy::compile(&[route("localhost"), route("*.example.com")]).unwrap();
        assert_eq!(
            p.find(&h("0x7f.1"), 443, 443).unwrap_err(),
            Refusal::HostNotAllowed
        );
    }

    #[test]
    fn method_and_path_rules() {
        let mut r = route("api.example.com");
        r.methods = vec!["GET".into(), "POST".into()];
        r.paths = vec!["/v1".into(), "/repos/".into()];
        let c = CompiledRoute::compile(&r).unwrap();
        assert!(c.check_request(&Method::GET, "/v1").is_ok());
        assert!(c.check_request(&Method::GET, "/v1/models").is_ok());
        assert!(c.check_request(&Method::POST, "/repos/x").is_ok());
        assert_eq!(
            c.check_request(&Method::DELETE, "/v1"),
            Err(Refusal::MethodNotAllowed)
        );
        assert_eq!(
            c.check_request(&Method::GET, "/v1evil"),
            Err(Refusal::PathNotAllowed)
        );
        assert_eq!(
            c.check_request(&Method::GET, "/v1/../admin"),
            Err(Refusal::PathNotAllowed)
        );
        assert_eq!(
            c.check_request(&Method::GET, "/v1/%2e%2e/admin"),
            Err(Refusal::PathNotAllowed)
        );
        assert_eq!(
            c.check_request(&Method::GET, "/admin"),
            Err(Refusal::PathNotAllowed)
        );
    }

    #[test]
    fn bad_routes_are_named_and_never_leak_secrets() {
        let mut r = route("api.example.com");
        r.auth = Some(Injection {
            scheme: AuthScheme::Bearer,
            secret: Secret::new("sekrit\nX: y"),
        });
        let e = CompiledRoute::compile(&r).unwrap_err().to_string();
        assert!(
            e.contains("api.example.com") && !e.contains("sekrit"),
            "{e}"
        );
        let mut r = route("pass.example.com");
        r.tls = TlsMode::Passthrough;
        r.paths = vec!["/x".into()];
        assert!(CompiledRoute::compile(&r).is_err());
        assert!(CompiledRoute::compile(&route("*.com")).is_err());
        assert!(CompiledRoute::compile(&route("*.127.0.0.1")).is_err());
        assert!(CompiledRoute::compile(&route("bad host")).is_err());
    }

    #[test]
    fn injection_values() {
        let mut r = route("api.example.com");
        r.auth = Some(Injection {
            scheme: AuthScheme::Basic,
            secret: Secret::new("u:p"),
        });
        let c = CompiledRoute::compile(&r).unwrap();
        let i = c.inject.as_ref().unwrap();
        assert_eq!(i.value.to_str().unwrap(), "Basic dTpw");
        assert!(i.value.is_sensitive());
        assert!(!format!("{c:?}").contains("dTpw"));
    }
}
