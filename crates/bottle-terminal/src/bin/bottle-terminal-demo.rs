//! Test-helper binary for bottle-terminal's integration tests (not part of the product).
//!
//! * `guard <label> <color|-> [sleep|error|panic]`: holds an [`IdentityGuard`] with exit hooks
//!   on stdout, then sleeps until signalled (`sleep`, the default), returns an error through
//!   `?` (`error`, exit 1), or panics (`panic`, exit 101).
//! * `modal <out.json> <default-label> [preset-color]`: runs the start modal on the terminal and
//!   writes `{"cancelled":bool,"label":string|null,"color":string|null}` to `out.json`
//!   (atomically, so a test polling for the file never reads half of it).

use std::io::Write;
use std::process::ExitCode;

use bottle_terminal::{Color, Identity, IdentityGuard};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("guard") => guard(&args[1..]),
        Some("modal") => modal(&args[1..]),
        _ => Err(
            "usage: bottle-terminal-demo guard <label> <color|-> [sleep|error|panic] \
                  | modal <out.json> <default-label> [preset-color]"
                .into(),
        ),
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

fn modal(args: &[String]) -> DemoResult {
    let out = std::path::PathBuf::from(args.first().ok_or("missing output path")?);
    let default = args.get(1).ok_or("missing default label")?;
    let preset = args.get(2).map(|c| c.parse::<Color>()).transpose()?;
    let result = bottle_terminal::modal::ask_identity(default, preset)?;
    let json = match result {
        None => serde_json::json!({"cancelled": true, "label": null, "color": null}),
        Some((label, color)) => serde_json::json!({
            "cancelled": false,
            "label": label,
            "color": color.map(|c| c.name()),
        }),
    };
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&json)?)?;
    std::fs::rename(&tmp, &out)?;
    Ok(())
}
