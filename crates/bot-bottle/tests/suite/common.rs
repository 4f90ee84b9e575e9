//! Helpers shared by the suites that drive the real CLI on the Docker engine.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The sidecar binary, built once per test process into the same target dir as this test.
pub fn sidecar_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("BOT_BOTTLE_SIDECAR_BIN") {
            return PathBuf::from(p);
        }
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_bot-bottle"));
        let target = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "bottle-sidecar", "-j", "2"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(repo())
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p bottle-sidecar failed");
        target.join("debug/bottle-sidecar")
    })
    .clone()
}

/// The bottle's slug in `home` (the one folder under `bottles/`), if any.
pub fn slug_from(home: &Path) -> Option<String> {
    std::fs::read_dir(home.join("bottles"))
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| !n.starts_with('.'))
}

/// Writes `bottle.yaml` into `dir`: the shell example (its provider and prompt by absolute
/// path) with `extra` appended as more top-level keys.
pub fn shell_manifest(dir: &Path, extra: &str) -> PathBuf {
    let example = repo().join("examples/shell");
    let mut text = std::fs::read_to_string(example.join("bottle.yaml"))
        .unwrap()
        .replace(
            "provider: ./provider",
            &format!("provider: {}", example.join("provider").display()),
        )
        .replace(
            "prompt: ./WELCOME.md",
            &format!("prompt: {}", example.join("WELCOME.md").display()),
        );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(extra);
    let manifest = dir.join("bottle.yaml");
    std::fs::write(&manifest, text).unwrap();
    manifest
}

/// Feeds `script` to a started bottle's agent on its stdin, closes it, and waits for the end.
pub fn session(mut child: Child, script: &str) -> Output {
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A finished command's status and output, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn bot(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bot-bottle"));
    c.env("BOT_BOTTLE_HOME", home)
        .env("BOT_BOTTLE_SIDECAR_BIN", sidecar_bin())
        .env("NO_COLOR", "1")
        .current_dir(repo());
    // Image builds behind a TLS-intercepting proxy need its CA (see .ci/run).
    if let Some(ca) = std::env::var_os("BOT_BOTTLE_BUILD_CA_CERT") {
        c.env("BOT_BOTTLE_BUILD_CA_CERT", ca);
    }
    c
}

/// Names of engine resources labelled with `slug` (containers and networks).
pub fn labelled(slug: &str) -> Vec<String> {
    let filter = format!("label=bot-bottle.slug={slug}");
    let mut out = Vec::new();
    for args in [
        vec!["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
        vec![
            "network",
            "ls",
            "--filter",
            &filter,
            "--format",
            "{{.Name}}",
        ],
    ] {
        let o = Command::new("docker").args(&args).output().unwrap();
        out.extend(String::from_utf8_lossy(&o.stdout).lines().map(String::from));
    }
    out
}

/// After a bottle's teardown in `home`: exactly one folder of kept audit logs, and nothing on
/// the engine labelled with its slug. Returns that folder (its name is the slug).
pub fn assert_torn_down(home: &Path) -> PathBuf {
    let logs: Vec<_> = std::fs::read_dir(home.join("logs"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(logs.len(), 1);
    let slug = logs[0].file_name().to_string_lossy().into_owned();
    assert!(
        labelled(&slug).is_empty(),
        "left behind: {:?}",
        labelled(&slug)
    );
    logs[0].path()
}
