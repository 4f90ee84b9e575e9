//! Interactive attach plumbing for backends: raw mode for the user's TTY ([`RawMode`]), the
//! byte pump between the TTY and the agent's exec/attach streams ([`pump`]), a stdin reader
//! that never blocks process exit ([`stdin_reader`]), and window-size changes
//! ([`resize_events`]) for the backend to forward to `resize_exec` / `resize_container_tty`.

use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;

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

/// Bytes moved by [`pump`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PumpStats {
    /// From the user's stdin to the agent.
    pub to_remote: u64,
    /// From the agent to the user's stdout.
    pub from_remote: u64,
}

const CHUNK: usize = 16 * 1024;

/// Copies `stdin → remote_in` and `remote_out → stdout` until the remote output ends (the
/// agent exited or detached), then returns. Output is flushed after every chunk so the
/// session stays interactive. When stdin ends first, `remote_in` is shut down (the agent
/// sees EOF) and the pump keeps draining the agent's output. A remote that stops accepting
/// input (broken pipe / reset) only stops the input direction; the pump still waits for its
/// output to end. Other I/O errors end the pump with [`Error::Pump`] naming the direction.
pub async fn pump<I, O, RI, RO>(
    stdin: I,
    stdout: O,
    remote_in: RI,
    remote_out: RO,
) -> Result<PumpStats>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    RI: AsyncWrite + Unpin,
    RO: AsyncRead + Unpin,
{
    let mut stats = PumpStats::default();
    {
        let input = forward(stdin, remote_in, &mut stats.to_remote, true);
        let output = forward(remote_out, stdout, &mut stats.from_remote, false);
        tokio::pin!(input, output);
        let mut input_open = true;
        loop {
            tokio::select! {
                r = &mut input, if input_open => {
                    input_open = false;
                    match r {
                        Ok(()) => {}
                        Err(e) if remote_stopped_reading(&e) => {}
                        Err(source) => return Err(Error::Pump { direction: "stdin to agent", source }),
                    }
                }
                r = &mut output => {
                    r.map_err(|source| Error::Pump { direction: "agent to stdout", source })?;
                    break;
                }
            }
        }
    }
    Ok(stats)
}

fn remote_stopped_reading(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
    )
}

async fn forward<R, W>(
    mut from: R,
    mut to: W,
    count: &mut u64,
    shutdown_at_eof: bool,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            if shutdown_at_eof {
                to.shutdown().await?;
            } else {
                to.flush().await?;
            }
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        *count += n as u64;
    }
}

/// An [`AsyncRead`] fed by a dedicated, detached OS thread doing blocking reads.
///
/// Why not `tokio::io::stdin()`: its blocking read cannot be cancelled, so after the agent
/// exits the runtime's shutdown would hang until the user pressed a key. A detached thread
/// simply dies with the process.
pub struct ThreadReader {
    rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    pending: Vec<u8>,
    offset: usize,
}

/// Reads the process's stdin through a [`ThreadReader`]; pass it as `stdin` to [`pump`].
pub fn stdin_reader() -> Result<ThreadReader> {
    thread_reader(std::io::stdin())
}

/// Reads any blocking source through a [`ThreadReader`] (used by [`stdin_reader`] and tests).
pub fn thread_reader<R: Read + Send + 'static>(mut source: R) -> Result<ThreadReader> {
    let (tx, rx) = mpsc::channel(8);
    std::thread::Builder::new()
        .name("bottle-terminal-stdin".into())
        .spawn(move || {
            let mut buf = vec![0u8; CHUNK];
            loop {
                let msg = match source.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => Ok(buf[..n].to_vec()),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let failed = msg.is_err();
                // The pump is gone (agent exited): stop reading.
                if tx.blocking_send(msg).is_err() || failed {
                    return;
                }
            }
        })
        .map_err(Error::Terminal)?;
    Ok(ThreadReader {
        rx,
        pending: Vec::new(),
        offset: 0,
    })
}

impl AsyncRead for ThreadReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.offset == this.pending.len() {
            match this.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                // Sender gone: the source reached EOF.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some(Ok(chunk))) => {
                    this.pending = chunk;
                    this.offset = 0;
                }
            }
        }
        let n = buf.remaining().min(this.pending.len() - this.offset);
        buf.put_slice(&this.pending[this.offset..this.offset + n]);
        this.offset += n;
        Poll::Ready(Ok(()))
    }
}

type SizeFn = Box<dyn Fn() -> std::io::Result<(u16, u16)> + Send>;

/// A stream of terminal sizes `(cols, rows)`: the initial size first, then one item per
/// SIGWINCH whose size differs from the last one sent.
pub struct ResizeEvents {
    initial: Option<(u16, u16)>,
    last: (u16, u16),
    winch: tokio::signal::unix::Signal,
    size: SizeFn,
}

/// Resize events for the real terminal (crossterm `terminal::size`). Needs a tokio runtime
/// with the signal driver enabled.
pub fn resize_events() -> Result<ResizeEvents> {
    resize_events_with(crossterm::terminal::size)
}

/// [`resize_events`] with an injectable size source (tests, or a backend with its own TTY).
pub fn resize_events_with<F>(size: F) -> Result<ResizeEvents>
where
    F: Fn() -> std::io::Result<(u16, u16)> + Send + 'static,
{
    // Register before reading the size so a resize in between is not lost.
    let winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .map_err(Error::Terminal)?;
    let initial = size().map_err(Error::Terminal)?;
    Ok(ResizeEvents {
        initial: Some(initial),
        last: initial,
        winch,
        size: Box::new(size),
    })
}

impl ResizeEvents {
    /// The next size; `None` only if the signal stream ends (runtime shutting down).
    pub async fn next(&mut self) -> Option<(u16, u16)> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for ResizeEvents {
    type Item = (u16, u16);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(initial) = this.initial.take() {
            return Poll::Ready(Some(initial));
        }
        loop {
            match this.winch.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(())) => {
                    // A size we cannot read (TTY gone mid-resize) is skipped, not fatal.
                    if let Ok(now) = (this.size)() {
                        if now != this.last {
                            this.last = now;
                            return Poll::Ready(Some(now));
                        }
                    }
                }
            }
        }
    }
}
