//! Deploy keys minted by `bot-bottle start` (`git: provisioned_key`) against an in-test Gitea
//! that implements the documented deploy-key endpoints (`POST` / `DELETE
//! /api/v1/repos/{owner}/{repo}/keys[/{id}]`, `Authorization: token …`) and keeps the keys it
//! holds, so the test sees what a real forge would be left with:
//!
//! * the key registered at start is the one in the bottle's 0600 state, its id is in metadata,
//!   the agent finds neither the private key nor the forge token anywhere it can read, and the
//!   key is revoked when the agent exits, before the state goes;
//! * a revocation the forge refuses is reported (exit status, the key id and how to retry),
//!   the containers are gone but the id stays recorded, and `rm` revokes it once the forge
//!   answers again.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use super::common::{assert_torn_down, bot, labelled, session, shell_manifest, slug_from, text};

const TOKEN: &str = "gitea-admin-token-7c1e55d2";
const KEYS_PATH: &str = "/api/v1/repos/acme/app/keys";

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    body: serde_json::Value,
}

#[derive(Default)]
struct Forge {
    /// id → (title, public key): the keys the repository holds.
    keys: BTreeMap<u64, (String, String)>,
    next_id: u64,
    seen: Vec<Seen>,
    /// When set, every DELETE is answered with this status (a forge outage).
    failing_delete: Option<u16>,
}

impl Forge {
    fn answer(&mut self, seen: Seen) -> (u16, String) {
        self.seen.push(seen.clone());
        if seen.authorization.as_deref() != Some(&format!("token {TOKEN}")) {
            return (401, r#"{"message":"token is required"}"#.into());
        }
        match (seen.method.as_str(), seen.path.strip_prefix(KEYS_PATH)) {
            ("POST", Some("")) => {
                let (Some(title), Some(key)) =
                    (seen.body["title"].as_str(), seen.body["key"].as_str())
                else {
                    return (422, r#"{"message":"title and key are required"}"#.into());
                };
                self.next_id += 1;
                let id = self.next_id;
                self.keys.insert(id, (title.into(), key.into()));
                let read_only = seen.body["read_only"].as_bool().unwrap_or(false);
                let body = serde_json::json!({"id": id, "key": key, "title": title, "read_only": read_only});
                (201, body.to_string())
            }
            ("DELETE", Some(rest)) => {
                if let Some(status) = self.failing_delete {
                    return (status, "internal error".into());
                }
                let id = rest.strip_prefix('/').and_then(|s| s.parse::<u64>().ok());
                match id.and_then(|id| self.keys.remove(&id)) {
                    Some(_) => (204, String::new()),
                    None => (404, r#"{"message":"Not Found"}"#.into()),
                }
            }
            _ => (404, r#"{"message":"Not Found"}"#.into()),
        }
    }
}

/// The fake Gitea on 127.0.0.1, served from its own thread for as long as the test runs.
struct FakeGitea {
    api: String,
    state: Arc<Mutex<Forge>>,
}

impl FakeGitea {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let api = format!("http://{}/api/v1", listener.local_addr().unwrap());
        let state: Arc<Mutex<Forge>> = Arc::default();
        let shared = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // Registered with the reactor inside the runtime.
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                serve(listener, shared).await
            });
        });
        Self { api, state }
    }

    fn keys(&self) -> BTreeMap<u64, (String, String)> {
        self.state.lock().unwrap().keys.clone()
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

async fn serve(listener: tokio::net::TcpListener, state: Arc<Mutex<Forge>>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move {
                    let method = req.method().to_string();
                    let path = req.uri().path().to_owned();
                    let authorization = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let raw = req.into_body().collect().await.unwrap().to_bytes();
                    let body = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
                    let (status, text) = state.lock().unwrap().answer(Seen {
                        method,
                        path,
                        authorization,
                        body,
                    });
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(text)))
                            .unwrap(),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(sock), svc)
                .await;
        });
    }
}

/// The shell example with one git upstream whose deploy key is minted on the fake Gitea.
fn manifest(dir: &Path, forge: &FakeGitea) -> std::path::PathBuf {
    // A pinned host key for the upstream (the gate checks it when the agent fetches; this test's
    // agent never does).
    let host = bottle_forge::generate_keypair("git.example.test").unwrap();
    let key_type_and_blob: Vec<&str> = host.public_openssh.split(' ').take(2).collect();
    let known_hosts = dir.join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("git.example.test {}\n", key_type_and_blob.join(" ")),
    )
    .unwrap();
    shell_manifest(
        dir,
        &format!(
            "git:\n  - name: app\n    upstream: git@git.example.test:acme/app.git\n    \
             known_hosts: {}\n    push: [\"refs/heads/bot/*\"]\n    \
             provisioned_key: {{forge: gitea, api: {}, token: BB_TEST_FORGE_TOKEN, read_only: false}}\n",
            known_hosts.display(),
            forge.api
        ),
    )
}

