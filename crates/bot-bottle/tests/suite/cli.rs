//! The CLI run as a process: help text snapshots, `plan` never printing a secret, state
//! commands on an empty or populated home, clear errors with exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bot-bottle"));
    c.env("NO_COLOR", "1").env_remove("BOT_BOTTLE_HOME");
    c
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bottle-plan/tests/fixtures")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_of_every_subcommand() {
    let top = bin().arg("--help").output().unwrap();
    assert!(top.status.success());
    insta::assert_snapshot!("help", text(&top).0);
    for sub in [
        "start",
        "plan",
        "list",
        "attach",
        "resume",
        "stop",
        "rm",
        "logs",
        "supervise",
        "requests",
        "approve",
        "deny",
        "answer",
        "doctor",
        "providers",
        "completions",
    ] {
        let o = bin().args([sub, "--help"]).output().unwrap();
        assert!(o.status.success(), "{sub} --help failed");
        insta::assert_snapshot!(format!("help_{sub}"), text(&o).0);
    }
}

const SECRETS: &[(&str, &str)] = &[
    ("CLAUDE_TOKEN", "sk-ant-oat01-CLI-SECRET-1"),
    ("GITHUB_TOKEN", "ghp_CLISECRET2"),
    ("AWS_REGION", "CLI-SECRET-REGION-3"),
];

#[test]
fn plan_prints_no_secret_in_either_form() {
    let home = tempfile::tempdir().unwrap();
    for json in [false, true] {
        let mut c = bin();
        c.arg("plan")
            .arg(fixtures().join("claude-auth/bottle.yaml"))
            .env("BOT_BOTTLE_HOME", home.path());
        c.env("HOME", home.path());
        if json {
            c.arg("--json");
        }
        for (k, v) in SECRETS {
            c.env(k, v);
        }
        // The identity file the fixture names must exist for the loader's file check.
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(
            home.path().join(".ssh/acme_app_deploy"),
            "-----BEGIN OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap();
        let o = c.output().unwrap();
        let (out, err) = text(&o);
        assert!(o.status.success(), "plan failed: {err}");
        assert!(out.contains("api.anthropic.com"), "{out}");
        for (k, v) in SECRETS {
            assert!(
                !out.contains(v) && !err.contains(v),
                "plan (json={json}) leaks {k}"
            );
        }
        if json {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["name"], "claude-implementer");
        }
    }
}

#[test]
fn plan_of_a_malformed_manifest_names_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("bottle.yaml");
    std::fs::write(
        &m,
        "version: 1\nname: x\nagent: {provider: claude}\negres: []\n",
    )
    .unwrap();
    let o = bin().arg("plan").arg(&m).output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains(&format!("{}:4:1: unknown key `egres`", m.display())),
        "{err}"
    );
    assert!(err.contains("did you mean `egress`"), "{err}");
}

#[test]
fn list_rm_logs_on_a_home() {
    let home = tempfile::tempdir().unwrap();
    let o = bin()
        .arg("list")
        .env("BOT_BOTTLE_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(text(&o).0, "no bottles\n");
    let o = bin()
        .args(["list", "--json"])
        .env("BOT_BOTTLE_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(text(&o).0.trim(), "[]");

    // A bottle as a start leaves it, with an audit line.
    let h = bottle_state::Home::at(home.path());
    let started = bottle_state::create_bottle(
        &h,
        &bottle_state::NewBottle {
            name: "demo".into(),
            label: Some("bob".into()),
            color: Some("magenta".into()),
            backend: "docker".into(),
            provider: "claude".into(),
            manifest_path: "/tmp/bottle.yaml".into(),
            keep: false,
        },
        &mut bottle_state::SlugRng::seeded(7),
    )
    .unwrap();
    let slug = started.metadata.slug.clone();
    let paths = h.bottle(&slug).unwrap();
    std::fs::write(
        paths.egress_log(),
        "{\"time\":\"T\",\"decision\":\"deny\",\"host\":\"evil.test\"}\n",
    )
    .unwrap();
    drop(started);

    let o = bin()
        .arg("list")
        .env("BOT_BOTTLE_HOME", home.path())
        .output()
        .unwrap();
    let (out, _) = text(&o);
    assert!(
        out.contains("bob (demo)") && out.contains(&slug) && out.contains("starting"),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "NO_COLOR must suppress escapes: {out:?}"
    );

    let o = bin()
        .args(["logs", "demo", "--egress"])
        .env("BOT_BOTTLE_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(text(&o).0, "egress    T decision=deny host=evil.test\n");
    let o = bin()
        .args(["logs", "bob", "--json"])
        .env("BOT_BOTTLE_HOME", home.path())
        .output()
        .unwrap();
    assert!(text(&o).0.contains("\"evil.test\""));

    let o = bin()
        .args(["logs", "nope"])
        .env("BOT_BOTTLE_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("no bottle named `nope`"));
}

#[test]
fn completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let o = bin().args(["completions", shell]).output().unwrap();
        assert!(o.status.success());
        assert!(text(&o).0.contains("bot-bottle"), "{shell}");
    }
}
