//! The backend's errors. None carries a secret value: engine errors are about names and
//! states, setup failures show the command's name and output (the guest holds no secret).

use std::path::PathBuf;

/// Errors of a backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Docker engine could not be reached.
    #[error(
        "cannot reach the Docker engine: {0} (is dockerd running and is the socket accessible?)"
    )]
    Connect(#[source] bollard::errors::Error),
    /// An engine call failed.
    #[error("docker: {op}: {source}")]
    Docker {
        op: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// An image build failed.
    #[error("building image {image} failed: {message}")]
    Build { image: String, message: String },
    /// Reading a build context or a skills folder failed.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Preparing a host folder for the sidecar failed.
    #[error("preparing host folder {path}: {source}")]
    HostDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No sidecar binary to put in the sidecar image.
    #[error("no bottle-sidecar binary found (looked at: {}); build it with `cargo build -p bottle-sidecar` or set BOT_BOTTLE_SIDECAR_BIN", searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    SidecarBinary { searched: Vec<PathBuf> },
    /// `BOT_BOTTLE_SIDECAR_BUILD` holds something other than its three values.
    #[error("BOT_BOTTLE_SIDECAR_BUILD={value:?} is not one of `auto`, `binary`, `source`")]
    SidecarBuildMode { value: String },
    /// The sidecar must be built from source but this build of the CLI carries no sources.
    #[error("the sidecar image must be built from source here ({why}) but this bot-bottle was built outside its source tree and carries none; build bot-bottle from a checkout, or set BOT_BOTTLE_SIDECAR_BIN to a Linux bottle-sidecar for the engine's architecture")]
    NoSidecarSource { why: String },
    /// The bottle's network index is out of range.
    #[error("network index {index} is out of range (0..{max})")]
    Index { index: u32, max: u32 },
    /// The engine left a host address on the internal network's bridge: the agent could reach
    /// host services through it, so the bottle is refused (fail closed).
    #[error("the internal network {network} has host address {addr} on this machine; refusing to run an agent on it (this Docker engine ignores com.docker.network.bridge.inhibit_ipv4)")]
    HostAddressOnBridge { network: String, addr: String },
    /// The sidecar did not become healthy.
    #[error(
        "the sidecar did not become healthy: {reason}\n--- sidecar log (last lines) ---\n{log}"
    )]
    SidecarUnhealthy { reason: String, log: String },
    /// A provisioning step or setup command failed in the guest.
    #[error("provisioning the agent: `{step}` exited with {code}: {output}")]
    Setup {
        step: String,
        code: i64,
        output: String,
    },
    /// Building an in-memory tar failed.
    #[error("packing files for the guest: {0}")]
    Tar(#[source] std::io::Error),
    /// A bottle that should exist does not.
    #[error("no bottle {slug} on the Docker engine ({what} is missing)")]
    NotFound { slug: String, what: String },
    /// The terminal could not be set up for attach.
    #[error(transparent)]
    Terminal(#[from] bottle_terminal::Error),
    /// Copying to this process's stdout/stderr failed.
    #[error("copying the agent's output: {0}")]
    Io(#[source] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn engine(op: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Error {
    let op = op.into();
    move |source| Error::Docker { op, source }
}
