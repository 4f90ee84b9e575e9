//! The admin API: token required, secrets redacted, live route changes.

use super::*;

async fn admin(
    env: &Env,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, String) {
    let url = format!("http://{}{}", env.proxy.admin_addr(), path);
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args([
        "-sS",
        "--noproxy",
        "*",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        &url,
    ]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", &b]);
    }
    let out = tokio::time::timeout(T, cmd.output())
        .await
        .unwrap()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = s.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

#[tokio::test]
async fn admin_needs_the_token() {
    let env = proxy(vec![bearer(route("api.test", 443))]).await;
    assert_eq!(admin(&env, "GET", "/healthz", None, None).await.0, 401);
    assert_eq!(
        admin(&env, "GET", "/policy", Some("wrong"), None).await.0,
        401
    );
    assert_eq!(
        admin(&env, "GET", "/healthz", Some(ADMIN), None).await.0,
        200
    );
    let (code, body) = admin(&env, "GET", "/policy", Some(ADMIN), None).await;
    assert_eq!(code, 200);
    assert!(
        body.contains("api.test") && body.contains("<redacted>") && body.contains("bearer"),
        "{body}"
    );
    assert_no_secret(&[&body]);
    // The agent-facing listener does not serve the admin API.
    let reply = raw(
        env.proxy.local_addr(),
        format!("GET /policy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(
        reply.starts_with("HTTP/1.1 400") && !reply.contains("api.test"),
        "{reply}"
    );
}

#[tokio::test]
async fn an_approved_route_applies_live_and_can_be_removed() {
    let seen = SeenLog::default();
    let up = upstream(true, echo_handler(seen.clone())).await;
    let env = proxy(vec![]).await;
    let url = format!("https://late.test:{}/now", up.port());
    let c = env.curl(&[&url]).await;
    assert_eq!(c.connect, 403, "{c:?}");
    let r = serde_json::to_string(&bearer(route("late.test", up.port()))).unwrap();
    let (code, body) = admin(&env, "POST", "/routes", Some(ADMIN), Some(r)).await;
    assert_eq!(code, 201, "{body}");
    assert_no_secret(&[&body]);
    let c = env
        .curl(&["-H", &format!("Authorization: Bearer {PLACEHOLDER}"), &url])
        .await;
    assert_eq!((c.code, c.body.as_str()), (200, "hello /now"), "{c:?}");
    assert_eq!(
        seen.lock().unwrap()[0].headers["authorization"],
        format!("Bearer {REAL}")
    );
    let (code, counters) = admin(&env, "GET", "/counters", Some(ADMIN), None).await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&counters).unwrap();
    assert!(
        v["denied"].as_u64().unwrap() >= 1 && v["injected"].as_u64().unwrap() >= 1,
        "{v}"
    );
    let (code, _) = admin(&env, "DELETE", "/routes/late.test", Some(ADMIN), None).await;
    assert_eq!(code, 200);
    let c = env.curl(&[&url]).await;
    assert_eq!(c.connect, 403, "{c:?}");
    // A bad route is refused with a clear error naming it.
    let (code, body) = admin(
        &env,
        "POST",
        "/routes",
        Some(ADMIN),
        Some(r#"{"host":"*.com"}"#.into()),
    )
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("*.com"), "{body}");
    assert_no_secret(&[&env.audit_text()]);
}
