//! `bot-bottle`: the command line. Parsing lives in [`cli`], one module per subcommand in
//! [`cmd`]; errors become one clear line plus a hint and an exit code in [`exit`].

mod cli;
mod cmd;
mod exit;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    exit::run(|| cmd::dispatch(cli))
}
