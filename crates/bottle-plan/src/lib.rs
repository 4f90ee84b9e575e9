//! Manifest → Plan.
//!
//! This crate owns the provider catalogue (built-in providers as bundled data, user providers
//! from `$BOT_BOTTLE_HOME/providers/<name>/`), the pure step that turns a validated manifest into
//! a [`Plan`] (everything a backend needs, no secret values: only references to where secrets
//! come from), the human and JSON renderings of a plan, and the start-time step that resolves
//! the references into a [`bottle_config::SidecarConfig`] and the agent's environment.

pub mod build;
pub mod error;
pub mod plan;
pub mod provider;
pub mod render;
pub mod resolve;

pub use build::{build, Input, Overrides};
pub use error::{Error, Result};
pub use plan::*;
