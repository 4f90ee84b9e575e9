//! Lifecycle: up, provisioning, attach, down, crashed starts.

use bottle_backend::{AttachIo, Backend, ContainerState};

use super::harness::{self, Opts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_provisions_and_down_removes_everything_labelled() {
    let opts = Opts {
        files: vec![bottle_plan::GuestFile {
            path: "/home/agent/.config/probe/settings.json".into(),
            mode: 0o600,
            content: "{}".into(),
            agent_owned: true,
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
        .sh("id -u; cat /etc/bot-bottle/ca.crt | head -1; echo $HTTPS_PROXY; ls /etc/ssl/certs | grep -c bot-bottle; ls -ld /home/agent/work | cut -d' ' -f3; stat -c '%U %a' /home/agent/.config/probe/settings.json")
        .await;
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(out.exit_code, 0, "{text} {}", out.stderr_text());
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "-----BEGIN CERTIFICATE-----");
    assert_eq!(lines[2], "http://bottle-sidecar:3128");
    assert_ne!(lines[3], "0", "CA not in the system trust store");
    assert_eq!(lines[4], "agent");
    assert_eq!(lines[5], "agent 600");

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
