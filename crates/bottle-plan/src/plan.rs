//! The Plan: plain serde data, everything a backend needs to realise one bottle.
//!
//! A plan holds no secret value. Where a secret is needed it holds a [`SecretRef`] saying where
//! the value comes from at start (a host env var, a terminal prompt, the host's codex auth file,
//! a key file, a deploy key minted at start).

use std::collections::BTreeMap;
use std::path::PathBuf;

use bottle_config::{AuthScheme, PushRules, TlsMode};
pub use bottle_manifest::{BackendKind, Forge};
use serde::{Deserialize, Serialize};

/// Well-known in-bottle addresses and ports. The sidecar is reachable from the agent under
/// [`SIDECAR_HOST`] (an `/etc/hosts` entry: the agent has no DNS resolver).
pub const SIDECAR_HOST: &str = "bottle-sidecar";
/// Forward proxy port (agent-facing).
pub const PROXY_PORT: u16 = 3128;
/// Git gate port (agent-facing).
pub const GATE_PORT: u16 = 8080;
/// Supervise MCP port (agent-facing).
pub const MCP_PORT: u16 = 8765;
/// Egress admin API port (host/sidecar only).
pub const ADMIN_PORT: u16 = 9099;
/// Supervise control API port (host only).
pub const CONTROL_PORT: u16 = 9100;
/// Sidecar health port.
pub const HEALTH_PORT: u16 = 9000;
/// Where the bottle CA certificate is placed in the guest.
pub const GUEST_CA_PATH: &str = "/etc/bot-bottle/ca.crt";
/// The guest's system roots plus the bottle CA, for variables that *replace* a tool's roots
/// (`SSL_CERT_FILE`, `GIT_SSL_CAINFO`…): passthrough routes show real certificates.
pub const GUEST_CA_BUNDLE_PATH: &str = "/etc/bot-bottle/ca-bundle.crt";

/// A complete plan for one bottle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Unique slug: `<name>-<6 chars>`.
    pub slug: String,
    /// The manifest's name.
    pub name: String,
    pub label: Option<String>,
    /// ANSI colour name.
    pub color: Option<String>,
    pub backend: BackendKind,
    /// Absolute path of the manifest.
    pub manifest_path: PathBuf,
    pub provider: ProviderRef,
    pub image: ImagePlan,
    pub agent: AgentPlan,
    pub sidecar: SidecarPlan,
    /// Names of the resources a backend creates (derived from the slug; backends may add
    /// their own in their resolve step).
    pub resources: ResourceNames,
}

/// Which provider the bottle uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRef {
    pub name: String,
    /// `builtin` or `user`.
    pub kind: ProviderKind,
}

/// Built-in or user provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Builtin,
    User,
}

/// The agent image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePlan {
    /// Tag to build, e.g. `bot-bottle/agent-claude:<hash of the Dockerfile>`.
    pub tag: String,
    /// The Dockerfile's text (built-ins are bundled; files are read at plan time).
    pub dockerfile: String,
    /// Where the Dockerfile came from in the cascade.
    pub source: DockerfileSource,
    /// Build context folder (the Dockerfile's folder), if any; built-ins have none.
    pub context_dir: Option<PathBuf>,
}

/// Which level of the Dockerfile cascade won.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum DockerfileSource {
    /// `--dockerfile` on the command line.
    Cli { path: PathBuf },
    /// `agent.dockerfile` in the manifest.
    Manifest { path: PathBuf },
    /// The user provider's `Dockerfile`.
    UserProvider { path: PathBuf },
    /// The built-in provider's bundled Dockerfile.
    Builtin { provider: String },
}

/// Everything about the agent's guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPlan {
    /// Non-root guest user and home, from the provider.
    pub user: String,
    pub home: PathBuf,
    /// Working directory (where repos are cloned).
    pub workdir: PathBuf,
    /// The command run attached to the terminal.
    pub command: Vec<String>,
    /// Environment, in order. Values are references for anything from the host.
    pub env: Vec<EnvVar>,
    /// Files written into the guest before the command runs.
    pub files: Vec<GuestFile>,
    /// Folders copied into the guest (skills).
    pub dirs: Vec<GuestDir>,
    /// Commands run in the guest after files are written, before the agent command.
    pub setup: Vec<SetupCommand>,
    /// The supervise MCP server as the agent sees it.
    pub mcp_url: String,
    /// Proxy URL the agent uses.
    pub proxy_url: String,
    /// `NO_PROXY` value (the sidecar's own endpoints are reached directly).
    pub no_proxy: String,
    /// Guest path of the bottle CA certificate.
    pub ca_cert_path: PathBuf,
    /// Guest path of the system roots plus the bottle CA.
    pub ca_bundle_path: PathBuf,
    /// git `url.<gate>.insteadOf <upstream>` rules.
    pub git_insteadof: Vec<InsteadOf>,
}

