#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The sidecar's integration tests: its services wired together as `services::start` wires them.

mod suite;
