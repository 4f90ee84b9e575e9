//! The agent-facing MCP server: four tools over rmcp's streamable HTTP transport.
//!
//! Tool descriptions are written for the model that reads them. Waiting tools return a normal
//! tool result in every outcome the agent should act on (answered, denied, no answer in time);
//! only malformed calls (unknown tool, wrong argument types, invalid values) are MCP errors.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ErrorData, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::store::WaitOutcome;
use super::Core;
use crate::error::Error;
use crate::types::{Decision, Level, Request, RequestKind, MAX_CHOICES, MAX_TEXT_BYTES};

const INSTRUCTIONS: &str = "This server is your line to the human operator who supervises this \
sandbox. Use ask_operator when you need a decision or information only a human can give, \
request_approval before an action that is destructive, irreversible or outside your task, \
request_egress when a network host you need is refused by the egress proxy, and notify to report \
progress or problems without waiting. The operator may be away: waiting tools return after a \
time limit with a clear 'no answer' result; the request stays open and calling the same tool \
again with the same arguments resumes waiting on it.";

/// Arguments of `ask_operator`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct AskArgs {
    /// The question for the operator, self-contained: say what you are doing and why you need
    /// the answer.
    question: String,
    /// Optional short answers to pick from; the operator may still answer in free text.
    #[serde(default)]
    choices: Option<Vec<String>>,
}

/// Arguments of `request_approval`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ApprovalArgs {
    /// The action you want to perform, in one line (e.g. "force-push branch bot/fix to origin").
    action: String,
    /// Why, and what exactly will happen: commands, files, hosts, consequences.
    details: String,
}

/// Arguments of `request_egress`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct EgressArgs {
    /// The host name the egress proxy refused, e.g. "pypi.org" (no scheme, no path, no wildcard).
    host: String,
    /// The TCP port; 443 when omitted.
    #[serde(default)]
    port: Option<u16>,
    /// Why you need this host for your task.
    reason: String,
}

/// Arguments of `notify`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct NotifyArgs {
    /// What the operator should know.
    message: String,
    /// How important it is: info (default), warning or error.
    #[serde(default)]
    level: Option<Level>,
}

/// Why a tool call did not run: an invalid value (a tool execution error, `isError: true`, so
/// the model can correct itself, as the MCP spec asks for input validation) or a protocol-level
/// failure.
enum Fail {
    Invalid(String),
    Mcp(ErrorData),
}

impl Fail {
    fn into_result(self) -> Result<CallToolResult, ErrorData> {
        match self {
            Fail::Invalid(message) => Ok(CallToolResult::error(vec![ContentBlock::text(message)])),
            Fail::Mcp(e) => Err(e),
        }
    }
}

impl From<ErrorData> for Fail {
    fn from(e: ErrorData) -> Self {
        Fail::Mcp(e)
    }
}

/// The MCP service; one per session, all sharing the bottle's [`Core`].
#[derive(Clone)]
pub(crate) struct SuperviseMcp {
    core: Arc<Core>,
    tool_router: ToolRouter<Self>,
}

impl SuperviseMcp {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self {
            core,
            tool_router: Self::tool_router(),
        }
    }

    /// Records the request (or resumes the identical open one) and waits for the operator.
    async fn submit_and_wait(&self, tool: &str, kind: RequestKind) -> Result<Waited, ErrorData> {
        let (request, _reused) = self.core.store.submit(kind).map_err(internal)?;
        if request.answer.is_some() {
            return self.delivered(request);
        }
        let timeout = self.core.timeout;
        let _waiting = super::WaitingGuard::new(&self.core.waiting);
        match self
            .core
            .store
            .wait_answer(&request.id, timeout, &self.core.cancel)
            .await
        {
            WaitOutcome::Answered(answered) => self.delivered(answered),
            WaitOutcome::TimedOut => {
                let secs = timeout.as_secs();
                // Losing this line must not turn a timeout into an error for the agent.
                let _ = self.core.store.audit(
                    "timeout",
                    json!({ "id": request.id, "tool": tool, "timeout_secs": secs }),
                );
                Ok(Waited::NoAnswer(no_answer(
                    &request,
                    tool,
                    &format!("No answer from the operator within {secs} s."),
                    "timeout",
                )))
            }
            WaitOutcome::Cancelled | WaitOutcome::Gone => Ok(Waited::NoAnswer(no_answer(
                &request,
                tool,
                "The supervise service stopped before the operator answered.",
                "unavailable",
            ))),
        }
    }

    fn delivered(&self, request: Request) -> Result<Waited, ErrorData> {
        self.core
            .store
            .mark_delivered(&request.id)
            .map_err(internal)?;
        Ok(Waited::Answered(request))
    }
}

