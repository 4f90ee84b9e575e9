//! The HTTP side: routes, request bodies, and the git children that answer them.
//!
//! Routes (the `.git` suffix is optional): `GET /<name>.git/info/refs?service=…`,
//! `POST /<name>.git/git-upload-pack`, `POST /<name>.git/git-receive-pack`. Anything else
//! under a configured repo is the dumb protocol and is refused; an unknown repo is 404.
//! Request bodies are read with an idle timeout (a stalled client gets 400, never a hang) and
//! may be gzip-encoded. Pack data is streamed in both directions, never held whole.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bottle_config::PushRules;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::audit::{self, AuditLog, Record, RefMove};
use crate::gate::Limits;
use crate::mirror::Mirror;
use crate::pktline::{self, PktError, PushCommands};
use crate::rules::{self, Refusal};

type Body = BoxBody<Bytes, std::io::Error>;
type BodyReader = Pin<Box<dyn AsyncRead + Send>>;

/// One served repo.
#[derive(Debug)]
pub struct Repo {
    pub mirror: Mirror,
    pub rules: PushRules,
}

/// State shared by all connections.
pub struct Shared {
    repos: HashMap<String, Arc<Repo>>,
    audit: AuditLog,
    bottle: Option<String>,
    results: PathBuf,
    counter: AtomicU64,
    limits: Limits,
}

impl Shared {
    pub fn new(
        repos: HashMap<String, Arc<Repo>>,
        audit: AuditLog,
        bottle: Option<String>,
        results: PathBuf,
        limits: Limits,
    ) -> Self {
        Self {
            repos,
            audit,
            bottle,
            results,
            counter: AtomicU64::new(0),
            limits,
        }
    }
}

/// Accepts connections until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((sock, _)) = accepted else { continue };
                let shared = shared.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(shared, req).await) }
                    });
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.timer(TokioTimer::new()).header_read_timeout(std::time::Duration::from_secs(30));
                    if let Err(e) = builder.serve_connection(TokioIo::new(sock), svc).await {
                        tracing::debug!(error = %e, "git gate connection ended with an error");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
    for repo in shared.repos.values() {
        repo.mirror.env.close_connection().await;
    }
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut msg = msg.into();
    if !msg.ends_with('\n') {
        msg.push('\n');
    }
    let mut resp = Response::new(Full::new(Bytes::from(msg)).map_err(|e| match e {}).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn git_response(content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, max-age=0, must-revalidate"),
    );
    resp
}

enum Route {
    InfoRefs,
    UploadPack,
    ReceivePack,
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let trimmed = path.trim_start_matches('/');
    let (name, route) = if let Some(n) = trimmed.strip_suffix("/info/refs") {
        (n, Some(Route::InfoRefs))
    } else if let Some(n) = trimmed.strip_suffix("/git-upload-pack") {
        (n, Some(Route::UploadPack))
    } else if let Some(n) = trimmed.strip_suffix("/git-receive-pack") {
        (n, Some(Route::ReceivePack))
    } else {
        (trimmed.split('/').next().unwrap_or(""), None)
    };
    let name = name.strip_suffix(".git").unwrap_or(name);
    let Some(repo) = shared.repos.get(name).cloned() else {
        let mut known: Vec<&str> = shared.repos.keys().map(String::as_str).collect();
        known.sort_unstable();
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "bottle-gitgate: no repository {:?} is configured for this bottle (configured: {})",
                name.escape_debug().to_string(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        );
    };
    let dumb = || {
        text(StatusCode::FORBIDDEN, "bottle-gitgate: the dumb HTTP protocol is not supported; use git's smart HTTP (any git ≥ 1.6.6)")
    };
    let protocol = git_protocol(&req);
    match (route, req.method()) {
        (Some(Route::InfoRefs), &Method::GET) => {
            let service = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("service="));
            match service {
                Some("git-upload-pack") => info_refs(&shared, &repo, "upload-pack", protocol).await,
                Some("git-receive-pack") => {
                    info_refs(&shared, &repo, "receive-pack", protocol).await
                }
                Some(other) => text(
                    StatusCode::FORBIDDEN,
                    format!(
                        "bottle-gitgate: unsupported service {:?}",
                        other.escape_debug().to_string()
                    ),
                ),
                None => dumb(),
            }
        }
        (Some(Route::UploadPack), &Method::POST) => {
            upload_pack(&shared, &repo, req, protocol).await
        }
        (Some(Route::ReceivePack), &Method::POST) => {
            receive_pack(&shared, &repo, req, protocol).await
        }
        (Some(_), _) => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "bottle-gitgate: wrong method for this git endpoint",
        ),
        (None, _) => dumb(),
    }
}

