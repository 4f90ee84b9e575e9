//! An agent's `request_egress`, approved by the operator, changes the REAL egress proxy's live
//! policy: the proxy and supervise run in-process, wired as the sidecar wires them (supervise's
//! `egress_admin` is the proxy's admin URL and token), and curl goes through the proxy.
//!
//! Supervise's approved routes are passthrough with `allow_private: false` (by design, see the
//! bottle-supervise README), so a loopback upstream can never be reached through one. The test
//! therefore proves the step the approval controls: the refusal changes from
//! `host_not_allowed` (no route) to `private_address` (route present, address still checked),
//! the admin `GET /policy` shows the new route, and the upstream never saw a connection.
//!
//! The full claim (the refused host becomes reachable and its upstream serves the request) is
//! proven on the real Docker engine by
//! `bottle-backend`'s `suite::approve::approved_egress_request_makes_a_refused_host_reachable_through_the_real_proxy`
//! (`crates/bottle-backend/tests/suite/approve.rs`), whose approved upstream has a
//! public-looking address on an extra, host-internal network.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bottle_config::{
    AdminEndpoint, BottleIdent, CaMaterial, EgressConfig, EgressLimits, Secret, SuperviseConfig,
};
use bottle_egress::EgressProxy;
use bottle_supervise::{BottleEndpoint, Supervise};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "admin-token-approve-egress";
const CONTROL_TOKEN: &str = "control-token-approve-egress";
const WAIT: Duration = Duration::from_secs(60);

/// curl through the proxy to `https://localhost:<port>/`; returns (stdout+stderr).
async fn curl_via(proxy: std::net::SocketAddr, port: u16, ca: &std::path::Path) -> String {
    let proxy = format!("http://{proxy}");
    let url = format!("https://localhost:{port}/");
    let ca = ca.to_path_buf();
    let out = tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || {
            Command::new("curl")
                .args(["-sS", "-v", "--max-time", "30", "--noproxy", "", "--proxy"])
                .arg(&proxy)
                .arg("--cacert")
                .arg(&ca)
                .arg(&url)
                .env_remove("HTTPS_PROXY")
                .env_remove("https_proxy")
                .output()
                .unwrap()
        }),
    )
    .await
    .expect("curl hung")
    .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn refusal(curl_output: &str) -> Option<String> {
    curl_output.lines().find_map(|l| {
        let l = l.trim_start_matches(['<', ' ']);
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("x-bottle-refusal")
            .then(|| value.trim().to_owned())
    })
}

