//! Shared helpers for the integration suite.

mod concurrent;
mod crash;
mod layout;
mod metadata;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use bottle_state::NewBottle;

/// A `start`'s description of a bottle named `name`.
pub fn new_bottle(name: &str) -> NewBottle {
    NewBottle {
        name: name.into(),
        label: Some("bob".into()),
        color: Some("magenta".into()),
        backend: "docker".into(),
        provider: "claude".into(),
        manifest_path: "/work/bottle.yaml".into(),
        keep: false,
    }
}

/// Re-runs this test binary as a child process, running only `test` (its full path, e.g.
/// `suite::crash::foo`) with `env` set, so the test can act as a child when it sees `env`.
/// The child's stdin is a pipe: closing it is the "go" signal of [`wait_for_go`], and it
/// closes by itself if the parent dies, so a child never waits forever.
pub fn spawn_self(test: &str, env: &[(&str, &Path)]) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Values printed by a child as `KEY=value` (libtest may have printed `test name ... ` on the
/// same line first).
pub fn child_values(stdout: &[u8], key: &str) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| value_in_line(l, key))
        .collect()
}

/// The `value` of a `KEY=value` at the end of `line`.
pub fn value_in_line(line: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    line.find(&prefix)
        .map(|i| line[i + prefix.len()..].trim().to_string())
}

/// In a child: blocks until the parent closes our stdin.
pub fn wait_for_go() {
    use std::io::Read;
    let mut buf = [0u8; 1];
    let _ = std::io::stdin().read(&mut buf);
}
