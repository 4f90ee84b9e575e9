//! `bot-bottle start` for real on the Docker engine, driven as a user would: the shell example
//! bottle with commands piped to its agent, then the lifecycle — exit code passed through,
//! teardown leaving nothing labelled, `--keep` + `list` + `rm`, and a start killed with SIGKILL
//! cleaned by `rm`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::common::{assert_torn_down, bot, labelled, session, shell_manifest, slug_from};

#[test]
fn shell_bottle_refuses_unrouted_hosts_passes_exit_code_and_leaves_nothing() {
    let home = tempfile::tempdir().unwrap();
    let child = bot(home.path())
        .args([
            "start",
            "examples/shell/bottle.yaml",
            "--label",
            "e2e",
            "--color",
            "green",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let script = "echo proxy=$HTTPS_PROXY; id -u; \
        curl -sS --max-time 20 https://www.google.com/ 2>&1; echo; \
        curl -sS --max-time 20 http://169.254.169.254/latest/meta-data/ 2>&1; echo; \
        exit 7\n";
    let out = session(child, script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(7),
        "exit code passes through\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("proxy=http://bottle-sidecar:3128"),
        "{stdout}"
    );
    assert!(
        !stdout.lines().any(|l| l.trim() == "0"),
        "the agent must not run as root: {stdout}"
    );
    assert!(
        stdout.contains("CONNECT tunnel failed, response 403"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bot-bottle egress refused GET 169.254.169.254"),
        "{stdout}"
    );

    // Torn down: no state, nothing labelled, audit logs kept under logs/<slug>.
    assert_eq!(slug_from(home.path()), None);
    let log_dir = assert_torn_down(home.path());
    let egress = std::fs::read_to_string(log_dir.join("egress.jsonl")).unwrap();
    assert!(
        egress.contains("\"host\":\"www.google.com\"") && egress.contains("\"decision\":\"deny\""),
        "{egress}"
    );
}

#[test]
fn kept_bottle_is_listed_then_removed_by_rm() {
    let home = tempfile::tempdir().unwrap();
    // The shell example plus an env value from the host: a secret that must reach the agent and
    // nothing on the host side.
    let manifest_dir = tempfile::tempdir().unwrap();
    let manifest = shell_manifest(
        manifest_dir.path(),
        "env:\n  DB_PASSWORD: ${BB_TEST_SECRET}\n",
    );
    let secret = "kept-bottle-secret-5f3a9c";
    let out = bot(home.path())
        .args([
            "start",
            manifest.to_str().unwrap(),
            "--label",
            "keeper",
            "--color",
            "blue",
            "--keep",
        ])
        .env("BB_TEST_SECRET", secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = session(out, "echo \"session sees: $DB_PASSWORD\"; exit 0\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let slug = slug_from(home.path()).expect("kept bottle has state");
    // The agent's session got the value; the engine's stored config of the container did not
    // (values from the host or the terminal go through the exec API only).
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&format!("session sees: {secret}")),
        "{stdout}"
    );
    let inspect = std::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{json .Config.Env}}",
            &format!("bot-bottle-{slug}-agent"),
        ])
        .output()
        .unwrap();
    assert!(inspect.status.success());
    let config_env = String::from_utf8_lossy(&inspect.stdout);
    assert!(config_env.contains("HTTPS_PROXY"), "{config_env}");
    assert!(
        !config_env.contains(secret),
        "the engine stored the secret: {config_env}"
    );
    let metadata = std::fs::read_to_string(
        home.path()
            .join("bottles")
            .join(&slug)
            .join("metadata.json"),
    )
    .unwrap();
    assert!(
        !metadata.contains(secret),
        "metadata.json holds the secret: {metadata}"
    );
    // bot-bottle's own messages (stderr) never carry it; stdout is the agent's, which echoed it
    // on purpose once.
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
    assert_eq!(stdout.matches(secret).count(), 1, "{stdout}");
    let list = bot(home.path()).args(["list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("keeper (shell)") && list.contains("preserved"),
        "{list}"
    );
    assert!(!labelled(&slug).is_empty(), "kept containers exist");

    let rm = bot(home.path()).args(["rm", &slug]).output().unwrap();
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    assert!(
        labelled(&slug).is_empty(),
        "left behind: {:?}",
        labelled(&slug)
    );
    assert_eq!(slug_from(home.path()), None);
}

#[test]
fn start_killed_midway_is_cleaned_by_rm() {
    let home = tempfile::tempdir().unwrap();
    let mut child = bot(home.path())
        .args(["start", "examples/shell/bottle.yaml", "--label", "crash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the start has created engine resources, then kill it without warning.
    let deadline = Instant::now() + Duration::from_secs(300);
    let slug = loop {
        if let Some(s) = slug_from(home.path()) {
            if !labelled(&s).is_empty() {
                break s;
            }
        }
        assert!(Instant::now() < deadline, "start never created resources");
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let rm = bot(home.path()).args(["rm", &slug]).output().unwrap();
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    // A network can still be detaching for a moment after its containers are gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !labelled(&slug).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        labelled(&slug).is_empty(),
        "left behind: {:?}",
        labelled(&slug)
    );
    assert_eq!(slug_from(home.path()), None);
}

#[test]
fn doctor_self_test_probes_a_real_bottle_and_removes_it() {
    let home = tempfile::tempdir().unwrap();
    let out = bot(home.path()).arg("doctor").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    for probe in [
        "the agent runs unprivileged",
        "no container-engine socket",
        "routes stay on the internal network",
        "no name resolution",
        "host, metadata and operator ports unreachable",
        "the proxy refuses an unrouted host",
        "with the sidecar killed, no way out",
        "probe bottle removed",
    ] {
        assert!(
            stdout.contains(&format!("ok    self-test: {probe}")),
            "{probe} did not pass:\n{stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // Nothing left: no bottle state, no labelled resource, no probe folder.
    assert_eq!(slug_from(home.path()), None);
    let slug = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ok    self-test: probe bottle removed: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        labelled(&slug).is_empty(),
        "left behind: {:?}",
        labelled(&slug)
    );
    assert!(
        !std::fs::read_dir(home.path()).unwrap().flatten().any(|e| e
            .file_name()
            .to_string_lossy()
            .starts_with("doctor-selftest")),
        "the probe folder was left in the home"
    );
}
