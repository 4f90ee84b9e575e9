//! Each forge client against an in-test HTTP server that implements that forge's documented
//! create and delete endpoints and records what it received.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottle_config::Secret;
use bottle_forge::{client, generate_keypair, Error, ForgeKind, KeyId};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A fake forge: answers POST with 201 `{"id": 42}` and DELETE with `delete_status`.
struct FakeForge {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn start(delete_status: u16) -> FakeForge {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let rec = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let rec = rec.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let rec = rec.clone();
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().path().to_owned();
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
                            .collect();
                        let raw = req.into_body().collect().await.unwrap().to_bytes();
                        let body = if raw.is_empty() {
                            serde_json::Value::Null
                        } else {
                            serde_json::from_slice(&raw).unwrap()
                        };
                        rec.lock().unwrap().push(Seen {
                            method: method.clone(),
                            path,
                            headers,
                            body,
                        });
                        let (status, body) = match method.as_str() {
                            "POST" => (201, r#"{"id":42,"title":"t","read_only":true}"#.to_owned()),
                            "DELETE" if delete_status == 404 => {
                                (404, r#"{"message":"Not Found"}"#.to_owned())
                            }
                            "DELETE" if delete_status >= 400 => (delete_status, "boom".to_owned()),
                            "DELETE" => (delete_status, String::new()),
                            _ => (405, String::new()),
                        };
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    FakeForge { base, seen }
}

const TOKEN: &str = "tok-s3cret-value";

async fn timed<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("forge call timed out")
}

#[tokio::test]
async fn gitea_create_and_delete_use_documented_endpoints() {
    let fake = start(204).await;
    let forge = client(ForgeKind::Gitea, &fake.base, "acme/app", Secret::new(TOKEN)).unwrap();
    let kp = generate_keypair("bottle-1").unwrap();
    let id = timed(forge.create("bot-bottle bottle-1", &kp.public_openssh, true))
        .await
        .unwrap();
    assert_eq!(id, KeyId("42".into()));
    timed(forge.delete(&id)).await.unwrap();
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/api/v1/repos/acme/app/keys")
    );
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("token {TOKEN}").as_str())
    );
    assert_eq!(
        seen[0].body,
        serde_json::json!({"title": "bot-bottle bottle-1", "key": kp.public_openssh, "read_only": true})
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("DELETE", "/api/v1/repos/acme/app/keys/42")
    );
    assert_eq!(
        seen[1].header("authorization"),
        Some(format!("token {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn github_create_and_delete_use_documented_endpoints() {
    let fake = start(204).await;
    let forge = client(
        ForgeKind::Github,
        &fake.base,
        "acme/app.git",
        Secret::new(TOKEN),
    )
    .unwrap();
    let id = timed(forge.create("k", "ssh-ed25519 AAAAC3 x", false))
        .await
        .unwrap();
    timed(forge.delete(&id)).await.unwrap();
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/repos/acme/app/keys")
    );
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        seen[0].header("accept"),
        Some("application/vnd.github+json")
    );
    assert_eq!(seen[0].header("x-github-api-version"), Some("2022-11-28"));
    // read_only=false is sent, not omitted.
    assert_eq!(
        seen[0].body,
        serde_json::json!({"title": "k", "key": "ssh-ed25519 AAAAC3 x", "read_only": false})
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("DELETE", "/repos/acme/app/keys/42")
    );
    assert_eq!(
        seen[1].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn gitlab_create_and_delete_use_documented_endpoints() {
    let fake = start(204).await;
    let forge = client(
        ForgeKind::Gitlab,
        &fake.base,
        "group/sub/app",
        Secret::new(TOKEN),
    )
    .unwrap();
    let id = timed(forge.create("k", "ssh-ed25519 AAAAC3 x", true))
        .await
        .unwrap();
    timed(forge.delete(&id)).await.unwrap();
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen[0].method, "POST");
    // hyper hands over the raw path: the project path is one %2F-encoded segment.
    assert_eq!(
        seen[0].path,
        "/api/v4/projects/group%2Fsub%2Fapp/deploy_keys"
    );
    assert_eq!(seen[0].header("private-token"), Some(TOKEN));
    assert_eq!(
        seen[0].body,
        serde_json::json!({"title": "k", "key": "ssh-ed25519 AAAAC3 x", "can_push": false})
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        (
            "DELETE",
            "/api/v4/projects/group%2Fsub%2Fapp/deploy_keys/42"
        )
    );
    assert_eq!(seen[1].header("private-token"), Some(TOKEN));

    let fake = start(204).await;
    let forge = client(
        ForgeKind::Gitlab,
        &fake.base,
        "group/app",
        Secret::new(TOKEN),
    )
    .unwrap();
    timed(forge.create("k", "ssh-ed25519 AAAAC3 x", false))
        .await
        .unwrap();
    assert_eq!(
        fake.seen.lock().unwrap()[0].body["can_push"],
        serde_json::json!(true)
    );
}

/// Users copy `api` from the forges' docs, which name the API root (`…/api/v1`, `…/api/v4`);
/// the instance URL works too. Either way the documented path is requested, prefix not doubled.
#[tokio::test]
async fn api_root_or_instance_url_reach_the_same_endpoints() {
    for (kind, suffix, want) in [
        (ForgeKind::Gitea, "/api/v1", "/api/v1/repos/acme/app/keys"),
        (ForgeKind::Gitea, "/api/v1/", "/api/v1/repos/acme/app/keys"),
        (ForgeKind::Gitea, "", "/api/v1/repos/acme/app/keys"),
        (
            ForgeKind::Gitlab,
            "/api/v4",
            "/api/v4/projects/acme%2Fapp/deploy_keys",
        ),
        (
            ForgeKind::Gitlab,
            "/",
            "/api/v4/projects/acme%2Fapp/deploy_keys",
        ),
    ] {
        let fake = start(204).await;
        let api = format!("{}{suffix}", fake.base);
        let forge = client(kind, &api, "acme/app", Secret::new(TOKEN)).unwrap();
        let id = timed(forge.create("k", "ssh-ed25519 AAAAC3 x", true))
            .await
            .unwrap();
        timed(forge.delete(&id)).await.unwrap();
        let seen = fake.seen.lock().unwrap().clone();
        assert_eq!(seen[0].path, want, "{kind:?} with api {api}");
        assert_eq!(
            seen[1].path,
            format!("{want}/42"),
            "{kind:?} with api {api}"
        );
    }
}

#[tokio::test]
async fn delete_answered_404_counts_as_done() {
    for kind in [ForgeKind::Gitea, ForgeKind::Github, ForgeKind::Gitlab] {
        let fake = start(404).await;
        let forge = client(kind, &fake.base, "acme/app", Secret::new(TOKEN)).unwrap();
        timed(forge.delete(&KeyId("99".into()))).await.unwrap();
        assert_eq!(fake.seen.lock().unwrap()[0].method, "DELETE");
    }
}

#[tokio::test]
async fn delete_answered_500_is_an_error_carrying_the_key_id() {
    for kind in [ForgeKind::Gitea, ForgeKind::Github, ForgeKind::Gitlab] {
        let fake = start(500).await;
        let forge = client(kind, &fake.base, "acme/app", Secret::new(TOKEN)).unwrap();
        let err = timed(forge.delete(&KeyId("77".into()))).await.unwrap_err();
        match &err {
            Error::Delete { key_id, reason, .. } => {
                assert_eq!(key_id, &KeyId("77".into()));
                assert!(reason.contains("HTTP 500"), "{reason}");
            }
            other => panic!("unexpected error {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("77") && !msg.contains(TOKEN), "{msg}");
    }
}

#[tokio::test]
async fn unreachable_forge_is_an_error_without_the_token() {
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let forge = client(
        ForgeKind::Github,
        &format!("http://127.0.0.1:{port}"),
        "a/b",
        Secret::new(TOKEN),
    )
    .unwrap();
    let err = timed(forge.create("k", "ssh-ed25519 AAAA x", true))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CreateTransport { .. }), "{err:?}");
    assert!(!err.to_string().contains(TOKEN));
    let err = timed(forge.delete(&KeyId("5".into()))).await.unwrap_err();
    assert!(
        matches!(&err, Error::Delete { key_id, .. } if key_id.0 == "5"),
        "{err:?}"
    );
}
