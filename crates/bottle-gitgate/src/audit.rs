//! The gate's audit log: one JSON object per line, appended.
//!
//! A line per fetch (the upstream refresh: refs that moved, old→new) and per push (each ref
//! update, the decision and the rule that made it, and the upstream's result). Lines carry
//! no secret: upstream messages are scrubbed before they get here.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;

/// One ref movement, `old`→`new` (all-zero for create/delete).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RefMove {
    #[serde(rename = "ref")]
    pub name: String,
    pub old: String,
    pub new: String,
}

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub time: String,
    /// The bottle's slug, when the gate was told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bottle: Option<String>,
    pub repo: String,
    /// `fetch` or `push`.
    pub op: &'static str,
    /// Git protocol version the agent spoke (0 when it sent no `Git-Protocol` header).
    pub protocol: u8,
    pub refs: Vec<RefMove>,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The rule that decided (`allow`, `read_only`, `allow_delete`, `allow_force`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `ok`, `rejected`, `error`, or `skipped` (nothing was sent upstream).
    pub upstream: &'static str,
    /// A scrubbed explanation (the upstream's or git's message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Appends records to a file (or drops them when no file was configured).
#[derive(Debug)]
pub struct AuditLog {
    path: Option<PathBuf>,
    lock: Mutex<()>,
}

impl AuditLog {
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Writes one line. A failure to write is logged, not fatal: the gate keeps serving, but
    /// the operator sees why the audit trail has a gap.
    pub fn write(&self, record: &Record) {
        let Some(path) = &self.path else { return };
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        let _guard = self.lock.lock();
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(&line));
        if let Err(e) = res {
            tracing::error!(path = %path.display(), error = %e, "cannot write the git audit log");
        }
    }
}

/// Now, RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
