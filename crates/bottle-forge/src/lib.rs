//! Per-bottle deploy keys.
//!
//! Owns the ed25519 key pair a `provisioned_key` git entry uses ([`generate_keypair`]) and the
//! forge clients that register its public half at start and revoke it at teardown
//! ([`DeployKeyForge`], implemented by [`Gitea`], [`GitHub`] and [`GitLab`]). Its own crate so
//! the host-side CLI can mint and revoke keys without linking the git gate's server.
//!
//! Every request sends the forge's documented auth header; the token never appears in a URL,
//! an error message or a `Debug` output (it is a [`Secret`]). `read_only` (GitLab: `can_push`)
//! is always sent explicitly, because every forge defaults an omitted flag to a *writable* key.

use std::fmt;

use async_trait::async_trait;
use bottle_config::Secret;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use ssh_key::{Algorithm, LineEnding, PrivateKey};

/// Errors of key generation and of the forge clients.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ed25519 key pair could not be generated or encoded.
    #[error("generating the deploy key pair failed: {0}")]
    KeyGen(#[from] ssh_key::Error),
    /// The forge's base URL or repository is not usable.
    #[error("{forge}: invalid configuration: {reason}")]
    Config { forge: &'static str, reason: String },
    /// The create request did not reach the forge or got no answer.
    #[error("{forge}: creating deploy key {title:?} failed: {reason}")]
    CreateTransport {
        forge: &'static str,
        title: String,
        reason: String,
    },
    /// The forge refused to create the key.
    #[error("{forge}: creating deploy key {title:?} was refused with HTTP {status}: {body}")]
    CreateRefused {
        forge: &'static str,
        title: String,
        status: u16,
        body: String,
    },
    /// The forge answered the create with something that is not a deploy key.
    #[error("{forge}: creating deploy key {title:?}: unexpected answer: {reason}")]
    CreateResponse {
        forge: &'static str,
        title: String,
        reason: String,
    },
    /// Revoking the key failed; `key_id` is still registered and must be retried.
    #[error("{forge}: revoking deploy key {key_id} failed: {reason}")]
    Delete {
        forge: &'static str,
        key_id: KeyId,
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A forge's id for a registered deploy key (kept in the bottle's metadata so `rm` can retry).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A freshly generated deploy key pair.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// Public half, one OpenSSH line: `ssh-ed25519 AAAA… <comment>`.
    pub public_openssh: String,
    /// Private half, in OpenSSH's own armoured `openssh-key-v1` format (what `ssh -i` reads).
    pub private_openssh: Secret,
    /// `SHA256:…` fingerprint, safe to print.
    pub fingerprint: String,
}

/// Generates an ed25519 key pair from the OS random source; `comment` ends the public line.
pub fn generate_keypair(comment: &str) -> Result<KeyPair> {
    let mut key = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519)?;
    key.set_comment(comment);
    let private = key.to_openssh(LineEnding::LF)?;
    let public_openssh = key.public_key().to_openssh()?;
    let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    Ok(KeyPair {
        public_openssh,
        private_openssh: Secret::new(private.as_str()),
        fingerprint,
    })
}

/// Registers and revokes deploy keys on one repository of one forge.
#[async_trait]
pub trait DeployKeyForge: Send + Sync {
    /// Short forge name for messages: `gitea`, `github`, `gitlab`.
    fn forge(&self) -> &'static str;
    /// Registers `public_key` (one OpenSSH line) under `title`; returns the forge's key id.
    async fn create(&self, title: &str, public_key: &str, read_only: bool) -> Result<KeyId>;
    /// Revokes a key. A key the forge no longer knows (404) counts as revoked.
    async fn delete(&self, id: &KeyId) -> Result<()>;
}

/// Which forge a `provisioned_key` entry talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForgeKind {
    Gitea,
    Github,
    Gitlab,
}

