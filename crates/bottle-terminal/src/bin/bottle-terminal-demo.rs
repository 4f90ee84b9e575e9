//! Test-helper binary for bottle-terminal's integration tests (not part of the product).
//!
//! * `guard <label> <color|-> [sleep|error|panic]`: holds an [`IdentityGuard`] with exit hooks
//!   on stdout, then sleeps until signalled (`sleep`, the default), returns an error through
//!   `?` (`error`, exit 1), or panics (`panic`, exit 101).

use std::io::Write;
use std::process::ExitCode;

use bottle_terminal::{Color, Identity, IdentityGuard};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("guard") => guard(&args[1..]),
        _ => Err("usage: bottle-terminal-demo guard <label> <color|-> [sleep|error|panic]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // stderr, not stdout: stdout carries the escape bytes the tests assert.
            let _ = writeln!(std::io::stderr(), "bottle-terminal-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

type DemoResult = Result<(), Box<dyn std::error::Error>>;

fn guard(args: &[String]) -> DemoResult {
    let label = args.first().ok_or("missing label")?;
    let color = match args.get(1).map(String::as_str) {
        None | Some("-") => None,
        Some(c) => Some(c.parse::<Color>()?),
    };
    let identity = Identity::new(Some(label), "demo-agent", color);
    let _guard = IdentityGuard::with_exit_hooks(&identity, std::io::stdout())?;
    match args.get(2).map(String::as_str) {
        Some("error") => Err("simulated failure after the identity was shown".into()),
        Some("panic") => panic!("simulated panic after the identity was shown"),
        _ => loop {
            // Parked until a signal's handler exits the process.
            std::thread::park();
        },
    }
}
