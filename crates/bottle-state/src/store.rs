//! Reading and changing bottles: create, read, update, list, allocate indexes, detect crashed
//! starts, remove.
//!
//! Every write of `metadata.json` is atomic (see [`crate::write_atomic`]) and every
//! read-modify-write happens under the home lock, so concurrent `start`s, `list`s and `rm`s
//! never see a torn file or lose an update.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngCore;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::fsutil::{create_private_dir_all, sync_dir, write_atomic, SECRET_MODE};
use crate::home::{BottlePaths, Home};
use crate::lock::{BottleLock, HomeLock};
use crate::metadata::{now_rfc3339, Metadata, Resources, Status, SCHEMA_VERSION};
use crate::slug::mint_slug_locked;

/// One entry of [`list`]: the bottle's metadata, or its slug and why it could not be read.
pub type ListEntry = std::result::Result<Metadata, (String, Error)>;

/// What a `start` knows about a bottle before the slug exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBottle {
    /// The manifest's `name` (slug prefix).
    pub name: String,
    /// Display label.
    pub label: Option<String>,
    /// ANSI colour name.
    pub color: Option<String>,
    /// Backend name.
    pub backend: String,
    /// Provider name.
    pub provider: String,
    /// The manifest's path.
    pub manifest_path: PathBuf,
    /// Keep the bottle after exit.
    pub keep: bool,
}

/// A bottle just created by [`create_bottle`]: its metadata (status `starting`) and its lock,
/// which the `start` process holds until it exits.
#[derive(Debug)]
pub struct StartedBottle {
    /// The metadata as written.
    pub metadata: Metadata,
    /// The bottle's lock; dropping it makes a still-`starting` bottle look crashed.
    pub lock: BottleLock,
}

/// Creates a bottle: mints and reserves a slug, creates its folders (0700), takes its lock and
/// writes `metadata.json` with status `starting` — all under the home lock, so a concurrent
/// `rm` or [`is_crashed`] never sees it half made.
pub fn create_bottle<R: RngCore + ?Sized>(
    home: &Home,
    new: &NewBottle,
    rng: &mut R,
) -> Result<StartedBottle> {
    let _home_lock = HomeLock::acquire(home)?;
    let lock = mint_slug_locked(home, &new.name, rng)?;
    let paths = home.bottle(lock.slug())?;
    let now = now_rfc3339();
    let metadata = Metadata {
        schema: SCHEMA_VERSION,
        slug: lock.slug().to_string(),
        name: new.name.clone(),
        label: new.label.clone(),
        color: new.color.clone(),
        backend: new.backend.clone(),
        provider: new.provider.clone(),
        status: Status::Starting,
        created: now.clone(),
        updated: now,
        manifest_path: new.manifest_path.clone(),
        resources: Resources::default(),
        provisioned_keys: Vec::new(),
        keep: new.keep,
    };
    let made = paths
        .subdirs()
        .iter()
        .try_for_each(|d| create_private_dir_all(d))
        .and_then(|()| write_metadata(&paths, &metadata));
    if let Err(e) = made {
        // Leave nothing half made behind; if this fails too, `rm` finds the remains.
        let _ = fs::remove_dir_all(paths.dir());
        return Err(e);
    }
    Ok(StartedBottle { metadata, lock })
}

/// Reads a bottle's metadata.
pub fn read(home: &Home, slug: &str) -> Result<Metadata> {
    read_paths(&home.bottle(slug)?)
}

fn read_paths(paths: &BottlePaths) -> Result<Metadata> {
    let path = paths.metadata();
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let slug = paths.slug().to_string();
            return Err(if paths.dir().is_dir() {
                Error::MissingMetadata { slug }
            } else {
                Error::NotFound { slug }
            });
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    // Check the schema first so a newer file gets a clear message, not a parse error.
    #[derive(Deserialize)]
    struct Schema {
        schema: u32,
    }
    let schema =
        serde_json::from_slice::<Schema>(&bytes).map_err(|source| Error::CorruptMetadata {
            path: path.clone(),
            source,
        })?;
    if schema.schema != SCHEMA_VERSION {
        return Err(Error::UnsupportedSchema {
            path,
            found: schema.schema,
            expected: SCHEMA_VERSION,
        });
    }
    serde_json::from_slice(&bytes).map_err(|source| Error::CorruptMetadata { path, source })
}

