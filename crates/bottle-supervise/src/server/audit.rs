//! The bottle's supervise audit log: one JSON line per request, answer and outcome.
//!
//! The file is opened for append with mode 0600 and each line goes out in one `write` call, so
//! lines from concurrent writers (and from the other services writing their own files) never
//! interleave.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::types::now_ms;

/// An append-only JSONL audit file.
#[derive(Debug)]
pub(crate) struct AuditLog {
    path: PathBuf,
    bottle: String,
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating with 0600) the audit file; its folder must exist or be creatable.
    pub(crate) fn open(path: &Path, bottle: &str) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| Error::Write {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            bottle: bottle.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// Writes one line: `{"ts_ms", "service": "supervise", "bottle", "event", ...fields}`.
    pub(crate) fn record(&self, event: &str, fields: Value) -> Result<()> {
        let mut line = Map::new();
        line.insert("ts_ms".into(), now_ms().into());
        line.insert("service".into(), "supervise".into());
        line.insert("bottle".into(), self.bottle.clone().into());
        line.insert("event".into(), event.into());
        if let Value::Object(extra) = fields {
            line.extend(extra);
        }
        let mut bytes =
            serde_json::to_vec(&Value::Object(line)).map_err(|source| Error::Parse {
                path: self.path.clone(),
                source,
            })?;
        bytes.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(&bytes).map_err(|source| Error::Write {
            path: self.path.clone(),
            source,
        })
    }
}
