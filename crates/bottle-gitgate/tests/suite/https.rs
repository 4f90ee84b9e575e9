//! A token-authenticated HTTP upstream (git http-backend as CGI behind an in-test server that
//! demands the token), and concurrent clones through one gate.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bottle_config::{GateRepo, PushRules, Secret, UpstreamCredential};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use super::harness::*;

const TOKEN: &str = "ghp_s3cr3t-token-value";

/// Serves the bare repos under `root` with `git http-backend`, answering 401 to any request
/// without `Authorization: Basic base64(x-access-token:TOKEN)`. Records every auth header seen.
async fn http_upstream(root: std::path::PathBuf) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let rec = seen.clone();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"))
    );
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (rec, root, expected) = (rec.clone(), root.clone(), expected.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (rec, root, expected) = (rec.clone(), root.clone(), expected.clone());
                    async move { Ok::<_, Infallible>(cgi(req, &root, &expected, &rec).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    (base, seen)
}

async fn cgi(
    req: Request<Incoming>,
    root: &std::path::Path,
    expected: &str,
    rec: &Mutex<Vec<Option<String>>>,
) -> Response<Full<Bytes>> {
    let auth = req
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    rec.lock().unwrap().push(auth.clone());
    if auth.as_deref() != Some(expected) {
        return Response::builder()
            .status(401)
            .header("WWW-Authenticate", "Basic realm=\"test\"")
            .body(Full::new(Bytes::from_static(b"token required\n")))
            .unwrap();
    }
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", req.uri().path())
        .env("QUERY_STRING", req.uri().query().unwrap_or(""))
        .env("REQUEST_METHOD", req.method().as_str())
        .env("REMOTE_USER", "bot")
        .env("REMOTE_ADDR", "127.0.0.1");
    for (h, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("git-protocol", "GIT_PROTOCOL"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
    ] {
        if let Some(v) = req.headers().get(h) {
            cmd.env(var, v.to_str().unwrap());
        }
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    cmd.env("CONTENT_LENGTH", body.len().to_string());
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    });
    let out = child.wait_with_output().await.unwrap().stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)))
        .unwrap();
    let head = String::from_utf8_lossy(&out[..split.0]).into_owned();
    let mut resp = Response::builder();
    for line in head.lines() {
        let (k, v) = line.split_once(':').unwrap();
        if k.eq_ignore_ascii_case("status") {
            resp = resp.status(v.trim()[..3].parse::<u16>().unwrap());
        } else {
            resp = resp.header(k.trim(), v.trim());
        }
    }
    resp.body(Full::new(Bytes::from(out[split.0 + split.1..].to_vec())))
        .unwrap()
}

#[tokio::test]
async fn token_upstream_gets_the_token_in_a_header_and_relays_clone_and_push() {
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("app.git");
    run(plain_git(root.path())
        .args(["init", "--bare", "-q", "-b", "main"])
        .arg(&bare));
    // Seed through a local clone (no network).
    let seed = tempfile::tempdir().unwrap();
    run(plain_git(seed.path()).args(["init", "-q", "-b", "main", "w"]));
    let w = seed.path().join("w");
    std::fs::write(w.join("README.md"), "hi\n").unwrap();
    run(plain_git(&w).args(["add", "."]));
    run(plain_git(&w).args(["commit", "-q", "-m", "seed"]));
    run(plain_git(&w).arg("push").arg("-q").arg(&bare).arg("main"));

    let (base, seen) = http_upstream(root.path().to_owned()).await;
    let repo = GateRepo {
        name: "app".into(),
        upstream: format!("{base}/app.git"),
        credential: UpstreamCredential::HttpsToken {
            token: Secret::new(TOKEN),
            username: None,
            extra_roots_pem: None,
        },
        push: PushRules {
            allow: vec!["refs/heads/bot/*".into()],
            ..PushRules::default()
        },
    };
    let gate = start_gate(vec![repo]).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = agent_git(tmp.path(), &["clone", "-q", &gate.url("app"), "c"], &[]).await;
    assert!(out.status.success(), "clone failed: {}", stderr(&out));
    let c = tmp.path().join("c");
    std::fs::write(c.join("x.txt"), "x\n").unwrap();
    assert!(agent_git(&c, &["add", "."], &[]).await.status.success());
    assert!(agent_git(&c, &["commit", "-q", "-m", "x"], &[])
        .await
        .status
        .success());
    let out = agent_git(&c, &["push", "origin", "HEAD:refs/heads/bot/x"], &[]).await;
    assert!(out.status.success(), "push failed: {}", stderr(&out));
    assert_eq!(rev(&bare, "refs/heads/bot/x"), rev(&c, "HEAD"));

    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(
        seen.iter()
            .all(|a| a.as_deref().is_some_and(|a| a.starts_with("Basic "))),
        "a request went without the token: {seen:?}"
    );
    // The token is nowhere the agent or the operator can read.
    let audit = std::fs::read_to_string(&gate.audit).unwrap();
    assert!(!audit.contains(TOKEN));
    assert!(!stderr(&out).contains(TOKEN));
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn wrong_token_is_reported_without_leaking_it() {
    let root = tempfile::tempdir().unwrap();
    run(plain_git(root.path()).args(["init", "--bare", "-q", "-b", "main", "app.git"]));
    let (base, _seen) = http_upstream(root.path().to_owned()).await;
    let repo = GateRepo {
        name: "app".into(),
        upstream: format!("{base}/app.git"),
        credential: UpstreamCredential::HttpsToken {
            token: Secret::new("wrong-token-xyz"),
            username: None,
            extra_roots_pem: None,
        },
        push: PushRules::default(),
    };
    let gate = start_gate(vec![repo]).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = agent_git(tmp.path(), &["clone", "-q", &gate.url("app"), "c"], &[]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("could not update"), "{err}");
    assert!(!err.contains("wrong-token-xyz"), "{err}");
    assert!(!std::fs::read_to_string(&gate.audit)
        .unwrap()
        .contains("wrong-token-xyz"));
    gate.handle.shutdown().await;
}

#[tokio::test]
async fn concurrent_clones_share_the_gate() {
    let sshd = Sshd::start();
    let bare = sshd.new_repo("app");
    let gate = start_gate(vec![entry(&sshd, "app", PushRules::default())]).await;
    let tmp = tempfile::tempdir().unwrap();
    let url = gate.url("app");
    let clones = (0..4).map(|i| {
        let (dir, url) = (tmp.path().to_owned(), url.clone());
        async move { agent_git(&dir, &["clone", "-q", &url, &format!("c{i}")], &[]).await }
    });
    for (i, out) in futures_util::future::join_all(clones)
        .await
        .into_iter()
        .enumerate()
    {
        assert!(out.status.success(), "clone {i}: {}", stderr(&out));
        assert_eq!(
            rev(&tmp.path().join(format!("c{i}")), "HEAD"),
            rev(&bare, "refs/heads/main")
        );
    }
    assert_eq!(
        gate.audit_lines()
            .iter()
            .filter(|l| l["op"] == "fetch")
            .count(),
        4
    );
    gate.handle.shutdown().await;
}
