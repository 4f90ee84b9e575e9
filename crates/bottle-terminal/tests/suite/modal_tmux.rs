//! The start modal driven in a real terminal: tmux runs the demo binary in a detached
//! 100x30 session, `send-keys` types, `capture-pane` reads the screen, and the result JSON
//! the demo writes is asserted.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use super::DEMO;

/// Generous bound on polls (10 ms apart) for the screen or the result file to appear.
const POLLS: usize = 3000;

struct Tmux {
    dir: tempfile::TempDir,
    sock: PathBuf,
    out: PathBuf,
}

impl Tmux {
    /// Starts `bottle-terminal-demo modal <out> <args…>` in its own tmux server.
    fn start(args: &[&str]) -> Tmux {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("tmux.sock");
        let out = dir.path().join("result.json");
        let t = Tmux { dir, sock, out };
        let mut cmd = vec![DEMO.to_owned(), "modal".into(), t.out.display().to_string()];
        cmd.extend(args.iter().map(|a| (*a).to_owned()));
        let o = t.tmux(
            &[
                &[
                    "-f",
                    "/dev/null",
                    "new-session",
                    "-d",
                    "-x",
                    "100",
                    "-y",
                    "30",
                    "--",
                ][..],
                &cmd.iter().map(String::as_str).collect::<Vec<_>>()[..],
            ]
            .concat(),
        );
        assert!(
            o.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .args(args)
            .env_remove("TMUX")
            .env_remove("NO_COLOR")
            .output()
            .unwrap()
    }

    fn screen(&self, escapes: bool) -> String {
        let args: &[&str] = if escapes {
            &["capture-pane", "-p", "-e"]
        } else {
            &["capture-pane", "-p"]
        };
        String::from_utf8_lossy(&self.tmux(args).stdout).into_owned()
    }

    fn wait_for(&self, text: &str) -> String {
        for _ in 0..POLLS {
            let s = self.screen(false);
            if s.contains(text) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{text:?} never appeared; screen:\n{}", self.screen(false));
    }

    fn keys(&self, keys: &[&str]) {
        let o = self.tmux(&[&["send-keys"][..], keys].concat());
        assert!(o.status.success());
    }

    fn type_text(&self, text: &str) {
        let o = self.tmux(&["send-keys", "-l", text]);
        assert!(o.status.success());
    }

    fn result(&self) -> serde_json::Value {
        for _ in 0..POLLS {
            if let Ok(bytes) = std::fs::read(&self.out) {
                return serde_json::from_slice(&bytes).unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no result file in {}", self.dir.path().display());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn selected_line(screen: &str) -> Option<&str> {
    screen.lines().map(str::trim).find(|l| l.starts_with("> "))
}

#[test]
fn typing_replaces_the_suggestion_then_down_enter_picks_red() {
    let t = Tmux::start(&["alice"]);
    t.wait_for("Label: alice");
    t.type_text("bob");
    let s = t.wait_for("Label: bob");
    assert!(
        !s.contains("alice"),
        "first keystroke must replace the pre-fill:\n{s}"
    );
    t.keys(&["Enter"]);
    let s = t.wait_for("Colour for bob");
    assert_eq!(selected_line(&s), Some("> black"));
    // Each name is drawn in its own colour.
    let coloured = t.screen(true);
    assert!(
        coloured.contains("\x1b[31mred"),
        "red not painted red:\n{coloured:?}"
    );
    t.keys(&["Down"]);
    let mut s = t.screen(false);
    for _ in 0..POLLS {
        if selected_line(&s) == Some("> red") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        s = t.screen(false);
    }
    assert_eq!(selected_line(&s), Some("> red"));
    t.keys(&["Enter"]);
    assert_eq!(
        t.result(),
        serde_json::json!({"cancelled": false, "label": "bob", "color": "red"})
    );
}

#[test]
fn enter_first_accepts_the_default_and_preset_colour() {
    let t = Tmux::start(&["alice", "magenta"]);
    t.wait_for("Label: alice");
    t.keys(&["Enter"]);
    let s = t.wait_for("Colour for alice");
    assert_eq!(selected_line(&s), Some("> magenta"));
    t.keys(&["Enter"]);
    assert_eq!(
        t.result(),
        serde_json::json!({"cancelled": false, "label": "alice", "color": "magenta"})
    );
}

#[test]
fn s_skips_the_colour() {
    let t = Tmux::start(&["alice"]);
    t.wait_for("Label: alice");
    t.type_text("carol");
    t.wait_for("Label: carol");
    t.keys(&["Enter"]);
    t.wait_for("Colour for carol");
    t.type_text("s");
    assert_eq!(
        t.result(),
        serde_json::json!({"cancelled": false, "label": "carol", "color": null})
    );
}

#[test]
fn esc_in_the_label_step_cancels() {
    let t = Tmux::start(&["alice"]);
    t.wait_for("Label: alice");
    t.keys(&["Escape"]);
    assert_eq!(
        t.result(),
        serde_json::json!({"cancelled": true, "label": null, "color": null})
    );
}

#[test]
fn backspace_first_clears_then_typing_edits() {
    let t = Tmux::start(&["alice"]);
    t.wait_for("Label: alice");
    t.keys(&["BSpace"]);
    t.wait_for("Enter accept · Esc cancel · Ctrl-U clear");
    t.type_text("dave");
    t.wait_for("Label: dave");
    t.keys(&["Left", "Left"]);
    t.type_text("X");
    t.wait_for("Label: daXve");
    t.keys(&["Enter"]);
    t.wait_for("Colour for daXve");
    t.keys(&["Escape"]);
    assert_eq!(
        t.result(),
        serde_json::json!({"cancelled": false, "label": "daXve", "color": null})
    );
}
