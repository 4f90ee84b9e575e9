//! The sidecar's configuration as plain serde data.
//!
//! This crate owns the contract between the host side (the planner and the backends, which
//! build a [`SidecarConfig`]) and the sidecar's three services (egress proxy, git gate,
//! supervise), which are built from it. It holds data only: no I/O, no runtime objects.
//!
//! It is its own crate, not a module of `bottle-plan`, so that the sidecar's services do not link
//! the manifest parser and the provider catalogue (a dependency boundary DESIGN.md asks for).
//!
//! A resolved [`SidecarConfig`] carries real secret values (tokens, SSH private keys). Every such
//! value is a [`Secret`], whose `Debug` and `Display` print `<redacted>`; it is serialised as the
//! plain value only because the config must travel to the sidecar (over its stdin, never through
//! a file, argv or an image layer).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The placeholder the agent holds wherever a real credential would be.
pub const PLACEHOLDER: &str = "egress-placeholder";

/// A secret value. Never printed: `Debug`/`Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The real value: call only where it is put on the wire or handed to a child's stdin.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Who this sidecar serves, for audit lines and the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BottleIdent {
    /// Unique slug, e.g. `claude-implementer-3f9k2a`.
    pub slug: String,
    /// The manifest's `name`.
    pub name: String,
    /// Display label, if any.
    #[serde(default)]
    pub label: Option<String>,
}

/// Everything the sidecar binary needs. Produced by the planner/backend at `start`, written to
/// the sidecar's stdin as one JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarConfig {
    pub bottle: BottleIdent,
    /// Folder (inside the sidecar) for audit logs: `egress.jsonl`, `git.jsonl`,
    /// `supervise.jsonl`. On the host it is the bottle's `audit/` folder.
    pub audit_dir: PathBuf,
    /// Folder (inside the sidecar) for persistent service state (supervise queue, gate mirrors).
    pub state_dir: PathBuf,
    /// Health endpoint of the sidecar binary (plain HTTP, `GET /healthz`).
    pub health_listen: SocketAddr,
    pub egress: EgressConfig,
    pub git: GitGateConfig,
    pub supervise: SuperviseConfig,
}

// ───────────────────────────── egress ─────────────────────────────

/// The egress proxy's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// Where the agent-facing forward proxy listens (e.g. `0.0.0.0:3128`).
    pub listen: SocketAddr,
    /// Where the admin API listens. Must not be reachable from the agent: the backend binds it
    /// on an interface the agent has no route to; requests also need `admin_token`.
    pub admin_listen: SocketAddr,
    /// Bearer token required on every admin request.
    pub admin_token: Secret,
    /// The bottle's CA, used to mint leaves for intercepted routes.
    pub ca: CaMaterial,
    /// Extra PEM roots trusted for upstream TLS, beside the system roots (corporate proxies,
    /// tests' own CAs).
    #[serde(default)]
    pub extra_roots_pem: Option<String>,
    /// The routes. A host matching no route is refused.
    pub routes: Vec<Route>,
    /// Limits and timeouts.
    #[serde(default)]
    pub limits: EgressLimits,
}

/// A CA certificate and its private key, PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaMaterial {
    pub cert_pem: String,
    pub key_pem: Secret,
}

/// One egress route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// `api.github.com` (exact) or `*.npmjs.org` (any name strictly below the suffix).
    pub host: String,
    /// Allowed ports; empty means 443 (and 80 for plain HTTP).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Allowed methods (upper case) on intercepted routes; empty means any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Allowed path prefixes on intercepted routes; empty means any.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Intercept (terminate TLS with the bottle's CA) or pass through untouched.
    #[serde(default)]
    pub tls: TlsMode,
    /// Credential injected on this route (intercepted routes only).
    #[serde(default)]
    pub auth: Option<Injection>,
    /// Permit addresses in private/loopback/link-local ranges for this route's host.
    /// Metadata addresses (169.254.169.254 and kin) stay refused regardless.
    #[serde(default)]
    pub allow_private: bool,
    /// Where this route came from (`manifest`, `provider:claude`, `supervise`), for audit lines.
    #[serde(default)]
    pub origin: Option<String>,
}

