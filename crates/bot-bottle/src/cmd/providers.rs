//! `bot-bottle providers`: built-in and user providers.

use std::io::Write;

use crate::exit::Outcome;

pub fn run() -> Outcome {
    let home = crate::cmd::plan::bot_home()?;
    let mut out = std::io::stdout().lock();
    for (name, builtin, desc) in bottle_plan::provider::list(&home) {
        let kind = if builtin { "built-in" } else { "user" };
        writeln!(out, "{name:<12} {kind:<9} {}", desc.unwrap_or_default())?;
    }
    Ok(0)
}
