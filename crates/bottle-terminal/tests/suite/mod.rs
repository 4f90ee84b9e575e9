//! Integration suites: exit paths of the identity guard in a child process, the start modal
//! and the identity driven through tmux, and the attach pump / resize events.
mod attach;
mod identity_tmux;
mod modal_tmux;
mod signals;
mod tmux;

/// The test-helper binary built from this crate.
pub const DEMO: &str = env!("CARGO_BIN_EXE_bottle-terminal-demo");
