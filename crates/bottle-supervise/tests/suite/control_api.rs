//! The control API's status codes, auth and event stream.

use serde_json::{json, Value};

use bottle_supervise::client::ControlClient;
use bottle_supervise::types::EventKind;

use super::harness::{call, Harness, CONTROL_TOKEN, WAIT};

#[tokio::test]
async fn every_call_needs_the_bearer_token() {
    let h = Harness::start(30).await;
    let http = h.http();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some(CONTROL_TOKEN),
        Some("Bearer "),
    ] {
        let mut req = http.get(format!("{}/requests", h.control_url()));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert!(!body.to_string().contains(CONTROL_TOKEN));
    }
    let response = http
        .get(format!("{}/requests", h.control_url()))
        .bearer_auth(CONTROL_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["bottle"]["slug"], "bottle-a1");
    assert_eq!(body["requests"], json!([]));
}

#[tokio::test]
async fn bad_answers_get_clear_status_codes() {
    let h = Harness::start(30).await;
    let client = h.client().await;
    let _waiting = tokio::spawn({
        let client = client.clone();
        async move { call(&client, "ask_operator", json!({"question": "q"})).await }
    });
    let pending = h.wait_pending(1).await;
    let id = &pending[0].id;
    let http = h.http();
    let post = |path: String, body: &'static str| {
        http.post(format!("{}{path}", h.control_url()))
            .bearer_auth(CONTROL_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        (format!("/requests/{id}/answer"), "{nope", 400, "body"),
        (
            format!("/requests/{id}/answer"),
            r#"{"decision":"maybe"}"#,
            400,
            "body",
        ),
        (
            format!("/requests/{id}/answer"),
            r#"{"decision":"approve"}"#,
            400,
            "takes answer or deny",
        ),
        (
            format!("/requests/{id}/answer"),
            r#"{"decision":"answer"}"#,
            400,
            "non-empty text",
        ),
        (
            "/requests/zzzzzz/answer".to_string(),
            r#"{"decision":"deny"}"#,
            404,
            "zzzzzz",
        ),
    ];
    for (path, body, want, needle) in cases {
        let response = post(path.clone(), body).await.unwrap();
        assert_eq!(response.status(), want, "{path} {body}");
        let err: Value = response.json().await.unwrap();
        let msg = err["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{path} {body}: {msg}");
    }
    let ok = post(
        format!("/requests/{id}/answer"),
        r#"{"decision":"answer","text":"a"}"#,
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let twice = post(format!("/requests/{id}/answer"), r#"{"decision":"deny"}"#)
        .await
        .unwrap();
    assert_eq!(twice.status(), 409);
    let bad_query = http
        .get(format!("{}/requests?state=weird", h.control_url()))
        .bearer_auth(CONTROL_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_query.status(), 400);
}

#[tokio::test]
async fn events_long_poll_streams_requests_and_answers() {
    let h = Harness::start(30).await;
    let control = ControlClient::new(h.endpoint()).unwrap();
    let first = control.events(0, 0).await.unwrap();
    assert!(first.events.is_empty());
    // A long poll that a new request wakes up.
    let poll = tokio::spawn({
        let control = control.clone();
        let since = first.next;
        async move { control.events(since, 50).await }
    });
    let client = h.client().await;
    let _waiting = tokio::spawn({
        let client = client.clone();
        async move { call(&client, "ask_operator", json!({"question": "ping?"})).await }
    });
    let page = tokio::time::timeout(WAIT, poll)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].event, EventKind::Request);
    let id = page.events[0].request.id.clone();
    bottle_supervise::ops::answer(&[h.endpoint()], &id, "pong")
        .await
        .unwrap();
    let next = control.events(page.next, 50).await.unwrap();
    assert_eq!(next.events.len(), 1);
    assert_eq!(next.events[0].event, EventKind::Answer);
    assert_eq!(next.instance, page.instance);
}
