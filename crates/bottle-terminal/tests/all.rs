//! Integration tests for bottle-terminal: real processes, real signals, real tmux.
// Test helpers outside #[test] fns are not covered by clippy.toml's allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod suite;
