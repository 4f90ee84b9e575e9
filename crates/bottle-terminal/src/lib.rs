//! Everything bot-bottle does to the user's terminal, and nothing else.
//!
//! * [`color`]: the ANSI colour names a manifest accepts and what each means on the wire
//!   (SGR foreground code, palette RGB, background tint).
//! * [`identity`]: the bottle's identity (`label (name)` plus an optional colour) and the exact
//!   escape sequences that show it (title, OSC 4/11 tints) and take it away again.
//! * [`guard`]: [`IdentityGuard`], which emits those sequences and guarantees the reset on every
//!   exit path: drop, `?`, panic, SIGINT/SIGTERM/SIGHUP.
//! * [`modal`]: the start modal asking for the label and colour.
//! * [`attach`]: raw mode, the stdin/stdout <-> agent byte pump, and window-size events.
//!
//! The crate depends on no other bot-bottle crate so the CLI and backends can share it freely.

pub mod attach;
pub mod color;
pub mod guard;
pub mod identity;
pub mod modal;

pub use color::{Color, Rgb, COLOR_NAMES};
pub use guard::{IdentityGuard, Resetter};
pub use identity::{colors_enabled, colors_enabled_from, paint, paint_with, sanitize, Identity};

/// Errors from this crate. Each says what failed; none carries secrets (labels are not secret).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A colour name outside [`COLOR_NAMES`].
    #[error("unknown colour {given:?}: valid colours are {valid}")]
    UnknownColor {
        /// What the user gave (truncated to 40 characters).
        given: String,
        /// The valid names, comma separated.
        valid: String,
    },
    /// Writing escape sequences to the terminal failed.
    #[error("writing terminal escape sequences: {0}")]
    Write(#[source] std::io::Error),
    /// Putting the terminal into or out of raw mode / the alternate screen failed.
    #[error("terminal mode: {0}")]
    Terminal(#[source] std::io::Error),
    /// Copying bytes between the user's terminal and the agent failed.
    #[error("attach stream ({direction}): {source}")]
    Pump {
        /// Which way the bytes were going.
        direction: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Installing the SIGINT/SIGTERM/SIGHUP handlers failed.
    #[error("installing signal handlers for the terminal reset: {0}")]
    SignalHooks(#[source] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
