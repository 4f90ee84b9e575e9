//! Lifecycle: up, provisioning, attach, down, crashed starts.

use bottle_backend::{AttachIo, Backend, ContainerState};

use super::harness::{self, Opts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_provisions_and_down_removes_everything_labelled() {
    let file = |path: &str, mode: u32, content: &str, agent_owned: bool| bottle_plan::GuestFile {
        path: path.into(),
        mode,
        content: content.into(),
        agent_owned,
    };
    let opts = Opts {
        files: vec![
            file("/home/agent/.config/probe/settings.json", 0o600, "{}", true),
            // Outside the home, below folders the image has (/tmp 1777, /srv 755) that must
            // keep their modes and owners, and folders it lacks, created like `mkdir -p`.
            file("/tmp/bb-root/tool/conf", 0o644, "root file", false),
            file("/srv/bb-agent/state.json", 0o644, "agent file", true),
            // The provider writes a ~/.gitconfig of its own: the git rules join it.
            file(
                "/home/agent/.gitconfig",
                0o644,
                "[user]\n\tname = Probe Provider",
                true,
            ),
        ],
        insteadof: vec![bottle_plan::InsteadOf {
            gate_url: "http://bottle-sidecar:9418/app.git".into(),
            upstream_forms: vec![
                "git@example.test:acme/app.git".into(),
                "https://example.test/acme/app".into(),
            ],
        }],
        ..Opts::default()
    };
    let b = harness::start("life", opts).await;
    let st = b.backend.status(&b.slug).await.unwrap();
    assert_eq!(st.agent, ContainerState::Running);
    assert_eq!(st.sidecar, ContainerState::Running);
    assert_eq!(st.networks.len(), 2, "{st:?}");

    // Provisioned: non-root user, CA in place and trusted, proxy env set.
    let out = b
        .sh("id -u; cat /etc/bot-bottle/ca.crt | head -1; echo $HTTPS_PROXY; tail -n $(wc -l < /etc/bot-bottle/ca.crt) /etc/ssl/certs/ca-certificates.crt | cmp -s - /etc/bot-bottle/ca.crt && echo trusted; ls -ld /home/agent/work | cut -d' ' -f3; stat -c '%U %a' /home/agent/.config/probe/settings.json")
        .await;
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(out.exit_code, 0, "{text} {}", out.stderr_text());
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "-----BEGIN CERTIFICATE-----");
    assert_eq!(lines[2], "http://bottle-sidecar:3128");
    assert_eq!(lines[3], "trusted", "CA not in the system trust store");
    assert_eq!(lines[4], "agent");
    assert_eq!(lines[5], "agent 600");

    // Outside the home: existing folders untouched, missing ones made as by `mkdir -p`.
    let out = b
        .sh(
            "stat -c '%n %U %a' /tmp /tmp/bb-root /tmp/bb-root/tool /tmp/bb-root/tool/conf \
             /srv /srv/bb-agent /srv/bb-agent/state.json; cat /tmp/bb-root/tool/conf; echo; \
             git config --global user.name; \
             git config --global --get-all url.http://bottle-sidecar:9418/app.git.insteadOf; \
             stat -c '%U %a' ~/.gitconfig",
        )
        .await;
    assert_eq!(out.exit_code, 0, "{}", out.stderr_text());
    assert_eq!(
        out.stdout_text(),
        "/tmp root 1777\n/tmp/bb-root root 755\n/tmp/bb-root/tool root 755\n\
         /tmp/bb-root/tool/conf root 644\n/srv root 755\n/srv/bb-agent agent 755\n\
         /srv/bb-agent/state.json agent 644\nroot file\nProbe Provider\n\
         git@example.test:acme/app.git\nhttps://example.test/acme/app\nagent 644\n"
    );

    // The agent command through attach (pipes): exit code comes back.
    let code = b
        .backend
        .attach(
            &b.slug,
            &b.plan.agent,
            &["sh".into(), "-c".into(), "exit 7".into()],
            AttachIo::Pipes,
        )
        .await
        .unwrap();
    assert_eq!(code, 7);

    let report = b.backend.down(&b.slug).await.unwrap();
    assert!(report.containers.len() >= 2, "{report:?}");
    assert_eq!(report.networks.len(), 2, "{report:?}");
    assert!(harness::labelled(&b.backend, &b.slug).await.is_empty());
}

