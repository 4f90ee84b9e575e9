//! Interactive attach plumbing for backends: the raw-mode guard for the user's TTY.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Error, Result};

/// Set while a [`RawMode`] guard holds the TTY in raw mode, so the signal exit path
/// (which never runs destructors) can still give the user a cooked terminal back.
static RAW_MODE_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Puts the controlling TTY into raw mode; restores the previous mode on drop.
pub struct RawMode {
    _private: (),
}

impl RawMode {
    /// Enables raw mode (crossterm `enable_raw_mode`).
    pub fn enable() -> Result<Self> {
        crossterm::terminal::enable_raw_mode().map_err(Error::Terminal)?;
        RAW_MODE_ACTIVE.store(true, Ordering::SeqCst);
        Ok(RawMode { _private: () })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        RAW_MODE_ACTIVE.store(false, Ordering::SeqCst);
        // Nothing sensible to do if the TTY is already gone.
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Called by the identity guard's signal path right before `exit`.
pub(crate) fn restore_raw_mode_after_signal() {
    if RAW_MODE_ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}
