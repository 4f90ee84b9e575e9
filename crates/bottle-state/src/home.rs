//! Where state lives: the `$BOT_BOTTLE_HOME` root and the paths inside one bottle's folder.
//!
//! ```text
//! $BOT_BOTTLE_HOME/            (default ~/.bot-bottle, 0700)
//!   home.lock                  short critical sections: slug minting, index allocation, updates
//!   providers/<name>/          user providers (provider.yaml + Dockerfile)
//!   bottles/<slug>/            0700, one per bottle
//!     metadata.json            never a secret value
//!     lock                     held by the process running this bottle's `start`
//!     ca/ca.crt, ca/ca.key     the bottle's CA (key 0600, never inside the guest)
//!     audit/egress.jsonl, audit/git.jsonl, audit/supervise.jsonl
//!     sidecar/                 state the sidecar keeps (bind-mounted into it)
//!     supervise.json           0600
//!     locks/                   finer-grained per-bottle locks
//! ```
//!
//! Paths are computed here and nowhere else; creating them is [`crate::create_bottle`]'s job.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::create_private_dir_all;
use crate::slug::validate_slug;

/// Environment variable that overrides the state root.
pub const HOME_ENV: &str = "BOT_BOTTLE_HOME";

/// The state root, `$BOT_BOTTLE_HOME` or `~/.bot-bottle`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `$BOT_BOTTLE_HOME` if set and non-empty, else `$HOME/.bot-bottle`; [`Error::NoHome`]
    /// when neither is set. A relative `BOT_BOTTLE_HOME` is made absolute against the current
    /// directory so later `cd`s cannot move it.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(std::env::var_os(HOME_ENV), std::env::var_os("HOME"))
    }

    /// [`Home::from_env`] with the two variables passed in (testable without touching the
    /// process environment).
    pub fn from_vars(bot_bottle_home: Option<OsString>, home: Option<OsString>) -> Result<Self> {
        let non_empty = |v: Option<OsString>| v.filter(|s| !s.is_empty());
        let root = match (non_empty(bot_bottle_home), non_empty(home)) {
            (Some(explicit), _) => PathBuf::from(explicit),
            (None, Some(home)) => PathBuf::from(home).join(".bot-bottle"),
            (None, None) => return Err(Error::NoHome),
        };
        let root = std::path::absolute(&root).map_err(|e| Error::io("resolve", &root, e))?;
        Ok(Self { root })
    }

    /// A home at an explicit path (tests, `--home` flags).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { root: path.into() }
    }

    /// Creates the root, `bottles/` and `providers/` (0700) if missing.
    pub fn ensure(&self) -> Result<()> {
        create_private_dir_all(&self.root)?;
        create_private_dir_all(&self.bottles_dir())?;
        create_private_dir_all(&self.providers_dir())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `bottles/`.
    pub fn bottles_dir(&self) -> PathBuf {
        self.root.join("bottles")
    }

    /// `providers/`.
    pub fn providers_dir(&self) -> PathBuf {
        self.root.join("providers")
    }

    /// `providers/<name>/` (the name is not validated here: the provider catalogue does that).
    pub fn provider_dir(&self, name: &str) -> PathBuf {
        self.providers_dir().join(name)
    }

    /// `home.lock`.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join("home.lock")
    }

    /// Paths of one bottle; [`Error::InvalidSlug`] if the slug is not a plain name.
    pub fn bottle(&self, slug: &str) -> Result<BottlePaths> {
        validate_slug(slug)?;
        Ok(BottlePaths {
            slug: slug.to_string(),
            dir: self.bottles_dir().join(slug),
        })
    }
}

/// The paths inside `bottles/<slug>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BottlePaths {
    slug: String,
    dir: PathBuf,
}

