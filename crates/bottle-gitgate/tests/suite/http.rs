//! The gate's HTTP edge with hand-written requests: routing, the dumb protocol, malformed and
//! truncated bodies, stalled clients, gzip.

use std::io::Write;
use std::time::Duration;

use bottle_config::PushRules;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::harness::*;

/// Sends raw bytes and reads the whole answer (the gate closes after `Connection: close`).
/// The socket stays open for writing, so a request whose body is short looks stalled.
async fn raw(gate: &Gate, request: &[u8]) -> (u16, String) {
    let addr = gate.handle.local_addr();
    let fut = async {
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        sock.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = sock.read_to_end(&mut out).await;
        out
    };
    let out = tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("gate did not answer");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn post(path: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: gate\r\nConnection: close\r\nContent-Type: application/x-git-upload-pack-request\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

async fn gate() -> (Sshd, Gate) {
    let sshd = Sshd::start();
    sshd.new_repo("app");
    let gate = start_gate_with(
        vec![entry(
            &sshd,
            "app",
            PushRules {
                allow: vec!["refs/heads/**".into()],
                ..PushRules::default()
            },
        )],
        |b| b.body_idle_timeout(Duration::from_secs(1)),
    )
    .await;
    (sshd, gate)
}

#[tokio::test]
async fn unknown_repo_is_404_and_dumb_protocol_is_refused() {
    let (_sshd, gate) = gate().await;
    let (status, body) = raw(&gate, b"GET /nope.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("no repository \"nope\" is configured for this bottle (configured: app)"),
        "{body}"
    );
    let (status, body) = raw(
        &gate,
        b"GET /app.git/info/refs HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        body.contains("dumb HTTP protocol is not supported"),
        "{body}"
    );
    let (status, _) = raw(
        &gate,
        b"GET /app.git/HEAD HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = raw(
        &gate,
        b"GET /app/git-upload-pack HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    // Without `.git` works too.
    let (status, body) = raw(&gate, b"GET /app/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("# service=git-upload-pack"), "{body}");
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn malformed_pkt_lines_get_a_clear_400() {
    let (_sshd, gate) = gate().await;
    let (status, body) = raw(&gate, &post("/app.git/git-upload-pack", b"zzzzwant", "")).await;
    assert_eq!(status, 400);
    assert!(body.contains("malformed pkt-line at byte 0"), "{body}");
    let (status, body) = raw(&gate, &post("/app.git/git-receive-pack", b"0003", "")).await;
    assert_eq!(status, 400);
    assert!(body.contains("length 3 is invalid"), "{body}");
    let (status, body) = raw(
        &gate,
        &post("/app.git/git-receive-pack", b"000ehello\n0000", ""),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("bad push command"), "{body}");
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn truncated_requests_get_a_clear_400() {
    let (_sshd, gate) = gate().await;
    // A pkt-line announcing more bytes than the body holds.
    let (status, body) = raw(
        &gate,
        &post("/app.git/git-upload-pack", b"0032want 1111", ""),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("truncated request"), "{body}");
    // A command list without its flush.
    let cmd = format!(
        "{} {} refs/heads/x\0report-status",
        "1".repeat(40),
        "2".repeat(40)
    );
    let mut pkt = format!("{:04x}", cmd.len() + 4).into_bytes();
    pkt.extend_from_slice(cmd.as_bytes());
    let (status, body) = raw(&gate, &post("/app.git/git-receive-pack", &pkt, "")).await;
    assert_eq!(status, 400);
    assert!(body.contains("flush-pkt"), "{body}");
    // Content-Length promises more than arrives, the client goes quiet: the idle timeout
    // answers instead of a hang.
    let mut req = post("/app.git/git-receive-pack", &pkt, "");
    let declared = format!("Content-Length: {}", pkt.len());
    let text = String::from_utf8_lossy(&req)
        .replace(&declared, &format!("Content-Length: {}", pkt.len() + 500));
    req = text.into_bytes();
    let (status, body) = raw(&gate, &req).await;
    assert_eq!(status, 400);
    assert!(body.contains("stalled"), "{body}");
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn gzip_upload_pack_request_with_protocol_v2() {
    let (_sshd, gate) = gate().await;
    // Refresh the mirror first (as a real client's info/refs would).
    let (status, _) = raw(&gate, b"GET /app.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: g\r\nGit-Protocol: version=2\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 200);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"0014command=ls-refs\n0000").unwrap();
    let body = gz.finish().unwrap();
    let (status, text) = raw(
        &gate,
        &post(
            "/app.git/git-upload-pack",
            &body,
            "Content-Encoding: gzip\r\nGit-Protocol: version=2\r\n",
        ),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("refs/heads/main"), "{text}");
    // A body that is not gzip at all.
    let (status, text) = raw(
        &gate,
        &post(
            "/app.git/git-upload-pack",
            b"0000",
            "Content-Encoding: gzip\r\n",
        ),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let (status, _) = raw(
        &gate,
        &post(
            "/app.git/git-upload-pack",
            b"0000",
            "Content-Encoding: br\r\n",
        ),
    )
    .await;
    assert_eq!(status, 415);
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn truncated_pack_after_valid_commands_gets_an_answer_not_a_hang() {
    let (sshd, gate) = gate().await;
    let main = rev(&sshd.repo_path("app"), "refs/heads/main").unwrap();
    let cmd = format!("{main} {} refs/heads/bot/x\0report-status", "3".repeat(40));
    let mut body = format!("{:04x}", cmd.len() + 4).into_bytes();
    body.extend_from_slice(cmd.as_bytes());
    body.extend_from_slice(b"0000PACK\0\0\0\x02\0\0\0\x05garbage");
    let (status, text) = raw(&gate, &post("/app.git/git-receive-pack", &body, "")).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("unpack") && text.contains("ng refs/heads/bot/x"),
        "{text}"
    );
    assert_eq!(rev(&sshd.repo_path("app"), "refs/heads/bot/x"), None);
    gate.handle.shutdown().await;
}
