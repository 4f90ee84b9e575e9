//! Image builds: the agent image from the plan's Dockerfile and context, the sidecar image from
//! `images/sidecar/Dockerfile` plus the host-built `bottle-sidecar` binary. A tag that already
//! exists is reused (tags carry a content hash), which keeps warm starts fast.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::engine;
use crate::{Error, Result};

/// The sidecar image's Dockerfile (bundled so the CLI needs no source tree at run time).
pub const SIDECAR_DOCKERFILE: &str = include_str!("../../../../images/sidecar/Dockerfile");

/// Name of the Dockerfile inside the build contexts we send (never clashes with the user's).
const DOCKERFILE_NAME: &str = ".bot-bottle.Dockerfile";

/// True when the image exists locally.
pub async fn exists(docker: &Docker, tag: &str) -> Result<bool> {
    match docker.inspect_image(tag).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(docker_err(format!("inspect image {tag}"), e)),
    }
}

fn docker_err(op: String, e: bollard::errors::Error) -> Error {
    engine(op)(e)
}

/// The sidecar image tag for a binary: changes whenever the binary or Dockerfile changes.
pub fn sidecar_tag(binary: &Path) -> Result<String> {
    let meta = std::fs::metadata(binary).map_err(|source| Error::Read {
        path: binary.to_path_buf(),
        source,
    })?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let key = format!(
        "{SIDECAR_DOCKERFILE}\n{}\n{}\n{mtime}",
        binary.display(),
        meta.len()
    );
    Ok(format!(
        "bot-bottle/sidecar:{}",
        bottle_plan::build::short_hash(&key)
    ))
}

/// Tar of the sidecar build context: the Dockerfile and the binary.
pub fn sidecar_context(binary: &Path) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    // The engine's tar reader rejects GNU sparse entries (a large debug binary may be sparse).
    tar.sparse(false);
    append_bytes(
        &mut tar,
        DOCKERFILE_NAME,
        SIDECAR_DOCKERFILE.as_bytes(),
        0o644,
    )?;
    let mut f = std::fs::File::open(binary).map_err(|source| Error::Read {
        path: binary.to_path_buf(),
        source,
    })?;
    tar.append_file("bottle-sidecar", &mut f)
        .map_err(Error::Tar)?;
    tar.into_inner().map_err(Error::Tar)
}

/// Tar of an agent build context: the context folder (if any) plus the plan's Dockerfile text.
pub fn agent_context(dockerfile: &str, context_dir: Option<&Path>) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.sparse(false);
    tar.follow_symlinks(false);
    if let Some(dir) = context_dir {
        tar.append_dir_all(".", dir).map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    append_bytes(&mut tar, DOCKERFILE_NAME, dockerfile.as_bytes(), 0o644)?;
    tar.into_inner().map_err(Error::Tar)
}

pub(crate) fn append_bytes(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    data: &[u8],
    mode: u32,
) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, data).map_err(Error::Tar)
}

/// Build arguments from the host: `BUILD_CA_CERT`, the PEM named by `BOT_BOTTLE_BUILD_CA_CERT`,
/// for machines whose package registries sit behind a TLS-intercepting proxy (Dockerfiles that
/// declare `ARG BUILD_CA_CERT` trust it for their downloads only). A CA certificate is public,
/// so it may appear in the image's history; never pass a secret this way.
fn build_args() -> HashMap<String, String> {
    let mut args = HashMap::new();
    if let Some(path) = std::env::var_os("BOT_BOTTLE_BUILD_CA_CERT") {
        if let Ok(pem) = std::fs::read_to_string(path) {
            args.insert("BUILD_CA_CERT".to_string(), pem);
        }
    }
    args
}

/// Builds `tag` from a context tar unless it exists. Progress (the build's last output line)
/// is shown on stderr when `progress` is set and stderr is a terminal.
pub async fn ensure(
    docker: &Docker,
    tag: &str,
    context: impl FnOnce() -> Result<Vec<u8>>,
    labels: &HashMap<String, String>,
    progress: bool,
) -> Result<()> {
    if exists(docker, tag).await? {
        return Ok(());
    }
    let bar = if progress {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}") {
        bar.set_style(style);
    }
    bar.set_prefix(format!("building {tag}"));
    bar.enable_steady_tick(Duration::from_millis(120));
    let context = context()?;
    let buildargs = build_args();
    let opts = BuildImageOptionsBuilder::default()
        .dockerfile(DOCKERFILE_NAME)
        .t(tag)
        .rm(true)
        .forcerm(true)
        .labels(labels)
        .buildargs(&buildargs)
        .build();
    let mut stream = docker.build_image(opts, None, Some(bollard::body_full(Bytes::from(context))));
    let mut tail: Vec<String> = Vec::new();
    let mut failure: Option<String> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(s) = info.stream.as_deref() {
                    for line in s.lines().map(str::trim).filter(|l| !l.is_empty()) {
                        bar.set_message(line.to_string());
                        tail.push(line.to_string());
                    }
                    if tail.len() > 20 {
                        let cut = tail.len() - 20;
                        tail.drain(..cut);
                    }
                }
                if let Some(err) = info.error_detail.and_then(|d| d.message) {
                    failure = Some(err);
                }
            }
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    bar.finish_and_clear();
    if let Some(message) = failure {
        return Err(Error::Build {
            image: tag.to_string(),
            message: format!("{message}\n{}", tail.join("\n")),
        });
    }
    if !exists(docker, tag).await? {
        return Err(Error::Build {
            image: tag.to_string(),
            message: format!(
                "the engine reported no error but no image was tagged\n{}",
                tail.join("\n")
            ),
        });
    }
    Ok(())
}
