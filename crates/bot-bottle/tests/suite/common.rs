//! Helpers shared by the suites that drive the real CLI on the Docker engine.

use std::path::{Path, PathBuf};
use std::process::Command;
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
