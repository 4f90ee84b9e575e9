//! Slugs: `<name>-<6 chars of [a-z0-9]>`, unique among the bottles in a home.
//!
//! Uniqueness comes from the filesystem, not from luck: [`mint_slug`] reserves a candidate by
//! creating its directory with `mkdir` (which fails if it exists) while holding the home lock,
//! and takes the bottle's lock before letting go, so a slug's directory never exists unlocked
//! and without metadata except after a crash. Given a seeded RNG the sequence of candidates is
//! deterministic, which the planner's snapshot tests rely on.

use std::io;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::fsutil::{create_private_dir, sync_dir};
use crate::home::Home;
use crate::lock::{BottleLock, HomeLock};

/// Length of the random suffix.
pub const SUFFIX_LEN: usize = 6;
/// Longest accepted bottle name (the manifest enforces the same bound).
pub const MAX_NAME_LEN: usize = 40;
/// Longest accepted slug.
const MAX_SLUG_LEN: usize = 64;
/// Candidates tried before giving up (36^6 suffixes: reaching this means something is wrong).
const MAX_ATTEMPTS: u32 = 1000;
const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// The RNG slugs are drawn from: ChaCha8, seeded for reproducible plans or from the OS.
/// Using this type keeps callers independent of the `rand` version; any `RngCore` also works.
#[derive(Debug, Clone)]
pub struct SlugRng(ChaCha8Rng);

impl SlugRng {
    /// A deterministic generator: the same seed gives the same slugs.
    pub fn seeded(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A generator seeded from the operating system.
    pub fn from_entropy() -> Self {
        Self(ChaCha8Rng::from_entropy())
    }
}

impl RngCore for SlugRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rand::Error> {
        self.0.try_fill_bytes(dest)
    }
}

/// Checks a bottle name: `[a-z0-9-]`, 1–40 chars, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 40 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("only lowercase letters, digits and `-` are allowed")
    } else if name.starts_with('-') {
        Some("it must start with a letter or digit")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks that a slug is a plain directory name: `[a-z0-9-]`, 1–64 chars, not starting with
/// `-`. Anything path-like (`/`, `..`, a leading `.`) is refused.
pub fn validate_slug(slug: &str) -> Result<()> {
    let ok = !slug.is_empty()
        && slug.len() <= MAX_SLUG_LEN
        && !slug.starts_with('-')
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSlug {
            slug: slug.to_string(),
        })
    }
}

/// One candidate slug for `name`, without touching the disk (for `bot-bottle plan`).
pub fn candidate_slug<R: RngCore + ?Sized>(name: &str, rng: &mut R) -> Result<String> {
    validate_name(name)?;
    let mut slug = String::with_capacity(name.len() + 1 + SUFFIX_LEN);
    slug.push_str(name);
    slug.push('-');
    for _ in 0..SUFFIX_LEN {
        let i = rng.gen_range(0..ALPHABET.len());
        slug.push(char::from(ALPHABET[i]));
    }
    Ok(slug)
}

/// Mints and reserves a slug for `name`: creates `bottles/<slug>/` (0700) under the home lock
/// and returns the bottle's lock, already held. Most callers want [`crate::create_bottle`],
/// which also writes the initial metadata.
pub fn mint_slug<R: RngCore + ?Sized>(home: &Home, name: &str, rng: &mut R) -> Result<BottleLock> {
    let _home_lock = HomeLock::acquire(home)?;
    mint_slug_locked(home, name, rng)
}

/// [`mint_slug`] for a caller that already holds the home lock.
pub(crate) fn mint_slug_locked<R: RngCore + ?Sized>(
    home: &Home,
    name: &str,
    rng: &mut R,
) -> Result<BottleLock> {
    validate_name(name)?;
    let bottles = home.bottles_dir();
    for _ in 0..MAX_ATTEMPTS {
        let slug = candidate_slug(name, rng)?;
        let dir = bottles.join(&slug);
        match create_private_dir(&dir) {
            Ok(()) => {
                sync_dir(&bottles)?;
                // Nobody else can have it: the directory is brand new and we hold the home lock.
                return BottleLock::try_acquire(home, &slug)?.ok_or(Error::Busy { slug });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create directory", dir, e)),
        }
    }
    Err(Error::SlugsExhausted {
        name: name.to_string(),
        attempts: MAX_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_candidates_are_deterministic_and_well_formed() {
        let a = candidate_slug("app", &mut SlugRng::seeded(7)).unwrap();
        let b = candidate_slug("app", &mut SlugRng::seeded(7)).unwrap();
        let c = candidate_slug("app", &mut SlugRng::seeded(8)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let suffix = a.strip_prefix("app-").unwrap();
        assert_eq!(suffix.len(), SUFFIX_LEN);
        assert!(suffix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        validate_slug(&a).unwrap();
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        for (name, why) in [
            ("", "empty"),
            ("Bad", "lowercase"),
            ("a/b", "lowercase"),
            ("-a", "start"),
            (&"x".repeat(41), "40"),
        ] {
            let err = validate_name(name).unwrap_err().to_string();
            assert!(err.contains(why), "{name}: {err}");
        }
        validate_name("claude-implementer").unwrap();
    }

    #[test]
    fn minting_skips_taken_slugs_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let first = candidate_slug("app", &mut SlugRng::seeded(1)).unwrap();
        let lock = mint_slug(&home, "app", &mut SlugRng::seeded(1)).unwrap();
        assert_eq!(lock.slug(), first);
        // Same seed again: the first candidate is taken, so the second one is used.
        let mut rng = SlugRng::seeded(1);
        candidate_slug("app", &mut rng).unwrap();
        let second = candidate_slug("app", &mut rng).unwrap();
        let lock2 = mint_slug(&home, "app", &mut SlugRng::seeded(1)).unwrap();
        assert_eq!(lock2.slug(), second);
        assert!(home.bottles_dir().join(&first).is_dir());
    }
}
