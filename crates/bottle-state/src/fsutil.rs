//! Small filesystem primitives: atomic writes, private files and directories.
//!
//! Every file this crate writes goes through [`write_atomic`]: the bytes land in a fresh temp
//! file in the same directory (created with `O_CREAT|O_EXCL` and its final mode, so it is never
//! readable by anyone else, not even for an instant), are fsynced, and the temp file is renamed
//! over the target. A reader therefore sees either the old or the new content, never a mix.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Mode of every directory this crate creates.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of secret files (CA key, supervise state).
pub(crate) const SECRET_MODE: u32 = 0o600;

/// Distinguishes temp files written concurrently by threads of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically with mode 0600: a secret is never world-readable, even
/// briefly, and a reader never sees a half-written file.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes, SECRET_MODE)
}

/// Writes `bytes` to `path` atomically: temp file (created exclusively with `mode`) in the
/// same directory, fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (tmp_path, mut file) = create_temp(dir, &file_name, mode)?;
    let written = (|| -> io::Result<()> {
        file.write_all(bytes)?;
        // The umask may have cleared bits of `mode`; never widen beyond it, but make the
        // final mode exact so a 0644 request is honoured under a strict umask too.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()
    })();
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp_path);
        return Err(Error::io("write", &tmp_path, e));
    }
    if let Err(e) = fs::rename(&tmp_path, path) {
        let _ = fs::remove_file(&tmp_path);
        return Err(Error::io("rename into place", path, e));
    }
    sync_dir(dir)
}

/// Creates a uniquely named temp file next to the target, exclusively, with `mode`.
fn create_temp(dir: &Path, file_name: &str, mode: u32) -> Result<(PathBuf, File)> {
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{file_name}.tmp-{}-{n}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            // Left behind by a crashed process that had our pid: pick the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create temp file", tmp, e)),
        }
    }
}

/// Fsyncs a directory so a rename or create in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}

/// Creates `path` (and missing parents) with mode 0700; an existing directory is left as is.
pub(crate) fn create_private_dir_all(path: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .map_err(|e| Error::io("create directory", path, e))
}

/// Creates exactly `path` with mode 0700; fails with `AlreadyExists` if it exists, which is
/// what makes directory creation a reservation.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().mode(DIR_MODE).create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_0600_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.key");
        write_secret_file(&p, b"one").unwrap();
        write_secret_file(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temp file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ca.key")]);
    }

    #[test]
    fn write_into_missing_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope").join("f");
        let err = write_secret_file(&p, b"x").unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
