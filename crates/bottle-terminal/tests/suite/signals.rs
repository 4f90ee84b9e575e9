//! The identity guard's reset reaches the terminal on every exit path of a real process:
//! SIGTERM, SIGINT, SIGHUP (exit 128+signo), `?` error (exit 1) and panic (exit 101).

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::DEMO;

const SET: &[u8] = b"\x1b[22;0t\x1b]0;bob (demo-agent)\x07\x1b]2;bob (demo-agent)\x07\x1b]4;2;rgb:00/cd/00\x07\x1b]11;rgb:0e/27/0e\x07";
const RESET: &[u8] = b"\x1b]104;2\x07\x1b]111\x07\x1b[23;0t";

/// Runs the demo with stdout to a file; optionally signals it once the set bytes are out.
fn run(mode: &str, signal: Option<&str>) -> (Option<i32>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("tty.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(DEMO)
        .args(["guard", "bob", "green", mode])
        .stdout(Stdio::from(out))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if let Some(sig) = signal {
        // Wait (bounded by a generous number of polls) until the guard has written its set
        // bytes, which happens after the handlers are installed.
        let mut seen = false;
        for _ in 0..3000 {
            if std::fs::read(&out_path).unwrap() == SET {
                seen = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(seen, "demo never wrote the set sequence");
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), None, "must exit, not die by the signal");
    (status.code(), std::fs::read(&out_path).unwrap())
}

fn expected() -> Vec<u8> {
    [SET, RESET].concat()
}

#[test]
fn sigterm_resets_and_exits_143() {
    let (code, bytes) = run("sleep", Some("TERM"));
    assert_eq!(code, Some(143));
    assert_eq!(bytes, expected());
}

#[test]
fn sigint_resets_and_exits_130() {
    let (code, bytes) = run("sleep", Some("INT"));
    assert_eq!(code, Some(130));
    assert_eq!(bytes, expected());
}

#[test]
fn sighup_resets_and_exits_129() {
    let (code, bytes) = run("sleep", Some("HUP"));
    assert_eq!(code, Some(129));
    assert_eq!(bytes, expected());
}

#[test]
fn error_return_resets_and_exits_1() {
    let (code, bytes) = run("error", None);
    assert_eq!(code, Some(1));
    assert_eq!(bytes, expected());
}

#[test]
fn panic_resets_once_and_exits_101() {
    let (code, bytes) = run("panic", None);
    assert_eq!(code, Some(101));
    // The panic hook writes the reset; the unwinding drop must not write it a second time.
    assert_eq!(bytes, expected());
}