impl AgentPlan {
    /// The `insteadOf` rules as git config text (`[url "<gate>"]` sections, empty when there
    /// are none), rendered by the gate crate so its quoting is the one its tests prove.
    pub fn gitconfig_rules(&self) -> String {
        let rules: Vec<bottle_gitgate::InsteadOf> = self
            .git_insteadof
            .iter()
            .map(|r| bottle_gitgate::InsteadOf {
                gate_url: r.gate_url.clone(),
                upstream_forms: r.upstream_forms.clone(),
            })
            .collect();
        bottle_gitgate::to_gitconfig(&rules)
    }
}

/// One environment variable of the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: EnvSource,
    /// Hidden from summaries (`plan`, `list`): provider placeholders and anything secret-ish.
    pub hidden: bool,
}

/// Where an env value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvSource {
    /// A literal from the manifest or provider (not secret).
    Literal { value: String },
    /// `${VAR}` / `${VAR:-default}` from the host environment at start.
    HostVar {
        var: String,
        default: Option<String>,
    },
    /// `?prompt`: asked on the terminal at start, never stored.
    Prompt,
    /// The placeholder standing in for a credential the proxy injects.
    Placeholder,
}

/// A file written into the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFile {
    /// Absolute guest path.
    pub path: PathBuf,
    /// File mode, e.g. 0o644.
    pub mode: u32,
    pub content: String,
    /// Owned by the agent user (else root).
    pub agent_owned: bool,
}

/// A host folder copied into the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestDir {
    pub host: PathBuf,
    pub guest: PathBuf,
}

/// A setup command run in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupCommand {
    pub argv: Vec<String>,
    /// Run as root (e.g. installing the CA into the trust store) or as the agent user.
    pub as_root: bool,
}

/// One git `insteadOf` rule set: every upstream spelling maps to the gate URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsteadOf {
    pub gate_url: String,
    pub upstream_forms: Vec<String>,
}

/// What the sidecar will be configured with, secrets as references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidecarPlan {
    pub routes: Vec<RoutePlan>,
    pub git: Vec<GitPlan>,
    /// Supervise wait timeout, seconds.
    pub supervise_timeout_secs: u64,
}

/// An egress route with its credential as a reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutePlan {
    pub host: String,
    pub ports: Vec<u16>,
    pub methods: Vec<String>,
    pub paths: Vec<String>,
    pub tls: TlsMode,
    pub auth: Option<AuthPlan>,
    pub allow_private: bool,
    /// `manifest` or `provider:<name>`.
    pub origin: String,
}

/// A credential injected on a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthPlan {
    pub scheme: AuthScheme,
    pub secret: SecretRef,
}

/// Where a secret value comes from at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SecretRef {
    /// A host environment variable.
    HostVar { var: String },
    /// The access token in the host's codex `auth.json`.
    CodexAuth { path: PathBuf },
}

/// A git gate entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitPlan {
    pub name: String,
    pub upstream: String,
    /// Upstream host and port, for display (`name → host:port`).
    pub upstream_host: String,
    pub upstream_port: u16,
    pub credential: GitCredentialPlan,
    pub push: PushRules,
    /// The URL the agent uses.
    pub gate_url: String,
}

/// How the gate will authenticate upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GitCredentialPlan {
    /// A private key file on the host.
    Identity {
        key_file: PathBuf,
        known_hosts: PathBuf,
    },
    /// A deploy key minted at start through the forge's API and revoked at teardown.
    Provisioned {
        forge: Forge,
        api: String,
        /// Forge repository id (`owner/repo`, or the GitLab project path).
        repo: String,
        token: SecretRef,
        read_only: bool,
        known_hosts: PathBuf,
    },
    /// An HTTPS token from the host environment.
    HttpsToken { token: SecretRef },
}

/// Names of backend resources, derived from the slug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceNames {
    pub agent_container: String,
    pub sidecar_container: String,
    /// The agent's internal network (no route out, no host address).
    pub internal_network: String,
    /// The sidecar's egress network.
    pub egress_network: String,
    /// Label key/value put on every resource: `bot-bottle.slug=<slug>`.
    pub labels: BTreeMap<String, String>,
}

/// Label key carrying the slug on every backend resource.
pub const LABEL_SLUG: &str = "bot-bottle.slug";
/// Label key marking any bot-bottle resource.
pub const LABEL_MANAGED: &str = "bot-bottle.managed";

impl ResourceNames {
    /// Derives the names for a slug.
    pub fn for_slug(slug: &str) -> Self {
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
        labels.insert(LABEL_SLUG.to_string(), slug.to_string());
        Self {
            agent_container: format!("bot-bottle-{slug}-agent"),
            sidecar_container: format!("bot-bottle-{slug}-sidecar"),
            internal_network: format!("bot-bottle-{slug}-internal"),
            egress_network: format!("bot-bottle-{slug}-egress"),
            labels,
        }
    }
}
