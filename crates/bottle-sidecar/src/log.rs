//! The sidecar's own lifecycle log: JSON lines in `<audit_dir>/sidecar.jsonl` (services write
//! their own files beside it), mirrored to stderr so `docker logs` shows them too.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// Appends lifecycle events. Never given secret values: callers log names and error texts,
/// and the crates' errors never carry secrets.
#[derive(Clone)]
pub struct Log {
    file: Arc<Mutex<File>>,
}

impl Log {
    /// Opens (creating) `<dir>/sidecar.jsonl`, creating `dir` too.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Audit {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("sidecar.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| Error::Audit { path, source })?;
        Ok(Self {
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Writes one event line; a failed write is dropped (logging must not stop the bottle).
    pub fn event(&self, event: &str, detail: &str) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let line = serde_json::json!({"ts_ms": ts, "event": event, "detail": detail});
        let mut text = line.to_string();
        text.push('\n');
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(text.as_bytes());
        }
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}
