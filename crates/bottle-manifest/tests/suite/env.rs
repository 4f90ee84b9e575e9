//! `?prompt` with no terminal: a real child process in a new session (no controlling
//! terminal, via util-linux `setsid`) must get the clear error, never hang or panic.

use std::process::Command;

use bottle_manifest::env::{Prompter, TtyPrompter};
use bottle_manifest::Error;

const CHILD: &str = "BOTTLE_MANIFEST_NO_TTY_CHILD";

#[test]
fn prompt_without_a_terminal_is_a_clear_error() {
    if std::env::var_os(CHILD).is_some() {
        let e = TtyPrompter.ask("DB_PASSWORD").unwrap_err();
        assert!(matches!(e, Error::NoTerminal { .. }), "{e}");
        println!("CHILD-SAW: {e}");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setsid")
        .arg("--wait")
        .arg(&exe)
        .args([
            "--exact",
            "suite::env::prompt_without_a_terminal_is_a_clear_error",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("setsid (util-linux) must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("CHILD-SAW: DB_PASSWORD is `?prompt` but no terminal is attached\n  hint: set it from the host instead"),
        "{stdout}"
    );
}
