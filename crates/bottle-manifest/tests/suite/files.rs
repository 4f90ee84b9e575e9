//! `load` and `check_files` against a real folder.

use std::fs;

use bottle_manifest::{check_files, load, Error};

const MANIFEST: &str = "version: 1
name: bot
agent:
  provider: claude
  dockerfile: ./agent.Dockerfile
prompt: ./PROMPT.md
skills: [./skills/review]
git:
  - name: app
    upstream: git@github.com:acme/app.git
    identity: ./keys/deploy
    known_hosts: ./known_hosts
";

#[test]
fn load_reports_every_missing_file_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bottle.yaml");
    fs::write(&path, MANIFEST).unwrap();
    let err = load(&path).unwrap_err();
    let text = err.to_string();
    let shown = path.display().to_string();
    for (what, at) in [
        ("Dockerfile", ":5:15: "),
        ("prompt file", ":6:9: "),
        ("skill folder", ":7:10: "),
        ("identity key", ":11:15: "),
        ("known_hosts file", ":12:18: "),
    ] {
        let want = format!("{shown}{at}{what}");
        assert!(text.contains(&want), "missing `{want}` in:\n{text}");
    }
    assert_eq!(err.diagnostics().len(), 5);
    assert!(matches!(err, Error::Many(_)));
}

#[test]
fn load_succeeds_when_files_exist_and_resolves_paths() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("skills/review")).unwrap();
    fs::create_dir_all(d.join("keys")).unwrap();
    for f in [
        "agent.Dockerfile",
        "PROMPT.md",
        "skills/review/SKILL.md",
        "keys/deploy",
        "known_hosts",
    ] {
        fs::write(d.join(f), "x").unwrap();
    }
    let path = d.join("bottle.yaml");
    fs::write(&path, MANIFEST).unwrap();
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.dir, d);
    assert_eq!(loaded.source, MANIFEST);
    let prompt = loaded.manifest.prompt.clone().unwrap();
    assert!(loaded.resolve_path(&prompt).is_file());
    assert!(check_files(&loaded).is_empty());

    // A skill folder without SKILL.md is refused.
    fs::remove_file(d.join("skills/review/SKILL.md")).unwrap();
    let errs = check_files(&loaded);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].to_string().contains("has no SKILL.md"),
        "{}",
        errs[0]
    );
}

#[test]
fn load_refuses_unreadable_huge_and_non_utf8_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = load(&dir.path().join("nope.yaml")).unwrap_err();
    assert!(matches!(missing, Error::Read { .. }), "{missing}");
    assert!(missing.to_string().contains("cannot read the manifest"));

    let huge = dir.path().join("huge.yaml");
    fs::write(&huge, "# ".repeat(600 * 1024)).unwrap();
    let e = load(&huge).unwrap_err().to_string();
    assert!(
        e.contains(":1:1: the manifest is") && e.contains("the limit is 1048576"),
        "{e}"
    );

    let bad = dir.path().join("bad.yaml");
    fs::write(&bad, b"version: 1\nname: \xff\xfe\n").unwrap();
    let e = load(&bad).unwrap_err().to_string();
    assert!(
        e.contains("bad.yaml:2:7: the manifest is not valid UTF-8"),
        "{e}"
    );
}
