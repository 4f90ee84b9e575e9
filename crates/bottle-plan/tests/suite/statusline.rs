//! The claude provider's status-line script, rendered for a bottle and run with `sh` on sample
//! status JSON (contracts §4.3): it prints `label (name)` in the bottle's colour and the model,
//! honours NO_COLOR, and prints a hostile label literally (no shell evaluation).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use bottle_plan::Overrides;

use super::provider_files::{files, Case};

/// A status document shaped like the one Claude Code pipes in (pretty-printed, as it may be).
const STATUS: &str = r#"{
  "hook_event_name": "Status",
  "session_id": "abc123",
  "transcript_path": "/home/node/.claude/projects/x/abc123.jsonl",
  "cwd": "/home/node/work",
  "model": {"id": "claude-opus-4-1", "display_name": "Opus"},
  "workspace": {"current_dir": "/home/node/work", "project_dir": "/home/node/work"},
  "version": "2.1.331",
  "output_style": {"name": "default"},
  "cost": {"total_cost_usd": 0.01, "total_duration_ms": 45000, "total_api_duration_ms": 2300,
           "total_lines_added": 156, "total_lines_removed": 23},
  "context_window": {"total_input_tokens": 15234, "total_output_tokens": 4521,
                     "context_window_size": 200000, "used_percentage": 8},
  "exceeds_200k_tokens": false
}"#;

fn script_for(case: &Case, overrides: Overrides) -> String {
    let plan = case.plan(overrides);
    files(&plan)
        .get("/home/node/.claude/statusline.sh")
        .expect("statusline.sh")
        .content
        .clone()
}

/// Runs the script with `sh` in a clean environment (plus `extra_env`), `stdin` piped in.
fn run(script: &str, stdin: &str, extra_env: &[(&str, &str)], cwd: &Path) -> String {
    let path = cwd.join("statusline.sh");
    std::fs::write(&path, script).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg(&path)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "statusline.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn labelled() -> Case {
    Case::new(
        "claude-implementer",
        "label: bob\ncolor: magenta\n",
        "  provider: claude\n",
    )
}

#[test]
fn label_in_colour_and_model() {
    let case = labelled();
    let out = run(
        &script_for(&case, Overrides::default()),
        STATUS,
        &[],
        case.dir.path(),
    );
    // magenta = SGR 35, reset to the default foreground with 39 (as `bot-bottle list` does).
    assert_eq!(out, "\x1b[35mbob (claude-implementer)\x1b[39m · Opus\n");
}

#[test]
fn bright_colour_uses_the_bright_sgr() {
    let case = labelled();
    let script = script_for(
        &case,
        Overrides {
            color: Some("bright-red".into()),
            ..Overrides::default()
        },
    );
    let out = run(&script, STATUS, &[], case.dir.path());
    assert_eq!(out, "\x1b[91mbob (claude-implementer)\x1b[39m · Opus\n");
}

#[test]
fn no_color_drops_every_escape() {
    let case = labelled();
    let out = run(
        &script_for(&case, Overrides::default()),
        STATUS,
        &[("NO_COLOR", "1")],
        case.dir.path(),
    );
    assert_eq!(out, "bob (claude-implementer) · Opus\n");
    assert!(!out.contains('\x1b'));
}

#[test]
fn without_label_shows_just_the_name() {
    let case = Case::new("claude-plain", "", "  provider: claude\n");
    let out = run(
        &script_for(&case, Overrides::default()),
        STATUS,
        &[],
        case.dir.path(),
    );
    assert_eq!(out, "claude-plain · Opus\n");
}

#[test]
fn model_id_when_there_is_no_display_name() {
    let case = labelled();
    let status = r#"{"session_id":"s","model":{"id":"claude-sonnet-4-5"},"cwd":"/w"}"#;
    let out = run(
        &script_for(&case, Overrides::default()),
        status,
        &[("NO_COLOR", "1")],
        case.dir.path(),
    );
    assert_eq!(out, "bob (claude-implementer) · claude-sonnet-4-5\n");
}

#[test]
fn empty_or_garbage_input_still_shows_the_identity() {
    let case = labelled();
    let script = script_for(&case, Overrides::default());
    for input in ["", "not json at all", "{\"model\": 42}"] {
        let out = run(&script, input, &[("NO_COLOR", "1")], case.dir.path());
        assert_eq!(out, "bob (claude-implementer)\n", "input {input:?}");
    }
}

#[test]
fn hostile_label_is_printed_literally() {
    let case = labelled();
    let marker = case.dir.path().join("pwned");
    let label = format!(
        "a'b\"c $(touch {m}) `touch {m}` ${{HOME}} \\n %s",
        m = marker.display()
    );
    let script = script_for(
        &case,
        Overrides {
            label: Some(label.clone()),
            ..Overrides::default()
        },
    );
    let out = run(
        &script,
        STATUS,
        &[("HOME", "/should/not/expand")],
        case.dir.path(),
    );
    assert_eq!(
        out,
        format!("\x1b[35m{label} (claude-implementer)\x1b[39m · Opus\n")
    );
    assert!(!marker.exists(), "the label was evaluated by the shell");
}

#[test]
fn hostile_model_name_is_not_evaluated() {
    let case = labelled();
    let marker = case.dir.path().join("pwned-model");
    let status = format!(
        r#"{{"model":{{"id":"x","display_name":"$(touch {m}) %s `touch {m}`"}}}}"#,
        m = marker.display()
    );
    let out = run(
        &script_for(&case, Overrides::default()),
        &status,
        &[("NO_COLOR", "1")],
        case.dir.path(),
    );
    assert_eq!(
        out,
        format!(
            "bob (claude-implementer) · $(touch {m}) %s `touch {m}`\n",
            m = marker.display()
        )
    );
    assert!(!marker.exists());
}
