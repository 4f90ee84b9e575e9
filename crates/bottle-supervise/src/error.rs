//! The crate's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::types::AnswerRejection;

/// Everything that can fail in supervise. Messages never carry a token: the control token and
/// the egress admin token travel only in request headers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file or folder could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file's JSON did not match what was expected.
    #[error("{path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A file holding a secret is readable by others than its owner.
    #[error("{path} has mode {mode:o}; it holds a token and must be 0600")]
    LooseMode { path: PathBuf, mode: u32 },
    /// A value in a file is not acceptable.
    #[error("{path}: {field} is not valid: {reason}")]
    BadField {
        path: PathBuf,
        field: &'static str,
        reason: &'static str,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(reqwest::Error),
    /// A bottle's control API could not be reached or sent something unreadable.
    #[error("control API of bottle {bottle}: {}", chain(.source))]
    ControlHttp {
        bottle: String,
        source: reqwest::Error,
    },
    /// A bottle's control API refused a call.
    #[error("control API of bottle {bottle} answered {status}: {message}")]
    ControlStatus {
        bottle: String,
        status: u16,
        message: String,
    },
    /// No bottle has a request with this id.
    #[error("no pending request {id} in any bottle (see `bot-bottle requests`)")]
    UnknownRequest { id: String },
    /// The id exists in several bottles.
    #[error("request id {id} is pending in bottles {slugs}; write it as <slug>/{id}")]
    AmbiguousRequest { id: String, slugs: String },
    /// The answer does not fit the request.
    #[error("request {id}: {source}")]
    Answer { id: String, source: AnswerRejection },
    /// The agent has too many requests waiting already.
    #[error("{limit} requests are already waiting for the operator")]
    TooManyPending { limit: usize },
    /// The egress admin API could not be reached.
    #[error("egress admin API unreachable: {}", chain(.0))]
    EgressAdminHttp(reqwest::Error),
    /// The egress admin API refused the route.
    #[error("egress admin API answered {status}: {message}")]
    EgressAdminStatus { status: u16, message: String },
    /// The terminal could not be driven.
    #[error("terminal: {0}")]
    Terminal(std::io::Error),
    /// The random source failed.
    #[cfg(feature = "server")]
    #[error("no randomness available: {0}")]
    Random(getrandom::Error),
}

/// An error and its causes, `: `-joined (reqwest's own message omits the cause, e.g. "connection
/// refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