fn write_metadata(paths: &BottlePaths, metadata: &Metadata) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(metadata).map_err(|source| Error::Serialize {
        slug: paths.slug().to_string(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(&paths.metadata(), &bytes, SECRET_MODE)
}

/// Read-modify-write of a bottle's metadata under the home lock; sets `updated` and returns
/// the metadata as written. The closure must not change the slug.
pub fn update(home: &Home, slug: &str, f: impl FnOnce(&mut Metadata)) -> Result<Metadata> {
    let paths = home.bottle(slug)?;
    let _home_lock = HomeLock::acquire(home)?;
    let mut metadata = read_paths(&paths)?;
    f(&mut metadata);
    if metadata.slug != slug {
        return Err(Error::SlugChanged {
            slug: slug.to_string(),
        });
    }
    metadata.schema = SCHEMA_VERSION;
    metadata.updated = now_rfc3339();
    write_metadata(&paths, &metadata)?;
    Ok(metadata)
}

/// Every bottle in the home, sorted by slug. A bottle whose metadata is missing or corrupt is
/// an `Err((slug, error))` entry, not a failure of the whole list.
pub fn list(home: &Home) -> Result<Vec<ListEntry>> {
    let dir = home.bottles_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read directory", dir, e)),
    };
    let mut slugs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
        let name = entry.file_name();
        // Dot entries are temp files and folders being removed; anything else that is not a
        // valid slug is not ours.
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        slugs.push(name.to_string());
    }
    slugs.sort();
    let mut out = Vec::with_capacity(slugs.len());
    for slug in slugs {
        let result = home.bottle(&slug).and_then(|p| read_paths(&p));
        match result {
            Ok(m) => out.push(Ok(m)),
            // Removed between read_dir and now: it is simply gone.
            Err(Error::NotFound { .. }) => {}
            Err(e) => out.push(Err((slug, e))),
        }
    }
    Ok(out)
}

/// Allocates the lowest index of `kind` in `0..max` that no other bottle in the home has
/// recorded, records it in `slug`'s `resources.indexes[kind]`, and returns it. Idempotent: a
/// bottle that already has an index of this kind gets it back. Bottles of every status count
/// as users until they are removed; a bottle whose metadata cannot be read is skipped.
pub fn allocate_index(home: &Home, slug: &str, kind: &str, max: u32) -> Result<u32> {
    allocate_index_avoiding(home, slug, kind, max, &BTreeSet::new())
}

/// [`allocate_index`], also skipping `avoid`: indexes known to be taken outside this home (a
/// backend's engine is shared by every home on the machine, e.g. other users' or tests' homes).
pub fn allocate_index_avoiding(
    home: &Home,
    slug: &str,
    kind: &str,
    max: u32,
    avoid: &BTreeSet<u32>,
) -> Result<u32> {
    let paths = home.bottle(slug)?;
    let _home_lock = HomeLock::acquire(home)?;
    let mut metadata = read_paths(&paths)?;
    if let Some(&i) = metadata.resources.indexes.get(kind) {
        return Ok(i);
    }
    let mut used: BTreeSet<u32> = list(home)?
        .into_iter()
        .filter_map(|entry| entry.ok())
        .filter(|m| m.slug != slug)
        .filter_map(|m| m.resources.indexes.get(kind).copied())
        .collect();
    used.extend(avoid.iter().copied());
    let index = (0..max)
        .find(|i| !used.contains(i))
        .ok_or_else(|| Error::IndexesExhausted {
            kind: kind.to_string(),
            max,
        })?;
    metadata.resources.indexes.insert(kind.to_string(), index);
    metadata.updated = now_rfc3339();
    write_metadata(&paths, &metadata)?;
    Ok(index)
}

