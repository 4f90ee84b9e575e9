//! The sidecar process: one [`SidecarConfig`] in, three services out.
//!
//! This crate owns the sidecar's runtime shape: reading the config from stdin (the only channel
//! through which secrets reach the sidecar: never a file, argv or an image layer), starting the
//! egress proxy, the git gate and supervise on one tokio runtime, the `GET /healthz` endpoint
//! that the backend polls, and the sidecar's own lifecycle log in the audit folder. The services
//! themselves live in their crates; this crate only builds them from the config.
//!
//! A service whose crate is not available makes the sidecar refuse to start: a bottle without
//! its proxy or gate must never look healthy.

pub mod health;
pub mod log;
pub mod services;

use std::io::Read;

use bottle_config::SidecarConfig;

/// Largest config accepted on stdin. A real config is a few KiB (routes, keys, a CA); anything
/// far larger is a mistake, and reading without a bound would let it exhaust memory.
pub const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// Errors of the sidecar.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading stdin failed.
    #[error("reading the sidecar config from stdin: {0}")]
    Stdin(#[source] std::io::Error),
    /// stdin held nothing: the backend must write the config and close stdin.
    #[error("no sidecar config on stdin (expected one JSON SidecarConfig, then EOF)")]
    EmptyConfig,
    /// stdin held more than [`MAX_CONFIG_BYTES`].
    #[error("sidecar config on stdin exceeds {MAX_CONFIG_BYTES} bytes")]
    ConfigTooLarge,
    /// The config did not parse.
    #[error(transparent)]
    Config(#[from] bottle_config::Error),
    /// A service this config needs is not built into this sidecar.
    #[error("the {service} service is not available in this sidecar build ({why}); refusing to start without it")]
    ServiceUnavailable {
        service: &'static str,
        why: &'static str,
    },
    /// A service failed to start.
    #[error("starting the {service} service: {message}")]
    ServiceStart {
        service: &'static str,
        message: String,
    },
    /// A service stopped on its own.
    #[error("the {service} service stopped: {message}")]
    ServiceStopped {
        service: &'static str,
        message: String,
    },
    /// Binding or serving the health endpoint failed.
    #[error("health endpoint on {addr}: {source}")]
    Health {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Creating or writing the audit folder failed.
    #[error("audit log {path}: {source}")]
    Audit {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Reads one config from `input` to EOF (bounded by [`MAX_CONFIG_BYTES`]) and parses it.
pub fn read_config(input: impl Read) -> Result<SidecarConfig> {
    let mut buf = Vec::new();
    input
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(Error::Stdin)?;
    if buf.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::ConfigTooLarge);
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::EmptyConfig);
    }
    Ok(SidecarConfig::from_json(&buf)?)
}

/// Runs every service and the health endpoint until one of them stops (which is an error: the
/// services run for the bottle's whole life) or the process is signalled.
pub async fn run(config: SidecarConfig) -> Result<()> {
    let log = log::Log::open(&config.audit_dir)?;
    let running = services::start(&config, &log).await?;
    let health = health::serve(config.health_listen).await?;
    log.event("ready", &config.bottle.slug);
    let outcome = tokio::select! {
        r = running.wait_any() => r,
        r = health => r,
        _ = shutdown_signal() => Ok(()),
    };
    match &outcome {
        Ok(()) => log.event("stopped", &config.bottle.slug),
        Err(e) => log.event("failed", &e.to_string()),
    }
    outcome
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    // Docker stops containers with SIGTERM; failing to install the handler only means the
    // default action (exit) applies, which is also acceptable.
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stdin_is_a_clear_error() {
        let e = read_config(&b"  \n"[..]).unwrap_err();
        assert!(e.to_string().contains("no sidecar config on stdin"), "{e}");
    }

    #[test]
    fn oversized_stdin_is_refused() {
        let big = vec![b' '; (MAX_CONFIG_BYTES + 10) as usize];
        assert!(matches!(read_config(&big[..]), Err(Error::ConfigTooLarge)));
    }

    #[test]
    fn invalid_json_names_the_problem_without_echoing_values() {
        let e = read_config(&br#"{"bottle": 1, "secret": "hunter2"}"#[..]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("sidecar config is not valid"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}
