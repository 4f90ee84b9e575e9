//! 20 concurrent `start`s — as threads and as processes — minting slugs for the same name with
//! the same seed, writing and updating metadata and allocating indexes, while readers list the
//! home continuously and check that no file is ever seen half written.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;

use bottle_state::{
    allocate_index, create_bottle, is_crashed, list, update, Error, Home, SlugRng, Status,
};

use super::{child_values, new_bottle, spawn_self, wait_for_go};

const STARTS: usize = 20;
const UPDATES: usize = 8;
/// Enough container names to make metadata.json span several pages, so a non-atomic write
/// would be visible to the readers as a truncated or mixed file.
const CONTAINERS: usize = 300;
/// Every start uses the same seed: they all try the same candidate slugs in the same order,
/// which is the worst case for collisions.
const SEED: u64 = 42;
const CHILD_ENV: &str = "BOTTLE_STATE_TEST_CHILD_HOME";

/// One `start`'s worth of state work; returns the slug and the subnet index it got.
fn one_start(home: &Home) -> (String, u32) {
    let started = create_bottle(home, &new_bottle("app"), &mut SlugRng::seeded(SEED)).unwrap();
    let slug = started.metadata.slug.clone();
    for round in 0..UPDATES {
        update(home, &slug, |m| {
            m.resources.containers = (0..CONTAINERS)
                .map(|i| format!("bot-bottle-{}-container-{round}-{i}", m.slug))
                .collect();
        })
        .unwrap();
    }
    let index = allocate_index(home, &slug, "subnet", 256).unwrap();
    update(home, &slug, |m| m.status = Status::Running).unwrap();
    drop(started.lock);
    (slug, index)
}

struct Readers {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<(u64, Vec<String>)>>,
}

/// Readers that list the home in a loop until stopped, counting parsed metadata files and
/// recording anything that is neither valid nor "directory made, metadata not yet written".
fn start_readers(home: &Home) -> Readers {
    let stop = Arc::new(AtomicBool::new(false));
    let handles = (0..2)
        .map(|_| {
            let home = home.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut parsed = 0u64;
                let mut bad = Vec::new();
                loop {
                    // Check the flag before the pass so one more full pass runs after the
                    // writers are done.
                    let last = stop.load(Ordering::SeqCst);
                    for entry in list(&home).unwrap() {
                        match entry {
                            Ok(_) => parsed += 1,
                            Err((_, Error::MissingMetadata { .. })) => {}
                            Err((slug, e)) => bad.push(format!("{slug}: {e}")),
                        }
                    }
                    if last {
                        return (parsed, bad);
                    }
                }
            })
        })
        .collect();
    Readers { stop, handles }
}

impl Readers {
    fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let mut parsed = 0;
        for h in self.handles {
            let (n, bad) = h.join().unwrap();
            assert!(bad.is_empty(), "readers saw torn or invalid files: {bad:?}");
            parsed += n;
        }
        assert!(parsed > 0, "the readers never parsed a metadata file");
    }
}

/// What every run must end with: 20 distinct bottles, all valid and running, distinct indexes.
fn check_final_state(home: &Home, slugs: &[String], indexes: &[u32]) {
    let distinct: BTreeSet<_> = slugs.iter().collect();
    assert_eq!(distinct.len(), STARTS, "slugs collided: {slugs:?}");
    let distinct_indexes: BTreeSet<_> = indexes.iter().collect();
    assert_eq!(
        distinct_indexes.len(),
        STARTS,
        "indexes collided: {indexes:?}"
    );

    let entries = list(home).unwrap();
    assert_eq!(entries.len(), STARTS);
    for entry in entries {
        let m = entry.unwrap_or_else(|(slug, e)| panic!("{slug}: {e}"));
        assert!(distinct.contains(&m.slug));
        assert!(m.slug.starts_with("app-"));
        assert_eq!(m.status, Status::Running);
        assert_eq!(m.resources.containers.len(), CONTAINERS);
        let last = format!("bot-bottle-{}-container-{}-0", m.slug, UPDATES - 1);
        assert_eq!(m.resources.containers[0], last);
        assert!(!is_crashed(home, &m.slug).unwrap());
    }
}

#[test]
fn twenty_threads_start_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    home.ensure().unwrap();
    let readers = start_readers(&home);
    let barrier = Arc::new(Barrier::new(STARTS));
    let handles: Vec<_> = (0..STARTS)
        .map(|_| {
            let home = home.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                one_start(&home)
            })
        })
        .collect();
    let (slugs, indexes): (Vec<_>, Vec<_>) = handles.into_iter().map(|h| h.join().unwrap()).unzip();
    readers.finish();
    check_final_state(&home, &slugs, &indexes);
}

/// In the parent: spawns 20 copies of this test as children that each do one start. In a
/// child (the env var is set): does that one start and prints its slug and index.
#[test]
fn twenty_processes_start_at_once() {
    if let Some(home) = std::env::var_os(CHILD_ENV) {
        wait_for_go();
        let (slug, index) = one_start(&Home::at(home));
        println!("SLUG={slug}");
        println!("INDEX={index}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    home.ensure().unwrap();
    let mut children: Vec<_> = (0..STARTS)
        .map(|_| {
            spawn_self(
                "suite::concurrent::twenty_processes_start_at_once",
                &[(CHILD_ENV, dir.path())],
            )
        })
        .collect();
    let readers = start_readers(&home);
    // Go: closing the pipes releases every child at once.
    for child in &mut children {
        drop(child.stdin.take());
    }
    let mut slugs = Vec::new();
    let mut indexes = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a child start failed: {:?}",
            out.status
        );
        let s = child_values(&out.stdout, "SLUG");
        let i = child_values(&out.stdout, "INDEX");
        assert_eq!((s.len(), i.len()), (1, 1), "child output: {:?}", out.stdout);
        slugs.extend(s);
        indexes.push(i[0].parse().unwrap());
    }
    readers.finish();
    check_final_state(&home, &slugs, &indexes);
}
