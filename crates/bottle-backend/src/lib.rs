//! Backends realise a [`Plan`]: images, networks, the sidecar, the provisioned agent, the
//! attached terminal, and teardown.
//!
//! This crate owns the [`Backend`] trait (the one abstraction every backend implements with the
//! same security properties, SPEC §5) and the [`docker`] backend on bollard. Secret values reach
//! a backend only as [`Secret`]s: the sidecar's config is written to the sidecar's stdin, the
//! agent's environment goes through the engine API (never argv), and neither is logged.

pub mod docker;
mod error;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bottle_config::{Secret, SidecarConfig};
use bottle_plan::{AgentPlan, Plan};

pub use bottle_plan::resolve::SidecarEndpoints;
pub use error::{Error, Result};

/// Everything `up` (and `resume`) needs besides the engine.
pub struct UpRequest<'a> {
    /// The plan to realise.
    pub plan: &'a Plan,
    /// The resolved sidecar config (its listen addresses from [`docker::endpoints`] for the same
    /// `index`). Written to the sidecar's stdin only.
    pub sidecar: &'a SidecarConfig,
    /// The agent's resolved environment, in order (placeholders, literals, prompted values).
    pub agent_env: &'a [(String, Secret)],
    /// Host folder mounted into the sidecar at [`docker::SIDECAR_AUDIT_DIR`] (the bottle's
    /// `audit/`). Created when absent.
    pub audit_dir: &'a Path,
    /// Host folder mounted into the sidecar at [`docker::SIDECAR_STATE_DIR`] (the bottle's
    /// `sidecar/`). Created when absent.
    pub state_dir: &'a Path,
    /// The bottle's network index (from `bottle_state::allocate_index` with
    /// [`docker::INDEX_KIND`] and [`docker::MAX_INDEX`]): selects its subnets.
    pub index: u32,
    /// Show image-build progress bars on stderr (they hide themselves when stderr is no TTY).
    pub progress: bool,
}

/// How the agent command is connected to this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachIo {
    /// The user's terminal: a TTY in the guest, raw mode here, window size forwarded.
    Terminal,
    /// Plain pipes: stdin forwarded, stdout/stderr copied to ours (scripts, CI, benches).
    Pipes,
}

/// Output of a non-interactive command in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Stdout as lossy UTF-8.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// Stderr as lossy UTF-8.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// State of one container as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ContainerState {
    /// No such container.
    Missing,
    Created,
    Running,
    Paused,
    Restarting,
    /// Stopped, with its exit code when known.
    Exited {
        code: Option<i64>,
    },
    /// Being removed or dead.
    Dead,
}

/// Live status of one bottle from the engine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BottleStatus {
    pub slug: String,
    pub agent: ContainerState,
    pub sidecar: ContainerState,
    /// Labelled networks that exist for this bottle.
    pub networks: Vec<String>,
}

impl BottleStatus {
    /// One word for `list`: `running`, `stopped`, `partial` (a crashed start), `gone`.
    pub fn summary(&self) -> &'static str {
        use ContainerState::*;
        match (&self.agent, &self.sidecar) {
            (Running, Running) => "running",
            (Missing, Missing) if self.networks.is_empty() => "gone",
            (Exited { .. } | Created, Exited { .. } | Created) => "stopped",
            _ => "partial",
        }
    }
}

/// What `down` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DownReport {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
}

/// Which container's engine log `logs` shows (audit logs are files on the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    Sidecar,
    Agent,
}

/// Where the sidecar's host-reachable control API and health endpoint are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAccess {
    /// Base URL of the supervise control API as the host reaches it (for `supervise.json`).
    pub control_url: String,
    /// The sidecar's address the host reaches.
    pub sidecar_ip: IpAddr,
}

/// A way of running bottles. Every implementation gives the same security properties: the
/// agent's only path out is the sidecar, it runs unprivileged, it holds no secret.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Short name (`docker`).
    fn name(&self) -> &'static str;

    /// Builds images, creates networks, starts the sidecar (config on stdin) and waits for its
    /// health, then creates, starts and provisions the agent. Does not run the agent command.
    /// On error, what was created stays labelled for [`Backend::down`] (the caller runs it).
    async fn up(&self, req: UpRequest<'_>) -> Result<HostAccess>;

    /// Runs the agent command in the bottle connected to this process and returns its exit
    /// code. Each call is a new process in the same guest (a second `attach` opens a second
    /// session).
    async fn attach(
        &self,
        slug: &str,
        agent: &AgentPlan,
        command: &[String],
        io: AttachIo,
    ) -> Result<i64>;

    /// Runs `argv` in the agent's guest (as the agent user, or root) and collects its output.
    async fn exec(
        &self,
        slug: &str,
        agent: &AgentPlan,
        argv: &[String],
        as_root: bool,
    ) -> Result<ExecOutput>;

    /// Stops the bottle's containers, keeping them (and their provisioning) for `resume`.
    async fn stop(&self, slug: &str) -> Result<()>;

    /// Starts a stopped bottle again: the sidecar gets its (freshly resolved) config on stdin,
    /// its health is awaited, the agent container is started. Provisioning is kept from `up`.
    async fn resume(&self, req: UpRequest<'_>) -> Result<HostAccess>;

    /// Stops and removes every container and network labelled with this slug (so a crashed
    /// start is cleaned too). Images are kept as cache. Idempotent.
    async fn down(&self, slug: &str) -> Result<DownReport>;

    /// Live status from the engine.
    async fn status(&self, slug: &str) -> Result<BottleStatus>;

    /// Every bottle that has labelled resources on the engine.
    async fn list(&self) -> Result<Vec<BottleStatus>>;

    /// Hands the backend a bottle's resolved agent env for the sessions this process opens
    /// (`attach` from a new process: values from the host or the terminal are never stored by
    /// the engine, so they are resolved again and given here).
    fn set_session_env(&self, _slug: &str, _env: &[(String, Secret)]) {}

    /// Network indexes already in use on the engine by anyone (the engine is shared by every
    /// `$BOT_BOTTLE_HOME` on the machine), so a new bottle's subnets never overlap them.
    async fn indexes_in_use(&self) -> Result<std::collections::BTreeSet<u32>> {
        Ok(std::collections::BTreeSet::new())
    }

    /// Copies a container's engine log to `out` (following when asked).
    async fn logs(
        &self,
        slug: &str,
        source: LogSource,
        follow: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<()>;
}

/// Where the sidecar binary for the sidecar image comes from: `BOT_BOTTLE_SIDECAR_BIN`, else
/// `bottle-sidecar` beside the running executable (and its parent, for `target/*/deps`).
pub fn find_sidecar_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BOT_BOTTLE_SIDECAR_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::SidecarBinary { searched: vec![p] })
        };
    }
    let mut searched = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent().map(Path::to_path_buf);
        for _ in 0..2 {
            if let Some(d) = dir {
                let cand = d.join("bottle-sidecar");
                if cand.is_file() {
                    return Ok(cand);
                }
                searched.push(cand);
                dir = d.parent().map(Path::to_path_buf);
            } else {
                break;
            }
        }
    }
    Err(Error::SidecarBinary { searched })
}
