//! `bot-bottle completions SHELL`: shell completion scripts from the clap grammar.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::exit::Outcome;

pub fn run(a: CompletionsArgs) -> Outcome {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "bot-bottle", &mut std::io::stdout());
    Ok(0)
}