async fn policy(admin: std::net::SocketAddr) -> Value {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "--noproxy", "*", "-H"])
            .arg(format!("Authorization: Bearer {ADMIN_TOKEN}"))
            .arg(format!("http://{admin}/policy"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "GET /policy failed: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_egress_request_adds_a_live_route_to_the_real_proxy() {
    let dir = tempfile::tempdir().unwrap();
    // The sidecar's log creates the audit folder before the services start.
    std::fs::create_dir_all(dir.path().join("audit")).unwrap();

    // The "upstream": counts every connection it is offered (it must stay at zero).
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = upstream.local_addr().unwrap().port();
    let upstream_hits = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let hits = upstream_hits.clone();
        async move {
            while let Ok((_sock, _)) = upstream.accept().await {
                hits.fetch_add(1, Ordering::SeqCst);
            }
        }
    });

    // The egress proxy as the sidecar starts it (no routes yet).
    let ca = bottle_tls::Ca::generate("approve-egress test bottle CA").unwrap();
    let bottle_ca_path = dir.path().join("bottle-ca.pem");
    std::fs::write(&bottle_ca_path, ca.cert_pem()).unwrap();
    let egress_cfg = EgressConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Secret::new(ADMIN_TOKEN),
        ca: CaMaterial {
            cert_pem: ca.cert_pem().to_owned(),
            key_pem: Secret::new(ca.key_pem()),
        },
        extra_roots_pem: None,
        routes: Vec::new(),
        limits: EgressLimits::default(),
    };
    let egress = EgressProxy::builder(egress_cfg)
        .audit_log(dir.path().join("audit/egress.jsonl"))
        .bottle("approve-egress")
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();

    // Supervise, its egress admin pointed at the proxy's admin API.
    let ident = BottleIdent {
        slug: "approve-egress".into(),
        name: "implementer".into(),
        label: None,
    };
    let supervise = Supervise::builder(
        SuperviseConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            control_listen: "127.0.0.1:0".parse().unwrap(),
            control_token: Secret::new(CONTROL_TOKEN),
            timeout_secs: 60,
            egress_admin: AdminEndpoint {
                url: format!("http://{}", egress.admin_addr()),
                token: Secret::new(ADMIN_TOKEN),
            },
        },
        dir.path().join("state"),
        dir.path().join("audit/supervise.jsonl"),
        ident,
    )
    .build()
    .unwrap()
    .run()
    .unwrap();

    // 1. Refused: no route for the host.
    let before = curl_via(egress.local_addr(), port, &bottle_ca_path).await;
    assert!(before.contains("403"), "{before}");
    assert_eq!(
        refusal(&before).as_deref(),
        Some("host_not_allowed"),
        "{before}"
    );
    let routes_before = policy(egress.admin_addr()).await;
    assert_eq!(routes_before["routes"], json!([]), "{routes_before}");

    // 2. The agent asks over MCP; the operator approves through the control API.
    let transport =
        StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", supervise.mcp_addr()));
    let client = tokio::time::timeout(WAIT, ().serve(transport))
        .await
        .unwrap()
        .unwrap();
    let call = tokio::spawn({
        let peer = client.peer().clone();
        async move {
            let Value::Object(args) =
                json!({"host": "localhost", "port": port, "reason": "fetch the test fixture"})
            else {
                unreachable!()
            };
            tokio::time::timeout(
                WAIT,
                peer.call_tool(CallToolRequestParams::new("request_egress").with_arguments(args)),
            )
            .await
            .expect("request_egress hung")
        }
    });
    let endpoint = BottleEndpoint {
        slug: "approve-egress".into(),
        name: "implementer".into(),
        label: None,
        color: None,
        control_url: format!("http://{}", supervise.control_addr()),
        control_token: Secret::new(CONTROL_TOKEN),
    };
    let control = bottle_supervise::client::ControlClient::new(endpoint.clone()).unwrap();
    let pending = tokio::time::timeout(WAIT, async {
        loop {
            let page = control.requests(false).await.unwrap();
            if !page.requests.is_empty() {
                return page.requests;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the egress request never became pending");
    assert_eq!(pending.len(), 1);
    bottle_supervise::ops::approve(&[endpoint], &pending[0].id, None)
        .await
        .unwrap();
    let result = call.await.unwrap().unwrap();
    let status = result.structured_content.as_ref().unwrap()["status"].clone();
    assert_eq!(status, json!("approved"), "{result:?}");

    // 3. The live policy gained the passthrough route supervise built.
    let routes_after = policy(egress.admin_addr()).await;
    let routes = routes_after["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 1, "{routes_after}");
    assert_eq!(routes[0]["host"], json!("localhost"));
    assert_eq!(routes[0]["ports"], json!([port]));
    assert_eq!(routes[0]["tls"], json!("passthrough"));
    assert_eq!(routes[0]["origin"], json!("supervise"));
    assert_eq!(routes[0]["allow_private"], json!(false));

    // 4. The same curl now passes the host check and is refused at the address check: the
    //    approval opened the name, not loopback.
    let after = curl_via(egress.local_addr(), port, &bottle_ca_path).await;
    assert!(after.contains("403"), "{after}");
    assert_eq!(
        refusal(&after).as_deref(),
        Some("private_address"),
        "{after}"
    );
    assert_eq!(upstream_hits.load(Ordering::SeqCst), 0);

    // No token reached the audit logs.
    for f in ["audit/egress.jsonl", "audit/supervise.jsonl"] {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
        assert!(!text.contains(ADMIN_TOKEN), "{f} leaks the admin token");
        assert!(!text.contains(CONTROL_TOKEN), "{f} leaks the control token");
    }

    client.cancel().await.unwrap();
    tokio::time::timeout(WAIT, supervise.shutdown())
        .await
        .unwrap();
    tokio::time::timeout(WAIT, egress.shutdown()).await.unwrap();
}
