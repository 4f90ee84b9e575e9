//! The sidecar image built from source — the path a host takes whose own `bottle-sidecar`
//! cannot run in the engine (macOS, another architecture) — on the real engine: the
//! multi-stage build compiles the embedded sources, and the image's binary runs there, with git
//! and ssh beside it as in the image made from a host binary.

use std::collections::HashMap;
use std::process::{Command, Stdio};

use bottle_backend::docker::{sidecar_source_tag, DockerBackend, SidecarBuild, SidecarOrigin};

#[tokio::test]
async fn sidecar_image_builds_from_source_and_its_binary_runs() {
    assert!(
        image_exists("rust:1-slim-bookworm"),
        "the builder stage's image is missing: run .ci/rust-image.sh (no registry is reachable)"
    );
    let backend = DockerBackend::connect()
        .await
        .expect("docker engine")
        .with_sidecar_build(SidecarBuild::Source);
    assert_eq!(
        backend.sidecar_origin().await.unwrap(),
        SidecarOrigin::Source
    );
    let labels = HashMap::from([("bot-bottle.test".to_string(), "sidecar-source".to_string())]);
    let tag = backend.ensure_sidecar_image(&labels, false).await.unwrap();
    assert_eq!(tag, sidecar_source_tag());

    // With no config on stdin the sidecar stops with its own message: the compiled binary runs.
    let out = Command::new("docker")
        .args(["run", "--rm", "-i", &tag])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("bottle-sidecar: "), "{stderr}");

    let tools = Command::new("docker")
        .args(["run", "--rm", "--entrypoint", "sh", &tag, "-c"])
        .arg("git --version && ssh -V 2>&1 && test ! -e /src")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tools.stdout);
    assert!(tools.status.success(), "{text}");
    assert!(
        text.contains("git version") && text.contains("OpenSSH"),
        "{text}"
    );

    // The compile stage's images (toolchain and build output) are gone once the image is built.
    let left = Command::new("docker")
        .args(["images", "-q", "--filter", "dangling=true", "--filter"])
        .arg("label=bot-bottle.sidecar-build-stage=true")
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(left.trim().is_empty(), "build-stage images left: {left}");
}

fn image_exists(tag: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", tag])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Each rebuild of `bottle-sidecar` makes a new sidecar image; the ones it replaces go, unless a
/// container still uses one.
#[tokio::test]
async fn a_rebuilt_sidecar_binary_replaces_its_older_images() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("bottle-sidecar");
    std::fs::copy(super::harness::sidecar_binary(), &binary).unwrap();
    let backend = DockerBackend::connect()
        .await
        .expect("docker engine")
        .with_sidecar_binary(&binary)
        .with_sidecar_build(SidecarBuild::Binary);
    let labels = HashMap::from([("bot-bottle.test".to_string(), "sidecar-prune".to_string())]);
    // A rebuild: other bytes (trailing bytes leave an ELF runnable) and a newer time. With the
    // same bytes the engine's build cache would give the very same image under a second tag.
    let rebuild = |secs: u64| {
        use std::io::Write;
        let mut f = std::fs::File::options().append(true).open(&binary).unwrap();
        f.write_all(b"\0").unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    };

    rebuild(1_000_000);
    let first = backend.ensure_sidecar_image(&labels, false).await.unwrap();
    // A container made from the first image (as a kept bottle's sidecar would be), removed
    // even when an assertion fails.
    struct Holder(String);
    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let holder = Holder(format!("bb-test-prune-{}", std::process::id()));
    let created = Command::new("docker")
        .args(["create", "--name", &holder.0, &first])
        .output()
        .unwrap();
    assert!(created.status.success());

    rebuild(2_000_000);
    let second = backend.ensure_sidecar_image(&labels, false).await.unwrap();
    assert_ne!(first, second);
    assert!(image_exists(&first), "an image in use must stay");
    drop(holder);

    rebuild(3_000_000);
    let third = backend.ensure_sidecar_image(&labels, false).await.unwrap();
    assert!(image_exists(&third));
    assert!(
        !image_exists(&first) && !image_exists(&second),
        "older images stay"
    );
    let _ = Command::new("docker").args(["rmi", &third]).output();
}
