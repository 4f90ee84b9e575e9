//! The identity in a real terminal emulator: tmux applies OSC 2 (pane title) and OSC 11 (pane
//! background) to the pane itself, so `#{pane_title}` / `#{pane_bg}` show exactly what the
//! guard set, and that it was all undone after a signal or an error.

use super::tmux::Tmux;
use super::DEMO;

fn guard_in_tmux(mode: &str) -> Tmux {
    let cmd: Vec<String> = [DEMO, "guard", "bob", "red", mode]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    Tmux::start(&cmd, true)
}

#[test]
fn tmux_pane_is_tinted_and_titled_then_reset_on_sigterm() {
    let t = guard_in_tmux("sleep");
    t.wait_display("#{pane_bg}", |v| v == "#270e0e");
    assert_eq!(t.display("#{pane_title}"), "bob (demo-agent)");

    let pid = t.display("#{pane_pid}");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    // Exits with 128+15 from the handler, not killed by the signal.
    assert_eq!(t.wait_dead_status(), "143");
    assert_eq!(
        t.display("#{pane_dead_signal}"),
        "",
        "killed by the signal itself"
    );
    assert_eq!(t.display("#{pane_bg}"), "default");
    assert_ne!(t.display("#{pane_title}"), "bob (demo-agent)");
}

#[test]
fn tmux_pane_is_reset_after_an_error_exit() {
    let t = guard_in_tmux("error");
    assert_eq!(t.wait_dead_status(), "1");
    assert_eq!(t.display("#{pane_bg}"), "default");
}