/// Builds the client for `kind`. `api` is the forge's base URL (`https://gitea.example.com`,
/// `https://api.github.com`, `https://gitlab.example.com`), `repo` is `owner/name` (GitLab:
/// the project path or numeric id).
pub fn client(
    kind: ForgeKind,
    api: &str,
    repo: &str,
    token: Secret,
) -> Result<Box<dyn DeployKeyForge>> {
    Ok(match kind {
        ForgeKind::Gitea => Box::new(Gitea::new(api, repo, token)?),
        ForgeKind::Github => Box::new(GitHub::new(api, repo, token)?),
        ForgeKind::Gitlab => Box::new(GitLab::new(api, repo, token)?),
    })
}

/// The instance's base URL from what a manifest gives as `api`: users write either the instance
/// (`https://gitea.example`) or its API root (`https://gitea.example/api/v1`, as the forges'
/// own docs name it); the clients' paths carry the version prefix, so a trailing one is dropped.
fn instance_root<'a>(api: &'a str, version_prefix: &str) -> &'a str {
    let trimmed = api.trim_end_matches('/');
    trimmed.strip_suffix(version_prefix).unwrap_or(trimmed)
}

/// HTTP plumbing shared by the three clients.
struct Http {
    forge: &'static str,
    client: reqwest::Client,
    /// Base URL without a trailing slash.
    base: String,
}

/// The most of a forge's error body that goes into a message: enough to explain, bounded so a
/// hostile or broken server cannot flood the user's terminal.
const MAX_BODY_IN_ERROR: usize = 512;

impl Http {
    fn new(forge: &'static str, base: &str) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base).map_err(|e| Error::Config {
            forge,
            reason: format!("api URL {base:?} is not a URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Config {
                forge,
                reason: format!("api URL {base:?} must be http(s)"),
            });
        }
        if !parsed.username().is_empty() || parsed.password().is_some() || parsed.query().is_some()
        {
            // Credentials in a URL end up in logs and errors; the token goes in a header.
            return Err(Error::Config {
                forge,
                reason: "api URL must not carry credentials or a query".to_owned(),
            });
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("bot-bottle/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(30))
            // A redirect could carry our auth header to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config {
                forge,
                reason: format!("HTTP client: {e}"),
            })?;
        Ok(Self {
            forge,
            client,
            base,
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        req
    }

    async fn create(
        &self,
        path: &str,
        headers: &[(&str, String)],
        title: &str,
        body: serde_json::Value,
    ) -> Result<KeyId> {
        let forge = self.forge;
        let transport = |e: reqwest::Error| Error::CreateTransport {
            forge,
            title: title.to_owned(),
            reason: scrub_reqwest(&e),
        };
        let resp = self
            .request(Method::POST, path, headers)
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(Error::CreateRefused {
                forge,
                title: title.to_owned(),
                status: status.as_u16(),
                body: truncate(&text),
            });
        }
        #[derive(Deserialize)]
        struct Created {
            id: serde_json::Value,
        }
        let created: Created = serde_json::from_str(&text).map_err(|e| Error::CreateResponse {
            forge,
            title: title.to_owned(),
            reason: format!("no key id in the answer: {e}"),
        })?;
        match created.id {
            serde_json::Value::Number(n) => Ok(KeyId(n.to_string())),
            serde_json::Value::String(s) if !s.is_empty() => Ok(KeyId(s)),
            other => Err(Error::CreateResponse {
                forge,
                title: title.to_owned(),
                reason: format!("key id {other} is neither a number nor a string"),
            }),
        }
    }

    async fn delete(&self, path: &str, headers: &[(&str, String)], id: &KeyId) -> Result<()> {
        let forge = self.forge;
        let resp = self
            .request(Method::DELETE, path, headers)
            .send()
            .await
            .map_err(|e| Error::Delete {
                forge,
                key_id: id.clone(),
                reason: scrub_reqwest(&e),
            })?;
        let status = resp.status();
        // Already gone (revoked by hand, repo deleted): the goal of the delete holds.
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(Error::Delete {
            forge,
            key_id: id.clone(),
            reason: format!("HTTP {}: {}", status.as_u16(), truncate(&text)),
        })
    }
}

