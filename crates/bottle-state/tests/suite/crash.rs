//! Crash detection: a `start` that died leaves its bottle `starting` with the lock free, and
//! the next `start` or `rm` can tell that apart from a live one and clean it up.

use std::io::{BufRead, BufReader};

use bottle_state::{
    create_bottle, is_crashed, list, read, remove, update, BottleLock, Error, Home, SlugRng, Status,
};

use super::{new_bottle, spawn_self, value_in_line, wait_for_go};

const CHILD_ENV: &str = "BOTTLE_STATE_TEST_CRASH_HOME";

/// The parent starts a child `start` that creates a bottle and then waits; while the child
/// lives the bottle is not crashed and `rm` cannot take it; once the child dies without
/// finishing, the bottle is crashed and `rm` removes it.
#[test]
fn a_start_that_dies_is_detected_as_crashed_and_removable() {
    if let Some(home) = std::env::var_os(CHILD_ENV) {
        let home = Home::at(home);
        let started =
            create_bottle(&home, &new_bottle("crashy"), &mut SlugRng::from_entropy()).unwrap();
        println!("SLUG={}", started.metadata.slug);
        wait_for_go();
        // Exit without finishing or releasing anything, as a killed start would.
        std::process::exit(0);
    }
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let mut child = spawn_self(
        "suite::crash::a_start_that_dies_is_detected_as_crashed_and_removable",
        &[(CHILD_ENV, dir.path())],
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let slug = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| value_in_line(&l, "SLUG"))
        .expect("the child printed its slug");

    assert_eq!(read(&home, &slug).unwrap().status, Status::Starting);
    assert!(
        !is_crashed(&home, &slug).unwrap(),
        "a live start is not crashed"
    );
    assert!(BottleLock::try_acquire(&home, &slug).unwrap().is_none());

    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert!(is_crashed(&home, &slug).unwrap());

    let lock = BottleLock::try_acquire(&home, &slug).unwrap().unwrap();
    remove(&home, lock).unwrap();
    assert!(matches!(read(&home, &slug), Err(Error::NotFound { .. })));
    assert!(list(&home).unwrap().is_empty());
}

#[test]
fn finished_starts_are_not_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let started = create_bottle(&home, &new_bottle("ok"), &mut SlugRng::seeded(1)).unwrap();
    let slug = started.metadata.slug.clone();
    update(&home, &slug, |m| m.status = Status::Running).unwrap();
    drop(started.lock);
    assert!(!is_crashed(&home, &slug).unwrap());
}

#[test]
fn a_bottle_folder_without_metadata_and_lock_is_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    home.ensure().unwrap();
    std::fs::create_dir(home.bottles_dir().join("early-abcdef")).unwrap();
    assert!(is_crashed(&home, "early-abcdef").unwrap());
    let entries = list(&home).unwrap();
    assert!(matches!(
        &entries[..],
        [Err((slug, Error::MissingMetadata { .. }))] if slug == "early-abcdef"
    ));
}

#[test]
fn crash_check_of_an_unknown_bottle_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    assert!(matches!(
        is_crashed(&home, "ghost-000000"),
        Err(Error::NotFound { .. })
    ));
}
