//! Integration tests of the state store against a real filesystem, with real threads and
//! real child processes (the test binary re-executes itself) competing for the same home.
// Test helpers outside #[test] fns are not covered by clippy.toml's allow-*-in-tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod suite;
