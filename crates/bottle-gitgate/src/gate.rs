//! The gate as a runtime object: builder (validation and work-dir setup), the listening task
//! and its handle. Only with the `server` feature.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bottle_config::{GitGateConfig, UpstreamCredential};

use crate::{audit, insteadof, mirror, rules, server, upstream, Error, Result};

/// Tunables of the HTTP side.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request body that sends nothing for this long is answered 400.
    pub body_idle: Duration,
    /// Largest upload-pack request (wants/haves), buffered to validate its framing.
    pub max_upload_request: usize,
    /// Largest receive-pack command list.
    pub max_push_commands: usize,
}

/// Builds a [`GitGate`].
#[derive(Debug)]
pub struct GitGateBuilder {
    config: GitGateConfig,
    work_dir: Option<PathBuf>,
    audit_log: Option<PathBuf>,
    bottle: Option<String>,
    limits: Limits,
}

impl GitGateBuilder {
    /// The gate's private folder: mirrors, credential files (0600), hooks. Required.
    pub fn work_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.work_dir = Some(path.into());
        self
    }
    /// The JSONL audit file (appended). Without it no audit lines are written.
    pub fn audit_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.audit_log = Some(path.into());
        self
    }
    /// The bottle's slug, recorded on audit lines.
    pub fn bottle(mut self, slug: impl Into<String>) -> Self {
        self.bottle = Some(slug.into());
        self
    }
    /// How long a request body may stall before the request is refused (default 60 s).
    pub fn body_idle_timeout(mut self, timeout: Duration) -> Self {
        self.limits.body_idle = timeout;
        self
    }

    /// Prepares the work dir: credential files, the relay hook, one bare mirror per repo.
    /// Nothing is fetched yet: the first fetch fills a mirror.
    pub fn build(self) -> Result<GitGate> {
        let work = self
            .work_dir
            .ok_or_else(|| Error::Config("work_dir is required".into()))?;
        let mut seen = std::collections::HashSet::new();
        for r in &self.config.repos {
            validate_name(&r.name)?;
            if !seen.insert(r.name.as_str()) {
                return Err(Error::Config(format!(
                    "repo name {:?} is configured twice",
                    r.name
                )));
            }
            for p in &r.push.allow {
                rules::validate_pattern(p)
                    .map_err(|e| Error::Config(format!("repo {:?}: {e}", r.name)))?;
            }
            let url = insteadof::parse_upstream(&r.upstream)
                .map_err(|e| Error::Config(format!("repo {:?}: {e}", r.name)))?;
            match (&r.credential, url.scheme) {
                (UpstreamCredential::Ssh { .. }, "ssh") | (UpstreamCredential::HttpsToken { .. }, "https" | "http") => {}
                _ => {
                    return Err(Error::Config(format!(
                        "repo {:?}: credential kind does not fit upstream {:?} (ssh key for ssh URLs, token for https)",
                        r.name, r.upstream
                    )))
                }
            }
        }
        private_dir(&work)?;
        let home = work.join("home");
        private_dir(&home)?;
        let hooks = work.join("hooks");
        mirror::write_hooks(&hooks)?;
        private_dir(&work.join("keys"))?;
        private_dir(&work.join("mirrors"))?;
        let results = work.join("results");
        private_dir(&results)?;
        let mut repos = HashMap::new();
        for r in &self.config.repos {
            let keys = work.join("keys").join(&r.name);
            private_dir(&keys)?;
            let env = upstream::prepare(r, &keys, &home)?;
            let dir = work.join("mirrors").join(format!("{}.git", r.name));
            let mirror = mirror::Mirror::init(&r.name, dir, &r.upstream, env, &hooks)?;
            repos.insert(
                r.name.clone(),
                Arc::new(server::Repo {
                    mirror,
                    rules: r.push.clone(),
                }),
            );
        }
        Ok(GitGate {
            listen: self.config.listen,
            shared: Arc::new(server::Shared::new(
                repos,
                audit::AuditLog::new(self.audit_log),
                self.bottle,
                results,
                self.limits,
            )),
        })
    }
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.ends_with(".git");
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "repo name {name:?} must be 1-100 of [A-Za-z0-9._-], not start with '.', not end with .git"
        )))
    }
}

