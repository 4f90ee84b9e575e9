//! Each MCP tool end to end with a real rmcp client, the operator answering through the
//! control API (raw HTTP) or through the `ops` functions the CLI calls.

use bottle_supervise::ops;
use bottle_supervise::types::{Decision, RequestKind, RequestState};
use rmcp::model::ErrorCode;
use rmcp::ServiceError;
use serde_json::{json, Value};

use super::harness::{call, status, text, Harness, ADMIN_TOKEN, CONTROL_TOKEN, WAIT};

#[tokio::test]
async fn tools_are_listed_with_descriptions_for_the_model() {
    let h = Harness::start(30).await;
    let client = h.client().await;
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ask_operator",
            "notify",
            "request_approval",
            "request_egress"
        ]
    );
    for t in &tools {
        let d = t.description.as_deref().unwrap_or("");
        assert!(d.len() > 80, "{} has a thin description: {d}", t.name);
    }
    let egress = tools.iter().find(|t| t.name == "request_egress").unwrap();
    let required = egress.input_schema.get("required").unwrap();
    assert_eq!(required, &json!(["host", "reason"]));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn ask_operator_answered_through_the_control_api() {
    let h = Harness::start(30).await;
    let client = h.client().await;
    let call_task = tokio::spawn({
        let client = client.clone();
        async move {
            call(
                &client,
                "ask_operator",
                json!({"question": "Which branch?", "choices": ["main", "dev"]}),
            )
            .await
        }
    });
    let pending = h.wait_pending(1).await;
    assert_eq!(
        pending[0].kind,
        RequestKind::Question {
            question: "Which branch?".into(),
            choices: vec!["main".into(), "dev".into()]
        }
    );
    let response = h
        .http()
        .post(format!(
            "{}/requests/{}/answer",
            h.control_url(),
            pending[0].id
        ))
        .bearer_auth(CONTROL_TOKEN)
        .json(&json!({"decision": "answer", "text": "dev", "note": "dev is ahead"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let result = call_task.await.unwrap().unwrap();
    assert_eq!(status(&result), "answered");
    assert_eq!(result.is_error, Some(false));
    let t = text(&result);
    assert!(t.contains("The operator answered: dev"), "{t}");
    assert!(t.contains("dev is ahead"), "{t}");

    // Request and answer are audit lines.
    let lines = h.audit_lines();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert!(events.starts_with(&["request", "answer"]), "{events:?}");
    assert_eq!(lines[1]["answer"]["text"], "dev");
    assert!(!std::fs::read_to_string(h.audit_path())
        .unwrap()
        .contains(CONTROL_TOKEN));
}

#[tokio::test]
async fn ask_operator_declined_through_ops_deny() {
    let h = Harness::start(30).await;
    let client = h.client().await;
    let call_task = tokio::spawn({
        let client = client.clone();
        async move { call(&client, "ask_operator", json!({"question": "Secret?"})).await }
    });
    let pending = h.wait_pending(1).await;
    let entry = ops::deny(&[h.endpoint()], &pending[0].id, Some("not telling".into()))
        .await
        .unwrap();
    assert_eq!(entry.bottle.display_name(), "Fixer (implementer)");
    let result = call_task.await.unwrap().unwrap();
    assert_eq!(status(&result), "declined");
    assert!(text(&result).contains("not telling"));
}

#[tokio::test]
async fn request_approval_approved_and_denied_through_ops() {
    let h = Harness::start(30).await;
    let client = h.client().await;
    let endpoints = [h.endpoint()];
    for (approve, want) in [(true, "approved"), (false, "denied")] {
        let action = format!("force-push bot/fix ({want})");
        let call_task = tokio::spawn({
            let client = client.clone();
            let action = action.clone();
            async move {
                call(
                    &client,
                    "request_approval",
                    json!({"action": action, "details": "git push --force origin bot/fix"}),
                )
                .await
            }
        });
        let pending = h.wait_pending(1).await;
        let listing = ops::list_requests(&endpoints, false).await;
        assert_eq!(listing.entries.len(), 1);
        assert!(listing.errors.is_empty());
        let id = &listing.entries[0].request.id;
        // A question-style answer does not fit an approval: refused before sending.
        let err = ops::answer(&endpoints, id, "sure").await.unwrap_err();
        assert!(err.to_string().contains("takes approve or deny"), "{err}");
        // The slug/id form works too.
        let qualified = format!("{}/{}", h.slug, pending[0].id);
        let entry = if approve {
            ops::approve(&endpoints, &qualified, Some("go ahead".into())).await
        } else {
            ops::deny(&endpoints, id, Some("no".into())).await
        }
        .unwrap();
        assert_eq!(entry.request.state, RequestState::Answered);
        let result = call_task.await.unwrap().unwrap();
        assert_eq!(status(&result), want);
        let t = text(&result);
        if approve {
            assert!(t.starts_with("APPROVED") && t.contains("go ahead"), "{t}");
        } else {
            assert!(t.starts_with("DENIED") && t.contains("Do not take"), "{t}");
        }
    }
    // Both visible in history, newest first after pending (none pending now).
    let all = ops::list_requests(&endpoints, true).await;
    assert_eq!(all.entries.len(), 2);
    assert!(all.entries.iter().all(|e| !e.request.is_pending()));
    let table = ops::format_listing(&all, false);
    assert!(
        table.contains("Fixer (implementer)") && table.contains("approval"),
        "{table}"
    );
}

#[tokio::test]
async fn request_egress_approved_posts_a_passthrough_route_to_the_admin_api() {
    let h = Harness::start(30).await;
    let client = h.client().await;
    let call_task = tokio::spawn({
        let client = client.clone();
        async move {
            call(
                &client,
                "request_egress",
                json!({"host": "Files.Example.org", "port": 8443, "reason": "fetch the dataset"}),
            )
            .await
        }
    });
    let pending = h.wait_pending(1).await;
    assert_eq!(
        pending[0].kind,
        RequestKind::Egress {
            host: "files.example.org".into(),
            port: 8443,
            reason: "fetch the dataset".into()
        }
    );
    ops::approve(&[h.endpoint()], &pending[0].id, None)
        .await
        .unwrap();
    let result = call_task.await.unwrap().unwrap();
    assert_eq!(status(&result), "approved");
    assert!(text(&result).contains("files.example.org:8443 is now allowed"));

    let seen = h.recorder.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {ADMIN_TOKEN}").as_str())
    );
    assert_eq!(
        seen[0].body,
        json!({"host": "files.example.org", "ports": [8443], "methods": [], "paths": [],
               "tls": "passthrough", "auth": null, "allow_private": false,
               "origin": "supervise"})
    );
    // The body is exactly a bottle_config::Route.
    let route: bottle_config::Route = serde_json::from_value(seen[0].body.clone()).unwrap();
    assert_eq!(route.tls, bottle_config::TlsMode::Passthrough);
    let events: Vec<Value> = h.audit_lines();
    assert!(events.iter().any(|l| l["event"] == "egress_route_added"));
    assert!(!std::fs::read_to_string(h.audit_path())
        .unwrap()
        .contains(ADMIN_TOKEN));
}

#[tokio::test]
async fn request_egress_defaults_to_443_and_a_failing_admin_api_keeps_it_pending() {
    let h = Harness::start(30).await;
    *h.recorder.status.lock().unwrap() = 500;
    let client = h.client().await;
    let call_task = tokio::spawn({
        let client = client.clone();
        async move {
            call(
                &client,
                "request_egress",
                json!({"host": "pypi.org", "reason": "pip install"}),
            )
            .await
        }
    });
    let pending = h.wait_pending(1).await;
    let err = ops::approve(&[h.endpoint()], &pending[0].id, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("502") && err.contains("egress admin API answered 500"),
        "{err}"
    );
    assert!(!err.contains(ADMIN_TOKEN));
    assert_eq!(h.recorder.seen()[0].body["ports"], json!([443]));
    // Still pending: the operator can deny instead.
    let still = h.wait_pending(1).await;
    assert_eq!(still[0].id, pending[0].id);
    ops::deny(&[h.endpoint()], &pending[0].id, None)
        .await
        .unwrap();
    let result = call_task.await.unwrap().unwrap();
    assert_eq!(status(&result), "denied");
    assert!(h
        .audit_lines()
        .iter()
        .any(|l| l["event"] == "egress_route_failed"));
}

#[tokio::test]
async fn notify_returns_at_once_and_is_listed_as_a_notice() {
    let h = Harness::start(3600).await;
    let client = h.client().await;
    let result = call(
        &client,
        "notify",
        json!({"message": "tests pass", "level": "warning"}),
    )
    .await
    .unwrap();
    assert_eq!(status(&result), "delivered");
    let listing = ops::list_requests(&[h.endpoint()], false).await;
    assert!(listing.entries.is_empty(), "a notice is never pending");
    let all = ops::list_requests(&[h.endpoint()], true).await;
    assert_eq!(all.entries.len(), 1);
    assert_eq!(all.entries[0].request.state, RequestState::Notice);
    assert_eq!(all.entries[0].request.kind.summary(), "warning: tests pass");
}

#[tokio::test]
async fn waiting_tool_times_out_with_a_clear_result_and_resumes_on_retry() {
    let h = Harness::start(1).await;
    let client = h.client().await;
    let args = json!({"action": "drop the staging database", "details": "DROP DATABASE staging"});
    let result = call(&client, "request_approval", args.clone())
        .await
        .unwrap();
    assert_eq!(status(&result), "timeout");
    assert_ne!(
        result.is_error,
        Some(true),
        "a timeout is a result, not an error"
    );
    let t = text(&result);
    assert!(
        t.starts_with("No answer from the operator within 1 s."),
        "{t}"
    );
    assert!(
        t.contains("call request_approval again with the same arguments")
            || t.contains("Call request_approval again"),
        "{t}"
    );
    // The request stays open and answerable; the retry gets the answer at once.
    let pending = h.wait_pending(1).await;
    ops::deny(&[h.endpoint()], &pending[0].id, Some("never".into()))
        .await
        .unwrap();
    let again = call(&client, "request_approval", args.clone())
        .await
        .unwrap();
    assert_eq!(status(&again), "denied");
    assert_eq!(
        again.structured_content.as_ref().unwrap()["request_id"],
        json!(pending[0].id)
    );
    assert!(h.audit_lines().iter().any(|l| l["event"] == "timeout"));
    // Once delivered, the same call is a new request.
    let third = call(&client, "request_approval", args).await.unwrap();
    assert_eq!(status(&third), "timeout");
    assert_ne!(
        third.structured_content.as_ref().unwrap()["request_id"],
        json!(pending[0].id)
    );
}

#[tokio::test]
async fn restart_keeps_pending_requests_answerable_and_answers_kept() {
    let h = Harness::start(3600).await;
    let client = h.client().await;
    // One answered before the restart, one pending across it.
    let answered_task = tokio::spawn({
        let client = client.clone();
        async move { call(&client, "ask_operator", json!({"question": "first?"})).await }
    });
    let first = h.wait_pending(1).await;
    ops::answer(&[h.endpoint()], &first[0].id, "yes")
        .await
        .unwrap();
    answered_task.await.unwrap().unwrap();

    let pending_task = tokio::spawn({
        let client = client.clone();
        async move {
            call(
                &client,
                "request_egress",
                json!({"host": "crates.io", "reason": "cargo fetch"}),
            )
            .await
        }
    });
    let pending = h.wait_pending(1).await;
    let h = h.restart().await;
    // The agent's waiting call was told the service stopped, before the server went away.
    let ended = tokio::time::timeout(WAIT, pending_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status(&ended), "unavailable");
    assert!(text(&ended).contains("stopped before the operator answered"));
    drop(client);

    let after = h.wait_pending(1).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, pending[0].id);
    let all = ops::list_requests(&[h.endpoint()], true).await;
    let kept = all
        .entries
        .iter()
        .find(|e| e.request.id == first[0].id)
        .unwrap();
    assert_eq!(
        kept.request.answer.as_ref().unwrap().decision,
        Decision::Answer
    );
    assert_eq!(
        kept.request.answer.as_ref().unwrap().text.as_deref(),
        Some("yes")
    );

    // Answerable on the new server; the agent calling again gets the answer at once.
    ops::approve(&[h.endpoint()], &pending[0].id, None)
        .await
        .unwrap();
    assert_eq!(h.recorder.seen().len(), 1);
    let client = h.client().await;
    let result = call(
        &client,
        "request_egress",
        json!({"host": "crates.io", "reason": "cargo fetch"}),
    )
    .await
    .unwrap();
    assert_eq!(status(&result), "approved");
}

#[tokio::test]
async fn unknown_tool_is_a_protocol_error_and_bad_arguments_are_tool_errors() {
    let h = Harness::start(30).await;
    let client = h.client().await;
    // An unknown tool is a JSON-RPC error.
    let err = call(&client, "format_disk", json!({})).await.unwrap_err();
    let ServiceError::McpError(e) = err else {
        panic!("expected an MCP error, got {err:?}")
    };
    assert!(
        e.code == ErrorCode::INVALID_PARAMS || e.code == ErrorCode::METHOD_NOT_FOUND,
        "{e:?}"
    );
    assert!(e.message.contains("tool"), "{e:?}");

    // Wrong argument types and unacceptable values are tool execution errors (`isError: true`
    // with a message naming the argument), as the MCP spec asks for input validation, so the
    // model can correct its call.
    for (tool, args, needle) in [
        ("ask_operator", json!({"question": 42}), "expected a string"),
        (
            "ask_operator",
            json!({"choices": ["a"]}),
            "missing field `question`",
        ),
        (
            "request_egress",
            json!({"host": "x.org", "port": "https", "reason": "r"}),
            "u16",
        ),
        (
            "request_egress",
            json!({"host": "x.org", "port": 70000, "reason": "r"}),
            "70000",
        ),
        ("notify", json!({"message": "m", "level": "shout"}), "shout"),
        (
            "request_egress",
            json!({"host": "*.evil.org", "reason": "r"}),
            "host:",
        ),
        (
            "request_egress",
            json!({"host": "x.org", "port": 0, "reason": "r"}),
            "port:",
        ),
        (
            "ask_operator",
            json!({"question": "   "}),
            "question: must not be empty",
        ),
    ] {
        let result = call(&client, tool, args.clone()).await.unwrap();
        assert_eq!(result.is_error, Some(true), "{tool} {args}");
        let t = text(&result);
        assert!(t.contains(needle), "{tool} {args}: {t}");
    }
    // Nothing reached the operator.
    assert!(ops::list_requests(&[h.endpoint()], true)
        .await
        .entries
        .is_empty());
}

async fn post_raw(h: &Harness, body: &'static str) -> (u16, Value) {
    let response = tokio::time::timeout(
        WAIT,
        h.http()
            .post(h.mcp_url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send(),
    )
    .await
    .unwrap()
    .unwrap();
    let code = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (code, body)
}

#[tokio::test]
async fn malformed_json_rpc_gets_json_rpc_errors() {
    let h = Harness::start(30).await;
    let (code, body) = post_raw(&h, r#"{"jsonrpc":"2.0","id":1,"method":"#).await;
    assert_eq!(code, 400);
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], Value::Null);
    assert_eq!(body["error"]["code"], -32700, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Parse error"));

    for bad in [
        r#"{"jsonrpc":"2.0","id":7,"params":{}}"#,
        r#"{"jsonrpc":"1.0","id":7,"method":"initialize"}"#,
        r#""just a string""#,
    ] {
        let (code, body) = post_raw(&h, bad).await;
        assert_eq!(code, 400, "{bad}");
        assert_eq!(body["error"]["code"], -32600, "{bad}: {body}");
    }
    let (_, body) = post_raw(&h, r#"{"jsonrpc":"2.0","id":7,"params":{}}"#).await;
    assert_eq!(body["id"], 7, "the id is echoed when there is one");

    // A well-formed call to an unknown method on a fresh connection is rmcp's to refuse; the
    // server is still healthy afterwards.
    let client = h.client().await;
    let result = call(&client, "notify", json!({"message": "still up"}))
        .await
        .unwrap();
    assert_eq!(status(&result), "delivered");
}
