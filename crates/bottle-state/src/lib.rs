//! The bot-bottle state store: everything `$BOT_BOTTLE_HOME` holds and the rules for changing it.
//!
//! This crate owns the on-disk layout (see [`Home`] and [`BottlePaths`]), the per-bottle
//! `metadata.json` ([`Metadata`], written atomically), slug minting ([`mint_slug`]), the locks
//! that keep concurrent `start`s apart ([`HomeLock`], [`BottleLock`]), per-bottle resource
//! indexes ([`allocate_index`]), crash detection ([`is_crashed`]) and the data behind
//! `bot-bottle list` ([`list_rows`]).
//!
//! **No secret is ever stored in metadata.** This crate deliberately does not depend on
//! `bottle-config`, so a `Secret` cannot even be put into [`Metadata`]; secret *files* (the CA
//! key) are written through [`write_secret_file`] with mode 0600 and never read back here.

mod error;
mod fsutil;
mod home;
mod list;
mod lock;
mod metadata;
mod slug;
mod store;

pub use error::{Error, Result};
pub use fsutil::{write_atomic, write_secret_file};
pub use home::{BottlePaths, Home, HOME_ENV};
pub use list::{humanize_age, list_rows, ListRow};
pub use lock::{BottleLock, HomeLock};
pub use metadata::{Metadata, ProvisionedKeyRecord, Resources, Status, SCHEMA_VERSION};
pub use slug::{candidate_slug, mint_slug, validate_name, validate_slug, SlugRng};
pub use store::{
    allocate_index, allocate_index_avoiding, create_bottle, is_crashed, list, read, remove, update,
    ListEntry, NewBottle, StartedBottle,
};