enum Waited {
    Answered(Request),
    NoAnswer(CallToolResult),
}

#[tool_router]
impl SuperviseMcp {
    #[tool(
        description = "Ask the human operator a question and wait for the answer. Use it when you \
need a decision, a preference or information that only a human can give, instead of guessing. \
Make the question self-contained. Optionally offer short choices. Returns the operator's answer \
text (and a note), or that the operator declined, or that no answer came within the time limit \
(then the question stays open: call again with the same arguments to keep waiting)."
    )]
    async fn ask_operator(
        &self,
        Parameters(args): Parameters<AskArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.ask_operator_inner(args)
            .await
            .or_else(Fail::into_result)
    }

    #[tool(
        description = "Ask the human operator to approve an action before you take it, and wait \
for the decision. Use it before anything destructive, irreversible, costly or outside the task \
you were given (deleting data, force-pushing, publishing, spending money). Describe the action in \
one line and the details (exact commands, files, hosts, consequences) separately. Returns \
APPROVED or DENIED with the operator's note; if DENIED, do not take the action. If no answer \
comes within the time limit, the request stays open: do not take the action; call again with the \
same arguments to keep waiting."
    )]
    async fn request_approval(
        &self,
        Parameters(args): Parameters<ApprovalArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.request_approval_inner(args)
            .await
            .or_else(Fail::into_result)
    }

    #[tool(
        description = "Ask the human operator to open network access to one host that the egress \
proxy refused, and wait for the decision. Give the bare host name (e.g. \"pypi.org\"), the port \
if not 443, and why your task needs it. When APPROVED, the host:port becomes reachable at once \
through the proxy (TLS passed through untouched, no credential added): retry your request. When \
DENIED, the host stays blocked; find another way. If no answer comes within the time limit, the \
request stays open: call again with the same arguments to keep waiting."
    )]
    async fn request_egress(
        &self,
        Parameters(args): Parameters<EgressArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.request_egress_inner(args)
            .await
            .or_else(Fail::into_result)
    }

    #[tool(
        description = "Send the human operator a message without waiting for a reply: progress, \
a finished milestone, or a problem they should know about. Level is info (default), warning or \
error. Returns at once. Use ask_operator instead when you need an answer."
    )]
    async fn notify(
        &self,
        Parameters(args): Parameters<NotifyArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.notify_inner(args).await.or_else(Fail::into_result)
    }
}

impl SuperviseMcp {
    async fn ask_operator_inner(&self, args: AskArgs) -> Result<CallToolResult, Fail> {
        let question = required_text("question", &args.question)?;
        let choices = args.choices.unwrap_or_default();
        if choices.len() > MAX_CHOICES {
            return Err(Fail::Invalid(format!(
                "choices: at most {MAX_CHOICES} are allowed"
            )));
        }
        let mut clean = Vec::with_capacity(choices.len());
        for choice in &choices {
            clean.push(required_text("choices[]", choice)?);
        }
        let kind = RequestKind::Question {
            question,
            choices: clean,
        };
        let request = match self.submit_and_wait("ask_operator", kind).await? {
            Waited::Answered(r) => r,
            Waited::NoAnswer(result) => return Ok(result),
        };
        let Some(answer) = request.answer.as_ref() else {
            return Err(ErrorData::internal_error("answer missing", None).into());
        };
        let note = note_suffix(answer.note.as_deref());
        Ok(match answer.decision {
            Decision::Answer => {
                let text = answer.text.clone().unwrap_or_default();
                result(
                    format!("The operator answered: {text}{note}"),
                    json!({ "status": "answered", "request_id": request.id, "answer": text,
                            "note": answer.note }),
                )
            }
            _ => result(
                format!("The operator declined to answer.{note}"),
                json!({ "status": "declined", "request_id": request.id, "note": answer.note }),
            ),
        })
    }

    async fn request_approval_inner(&self, args: ApprovalArgs) -> Result<CallToolResult, Fail> {
        let action = required_text("action", &args.action)?;
        let details = bounded_text("details", &args.details)?;
        let kind = RequestKind::Approval {
            action: action.clone(),
            details,
        };
        let request = match self.submit_and_wait("request_approval", kind).await? {
            Waited::Answered(r) => r,
            Waited::NoAnswer(result) => return Ok(result),
        };
        Ok(decision_result(&request, |approved| {
            if approved {
                format!("APPROVED by the operator: {action}. You may proceed.")
            } else {
                format!("DENIED by the operator: {action}. Do not take this action.")
            }
        }))
    }

