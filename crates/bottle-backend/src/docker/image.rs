//! Image builds: the agent image from the plan's Dockerfile and context, the sidecar image from
//! `images/sidecar/Dockerfile` plus the host-built `bottle-sidecar` binary — or, when the host's
//! binary cannot run in the engine's Linux (macOS, another architecture) or is missing, from
//! `images/sidecar/Dockerfile.source`, a multi-stage build that compiles the sidecar's sources
//! embedded in this crate (build.rs). A tag that already exists is reused (tags carry a content
//! hash), which keeps warm starts fast.

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
/// build.rs names the from-source sidecar's Dockerfile the same.
const DOCKERFILE_NAME: &str = ".bot-bottle.Dockerfile";

/// The from-source sidecar image's build context, made by build.rs: the Dockerfile, the
/// workspace's Cargo.toml and Cargo.lock, and the sources of `bottle-sidecar` and the workspace
/// crates it uses. Empty when this crate was built outside its source tree.
const SIDECAR_SOURCE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sidecar-source.tar"));

/// Where the sidecar image's `bottle-sidecar` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SidecarOrigin {
    /// This host-built binary, copied in.
    Binary(std::path::PathBuf),
    /// Compiled inside the engine from the embedded sources.
    Source,
}

/// How the origin is chosen: `BOT_BOTTLE_SIDECAR_BUILD` = `auto` (the default), `binary` or
/// `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SidecarBuild {
    /// The host's binary when it runs in the engine and is found; otherwise from source.
    #[default]
    Auto,
    /// Always the host's binary (an error when it is not found).
    Binary,
    /// Always from source.
    Source,
}

impl SidecarBuild {
    /// The mode `BOT_BOTTLE_SIDECAR_BUILD` names (unset or empty: `auto`).
    pub fn from_env() -> Result<Self> {
        match std::env::var("BOT_BOTTLE_SIDECAR_BUILD").as_deref() {
            Err(_) | Ok("") | Ok("auto") => Ok(Self::Auto),
            Ok("binary") => Ok(Self::Binary),
            Ok("source") => Ok(Self::Source),
            Ok(other) => Err(Error::SidecarBuildMode {
                value: other.to_string(),
            }),
        }
    }
}

