//! `bot-bottle start`: plan, build, start sidecar and agent, provision, attach; tear down on
//! exit unless `--keep`. Also `resume`, which brings a kept bottle back with the same slug, CA
//! and deploy keys (read from the bottle's 0600 state).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use bottle_backend::{AttachIo, Backend, UpRequest};
use bottle_config::Secret;
use bottle_plan::{build, Input, Overrides, Plan};
use bottle_state::{BottleLock, Home, NewBottle, Status};
use bottle_terminal::{Color, Identity, IdentityGuard};

use super::lifecycle::{self, TtyPrompter};
use crate::cli::{NameArg, StartArgs};
use crate::exit::Outcome;

/// Runs `start`.
pub fn run(a: StartArgs) -> Outcome {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(start(a))
}

/// Runs `resume`.
pub fn resume(a: NameArg) -> Outcome {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(resume_async(a))
}

fn host_env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Label and colour: flags win; otherwise the modal on a TTY; otherwise the manifest's.
fn identity(
    a: &StartArgs,
    manifest: &bottle_manifest::Manifest,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    let tty = bottle_terminal::modal::stdio_is_tty();
    let mut label = a.label.clone().or_else(|| manifest.label.clone());
    let mut color = a.color.clone().or_else(|| manifest.color.clone());
    if let Some(c) = &color {
        c.parse::<Color>()?;
    }
    if bottle_terminal::modal::should_prompt(a.label.is_some(), a.color.is_some(), tty) {
        let default = label.clone().unwrap_or_else(|| manifest.name.clone());
        let preset = color.as_deref().and_then(|c| c.parse::<Color>().ok());
        match bottle_terminal::modal::ask_identity(&default, preset)? {
            Some((l, c)) => {
                label = (!l.trim().is_empty()).then(|| l.trim().to_string());
                color = c.map(|c| c.name().to_string());
            }
            None => anyhow::bail!("start cancelled"),
        }
    }
    Ok((label, color))
}

async fn start(a: StartArgs) -> Outcome {
    let home = Home::from_env()?;
    home.ensure()?;
    let (mut manifest, manifest_path) = super::plan::load_manifest(&a.manifest)?;
    if let Some(n) = &a.name {
        manifest.name = n.clone();
    }
    let (label, color) = identity(&a, &manifest)?;
    let backend_kind = a.backend.map(Into::into).unwrap_or(manifest.backend);
    let backend = lifecycle::backend_named(backend_kind.as_str()).await?;
    let Launched { slug, lock, plan } = launch(
        &home,
        backend.as_ref(),
        Launch {
            manifest: &manifest,
            manifest_path: &manifest_path,
            backend_kind,
            label,
            color,
            dockerfile: a.dockerfile.clone(),
            keep: a.keep,
        },
    )
    .await?;
    if a.detach {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{slug}")?;
        return Ok(0);
    }
    let code = attach_session(backend.as_ref(), &plan).await;
    finish(&home, backend_kind.as_str(), &slug, lock, a.keep, code).await
}

/// What [`launch`] needs besides the home and backend.
pub(crate) struct Launch<'a> {
    pub manifest: &'a bottle_manifest::Manifest,
    pub manifest_path: &'a std::path::Path,
    pub backend_kind: bottle_manifest::BackendKind,
    pub label: Option<String>,
    pub color: Option<String>,
    pub dockerfile: Option<PathBuf>,
    pub keep: bool,
}

/// A bottle brought up and marked running; its lock is held until dropped or torn down.
pub(crate) struct Launched {
    pub slug: String,
    pub lock: BottleLock,
    pub plan: Plan,
}

