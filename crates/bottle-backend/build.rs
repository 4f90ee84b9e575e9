//! Embeds the sidecar's sources for the from-source sidecar image (`images/sidecar/Dockerfile.source`).
//!
//! On a host whose own `bottle-sidecar` cannot run in the engine's Linux (macOS with Docker
//! Desktop, a host of another architecture) the sidecar image is compiled inside the engine. The
//! CLI must then carry what that build needs, wherever it was installed: the workspace's
//! `Cargo.toml` and `Cargo.lock`, and `Cargo.toml` + `src/` of `bottle-sidecar` and every
//! workspace crate it depends on (found by following `path` dependencies, so a new dependency is
//! picked up without a list to keep). Written as a tar in `OUT_DIR` with fixed modes and times
//! (the same sources give the same bytes, and so the same image tag) with the Dockerfile under
//! the name `image.rs` builds with, and a hash of it in `BOT_BOTTLE_SIDECAR_SOURCE_HASH`.
//! Outside a workspace checkout (a published crate) the tar is empty and the CLI says that it
//! cannot build the sidecar from source.

// A build script talks to cargo on stdout (`cargo:` lines).
#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;
use std::hash::Hasher;
use std::path::{Path, PathBuf};

/// Must equal `DOCKERFILE_NAME` in src/docker/image.rs (a unit test there checks the tar).
const DOCKERFILE_NAME: &str = ".bot-bottle.Dockerfile";

type BuildResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BuildResult<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("sidecar-source.tar");
    let root = manifest_dir.join("../..");
    let tar = if root.join("Cargo.lock").is_file() && root.join("crates/bottle-sidecar").is_dir() {
        source_tar(&root)?
    } else {
        Vec::new()
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(&tar);
    println!(
        "cargo:rustc-env=BOT_BOTTLE_SIDECAR_SOURCE_HASH={:016x}",
        h.finish()
    );
    std::fs::write(out, tar)?;
    Ok(())
}

fn source_tar(root: &Path) -> BuildResult<Vec<u8>> {
    let crates = closure(root, "bottle-sidecar")?;
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for name in ["Cargo.toml", "Cargo.lock"] {
        files.push((name.to_string(), root.join(name)));
    }
    let dockerfile = root.join("images/sidecar/Dockerfile.source");
    files.push((DOCKERFILE_NAME.to_string(), dockerfile.clone()));
    for name in [
        "Cargo.toml",
        "Cargo.lock",
        "images/sidecar/Dockerfile.source",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(name).display());
    }
    for c in &crates {
        let dir = root.join("crates").join(c);
        files.push((format!("crates/{c}/Cargo.toml"), dir.join("Cargo.toml")));
        walk(&dir.join("src"), &format!("crates/{c}/src"), &mut files)?;
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
    }
    files.sort();
    let mut tar = tar::Builder::new(Vec::new());
    for (name, path) in files {
        let data =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, &name, data.as_slice())?;
    }
    Ok(tar.into_inner()?)
}

/// Every file under `dir`, named `prefix/<relative path>`.
fn walk(dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf)>) -> BuildResult<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &name, files)?;
        } else if kind.is_file() {
            files.push((name, entry.path()));
        }
    }
    Ok(())
}

/// `start` and the workspace crates it reaches through `path` dependencies (normal, build and
/// dev: cargo reads a member's dev-dependencies' manifests too).
fn closure(root: &Path, start: &str) -> BuildResult<BTreeSet<String>> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![start.to_string()];
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let dir = root.join("crates").join(&name);
        let text = std::fs::read_to_string(dir.join("Cargo.toml"))?;
        let manifest: toml::Table = toml::from_str(&text)?;
        let mut tables: Vec<&toml::Table> = Vec::new();
        for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
            if let Some(t) = manifest.get(key).and_then(toml::Value::as_table) {
                tables.push(t);
            }
        }
        if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
            for t in targets.values().filter_map(toml::Value::as_table) {
                for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
                    if let Some(t) = t.get(key).and_then(toml::Value::as_table) {
                        tables.push(t);
                    }
                }
            }
        }
        for dep in tables.iter().flat_map(|t| t.values()) {
            let Some(path) = dep.get("path").and_then(toml::Value::as_str) else {
                continue;
            };
            let target = dir.join(path).canonicalize()?;
            let Some(crate_name) = target.file_name().map(|n| n.to_string_lossy().into_owned())
            else {
                continue;
            };
            if target.parent() != root.join("crates").canonicalize().ok().as_deref() {
                return Err(format!(
                    "{name} depends on {} outside crates/: the from-source sidecar build would miss it",
                    target.display()
                )
                .into());
            }
            todo.push(crate_name);
        }
    }
    Ok(seen)
}