/// The engine's name for a Rust target architecture (`docker version`'s `Arch`).
fn engine_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Why a binary built for `host_os`/`host_arch` (Rust's names) cannot run in an engine that
/// reports `engine_os`/`engine_arch`; `None` when it can.
pub fn host_binary_mismatch(
    host_os: &str,
    host_arch: &str,
    engine_os: &str,
    engine_arch_name: &str,
) -> Option<String> {
    if host_os != "linux" {
        return Some(format!(
            "the host is {host_os}, the engine runs {engine_os} containers"
        ));
    }
    if engine_os != "linux" || engine_arch(host_arch) != engine_arch_name {
        return Some(format!(
            "the host binary is linux/{}, the engine runs {engine_os}/{engine_arch_name}",
            engine_arch(host_arch)
        ));
    }
    None
}

/// Picks the origin: `mismatch` is why the host's binary cannot run in the engine (see
/// [`host_binary_mismatch`]), `binary` where the host's binary is, if found.
pub fn choose_origin(
    build: SidecarBuild,
    mismatch: Option<String>,
    binary: Result<std::path::PathBuf>,
) -> Result<SidecarOrigin> {
    let source = |why: String| {
        if SIDECAR_SOURCE.is_empty() {
            Err(Error::NoSidecarSource { why })
        } else {
            Ok(SidecarOrigin::Source)
        }
    };
    match (build, mismatch, binary) {
        (SidecarBuild::Binary, _, binary) => binary.map(SidecarOrigin::Binary),
        (SidecarBuild::Source, _, _) => source("BOT_BOTTLE_SIDECAR_BUILD=source".into()),
        (SidecarBuild::Auto, Some(why), _) => source(why),
        (SidecarBuild::Auto, None, Ok(path)) => Ok(SidecarOrigin::Binary(path)),
        (SidecarBuild::Auto, None, Err(e)) => source(e.to_string()),
    }
}

/// The from-source sidecar image's tag: changes whenever the embedded sources or Dockerfile do.
pub fn sidecar_source_tag() -> String {
    format!(
        "bot-bottle/sidecar:src-{}",
        env!("BOT_BOTTLE_SIDECAR_SOURCE_HASH")
    )
}

/// The from-source sidecar image's build context (see [`SIDECAR_SOURCE`]).
pub fn sidecar_source_context() -> Result<Vec<u8>> {
    if SIDECAR_SOURCE.is_empty() {
        return Err(Error::NoSidecarSource {
            why: "asked for".into(),
        });
    }
    Ok(SIDECAR_SOURCE.to_vec())
}

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

/// Builds `tag` from a context tar unless it exists; true when it built. Progress (the build's
/// last output line) is shown on stderr when `progress` is set and stderr is a terminal.
pub async fn ensure(
    docker: &Docker,
    tag: &str,
    context: impl FnOnce() -> Result<Vec<u8>>,
    labels: &HashMap<String, String>,
    progress: bool,
) -> Result<bool> {
    if exists(docker, tag).await? {
        return Ok(false);
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
    Ok(true)
}

/// Label of the from-source build's compile stage (images/sidecar/Dockerfile.source).
pub const LABEL_BUILD_STAGE: &str = "bot-bottle.sidecar-build-stage";

/// Removes what the from-source build's compile stage left: its images are untagged once the
/// sidecar image is built and hold the toolchain and the build output (≈ 2 GB). Errors are
/// ignored, as in [`prune_sidecar_images`]. Another CLI version compiling its own sidecar at
/// the same moment could lose its finished compile stage between its two stages and fail; it
/// succeeds when run again (a rare race, accepted for the disk it saves).
pub async fn prune_build_stage(docker: &Docker) {
    let filters = HashMap::from([
        ("dangling".to_string(), vec!["true".to_string()]),
        (
            "label".to_string(),
            vec![format!("{LABEL_BUILD_STAGE}=true")],
        ),
    ]);
    let opts = bollard::query_parameters::PruneImagesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let _ = docker.prune_images(Some(opts)).await;
}

/// Label on a sidecar image naming where its binary came from (the binary's path, or
/// `source`): a newer build from the same origin makes the older images of it obsolete.
pub const LABEL_SIDECAR_ORIGIN: &str = "bot-bottle.sidecar-origin";

/// Removes the sidecar images built earlier from `origin` other than `keep` (each rebuild of
/// the binary makes a new image of a few hundred MB; without this they pile up). An image a
/// container still uses is left alone: the engine refuses it without `force`, and that refusal
/// is ignored, like any other here — pruning is housekeeping, never a reason to fail a start.
pub async fn prune_sidecar_images(docker: &Docker, origin: &str, keep: &str) {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_SIDECAR_ORIGIN}={origin}")],
    )]);
    let opts = bollard::query_parameters::ListImagesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let Ok(images) = docker.list_images(Some(opts)).await else {
        return;
    };
    for image in images {
        for tag in image.repo_tags.iter().filter(|t| t.as_str() != keep) {
            let _ = docker
                .remove_image(
                    tag,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_binary_runs_only_on_a_linux_engine_of_its_architecture() {
        assert_eq!(
            host_binary_mismatch("linux", "x86_64", "linux", "amd64"),
            None
        );
        assert_eq!(
            host_binary_mismatch("linux", "aarch64", "linux", "arm64"),
            None
        );
        let mac = host_binary_mismatch("macos", "aarch64", "linux", "arm64").unwrap();
        assert!(mac.contains("macos"), "{mac}");
        let arch = host_binary_mismatch("linux", "aarch64", "linux", "amd64").unwrap();
        assert!(
            arch.contains("linux/arm64") && arch.contains("linux/amd64"),
            "{arch}"
        );
    }

    #[test]
    fn origin_follows_the_mode_the_platform_and_the_binary() {
        let found = || Ok(std::path::PathBuf::from("/x/bottle-sidecar"));
        let missing = || Err(Error::SidecarBinary { searched: vec![] });
        let bin = SidecarOrigin::Binary("/x/bottle-sidecar".into());
        let auto = SidecarBuild::Auto;
        assert_eq!(choose_origin(auto, None, found()).unwrap(), bin);
        assert_eq!(
            choose_origin(auto, None, missing()).unwrap(),
            SidecarOrigin::Source
        );
        let mac = Some("the host is macos".to_string());
        assert_eq!(
            choose_origin(auto, mac, found()).unwrap(),
            SidecarOrigin::Source
        );
        let src = SidecarBuild::Source;
        assert_eq!(
            choose_origin(src, None, found()).unwrap(),
            SidecarOrigin::Source
        );
        let forced = SidecarBuild::Binary;
        let mac = Some("the host is macos".to_string());
        assert_eq!(choose_origin(forced, mac, found()).unwrap(), bin);
        assert!(matches!(
            choose_origin(forced, None, missing()),
            Err(Error::SidecarBinary { .. })
        ));
    }

    #[test]
    fn source_context_is_the_sidecar_crates_and_the_multi_stage_dockerfile() {
        let tar = sidecar_source_context().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut names = Vec::new();
        let mut dockerfile = String::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            if name == DOCKERFILE_NAME {
                std::io::Read::read_to_string(&mut entry, &mut dockerfile).unwrap();
            }
            names.push(name);
        }
        for want in [
            "Cargo.toml",
            "Cargo.lock",
            "crates/bottle-sidecar/Cargo.toml",
            "crates/bottle-sidecar/src/main.rs",
            "crates/bottle-egress/src/lib.rs",
            "crates/bottle-gitgate/src/lib.rs",
            "crates/bottle-tls/src/lib.rs",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        // Only what the sidecar needs: not the CLI, not the backend, no tests.
        assert!(!names.iter().any(|n| n.starts_with("crates/bot-bottle/")));
        assert!(!names
            .iter()
            .any(|n| n.starts_with("crates/bottle-backend/")));
        assert!(!names.iter().any(|n| n.contains("/tests/")));
        assert!(dockerfile.contains("AS build") && dockerfile.contains("COPY --from=build"));
        assert!(dockerfile.contains("cargo build --release -p bottle-sidecar"));
        assert!(sidecar_source_tag().starts_with("bot-bottle/sidecar:src-"));
    }
}
