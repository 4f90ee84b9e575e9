//! The crate's one integration-test binary.

// Helpers outside `#[test]` functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod suite;
