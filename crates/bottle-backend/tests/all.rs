//! End-to-end tests of the docker backend on the real engine: bottles with a probe agent and a
//! fake "internet" (containers on the bottle's egress network). See `suite/harness.rs` for how
//! the sidecar binary is built and found and how cleanup works.
// clippy.toml allows these inside #[test] fns only; the harness helpers are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]
mod suite;
