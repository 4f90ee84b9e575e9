//! The request/answer data shared by the MCP server, the control API, its client and the console.
//!
//! These are the wire shapes of the control API (`GET /requests`, `GET /events`,
//! `POST /requests/<id>/answer`) and the records persisted in `requests.json`. Plain serde data;
//! the rules about which answer fits which request live here too, so that the server (which is
//! authoritative) and the CLI (which checks before sending, for a better message) agree.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bottle_config::BottleIdent;
use serde::{Deserialize, Serialize};

/// Largest question, action, details, reason, message or answer text accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Most choices an `ask_operator` call may offer.
pub const MAX_CHOICES: usize = 20;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How loud a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "server", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Level {
    #[default]
    Info,
    Warning,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

/// What the agent asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RequestKind {
    /// `ask_operator`: a free question, optionally with suggested choices.
    Question {
        question: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        choices: Vec<String>,
    },
    /// `request_approval`: permission for an action.
    Approval { action: String, details: String },
    /// `request_egress`: a new passthrough route.
    Egress {
        host: String,
        port: u16,
        reason: String,
    },
    /// `notify`: information only, never pending.
    Notice { message: String, level: Level },
}

impl RequestKind {
    /// Short name of the kind: `question`, `approval`, `egress`, `notice`.
    pub fn label(&self) -> &'static str {
        match self {
            RequestKind::Question { .. } => "question",
            RequestKind::Approval { .. } => "approval",
            RequestKind::Egress { .. } => "egress",
            RequestKind::Notice { .. } => "notice",
        }
    }

    /// One line describing the request, for lists.
    pub fn summary(&self) -> String {
        let line = match self {
            RequestKind::Question { question, choices } if choices.is_empty() => question.clone(),
            RequestKind::Question { question, choices } => {
                format!("{question} [{}]", choices.join(" | "))
            }
            RequestKind::Approval { action, .. } => action.clone(),
            RequestKind::Egress { host, port, reason } => format!("{host}:{port} — {reason}"),
            RequestKind::Notice { message, level } => format!("{level}: {message}"),
        };
        // Lists show one line per request: fold newlines the agent may have sent.
        line.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Which decisions the operator may give to this kind.
    pub fn allowed_decisions(&self) -> &'static [Decision] {
        match self {
            RequestKind::Question { .. } => &[Decision::Answer, Decision::Deny],
            RequestKind::Approval { .. } | RequestKind::Egress { .. } => {
                &[Decision::Approve, Decision::Deny]
            }
            RequestKind::Notice { .. } => &[],
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for the operator.
    Pending,
    /// The operator answered.
    Answered,
    /// A notice: nothing to answer.
    Notice,
}

/// The operator's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Deny,
    /// A text answer to a question.
    Answer,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
            Decision::Answer => "answer",
        })
    }
}

/// The body of `POST /requests/<id>/answer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    pub decision: Decision,
    /// The answer's text (required for `answer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A note for the agent (optional, any decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl AnswerBody {
    /// Approve, with an optional note.
    pub fn approve(note: Option<String>) -> Self {
        Self {
            decision: Decision::Approve,
            text: None,
            note,
        }
    }
    /// Deny, with an optional note.
    pub fn deny(note: Option<String>) -> Self {
        Self {
            decision: Decision::Deny,
            text: None,
            note,
        }
    }
    /// Answer a question with text.
    pub fn answer(text: impl Into<String>) -> Self {
        Self {
            decision: Decision::Answer,
            text: Some(text.into()),
            note: None,
        }
    }
}

/// Why an answer does not fit a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerRejection {
    /// The decision is not one this kind of request takes.
    #[error("a {kind} request takes {allowed}, not {decision}")]
    WrongDecision {
        kind: &'static str,
        decision: Decision,
        allowed: String,
    },
    /// `answer` without text.
    #[error("an answer needs a non-empty text")]
    MissingText,
    /// Text or note longer than [`MAX_TEXT_BYTES`].
    #[error("the {field} is longer than {MAX_TEXT_BYTES} bytes")]
    TooLong { field: &'static str },
    /// The request was already answered (or is a notice).
    #[error("request {id} is not pending (it is {state:?})")]
    NotPending { id: String, state: RequestState },
}

/// Checks that `body` is an acceptable answer to a request of kind `kind`.
pub fn check_answer(kind: &RequestKind, body: &AnswerBody) -> Result<(), AnswerRejection> {
    let allowed = kind.allowed_decisions();
    if !allowed.contains(&body.decision) {
        return Err(AnswerRejection::WrongDecision {
            kind: kind.label(),
            decision: body.decision,
            allowed: if allowed.is_empty() {
                "no answer".to_owned()
            } else {
                allowed
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            },
        });
    }
    if body.decision == Decision::Answer && body.text.as_deref().is_none_or(|t| t.trim().is_empty())
    {
        return Err(AnswerRejection::MissingText);
    }
    if body.text.as_ref().is_some_and(|t| t.len() > MAX_TEXT_BYTES) {
        return Err(AnswerRejection::TooLong { field: "text" });
    }
    if body.note.as_ref().is_some_and(|t| t.len() > MAX_TEXT_BYTES) {
        return Err(AnswerRejection::TooLong { field: "note" });
    }
    Ok(())
}

