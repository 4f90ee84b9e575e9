//! [`IdentityGuard`]: shows a bottle's identity on the terminal for as long as it lives and
//! guarantees the reset bytes are written exactly once on every way out — drop (normal return,
//! `?` propagation, unwinding panic), a panic hook (covers `panic = "abort"` and panics on
//! other threads), and SIGINT/SIGTERM/SIGHUP.
//!
//! Signals and the panic hook are process-global, so they are opt-in
//! ([`IdentityGuard::with_exit_hooks`]) and installed once per process. The signal handler runs
//! on a dedicated thread (signal-hook's self-pipe iterator, so no work happens in signal
//! context): it writes the active guard's reset, restores the TTY from raw mode if
//! [`crate::attach::RawMode`] put it there, and exits with `128 + signo` — the status a shell
//! reports for a process killed by that signal. The handler stays for the rest of the process
//! (signal handlers cannot be cleanly removed): after the guard is dropped a signal still exits
//! with `128 + signo`, like the default action, just without a reset to write. A caller that wants to do its own teardown on
//! signals (e.g. remove containers) should use [`IdentityGuard::new`] and call
//! [`Resetter::reset`] from its own handler instead.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, TryLockError, Weak};

use crate::identity::Identity;
use crate::{Error, Result};

/// Something that can write its reset bytes once; object-safe so the global hook can hold any
/// writer type.
trait ResetOnce: Send + Sync {
    /// Writes the reset if not done yet. `may_block` is false inside the panic hook, where the
    /// panicking thread might already hold the writer's lock.
    fn reset_once(&self, may_block: bool) -> std::io::Result<()>;
}

struct Shared<W> {
    writer: Mutex<W>,
    reset: Vec<u8>,
    done: AtomicBool,
}

impl<W: Write + Send> ResetOnce for Shared<W> {
    fn reset_once(&self, may_block: bool) -> std::io::Result<()> {
        let mut w = match self.writer.try_lock() {
            Ok(w) => w,
            // A panic while holding the lock leaves the writer usable; the reset matters more.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) if may_block => {
                self.writer.lock().unwrap_or_else(|p| p.into_inner())
            }
            Err(TryLockError::WouldBlock) => return Ok(()),
        };
        // Checked under the lock so concurrent callers (drop vs signal thread) write it once.
        if self.done.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        w.write_all(&self.reset)?;
        w.flush()
    }
}

/// The guard the exit hooks reset. Holding a `Weak` means a dropped guard is never touched.
static ACTIVE: Mutex<Option<Weak<dyn ResetOnce>>> = Mutex::new(None);
/// Result of installing the hooks, once per process.
static HOOKS: OnceLock<std::result::Result<(), String>> = OnceLock::new();

fn reset_active(may_block: bool) {
    let slot = match ACTIVE.try_lock() {
        Ok(s) => s.clone(),
        Err(TryLockError::Poisoned(p)) => p.into_inner().clone(),
        Err(TryLockError::WouldBlock) if may_block => {
            ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
        Err(TryLockError::WouldBlock) => None,
    };
    if let Some(active) = slot.and_then(|w| w.upgrade()) {
        // Best effort: on the way out there is nobody left to report a write error to.
        let _ = active.reset_once(may_block);
    }
}

fn install_exit_hooks() -> Result<()> {
    let installed = HOOKS.get_or_init(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| e.to_string())?;
        std::thread::Builder::new()
            .name("bottle-terminal-signals".into())
            .spawn(move || {
                if let Some(signo) = signals.forever().next() {
                    reset_active(true);
                    crate::attach::restore_raw_mode_after_signal();
                    std::process::exit(128 + signo);
                }
            })
            .map_err(|e| e.to_string())?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            reset_active(false);
            previous(info);
        }));
        Ok(())
    });
    installed
        .clone()
        .map_err(|e| Error::SignalHooks(std::io::Error::other(e)))
}

/// A cloneable, thread-safe handle that writes a guard's reset (once), e.g. from the caller's
/// own signal handling.
#[derive(Clone)]
pub struct Resetter(Arc<dyn ResetOnce>);

impl Resetter {
    /// Writes the reset bytes unless they were already written.
    pub fn reset(&self) -> Result<()> {
        self.0.reset_once(true).map_err(Error::Write)
    }
}

/// Shows an [`Identity`] on a terminal writer until dropped; see the module docs.
pub struct IdentityGuard<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
}

