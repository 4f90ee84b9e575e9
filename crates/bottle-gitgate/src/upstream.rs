//! How the gate's git children reach the upstream, and what else they may see.
//!
//! Every git process the gate starts gets a cleared environment plus exactly what is built
//! here: no user or system git config, no ssh agent, no terminal prompts, and the entry's
//! credential as files in the gate's private work dir (SSH) or as config given through
//! `GIT_CONFIG_*` variables (HTTPS). Secrets never go on a command line.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine;
use bottle_config::{GateRepo, UpstreamCredential};

use crate::{Error, Result};

/// The environment of every git child for one repo, plus what must be scrubbed from its output.
#[derive(Debug, Clone)]
pub struct ChildEnv {
    pub vars: Vec<(String, OsString)>,
    /// Secret strings that must never leave in a message (token, encoded header).
    secrets: Vec<String>,
    /// The SSH connection-sharing socket, closed at shutdown.
    pub control_path: Option<PathBuf>,
}

impl ChildEnv {
    /// Applies the environment to a command: clears everything else first.
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.env_clear();
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
    }

    /// Ends the shared SSH connection, if one is open (best effort: it also ends by itself
    /// after a minute idle).
    pub async fn close_connection(&self) {
        let Some(path) = &self.control_path else {
            return;
        };
        if !path.exists() {
            return;
        }
        let mut cmd = tokio::process::Command::new("ssh");
        self.apply(&mut cmd);
        cmd.arg("-o").arg(format!("ControlPath={}", path.display()));
        cmd.args(["-O", "exit", "upstream"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), cmd.status()).await;
    }

    /// Removes any secret from `text` (git's or ssh's stderr), and bounds its length.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if !s.is_empty() {
                out = out.replace(s.as_str(), "<redacted>");
            }
        }
        const MAX: usize = 2000;
        if out.len() > MAX {
            let mut cut = MAX;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
        }
        out.trim().to_owned()
    }
}

/// The minimal environment common to all git children: PATH (not secret), a private HOME so
/// no `~/.gitconfig` or `~/.ssh/config` is read, no system config, no prompts, C locale.
fn base_env(home: &Path) -> Vec<(String, OsString)> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| {
        OsString::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    });
    vec![
        ("PATH".into(), path),
        ("HOME".into(), home.as_os_str().to_owned()),
        ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
        ("GIT_TERMINAL_PROMPT".into(), "0".into()),
        ("GIT_ASKPASS".into(), "/bin/false".into()),
        ("SSH_ASKPASS".into(), "/bin/false".into()),
        ("LC_ALL".into(), "C".into()),
    ]
}

/// Writes `contents` to `path` with mode 0600 (created fresh, truncated if it exists).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::Setup {
            what: format!("writing {}", path.display()),
            source: e,
        })?;
    f.write_all(contents).map_err(|e| Error::Setup {
        what: format!("writing {}", path.display()),
        source: e,
    })
}

/// Single-quotes a path for the `GIT_SSH_COMMAND` shell line; refuses paths with a quote.
fn sh_quote(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .ok_or_else(|| Error::Config(format!("path {} is not UTF-8", path.display())))?;
    if s.contains('\'') {
        return Err(Error::Config(format!(
            "path {s:?} must not contain a single quote"
        )));
    }
    Ok(format!("'{s}'"))
}

