//! `bot-bottle start` attached to a real terminal: the shell example bottle run inside a
//! detached tmux session (a real terminal emulator with its own pty), driven with `send-keys`
//! and read back with `capture-pane` and tmux's pane formats. Proves what the piped tests in
//! `bottle.rs` cannot: the agent gets a TTY of the terminal's size, a window resize reaches it,
//! Ctrl-C is a keystroke for the agent (raw mode) rather than a signal that ends the session,
//! the SPEC §7 identity (title + background tint) is shown while attached and undone after,
//! and the agent's exit status becomes the terminal command's exit status with nothing left
//! behind on the engine.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::common::{assert_torn_down, bot};

/// First start may build the agent and sidecar images on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(900);
/// Anything once the session is up: a typed command's output, a resize, the teardown.
const STEP_TIMEOUT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(50);

/// The background tint (OSC 11) of `--color green`: 12 % of xterm green over #101010, as
/// `bottle_terminal::Color::Green.background_tint()` computes it; tmux reports it as `pane_bg`.
const GREEN_TINT: &str = "#0e270e";

/// A private tmux server (socket in a temp dir) with one detached session; killed on drop so a
/// failing test leaves no server — and, through the SIGHUP its pane gets, no bottle — behind.
struct Tmux {
    _dir: tempfile::TempDir,
    sock: PathBuf,
}

impl Tmux {
    /// Runs `script` in a new detached `cols`x`rows` session whose pane stays after the command
    /// exits, so its exit status and final title/colours can be read.
    fn start(script: &Path, cols: u16, rows: u16) -> Tmux {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("tmux.sock");
        let t = Tmux { _dir: dir, sock };
        let (cols, rows) = (cols.to_string(), rows.to_string());
        // remain-on-exit is set before the command starts (the session's first shell is
        // replaced by respawn-pane), so even an instant exit leaves a dead pane to inspect.
        let o = t.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &cols,
            "-y",
            &rows,
            ";",
            "set",
            "-g",
            "status",
            "off",
            ";",
            "set",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "respawn-pane",
            "-k",
            "--",
            script.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "tmux: {}",
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
            .output()
            .unwrap()
    }

    /// `display-message -p <format>` for the session's pane.
    fn display(&self, format: &str) -> String {
        let o = self.tmux(&["display-message", "-p", format]);
        String::from_utf8_lossy(&o.stdout).trim_end().to_owned()
    }

