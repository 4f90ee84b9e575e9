//! `bottle.yaml`: the manifest's schema, its strict parsing and validation, the JSON Schema
//! generated from the types, and host-environment resolution of `env` values.
//!
//! * [`parse_str`] turns text into a validated [`Manifest`]; [`load`] reads a file, parses it and
//!   checks that the files it references exist ([`check_files`]).
//! * Every problem is reported as `<file>:<line>:<col>: <message>` plus a `hint:` line saying how
//!   to fix it. Shape errors (unknown key, wrong type, missing key) stop at the first one;
//!   semantic errors are all reported together ([`Error::Many`]).
//! * [`env`] resolves `${VAR}`, `${VAR:-default}` and `?prompt` at start into
//!   [`bottle_config::Secret`]s.
//!
//! The only I/O here is reading the manifest, checking that referenced files exist, and asking
//! on the terminal for `?prompt` values.

mod de;
pub mod env;
mod error;
pub mod schema;
pub mod types;
mod validate;
mod yaml;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use error::{Diagnostic, Error, Errors, Location, Result};
pub use types::*;
pub use validate::{
    is_provider_path, parse_timeout, GitUpstream, UpstreamKind, COLOR_NAMES,
    DEFAULT_SUPERVISE_TIMEOUT,
};

/// Largest manifest accepted, in bytes. A real one is a few kilobytes.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// Parses and validates manifest text. `file` is only used to name the file in errors.
///
/// Normalises what is case-insensitive: egress hosts are lower-cased and methods upper-cased.
/// Does not touch the file system; [`load`] also checks referenced files.
pub fn parse_str(source: &str, file: &Path) -> Result<Manifest> {
    let root = parse_tree(source, file)?;
    let mut manifest: Manifest = de::from_node(&root).map_err(|p| Error::Shape(p.at(file)))?;
    let problems = validate::validate(&mut manifest, &root);
    match Error::collect(
        problems
            .into_iter()
            .map(|p| Error::Invalid(p.at(file)))
            .collect(),
    ) {
        None => Ok(manifest),
        Some(e) => Err(e),
    }
}

/// Parses the YAML into a located tree whose root is a mapping.
fn parse_tree(source: &str, file: &Path) -> Result<yaml::Node> {
    let first = yaml::Mark { line: 1, col: 1 };
    if source.len() > MAX_MANIFEST_BYTES {
        return Err(Error::Syntax(
            first
                .problem(
                    format!(
                        "the manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
                        source.len()
                    ),
                    Some("a manifest is a few kilobytes: is this the right file?".into()),
                )
                .at(file),
        ));
    }
    let root = yaml::parse(source).map_err(|p| Error::Syntax(p.at(file)))?;
    let Some(root) = root else {
        return Err(Error::Shape(
            first
                .problem(
                    "the manifest is empty",
                    Some("start with `version: 1`, `name: my-agent` and an `agent:` block".into()),
                )
                .at(file),
        ));
    };
    if !matches!(root.kind, yaml::Kind::Map(_)) {
        return Err(Error::Shape(
            root.mark
                .problem(
                    format!(
                        "the manifest must be a mapping of keys, found {}",
                        root.describe()
                    ),
                    Some("write `key: value` lines, starting with `version: 1`".into()),
                )
                .at(file),
        ));
    }
    Ok(root)
}

/// A manifest read from disk, with what is needed to resolve its relative paths.
#[derive(Clone)]
pub struct Loaded {
    pub manifest: Manifest,
    /// The manifest file as given.
    pub path: PathBuf,
    /// The folder holding it: relative paths in the manifest are relative to this.
    pub dir: PathBuf,
    /// The manifest's text (for re-locating values in later errors).
    pub source: String,
}

// Not derived: `source` may hold literal env values; a debug log of a `Loaded` should not.
impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("path", &self.path)
            .field("dir", &self.dir)
            .field("source_len", &self.source.len())
            .finish_non_exhaustive()
    }
}

impl Loaded {
    /// Resolves a path written in the manifest: `~` and `~/...` against `$HOME`, relative paths
    /// against the manifest's folder, absolute paths unchanged.
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        resolve_with_home(&self.dir, p, std::env::var_os("HOME").map(PathBuf::from))
    }
}

fn resolve_with_home(dir: &Path, p: &Path, home: Option<PathBuf>) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~") {
        if let Some(home) = home {
            return home.join(rest);
        }
    }
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// Reads, parses and validates the manifest at `path`, then checks that the files it names exist.
pub fn load(path: &Path) -> Result<Loaded> {
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    // One byte over the limit is enough to know it is too large.
    file.take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let source = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let text = String::from_utf8_lossy(valid);
            let line = text.matches('\n').count() + 1;
            let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            return Err(Error::Syntax(Diagnostic {
                location: Location {
                    file: path.to_path_buf(),
                    line,
                    col,
                },
                message: "the manifest is not valid UTF-8".into(),
                hint: Some("save the file as UTF-8 text".into()),
            }));
        }
    };
    let manifest = parse_str(&source, path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let loaded = Loaded {
        manifest,
        path: path.to_path_buf(),
        dir,
        source,
    };
    match Error::collect(check_files(&loaded)) {
        None => Ok(loaded),
        Some(e) => Err(e),
    }
}

/// Checks that every file and folder the manifest references exists (`prompt`, `skills`,
/// `agent.dockerfile`, git `identity` and `known_hosts`). Each error is located.
pub fn check_files(loaded: &Loaded) -> Vec<Error> {
    let root = match yaml::parse(&loaded.source) {
        Ok(Some(root)) => root,
        // The source parsed in `load`; if a caller built `Loaded` by hand with bad text,
        // positions fall back to the top of the file.
        _ => yaml::Node {
            mark: yaml::Mark { line: 1, col: 1 },
            kind: yaml::Kind::Map(Vec::new()),
            height: 1,
        },
    };
    validate::referenced_files(&loaded.manifest)
        .into_iter()
        .filter_map(|r| {
            let full = loaded.resolve_path(&r.path);
            let problem = if r.dir {
                if !full.is_dir() {
                    Some(format!("{} `{}` is not a folder", r.what, full.display()))
                } else if r.needs_skill_md && !full.join("SKILL.md").is_file() {
                    Some(format!("skill folder `{}` has no SKILL.md", full.display()))
                } else {
                    None
                }
            } else if !full.is_file() {
                Some(format!("{} `{}` does not exist", r.what, full.display()))
            } else {
                None
            };
            problem.map(|message| {
                Error::MissingFile(
                    root.locate(&r.at)
                        .problem(message, Some(r.hint.clone()))
                        .at(&loaded.path),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_and_relative_paths_resolve() {
        let dir = Path::new("/m");
        let home = Some(PathBuf::from("/home/u"));
        assert_eq!(
            resolve_with_home(dir, Path::new("~/.ssh/k"), home.clone()),
            PathBuf::from("/home/u/.ssh/k")
        );
        assert_eq!(
            resolve_with_home(dir, Path::new("./p.md"), home.clone()),
            PathBuf::from("/m/./p.md")
        );
        assert_eq!(
            resolve_with_home(dir, Path::new("/abs"), home),
            PathBuf::from("/abs")
        );
        assert_eq!(
            resolve_with_home(dir, Path::new("~/k"), None),
            PathBuf::from("/m/~/k")
        );
    }
}
