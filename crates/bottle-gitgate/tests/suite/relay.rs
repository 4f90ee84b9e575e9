//! Fetch and push through the gate to a real sshd upstream, with the real git client.

use bottle_config::PushRules;

use super::harness::*;

fn bot_rules() -> PushRules {
    PushRules {
        allow: vec!["refs/heads/bot/*".into()],
        ..PushRules::default()
    }
}

/// Clones `name` through the gate into `<tmp>/c`; returns the tempdir and clone path.
async fn clone(gate: &Gate, name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = agent_git(tmp.path(), &["clone", "-q", &gate.url(name), "c"], &[]).await;
    assert!(out.status.success(), "clone failed: {}", stderr(&out));
    let c = tmp.path().join("c");
    (tmp, c)
}

async fn commit(dir: &std::path::Path, file: &str, content: &str) -> String {
    std::fs::write(dir.join(file), content).unwrap();
    assert!(agent_git(dir, &["add", "."], &[]).await.status.success());
    let out = agent_git(dir, &["commit", "-q", "-m", file], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    rev(dir, "HEAD").unwrap()
}

#[tokio::test]
async fn clone_and_fetch_follow_the_upstream_over_protocol_v2() {
    let sshd = Sshd::start();
    let bare = sshd.new_repo("app");
    let gate = start_gate(vec![entry(&sshd, "app", PushRules::default())]).await;

    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let out = agent_git(
        tmp.path(),
        &[
            "-c",
            "protocol.version=2",
            "clone",
            "-q",
            &gate.url("app"),
            "c",
        ],
        &[("GIT_TRACE_PACKET", trace.to_str().unwrap())],
    )
    .await;
    assert!(out.status.success(), "clone failed: {}", stderr(&out));
    let c = tmp.path().join("c");
    assert_eq!(
        std::fs::read_to_string(c.join("README.md")).unwrap(),
        "hello\n"
    );
    assert_eq!(rev(&c, "HEAD"), rev(&bare, "refs/heads/main"));
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(
        trace.contains("git< version 2"),
        "protocol v2 not used:\n{trace}"
    );

    // The upstream moves; a fetch through the gate sees it.
    let moved = sshd.commit_upstream("app", "NEW.md", "news\n");
    let out = agent_git(&c, &["fetch", "-q", "origin"], &[]).await;
    assert!(out.status.success(), "fetch failed: {}", stderr(&out));
    assert_eq!(
        rev(&c, "refs/remotes/origin/main").as_deref(),
        Some(moved.as_str())
    );

    let lines = gate.audit_lines();
    let fetches: Vec<_> = lines.iter().filter(|l| l["op"] == "fetch").collect();
    assert!(fetches.len() >= 2, "{lines:?}");
    assert!(fetches
        .iter()
        .all(|l| l["protocol"] == 2 && l["upstream"] == "ok" && l["repo"] == "app"));
    assert!(
        fetches.iter().any(|l| l["refs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["ref"] == "refs/heads/main" && r["new"] == moved.as_str())),
        "{lines:?}"
    );
    assert_eq!(fetches[0]["bottle"], "test-bottle");
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn push_to_allowed_branch_arrives_upstream() {
    let sshd = Sshd::start();
    let bare = sshd.new_repo("app");
    let gate = start_gate(vec![entry(&sshd, "app", bot_rules())]).await;
    let (_tmp, c) = clone(&gate, "app").await;
    let id = commit(&c, "a.txt", "agent work\n").await;
    let out = agent_git(&c, &["push", "origin", "HEAD:refs/heads/bot/feature"], &[]).await;
    assert!(out.status.success(), "push failed: {}", stderr(&out));
    assert_eq!(
        rev(&bare, "refs/heads/bot/feature").as_deref(),
        Some(id.as_str())
    );
    let push = gate
        .audit_lines()
        .into_iter()
        .find(|l| l["op"] == "push")
        .unwrap();
    assert_eq!(push["decision"], "allow");
    assert_eq!(push["rule"], "allow refs/heads/bot/*");
    assert_eq!(push["upstream"], "ok");
    assert_eq!(push["refs"][0]["ref"], "refs/heads/bot/feature");
    assert_eq!(push["refs"][0]["new"], id.as_str());
    // A second push fast-forwards the same branch.
    let id2 = commit(&c, "b.txt", "more\n").await;
    let out = agent_git(&c, &["push", "origin", "HEAD:refs/heads/bot/feature"], &[]).await;
    assert!(out.status.success(), "push failed: {}", stderr(&out));
    assert_eq!(
        rev(&bare, "refs/heads/bot/feature").as_deref(),
        Some(id2.as_str())
    );
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn push_to_disallowed_ref_is_refused_and_nothing_reaches_upstream() {
    let sshd = Sshd::start();
    let bare = sshd.new_repo("app");
    let before = rev(&bare, "refs/heads/main");
    let gate = start_gate(vec![entry(&sshd, "app", bot_rules())]).await;
    let (_tmp, c) = clone(&gate, "app").await;
    commit(&c, "a.txt", "x\n").await;
    let out = agent_git(&c, &["push", "origin", "HEAD:refs/heads/main"], &[]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("refs/heads/main matches no push rule `allow` pattern (refs/heads/bot/*)"),
        "{err}"
    );
    assert!(err.contains("[remote rejected]"), "{err}");
    assert_eq!(rev(&bare, "refs/heads/main"), before);
    let push = gate
        .audit_lines()
        .into_iter()
        .find(|l| l["op"] == "push")
        .unwrap();
    assert_eq!(
        (
            push["decision"].as_str(),
            push["rule"].as_str(),
            push["upstream"].as_str()
        ),
        (Some("deny"), Some("allow"), Some("skipped"))
    );

    // One refused ref refuses the whole push.
    let out = agent_git(
        &c,
        &[
            "push",
            "origin",
            "HEAD:refs/heads/bot/ok",
            "HEAD:refs/heads/other",
        ],
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert_eq!(rev(&bare, "refs/heads/bot/ok"), None);
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn read_only_repo_refuses_every_push() {
    let sshd = Sshd::start();
    let bare = sshd.new_repo("app");
    let gate = start_gate(vec![entry(&sshd, "app", PushRules::default())]).await;
    let (_tmp, c) = clone(&gate, "app").await;
    commit(&c, "a.txt", "x\n").await;
    let out = agent_git(&c, &["push", "origin", "HEAD:refs/heads/bot/x"], &[]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("read-only"), "{}", stderr(&out));
    assert_eq!(rev(&bare, "refs/heads/bot/x"), None);
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn force_push_and_delete_are_refused_unless_allowed() {
    let sshd = Sshd::start();
    let bare = sshd.new_repo("app");
    let strict = start_gate(vec![entry(&sshd, "app", bot_rules())]).await;
    let (_tmp, c) = clone(&strict, "app").await;
    let first = commit(&c, "a.txt", "1\n").await;
    assert!(
        agent_git(&c, &["push", "-q", "origin", "HEAD:refs/heads/bot/x"], &[])
            .await
            .status
            .success()
    );
    assert_eq!(
        rev(&bare, "refs/heads/bot/x").as_deref(),
        Some(first.as_str())
    );

    // Rewrite history and force-push.
    assert!(agent_git(&c, &["reset", "-q", "--hard", "HEAD~1"], &[])
        .await
        .status
        .success());
    let rewritten = commit(&c, "b.txt", "2\n").await;
    let out = agent_git(
        &c,
        &["push", "--force", "origin", "HEAD:refs/heads/bot/x"],
        &[],
    )
    .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("non-fast-forward") && err.contains("allow_force"),
        "{err}"
    );
    assert_eq!(
        rev(&bare, "refs/heads/bot/x").as_deref(),
        Some(first.as_str())
    );
    let forced = strict
        .audit_lines()
        .into_iter()
        .rfind(|l| l["op"] == "push")
        .unwrap();
    assert_eq!(
        (forced["decision"].as_str(), forced["rule"].as_str()),
        (Some("deny"), Some("allow_force"))
    );

    // Delete.
    let out = agent_git(&c, &["push", "origin", "--delete", "refs/heads/bot/x"], &[]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("allow_delete"), "{}", stderr(&out));
    assert_eq!(
        rev(&bare, "refs/heads/bot/x").as_deref(),
        Some(first.as_str())
    );
    strict.handle.shutdown().await;

    // The same operations with a permissive entry reach the upstream.
    let loose = start_gate(vec![entry(
        &sshd,
        "app",
        PushRules {
            allow: vec!["refs/heads/bot/**".into()],
            allow_force: true,
            allow_delete: true,
        },
    )])
    .await;
    assert!(
        agent_git(&c, &["remote", "set-url", "origin", &loose.url("app")], &[])
            .await
            .status
            .success()
    );
    assert!(agent_git(&c, &["fetch", "-q", "origin"], &[])
        .await
        .status
        .success());
    let out = agent_git(
        &c,
        &["push", "--force", "origin", "HEAD:refs/heads/bot/x"],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        rev(&bare, "refs/heads/bot/x").as_deref(),
        Some(rewritten.as_str())
    );
    let out = agent_git(&c, &["push", "origin", "--delete", "refs/heads/bot/x"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rev(&bare, "refs/heads/bot/x"), None);
    loose.handle.shutdown().await;
}

#[tokio::test]
async fn upstream_rejection_reaches_the_agent() {
    use std::os::unix::fs::PermissionsExt;
    let sshd = Sshd::start();
    let bare = sshd.new_repo("app");
    let hook = bare.join("hooks").join("pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'UPSTREAM POLICY: pushes are frozen today' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let gate = start_gate(vec![entry(&sshd, "app", bot_rules())]).await;
    let (_tmp, c) = clone(&gate, "app").await;
    commit(&c, "a.txt", "x\n").await;
    let out = agent_git(&c, &["push", "origin", "HEAD:refs/heads/bot/x"], &[]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("UPSTREAM POLICY: pushes are frozen today"),
        "{err}"
    );
    assert!(err.contains("the upstream rejected the push"), "{err}");
    assert_eq!(rev(&bare, "refs/heads/bot/x"), None);
    // The gate's mirror did not take the ref either: a fresh listing does not show it.
    let out = agent_git(&c, &["ls-remote", "origin"], &[]).await;
    assert!(!String::from_utf8_lossy(&out.stdout).contains("bot/x"));
    let push = gate
        .audit_lines()
        .into_iter()
        .rfind(|l| l["op"] == "push")
        .unwrap();
    assert_eq!(push["upstream"], "rejected");
    assert!(
        push["message"].as_str().unwrap().contains("frozen"),
        "{push}"
    );
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn unknown_host_key_is_refused() {
    let sshd = Sshd::start();
    sshd.new_repo("app");
    let other = tempfile::tempdir().unwrap();
    let (_, other_public) = keygen(other.path(), "impostor");
    let mut e = entry(&sshd, "app", PushRules::default());
    e.credential = bottle_config::UpstreamCredential::Ssh {
        private_key: bottle_config::Secret::new(sshd.client_key.clone()),
        known_hosts: format!("[127.0.0.1]:{} {other_public}\n", sshd.port),
    };
    let gate = start_gate(vec![e]).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = agent_git(tmp.path(), &["clone", "-q", &gate.url("app"), "c"], &[]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("Host key verification failed"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    let fetch = gate
        .audit_lines()
        .into_iter()
        .find(|l| l["op"] == "fetch")
        .unwrap();
    assert_eq!(fetch["upstream"], "error");
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn wrong_identity_is_refused() {
    let sshd = Sshd::start();
    sshd.new_repo("app");
    let other = tempfile::tempdir().unwrap();
    let (stranger, _) = keygen(other.path(), "stranger");
    let mut e = entry(&sshd, "app", PushRules::default());
    e.credential = bottle_config::UpstreamCredential::Ssh {
        private_key: bottle_config::Secret::new(std::fs::read_to_string(stranger).unwrap()),
        known_hosts: sshd.known_hosts(),
    };
    let gate = start_gate(vec![e]).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = agent_git(tmp.path(), &["clone", "-q", &gate.url("app"), "c"], &[]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn insteadof_rules_send_upstream_urls_to_the_gate() {
    let sshd = Sshd::start();
    let bare = sshd.new_repo("app");
    let gate = start_gate(vec![entry(&sshd, "app", PushRules::default())]).await;
    // The agent knows the repo by its public name; the rules map every spelling to the gate.
    let public = bottle_config::GateRepo {
        upstream: "git@forge.example.invalid:acme/app.git".into(),
        ..entry(&sshd, "app", PushRules::default())
    };
    let rules = bottle_gitgate::insteadof_rules(&gate.base, &[public]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("gitconfig");
    std::fs::write(&cfg, bottle_gitgate::to_gitconfig(&rules)).unwrap();
    for (i, url) in [
        "git@forge.example.invalid:acme/app.git",
        "ssh://git@forge.example.invalid/acme/app",
        "https://forge.example.invalid/acme/app.git",
    ]
    .iter()
    .enumerate()
    {
        let dest = format!("c{i}");
        let out = agent_git(
            tmp.path(),
            &["clone", "-q", url, &dest],
            &[("GIT_CONFIG_GLOBAL", cfg.to_str().unwrap())],
        )
        .await;
        assert!(
            out.status.success(),
            "clone of {url} failed: {}",
            stderr(&out)
        );
        assert_eq!(
            rev(&tmp.path().join(&dest), "HEAD"),
            rev(&bare, "refs/heads/main")
        );
    }
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn protocol_v0_and_v1_clients_work_too() {
    let sshd = Sshd::start();
    let bare = sshd.new_repo("app");
    let gate = start_gate(vec![entry(&sshd, "app", bot_rules())]).await;
    let tmp = tempfile::tempdir().unwrap();
    for v in ["0", "1"] {
        let dest = format!("c{v}");
        let out = agent_git(
            tmp.path(),
            &[
                "-c",
                &format!("protocol.version={v}"),
                "clone",
                "-q",
                &gate.url("app"),
                &dest,
            ],
            &[],
        )
        .await;
        assert!(out.status.success(), "v{v} clone failed: {}", stderr(&out));
        assert_eq!(
            rev(&tmp.path().join(&dest), "HEAD"),
            rev(&bare, "refs/heads/main")
        );
    }
    let lines = gate.audit_lines();
    assert_eq!(lines[0]["protocol"], 0);
    assert_eq!(lines[1]["protocol"], 1);
    gate.handle.shutdown().await;
}
