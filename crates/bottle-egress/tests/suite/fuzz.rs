//! Bounded randomized tests over request parsing and policy (a fixed number of proptest cases,
//! so they run in `cargo test` in bounded time).

use super::*;
use bottle_egress::addr::normalise_host;
use bottle_egress::policy::Policy;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn host_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9.\\-\\[\\]:%@_]{0,40}",
        "(0x[0-9a-f]{1,8}|0[0-7]{1,11}|[0-9]{1,10})(\\.(0x[0-9a-f]{1,4}|0[0-7]{1,4}|[0-9]{1,3})){0,4}",
        "\\[[0-9a-f:.]{0,39}\\]",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn normalising_never_panics_and_is_stable(h in host_strategy()) {
        if let Ok(n) = normalise_host(&h) {
            // The display form normalises to itself: no second reading can differ.
            prop_assert_eq!(normalise_host(&n.to_string()), Ok(n.clone()));
            if let bottle_egress::addr::Host::Name(name) = &n {
                prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'_'));
                // A name never looks like an IPv4 literal.
                let last = name.rsplit('.').next().unwrap();
                prop_assert!(!last.bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }

    #[test]
    fn policy_decisions_never_panic(h in host_strategy(), port in any::<u16>(), path in "[ -~]{0,40}", method in "[A-Z]{1,8}") {
        let mut r = route("api.test", 443);
        r.paths = vec!["/v1".into()];
        r.methods = vec!["GET".into()];
        let p = Policy::compile(&[r, route("*.example.com", 443)]).unwrap();
        if let Ok(host) = normalise_host(&h) {
            if let Ok(route) = p.find(&host, port, 443) {
                if let Ok(m) = http::Method::from_bytes(method.as_bytes()) {
                    let _ = route.check_request(&m, &path);
                }
            }
        }
    }
}

#[tokio::test]
async fn random_request_heads_never_crash_the_proxy() {
    let env = proxy(vec![route("plain.test", 80)]).await;
    let addr = env.proxy.local_addr();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 150,
        ..ProptestConfig::default()
    });
    let strat = (
        prop_oneof![
            Just("GET".to_string()),
            Just("CONNECT".to_string()),
            "[A-Z]{0,8}",
            "[ -~]{0,10}"
        ],
        prop_oneof![
            host_strategy(),
            Just("http://plain.test/".to_string()),
            "[ -~]{0,30}"
        ],
        proptest::collection::vec("[ -~\\r\\n]{0,40}", 0..6),
    );
    let cases: Vec<_> = (0..150)
        .map(|_| strat.new_tree(&mut runner).unwrap().current())
        .collect();
    for (m, target, headers) in cases {
        let req = format!("{m} {target} HTTP/1.1\r\n{}\r\n\r\n", headers.join("\r\n"));
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            if let Ok(mut s) = TcpStream::connect(addr).await {
                let _ = s.write_all(req.as_bytes()).await;
                let _ = s.shutdown().await;
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink).await;
            }
        })
        .await;
    }
    // Still serving after all of that.
    let reply = raw(addr, b"CONNECT evil.test:443 HTTP/1.1\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
}
