//! The crate's errors. Every manifest problem is a [`Diagnostic`]: where it is
//! (`file:line:col`), what is wrong, and how to fix it. Messages never quote a value that may be
//! a secret (env values, token fields, URLs with credentials).

use std::fmt;
use std::path::PathBuf;

/// A position in a manifest: 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One located problem: `<file>:<line>:<col>: <message>` and, when there is one,
/// `\n  hint: <fix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is not valid YAML (or uses YAML features a manifest refuses), or is too large.
    #[error("{0}")]
    Syntax(Diagnostic),
    /// The YAML does not have the manifest's shape: unknown key, wrong type, missing key.
    #[error("{0}")]
    Shape(Diagnostic),
    /// The shape is right but a value breaks a rule (bad name, conflicting keys, ...).
    #[error("{0}")]
    Invalid(Diagnostic),
    /// A file or folder the manifest references does not exist.
    #[error("{0}")]
    MissingFile(Diagnostic),
    /// Several problems, reported together (semantic validation reports all it finds).
    #[error("{0}")]
    Many(Errors),
    /// The manifest file itself could not be read.
    #[error("{}: cannot read the manifest: {source}\n  hint: check the path and its permissions", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An env value is malformed (outside a manifest, so there is no location).
    #[error("{message}\n  hint: {hint}")]
    EnvSyntax { message: String, hint: String },
    /// `${VAR}` without a default and `VAR` is not set on the host.
    #[error("env `{key}` needs the host environment variable `{var}`, which is not set\n  hint: export {var}=... before starting, or write `${{{var}:-default}}` in the manifest")]
    EnvUnset { key: String, var: String },
    /// `?prompt` but there is no terminal to ask on.
    #[error("{key} is `?prompt` but no terminal is attached\n  hint: set it from the host instead (`{key}: ${{HOST_VAR}}` and export HOST_VAR), or run interactively")]
    NoTerminal { key: String },
    /// Asking on the terminal failed for another reason.
    #[error("could not read {key} from the terminal: {source}")]
    Prompt {
        key: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Every located diagnostic this error holds (one, several for [`Error::Many`], none for
    /// the unlocated variants).
    pub fn diagnostics(&self) -> Vec<&Diagnostic> {
        match self {
            Error::Syntax(d) | Error::Shape(d) | Error::Invalid(d) | Error::MissingFile(d) => {
                vec![d]
            }
            Error::Many(all) => all.iter().flat_map(Error::diagnostics).collect(),
            _ => Vec::new(),
        }
    }

    /// Folds a list into one error: `None` when empty, the error itself when alone,
    /// [`Error::Many`] otherwise (sorted by position).
    pub fn collect(errors: Vec<Error>) -> Option<Error> {
        let mut errors = errors;
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => {
                errors.sort_by_key(sort_key);
                Some(Error::Many(Errors(errors)))
            }
        }
    }
}

fn sort_key(e: &Error) -> (usize, usize) {
    e.diagnostics()
        .first()
        .map(|d| (d.location.line, d.location.col))
        .unwrap_or((usize::MAX, usize::MAX))
}

/// Several errors, shown one per line (each with its hint).
#[derive(Debug)]
pub struct Errors(pub Vec<Error>);

impl Errors {
    pub fn iter(&self) -> impl Iterator<Item = &Error> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_vec(self) -> Vec<Error> {
        self.0
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A problem found before the file name is known to the code that found it; turned into a
/// [`Diagnostic`] by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub(crate) fn at(&self, file: &std::path::Path) -> Diagnostic {
        Diagnostic {
            location: Location {
                file: file.to_path_buf(),
                line: self.line,
                col: self.col,
            },
            message: self.message.clone(),
            hint: self.hint.clone(),
        }
    }
}