/// The operator's answer, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub answered_ms: u64,
}

/// One request from the agent, with its answer once given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Short id, unique within the bottle (`approve ID` takes it).
    pub id: String,
    pub created_ms: u64,
    #[serde(flatten)]
    pub kind: RequestKind,
    pub state: RequestState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// True once the answer reached the agent (a later identical call then makes a new request).
    #[serde(default)]
    pub delivered: bool,
}

impl Request {
    /// True while the operator has not answered.
    pub fn is_pending(&self) -> bool {
        self.state == RequestState::Pending
    }
}

/// `GET /requests` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestsPage {
    /// Which bottle answered (as the sidecar knows itself).
    pub bottle: BottleIdent,
    /// Pending first (oldest first), then the others (newest first).
    pub requests: Vec<Request>,
}

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new request (or notice).
    Request,
    /// An answer.
    Answer,
}

/// One entry of the event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub event: EventKind,
    pub request: Request,
}

/// `GET /events?since=N&wait=S` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsPage {
    /// Changes on every sidecar start; a client that sees it change asks again from 0.
    pub instance: String,
    /// The `since` to pass next time.
    pub next: u64,
    pub events: Vec<Event>,
}

/// The JSON body of every control-API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// The order every list shows requests in: pending first (oldest first), then the rest (newest
/// first).
pub fn display_cmp(a: &Request, b: &Request) -> std::cmp::Ordering {
    match (a.is_pending(), b.is_pending()) {
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (true, true) => (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)),
        (false, false) => (b.created_ms, &b.id).cmp(&(a.created_ms, &a.id)),
    }
}

/// Sorts requests in [`display_cmp`] order.
pub fn sort_for_display(requests: &mut [Request]) {
    requests.sort_by(display_cmp);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: RequestKind) -> Request {
        Request {
            id: "abc123".into(),
            created_ms: 1,
            kind,
            state: RequestState::Pending,
            answer: None,
            delivered: false,
        }
    }

    #[test]
    fn request_serialises_flat_with_kind_tag() {
        let r = request(RequestKind::Egress {
            host: "example.org".into(),
            port: 443,
            reason: "docs".into(),
        });
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["kind"], "egress");
        assert_eq!(v["host"], "example.org");
        assert_eq!(v["state"], "pending");
        let back: Request = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn answers_must_fit_the_kind() {
        let q = RequestKind::Question {
            question: "?".into(),
            choices: vec![],
        };
        let a = RequestKind::Approval {
            action: "rm".into(),
            details: "".into(),
        };
        assert!(check_answer(&q, &AnswerBody::answer("yes")).is_ok());
        assert!(check_answer(&q, &AnswerBody::deny(None)).is_ok());
        assert_eq!(
            check_answer(&q, &AnswerBody::answer("  ")),
            Err(AnswerRejection::MissingText)
        );
        let err = check_answer(&q, &AnswerBody::approve(None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a question request takes answer or deny, not approve"
        );
        assert!(check_answer(&a, &AnswerBody::approve(Some("ok".into()))).is_ok());
        assert!(check_answer(&a, &AnswerBody::answer("x")).is_err());
        let n = RequestKind::Notice {
            message: "m".into(),
            level: Level::Info,
        };
        assert!(check_answer(&n, &AnswerBody::approve(None)).is_err());
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        assert_eq!(
            check_answer(&a, &AnswerBody::approve(Some(long))),
            Err(AnswerRejection::TooLong { field: "note" })
        );
    }

    #[test]
    fn summary_is_one_line() {
        let q = RequestKind::Question {
            question: "line one\nline two".into(),
            choices: vec!["a".into(), "b".into()],
        };
        assert_eq!(q.summary(), "line one line two [a | b]");
    }

    #[test]
    fn display_order_is_pending_oldest_then_rest_newest() {
        let mut rs = vec![];
        for (id, t, pending) in [
            ("a", 1, false),
            ("b", 2, true),
            ("c", 3, false),
            ("d", 4, true),
        ] {
            let mut r = request(RequestKind::Notice {
                message: id.into(),
                level: Level::Info,
            });
            r.id = id.into();
            r.created_ms = t;
            if !pending {
                r.state = RequestState::Answered;
            }
            rs.push(r);
        }
        sort_for_display(&mut rs);
        let ids: Vec<_> = rs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["b", "d", "c", "a"]);
    }
}
