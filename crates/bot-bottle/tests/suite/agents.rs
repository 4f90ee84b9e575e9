//! Real agents in real bottles on the Docker engine, driven through the CLI binary:
//!
//! * `claude -p` against a fake Anthropic API (HTTPS with a test CA, on the bottle's egress
//!   network under the alias `api.anthropic.com`): the reply comes back through the sidecar,
//!   the API sees the REAL token (injected by the proxy), the agent only ever holds the
//!   placeholder;
//! * `claude --version` and `codex --version` run inside a bottle.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::common::{bot, labelled, text};

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

/// Removes the bottle and the fake API even when the test fails.
struct Cleanup {
    home: PathBuf,
    slug: Option<String>,
    fake: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(slug) = &self.slug {
            let _ = bot(&self.home).args(["rm", slug]).output();
        }
        if let Some(fake) = &self.fake {
            let _ = docker(&["rm", "-f", fake]);
        }
    }
}

const FAKE_IMAGE: &str = "bot-bottle-test/fake-anthropic:1";

const FAKE_DOCKERFILE: &str = r#"FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
COPY server.py /srv/server.py
CMD ["python3", "-u", "/srv/server.py"]
"#;

/// The fake Anthropic API: HTTPS on 443 with the cert in /tls; logs method, path and the
/// credential headers of every request; a canned SSE or JSON message for `POST /v1/messages`.
const FAKE_SERVER: &str = r#"
import http.server, json, ssl, sys

REPLY = "FAKE-REPLY-42"

def read_body(h):
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = b""
        while True:
            size = int(h.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                h.rfile.readline()
                return out
            out += h.rfile.read(size)
            h.rfile.readline()
    n = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(n) if n else b""

def sse(model):
    msg = {"id": "msg_fake01", "type": "message", "role": "assistant", "model": model,
           "content": [], "stop_reason": None, "stop_sequence": None,
           "usage": {"input_tokens": 12, "output_tokens": 1}}
    events = [
        ("message_start", {"type": "message_start", "message": msg}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": REPLY}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 5}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return "".join("event: %s\ndata: %s\n\n" % (e, json.dumps(d)) for e, d in events).encode()

def message(model):
    return json.dumps({"id": "msg_fake02", "type": "message", "role": "assistant",
                       "model": model, "content": [{"type": "text", "text": REPLY}],
                       "stop_reason": "end_turn", "stop_sequence": None,
                       "usage": {"input_tokens": 12, "output_tokens": 5}}).encode()

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def handle_any(self):
        body = read_body(self)
        sys.stdout.write("REQUEST %s %s AUTH=%s XAPIKEY=%s\n" % (
            self.command, self.path, self.headers.get("Authorization"),
            self.headers.get("x-api-key")))
        sys.stdout.flush()
        path = self.path.split("?")[0]
        ctype = "application/json"
        if self.command == "POST" and path == "/v1/messages":
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                req = {}
            model = req.get("model") or "claude-fake"
            if req.get("stream"):
                out, ctype = sse(model), "text/event-stream"
            else:
                out = message(model)
        elif path == "/v1/messages/count_tokens":
            out = b'{"input_tokens": 12}'
        else:
            out = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any
    def log_message(self, *a):
        pass

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/tls/cert.pem", "/tls/key.pem")
s = http.server.ThreadingHTTPServer(("0.0.0.0", 443), H)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"#;

fn ensure_fake_image() {
    if docker(&["image", "inspect", FAKE_IMAGE]).status.success() {
        return;
    }
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), FAKE_DOCKERFILE).unwrap();
    std::fs::write(ctx.path().join("server.py"), FAKE_SERVER).unwrap();
    let o = Command::new("docker")
        .args(["build", "-q", "-t", FAKE_IMAGE])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "building the fake API image: {}",
        text(&o)
    );
}