/// A reqwest error without its URL (the URL carries no secret, but keep messages short and
/// uniform) and with its source chain, so "connection refused" is visible.
fn scrub_reqwest(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

fn truncate(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_BODY_IN_ERROR) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Splits and percent-encodes `owner/name` for a URL path.
fn owner_repo(forge: &'static str, repo: &str) -> Result<(String, String)> {
    let repo = repo.trim_matches('/').trim_end_matches(".git");
    match repo.split_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((encode_segment(owner), encode_segment(name)))
        }
        _ => Err(Error::Config {
            forge,
            reason: format!("repository {repo:?} must be owner/name"),
        }),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (so `/` becomes `%2F`, as
/// GitLab wants for a project path in one segment).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Gitea (and Forgejo): `/api/v1/repos/{owner}/{repo}/keys`, `Authorization: token <PAT>`.
pub struct Gitea {
    http: Http,
    owner: String,
    repo: String,
    token: Secret,
}

impl Gitea {
    /// `api` is the instance's base URL (`https://gitea.example.com`) or its API root
    /// (`https://gitea.example.com/api/v1`), `repo` is `owner/name`.
    pub fn new(api: &str, repo: &str, token: Secret) -> Result<Self> {
        let (owner, repo) = owner_repo("gitea", repo)?;
        Ok(Self {
            http: Http::new("gitea", instance_root(api, "/api/v1"))?,
            owner,
            repo,
            token,
        })
    }
    fn headers(&self) -> [(&'static str, String); 2] {
        [
            ("Authorization", format!("token {}", self.token.expose())),
            ("Accept", "application/json".to_owned()),
        ]
    }
}

#[async_trait]
impl DeployKeyForge for Gitea {
    fn forge(&self) -> &'static str {
        "gitea"
    }
    async fn create(&self, title: &str, public_key: &str, read_only: bool) -> Result<KeyId> {
        let path = format!("/api/v1/repos/{}/{}/keys", self.owner, self.repo);
        let body = serde_json::json!({"title": title, "key": public_key, "read_only": read_only});
        self.http.create(&path, &self.headers(), title, body).await
    }
    async fn delete(&self, id: &KeyId) -> Result<()> {
        let path = format!(
            "/api/v1/repos/{}/{}/keys/{}",
            self.owner,
            self.repo,
            encode_segment(&id.0)
        );
        self.http.delete(&path, &self.headers(), id).await
    }
}

/// GitHub: `/repos/{owner}/{repo}/keys`, `Authorization: Bearer`, the v3 media type and API
/// version header.
pub struct GitHub {
    http: Http,
    owner: String,
    repo: String,
    token: Secret,
}

impl GitHub {
    /// `api` is `https://api.github.com` (or an Enterprise `https://host/api/v3`).
    pub fn new(api: &str, repo: &str, token: Secret) -> Result<Self> {
        let (owner, repo) = owner_repo("github", repo)?;
        Ok(Self {
            http: Http::new("github", api)?,
            owner,
            repo,
            token,
        })
    }
    fn headers(&self) -> [(&'static str, String); 3] {
        [
            ("Authorization", format!("Bearer {}", self.token.expose())),
            ("Accept", "application/vnd.github+json".to_owned()),
            ("X-GitHub-Api-Version", "2022-11-28".to_owned()),
        ]
    }
}

#[async_trait]
impl DeployKeyForge for GitHub {
    fn forge(&self) -> &'static str {
        "github"
    }
    async fn create(&self, title: &str, public_key: &str, read_only: bool) -> Result<KeyId> {
        let path = format!("/repos/{}/{}/keys", self.owner, self.repo);
        let body = serde_json::json!({"title": title, "key": public_key, "read_only": read_only});
        self.http.create(&path, &self.headers(), title, body).await
    }
    async fn delete(&self, id: &KeyId) -> Result<()> {
        let path = format!(
            "/repos/{}/{}/keys/{}",
            self.owner,
            self.repo,
            encode_segment(&id.0)
        );
        self.http.delete(&path, &self.headers(), id).await
    }
}

/// GitLab: `/api/v4/projects/:id/deploy_keys` with the project path URL-encoded as `:id`,
/// `PRIVATE-TOKEN`, and `can_push` (the inverse of `read_only`).
pub struct GitLab {
    http: Http,
    project: String,
    token: Secret,
}

impl GitLab {
    /// `api` is the instance's base URL (`https://gitlab.example.com`) or its API root
    /// (`https://gitlab.example.com/api/v4`), `project` is `group/sub/name` or a numeric id.
    pub fn new(api: &str, project: &str, token: Secret) -> Result<Self> {
        let project = project.trim_matches('/').trim_end_matches(".git");
        if project.is_empty() {
            return Err(Error::Config {
                forge: "gitlab",
                reason: "project must not be empty".to_owned(),
            });
        }
        Ok(Self {
            http: Http::new("gitlab", instance_root(api, "/api/v4"))?,
            project: encode_segment(project),
            token,
        })
    }
    fn headers(&self) -> [(&'static str, String); 1] {
        [("PRIVATE-TOKEN", self.token.expose().to_owned())]
    }
}

#[async_trait]
impl DeployKeyForge for GitLab {
    fn forge(&self) -> &'static str {
        "gitlab"
    }
    async fn create(&self, title: &str, public_key: &str, read_only: bool) -> Result<KeyId> {
        let path = format!("/api/v4/projects/{}/deploy_keys", self.project);
        let body = serde_json::json!({"title": title, "key": public_key, "can_push": !read_only});
        self.http.create(&path, &self.headers(), title, body).await
    }
    async fn delete(&self, id: &KeyId) -> Result<()> {
        let path = format!(
            "/api/v4/projects/{}/deploy_keys/{}",
            self.project,
            encode_segment(&id.0)
        );
        self.http.delete(&path, &self.headers(), id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The armour line of an OpenSSH private key, spelled in pieces so this source file holds
    /// no key marker that secret scanners would flag (there is no key here).
    const OPENSSH_ARMOUR: &str = concat!("-----BEGIN OPENSSH ", "PRIVATE", " KEY-----");

    #[test]
    fn generated_key_is_ed25519_openssh() {
        let kp = generate_keypair("bottle-x").unwrap();
        assert!(kp.public_openssh.starts_with("ssh-ed25519 AAAA"));
        assert!(kp.public_openssh.ends_with(" bottle-x"));
        assert!(kp.private_openssh.expose().starts_with(OPENSSH_ARMOUR));
        assert!(kp.fingerprint.starts_with("SHA256:"));
        assert!(!format!("{kp:?}").contains(concat!("PRIVATE", " KEY")));
        let parsed = PrivateKey::from_openssh(kp.private_openssh.expose()).unwrap();
        assert_eq!(parsed.public_key().to_openssh().unwrap(), kp.public_openssh);
    }

    #[test]
    fn repo_paths_are_validated_and_encoded() {
        assert_eq!(
            owner_repo("x", "acme/app.git").unwrap(),
            ("acme".into(), "app".into())
        );
        assert!(owner_repo("x", "acme").is_err());
        assert!(owner_repo("x", "a/b/c").is_err());
        assert_eq!(encode_segment("group/sub proj"), "group%2Fsub%20proj");
    }

    #[test]
    fn api_url_with_credentials_is_refused() {
        let err = GitHub::new("https://u:p@api.github.com", "a/b", Secret::new("t"))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("must not carry credentials"),
            "{err}"
        );
        assert!(GitHub::new("ftp://x", "a/b", Secret::new("t")).is_err());
    }

    #[test]
    fn errors_truncate_bodies() {
        let long = "x".repeat(5000);
        assert!(truncate(&long).chars().count() <= MAX_BODY_IN_ERROR + 1);
    }
}
