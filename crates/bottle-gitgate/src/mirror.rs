//! The gate-side bare mirror of each repo, its refresh from the upstream, and the
//! `pre-receive` hook that relays pushes.
//!
//! Fetches are served from the mirror after it has been brought up to date (`git fetch
//! --prune` of branches and tags); concurrent refreshes of one repo coalesce into one.
//! Pushes are received into the mirror by `git receive-pack`; its `pre-receive` hook (written
//! by the gate, shared by all mirrors through `core.hooksPath`) runs while the new objects are
//! still quarantined: it refuses non-fast-forward updates unless the entry allows them, then
//! pushes the updates to the upstream. Only when the upstream accepted them does the hook
//! succeed, so only then do the mirror's refs move and the agent see `ok`. The hook's output
//! (our refusal, the upstream's rejection) reaches the agent as `remote:` lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use tokio::process::Command;
use tokio::sync::Mutex;

use crate::audit::RefMove;
use crate::upstream::ChildEnv;
use crate::{Error, Result};

/// The hook: policy on fast-forwardness, then the relay to the upstream. POSIX sh, because it
/// runs as a child of `git receive-pack`. Inputs come from the environment the gate gives
/// receive-pack: `GATE_UPSTREAM_URL`, `GATE_ALLOW_FORCE`, `GATE_RESULT_FILE`.
const PRE_RECEIVE: &str = r#"#!/bin/sh
# Written by bottle-gitgate. Runs inside `git receive-pack` with the pushed objects quarantined.
set -u
result="${GATE_RESULT_FILE:?}"
zero_id() { case "$1" in *[!0]*) return 1 ;; *) return 0 ;; esac; }
set --
while read -r old new ref; do
  if zero_id "$new"; then
    spec=":$ref"
  else
    if ! zero_id "$old" && [ "${GATE_ALLOW_FORCE:-0}" != 1 ]; then
      if ! git merge-base --is-ancestor "$old" "$new" 2>/dev/null; then
        echo "bottle-gitgate: push refused: $ref: non-fast-forward update (force-push) refused (push rule allow_force is false)" >&2
        printf 'denied allow_force\n%s: non-fast-forward update refused\n' "$ref" >"$result"
        exit 1
      fi
    fi
    spec="$new:$ref"
  fi
  if zero_id "$old"; then lease="$ref:"; else lease="$ref:$old"; fi
  set -- "$@" "--force-with-lease=$lease" "$spec"
done
if [ "$#" -eq 0 ]; then
  printf 'ok\n' >"$result"
  exit 0
fi
out="$result.out"
if git push --atomic --no-verify "$GATE_UPSTREAM_URL" "$@" >"$out" 2>&1; then
  printf 'ok\n' >"$result"
  cat "$out" >&2
  exit 0
fi
echo "bottle-gitgate: the upstream rejected the push:" >&2
cat "$out" >&2
{ printf 'rejected\n'; cat "$out"; } >"$result"
exit 1
"#;

/// Writes the shared hooks directory.
pub fn write_hooks(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| Error::Setup {
        what: format!("creating {}", dir.display()),
        source: e,
    })?;
    let path = dir.join("pre-receive");
    std::fs::write(&path, PRE_RECEIVE).map_err(|e| Error::Setup {
        what: format!("writing {}", path.display()),
        source: e,
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
        Error::Setup {
            what: format!("chmod {}", path.display()),
            source: e,
        }
    })
}

/// Upper bound of one refresh from the upstream.
const REFRESH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// One repo's mirror.
#[derive(Debug)]
pub struct Mirror {
    pub name: String,
    pub dir: PathBuf,
    pub upstream: String,
    pub env: Arc<ChildEnv>,
    /// When the last successful refresh *started*; a request that arrived before that time is
    /// served by that refresh instead of starting another.
    last_refresh: Mutex<Option<Instant>>,
}

/// The outcome of a refresh.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// Refs that moved in the mirror (empty when nothing changed or the refresh was shared).
    pub moved: Vec<RefMove>,
    /// Served by a refresh another request started.
    pub coalesced: bool,
}

/// A git child that failed; the message is scrubbed.
#[derive(Debug, Clone)]
pub struct GitFailure(pub String);