/// Creates the bottle's state, plans it, mints its CA and deploy keys and brings it up on the
/// backend. On any failure what it created is removed before the error is returned.
pub(crate) async fn launch(
    home: &Home,
    backend: &dyn Backend,
    l: Launch<'_>,
) -> anyhow::Result<Launched> {
    lifecycle::reap_crashed(home).await;
    let backend_kind = l.backend_kind;
    let started = bottle_state::create_bottle(
        home,
        &NewBottle {
            name: l.manifest.name.clone(),
            label: l.label.clone(),
            color: l.color.clone(),
            backend: backend_kind.as_str().to_string(),
            provider: l.manifest.agent.provider.clone(),
            manifest_path: l.manifest_path.to_path_buf(),
            keep: l.keep,
        },
        &mut bottle_state::SlugRng::from_entropy(),
    )?;
    let slug = started.metadata.slug.clone();
    let lock = started.lock;
    let result = async {
        let plan = build(Input {
            manifest: l.manifest,
            manifest_path: l.manifest_path,
            bot_home: home.root(),
            slug: &slug,
            overrides: Overrides {
                label: l.label,
                color: l.color,
                backend: Some(backend_kind),
                dockerfile: l.dockerfile,
            },
            host_env: &host_env,
        })?;
        bottle_state::update(home, &slug, |m| {
            m.resources.containers = vec![
                plan.resources.agent_container.clone(),
                plan.resources.sidecar_container.clone(),
            ];
            m.resources.networks = vec![
                plan.resources.internal_network.clone(),
                plan.resources.egress_network.clone(),
            ];
            m.resources.images = vec![plan.image.tag.clone()];
        })?;
        let paths = home.bottle(&slug)?;
        let ca = bottle_tls::Ca::generate(&format!("bot-bottle {slug}"))?;
        ca.save(&paths.ca_cert(), &paths.ca_key())?;
        let keys = lifecycle::mint_deploy_keys(home, &plan, &host_env).await?;
        for (name, key) in &keys {
            let path = paths.dir().join("keys").join(name);
            std::fs::create_dir_all(paths.dir().join("keys"))?;
            bottle_state::write_secret_file(&path, key.expose().as_bytes())?;
        }
        let control_token = lifecycle::random_token()?;
        bring_up(home, backend, &plan, &ca, keys, control_token).await?;
        Ok::<Plan, anyhow::Error>(plan)
    }
    .await;
    match result {
        Ok(plan) => Ok(Launched { slug, lock, plan }),
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "bot-bottle: start failed; removing what it created");
            if let Err(t) =
                lifecycle::teardown(home, &slug, backend_kind.as_str(), lock, true).await
            {
                let _ = writeln!(err, "bot-bottle: {t:#}");
            }
            Err(e)
        }
    }
}

/// After the agent exits: keep (stop, status preserved) or tear down.
async fn finish(
    home: &Home,
    backend: &str,
    slug: &str,
    lock: BottleLock,
    keep: bool,
    code: anyhow::Result<i64>,
) -> Outcome {
    let exit = match &code {
        Ok(c) => u8::try_from(*c).unwrap_or(1),
        Err(_) => 1,
    };
    if keep {
        let b = lifecycle::backend_named(backend).await?;
        b.stop(slug).await?;
        bottle_state::update(home, slug, |m| m.status = Status::Preserved)?;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "bot-bottle: kept {slug}; `bot-bottle resume {slug}` brings it back"
        );
        drop(lock);
    } else {
        lifecycle::teardown(home, slug, backend, lock, false).await?;
    }
    code.map(|_| exit)
}

/// Resolves secrets and brings the bottle up on the backend; marks it running.
async fn bring_up(
    home: &Home,
    backend: &dyn Backend,
    plan: &Plan,
    ca: &bottle_tls::Ca,
    keys: BTreeMap<String, Secret>,
    control_token: Secret,
) -> anyhow::Result<()> {
    let slug = &plan.slug;
    let kind = bottle_backend::docker::INDEX_KIND;
    let mut taken = backend.indexes_in_use().await?;
    let mut prompter = TtyPrompter;
    let mut attempt = 0;
    let access = loop {
        attempt += 1;
        let index = bottle_state::allocate_index_avoiding(
            home,
            slug,
            kind,
            bottle_backend::docker::MAX_INDEX,
            &taken,
        )?;
        let input = lifecycle::resolve_input(
            &host_env,
            &mut prompter,
            ca,
            index,
            control_token.clone(),
            keys.clone(),
        )?;
        let resolved = bottle_plan::resolve::resolve(plan, input)?;
        let paths = home.bottle(slug)?;
        let up = backend
            .up(UpRequest {
                plan,
                sidecar: &resolved.sidecar,
                agent_env: &resolved.agent_env,
                audit_dir: &paths.audit_dir(),
                state_dir: &paths.sidecar_dir(),
                index,
                progress: true,
            })
            .await;
        match up {
            Ok(access) => break access,
            // Another home's start took the same subnets between our look and our create (the
            // engine is shared): clean up, skip that index, try the next.
            Err(e) if attempt < 5 && e.to_string().contains("overlaps") => {
                backend.down(slug).await?;
                taken.insert(index);
                bottle_state::update(home, slug, |m| {
                    m.resources.indexes.remove(kind);
                })?;
            }
            Err(e) => return Err(e.into()),
        }
    };
    lifecycle::write_supervise_json(home, slug, &access.control_url, &control_token)?;
    bottle_state::update(home, slug, |m| m.status = Status::Running)?;
    Ok(())
}