/// The agent's `Git-Protocol` header, if it is a plausible value (`version=2`, `:`-separated).
fn git_protocol(req: &Request<Incoming>) -> Option<String> {
    let v = req.headers().get("git-protocol")?.to_str().ok()?;
    let ok = v.len() <= 256
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=:._-".contains(&b));
    ok.then(|| v.to_owned())
}

fn protocol_version(p: &Option<String>) -> u8 {
    match p {
        Some(p) if p.split(':').any(|kv| kv == "version=2") => 2,
        Some(p) if p.split(':').any(|kv| kv == "version=1") => 1,
        _ => 0,
    }
}

async fn info_refs(
    shared: &Shared,
    repo: &Repo,
    service: &'static str,
    protocol: Option<String>,
) -> Response<Body> {
    let version = protocol_version(&protocol);
    let refreshed = repo.mirror.refresh().await;
    if service == "upload-pack" {
        let (upstream, message, moved) = match &refreshed {
            Ok(r) => (
                "ok",
                r.coalesced
                    .then(|| "refresh shared with a concurrent request".to_owned()),
                r.moved.clone(),
            ),
            Err(e) => ("error", Some(e.0.clone()), Vec::new()),
        };
        shared.audit.write(&Record {
            time: audit::now(),
            bottle: shared.bottle.clone(),
            repo: repo.mirror.name.clone(),
            op: "fetch",
            protocol: version,
            refs: moved,
            decision: "allow",
            rule: None,
            upstream,
            message,
        });
    }
    if let Err(e) = refreshed {
        return text(
            StatusCode::BAD_GATEWAY,
            format!(
                "bottle-gitgate: could not update {:?} from its upstream: {}",
                repo.mirror.name, e.0
            ),
        );
    }
    let mut cmd = repo.mirror.git();
    cmd.args([service, "--stateless-rpc", "--advertise-refs"])
        .arg(&repo.mirror.dir)
        .stdin(Stdio::null());
    if let Some(p) = &protocol {
        cmd.env("GIT_PROTOCOL", p);
    }
    let out = match cmd.output().await {
        Ok(o) if o.status.success() => o.stdout,
        Ok(o) => {
            tracing::warn!(repo = %repo.mirror.name, stderr = %repo.mirror.env.scrub(&String::from_utf8_lossy(&o.stderr)), "advertise-refs failed");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("bottle-gitgate: git {service} failed on the gate"),
            );
        }
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("bottle-gitgate: cannot run git {service}: {e}"),
            )
        }
    };
    let mut body = Vec::with_capacity(out.len() + 64);
    // As git-http-backend: v2 starts with its own capability advertisement, v0/v1 with the
    // smart-HTTP service line.
    if version != 2 || service == "receive-pack" {
        body.extend(pktline::encode(
            format!("# service=git-{service}\n").as_bytes(),
        ));
        body.extend_from_slice(b"0000");
    }
    body.extend(out);
    let ct = if service == "upload-pack" {
        "application/x-git-upload-pack-advertisement"
    } else {
        "application/x-git-receive-pack-advertisement"
    };
    git_response(
        ct,
        Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed(),
    )
}

/// Why a request body could not be read; answered 400.
struct BodyError(String);

/// The request body as a reader, gunzipped when needed; `Err` is an unsupported encoding.
fn body_reader(req: Request<Incoming>) -> Result<BodyReader, UnsupportedEncoding> {
    let encoding = req
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap_or("?").to_ascii_lowercase());
    let stream = BodyStream::new(req.into_body())
        .try_filter_map(|frame| futures_util::future::ready(Ok(frame.into_data().ok())))
        .map_err(std::io::Error::other);
    let reader = StreamReader::new(stream);
    match encoding.as_deref() {
        None | Some("identity") => Ok(Box::pin(reader)),
        Some("gzip") | Some("x-gzip") => Ok(Box::pin(
            async_compression::tokio::bufread::GzipDecoder::new(tokio::io::BufReader::new(reader)),
        )),
        Some(other) => Err(UnsupportedEncoding(other.to_owned())),
    }
}

/// A `Content-Encoding` the gate does not decode.
struct UnsupportedEncoding(String);

fn unsupported(e: UnsupportedEncoding) -> Response<Body> {
    text(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "bottle-gitgate: unsupported Content-Encoding {:?} (only gzip)",
            e.0
        ),
    )
}

