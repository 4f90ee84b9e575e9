//! The audit log and the counters.
//!
//! This module owns the format of an audit line (one JSON object per request or tunnel) and its
//! writer: lines are serialised on the request path into a small buffer and handed over a
//! channel to one writer thread with a buffered file, which flushes whenever it has caught up.
//! The request path never waits for the disk. No header value is ever part of a line: the
//! injected credential appears only as its scheme.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::{Error, Result};

/// One audit line.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// RFC 3339 UTC time the request or tunnel started.
    pub time: String,
    pub bottle: &'a str,
    /// `CONNECT` for tunnels, else the request method.
    pub method: &'a str,
    pub host: &'a str,
    pub port: u16,
    /// Path without the query (the query may carry data the operator need not keep).
    pub path: &'a str,
    /// The route's host pattern, if one matched.
    pub route: Option<&'a str>,
    /// `allow`, `deny` or `error`.
    pub decision: &'a str,
    /// Refusal or error code; `intercept`, `passthrough` or `forward` when allowed.
    pub reason: &'a str,
    /// Scheme of the injected credential (`bearer`, `basic`, `header`), never its value.
    pub injected: Option<&'static str>,
    pub status: u16,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
}

/// Where audit lines go.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: Option<mpsc::Sender<Vec<u8>>>,
}

impl AuditSink {
    /// A sink that drops lines (no audit path configured).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Opens `path` for appending and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| Error::Audit {
                path: path.display().to_string(),
                source,
            })?;
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("egress-audit".into())
            .spawn(move || writer(file, rx))
            .map_err(|source| Error::Audit {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self { tx: Some(tx) })
    }

    /// Writes one line (serialised here, written by the writer thread).
    pub fn log(&self, rec: &Record<'_>) {
        if let Some(tx) = &self.tx {
            let mut buf = Vec::with_capacity(256);
            if serde_json::to_writer(&mut buf, rec).is_ok() {
                buf.push(b'\n');
                // A send error means the writer thread is gone (disk error): nothing to do here
                // but keep serving; counters still record the request.
                let _ = tx.send(buf);
            }
        }
    }
}

/// How long the writer waits after a flush before it blocks again. While it sleeps, senders
/// never wake it (a wake-up per line costs the request path a futex call at high rates), so
/// under load lines are written in batches at most this late.
const BATCH: std::time::Duration = std::time::Duration::from_millis(20);

fn writer(file: std::fs::File, rx: mpsc::Receiver<Vec<u8>>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
    while let Ok(line) = rx.recv() {
        if out.write_all(&line).is_err() {
            return;
        }
        // Drain what is queued, then flush once: bursts cost one write(2).
        while let Ok(more) = rx.try_recv() {
            if out.write_all(&more).is_err() {
                return;
            }
        }
        if out.flush().is_err() {
            return;
        }
        std::thread::sleep(BATCH);
    }
    let _ = out.flush();
}

/// RFC 3339 UTC time with milliseconds.
pub fn now_rfc3339() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Milliseconds since `start`.
pub fn ms_since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// Counters served by the admin API.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub connections_active: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub tunnels: AtomicU64,
    pub requests: AtomicU64,
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    pub errors: AtomicU64,
    pub injected: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

impl Counters {
    /// Adds one.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A JSON snapshot.
    pub fn snapshot(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "connections": g(&self.connections),
            "connections_active": g(&self.connections_active),
            "connections_rejected": g(&self.connections_rejected),
            "tunnels": g(&self.tunnels),
            "requests": g(&self.requests),
            "allowed": g(&self.allowed),
            "denied": g(&self.denied),
            "errors": g(&self.errors),
            "injected": g(&self.injected),
            "bytes_up": g(&self.bytes_up),
            "bytes_down": g(&self.bytes_down),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_416), (2025, 11, 24));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert!(now_rfc3339().ends_with('Z'));
    }

    #[test]
    fn lines_are_written_and_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("egress.jsonl");
        let sink = AuditSink::open(&p).unwrap();
        let rec = Record {
            time: now_rfc3339(),
            bottle: "b",
            method: "GET",
            host: "h",
            port: 443,
            path: "/",
            route: None,
            decision: "deny",
            reason: "host_not_allowed",
            injected: None,
            status: 403,
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
        };
        sink.log(&rec);
        for _ in 0..200 {
            if std::fs::read_to_string(&p).unwrap().lines().count() == 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let line = std::fs::read_to_string(&p).unwrap();
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["reason"], "host_not_allowed");
    }
}