/// A test CA and a leaf for `api.anthropic.com`, made with the openssl CLI into `dir`:
/// `ca.pem`, `cert.pem`, `key.pem`.
fn make_tls(dir: &Path) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:api.anthropic.com\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "3",
        "-subj",
        "/CN=fake-anthropic-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=api.anthropic.com",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "3",
        "-extfile",
        "leaf.ext",
    ]);
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn claude_print_mode_talks_to_a_fake_api_with_the_real_token_injected() {
    ensure_fake_image();
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    make_tls(work.path());
    let token = format!("sk-ant-oat01-{}", random_hex(24));
    let manifest = work.path().join("bottle.yaml");
    std::fs::write(
        &manifest,
        "version: 1\nname: fakeclaude\nagent:\n  provider: claude\n  auth_token: FAKE_ANTHROPIC_TOKEN\n  \
         command: [claude, -p, \"say hello\"]\negress:\n  - host: api.anthropic.com\n    allow_private: true\n",
    )
    .unwrap();
    let mut guard = Cleanup {
        home: home.path().to_path_buf(),
        slug: None,
        fake: None,
    };

    // The fake API container (its own name; joined to the bottle's egress network below).
    let fake = format!("bb-fake-anthropic-{}", random_hex(4));
    let o = docker(&[
        "create",
        "--name",
        &fake,
        "--label",
        "bot-bottle-test=fake-anthropic",
        FAKE_IMAGE,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    guard.fake = Some(fake.clone());
    // `docker cp <folder> <container>:/tls` creates /tls holding the folder's files.
    let tls = work.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(work.path().join(f), tls.join(f)).unwrap();
    }
    let o = docker(&["cp", tls.to_str().unwrap(), &format!("{fake}:/tls")]);
    assert!(o.status.success(), "{}", text(&o));
    let o = docker(&["start", &fake]);
    assert!(o.status.success(), "{}", text(&o));

    // Start the bottle detached.
    let plan = bot(home.path())
        .args(["plan"])
        .arg(&manifest)
        .env("FAKE_ANTHROPIC_TOKEN", &token)
        .output()
        .unwrap();
    let plan_text = text(&plan);
    assert!(
        !plan_text.contains(&token),
        "plan shows the token: {plan_text}"
    );
    let start = bot(home.path())
        .args(["start", "--detach"])
        .arg(&manifest)
        .env("FAKE_ANTHROPIC_TOKEN", &token)
        .env("BOT_BOTTLE_EXTRA_CA_FILE", work.path().join("ca.pem"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        start.status.success(),
        "start: {}\nplan: {plan_text}",
        text(&start)
    );
    let slug = String::from_utf8_lossy(&start.stdout)
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(!slug.is_empty(), "no slug printed: {}", text(&start));
    guard.slug = Some(slug.clone());
    assert!(
        !text(&start).contains(&token),
        "start output shows the token"
    );

    let net = format!("bot-bottle-{slug}-egress");
    let o = docker(&[
        "network",
        "connect",
        "--alias",
        "api.anthropic.com",
        &net,
        &fake,
    ]);
    assert!(o.status.success(), "{}", text(&o));

    let attach = bot(home.path())
        .args(["attach", &slug])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let fake_log = text(&docker(&["logs", &fake]));
    assert!(
        String::from_utf8_lossy(&attach.stdout).contains("FAKE-REPLY-42"),
        "attach: {}\nfake API log: {fake_log}\nplan: {plan_text}",
        text(&attach)
    );
    assert!(
        fake_log.contains(&format!("AUTH=Bearer {token}")),
        "the API never saw the real token: {fake_log}"
    );
    assert!(
        !fake_log.contains("egress-placeholder"),
        "the placeholder reached the API: {fake_log}"
    );

    // The agent container holds the placeholder, never the token.
    let ps = docker(&[
        "ps",
        "--filter",
        &format!("label=bot-bottle.slug={slug}"),
        "--format",
        "{{.Names}}",
    ]);
    let names = String::from_utf8_lossy(&ps.stdout).to_string();
    let mut saw_placeholder = false;
    for name in names.lines() {
        let env = docker(&["exec", name, "env"]);
        let env = String::from_utf8_lossy(&env.stdout).to_string();
        if name.contains("sidecar") {
            continue;
        }
        assert!(!env.contains(&token), "{name}'s env holds the token");
        saw_placeholder |= env
            .lines()
            .any(|l| l == "CLAUDE_CODE_OAUTH_TOKEN=egress-placeholder");
    }
    assert!(
        saw_placeholder,
        "no agent container with the placeholder among {names}"
    );

    let rm = bot(home.path()).args(["rm", &slug]).output().unwrap();
    assert!(rm.status.success(), "rm: {}", text(&rm));
    guard.slug = None;
    let _ = docker(&["rm", "-f", &fake]);
    guard.fake = None;
    assert!(
        labelled(&slug).is_empty(),
        "left behind: {:?}",
        labelled(&slug)
    );
}

fn version_in_bottle(provider: &str, command: &str) -> String {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join("bottle.yaml");
    std::fs::write(
        &manifest,
        format!(
            "version: 1\nname: {provider}ver\nagent:\n  provider: {provider}\n  command: [{command}, --version]\n"
        ),
    )
    .unwrap();
    let out = bot(home.path())
        .arg("start")
        .arg(&manifest)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{provider}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn claude_and_codex_print_their_versions_inside_a_bottle() {
    let claude = version_in_bottle("claude", "claude");
    assert!(
        claude.contains("Claude Code") && claude.chars().any(|c| c.is_ascii_digit()),
        "{claude}"
    );
    let codex = version_in_bottle("codex", "codex");
    assert!(
        codex.contains("codex") && codex.chars().any(|c| c.is_ascii_digit()),
        "{codex}"
    );
}