/// Not a test on its own: the child process of `start_killed_midway_is_cleaned_by_down`.
/// Without `BB_TEST_KILL_TAG` it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_child_helper() {
    let Ok(tag) = std::env::var("BB_TEST_KILL_TAG") else {
        return;
    };
    let b = harness::start(&tag, Opts::default()).await;
    std::mem::forget(b);
    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_killed_midway_is_cleaned_by_down() {
    let tag = format!("kill{}", std::process::id());
    // Build the sidecar here, so the child does not spend its time in cargo.
    let _ = harness::sidecar_binary();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "suite::lifecycle::sigkill_child_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BB_TEST_KILL_TAG", &tag)
        .env("BB_TEST_INDEX", harness::next_index().to_string())
        .env("BOT_BOTTLE_SIDECAR_BIN", harness::sidecar_binary())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let backend = harness::backend().await;
    let prefix = format!("t-{tag}-");
    // Kill as soon as the sidecar container exists: networks and sidecar made, agent maybe not.
    let mut slug = None;
    for _ in 0..2400 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the child exited before it was killed: {status}");
        }
        if let Some(st) = backend
            .list()
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.slug.starts_with(&prefix))
        {
            if st.sidecar != ContainerState::Missing {
                slug = Some(st.slug);
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let slug = slug.expect("the child never created its sidecar");
    assert!(!harness::labelled(&backend, &slug).await.is_empty());
    let report = backend.down(&slug).await.unwrap();
    assert!(!report.networks.is_empty(), "{report:?}");
    assert!(harness::labelled(&backend, &slug).await.is_empty());
    // `down` is idempotent.
    assert_eq!(backend.down(&slug).await.unwrap(), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_then_resume_keeps_the_provisioned_guest() {
    // The guard tears down even if an assertion fails.
    let b = harness::unstarted("resume", Opts::default(), harness::backend().await);
    let (backend, slug) = (&b.backend, &b.slug);
    let audit = b.home.path().join("audit");
    backend.up(b.request()).await.unwrap();
    b.sh("echo kept > ~/work/marker").await;
    backend.stop(slug).await.unwrap();
    let st = backend.status(slug).await.unwrap();
    assert_eq!(st.summary(), "stopped", "{st:?}");
    let access = backend.resume(b.request()).await.unwrap();
    assert!(
        access.control_url.starts_with("http://10.214."),
        "{access:?}"
    );
    let st = backend.status(slug).await.unwrap();
    assert_eq!(st.summary(), "running", "{st:?}");
    let out = b.sh("cat ~/work/marker; curl -s -o /dev/null -w '%{http_code}' --max-time 20 http://unrouted.example.test/").await;
    let text = out.stdout_text();
    assert!(text.starts_with("kept\n"), "{text}");
    // The proxy answers again (a refusal from the resumed sidecar, not a connection error).
    assert!(
        text.ends_with("403") || text.ends_with("502") || text.ends_with("400"),
        "{text}"
    );
    // The sidecar's audit folder on the host got its log lines.
    assert!(audit.join("sidecar.jsonl").is_file());
}

/// Where a bridge address is not routed to the host (Docker Desktop's VM), the host reaches the
/// sidecar's control API and health through ports published on its loopback: bound to
/// 127.0.0.1 only, read back after every start (a resumed sidecar gets new ones), and serving
/// the operator there. Forced on here; off Linux it is the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_ports_published_on_loopback_serve_the_control_api() {
    let backend = harness::backend().await.with_published_operator_ports(true);
    let b = harness::unstarted("published", Opts::default(), backend);
    let b = &b;
    let check = |access: bottle_backend::HostAccess| async move {
        let addr: std::net::SocketAddr = access
            .control_url
            .strip_prefix("http://")
            .unwrap()
            .parse()
            .unwrap();
        assert!(addr.ip().is_loopback(), "{access:?}");
        let (status, page) = b.control_at(addr, "GET", "/requests", None).await;
        assert_eq!(status, 200, "{page}");
        // Published on loopback only: the engine's own record says so.
        let inspect = std::process::Command::new("docker")
            .args([
                "inspect",
                "--format",
                "{{json .NetworkSettings.Ports}}",
                &b.plan.resources.sidecar_container,
            ])
            .output()
            .unwrap();
        let ports = String::from_utf8_lossy(&inspect.stdout);
        assert!(
            ports.contains(&format!("\"HostPort\":\"{}\"", addr.port())),
            "{ports}"
        );
        assert!(
            !ports.contains("0.0.0.0") && !ports.contains("\"::\""),
            "{ports}"
        );
    };
    check(b.backend.up(b.request()).await.unwrap()).await;
    b.backend.stop(&b.slug).await.unwrap();
    check(b.backend.resume(b.request()).await.unwrap()).await;
}
