//! Integration suites: exit paths of the identity guard in a child process, the start modal
//! driven through tmux, and the attach pump / resize events.
mod attach;
mod modal_tmux;
mod signals;

/// The test-helper binary built from this crate.
pub const DEMO: &str = env!("CARGO_BIN_EXE_bottle-terminal-demo");
