//! Integration tests of the `bot-bottle` binary (one binary; cases live in `suite/`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]
mod suite;
