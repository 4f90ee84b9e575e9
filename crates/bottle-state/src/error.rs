//! The crate's error type. Messages name the path or slug involved; none carries file contents.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the state store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither `BOT_BOTTLE_HOME` nor `HOME` is set, so there is nowhere to keep state.
    #[error("cannot find the bot-bottle home: set BOT_BOTTLE_HOME (or HOME, for ~/.bot-bottle)")]
    NoHome,
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("create directory", "read", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A bottle name is not usable as a slug prefix.
    #[error("invalid bottle name `{name}`: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A slug is malformed (it would not be a plain directory name under `bottles/`).
    #[error("invalid bottle slug `{slug}`: expected [a-z0-9-], 1-64 chars, starting with a letter or digit")]
    InvalidSlug {
        /// The rejected slug.
        slug: String,
    },
    /// No bottle with this slug exists.
    #[error("no bottle `{slug}` in the state directory")]
    NotFound {
        /// The slug looked up.
        slug: String,
    },
    /// The bottle directory exists but has no `metadata.json` (a `start` that died very early).
    #[error("bottle `{slug}` has no metadata.json (a start that crashed early?); `bot-bottle rm {slug}` cleans it")]
    MissingMetadata {
        /// The bottle's slug.
        slug: String,
    },
    /// `metadata.json` does not parse.
    #[error("corrupt metadata {}: {source}; `bot-bottle rm` can still remove the bottle", path.display())]
    CorruptMetadata {
        /// The file.
        path: PathBuf,
        /// The parse error (line and column).
        source: serde_json::Error,
    },
    /// `metadata.json` was written by a newer bot-bottle.
    #[error("metadata {} has schema {found}, this bot-bottle understands schema {expected}", path.display())]
    UnsupportedSchema {
        /// The file.
        path: PathBuf,
        /// The schema found in the file.
        found: u32,
        /// The schema this build writes.
        expected: u32,
    },
    /// Metadata could not be serialised.
    #[error("cannot serialise metadata for bottle `{slug}`: {source}")]
    Serialize {
        /// The bottle's slug.
        slug: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// An update tried to change the bottle's slug, which names its directory.
    #[error("metadata update for bottle `{slug}` tried to change its slug")]
    SlugChanged {
        /// The bottle's slug.
        slug: String,
    },
    /// Minting a slug kept hitting existing bottles.
    #[error("could not find a free slug for `{name}` after {attempts} attempts")]
    SlugsExhausted {
        /// The bottle name.
        name: String,
        /// How many candidates were tried.
        attempts: u32,
    },
    /// Every index of a kind is taken by some bottle.
    #[error("no free `{kind}` index below {max}: remove unused bottles (`bot-bottle list`, `bot-bottle rm`)")]
    IndexesExhausted {
        /// The resource kind (e.g. `subnet`).
        kind: String,
        /// The exclusive upper bound.
        max: u32,
    },
    /// The bottle's lock is held by a live process (a `start` still running).
    #[error("bottle `{slug}` is in use by a running bot-bottle process")]
    Busy {
        /// The bottle's slug.
        slug: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
