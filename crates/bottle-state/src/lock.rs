//! Advisory file locks (`flock`): the home lock for short critical sections, and the
//! per-bottle lock held by the process that owns a running `start`.
//!
//! `flock` locks belong to an open file description and vanish when the process dies, which is
//! exactly what crash detection needs: a bottle whose lock is free has no live owner. They also
//! conflict between two opens within one process, so threads are kept apart like processes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, Result};
use crate::fsutil::SECRET_MODE;
use crate::home::Home;

/// Exclusive lock on `home.lock`, released on drop. Hold it only briefly: every `start`,
/// metadata update and index allocation waits for it.
#[derive(Debug)]
pub struct HomeLock {
    _file: File,
}

impl HomeLock {
    /// Creates the home if needed and blocks until the lock is ours.
    pub fn acquire(home: &Home) -> Result<Self> {
        home.ensure()?;
        let path = home.lock_path();
        let file = open_lock_file(&path)?;
        lock(&file, FlockOperation::LockExclusive).map_err(|e| Error::io("lock", &path, e))?;
        Ok(Self { _file: file })
    }
}

/// Exclusive lock on `bottles/<slug>/lock`, held by the process running the bottle's `start`
/// (and by `rm` while it tears the bottle down). Released on drop or process exit.
#[derive(Debug)]
pub struct BottleLock {
    slug: String,
    path: PathBuf,
    _file: File,
}

impl BottleLock {
    /// Takes the bottle's lock without waiting: `Ok(None)` when another open holds it (a live
    /// `start` or `rm`), [`Error::NotFound`] when the bottle does not exist.
    pub fn try_acquire(home: &Home, slug: &str) -> Result<Option<Self>> {
        let paths = home.bottle(slug)?;
        if !paths.dir().is_dir() {
            return Err(Error::NotFound {
                slug: slug.to_string(),
            });
        }
        let path = paths.lock();
        let file = open_lock_file(&path)?;
        match lock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Self {
                slug: slug.to_string(),
                path,
                _file: file,
            })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(Error::io("lock", &path, e)),
        }
    }

    /// The slug of the locked bottle.
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(SECRET_MODE)
        .open(path)
        .map_err(|e| Error::io("open lock file", path, e))
}

/// `flock`, retried when a signal interrupts the wait.
fn lock(file: &File, op: FlockOperation) -> io::Result<()> {
    loop {
        match flock(file, op) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bottle_lock_is_exclusive_within_a_process_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        home.ensure().unwrap();
        std::fs::create_dir(home.bottles_dir().join("a-000000")).unwrap();
        let held = BottleLock::try_acquire(&home, "a-000000").unwrap().unwrap();
        assert_eq!(held.slug(), "a-000000");
        assert!(BottleLock::try_acquire(&home, "a-000000")
            .unwrap()
            .is_none());
        drop(held);
        assert!(BottleLock::try_acquire(&home, "a-000000")
            .unwrap()
            .is_some());
    }

    #[test]
    fn locking_a_missing_bottle_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        assert!(matches!(
            BottleLock::try_acquire(&home, "nope-000000"),
            Err(Error::NotFound { .. })
        ));
    }
}
