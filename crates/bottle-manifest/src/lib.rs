//! `bottle.yaml`: the manifest's schema as serde types.
//!
//! This crate owns the manifest's shape (every field of SPEC §2), its strict validation
//! (unknown keys are errors; errors name file, line and column and say how to fix it), the
//! JSON Schema generated from the types, and host-environment resolution of `env` values.

pub mod types;

pub use types::*;
