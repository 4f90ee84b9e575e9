//! Integration tests of bottle-gitgate (one binary, see tests/suite/): a real sshd serving
//! bare repos as the upstream, the real git client as the agent.
// Test helpers outside #[test] fns are not covered by clippy.toml's allow-*-in-tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::print_stdout
)]

mod suite;