    /// Polls `display(format)` until `want` holds; returns the value.
    fn wait_display(&self, format: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let v = self.display(format);
            if want(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{format} never reached the wanted state; last: {v:?}\nscreen:\n{}",
                self.screen()
            );
            std::thread::sleep(POLL);
        }
    }

    /// The exit status of the pane's dead process. tmux 3.3a marks the pane dead on pty EOF
    /// and records the status when it reaps the process on SIGCHLD — and it sometimes misses
    /// that SIGCHLD, leaving the process a zombie and `#{pane_dead_status}` empty for good
    /// (seen in most runs here). Any other child of the server exiting makes its
    /// `waitpid(WAIT_ANY)` loop reap the zombie too, so each poll runs a trivial `run-shell`.
    fn wait_dead_status(&self) -> String {
        self.wait_display("#{pane_dead}", |v| v == "1");
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let v = self.display("#{pane_dead_status}");
            if !v.is_empty() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "tmux never reported the exit status; screen:\n{}",
                self.screen()
            );
            let o = self.tmux(&["run-shell", "true"]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            std::thread::sleep(POLL);
        }
    }

    /// The pane's visible text plus its scrollback.
    fn screen(&self) -> String {
        let o = self.tmux(&["capture-pane", "-p", "-S", "-"]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Polls the screen until `want` holds; returns it.
    fn wait_screen(&self, what: &str, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if want(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what} never appeared; screen:\n{s}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits for a screen line that is exactly `line` (trailing blanks aside) — a command's
    /// output, never the echo of the command line that was typed to produce it.
    fn wait_line(&self, line: &str) -> String {
        self.wait_screen(line, STEP_TIMEOUT, |s| has_line(s, line))
    }

    /// Types `text` literally, then Enter.
    fn run(&self, text: &str) {
        let o = self.tmux(&["send-keys", "-l", text]);
        assert!(o.status.success());
        self.keys(&["Enter"]);
    }

    fn keys(&self, keys: &[&str]) {
        let o = self.tmux(&[&["send-keys"][..], keys].concat());
        assert!(o.status.success());
    }

    /// `(cols, rows)` of the pane as tmux sizes its pty.
    fn pane_size(&self) -> (String, String) {
        (
            self.display("#{pane_width}"),
            self.display("#{pane_height}"),
        )
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn has_line(screen: &str, line: &str) -> bool {
    screen.lines().any(|l| l.trim_end() == line)
}

/// Single-quotes `s` for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A script that runs `cmd` exactly as built (working dir, the env `bot()` sets, argv): tmux
/// starts pane commands in its server's environment, not ours.
fn wrapper(dir: &Path, cmd: &Command) -> PathBuf {
    let mut s = String::from("#!/bin/sh\nset -e\n");
    if let Some(cwd) = cmd.get_current_dir() {
        s.push_str(&format!("cd {}\n", sh_quote(cwd.to_str().unwrap())));
    }
    for (k, v) in cmd.get_envs() {
        let k = k.to_str().unwrap();
        match v {
            Some(v) => s.push_str(&format!("export {k}={}\n", sh_quote(v.to_str().unwrap()))),
            None => s.push_str(&format!("unset {k}\n")),
        }
    }
    s.push_str("exec");
    for a in std::iter::once(cmd.get_program()).chain(cmd.get_args()) {
        s.push(' ');
        s.push_str(&sh_quote(a.to_str().unwrap()));
    }
    s.push('\n');
    let path = dir.join("start.sh");
    std::fs::write(&path, s).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn tty_session_has_terminal_size_resize_ctrl_c_identity_and_exit_status() {
    let home = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let mut cmd = bot(home.path());
    cmd.args([
        "start",
        "examples/shell/bottle.yaml",
        "--label",
        "tty-e2e",
        "--color",
        "green",
    ]);
    let script = wrapper(scripts.path(), &cmd);
    let t = Tmux::start(&script, 100, 30);

    // 1. The bottle's shell prompt, which names the bottle (provider PS1 `[{{display}}] \w$ `).
    t.wait_screen("the bottle's prompt", START_TIMEOUT, |s| {
        s.contains("[tty-e2e (shell)] ")
    });

    // 5a. Identity while attached: tmux applies OSC 2 to the pane title and OSC 11 to the
    // pane background. The set sequence is written before attaching, so it is already there.
    let title = t.display("#{pane_title}");
    assert!(
        title.contains("tty-e2e"),
        "pane title while running: {title:?}"
    );
    assert_eq!(t.display("#{pane_bg}"), GREEN_TINT);

    // 2. A TTY inside, of the terminal's size. The initial size is sent before any output is
    // pumped, so the prompt seen above means it is in place.
    t.run("[ -t 0 ] && [ -t 1 ] && echo TTY-\"YES\"");
    t.wait_line("TTY-YES");
    let (cols, rows) = t.pane_size();
    assert_eq!((cols.as_str(), rows.as_str()), ("100", "30"));
    t.run("stty size");
    t.wait_line(&format!("{rows} {cols}"));

    // 3. A window resize reaches the agent's TTY. It travels SIGWINCH -> bot-bottle -> engine
    // exec resize, asynchronously, so ask again until the new size shows.
    let o = t.tmux(&["resize-window", "-x", "120", "-y", "40"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (cols, rows) = t.pane_size();
    assert_eq!((cols.as_str(), rows.as_str()), ("120", "40"));
    let resized = format!("{rows} {cols}");
    let deadline = Instant::now() + STEP_TIMEOUT;
    for n in 0.. {
        let mark = format!("size-probe-{n}");
        t.run(&format!("stty size; echo size-probe-$(({n}))"));
        let s = t.wait_line(&mark);
        if has_line(&s, &resized) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resize never reached the bottle; screen:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // 4. Ctrl-C is a keystroke for the agent: the guest's TTY turns it into SIGINT for the
    // foreground job (status 130), while bot-bottle (raw mode: no SIGINT on the host side)
    // and the session live on. The marker is printed by the process that becomes `sleep`, so
    // the keystroke lands while the job is in the foreground.
    t.run("sh -c 'echo SLEEP-\"STARTED\"; exec sleep 100'");
    t.wait_line("SLEEP-STARTED");
    t.keys(&["C-c"]);
    t.run("echo \"interrupted-status=$?\"");
    t.wait_line("interrupted-status=130");
    t.run("echo still-\"here\"");
    t.wait_line("still-here");
    assert_eq!(
        t.display("#{pane_dead}"),
        "0",
        "the session ended on Ctrl-C"
    );

    // 6. The agent's exit status is the command's, and the identity is undone.
    t.run("exit 5");
    let status = t.wait_dead_status();
    assert_eq!(status, "5", "screen:\n{}", t.screen());
    assert_eq!(t.display("#{pane_dead_signal}"), "");

    // 5b. Reset: the background tint dropped and the title popped back to what it was.
    assert_eq!(t.display("#{pane_bg}"), "default");
    let title = t.display("#{pane_title}");
    assert!(
        !title.contains("tty-e2e"),
        "pane title after exit: {title:?}"
    );

    // Torn down: no bottle state, nothing labelled with the bottle's slug on the engine.
    assert_torn_down(home.path());
    let bottles = home.path().join("bottles");
    assert!(
        !bottles.exists()
            || std::fs::read_dir(&bottles)
                .unwrap()
                .flatten()
                .all(|e| e.file_name().to_string_lossy().starts_with('.')),
        "bottle state left in {}",
        bottles.display()
    );
}
