//! Processes in a container: collected (provisioning, tests, `doctor`) or connected to this
//! process (the agent command: a TTY with raw mode and resize, or plain pipes).

use std::io::Write;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use crate::error::engine;
use crate::{Error, ExecOutput, Result};

/// Options of one exec.
pub(crate) struct ExecSpec<'a> {
    pub container: &'a str,
    pub argv: &'a [String],
    /// `root` or the agent user.
    pub user: &'a str,
    pub workdir: Option<&'a str>,
    /// `KEY=VALUE` pairs for this process only (values the engine must not keep on disk).
    pub env: Vec<String>,
}

fn create_opts(spec: &ExecSpec<'_>, tty: bool, stdin: bool) -> CreateExecOptions<String> {
    CreateExecOptions {
        attach_stdin: Some(stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(tty),
        cmd: Some(spec.argv.to_vec()),
        user: Some(spec.user.to_string()),
        working_dir: spec.workdir.map(str::to_string),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        ..Default::default()
    }
}

async fn exit_code(docker: &Docker, id: &str) -> Result<i64> {
    // The engine can report the exec's end a moment after its output stream closes.
    for _ in 0..200 {
        let info = docker
            .inspect_exec(id)
            .await
            .map_err(engine("inspect exec"))?;
        if info.running != Some(true) {
            if let Some(code) = info.exit_code {
                return Ok(code);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(-1)
}

/// Runs a command and collects its output.
pub(crate) async fn capture(docker: &Docker, spec: ExecSpec<'_>) -> Result<ExecOutput> {
    let op = || format!("exec in {}", spec.container);
    let id = docker
        .create_exec(spec.container, create_opts(&spec, false, false))
        .await
        .map_err(engine(op()))?
        .id;
    let mut out = ExecOutput {
        exit_code: -1,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    match docker
        .start_exec(&id, None::<StartExecOptions>)
        .await
        .map_err(engine(op()))?
    {
        StartExecResults::Attached { mut output, .. } => {
            while let Some(item) = output.next().await {
                match item.map_err(engine(op()))? {
                    LogOutput::StdErr { message } => out.stderr.extend_from_slice(&message),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        out.stdout.extend_from_slice(&message)
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        StartExecResults::Detached => {}
    }
    out.exit_code = exit_code(docker, &id).await?;
    Ok(out)
}

/// Runs a command connected to the user's terminal: a TTY in the guest, raw mode here, the
/// window size forwarded on every change. Returns the exit code.
pub(crate) async fn terminal(docker: &Docker, spec: ExecSpec<'_>) -> Result<i64> {
    let op = || format!("exec in {}", spec.container);
    let opts = create_opts(&spec, true, true);
    let mut resize = bottle_terminal::attach::resize_events()?;
    let initial = resize.next().await;
    let id = docker
        .create_exec(spec.container, opts)
        .await
        .map_err(engine(op()))?
        .id;
    let started = docker
        .start_exec(
            &id,
            Some(StartExecOptions {
                detach: false,
                tty: true,
                output_capacity: None,
            }),
        )
        .await
        .map_err(engine(op()))?;
    let StartExecResults::Attached { output, input } = started else {
        return exit_code(docker, &id).await;
    };
    if let Some(size) = initial {
        resize_exec(docker, &id, size).await;
    }
    let resizer = {
        let docker = docker.clone();
        let id = id.clone();
        tokio::spawn(async move {
            while let Some(size) = resize.next().await {
                resize_exec(&docker, &id, size).await;
            }
        })
    };
    let remote_out = tokio_util::io::StreamReader::new(
        output
            .map_ok(LogOutput::into_bytes)
            .map_err(std::io::Error::other),
    );
    let pumped = {
        let _raw = bottle_terminal::attach::RawMode::enable()?;
        bottle_terminal::attach::pump(
            bottle_terminal::attach::stdin_reader()?,
            tokio::io::stdout(),
            input,
            remote_out,
        )
        .await
    };
    resizer.abort();
    pumped?;
    exit_code(docker, &id).await
}

/// Runs a command with plain pipes: our stdin forwarded, its stdout/stderr to ours.
pub(crate) async fn pipes(docker: &Docker, spec: ExecSpec<'_>) -> Result<i64> {
    let op = || format!("exec in {}", spec.container);
    let id = docker
        .create_exec(spec.container, create_opts(&spec, false, true))
        .await
        .map_err(engine(op()))?
        .id;
    let started = docker
        .start_exec(&id, None::<StartExecOptions>)
        .await
        .map_err(engine(op()))?;
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = started
    else {
        return exit_code(docker, &id).await;
    };
    let feeder = tokio::spawn(async move {
        let Ok(mut stdin) = bottle_terminal::attach::stdin_reader() else {
            let _ = input.shutdown().await;
            return;
        };
        let _ = tokio::io::copy(&mut stdin, &mut input).await;
        let _ = input.shutdown().await;
    });
    while let Some(item) = output.next().await {
        match item.map_err(engine(op()))? {
            LogOutput::StdErr { message } => {
                let mut e = std::io::stderr().lock();
                e.write_all(&message)
                    .and_then(|_| e.flush())
                    .map_err(Error::Io)?;
            }
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                let mut o = std::io::stdout().lock();
                o.write_all(&message)
                    .and_then(|_| o.flush())
                    .map_err(Error::Io)?;
            }
            LogOutput::StdIn { .. } => {}
        }
    }
    feeder.abort();
    exit_code(docker, &id).await
}

/// Gives the exec's TTY the terminal's size. A failed resize only leaves the old size; not
/// worth ending the session over.
async fn resize_exec(docker: &Docker, id: &str, (cols, rows): (u16, u16)) {
    let _ = docker
        .resize_exec(
            id,
            ResizeExecOptions {
                height: rows,
                width: cols,
            },
        )
        .await;
}