/// Whether the bottle's `start` crashed: nobody holds its lock, and its status is still
/// `starting` (or it has no metadata at all). A live `start` holds the lock, so it is never
/// reported crashed; a corrupt metadata file is returned as an error.
pub fn is_crashed(home: &Home, slug: &str) -> Result<bool> {
    let paths = home.bottle(slug)?;
    // Under the home lock, a bottle being created is either not there yet or fully locked.
    let _home_lock = HomeLock::acquire(home)?;
    let Some(_probe) = BottleLock::try_acquire(home, slug)? else {
        return Ok(false);
    };
    match read_paths(&paths) {
        Ok(m) => Ok(m.status == Status::Starting),
        Err(Error::MissingMetadata { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Distinguishes concurrent removals' hidden names within one process.
static REMOVE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Deletes the bottle's folder. Takes the bottle's lock to prove no live `start` owns it
/// (get it with [`BottleLock::try_acquire`]). The folder is first renamed to a hidden name, so
/// [`list`] never shows a half-deleted bottle and the slug is free at once.
pub fn remove(home: &Home, lock: BottleLock) -> Result<()> {
    let paths = home.bottle(lock.slug())?;
    let bottles = home.bottles_dir();
    let n = REMOVE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let hidden = bottles.join(format!(
        ".removing-{}-{}-{n}",
        lock.slug(),
        std::process::id()
    ));
    fs::rename(paths.dir(), &hidden).map_err(|e| Error::io("rename", paths.dir(), e))?;
    sync_dir(&bottles)?;
    drop(lock);
    fs::remove_dir_all(&hidden).map_err(|e| Error::io("remove", hidden, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slug::SlugRng;

    fn new_bottle(name: &str) -> NewBottle {
        NewBottle {
            name: name.into(),
            label: None,
            color: None,
            backend: "docker".into(),
            provider: "claude".into(),
            manifest_path: "/m/bottle.yaml".into(),
            keep: false,
        }
    }

    #[test]
    fn create_update_read_remove() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let started = create_bottle(&home, &new_bottle("app"), &mut SlugRng::seeded(3)).unwrap();
        let slug = started.metadata.slug.clone();
        assert_eq!(started.metadata.status, Status::Starting);
        let m = update(&home, &slug, |m| {
            m.status = Status::Running;
            m.resources.containers.push("c1".into());
        })
        .unwrap();
        assert_eq!(read(&home, &slug).unwrap(), m);
        assert!(matches!(
            update(&home, &slug, |m| m.slug = "other-000000".into()),
            Err(Error::SlugChanged { .. })
        ));
        remove(&home, started.lock).unwrap();
        assert!(matches!(read(&home, &slug), Err(Error::NotFound { .. })));
        assert!(list(&home).unwrap().is_empty());
    }

    #[test]
    fn newer_schema_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let started = create_bottle(&home, &new_bottle("app"), &mut SlugRng::seeded(3)).unwrap();
        let paths = home.bottle(&started.metadata.slug).unwrap();
        fs::write(paths.metadata(), br#"{"schema": 2}"#).unwrap();
        let err = read(&home, paths.slug()).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedSchema { found: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn allocate_index_is_idempotent_and_reuses_freed_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let mut rng = SlugRng::seeded(9);
        let a = create_bottle(&home, &new_bottle("a"), &mut rng).unwrap();
        let b = create_bottle(&home, &new_bottle("b"), &mut rng).unwrap();
        let sa = a.metadata.slug.clone();
        let sb = b.metadata.slug.clone();
        assert_eq!(allocate_index(&home, &sa, "subnet", 4).unwrap(), 0);
        assert_eq!(allocate_index(&home, &sa, "subnet", 4).unwrap(), 0);
        assert_eq!(allocate_index(&home, &sb, "subnet", 4).unwrap(), 1);
        assert_eq!(allocate_index(&home, &sb, "port", 4).unwrap(), 0);
        remove(&home, a.lock).unwrap();
        let c = create_bottle(&home, &new_bottle("c"), &mut rng).unwrap();
        assert_eq!(
            allocate_index(&home, &c.metadata.slug, "subnet", 4).unwrap(),
            0
        );
        let d = create_bottle(&home, &new_bottle("d"), &mut rng).unwrap();
        assert!(matches!(
            allocate_index(&home, &d.metadata.slug, "subnet", 2),
            Err(Error::IndexesExhausted { max: 2, .. })
        ));
    }
}
