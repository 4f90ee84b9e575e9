//! A guard in front of rmcp's `/mcp` endpoint: a POST body that is not JSON gets a JSON-RPC
//! parse error (-32700), and JSON that is not a JSON-RPC 2.0 message gets an invalid-request
//! error (-32600), both as JSON-RPC error objects with HTTP 400, as JSON-RPC over HTTP expects
//! (rmcp itself answers such bodies with a plain-text 415).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Largest request body accepted (rmcp's own default limit).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// JSON-RPC "Parse error".
pub(crate) const PARSE_ERROR: i32 = -32700;
/// JSON-RPC "Invalid Request".
pub(crate) const INVALID_REQUEST: i32 = -32600;

/// The middleware.
pub(crate) async fn guard(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            Value::Null,
            INVALID_REQUEST,
            format!("Invalid Request: body larger than {MAX_BODY} bytes or unreadable"),
        );
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                PARSE_ERROR,
                format!("Parse error: {e}"),
            )
        }
    };
    if let Some(problem) = message_problem(&value) {
        let id = value.get("id").cloned().unwrap_or(Value::Null);
        return error(
            StatusCode::BAD_REQUEST,
            id,
            INVALID_REQUEST,
            format!("Invalid Request: {problem}"),
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Why `v` is not one JSON-RPC 2.0 message (request, notification, response or error).
fn message_problem(v: &Value) -> Option<&'static str> {
    let Some(obj) = v.as_object() else {
        return Some("expected one JSON-RPC message object");
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some("\"jsonrpc\" must be \"2.0\"");
    }
    match obj.get("method") {
        Some(Value::String(_)) => None,
        Some(_) => Some("\"method\" must be a string"),
        None if obj.contains_key("id")
            && (obj.contains_key("result") || obj.contains_key("error")) =>
        {
            None
        }
        None => Some("a request needs a \"method\""),
    }
}

fn error(status: StatusCode, id: Value, code: i32, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
            .to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_messages() {
        assert_eq!(
            message_problem(&json!({"jsonrpc":"2.0","id":1,"method":"ping"})),
            None
        );
        assert_eq!(
            message_problem(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})),
            None
        );
        assert_eq!(
            message_problem(&json!({"jsonrpc":"2.0","id":1,"result":{}})),
            None
        );
        assert!(message_problem(&json!({"jsonrpc":"2.0","id":1,"params":{}})).is_some());
        assert!(message_problem(&json!({"jsonrpc":"1.0","id":1,"method":"x"})).is_some());
        assert!(message_problem(&json!([1, 2])).is_some());
        assert!(message_problem(&json!({"jsonrpc":"2.0","id":1,"method":5})).is_some());
    }
}
