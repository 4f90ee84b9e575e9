//! The bottle's security properties, each shown from inside by a probe agent (SPEC §8): what it
//! can do through the sidecar, and every way out it must not have.

use std::time::Duration;

use bottle_backend::docker;

use super::harness::{self, Opts, API_HOST, UNROUTED_HOST};

/// `bash` snippet: exit 0 iff a TCP connection to host:port opens within 5 s.
fn tcp(host: &str, port: u16) -> String {
    format!("timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/{port}' 2>/dev/null")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_calls_allowed_api_and_upstream_sees_the_real_token() {
    let b = harness::start("api", Opts::default()).await;
    let out = b
        .sh(&format!("curl -sS --max-time 20 -H \"Authorization: Bearer $API_TOKEN\" https://{API_HOST}/hello"))
        .await;
    assert_eq!(
        out.exit_code,
        0,
        "{} {}",
        out.stdout_text(),
        out.stderr_text()
    );
    assert_eq!(out.stdout_text(), "hello from upstream\n");
    let log = b.upstream_log().await;
    assert!(
        log.contains(&format!("REQUEST GET /hello AUTH=Bearer {}", b.token)),
        "upstream log: {log}"
    );
    assert!(!out.stdout_text().contains(&b.token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_never_sees_the_real_token() {
    let b = harness::start("notoken", Opts::default()).await;
    // Make the proxy inject once, so the token has been on the wire in this bottle.
    let out = b
        .sh(&format!("curl -sv --max-time 20 https://{API_HOST}/x 2>&1; echo; env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; grep -rs . /home /etc /tmp /root /var/lib 2>/dev/null | head -c 5000000"))
        .await;
    let all = format!("{}{}", out.stdout_text(), out.stderr_text());
    assert!(all.contains("hello from upstream"), "{all}");
    assert!(
        all.contains("API_TOKEN=egress-placeholder"),
        "placeholder missing: {all}"
    );
    assert!(
        !all.contains(&b.token),
        "the real token is visible inside the bottle"
    );
    assert!(
        b.upstream_log().await.contains(&b.token),
        "the proxy did not inject"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_host_is_refused_by_plain_http_and_connect() {
    let b = harness::start("unrouted", Opts::default()).await;
    let out = b
        .sh(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' --max-time 20 http://{UNROUTED_HOST}/plain; echo; \
             curl -s -o /dev/null --max-time 20 https://{UNROUTED_HOST}/tls; echo rc=$?"
        ))
        .await;
    let text = out.stdout_text();
    let mut lines = text.lines();
    let code = lines.next().unwrap_or_default();
    assert!(
        code.starts_with('4') || code.starts_with('5'),
        "plain HTTP was not refused: {text}"
    );
    assert_ne!(
        lines.next(),
        Some("rc=0"),
        "CONNECT was not refused: {text}"
    );
    let log = b.upstream_log().await;
    assert!(
        !log.contains("/plain") && !log.contains("/tls"),
        "a refused request reached the upstream: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_literal_through_the_proxy_is_refused() {
    let b = harness::start("iplit", Opts::default()).await;
    let ip = b.upstream_ip().await;
    let out = b
        .sh(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' --max-time 20 http://{ip}/lit; echo; \
             curl -sk -o /dev/null --max-time 20 https://{ip}/lit; echo rc=$?"
        ))
        .await;
    let text = out.stdout_text();
    assert!(!text.starts_with("200"), "{text}");
    assert!(!text.contains("rc=0"), "{text}");
    assert!(!b.upstream_log().await.contains("/lit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_tcp_to_the_upstream_has_no_route() {
    let b = harness::start("rawtcp", Opts::default()).await;
    let ip = b.upstream_ip().await;
    // Positive control: the upstream listens (checked from its own network).
    let ctl = b
        .upstream_exec(&[
            "python3",
            "-c",
            "import socket; socket.create_connection(('127.0.0.1', 443), 5)",
        ])
        .await;
    assert_eq!(ctl.exit_code, 0);
    let out = b
        .sh(&format!(
            "{}; echo rc443=$?; {}; echo rc80=$?",
            tcp(&ip, 443),
            tcp(&ip, 80)
        ))
        .await;
    let text = out.stdout_text();
    assert!(
        !text.contains("rc443=0") && !text.contains("rc80=0"),
        "{text}"
    );
    // Docker 20.10 still installs a default route via the internal network's gateway address,
    // but no host interface holds that address (verified at `up`) and the engine drops
    // internal-network traffic leaving the subnet: the connections above fail.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_lookup_of_an_outside_name_fails() {
    let b = harness::start("dns", Opts::default()).await;
    let out = b
        .sh(&format!(
            "getent hosts {API_HOST}; echo rc1=$?; getent hosts deb.debian.org; echo rc2=$?; \
             getent hosts bottle-sidecar; echo rc3=$?"
        ))
        .await;
    let text = out.stdout_text();
    assert!(text.contains("rc1=2"), "{text}");
    assert!(text.contains("rc2=2"), "{text}");
    // The one name the agent needs comes from /etc/hosts.
    let sidecar_ip = docker::sidecar_internal_ip(b.index).unwrap().to_string();
    assert!(
        text.contains(&sidecar_ip) && text.contains("rc3=0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_has_no_address_and_no_route() {
    let b = harness::start("ipv6", Opts::default()).await;
    let out = b
        .sh("cat /proc/net/if_inet6; echo ---; curl -6 -s --max-time 5 --noproxy '*' 'http://[2001:db8::1]/'; echo rc=$?")
        .await;
    let text = out.stdout_text();
    let (addrs, rest) = text.split_once("---").unwrap();
    for line in addrs.lines() {
        assert!(
            line.trim_end().ends_with("lo"),
            "a non-loopback IPv6 address: {line}"
        );
    }
    assert!(!rest.contains("rc=0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_metadata_address_is_unreachable() {
    let b = harness::start("meta", Opts::default()).await;
    let out = b
        .sh(&format!(
            "{}; echo direct=$?; curl -s -o /dev/null -w '%{{http_code}}' --max-time 20 http://169.254.169.254/latest/meta-data/; echo; \
             curl -s -o /dev/null --max-time 20 https://169.254.169.254/; echo tls=$?",
            tcp("169.254.169.254", 80)
        ))
        .await;
    let text = out.stdout_text();
    assert!(!text.contains("direct=0"), "{text}");
    assert!(!text.contains("\n200"), "{text}");
    assert!(!text.contains("tls=0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_service_on_all_interfaces_is_unreachable_through_the_bridge() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
    let b = harness::start("hostsvc", Opts::default()).await;
    let (net, _) = docker::internal_subnet(b.index).unwrap();
    let o = net.octets();
    let internal_gw = format!("{}.{}.{}.1", o[0], o[1], o[2]);
    let (enet, _) = docker::egress_subnet(b.index).unwrap();
    let e = enet.octets();
    let egress_gw = format!("{}.{}.{}.1", e[0], e[1], e[2]);
    // Positive control: from the egress side (a normal bridge) the host service is reachable,
    // so the listener really is on 0.0.0.0.
    let ctl = b
        .upstream_exec(&[
            "python3",
            "-c",
            &format!("import socket; socket.create_connection(('{egress_gw}', {port}), 5)"),
        ])
        .await;
    assert_eq!(
        ctl.exit_code, 0,
        "control: host service not reachable from the egress network"
    );
    let out = b
        .sh(&format!(
            "{}; echo int=$?; {}; echo egr=$?; {}; echo docker0=$?",
            tcp(&internal_gw, port),
            tcp(&egress_gw, port),
            tcp("172.17.0.1", port)
        ))
        .await;
    let text = out.stdout_text();
    assert!(text.contains("int=1"), "{text}");
    assert!(
        !text.contains("egr=0") && !text.contains("docker0=0"),
        "{text}"
    );
    accepted.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_bottles_sidecar_is_unreachable() {
    let a = harness::start("twoa", Opts::default()).await;
    let b = harness::start("twob", Opts::default()).await;
    let b_int = docker::sidecar_internal_ip(b.index).unwrap().to_string();
    let b_egr = docker::sidecar_egress_ip(b.index).unwrap().to_string();
    // Positive control: B's own agent reaches B's proxy.
    let own = b.sh(&format!("{}; echo rc=$?", tcp(&b_int, 3128))).await;
    assert!(own.stdout_text().contains("rc=0"), "{}", own.stdout_text());
    let out = a
        .sh(&format!(
            "{}; echo proxy=$?; {}; echo mcp=$?; {}; echo control=$?; \
             echo via_proxy_code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 20 http://{b_int}:8765/mcp)",
            tcp(&b_int, 3128),
            tcp(&b_int, 8765),
            tcp(&b_egr, 9100)
        ))
        .await;
    let text = out.stdout_text();
    for k in ["\nproxy=0", "mcp=0", "control=0"] {
        assert!(!format!("\n{text}").contains(k), "{k}: {text}");
    }
    // Through A's own proxy B's sidecar (a private address with no route) is refused.
    let code = text
        .lines()
        .find_map(|l| l.strip_prefix("via_proxy_code="))
        .unwrap_or_default();
    assert!(
        !code.starts_with('2'),
        "A's proxy relayed to B's sidecar: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_and_admin_apis_are_not_reachable_from_the_agent() {
    let b = harness::start("ctl", Opts::default()).await;
    let e = docker::endpoints(b.index).unwrap();
    // The host reaches the control API.
    let host = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(e.control),
    )
    .await;
    assert!(
        matches!(host, Ok(Ok(_))),
        "host cannot reach the control API at {}",
        e.control
    );
    let int = docker::sidecar_internal_ip(b.index).unwrap().to_string();
    let out = b
        .sh(&format!(
            "{}; echo control=$?; {}; echo control_int=$?; {}; echo admin_int=$?",
            tcp(&e.control.ip().to_string(), 9100),
            tcp(&int, 9100),
            tcp(&int, 9099)
        ))
        .await;
    let text = out.stdout_text();
    for k in ["control=0", "control_int=0", "admin_int=0"] {
        assert!(!text.contains(k), "{k}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_calls_supervise_over_mcp() {
    let b = harness::start("mcp", Opts::default()).await;
    let script = r#"
set -e
H='-H Content-Type:application/json -H Accept:application/json,text/event-stream'
curl -sS --max-time 20 -D /tmp/h $H http://bottle-sidecar:8765/mcp \
  -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}'
echo
SID=$(grep -i '^mcp-session-id:' /tmp/h | cut -d' ' -f2 | tr -d '\r')
curl -sS --max-time 20 $H -H "mcp-session-id: $SID" http://bottle-sidecar:8765/mcp \
  -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
curl -sS --max-time 20 $H -H "mcp-session-id: $SID" http://bottle-sidecar:8765/mcp \
  -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
"#;
    let out = b.sh(script).await;
    let text = out.stdout_text();
    assert_eq!(out.exit_code, 0, "{text} {}", out.stderr_text());
    assert!(text.contains("serverInfo"), "{text}");
    assert!(text.contains("\"tools\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_reaches_nothing_outside() {
    // A UDP listener on all of the host's interfaces: what reaches it, from where.
    let sock = tokio::net::UdpSocket::bind("0.0.0.0:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let b = harness::start("udp", Opts::default()).await;
    let (inet, _) = docker::internal_subnet(b.index).unwrap();
    let (enet, _) = docker::egress_subnet(b.index).unwrap();
    let gw = |n: std::net::Ipv4Addr| {
        let o = n.octets();
        format!("{}.{}.{}.1", o[0], o[1], o[2])
    };
    let upstream = b.upstream_ip().await;
    // Positive control: a machine on the egress side does reach the listener.
    let ctl = b
        .upstream_exec(&[
            "python3",
            "-c",
            &format!(
                "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'control', ('{}', {port}))",
                gw(enet)
            ),
        ])
        .await;
    assert_eq!(ctl.exit_code, 0, "control sender failed");
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(Duration::from_secs(20), sock.recv_from(&mut buf))
        .await
        .expect("control datagram never arrived: the listener is not reachable at all")
        .unwrap();
    assert_eq!(&buf[..n], b"control");
    // And a UDP listener on the upstream, with a control datagram from the host.
    let listen = b
        .upstream_exec(&[
            "sh",
            "-c",
            "nohup python3 -c \"import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',5300))\nwhile True:\n d=s.recv(64)\n open('/tmp/udp.log','ab').write(d+b'\\n')\" >/dev/null 2>&1 &",
        ])
        .await;
    assert_eq!(listen.exit_code, 0);
    let host_sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    for _ in 0..50 {
        host_sock
            .send_to(b"host-control", format!("{upstream}:5300"))
            .unwrap();
        let got = b
            .upstream_exec(&["cat", "/tmp/udp.log"])
            .await
            .stdout_text();
        if got.contains("host-control") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // From the agent: the host through every gateway, and the upstream.
    let mut script = String::new();
    for (target, p) in [
        (gw(inet), port),
        (gw(enet), port),
        ("172.17.0.1".to_string(), port),
        (upstream.clone(), 5300),
    ] {
        script.push_str(&format!(
            "for i in 1 2 3; do echo from-agent > /dev/udp/{target}/{p}; done 2>/dev/null; echo {target}=$?\n"
        ));
    }
    let out = b.sh(&script).await;
    let text = out.stdout_text();
    // Whatever bash reports (a datagram send can succeed locally), nothing may arrive.
    let got = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf)).await;
    if let Ok(Ok((n, from))) = got {
        panic!(
            "a datagram from the agent reached the host from {from}: {:?}\n{text}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    // The upstream (a machine on the egress side) logged nothing from the agent either; the
    // sends above may "succeed" locally (Docker gives the agent a default route to the
    // internal gateway address, which nothing holds), so only receipt counts.
    let log = b
        .upstream_exec(&["cat", "/tmp/udp.log"])
        .await
        .stdout_text();
    assert!(
        log.contains("host-control"),
        "upstream UDP listener got no control datagram: {log}"
    );
    assert!(
        !log.contains("from-agent"),
        "the agent's UDP reached the upstream: {log}\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_container_engine_socket_or_mount_in_the_agent() {
    let b = harness::start("sock", Opts::default()).await;
    let out = b
        .sh(
            "find / -xdev -type s 2>/dev/null; echo ---; cat /proc/self/mountinfo; echo ---; \
             for s in /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock; do \
               [ -e $s ] && echo present=$s; done; \
             curl -s --max-time 5 --unix-socket /var/run/docker.sock http://x/version; echo api=$?",
        )
        .await;
    let text = out.stdout_text();
    for needle in ["docker.sock", "containerd.sock", "present=", "podman.sock"] {
        assert!(!text.contains(needle), "{needle} in the agent: {text}");
    }
    assert!(!text.contains("api=0"), "{text}");
    assert!(!text.contains("ApiVersion"), "{text}");
}
