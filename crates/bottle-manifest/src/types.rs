//! The manifest's types. `deny_unknown_fields` everywhere: a typo is an error, never ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole `bottle.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Schema version; only `1` exists.
    pub version: u32,
    /// The bottle's agent name: slug prefix, shown beside the label. `[a-z0-9-]`, 1–40 chars.
    pub name: String,
    /// Optional display label, shown as `label (name)`.
    #[serde(default)]
    pub label: Option<String>,
    /// Optional ANSI colour name.
    #[serde(default)]
    pub color: Option<String>,
    /// Which backend runs the bottle.
    #[serde(default)]
    pub backend: BackendKind,
    pub agent: AgentSpec,
    /// The agent's standing instructions (becomes CLAUDE.md / AGENTS.md), relative to the manifest.
    #[serde(default)]
    pub prompt: Option<PathBuf>,
    /// Folders holding a SKILL.md, copied into the agent's skills folder.
    #[serde(default)]
    pub skills: Vec<PathBuf>,
    /// Environment for the agent. Values: literal, `${VAR}`, `${VAR:-default}`, or `?prompt`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Repositories served through the git gate.
    #[serde(default)]
    pub git: Vec<GitEntry>,
    /// Hosts the agent may reach.
    #[serde(default)]
    pub egress: Vec<EgressRoute>,
    #[serde(default)]
    pub supervise: SuperviseSpec,
}

/// `docker | smolvm | apple-container`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    #[default]
    Docker,
    Smolvm,
    AppleContainer,
}

impl BackendKind {
    /// The name as written in manifests and metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Docker => "docker",
            BackendKind::Smolvm => "smolvm",
            BackendKind::AppleContainer => "apple-container",
        }
    }
}

/// The `agent:` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// `claude`, `codex`, or the name of a user provider.
    pub provider: String,
    /// claude only: name of the host env var holding the real OAuth token or API key.
    #[serde(default)]
    pub auth_token: Option<String>,
    /// codex only: forward the host's `~/.codex/auth.json` access token through the proxy.
    #[serde(default)]
    pub forward_host_credentials: bool,
    /// Dockerfile override, relative to the manifest.
    #[serde(default)]
    pub dockerfile: Option<PathBuf>,
    /// Command override.
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

/// One `git:` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitEntry {
    /// Served at `/<name>.git` on the gate. `[A-Za-z0-9._-]`.
    pub name: String,
    /// `git@host:org/repo.git`, `ssh://[user@]host[:port]/path`, or `https://host/path`.
    pub upstream: String,
    /// ssh: private key file on the host (`~` expands).
    #[serde(default)]
    pub identity: Option<PathBuf>,
    /// ssh: a deploy key minted for this bottle through the forge's API.
    #[serde(default)]
    pub provisioned_key: Option<ProvisionedKey>,
    /// https: host env var holding the token.
    #[serde(default)]
    pub token: Option<String>,
    /// ssh: pinned host keys for the upstream (required for ssh upstreams).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// Ref patterns the agent may push; empty = read-only.
    #[serde(default)]
    pub push: Vec<String>,
    /// Allow non-fast-forward pushes to allowed refs.
    #[serde(default)]
    pub allow_force: bool,
    /// Allow deleting allowed refs.
    #[serde(default)]
    pub allow_delete: bool,
}

/// `provisioned_key:` — a per-bottle deploy key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionedKey {
    pub forge: Forge,
    /// API base URL, e.g. `https://api.github.com`, `https://gitea.example/api/v1`.
    pub api: String,
    /// Host env var holding the forge API token.
    pub token: String,
    /// Register the key read-only (default true; set false when `push` is non-empty).
    #[serde(default = "default_true")]
    pub read_only: bool,
}

fn default_true() -> bool {
    true
}

/// Supported forges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Forge {
    Gitea,
    Github,
    Gitlab,
}

/// One `egress:` route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressRoute {
    /// `api.github.com` or `*.npmjs.org`.
    pub host: String,
    /// Allowed ports; default 443 (and 80 for plain HTTP).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Allowed methods (intercepted routes only).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Allowed path prefixes (intercepted routes only).
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub auth: Option<RouteAuth>,
    /// `intercept` (default) or `passthrough`.
    #[serde(default)]
    pub tls: Option<RouteTls>,
    /// Opt in to a host that resolves to a private address.
    #[serde(default)]
    pub allow_private: bool,
}

/// `intercept | passthrough`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RouteTls {
    Intercept,
    Passthrough,
}

/// `auth:` on a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteAuth {
    pub scheme: AuthSchemeName,
    /// Header name, required for `scheme: header`.
    #[serde(default)]
    pub name: Option<String>,
    /// Host env var holding the real credential.
    pub token: String,
}

/// `bearer | basic | header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthSchemeName {
    Bearer,
    Basic,
    Header,
}

/// `supervise:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuperviseSpec {
    /// How long a waiting request waits for the operator: `90s`, `10m`, `1h`. Default 10m.
    #[serde(default)]
    pub timeout: Option<String>,
}
