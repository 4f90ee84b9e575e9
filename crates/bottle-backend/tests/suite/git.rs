//! The git gate end to end: the agent clones and pushes through the gate to an sshd upstream
//! with a key only the sidecar holds; push rules hold.

use bottle_config::PushRules;
use bottle_plan::{GitCredentialPlan, GitPlan, InsteadOf, GATE_PORT, SIDECAR_HOST};

use super::harness::{self, Opts, GIT_HOST};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_clones_and_pushes_allowed_branch_but_not_others() {
    let keys = harness::git_keys();
    let upstream = format!("git@{GIT_HOST}:repo.git");
    let gate_url = format!("http://{SIDECAR_HOST}:{GATE_PORT}/app.git");
    let opts = Opts {
        git: vec![GitPlan {
            name: "app".into(),
            upstream: upstream.clone(),
            upstream_host: GIT_HOST.into(),
            upstream_port: 22,
            credential: GitCredentialPlan::Identity {
                key_file: keys.identity.clone(),
                known_hosts: keys.known_hosts.clone(),
            },
            push: PushRules {
                allow: vec!["refs/heads/bot/*".into()],
                allow_force: false,
                allow_delete: false,
            },
            gate_url: gate_url.clone(),
        }],
        insteadof: vec![InsteadOf {
            gate_url,
            upstream_forms: vec![upstream.clone()],
        }],
        ..Opts::default()
    };
    let b = harness::start("git", opts).await;
    harness::start_git_upstream(&b, &keys).await;
    let out = b
        .sh(&format!(
            "set -x; cd ~/work && git clone -q {upstream} app && cd app \
             && git -c user.name=a -c user.email=a@a commit -q --allow-empty -m work \
             && git push -q origin HEAD:refs/heads/bot/feature; echo allowed=$?; \
             git push -q origin HEAD:refs/heads/main; echo main=$?"
        ))
        .await;
    let text = format!("{}{}", out.stdout_text(), out.stderr_text());
    assert!(text.contains("allowed=0"), "{text}");
    assert!(
        !text.contains("main=0"),
        "a push to main got through: {text}"
    );
    // The upstream has the allowed branch and an unchanged main.
    let git = format!("bot-bottle-{}-git", b.slug);
    let refs = b
        .container_exec(
            &git,
            "git",
            &[
                "git",
                "-C",
                "/home/git/repo.git",
                "log",
                "--format=%s",
                "bot/feature",
                "--",
            ],
        )
        .await;
    assert!(
        refs.stdout_text().contains("work"),
        "{}",
        refs.stdout_text()
    );
    let main = b
        .container_exec(
            &git,
            "git",
            &[
                "git",
                "-C",
                "/home/git/repo.git",
                "log",
                "--format=%s",
                "main",
                "--",
            ],
        )
        .await;
    assert_eq!(main.stdout_text().trim(), "init");
    // The agent never held the key.
    let key = std::fs::read_to_string(&keys.identity).unwrap();
    let body = key.lines().nth(1).unwrap().to_string();
    let leak = b
        .sh(&format!(
            "grep -rs -- '{body}' /home /etc /tmp /proc/*/environ; echo rc=$?"
        ))
        .await;
    assert!(
        leak.stdout_text().contains("rc=1") || leak.stdout_text().contains("rc=2"),
        "{}",
        leak.stdout_text()
    );
}
