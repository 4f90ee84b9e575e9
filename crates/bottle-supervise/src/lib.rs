//! Supervise: the agent's line to its operator.
//!
//! Always built (what the host CLI links): the request/answer data types ([`types`]), bottle
//! discovery from `$BOT_BOTTLE_HOME` ([`endpoint`]), the control-API client ([`client`]), the
//! script-facing operations ([`ops`]) and the operator console ([`console`]).
//!
//! With the `server` feature (what the sidecar links): the MCP server and the control-API server
//! (`server`), built from a [`bottle_config::SuperviseConfig`].

pub mod client;
pub mod color;
pub mod console;
pub mod endpoint;
pub mod error;
pub mod ops;
pub mod types;

pub use endpoint::{endpoints_from_home, BottleEndpoint, BottleRef, Discovery};
pub use error::{Error, Result};

#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub use server::{Supervise, SuperviseBuilder, SuperviseHandle};