fn private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::Setup {
            what: format!("creating {}", path.display()),
            source: e,
        })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
        Error::Setup {
            what: format!("chmod 0700 {}", path.display()),
            source: e,
        }
    })
}

/// A built gate, ready to listen.
pub struct GitGate {
    listen: SocketAddr,
    shared: Arc<server::Shared>,
}

impl GitGate {
    /// Starts building a gate from its configuration.
    pub fn builder(config: GitGateConfig) -> GitGateBuilder {
        GitGateBuilder {
            config,
            work_dir: None,
            audit_log: None,
            bottle: None,
            limits: Limits {
                body_idle: Duration::from_secs(60),
                max_upload_request: 64 << 20,
                max_push_commands: 4 << 20,
            },
        }
    }

    /// Binds the configured address and serves in the background.
    pub async fn spawn(self) -> Result<GateHandle> {
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|e| Error::Bind {
                addr: self.listen,
                source: e,
            })?;
        let local_addr = listener.local_addr().map_err(|e| Error::Bind {
            addr: self.listen,
            source: e,
        })?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(server::serve(listener, self.shared, rx));
        Ok(GateHandle {
            local_addr,
            shutdown: tx,
            task,
        })
    }

    /// Binds and serves until the task is dropped.
    pub async fn run(self) -> Result<()> {
        let handle = self.spawn().await?;
        let _ = handle.task.await;
        Ok(())
    }
}

/// A running gate.
pub struct GateHandle {
    local_addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl GateHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    /// Stops accepting and closes open connections; in-flight git children are killed.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottle_config::{GateRepo, PushRules, Secret};

    fn build(repo: GateRepo) -> Result<GitGate> {
        let dir = tempfile::tempdir().unwrap();
        let config = GitGateConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            repos: vec![repo],
        };
        GitGate::builder(config)
            .work_dir(dir.path().join("w"))
            .build()
    }

    fn repo() -> GateRepo {
        GateRepo {
            name: "app".into(),
            upstream: "git@example.invalid:acme/app.git".into(),
            credential: UpstreamCredential::Ssh {
                private_key: Secret::new("k"),
                known_hosts: String::new(),
            },
            push: PushRules {
                allow: vec!["refs/heads/bot/*".into()],
                ..PushRules::default()
            },
        }
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        assert!(build(repo()).is_ok());
        let e = build(GateRepo {
            name: "../x".into(),
            ..repo()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("repo name \"../x\""), "{e}");
        let e = build(GateRepo {
            push: PushRules {
                allow: vec!["main".into()],
                ..PushRules::default()
            },
            ..repo()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("must start with refs/"), "{e}");
        let e = build(GateRepo {
            upstream: "https://example.invalid/acme/app.git".into(),
            ..repo()
        })
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("credential kind does not fit"),
            "{e}"
        );
        let e = build(GateRepo {
            upstream: "https://u:pw@example.invalid/a/b".into(),
            ..repo()
        })
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("credentials in the URL") && !e.to_string().contains("pw@"),
            "{e}"
        );
        let e = GitGate::builder(GitGateConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            repos: vec![],
        })
        .build()
        .err()
        .unwrap();
        assert!(e.to_string().contains("work_dir is required"));
    }

    #[test]
    fn work_dir_and_key_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let config = GitGateConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            repos: vec![repo()],
        };
        GitGate::builder(config)
            .work_dir(dir.path().join("w"))
            .build()
            .unwrap();
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("w"), 0o700);
        assert_eq!(mode("w/keys/app"), 0o700);
        assert_eq!(mode("w/keys/app/id"), 0o600);
        assert!(dir.path().join("w/mirrors/app.git/HEAD").exists());
    }
}
