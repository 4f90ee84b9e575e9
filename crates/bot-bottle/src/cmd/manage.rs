//! `attach`, `stop`, `rm` (commands on existing bottles, each on the backend recorded in the
//! bottle's metadata) and `doctor` (engine checks, then the self-test in `selftest`).

use std::io::Write;

use anyhow::Context;
use bottle_plan::{build, Input, Overrides};
use bottle_state::{BottleLock, Home, Status};

use super::lifecycle;
use crate::cli::{DoctorArgs, NameArg, RmArgs};
use crate::exit::{Failure, Outcome};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Runtime::new()?)
}

/// `attach NAME`: a new session of the agent command in a running bottle.
pub fn attach(a: NameArg) -> Outcome {
    runtime()?.block_on(async {
        let home = Home::from_env()?;
        let slug = super::find_bottle(&home, &a.name)?;
        let meta = bottle_state::read(&home, &slug)?;
        let backend = lifecycle::backend_named(&meta.backend).await?;
        let status = backend.status(&slug).await?;
        if status.summary() != "running" {
            return Err(anyhow::Error::new(Failure {
                code: 1,
                hint: Some(format!(
                    "`bot-bottle resume {slug}` starts a kept bottle again"
                )),
            })
            .context(format!("{slug} is not running ({})", status.summary())));
        }
        let (manifest, _) = super::plan::load_manifest(&meta.manifest_path)?;
        let env = |k: &str| std::env::var(k).ok();
        let plan = build(Input {
            manifest: &manifest,
            manifest_path: &meta.manifest_path,
            bot_home: home.root(),
            slug: &slug,
            overrides: Overrides {
                label: meta.label.clone(),
                color: meta.color.clone(),
                ..Default::default()
            },
            host_env: &env,
        })?;
        // Values from the host or the terminal were never stored: resolve them again.
        let agent_env = bottle_plan::resolve::agent_env(&plan, &env, &mut lifecycle::TtyPrompter)?;
        backend.set_session_env(&slug, &agent_env);
        let (guard, io) =
            super::start::session_io(meta.label.as_deref(), &meta.name, meta.color.as_deref())?;
        let code = backend
            .attach(&slug, &plan.agent, &plan.agent.command, io)
            .await;
        drop(guard);
        Ok(u8::try_from(code?).unwrap_or(1))
    })
}

/// `stop NAME`: stop the containers, keep everything for `resume`.
pub fn stop(a: NameArg) -> Outcome {
    runtime()?.block_on(async {
        let home = Home::from_env()?;
        let slug = super::find_bottle(&home, &a.name)?;
        let meta = bottle_state::read(&home, &slug)?;
        let backend = lifecycle::backend_named(&meta.backend).await?;
        backend.stop(&slug).await?;
        bottle_state::update(&home, &slug, |m| {
            m.status = Status::Preserved;
            m.keep = true;
        })?;
        writeln!(std::io::stdout().lock(), "stopped {slug}")?;
        Ok(0)
    })
}

/// `rm NAME`: containers, networks, keys, state.
pub fn rm(a: RmArgs) -> Outcome {
    runtime()?.block_on(async {
        let home = Home::from_env()?;
        let slug = super::find_bottle(&home, &a.name)?;
        let backend_name = match bottle_state::read(&home, &slug) {
            Ok(m) => m.backend,
            // A crashed start may have left no readable metadata: docker is the only backend
            // that can have created anything in this build.
            Err(_) => "docker".to_string(),
        };
        let lock = BottleLock::try_acquire(&home, &slug)?.with_context(|| {
            format!("{slug} is in use by a running bot-bottle process; exit its agent or `bot-bottle stop` it first")
        })?;
        lifecycle::teardown(&home, &slug, &backend_name, lock, a.force).await?;
        writeln!(std::io::stdout().lock(), "removed {slug}")?;
        Ok(0)
    })
}

/// `doctor`: engine checks, then (unless `--quick`) the fail-closed self-test.
pub fn doctor(a: DoctorArgs) -> Outcome {
    runtime()?.block_on(async {
        let mut out = std::io::stdout().lock();
        let mut failed = 0;
        let mut check = |name: &str, r: anyhow::Result<String>| match r {
            Ok(detail) => {
                let _ = writeln!(out, "ok    {name}: {detail}");
            }
            Err(e) => {
                failed += 1;
                let _ = writeln!(out, "FAIL  {name}: {e:#}");
            }
        };
        if matches!(
            a.backend,
            Some(crate::cli::BackendArg::Smolvm | crate::cli::BackendArg::AppleContainer)
        ) {
            check(
                "backend",
                Err(anyhow::anyhow!(
                    "only the docker backend is implemented in this build"
                )),
            );
        }
        let home = Home::from_env().map_err(anyhow::Error::from);
        check(
            "state home",
            home.as_ref()
                .map(|h| h.root().display().to_string())
                .map_err(|e| anyhow::anyhow!("{e}")),
        );
        let docker = bottle_backend::docker::DockerBackend::connect().await;
        match &docker {
            Ok(d) => {
                let v = d.client().version().await;
                check(
                    "docker engine",
                    v.map(|v| {
                        format!(
                            "{} (API {})",
                            v.version.unwrap_or_default(),
                            v.api_version.unwrap_or_default()
                        )
                    })
                    .map_err(Into::into),
                );
                let base = d.client().inspect_image("debian:bookworm-slim").await;
                check(
                    "base image debian:bookworm-slim",
                    base.map(|_| "present".to_string()).map_err(|e| {
                        anyhow::anyhow!(
                            "{e}; build it with `.ci/base-images.sh` (no registry is reachable)"
                        )
                    }),
                );
            }
            Err(e) => check("docker engine", Err(anyhow::anyhow!("{e}; start dockerd"))),
        }
        // Which `bottle-sidecar` the sidecar image gets: the host's, or compiled in the engine.
        let origin = match &docker {
            Ok(d) => d.sidecar_origin().await,
            Err(_) => bottle_backend::find_sidecar_binary()
                .map(bottle_backend::docker::SidecarOrigin::Binary),
        };
        check(
            "sidecar binary",
            origin
                .map(|o| match o {
                    bottle_backend::docker::SidecarOrigin::Binary(p) => p.display().to_string(),
                    bottle_backend::docker::SidecarOrigin::Source => format!(
                        "built from source in the engine as {} (the first start compiles it)",
                        bottle_backend::docker::sidecar_source_tag()
                    ),
                })
                .map_err(Into::into),
        );
        if !a.quick {
            let engine_ok = docker.is_ok();
            match (engine_ok, home) {
                (true, Ok(home)) => match super::selftest::run(&home).await {
                    Ok(probes) => {
                        for p in probes {
                            check(&format!("self-test: {}", p.name), p.result);
                        }
                    }
                    Err(e) => check(
                        "self-test",
                        Err(e.context("cannot bring up the probe bottle")),
                    ),
                },
                _ => check(
                    "self-test",
                    Err(anyhow::anyhow!(
                        "skipped: needs the docker engine and a state home"
                    )),
                ),
            }
        }

        if failed > 0 {
            writeln!(out, "{failed} check(s) failed")?;
            Ok(1)
        } else {
            Ok(0)
        }
    })
}
