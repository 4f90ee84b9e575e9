//! Errors of planning and resolution. Messages never carry a secret value.

use std::path::PathBuf;

/// Why a plan could not be made or resolved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest names a provider that is neither built in nor installed.
    #[error("unknown provider `{name}`; built-in providers are claude and codex, user providers live in {searched}")]
    UnknownProvider { name: String, searched: PathBuf },
    /// A user provider's `provider.yaml` is invalid.
    #[error("{path}: {message}")]
    ProviderInvalid { path: PathBuf, message: String },
    /// A file the plan needs could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A template in a provider file uses an unknown variable or filter.
    #[error("provider `{provider}`, {file}: {message}")]
    Template {
        provider: String,
        file: String,
        message: String,
    },
    /// A host env var the bottle needs at start is not set.
    #[error("host environment variable `{var}` (needed by {needed_by}) is not set")]
    MissingHostVar { var: String, needed_by: String },
    /// Env resolution failed (prompt without TTY, malformed value…); the message names the key.
    #[error("env `{key}`: {message}")]
    Env { key: String, message: String },
    /// The codex auth file is missing or has no access token.
    #[error("{path}: {message}")]
    CodexAuth { path: PathBuf, message: String },
    /// Serialising the plan failed.
    #[error("cannot serialise the plan: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
