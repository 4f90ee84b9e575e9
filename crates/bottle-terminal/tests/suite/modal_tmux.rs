//! The start modal driven in a real terminal: tmux runs the demo binary in a detached
//! 100x30 session, `send-keys` types, `capture-pane` reads the screen, and the result JSON
//! the demo writes is asserted.

use std::path::PathBuf;
use std::time::Duration;

use super::tmux::{Tmux, POLLS};
use super::DEMO;

/// A modal run: the tmux session and where the demo writes its result.
struct Modal {
    t: Tmux,
    _dir: tempfile::TempDir,
    out: PathBuf,
}

impl std::ops::Deref for Modal {
    type Target = Tmux;
    fn deref(&self) -> &Tmux {
        &self.t
    }
}

impl Modal {
    /// Starts `bottle-terminal-demo modal <out> <args…>`.
    fn start(args: &[&str]) -> Modal {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("result.json");
        let mut cmd = vec![DEMO.to_owned(), "modal".into(), out.display().to_string()];
        cmd.extend(args.iter().map(|a| (*a).to_owned()));
        Modal {
            t: Tmux::start(&cmd, false),
            _dir: dir,
            out,
        }
    }

    fn result(&self) -> serde_json::Value {
        for _ in 0..POLLS {
            if let Ok(bytes) = std::fs::read(&self.out) {
                return serde_json::from_slice(&bytes).unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no result file at {}", self.out.display());
    }
}

fn selected_line(screen: &str) -> Option<&str> {
    screen.lines().map(str::trim).find(|l| l.starts_with("> "))
}

#[test]
fn typing_replaces_the_suggestion_then_down_enter_picks_red() {
    let t = Modal::start(&["alice"]);
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
    let t = Modal::start(&["alice", "magenta"]);
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
    let t = Modal::start(&["alice"]);
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
    let t = Modal::start(&["alice"]);
    t.wait_for("Label: alice");
    t.keys(&["Escape"]);
    assert_eq!(
        t.result(),
        serde_json::json!({"cancelled": true, "label": null, "color": null})
    );
}

#[test]
fn backspace_first_clears_then_typing_edits() {
    let t = Modal::start(&["alice"]);
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
