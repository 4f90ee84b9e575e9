//! `bot-bottle logs NAME`: the bottle's audit logs (JSON lines written by the sidecar), as
//! readable lines or raw JSON, optionally followed.

use std::io::{BufRead, BufReader, Seek, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{LogKind, LogsArgs};
use crate::exit::Outcome;

pub fn run(a: LogsArgs) -> Outcome {
    let home = super::home()?;
    let slug = super::find_bottle(&home, &a.name)?;
    let paths = home.bottle(&slug)?;
    let files: Vec<(&str, PathBuf)> = match a.kind() {
        LogKind::Egress => vec![("egress", paths.egress_log())],
        LogKind::Git => vec![("git", paths.git_log())],
        LogKind::Supervise => vec![("supervise", paths.supervise_log())],
        LogKind::All => vec![
            ("egress", paths.egress_log()),
            ("git", paths.git_log()),
            ("supervise", paths.supervise_log()),
        ],
    };
    let mut readers = Vec::new();
    for (kind, path) in &files {
        match std::fs::File::open(path) {
            Ok(f) => readers.push((*kind, BufReader::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
        }
    }
    let mut out = std::io::stdout().lock();
    loop {
        let mut any = false;
        for (kind, r) in readers.iter_mut() {
            let mut line = String::new();
            loop {
                line.clear();
                let pos = r.stream_position()?;
                if r.read_line(&mut line)? == 0 {
                    break;
                }
                if !line.ends_with('\n') {
                    // A line still being written: read it whole next time.
                    r.seek(std::io::SeekFrom::Start(pos))?;
                    break;
                }
                any = true;
                if a.json {
                    out.write_all(line.as_bytes())?;
                } else {
                    writeln!(out, "{kind:<9} {}", summarize(line.trim_end()))?;
                }
            }
        }
        out.flush()?;
        if !a.follow {
            return Ok(0);
        }
        if !any {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// One audit JSON line as `key=value` pairs (time first); non-JSON lines verbatim.
fn summarize(line: &str) -> String {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line) {
        Ok(map) => {
            let mut parts = Vec::new();
            for key in ["time", "ts"] {
                if let Some(v) = map.get(key).and_then(|v| v.as_str()) {
                    parts.push(v.to_string());
                }
            }
            for (k, v) in &map {
                if k == "time" || k == "ts" || v.is_null() {
                    continue;
                }
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                parts.push(format!("{k}={v}"));
            }
            parts.join(" ")
        }
        Err(_) => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn summarize_puts_time_first() {
        let s = super::summarize(r#"{"decision":"deny","time":"T","host":"x","n":null}"#);
        assert_eq!(s, "T decision=deny host=x");
        assert_eq!(super::summarize("not json"), "not json");
    }
}
