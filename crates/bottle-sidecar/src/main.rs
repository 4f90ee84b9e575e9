//! `bottle-sidecar`: reads its config on stdin, then runs the services (see the library docs).

use std::process::ExitCode;

fn main() -> ExitCode {
    let outcome = (|| -> anyhow::Result<()> {
        let config = bottle_sidecar::read_config(std::io::stdin().lock())?;
        let rt = tokio::runtime::Builder::new_multi_thread()
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