/// Reads some bytes, bounded by the idle timeout.
async fn read_some(
    reader: &mut BodyReader,
    buf: &mut [u8],
    limits: &Limits,
) -> Result<usize, BodyError> {
    match tokio::time::timeout(limits.body_idle, reader.read(buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(BodyError(format!(
            "the request body could not be read ({e}); was it truncated or badly gzip-encoded?"
        ))),
        Err(_) => Err(BodyError(format!(
            "the request body stalled for {}s; truncated request?",
            limits.body_idle.as_secs_f32()
        ))),
    }
}

fn bad_request(msg: impl std::fmt::Display) -> Response<Body> {
    text(
        StatusCode::BAD_REQUEST,
        format!("bottle-gitgate: bad request: {msg}"),
    )
}

async fn upload_pack(
    shared: &Shared,
    repo: &Repo,
    req: Request<Incoming>,
    protocol: Option<String>,
) -> Response<Body> {
    let mut reader = match body_reader(req) {
        Ok(r) => r,
        Err(e) => return unsupported(e),
    };
    // Upload-pack requests (wants and haves) are small next to packs; buffering one lets the
    // gate refuse broken framing with a 400 before git sees it.
    let mut body = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match read_some(&mut reader, &mut chunk, &shared.limits).await {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) => return bad_request(e.0),
        }
        if body.len() > shared.limits.max_upload_request {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "bottle-gitgate: upload-pack request too large",
            );
        }
    }
    if body.is_empty() {
        return bad_request("empty upload-pack request");
    }
    if let Err(e) = pktline::validate_stream(&body) {
        return bad_request(e);
    }
    let mut cmd = repo.mirror.git();
    cmd.args(["upload-pack", "--stateless-rpc"])
        .arg(&repo.mirror.dir);
    if let Some(p) = &protocol {
        cmd.env("GIT_PROTOCOL", p);
    }
    spawn_streaming(
        cmd,
        repo,
        Box::pin(std::io::Cursor::new(body)),
        Vec::new(),
        shared.limits,
        "application/x-git-upload-pack-result",
        None,
    )
}

/// Runs `cmd` with `prefix` then `rest` on its stdin and its stdout as the response body.
/// `after` runs once the child has exited, with its scrubbed stderr.
fn spawn_streaming(
    mut cmd: tokio::process::Command,
    repo: &Repo,
    rest: BodyReader,
    prefix: Vec<u8>,
    limits: Limits,
    content_type: &'static str,
    after: Option<Box<dyn FnOnce(bool, String) + Send>>,
) -> Response<Body> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("bottle-gitgate: cannot run git: {e}"),
            )
        }
    };
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "bottle-gitgate: git child has no pipes",
        );
    };
    tokio::spawn(async move {
        let mut rest = rest;
        if stdin.write_all(&prefix).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match read_some(&mut rest, &mut buf, &limits).await {
                Ok(0) => break,
                Ok(n) => {
                    if stdin.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // Closing stdin early makes git fail with its own message to the client.
                    tracing::info!(error = %e.0, "request body failed while streaming to git");
                    return;
                }
            }
        }
        let _ = stdin.shutdown().await;
    });
    let env = repo.mirror.env.clone();
    let name = repo.mirror.name.clone();
    tokio::spawn(async move {
        let mut err = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut err).await;
        let status = child.wait().await;
        let ok = matches!(&status, Ok(s) if s.success());
        let msg = env.scrub(&String::from_utf8_lossy(&err));
        if !ok {
            tracing::info!(repo = %name, stderr = %msg, "git child failed");
        }
        if let Some(after) = after {
            after(ok, msg);
        }
    });
    let stream = ReaderStream::with_capacity(stdout, 64 * 1024).map_ok(Frame::data);
    git_response(content_type, BodyExt::boxed(StreamBody::new(stream)))
}

