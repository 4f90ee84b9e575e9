//! The home's layout and modes: bottle folders 0700, secret files 0600 even under umask 0, and
//! never readable by others while being written.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bottle_state::{create_bottle, write_secret_file, Home, SlugRng};

use super::{new_bottle, spawn_self};

const CHILD_ENV: &str = "BOTTLE_STATE_TEST_UMASK_HOME";

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn check_layout(home: &Home) {
    let started = create_bottle(home, &new_bottle("modes"), &mut SlugRng::seeded(5)).unwrap();
    let b = home.bottle(&started.metadata.slug).unwrap();
    for d in [
        home.root().to_path_buf(),
        home.bottles_dir(),
        b.dir().to_path_buf(),
        b.ca_dir(),
        b.audit_dir(),
        b.sidecar_dir(),
        b.locks_dir(),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    assert_eq!(mode(&b.metadata()), 0o600);
    assert_eq!(mode(&b.lock()), 0o600);

    // Write the CA key many times while a watcher looks at every file in ca/: nothing there,
    // temp files included, may ever be readable by group or others.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let ca = b.ca_dir();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = 0u64;
            while !stop.load(Ordering::SeqCst) {
                for entry in fs::read_dir(&ca).unwrap() {
                    let entry = entry.unwrap();
                    // The file may be renamed away between listing and stat.
                    if let Ok(meta) = fs::symlink_metadata(entry.path()) {
                        seen += 1;
                        let m = meta.permissions().mode() & 0o777;
                        assert_eq!(m & 0o077, 0, "{:?} had mode {m:o}", entry.file_name());
                    }
                }
            }
            seen
        })
    };
    for i in 0..300 {
        write_secret_file(&b.ca_key(), format!("key material {i}").as_bytes()).unwrap();
        write_secret_file(&b.supervise_state(), b"{}").unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    assert!(watcher.join().unwrap() > 0);
    assert_eq!(mode(&b.ca_key()), 0o600);
    assert_eq!(mode(&b.supervise_state()), 0o600);
    assert_eq!(fs::read(b.ca_key()).unwrap(), b"key material 299");
}

#[test]
fn folders_are_0700_and_secret_files_0600() {
    let dir = tempfile::tempdir().unwrap();
    check_layout(&Home::at(dir.path().join("state")));
}

/// The same checks in a child process whose umask is 0, so nothing relies on the umask.
#[test]
fn modes_hold_under_umask_0() {
    if let Some(home) = std::env::var_os(CHILD_ENV) {
        rustix::process::umask(rustix::fs::Mode::empty());
        check_layout(&Home::at(Path::new(&home).join("state")));
        println!("CHECKED=yes");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_self(
        "suite::layout::modes_hold_under_umask_0",
        &[(CHILD_ENV, dir.path())],
    );
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(super::child_values(&out.stdout, "CHECKED"), ["yes"]);
}