impl Mirror {
    /// Creates (or reuses) the bare mirror at `dir`, with hooks from `hooks_dir`.
    pub fn init(
        name: &str,
        dir: PathBuf,
        upstream: &str,
        env: ChildEnv,
        hooks_dir: &Path,
    ) -> Result<Self> {
        let git = |args: &[&str]| -> Result<()> {
            let out = std::process::Command::new("git")
                .args(args)
                .env_clear()
                .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_os_str())))
                .stdin(Stdio::null())
                .output()
                .map_err(|e| Error::Setup {
                    what: "running git (is it installed?)".into(),
                    source: e,
                })?;
            if out.status.success() {
                Ok(())
            } else {
                Err(Error::Git {
                    what: format!("git {}", args.join(" ")),
                    message: env.scrub(&String::from_utf8_lossy(&out.stderr)),
                })
            }
        };
        let d = dir.to_string_lossy().into_owned();
        if !dir.join("HEAD").exists() {
            git(&["init", "--bare", "--quiet", &d])?;
        }
        let hooks = hooks_dir.to_string_lossy().into_owned();
        for (k, v) in [
            ("core.hooksPath", hooks.as_str()),
            // The gate decides on fast-forwards and deletions; receive-pack must not pre-empt
            // it with its own generic message.
            ("receive.denyNonFastForwards", "false"),
            ("receive.denyDeletes", "false"),
            ("receive.denyCurrentBranch", "ignore"),
            ("core.logAllRefUpdates", "false"),
            ("uploadpack.allowFilter", "true"),
            // Background gc would race the gate's own fetches and pushes.
            ("gc.autoDetach", "false"),
            // The dumb protocol and git-daemon are never used.
            ("http.getanyfile", "false"),
        ] {
            git(&["-C", &d, "config", k, v])?;
        }
        Ok(Self {
            name: name.to_owned(),
            dir,
            upstream: upstream.to_owned(),
            env: Arc::new(env),
            last_refresh: Mutex::new(None),
        })
    }

    /// A git command with the repo's environment and the mirror as `GIT_DIR`.
    pub fn git(&self) -> Command {
        let mut cmd = Command::new("git");
        self.env.apply(&mut cmd);
        cmd.env("GIT_DIR", &self.dir);
        cmd.kill_on_drop(true);
        cmd
    }

    /// Brings the mirror up to date from the upstream, sharing a refresh already under way.
    pub async fn refresh(&self) -> std::result::Result<Refreshed, GitFailure> {
        let asked = Instant::now();
        let mut last = self.last_refresh.lock().await;
        if matches!(*last, Some(started) if started >= asked) {
            return Ok(Refreshed {
                moved: Vec::new(),
                coalesced: true,
            });
        }
        let started = Instant::now();
        let before = self.refs().await?;
        let out = self
            .git()
            .args([
                "fetch",
                "--prune",
                "--quiet",
                "--no-write-fetch-head",
                "--no-auto-gc",
            ])
            .arg(&self.upstream)
            .args(["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"])
            .stdin(Stdio::null())
            .output();
        // Keepalives and low-speed limits end a dead upstream; this bounds everything else so
        // a refresh never holds the repo's refresh lock for ever (the child is killed on drop).
        let out = tokio::time::timeout(REFRESH_TIMEOUT, out)
            .await
            .map_err(|_| {
                GitFailure(format!(
                    "the upstream fetch took longer than {}s",
                    REFRESH_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| GitFailure(format!("cannot run git fetch: {e}")))?;
        if !out.status.success() {
            return Err(GitFailure(
                self.env.scrub(&String::from_utf8_lossy(&out.stderr)),
            ));
        }
        let after = self.refs().await?;
        if last.is_none() {
            // The upstream's default branch rarely changes: learn it on the first refresh.
            self.sync_head().await;
        }
        *last = Some(started);
        Ok(Refreshed {
            moved: diff(&before, &after),
            coalesced: false,
        })
    }

    /// Points the mirror's HEAD at the upstream's default branch when it can tell, so a clone
    /// through the gate checks out what a direct clone would.
    async fn sync_head(&self) {
        let out = self
            .git()
            .args(["ls-remote", "--symref"])
            .arg(&self.upstream)
            .arg("HEAD")
            .stdin(Stdio::null())
            .output();
        let Ok(Ok(out)) = tokio::time::timeout(std::time::Duration::from_secs(120), out).await
        else {
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(target) = text
            .lines()
            .find_map(|l| l.strip_prefix("ref: "))
            .and_then(|l| l.split('\t').next())
        {
            if crate::pktline::valid_refname(target) {
                let _ = self
                    .git()
                    .args(["symbolic-ref", "HEAD", target])
                    .stdin(Stdio::null())
                    .output()
                    .await;
            }
        }
    }

    /// All refs of the mirror, name → id.
    pub async fn refs(&self) -> std::result::Result<BTreeMap<String, String>, GitFailure> {
        let out = self
            .git()
            .args(["for-each-ref", "--format=%(objectname) %(refname)"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| GitFailure(format!("cannot run git for-each-ref: {e}")))?;
        if !out.status.success() {
            return Err(GitFailure(
                self.env.scrub(&String::from_utf8_lossy(&out.stderr)),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, name)| (name.to_owned(), id.to_owned()))
            .collect())
    }
}

fn diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<RefMove> {
    let zero = || "0".repeat(40);
    let mut moved = Vec::new();
    for (name, new) in after {
        match before.get(name) {
            Some(old) if old == new => {}
            Some(old) => moved.push(RefMove {
                name: name.clone(),
                old: old.clone(),
                new: new.clone(),
            }),
            None => moved.push(RefMove {
                name: name.clone(),
                old: zero(),
                new: new.clone(),
            }),
        }
    }
    for (name, old) in before {
        if !after.contains_key(name) {
            moved.push(RefMove {
                name: name.clone(),
                old: old.clone(),
                new: zero(),
            });
        }
    }
    moved
}
