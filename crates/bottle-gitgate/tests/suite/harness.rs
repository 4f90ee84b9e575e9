//! Test harness: a throwaway `sshd` on a loopback port serving bare repos, a gate in front of
//! it, and the real `git` client as the agent. Also used by the `gitgate_bench` example.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bottle_config::{GateRepo, GitGateConfig, PushRules, Secret, UpstreamCredential};
use bottle_gitgate::{GateHandle, GitGate};

/// Runs a command, panicking with its stderr when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fresh ed25519 key pair on disk: (private path, public line).
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path));
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_owned())
}

/// An `sshd` serving the bare repos under `repos_dir` to the current user with `client_key`.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub user: String,
    pub host_public: String,
    /// The authorised client key (OpenSSH private PEM).
    pub client_key: String,
    child: Child,
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let (host_key, host_public) = keygen(dir.path(), "host_ed25519");
        let (client_path, client_public) = keygen(dir.path(), "client_ed25519");
        std::fs::write(
            dir.path().join("authorized_keys"),
            format!("{client_public}\n"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("repos")).unwrap();
        // sshd refuses to start without its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let user = String::from_utf8(run(Command::new("id").arg("-un")).stdout)
            .unwrap()
            .trim()
            .to_owned();
        for _attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let cfg = dir.path().join("sshd_config");
            std::fs::write(
                &cfg,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nStrictModes no\nUsePAM no\n\
                     PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PidFile none\nAcceptEnv GIT_PROTOCOL\nLogLevel ERROR\nMaxStartups 100:30:200\nMaxSessions 100\n",
                    host_key.display(),
                    dir.path().join("authorized_keys").display()
                ),
            )
            .unwrap();
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting /usr/sbin/sshd (apt-get install openssh-server)");
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken, or a config error: try again
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up {
                let client_key = std::fs::read_to_string(&client_path).unwrap();
                return Sshd {
                    dir,
                    port,
                    user,
                    host_public,
                    client_key,
                    child,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start");
    }

    /// `[127.0.0.1]:port ssh-ed25519 AAAA…`.
    pub fn known_hosts(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_public)
    }

    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("repos").join(format!("{name}.git"))
    }

    /// The upstream URL of bare repo `name`.
    pub fn url(&self, name: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            self.repo_path(name).display()
        )
    }

    /// Creates bare repo `name` with one commit on `main`.
    pub fn new_repo(&self, name: &str) -> PathBuf {
        let bare = self.repo_path(name);
        run(plain_git(self.dir.path())
            .args(["init", "--bare", "-q", "-b", "main"])
            .arg(&bare));
        self.commit_upstream(name, "README.md", "hello\n");
        bare
    }

    /// Adds a commit on `main` of the upstream directly (not through the gate).
    pub fn commit_upstream(&self, name: &str, file: &str, content: &str) -> String {
        let work = tempfile::tempdir().unwrap();
        let bare = self.repo_path(name);
        run(plain_git(work.path())
            .args(["clone", "-q"])
            .arg(&bare)
            .arg("w"));
        let w = work.path().join("w");
        let _ = plain_git(&w)
            .args(["checkout", "-q", "-B", "main"])
            .output();
        std::fs::write(w.join(file), content).unwrap();
        run(plain_git(&w).args(["add", "."]));
        run(plain_git(&w).args(["commit", "-q", "-m", &format!("upstream: {file}")]));
        run(plain_git(&w).args(["push", "-q", "origin", "HEAD:refs/heads/main"]));
        rev(&bare, "refs/heads/main").unwrap()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A git command with no user or system config and a fixed identity.
pub fn plain_git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env_remove("SSH_AUTH_SOCK")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .stdin(Stdio::null());
    cmd
}

/// The id `refname` points at in `repo`, if it exists.
pub fn rev(repo: &Path, refname: &str) -> Option<String> {
    let out = plain_git(repo)
        .args(["rev-parse", "--verify", "-q", refname])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A gate in front of an [`Sshd`].
pub struct Gate {
    pub handle: GateHandle,
    pub base: String,
    /// Holds the gate's work dir (and the audit log) for the test's life.
    pub _work: tempfile::TempDir,
    pub audit: PathBuf,
}

impl Gate {
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}.git", self.base)
    }
    /// Parsed audit lines.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// One repo entry with the sshd's client key and host key.
pub fn entry(sshd: &Sshd, name: &str, push: PushRules) -> GateRepo {
    GateRepo {
        name: name.to_owned(),
        upstream: sshd.url(name),
        credential: UpstreamCredential::Ssh {
            private_key: Secret::new(sshd.client_key.clone()),
            known_hosts: sshd.known_hosts(),
        },
        push,
    }
}

pub async fn start_gate(repos: Vec<GateRepo>) -> Gate {
    start_gate_with(repos, |b| b).await
}

pub async fn start_gate_with(
    repos: Vec<GateRepo>,
    tweak: impl FnOnce(bottle_gitgate::GitGateBuilder) -> bottle_gitgate::GitGateBuilder,
) -> Gate {
    let work = tempfile::tempdir().unwrap();
    let audit = work.path().join("git.jsonl");
    let config = GitGateConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        repos,
    };
    let builder = GitGate::builder(config)
        .work_dir(work.path().join("gate"))
        .audit_log(&audit)
        .bottle("test-bottle");
    let gate = tweak(builder).build().unwrap();
    let handle = gate.spawn().await.unwrap();
    let base = format!("http://{}", handle.local_addr());
    Gate {
        handle,
        base,
        _work: work,
        audit,
    }
}

/// The agent: runs real `git` with a private HOME, off the async runtime, with a generous
/// timeout so a hang fails the test instead of stalling it.
pub async fn agent_git(dir: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new("git");
    cmd.current_dir(dir)
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Agent")
        .env("GIT_AUTHOR_EMAIL", "agent@example.invalid")
        .env("GIT_COMMITTER_NAME", "Agent")
        .env("GIT_COMMITTER_EMAIL", "agent@example.invalid")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if !extra_env.iter().any(|(k, _)| *k == "GIT_CONFIG_GLOBAL") {
        cmd.env("GIT_CONFIG_GLOBAL", "/dev/null");
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("git {args:?} did not finish"))
        .unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
