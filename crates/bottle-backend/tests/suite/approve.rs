//! Supervise's `request_egress`, end to end on the real engine: a host the bottle's proxy
//! refuses becomes reachable through that same proxy once the operator approves the agent's
//! request, and not before.
//!
//! Approved routes are passthrough with `allow_private: false` by design, so the approved host
//! must have a public-looking address: every other test upstream sits on a private subnet the
//! proxy refuses whatever the routes say. The test therefore puts a second fake upstream on an
//! extra network with such an address and attaches the sidecar to it.

use std::time::Duration;

use serde_json::{json, Value};

use super::harness::{self, Opts};

/// The host the agent asks for.
const APPROVED_HOST: &str = "approved.example.test";
/// Where the agent keeps the approved upstream's CA (passthrough: the agent verifies the
/// upstream itself, with no bottle CA in between).
const AGENT_CA: &str = "/tmp/approved-ca.pem";

/// `bash` snippet: an HTTPS GET of `path` on [`APPROVED_HOST`] through the agent's proxy
/// (HTTPS_PROXY), verbose so the CONNECT answer's headers show, then `rc=<curl exit code>`.
fn curl_approved(path: &str) -> String {
    format!("curl -sS -v --max-time 30 --cacert {AGENT_CA} https://{APPROVED_HOST}{path} 2>&1; rc=$?; echo; echo rc=$rc")
}

/// The proxy's `X-Bottle-Refusal` value in curl's verbose output, if any.
fn refusal(curl_output: &str) -> Option<String> {
    curl_output.lines().find_map(|l| {
        let l = l.trim_start_matches(['<', ' ']);
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("x-bottle-refusal")
            .then(|| value.trim().to_owned())
    })
}

/// The agent's side of the MCP conversation: initialise a session, then call `request_egress`
/// until the operator's decision comes back. A waiting call returns "no answer" when the
/// bottle's supervise timeout passes first (the request stays open and an identical call
/// resumes it), so a slow machine only costs another round, never the test.
fn agent_requests_egress() -> String {
    format!(
        r#"
H=(-H Content-Type:application/json -H Accept:application/json,text/event-stream)
U=http://bottle-sidecar:8765/mcp
curl -sS --max-time 30 -D /tmp/mcp-h "${{H[@]}}" $U \
  -d '{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-03-26","capabilities":{{}},"clientInfo":{{"name":"probe","version":"1"}}}}}}' || exit 10
echo
SID=$(grep -i '^mcp-session-id:' /tmp/mcp-h | cut -d' ' -f2 | tr -d '\r')
curl -sS --max-time 30 "${{H[@]}}" -H "mcp-session-id: $SID" $U \
  -d '{{"jsonrpc":"2.0","method":"notifications/initialized"}}' || exit 11
for i in 1 2 3 4 5 6 7 8; do
  OUT=$(curl -sS --max-time 120 "${{H[@]}}" -H "mcp-session-id: $SID" $U \
    -d '{{"jsonrpc":"2.0","id":'$((i + 1))',"method":"tools/call","params":{{"name":"request_egress","arguments":{{"host":"{APPROVED_HOST}","port":443,"reason":"the e2e test needs it"}}}}}}')
  echo "CALL $i: $OUT"
  case "$OUT" in *APPROVED*|*DENIED*) exit 0;; esac
done
exit 1
"#
    )
}

