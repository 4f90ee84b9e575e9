//! `bot-bottle plan MANIFEST`: the resolved plan, no side effects (the slug shown is a preview:
//! `start` mints the real one).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bottle_plan::{build, render, Input, Overrides};

use crate::cli::PlanArgs;
use crate::exit::Outcome;

/// `$BOT_BOTTLE_HOME` or `~/.bot-bottle`.
pub fn bot_home() -> anyhow::Result<PathBuf> {
    if let Some(h) = std::env::var_os("BOT_BOTTLE_HOME") {
        return Ok(PathBuf::from(h));
    }
    let home = std::env::var_os("HOME").context("neither BOT_BOTTLE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".bot-bottle"))
}

/// Loads and validates a manifest (errors name file:line:col and the fix), with its absolute path.
pub fn load_manifest(path: &Path) -> anyhow::Result<(bottle_manifest::Manifest, PathBuf)> {
    let abs =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let loaded = bottle_manifest::load(&abs).map_err(|e| {
        anyhow::Error::new(crate::exit::Failure {
            code: 1,
            hint: None,
        })
        .context(e.to_string())
    })?;
    Ok((loaded.manifest, abs))
}

pub fn run(a: PlanArgs) -> Outcome {
    let (mut manifest, path) = load_manifest(&a.manifest)?;
    if let Some(n) = a.name {
        manifest.name = n;
    }
    let home = bot_home()?;
    let env = |k: &str| std::env::var(k).ok();
    let slug = format!("{}-xxxxxx", manifest.name);
    let plan = build(Input {
        manifest: &manifest,
        manifest_path: &path,
        bot_home: &home,
        slug: &slug,
        overrides: Overrides {
            label: a.label,
            color: a.color,
            backend: a.backend.map(Into::into),
            dockerfile: a.dockerfile,
        },
        host_env: &env,
    })?;
    let text = if a.json {
        render::json(&plan)?
    } else {
        render::human(&plan)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if a.json {
        writeln!(out)?;
    }
    Ok(0)
}
