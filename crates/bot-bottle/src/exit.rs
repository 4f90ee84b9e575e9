//! Exit codes and the one-line error report.
//!
//! Every failure prints `bot-bottle: <what failed>: <cause>` on stderr, then `hint: …` when the
//! error carries one. Exit codes: 0 ok, 1 failure, 2 usage (clap), 3 "not available in this
//! build", or the agent's own exit code from `start`/`attach`.

use std::io::Write;
use std::process::ExitCode;

/// An error that knows its exit code and hint.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub hint: Option<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.code)
    }
}

impl std::error::Error for Failure {}

/// A subcommand's machinery that has not landed yet: says so plainly, exits 3.
pub fn not_available(what: &str, why: &str) -> anyhow::Error {
    anyhow::Error::new(Failure {
        code: 3,
        hint: Some(why.to_string()),
    })
    .context(format!("`{what}` is not available in this build"))
}

/// What a command returns: the process exit code.
pub type Outcome = anyhow::Result<u8>;

/// Runs a command and turns its result into an exit code, printing failures.
pub fn run(f: impl FnOnce() -> Outcome) -> ExitCode {
    match f() {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let mut stderr = std::io::stderr().lock();
            let failure = err.chain().find_map(|e| e.downcast_ref::<Failure>());
            let msg: Vec<String> = err
                .chain()
                .filter(|e| e.downcast_ref::<Failure>().is_none())
                .map(|e| e.to_string())
                .collect();
            let _ = writeln!(stderr, "bot-bottle: {}", msg.join(": "));
            if let Some(h) = failure.and_then(|f| f.hint.as_ref()) {
                let _ = writeln!(stderr, "hint: {h}");
            }
            ExitCode::from(failure.map(|f| f.code).unwrap_or(1))
        }
    }
}
