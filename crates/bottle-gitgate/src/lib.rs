//! The git gate: a smart-HTTP relay between the agent and the real upstream.
//!
//! The agent's git remotes point at the gate (`http://<gate>/<name>.git`, set up with the
//! [`insteadof`] rules). The gate serves each configured repo from a bare mirror in its private
//! work dir, refreshed from the upstream before every fetch, and relays pushes to the upstream
//! after checking the entry's push rules; the agent sees `ok` only when the upstream accepted.
//! The gate alone holds the upstream credential (an SSH key with a pinned `known_hosts`, or an
//! HTTPS token); it never appears in argv, logs, messages or responses.
//!
//! ```no_run
//! # async fn demo(config: bottle_config::GitGateConfig) -> bottle_gitgate::Result<()> {
//! let gate = bottle_gitgate::GitGate::builder(config)
//!     .work_dir("/state/gitgate")
//!     .audit_log("/audit/git.jsonl")
//!     .build()?;
//! let handle = gate.spawn().await?;
//! println!("gate on {}", handle.local_addr());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Features: `server` (default) is the gate itself. Without it (`default-features = false`) the
//! crate is only the pure parts — [`insteadof`], [`pktline`], [`rules`], [`audit`] — with no
//! HTTP or process dependencies, for the host-side planner.
//!
//! Modules: [`insteadof`] (agent-side git config, pure), [`pktline`] (framing and the push
//! command list), [`rules`] (push policy), `upstream` (child environment and credential files),
//! `mirror` (mirrors, refresh, the relay hook), `server` (HTTP routes), [`audit`].

pub mod audit;
#[cfg(feature = "server")]
mod gate;
pub mod insteadof;
#[cfg(feature = "server")]
mod mirror;
pub mod pktline;
pub mod rules;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod upstream;

use std::net::SocketAddr;

#[cfg(feature = "server")]
pub use gate::{GateHandle, GitGate, GitGateBuilder};
pub use insteadof::{insteadof_rules, to_gitconfig, InsteadOf};

/// Errors building or running the gate. Per-request failures are HTTP answers, not errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be served (bad repo name, upstream URL, missing work dir).
    #[error("git gate configuration: {0}")]
    Config(String),
    /// Preparing the work dir failed.
    #[error("git gate setup: {what}: {source}")]
    Setup {
        what: String,
        source: std::io::Error,
    },
    /// A git command the gate runs at setup failed (message scrubbed of secrets).
    #[error("git gate setup: {what} failed: {message}")]
    Git { what: String, message: String },
    /// The listening socket could not be bound.
    #[error("git gate: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
