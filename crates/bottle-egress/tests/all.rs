//! Integration tests of the egress proxy with real clients (curl, reqwest, tungstenite) and
//! real upstreams on 127.0.0.1.
// clippy.toml allows these inside #[test] fns only; the harness helpers are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]
mod suite;