    async fn request_egress_inner(&self, args: EgressArgs) -> Result<CallToolResult, Fail> {
        let host = normalise_host(&args.host).ok_or_else(|| {
            Fail::Invalid(
                "host: give a bare DNS name or IPv4 address such as \"pypi.org\" \
                 (no scheme, port, path or wildcard)"
                    .to_owned(),
            )
        })?;
        let port = args.port.unwrap_or(443);
        if port == 0 {
            return Err(Fail::Invalid(
                "port: must be between 1 and 65535".to_owned(),
            ));
        }
        let reason = required_text("reason", &args.reason)?;
        let kind = RequestKind::Egress {
            host: host.clone(),
            port,
            reason,
        };
        let request = match self.submit_and_wait("request_egress", kind).await? {
            Waited::Answered(r) => r,
            Waited::NoAnswer(result) => return Ok(result),
        };
        Ok(decision_result(&request, |approved| {
            if approved {
                format!(
                    "APPROVED by the operator: {host}:{port} is now allowed through the egress \
                     proxy (TLS passthrough, no credential added). Retry your request."
                )
            } else {
                format!("DENIED by the operator: {host}:{port} stays blocked.")
            }
        }))
    }

    async fn notify_inner(&self, args: NotifyArgs) -> Result<CallToolResult, Fail> {
        let message = required_text("message", &args.message)?;
        let level = args.level.unwrap_or_default();
        let request = self
            .core
            .store
            .notice(RequestKind::Notice { message, level })
            .map_err(internal)?;
        Ok(result(
            "Delivered to the operator.".to_owned(),
            json!({ "status": "delivered", "request_id": request.id }),
        ))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SuperviseMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "bot-bottle-supervise",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }
}

fn result(text: String, structured: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

fn decision_result(request: &Request, text: impl Fn(bool) -> String) -> CallToolResult {
    let note = request.answer.as_ref().and_then(|a| a.note.clone());
    let approved = request
        .answer
        .as_ref()
        .is_some_and(|a| a.decision == Decision::Approve);
    result(
        format!("{}{}", text(approved), note_suffix(note.as_deref())),
        json!({
            "status": if approved { "approved" } else { "denied" },
            "request_id": request.id,
            "note": note,
        }),
    )
}

fn no_answer(request: &Request, tool: &str, why: &str, status: &str) -> CallToolResult {
    result(
        format!(
            "{why} Request {id} stays open for the operator. Call {tool} again with the same \
             arguments to keep waiting (an answer given meanwhile is returned at once), or \
             continue without it.",
            id = request.id
        ),
        json!({ "status": status, "request_id": request.id }),
    )
}

fn note_suffix(note: Option<&str>) -> String {
    match note.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => format!("\nOperator's note: {n}"),
        None => String::new(),
    }
}

fn internal(e: Error) -> ErrorData {
    match e {
        Error::TooManyPending { .. } => {
            ErrorData::invalid_request(format!("{e}; wait for answers before asking more"), None)
        }
        // Store and audit failures name local paths only; they hold no secret.
        other => ErrorData::internal_error(format!("supervise: {other}"), None),
    }
}

fn bounded_text(field: &str, value: &str) -> Result<String, Fail> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(Fail::Invalid(format!(
            "{field}: longer than {MAX_TEXT_BYTES} bytes"
        )));
    }
    Ok(value.trim().to_owned())
}

fn required_text(field: &str, value: &str) -> Result<String, Fail> {
    let value = bounded_text(field, value)?;
    if value.is_empty() {
        return Err(Fail::Invalid(format!("{field}: must not be empty")));
    }
    Ok(value)
}

/// Lower-cases and checks a host: DNS labels (letters, digits, `-`) or an IPv4 address.
pub(crate) fn normalise_host(host: &str) -> Option<String> {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    labels_ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_checked_and_normalised() {
        assert_eq!(normalise_host(" PyPI.org. ").as_deref(), Some("pypi.org"));
        assert_eq!(normalise_host("10.0.0.1").as_deref(), Some("10.0.0.1"));
        for bad in [
            "",
            "*.npmjs.org",
            "https://x.org",
            "x.org:443",
            "x.org/path",
            "-x.org",
            "a..b",
            "a b",
        ] {
            assert_eq!(normalise_host(bad), None, "{bad}");
        }
    }
}
