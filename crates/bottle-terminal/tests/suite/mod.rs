//! Integration suites: exit paths of the identity guard in a child process.
mod signals;

/// The test-helper binary built from this crate.
pub const DEMO: &str = env!("CARGO_BIN_EXE_bottle-terminal-demo");