/// The session's terminal: on a TTY the bottle's identity is shown (the guard resets it when
/// reset or dropped) and the agent gets a TTY; otherwise plain pipes and no escape sequences.
pub(crate) fn session_io(
    label: Option<&str>,
    name: &str,
    color: Option<&str>,
) -> anyhow::Result<(Option<IdentityGuard<std::io::Stdout>>, AttachIo)> {
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !interactive {
        return Ok((None, AttachIo::Pipes));
    }
    let color = color.and_then(|c| c.parse::<Color>().ok());
    let guard = IdentityGuard::new(&Identity::new(label, name, color), std::io::stdout())?;
    Ok((Some(guard), AttachIo::Terminal))
}

/// Attaches the terminal to the agent with the bottle's identity shown, and always reset.
async fn attach_session(backend: &dyn Backend, plan: &Plan) -> anyhow::Result<i64> {
    let (guard, io) = session_io(plan.label.as_deref(), &plan.name, plan.color.as_deref())?;
    let attach = backend.attach(&plan.slug, &plan.agent, &plan.agent.command, io);
    let result = tokio::select! {
        r = attach => r.map_err(anyhow::Error::from),
        s = terminate_signal() => Err(anyhow::anyhow!("received {s}; tearing the bottle down")),
    };
    if let Some(g) = &guard {
        let _ = g.reset();
    }
    result
}

/// Resolves on SIGTERM or SIGHUP (SIGINT reaches the agent as a keystroke in raw mode).
async fn terminate_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
        _ = int.recv() => "SIGINT",
    }
}

async fn resume_async(a: NameArg) -> Outcome {
    let home = Home::from_env()?;
    let slug = super::find_bottle(&home, &a.name)?;
    let meta = bottle_state::read(&home, &slug)?;
    let lock = BottleLock::try_acquire(&home, &slug)?
        .with_context(|| format!("{slug} is in use by another bot-bottle process"))?;
    let backend = lifecycle::backend_named(&meta.backend).await?;
    let (manifest, _) = super::plan::load_manifest(&meta.manifest_path)
        .with_context(|| format!("cannot re-read the manifest of {slug}"))?;
    let plan = build(Input {
        manifest: &manifest,
        manifest_path: &meta.manifest_path,
        bot_home: home.root(),
        slug: &slug,
        overrides: Overrides {
            label: meta.label.clone(),
            color: meta.color.clone(),
            backend: None,
            dockerfile: None,
        },
        host_env: &host_env,
    })?;
    let paths = home.bottle(&slug)?;
    let ca = bottle_tls::Ca::from_pem(
        &std::fs::read_to_string(paths.ca_cert())?,
        &std::fs::read_to_string(paths.ca_key())?,
    )?;
    let mut keys = BTreeMap::new();
    for g in &plan.sidecar.git {
        let p: PathBuf = paths.dir().join("keys").join(&g.name);
        if let Ok(k) = std::fs::read_to_string(&p) {
            keys.insert(g.name.clone(), Secret::new(k));
        }
    }
    let index = meta
        .resources
        .indexes
        .get(bottle_backend::docker::INDEX_KIND)
        .copied()
        .context("the bottle has no network index recorded")?;
    let control_token = lifecycle::random_token()?;
    let mut prompter = TtyPrompter;
    let input = lifecycle::resolve_input(
        &host_env,
        &mut prompter,
        &ca,
        index,
        control_token.clone(),
        keys,
    )?;
    let resolved = bottle_plan::resolve::resolve(&plan, input)?;
    let access = backend
        .resume(UpRequest {
            plan: &plan,
            sidecar: &resolved.sidecar,
            agent_env: &resolved.agent_env,
            audit_dir: &paths.audit_dir(),
            state_dir: &paths.sidecar_dir(),
            index,
            progress: true,
        })
        .await?;
    lifecycle::write_supervise_json(&home, &slug, &access.control_url, &control_token)?;
    bottle_state::update(&home, &slug, |m| m.status = Status::Running)?;
    let code = attach_session(backend.as_ref(), &plan).await;
    finish(&home, &meta.backend, &slug, lock, meta.keep, code).await
}