fn start(home: &Path, manifest: &Path) -> std::process::Child {
    bot(home)
        .args(["start", manifest.to_str().unwrap(), "--label", "keys"])
        .env("BB_TEST_FORGE_TOKEN", TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn metadata(home: &Path, slug: &str) -> serde_json::Value {
    let path = home.join("bottles").join(slug).join("metadata.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Removes what a failing test left (the bottle, by `rm --force`).
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(slug) = slug_from(self.0) {
            let _ = bot(self.0)
                .args(["rm", "--force", &slug])
                .env("BB_TEST_FORGE_TOKEN", TOKEN)
                .output();
        }
    }
}

#[test]
fn deploy_key_is_registered_kept_from_the_agent_and_revoked_at_exit() {
    let forge = FakeGitea::start();
    let home = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(home.path());
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), &forge);
    let mut child = start(home.path(), &manifest);

    // Registered on the forge while the bottle starts (the first run may build images).
    let deadline = Instant::now() + Duration::from_secs(900);
    while forge.keys().is_empty() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("start ended ({status}) before registering a key");
        }
        assert!(Instant::now() < deadline, "no deploy key was registered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (id, (title, public)) = forge.keys().into_iter().next().unwrap();
    let slug = slug_from(home.path()).unwrap();
    assert_eq!(title, format!("bot-bottle {slug}"));
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    let post = &forge.seen()[0];
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", KEYS_PATH)
    );
    assert_eq!(post.body["read_only"], serde_json::json!(false));

    // The host keeps the id in metadata (no key material) and the private key in 0600 state.
    let meta = metadata(home.path(), &slug);
    let recorded = &meta["provisioned_keys"][0];
    assert_eq!(recorded["key_id"], serde_json::json!(id.to_string()));
    assert_eq!(recorded["forge"], serde_json::json!("gitea"));
    assert_eq!(recorded["repo"], serde_json::json!("acme/app"));
    let meta_text = meta.to_string();
    assert!(!meta_text.contains(TOKEN) && !meta_text.contains("PRIVATE"));
    let key_file = home.path().join("bottles").join(&slug).join("keys/app");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }
    let derived = Command::new("ssh-keygen")
        .args(["-y", "-f", key_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(derived.status.success(), "{}", text(&derived));
    let derived = String::from_utf8_lossy(&derived.stdout);
    let blob = |k: &str| k.split(' ').nth(1).unwrap_or_default().to_owned();
    assert_eq!(
        blob(&derived),
        blob(&public),
        "the registered key is the bottle's"
    );

    // From inside: neither the private key nor the forge token is anywhere the agent can read.
    // The armour's first body line is the same for every key, so the search uses the others.
    // The search patterns are these test values themselves, so they reach the guest with the
    // script: the processes' environ and cmdline are copied first, before grep holds them, and
    // the shell reads the script from stdin (no argv, no history file).
    let private = std::fs::read_to_string(&key_file).unwrap();
    let body: Vec<&str> = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .skip(1)
        .collect();
    assert!(!body.is_empty());
    let mut patterns: Vec<String> = body.iter().map(|l| format!("-e '{l}'")).collect();
    patterns.push(format!("-e '{TOKEN}'"));
    let script = format!(
        "for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null; echo; done > /tmp/procs; \
         grep -rlsF {} /home /etc /tmp /run /var /opt /srv /usr/local /root; \
         env | grep -c BB_TEST_FORGE_TOKEN; echo scan-done; exit 3\n",
        patterns.join(" ")
    );
    let out = session(child, &script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let before: Vec<&str> = stdout.lines().take_while(|l| *l != "scan-done").collect();
    assert_eq!(
        before.last(),
        Some(&"0"),
        "the scan ran to its end: {stdout}"
    );
    let found: Vec<&&str> = before.iter().filter(|l| l.starts_with('/')).collect();
    assert!(
        found.is_empty(),
        "the agent can read key material in {found:?}"
    );
    assert!(!text(&out).contains(TOKEN));

    // Revoked on exit: the forge holds no key, the DELETE named the registered id, and the
    // bottle left nothing (state gone, nothing labelled).
    assert!(
        forge.keys().is_empty(),
        "still registered: {:?}",
        forge.keys()
    );
    let delete = forge
        .seen()
        .into_iter()
        .find(|s| s.method == "DELETE")
        .unwrap();
    assert_eq!(delete.path, format!("{KEYS_PATH}/{id}"));
    assert_eq!(slug_from(home.path()), None);
    assert_torn_down(home.path());
}

#[test]
fn refused_revocation_is_reported_kept_and_retried_by_rm() {
    let forge = FakeGitea::start();
    forge.state.lock().unwrap().failing_delete = Some(500);
    let home = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(home.path());
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), &forge);
    let out = session(start(home.path(), &manifest), "exit 0\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    let (id, _) = forge
        .keys()
        .into_iter()
        .next()
        .expect("the key stays registered");
    let slug = slug_from(home.path()).expect("the state stays for the retry");
    assert!(
        stderr.contains("could not revoke deploy keys")
            && stderr.contains(&format!("gitea key {id} on acme/app"))
            && stderr.contains(&format!("bot-bottle rm {slug}")),
        "{stderr}"
    );
    assert!(!text(&out).contains(TOKEN));
    // The containers and networks are gone; the key id is recorded and the bottle marked failed.
    assert!(labelled(&slug).is_empty(), "left: {:?}", labelled(&slug));
    let meta = metadata(home.path(), &slug);
    assert_eq!(meta["status"], serde_json::json!("failed"));
    assert_eq!(
        meta["provisioned_keys"][0]["key_id"],
        serde_json::json!(id.to_string())
    );

    // While the forge still refuses, `rm` reports the same and keeps the id.
    let rm = bot(home.path())
        .args(["rm", &slug])
        .env("BB_TEST_FORGE_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(!rm.status.success(), "{}", text(&rm));
    assert_eq!(forge.keys().len(), 1);

    // The forge answers again: `rm` revokes the key and removes the state.
    forge.state.lock().unwrap().failing_delete = None;
    let rm = bot(home.path())
        .args(["rm", &slug])
        .env("BB_TEST_FORGE_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(rm.status.success(), "{}", text(&rm));
    assert!(
        forge.keys().is_empty(),
        "still registered: {:?}",
        forge.keys()
    );
    assert_eq!(slug_from(home.path()), None);
    assert!(!text(&rm).contains(TOKEN));
}