async fn receive_pack(
    shared: &Arc<Shared>,
    repo: &Arc<Repo>,
    req: Request<Incoming>,
    protocol: Option<String>,
) -> Response<Body> {
    let mut reader = match body_reader(req) {
        Ok(r) => r,
        Err(e) => return unsupported(e),
    };
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let commands = loop {
        match pktline::parse_push_commands(&buf, shared.limits.max_push_commands) {
            Ok(Some(c)) => break c,
            Ok(None) => {}
            Err(e) => return bad_request(e),
        }
        match read_some(&mut reader, &mut chunk, &shared.limits).await {
            Ok(0) => {
                return bad_request(match pktline::validate_stream(&buf) {
                    Err(e) => e,
                    Ok(()) => PktError::NoFlush,
                })
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return bad_request(e.0),
        }
    };
    let version = protocol_version(&protocol);
    let refs: Vec<RefMove> = commands
        .updates
        .iter()
        .map(|u| RefMove {
            name: u.name.clone(),
            old: u.old.clone(),
            new: u.new.clone(),
        })
        .collect();
    let refusals: Vec<(usize, Refusal)> = commands
        .updates
        .iter()
        .enumerate()
        .filter_map(|(i, u)| rules::check(&repo.rules, u).err().map(|r| (i, r)))
        .collect();
    if let Some((_, first)) = refusals.first() {
        shared.audit.write(&Record {
            time: audit::now(),
            bottle: shared.bottle.clone(),
            repo: repo.mirror.name.clone(),
            op: "push",
            protocol: version,
            refs,
            decision: "deny",
            rule: Some(first.rule.to_owned()),
            upstream: "skipped",
            message: Some(
                refusals
                    .iter()
                    .map(|(_, r)| r.reason.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        });
        // Read the pack the client is still sending so it reads our answer instead of a reset.
        while let Ok(n) = read_some(&mut reader, &mut chunk, &shared.limits).await {
            if n == 0 {
                break;
            }
        }
        return git_response(
            "application/x-git-receive-pack-result",
            Full::new(Bytes::from(refusal_report(&commands, &refusals)))
                .map_err(|e| match e {})
                .boxed(),
        );
    }

    let id = shared.counter.fetch_add(1, Ordering::Relaxed);
    let result_file = shared
        .results
        .join(format!("push-{}-{id}", std::process::id()));
    let _ = std::fs::remove_file(&result_file);
    let mut cmd = repo.mirror.git();
    cmd.args(["receive-pack", "--stateless-rpc"])
        .arg(&repo.mirror.dir);
    if let Some(p) = &protocol {
        cmd.env("GIT_PROTOCOL", p);
    }
    cmd.env("GATE_UPSTREAM_URL", &repo.mirror.upstream)
        .env(
            "GATE_ALLOW_FORCE",
            if repo.rules.allow_force { "1" } else { "0" },
        )
        .env("GATE_RESULT_FILE", &result_file);
    let shared2 = shared.clone();
    let repo2 = repo.clone();
    // The patterns that let these updates through, for the audit line.
    let mut patterns: Vec<&str> = commands
        .updates
        .iter()
        .filter_map(|u| rules::matching_pattern(&repo.rules, &u.name))
        .collect();
    patterns.dedup();
    let allowed_by = (!patterns.is_empty()).then(|| format!("allow {}", patterns.join(", ")));
    let after = Box::new(move |_ok: bool, stderr: String| {
        let raw = std::fs::read_to_string(&result_file).unwrap_or_default();
        let _ = std::fs::remove_file(&result_file);
        let mut out_file = result_file.clone().into_os_string();
        out_file.push(".out");
        let _ = std::fs::remove_file(out_file);
        let (head, detail) = raw.split_once('\n').unwrap_or((raw.as_str(), ""));
        let (decision, rule, upstream, message) = match head.trim() {
            "ok" => ("allow", allowed_by.clone(), "ok", None),
            "rejected" => (
                "allow",
                allowed_by.clone(),
                "rejected",
                Some(repo2.mirror.env.scrub(detail)),
            ),
            h if h.starts_with("denied ") => (
                "deny",
                Some(h["denied ".len()..].to_owned()),
                "skipped",
                Some(repo2.mirror.env.scrub(detail)),
            ),
            // The hook never ran: receive-pack failed first (bad pack, stale old id, ...).
            _ => (
                "allow",
                allowed_by.clone(),
                "skipped",
                Some(if stderr.is_empty() {
                    "receive-pack did not run the relay".to_owned()
                } else {
                    stderr
                }),
            ),
        };
        shared2.audit.write(&Record {
            time: audit::now(),
            bottle: shared2.bottle.clone(),
            repo: repo2.mirror.name.clone(),
            op: "push",
            protocol: version,
            refs,
            decision,
            rule,
            upstream,
            message,
        });
    });
    spawn_streaming(
        cmd,
        repo,
        reader,
        buf,
        shared.limits,
        "application/x-git-receive-pack-result",
        Some(after),
    )
}

/// A receive-pack answer refusing every update (a push is all or nothing), with the reasons
/// as `ng` lines and, when the client multiplexes, as `remote:` messages too.
fn refusal_report(commands: &PushCommands, refusals: &[(usize, Refusal)]) -> Vec<u8> {
    let mut report = pktline::encode(b"unpack ok\n");
    for (i, u) in commands.updates.iter().enumerate() {
        let reason = match refusals.iter().find(|(j, _)| *j == i) {
            Some((_, r)) => format!("refused by bottle-gitgate: {}", r.reason),
            None => "refused by bottle-gitgate: another ref in this push was refused".to_owned(),
        };
        report.extend(pktline::encode(
            format!("ng {} {}\n", u.name, reason.replace('\n', " ")).as_bytes(),
        ));
    }
    report.extend_from_slice(b"0000");
    if !commands.sideband() {
        return report;
    }
    let mut out = Vec::new();
    for (_, r) in refusals {
        let mut msg = vec![2u8];
        msg.extend_from_slice(format!("bottle-gitgate: push refused: {}\n", r.reason).as_bytes());
        out.extend(pktline::encode(&msg));
    }
    for part in report.chunks(pktline::MAX_PKT_LEN - 5) {
        let mut pkt = vec![1u8];
        pkt.extend_from_slice(part);
        out.extend(pktline::encode(&pkt));
    }
    out.extend_from_slice(b"0000");
    out
}