impl BottlePaths {
    /// The slug.
    pub fn slug(&self) -> &str {
        &self.slug
    }
    /// `bottles/<slug>/` (0700).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// `metadata.json`.
    pub fn metadata(&self) -> PathBuf {
        self.dir.join("metadata.json")
    }
    /// `lock`: held by the process running this bottle's `start`.
    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
    /// `ca/` (0700).
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join("ca")
    }
    /// `ca/ca.crt`.
    pub fn ca_cert(&self) -> PathBuf {
        self.ca_dir().join("ca.crt")
    }
    /// `ca/ca.key` (write it with [`crate::write_secret_file`]).
    pub fn ca_key(&self) -> PathBuf {
        self.ca_dir().join("ca.key")
    }
    /// `audit/` (0700).
    pub fn audit_dir(&self) -> PathBuf {
        self.dir.join("audit")
    }
    /// `audit/egress.jsonl`: egress decisions and injections.
    pub fn egress_log(&self) -> PathBuf {
        self.audit_dir().join("egress.jsonl")
    }
    /// `audit/git.jsonl`: git fetches and pushes with refs.
    pub fn git_log(&self) -> PathBuf {
        self.audit_dir().join("git.jsonl")
    }
    /// `audit/supervise.jsonl`: supervise requests and answers.
    pub fn supervise_log(&self) -> PathBuf {
        self.audit_dir().join("supervise.jsonl")
    }
    /// `sidecar/` (0700): state the sidecar keeps, bind-mounted into it.
    pub fn sidecar_dir(&self) -> PathBuf {
        self.dir.join("sidecar")
    }
    /// `supervise.json` (0600).
    pub fn supervise_state(&self) -> PathBuf {
        self.dir.join("supervise.json")
    }
    /// `locks/` (0700): finer-grained per-bottle locks.
    pub fn locks_dir(&self) -> PathBuf {
        self.dir.join("locks")
    }
    /// The directories [`crate::create_bottle`] creates inside the bottle folder.
    pub(crate) fn subdirs(&self) -> [PathBuf; 4] {
        [
            self.ca_dir(),
            self.audit_dir(),
            self.sidecar_dir(),
            self.locks_dir(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_home_wins() {
        let h = Home::from_vars(Some("/x/state".into()), Some("/home/u".into())).unwrap();
        assert_eq!(h.root(), Path::new("/x/state"));
    }

    #[test]
    fn default_is_dot_bot_bottle_under_home() {
        let h = Home::from_vars(None, Some("/home/u".into())).unwrap();
        assert_eq!(h.root(), Path::new("/home/u/.bot-bottle"));
        let h = Home::from_vars(Some("".into()), Some("/home/u".into())).unwrap();
        assert_eq!(h.root(), Path::new("/home/u/.bot-bottle"));
    }

    #[test]
    fn neither_set_is_a_clear_error() {
        let err = Home::from_vars(None, Some("".into())).unwrap_err();
        assert!(matches!(err, Error::NoHome));
        assert!(err.to_string().contains("BOT_BOTTLE_HOME"));
    }

    #[test]
    fn relative_home_is_made_absolute() {
        let h = Home::from_vars(Some("rel/state".into()), None).unwrap();
        assert!(h.root().is_absolute());
        assert!(h.root().ends_with("rel/state"));
    }

    #[test]
    fn bottle_paths_follow_the_layout() {
        let h = Home::at("/s");
        let b = h.bottle("app-abc123").unwrap();
        assert_eq!(b.dir(), Path::new("/s/bottles/app-abc123"));
        assert_eq!(b.ca_key(), Path::new("/s/bottles/app-abc123/ca/ca.key"));
        assert_eq!(
            b.git_log(),
            Path::new("/s/bottles/app-abc123/audit/git.jsonl")
        );
        assert_eq!(h.lock_path(), Path::new("/s/home.lock"));
        assert_eq!(h.provider_dir("p"), Path::new("/s/providers/p"));
    }

    #[test]
    fn path_like_slugs_are_refused() {
        let h = Home::at("/s");
        for bad in ["../x", "a/b", "", ".hidden", "-x", "A"] {
            assert!(
                matches!(h.bottle(bad), Err(Error::InvalidSlug { .. })),
                "{bad}"
            );
        }
    }
}