/// Builds the child environment for `repo`, writing its credential files under `keys_dir`
/// (a 0700 directory of the gate's own).
pub fn prepare(repo: &GateRepo, keys_dir: &Path, home: &Path) -> Result<ChildEnv> {
    let mut vars = base_env(home);
    let mut secrets = Vec::new();
    let mut control_path = None;
    match &repo.credential {
        UpstreamCredential::Ssh {
            private_key,
            known_hosts,
        } => {
            let key_path: PathBuf = keys_dir.join("id");
            let kh_path: PathBuf = keys_dir.join("known_hosts");
            let mut key = private_key.expose().to_owned();
            if !key.ends_with('\n') {
                // OpenSSH refuses a key file without its final newline.
                key.push('\n');
            }
            write_private(&key_path, key.as_bytes())?;
            write_private(&kh_path, known_hosts.as_bytes())?;
            let mut cmd = format!(
                "ssh -i {} -o IdentitiesOnly=yes -F /dev/null -o UserKnownHostsFile={} \
                 -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes \
                 -o ForwardAgent=no -o ClearAllForwardings=yes -o ConnectTimeout=20",
                sh_quote(&key_path)?,
                sh_quote(&kh_path)?
            );
            // Reuse one authenticated connection to the upstream for the refresh before every
            // fetch (a full SSH handshake each time would dominate small fetches). The socket
            // sits in the gate's 0700 key dir; the master exits after a minute idle. Unix
            // socket paths are short (~104 bytes): without room, connect afresh each time.
            let control = keys_dir.join("cm");
            if control.as_os_str().len() < 100 {
                cmd.push_str(&format!(
                    " -o ControlMaster=auto -o ControlPath={} -o ControlPersist=60",
                    sh_quote(&control)?
                ));
                control_path = Some(control);
            }
            vars.push(("GIT_SSH_COMMAND".into(), cmd.into()));
            vars.push(("GIT_SSH_VARIANT".into(), "ssh".into()));
        }
        UpstreamCredential::HttpsToken {
            token,
            username,
            extra_roots_pem,
        } => {
            let user = username.as_deref().unwrap_or("x-access-token");
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", token.expose()));
            let mut config: Vec<(String, String)> = vec![
                // An empty helper list: no host credential helper is asked.
                ("credential.helper".into(), String::new()),
                (
                    "http.extraHeader".into(),
                    format!("Authorization: Basic {basic}"),
                ),
            ];
            if let Some(pem) = extra_roots_pem {
                // http.sslCAInfo replaces the default roots, so the bundle keeps the system's.
                let mut bundle =
                    std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
                bundle.push(b'\n');
                bundle.extend_from_slice(pem.as_bytes());
                let ca = keys_dir.join("ca.pem");
                write_private(&ca, &bundle)?;
                config.push(("http.sslCAInfo".into(), ca.to_string_lossy().into_owned()));
            }
            vars.push(("GIT_CONFIG_COUNT".into(), config.len().to_string().into()));
            for (i, (k, v)) in config.into_iter().enumerate() {
                vars.push((format!("GIT_CONFIG_KEY_{i}"), k.into()));
                vars.push((format!("GIT_CONFIG_VALUE_{i}"), v.into()));
            }
            secrets.push(token.expose().to_owned());
            secrets.push(basic);
        }
    }
    Ok(ChildEnv {
        vars,
        secrets,
        control_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottle_config::{PushRules, Secret};

    fn repo(cred: UpstreamCredential) -> GateRepo {
        GateRepo {
            name: "app".into(),
            upstream: "git@h:o/r.git".into(),
            credential: cred,
            push: PushRules::default(),
        }
    }

    #[test]
    fn ssh_env_pins_host_and_identity_and_writes_0600_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let env = prepare(
            &repo(UpstreamCredential::Ssh {
                private_key: Secret::new("KEYDATA"),
                known_hosts: "h ssh-ed25519 AAAA".into(),
            }),
            dir.path(),
            dir.path(),
        )
        .unwrap();
        let cmd = env
            .vars
            .iter()
            .find(|(k, _)| k == "GIT_SSH_COMMAND")
            .unwrap()
            .1
            .to_string_lossy()
            .into_owned();
        for needle in [
            "IdentitiesOnly=yes",
            "-F /dev/null",
            "StrictHostKeyChecking=yes",
            "BatchMode=yes",
            "UserKnownHostsFile=",
        ] {
            assert!(cmd.contains(needle), "{cmd}");
        }
        assert!(!cmd.contains("KEYDATA"));
        let meta = std::fs::metadata(dir.path().join("id")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("id")).unwrap(),
            "KEYDATA\n"
        );
        assert!(!env.vars.iter().any(|(k, _)| k == "SSH_AUTH_SOCK"));
    }

    #[test]
    fn https_token_goes_through_config_env_and_is_scrubbed() {
        let dir = tempfile::tempdir().unwrap();
        let env = prepare(
            &repo(UpstreamCredential::HttpsToken {
                token: Secret::new("tok123"),
                username: None,
                extra_roots_pem: None,
            }),
            dir.path(),
            dir.path(),
        )
        .unwrap();
        let header = env
            .vars
            .iter()
            .find(|(k, _)| k == "GIT_CONFIG_VALUE_1")
            .unwrap()
            .1
            .to_string_lossy()
            .into_owned();
        assert!(header.starts_with("Authorization: Basic "));
        let encoded = header.trim_start_matches("Authorization: Basic ");
        assert_eq!(
            env.scrub(&format!("oops tok123 and {encoded}")),
            "oops <redacted> and <redacted>"
        );
    }
}
