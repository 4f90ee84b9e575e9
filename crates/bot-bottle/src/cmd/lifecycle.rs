//! The bottle lifecycle shared by `start`, `resume`, `stop`, `rm`: bring-up on a backend, and
//! teardown that always runs in the same order — containers and networks first (the guest must
//! be gone before its key is revoked), then deploy keys, then the state folder.
//!
//! A failed revocation is an error the user sees; the key id stays in the bottle's metadata so
//! `rm` can retry.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use bottle_backend::docker::DockerBackend;
use bottle_backend::Backend;
use bottle_config::{CaMaterial, Secret};
use bottle_plan::resolve::{self, Prompter, ResolveInput};
use bottle_plan::{GitCredentialPlan, Plan};
use bottle_state::{Home, ProvisionedKeyRecord};

/// Random hex token (admin and control API bearer tokens).
pub fn random_token() -> anyhow::Result<Secret> {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(Secret::new(
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
}

/// The backend recorded for a bottle (only docker is built in so far).
pub async fn backend_named(name: &str) -> anyhow::Result<Box<dyn Backend>> {
    match name {
        "docker" => {
            Ok(Box::new(DockerBackend::connect().await.context(
                "cannot reach the Docker engine (is dockerd running?)",
            )?))
        }
        other => Err(crate::exit::not_available(
            &format!("the {other} backend"),
            "only the docker backend is implemented in this build",
        )),
    }
}

/// `?prompt` answers from the terminal, without echo.
pub struct TtyPrompter;

impl Prompter for TtyPrompter {
    fn ask(&mut self, name: &str) -> Result<String, String> {
        let mut p = bottle_manifest::env::TtyPrompter;
        bottle_manifest::env::Prompter::ask(&mut p, name).map_err(|e| e.to_string())
    }
}

/// Mints deploy keys for `provisioned_key` entries, recording each key id in metadata as soon
/// as the forge answers (so a crash after that still lets `rm` revoke it).
pub async fn mint_deploy_keys(
    home: &Home,
    plan: &Plan,
    host_env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<BTreeMap<String, Secret>> {
    let mut keys = BTreeMap::new();
    for g in &plan.sidecar.git {
        let GitCredentialPlan::Provisioned {
            forge,
            api,
            repo,
            token,
            read_only,
            ..
        } = &g.credential
        else {
            continue;
        };
        let token_secret = resolve::read_secret(
            token,
            &format!("git `{}` provisioned_key", g.name),
            host_env,
        )?;
        let kind = forge_kind(*forge);
        let title = format!("bot-bottle {}", plan.slug);
        let pair = bottle_forge::generate_keypair(&title)?;
        let client = bottle_forge::client(kind, api, repo, token_secret)?;
        let id = client
            .create(&title, &pair.public_openssh, *read_only)
            .await
            .with_context(|| format!("cannot register a deploy key for git `{}`", g.name))?;
        let token_env = match token {
            bottle_plan::SecretRef::HostVar { var } => var.clone(),
            bottle_plan::SecretRef::CodexAuth { .. } => String::new(),
        };
        bottle_state::update(home, &plan.slug, |m| {
            m.provisioned_keys.push(ProvisionedKeyRecord {
                repo: repo.clone(),
                forge: forge_name(*forge).to_string(),
                api: api.clone(),
                key_id: id.0.clone(),
                title: title.clone(),
                token_env,
            })
        })?;
        keys.insert(g.name.clone(), pair.private_openssh);
    }
    Ok(keys)
}

fn forge_kind(f: bottle_plan::Forge) -> bottle_forge::ForgeKind {
    match f {
        bottle_plan::Forge::Gitea => bottle_forge::ForgeKind::Gitea,
        bottle_plan::Forge::Github => bottle_forge::ForgeKind::Github,
        bottle_plan::Forge::Gitlab => bottle_forge::ForgeKind::Gitlab,
    }
}

fn forge_name(f: bottle_plan::Forge) -> &'static str {
    match f {
        bottle_plan::Forge::Gitea => "gitea",
        bottle_plan::Forge::Github => "github",
        bottle_plan::Forge::Gitlab => "gitlab",
    }
}

/// Revokes every deploy key recorded for the bottle. Keys revoked are dropped from metadata;
/// failures stay recorded and are returned together.
pub async fn revoke_keys(home: &Home, slug: &str) -> anyhow::Result<()> {
    let meta = bottle_state::read(home, slug)?;
    let mut failures = Vec::new();
    for k in &meta.provisioned_keys {
        let result = async {
            let kind = match k.forge.as_str() {
                "gitea" => bottle_forge::ForgeKind::Gitea,
                "github" => bottle_forge::ForgeKind::Github,
                "gitlab" => bottle_forge::ForgeKind::Gitlab,
                other => anyhow::bail!("unknown forge `{other}` in metadata"),
            };
            let token = std::env::var(&k.token_env).map_err(|_| {
                anyhow::anyhow!("host environment variable `{}` is not set", k.token_env)
            })?;
            let client = bottle_forge::client(kind, &k.api, &k.repo, Secret::new(token))?;
            client
                .delete(&bottle_forge::KeyId(k.key_id.clone()))
                .await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                bottle_state::update(home, slug, |m| {
                    m.provisioned_keys.retain(|x| x.key_id != k.key_id)
                })?;
            }
            Err(e) => failures.push(format!("{} key {} on {}: {e:#}", k.forge, k.key_id, k.repo)),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(anyhow::Error::new(crate::exit::Failure {
            code: 1,
            hint: Some(format!(
                "the key ids stay in {}; fix the cause and run `bot-bottle rm {slug}` to retry",
                home.bottle(slug)?.metadata().display()
            )),
        })
        .context(format!(
            "could not revoke deploy keys: {}",
            failures.join("; ")
        )))
    }
}

/// Tears a bottle down: backend resources, then keys, then state (audit logs are kept under
/// `$BOT_BOTTLE_HOME/logs/<slug>/`). With `force`, state is removed even if revocation failed.
pub async fn teardown(
    home: &Home,
    slug: &str,
    backend_name: &str,
    lock: bottle_state::BottleLock,
    force: bool,
) -> anyhow::Result<()> {
    let _ = bottle_state::update(home, slug, |m| m.status = bottle_state::Status::Removing);
    let backend = backend_named(backend_name).await?;
    backend
        .down(slug)
        .await
        .with_context(|| format!("cannot remove the containers of {slug}"))?;
    let revoked = revoke_keys(home, slug).await;
    if revoked.is_err() && !force {
        let _ = bottle_state::update(home, slug, |m| m.status = bottle_state::Status::Failed);
        return revoked;
    }
    keep_audit_logs(home, slug);
    bottle_state::remove(home, lock)?;
    revoked
}

/// Moves the audit logs out of the bottle folder before it is deleted.
fn keep_audit_logs(home: &Home, slug: &str) {
    if let Ok(paths) = home.bottle(slug) {
        let dest = home.root().join("logs").join(slug);
        if std::fs::create_dir_all(home.root().join("logs")).is_ok() {
            let _ = std::fs::rename(paths.audit_dir(), dest);
        }
    }
}

/// Cleans what crashed `start`s left: bottles whose lock is free and status still `starting`.
pub async fn reap_crashed(home: &Home) {
    let Ok(entries) = bottle_state::list(home) else {
        return;
    };
    for e in entries.into_iter().flatten() {
        if bottle_state::is_crashed(home, &e.slug).unwrap_or(false) {
            if let Ok(Some(lock)) = bottle_state::BottleLock::try_acquire(home, &e.slug) {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(
                    err,
                    "bot-bottle: cleaning {} left by a crashed start",
                    e.slug
                );
                if let Err(e) = teardown(home, &e.slug, &e.backend, lock, false).await {
                    let _ = writeln!(err, "bot-bottle: {e:#}");
                }
            }
        }
    }
}

/// Builds the resolve input for a plan on the docker backend at network `index`.
pub fn resolve_input<'a>(
    host_env: &'a dyn Fn(&str) -> Option<String>,
    prompter: &'a mut dyn Prompter,
    ca: &bottle_tls::Ca,
    index: u32,
    control_token: Secret,
    provisioned_keys: BTreeMap<String, Secret>,
) -> anyhow::Result<ResolveInput<'a>> {
    let extra_roots_pem = match std::env::var_os("BOT_BOTTLE_EXTRA_CA_FILE") {
        Some(p) => Some(std::fs::read_to_string(&p).with_context(|| {
            format!(
                "cannot read BOT_BOTTLE_EXTRA_CA_FILE {}",
                p.to_string_lossy()
            )
        })?),
        None => None,
    };
    Ok(ResolveInput {
        host_env,
        prompter,
        ca: CaMaterial {
            cert_pem: ca.cert_pem().to_string(),
            key_pem: Secret::new(ca.key_pem()),
        },
        endpoints: bottle_backend::docker::endpoints(index)?,
        admin_token: random_token()?,
        control_token,
        provisioned_keys,
        audit_dir: bottle_backend::docker::SIDECAR_AUDIT_DIR.into(),
        state_dir: bottle_backend::docker::SIDECAR_STATE_DIR.into(),
        extra_roots_pem,
    })
}

/// Writes `supervise.json` (0600): where the host reaches the bottle's control API, and its
/// token (the supervise crate owns the file's format; the console reads it back).
pub fn write_supervise_json(
    home: &Home,
    slug: &str,
    control_url: &str,
    token: &Secret,
) -> anyhow::Result<()> {
    bottle_supervise::endpoint::write_supervise_file(home.bottle(slug)?.dir(), control_url, token)?;
    Ok(())
}
