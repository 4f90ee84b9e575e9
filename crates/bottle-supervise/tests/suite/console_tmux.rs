//! The console driven for real: the `console_demo` example in tmux, against a real supervise
//! server; the operator approves with a key and the agent's MCP call gets "approved".

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bottle_config::Secret;
use bottle_supervise::endpoint::write_supervise_file;
use serde_json::json;

use super::harness::{call, status, Harness, CONTROL_TOKEN, WAIT};

/// A private tmux server (own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        let socket = format!(
            "bb-supervise-{}-{}",
            std::process::id(),
            tempfile::Builder::new()
                .tempfile()
                .unwrap()
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace('.', "")
        );
        Tmux { socket }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux must be installed (apt-get install tmux)")
    }

    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "console"]).stdout)
            .into_owned()
    }

    async fn wait_for(&self, needle: &str) -> String {
        tokio::time::timeout(WAIT, async {
            loop {
                let screen = self.capture();
                if screen.contains(needle) {
                    return screen;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{needle:?} never showed; screen:\n{}", self.capture()))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The example binary, built by `cargo test`; built here when only this test target was built.
fn console_demo() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("examples/console_demo");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args([
                "build",
                "-p",
                "bottle-supervise",
                "--example",
                "console_demo",
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "building the console_demo example failed");
    }
    assert!(path.exists(), "{} missing", path.display());
    path
}

fn write_bottle(home: &Path, slug: &str, control_url: &str, name: &str, label: &str) {
    let dir = home.join("bottles").join(slug);
    write_supervise_file(&dir, control_url, &Secret::new(CONTROL_TOKEN)).unwrap();
    std::fs::write(
        dir.join("metadata.json"),
        json!({"name": name, "label": label, "color": "cyan"}).to_string(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_tmux_approves_a_request_with_a_key() {
    let h = Harness::start(3600).await;
    let home = tempfile::tempdir().unwrap();
    write_bottle(
        home.path(),
        &h.slug,
        &h.control_url(),
        "implementer",
        "Fixer",
    );
    // A second bottle whose sidecar is gone: listed as an error, never blocks the first.
    write_bottle(
        home.path(),
        "gone-000000",
        "http://127.0.0.1:9",
        "reviewer",
        "Old",
    );

    let client = h.client().await;
    let agent = tokio::spawn({
        let client = client.clone();
        async move {
            call(
                &client,
                "request_approval",
                json!({"action": "delete the build cache", "details": "rm -rf target/"}),
            )
            .await
        }
    });
    let pending = h.wait_pending(1).await;

    let exe = console_demo();
    let tmux = Tmux::new();
    let home_env = format!("BOT_BOTTLE_HOME={}", home.path().display());
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "console",
        "-x",
        "120",
        "-y",
        "30",
        "env",
        &home_env,
        exe.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "tmux: {out:?}");

    let screen = tmux.wait_for("delete the build cache").await;
    assert!(screen.contains("Fixer (implementer)"), "{screen}");
    assert!(screen.contains(&pending[0].id), "{screen}");
    assert!(screen.contains("1 pending · 2 bottles"), "{screen}");
    // The unreachable bottle is reported on the status line, by name.
    assert!(
        screen.contains("Old (reviewer): control API of bottle gone-000000"),
        "{screen}"
    );

    // Details, back, approve.
    tmux.run(&["send-keys", "-t", "console", "Enter"]);
    tmux.wait_for("details: rm -rf target/").await;
    tmux.run(&["send-keys", "-t", "console", "Escape"]);
    tmux.run(&["send-keys", "-t", "console", "a"]);

    let result = tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status(&result), "approved");
    tmux.wait_for("approve sent to Fixer (implementer)").await;
    tmux.wait_for("0 pending").await;

    // The server recorded the answer.
    let all = bottle_supervise::ops::list_requests(&[h.endpoint()], true).await;
    assert_eq!(
        all.entries[0].request.answer.as_ref().unwrap().decision,
        bottle_supervise::types::Decision::Approve
    );

    // History shows it; q quits and the session ends.
    tmux.run(&["send-keys", "-t", "console", "h"]);
    tmux.wait_for("approved").await;
    tmux.run(&["send-keys", "-t", "console", "q"]);
    tokio::time::timeout(WAIT, async {
        // On a loaded machine a key can land while the terminal is still being set up after
        // a redraw; say it again every two seconds until the console is gone.
        let mut polls = 0u32;
        while tmux.run(&["has-session", "-t", "console"]).status.success() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            polls += 1;
            if polls.is_multiple_of(40) {
                tmux.run(&["send-keys", "-t", "console", "q"]);
            }
        }
    })
    .await
    .expect("the console did not quit on q");
}
