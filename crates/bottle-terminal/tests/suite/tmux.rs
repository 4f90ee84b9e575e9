//! A private tmux server per test (socket in a temp dir), running one command in a detached
//! 100x30 session.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// Generous bound on polls (10 ms apart) for a screen, file or state to appear.
pub const POLLS: usize = 3000;

pub struct Tmux {
    // Holds the socket; removed with the server.
    _dir: tempfile::TempDir,
    sock: PathBuf,
}

impl Tmux {
    /// Starts `cmd` in a new detached session; with `keep_dead_pane` the pane stays after the
    /// command exits so its exit status and final state can be read.
    pub fn start(cmd: &[String], keep_dead_pane: bool) -> Tmux {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("tmux.sock");
        let t = Tmux { _dir: dir, sock };
        let mut args: Vec<&str> = vec![
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "100",
            "-y",
            "30",
        ];
        if keep_dead_pane {
            // Set before the command starts, so even an instant exit leaves the pane.
            args.extend([
                ";",
                "set",
                "-g",
                "remain-on-exit",
                "on",
                ";",
                "respawn-pane",
                "-k",
                "--",
            ]);
        } else {
            args.push("--");
        }
        args.extend(cmd.iter().map(String::as_str));
        let o = t.tmux(&args);
        assert!(
            o.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        t
    }

    pub fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .args(args)
            .env_remove("TMUX")
            .env_remove("NO_COLOR")
            .output()
            .unwrap()
    }

    /// `display-message -p <format>` for the session's pane.
    pub fn display(&self, format: &str) -> String {
        let o = self.tmux(&["display-message", "-p", format]);
        String::from_utf8_lossy(&o.stdout).trim_end().to_owned()
    }

    /// Polls `display(format)` until `want` returns true; returns the last value.
    pub fn wait_display(&self, format: &str, want: impl Fn(&str) -> bool) -> String {
        for _ in 0..POLLS {
            let v = self.display(format);
            if want(&v) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "{format} never reached the wanted state; last: {:?}",
            self.display(format)
        );
    }

    /// Waits for the pane to die and returns its exit status. tmux 3.3 sometimes misses the
    /// SIGCHLD of the pane's process, leaving it a zombie with no status until another child of
    /// the server exits and its `waitpid` loop reaps both; so each poll runs a `run-shell`.
    pub fn wait_dead_status(&self) -> String {
        self.wait_display("#{pane_dead}", |v| v == "1");
        for _ in 0..POLLS {
            let v = self.display("#{pane_dead_status}");
            if !v.is_empty() {
                return v;
            }
            let o = self.tmux(&["run-shell", "true"]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("tmux never reported the pane's exit status");
    }

    pub fn screen(&self, escapes: bool) -> String {
        let args: &[&str] = if escapes {
            &["capture-pane", "-p", "-e"]
        } else {
            &["capture-pane", "-p"]
        };
        String::from_utf8_lossy(&self.tmux(args).stdout).into_owned()
    }

    pub fn wait_for(&self, text: &str) -> String {
        for _ in 0..POLLS {
            let s = self.screen(false);
            if s.contains(text) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{text:?} never appeared; screen:\n{}", self.screen(false));
    }

    pub fn keys(&self, keys: &[&str]) {
        let o = self.tmux(&[&["send-keys"][..], keys].concat());
        assert!(o.status.success());
    }

    pub fn type_text(&self, text: &str) {
        let o = self.tmux(&["send-keys", "-l", text]);
        assert!(o.status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