/// How a route treats TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Terminate TLS with a leaf from the bottle's CA; needed to inject or filter by method/path.
    #[default]
    Intercept,
    /// Splice bytes untouched after an allowed CONNECT.
    Passthrough,
}

/// A credential put on the wire for one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Injection {
    pub scheme: AuthScheme,
    /// The real value (for `basic`: `user:password`, encoded by the proxy).
    pub secret: Secret,
}

/// Where and how a credential is injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuthScheme {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic base64(<secret>)`.
    Basic,
    /// `<name>: <secret>`.
    Header { name: String },
}

impl AuthScheme {
    /// Short name for plans and audit lines: `bearer`, `basic`, `header`.
    pub fn label(&self) -> &'static str {
        match self {
            AuthScheme::Bearer => "bearer",
            AuthScheme::Basic => "basic",
            AuthScheme::Header { .. } => "header",
        }
    }
}

/// Limits of the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressLimits {
    /// Largest request head (request line + headers) accepted, bytes.
    pub max_header_bytes: usize,
    /// Most concurrent client connections.
    pub max_connections: usize,
    /// Upstream connect timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// Idle timeout of a client connection, milliseconds.
    pub idle_timeout_ms: u64,
}

impl Default for EgressLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_connections: 4096,
            connect_timeout_ms: 10_000,
            idle_timeout_ms: 120_000,
        }
    }
}

// ───────────────────────────── git gate ─────────────────────────────

/// The git gate's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitGateConfig {
    /// Where the smart-HTTP gate listens (e.g. `0.0.0.0:8080`).
    pub listen: SocketAddr,
    pub repos: Vec<GateRepo>,
}

/// One repository served by the gate at `/<name>.git`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateRepo {
    pub name: String,
    /// Upstream URL as the user wrote it (`git@host:org/repo.git`, `ssh://…`, `https://…`).
    pub upstream: String,
    pub credential: UpstreamCredential,
    pub push: PushRules,
}

/// How the gate authenticates to the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum UpstreamCredential {
    /// An SSH private key (OpenSSH PEM) and the pinned `known_hosts` lines for the upstream.
    Ssh {
        private_key: Secret,
        known_hosts: String,
    },
    /// An HTTPS token (sent as basic auth, user `x-access-token` unless `username` is set).
    HttpsToken {
        token: Secret,
        #[serde(default)]
        username: Option<String>,
        /// Extra PEM roots for the upstream (tests, corporate CAs).
        #[serde(default)]
        extra_roots_pem: Option<String>,
    },
}

/// Which pushes the gate relays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PushRules {
    /// Ref patterns (`refs/heads/bot/*`; `*` matches within one path segment, `**` across);
    /// empty means read-only.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Allow non-fast-forward updates.
    #[serde(default)]
    pub allow_force: bool,
    /// Allow ref deletion.
    #[serde(default)]
    pub allow_delete: bool,
}

// ───────────────────────────── supervise ─────────────────────────────

/// The supervise service's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuperviseConfig {
    /// Where the agent-facing MCP server (streamable HTTP, path `/mcp`) listens.
    pub listen: SocketAddr,
    /// Where the operator control API listens (host side only).
    pub control_listen: SocketAddr,
    /// Bearer token required on every control request.
    pub control_token: Secret,
    /// How long a waiting tool waits for the operator, seconds.
    pub timeout_secs: u64,
    /// The egress admin API, for approved `request_egress` calls.
    pub egress_admin: AdminEndpoint,
}

/// An admin API the sidecar calls on itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminEndpoint {
    /// e.g. `http://127.0.0.1:9099`.
    pub url: String,
    pub token: Secret,
}

/// Errors reading a config.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The JSON did not match the schema; the message names the field and position.
    #[error("sidecar config is not valid: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl SidecarConfig {
    /// Parses a config from JSON bytes (as read from stdin).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        Ok(serde_json::from_slice(bytes)?)
    }
    /// Serialises the config to JSON (contains secrets: write it only to the sidecar's stdin).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug_and_display() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        let inj = Injection {
            scheme: AuthScheme::Bearer,
            secret: s,
        };
        assert!(!format!("{inj:?}").contains("hunter2"));
    }

    #[test]
    fn secret_serialises_as_value_for_stdin_transport() {
        let s = Secret::new("tok");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"tok\"");
    }
}
