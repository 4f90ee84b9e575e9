//! The one integration-test binary of bottle-manifest.
mod suite;