impl<W: Write + Send + 'static> IdentityGuard<W> {
    /// Writes [`Identity::set_sequence`] to `writer` (flushed) and returns the guard. No
    /// process-global hooks: drop (including unwinding) is the only automatic reset.
    pub fn new(identity: &Identity, mut writer: W) -> Result<Self> {
        writer
            .write_all(&identity.set_sequence())
            .and_then(|()| writer.flush())
            .map_err(Error::Write)?;
        Ok(IdentityGuard {
            shared: Arc::new(Shared {
                writer: Mutex::new(writer),
                reset: identity.reset_sequence(),
                done: AtomicBool::new(false),
            }),
        })
    }

    /// Like [`IdentityGuard::new`], and also makes this the guard that the process-wide panic
    /// hook and SIGINT/SIGTERM/SIGHUP handler reset (installed on first use; a signal then
    /// exits the process with `128 + signo`).
    pub fn with_exit_hooks(identity: &Identity, writer: W) -> Result<Self> {
        // Hooks first: if they cannot be installed nothing has been written yet.
        install_exit_hooks()?;
        let guard = IdentityGuard {
            shared: Arc::new(Shared {
                writer: Mutex::new(writer),
                reset: identity.reset_sequence(),
                done: AtomicBool::new(false),
            }),
        };
        // Registered before anything is written, so a signal arriving right after the set
        // sequence still finds the guard to reset.
        let as_dyn: Arc<dyn ResetOnce> = guard.shared.clone();
        *ACTIVE.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::downgrade(&as_dyn));
        {
            let mut w = guard
                .shared
                .writer
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            w.write_all(&identity.set_sequence())
                .and_then(|()| w.flush())
                .map_err(Error::Write)?;
        }
        Ok(guard)
    }

    /// A handle that can reset from anywhere (another thread, the caller's signal handler).
    pub fn resetter(&self) -> Resetter {
        Resetter(self.shared.clone())
    }

    /// Writes the reset now (idempotent); the guard's drop then does nothing.
    pub fn reset(&self) -> Result<()> {
        self.shared.reset_once(true).map_err(Error::Write)
    }
}

impl<W: Write + Send + 'static> Drop for IdentityGuard<W> {
    fn drop(&mut self) {
        // Nowhere to report an error from drop; callers wanting it call `reset()` first.
        let _ = self.shared.reset_once(true);
        let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        let ours = active
            .as_ref()
            .is_some_and(|w| std::ptr::addr_eq(w.as_ptr(), Arc::as_ptr(&self.shared)));
        if ours {
            *active = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Color;

    /// A writer whose bytes stay readable after the guard consumed it.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Capture {
        fn bytes(&self) -> Vec<u8> {
            self.0.lock().unwrap().clone()
        }
    }

    const SET: &[u8] = b"\x1b[22;0t\x1b]0;bob (claude-implementer)\x07\x1b]2;bob (claude-implementer)\x07\x1b]4;5;rgb:cd/00/cd\x07\x1b]11;rgb:27/0e/27\x07";
    const RESET: &[u8] = b"\x1b]104;5\x07\x1b]111\x07\x1b[23;0t";

    fn bob() -> Identity {
        Identity::new(Some("bob"), "claude-implementer", Some(Color::Magenta))
    }

    fn both() -> Vec<u8> {
        [SET, RESET].concat()
    }

    #[test]
    fn normal_drop_writes_set_then_reset() {
        let cap = Capture::default();
        let guard = IdentityGuard::new(&bob(), cap.clone()).unwrap();
        assert_eq!(cap.bytes(), SET);
        drop(guard);
        assert_eq!(cap.bytes(), both());
    }

    #[test]
    fn error_propagation_resets() {
        #[derive(Debug)]
        struct Boom;
        fn attach(cap: Capture) -> std::result::Result<(), Boom> {
            let _guard = IdentityGuard::new(&bob(), cap).map_err(|_| Boom)?;
            Err(Boom)?;
            Ok(())
        }
        let cap = Capture::default();
        assert!(attach(cap.clone()).is_err());
        assert_eq!(cap.bytes(), both());
    }

    #[test]
    fn unwinding_panic_resets() {
        let cap = Capture::default();
        let inner = cap.clone();
        let result = std::panic::catch_unwind(move || {
            let _guard = IdentityGuard::new(&bob(), inner).unwrap();
            panic!("agent crashed");
        });
        assert!(result.is_err());
        assert_eq!(cap.bytes(), both());
    }

    #[test]
    fn explicit_reset_is_idempotent_and_drop_adds_nothing() {
        let cap = Capture::default();
        let guard = IdentityGuard::new(&bob(), cap.clone()).unwrap();
        let r = guard.resetter();
        let t = std::thread::spawn(move || r.reset().unwrap());
        t.join().unwrap();
        guard.reset().unwrap();
        drop(guard);
        assert_eq!(cap.bytes(), both());
    }

    #[test]
    fn no_colour_touches_title_only() {
        let cap = Capture::default();
        drop(IdentityGuard::new(&Identity::new(None, "codex-1", None), cap.clone()).unwrap());
        assert_eq!(
            cap.bytes(),
            b"\x1b[22;0t\x1b]0;codex-1\x07\x1b]2;codex-1\x07\x1b[23;0t".to_vec()
        );
    }

    #[test]
    fn set_failure_is_an_error_not_a_panic() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("tty gone"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let err = IdentityGuard::new(&bob(), Broken).err().unwrap();
        assert_eq!(
            err.to_string(),
            "writing terminal escape sequences: tty gone"
        );
    }
}