/// The operator's side: waits for the agent's pending egress request to show in the control
/// API, then approves it there; returns the answered request.
async fn operator_approves(b: &harness::Bottle) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let (status, page) = b.control("GET", "/requests?state=pending", None).await;
        assert_eq!(status, 200, "GET /requests: {page}");
        let pending = page["requests"].as_array().cloned().unwrap_or_default();
        if let Some(r) = pending
            .iter()
            .find(|r| r["kind"] == "egress" && r["host"] == APPROVED_HOST)
        {
            assert_eq!(r["port"], 443, "{r}");
            let id = r["id"].as_str().unwrap();
            let (status, answered) = b
                .control(
                    "POST",
                    &format!("/requests/{id}/answer"),
                    Some(&json!({ "decision": "approve", "note": "go ahead" })),
                )
                .await;
            assert_eq!(status, 200, "approve {id}: {answered}");
            return answered;
        }
        last = page;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the agent's egress request never showed as pending; last page: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_egress_request_makes_a_refused_host_reachable_through_the_real_proxy() {
    let b = harness::start("approve", Opts::default()).await;

    // The approved host's network. 11.0.0.0/8 is ordinary unicast: not RFC 1918, CGNAT,
    // documentation, benchmarking or any other range bottle-egress's `classify` refuses, so a
    // supervise route (`allow_private: false`) may reach it. The network is internal with no
    // host address and no masquerading, so its traffic stays on this host's bridge between the
    // sidecar and the fake upstream: nothing leaves the machine. The third octet is the
    // bottle's index, unique per test like its other subnets.
    let subnet = format!("11.213.{}.0/24", b.index);
    let network = format!("bot-bottle-{}-public", b.slug);
    harness::create_labelled_network(&b, &network, &subnet).await;
    let upstream = format!("bot-bottle-{}-approved", b.slug);
    let tls = harness::upstream_tls_for(APPROVED_HOST);
    harness::start_upstream_container(&b, &upstream, &network, APPROVED_HOST, &tls).await;
    harness::wait_listening(&b, &upstream).await;
    harness::connect_network(&b, &network, &b.plan.resources.sidecar_container).await;
    let ip = b
        .container_exec(&upstream, "root", &["hostname", "-i"])
        .await
        .stdout_text();
    assert!(
        ip.trim().starts_with("11.213."),
        "approved upstream is not on the public-looking subnet: {ip}"
    );

    let write_ca = b
        .sh(&format!(
            "cat > {AGENT_CA} <<'EOF'\n{}\nEOF\n",
            tls.ca_pem.trim_end()
        ))
        .await;
    assert_eq!(write_ca.exit_code, 0, "{}", write_ca.stderr_text());

    // Before: no route, so the proxy refuses the CONNECT and the upstream sees nothing.
    let before = b.sh(&curl_approved("/before")).await.stdout_text();
    assert_eq!(
        refusal(&before).as_deref(),
        Some("host_not_allowed"),
        "{before}"
    );
    assert!(!before.contains("\nrc=0"), "{before}");
    assert!(!before.contains("hello from upstream"), "{before}");
    assert!(
        !b.container_log(&upstream).await.contains("/before"),
        "a refused request reached the upstream"
    );

    // The agent asks over MCP and waits; the operator approves through the control API.
    let script = agent_requests_egress();
    let (agent, answered) = tokio::join!(
        b.sh_for(&script, Duration::from_secs(1200)),
        operator_approves(&b)
    );
    assert_eq!(answered["state"], "answered", "{answered}");
    assert_eq!(answered["answer"]["decision"], "approve", "{answered}");
    let agent_text = agent.stdout_text();
    assert_eq!(agent.exit_code, 0, "{agent_text} {}", agent.stderr_text());
    assert!(
        agent_text.contains(&format!(
            "APPROVED by the operator: {APPROVED_HOST}:443 is now allowed"
        )),
        "{agent_text}"
    );
    assert!(
        agent_text.contains("go ahead"),
        "note missing: {agent_text}"
    );

    // After: the same request goes through the same proxy, end to end TLS to the upstream.
    let after = b.sh(&curl_approved("/after")).await.stdout_text();
    assert!(after.contains("\nrc=0"), "{after}");
    assert!(after.contains("hello from upstream"), "{after}");
    assert_eq!(refusal(&after), None, "{after}");
    let log = b.container_log(&upstream).await;
    assert!(log.contains("REQUEST GET /after AUTH=None"), "{log}");

    // Supervise's audit records the route it added.
    let audit = std::fs::read_to_string(b.home.path().join("audit/supervise.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"egress_route_added\"") && l.contains(APPROVED_HOST)),
        "{audit}"
    );
}
