//! `bottle-sidecar`: reads its config on stdin, then runs the services (see the library docs).

use std::process::ExitCode;

fn main() -> ExitCode {
    let outcome = (|| -> anyhow::Result<()> {
        let config = bottle_sidecar::read_config(std::io::stdin().lock())?;
        // Two workers at most: one bottle's traffic does not need a worker per host core, and
        // each extra worker costs memory and cross-worker wake-ups (bottle-egress README,
        // "Limitations": 8 workers peaked 42-44 MiB at 500 connections against 34-39 with 2).
        let workers = std::thread::available_parallelism()
            .map(|n| n.get().min(2))
            .unwrap_or(2);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()?;
        rt.block_on(bottle_sidecar::run(config))?;
        Ok(())
    })();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The one place the sidecar talks to its operator directly: `docker logs` shows it.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("bottle-sidecar: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
