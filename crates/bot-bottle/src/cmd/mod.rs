//! One module per subcommand; [`dispatch`] routes to them.

mod completions;
mod plan;
mod providers;

use crate::cli::{Cli, Command};
use crate::exit::{not_available, Outcome};

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> Outcome {
    match cli.command {
        Command::Plan(a) => plan::run(a),
        Command::Providers => providers::run(),
        Command::Completions(a) => completions::run(a),
        Command::Start(_) => Err(not_available("start", "the docker backend has not landed in this build")),
        Command::List(_) => Err(not_available("list", "the state store has not landed in this build")),
        Command::Attach(_) => Err(not_available("attach", "the docker backend has not landed in this build")),
        Command::Resume(_) => Err(not_available("resume", "the docker backend has not landed in this build")),
        Command::Stop(_) => Err(not_available("stop", "the docker backend has not landed in this build")),
        Command::Rm(_) => Err(not_available("rm", "the docker backend has not landed in this build")),
        Command::Logs(_) => Err(not_available("logs", "the state store has not landed in this build")),
        Command::Supervise => Err(not_available("supervise", "the supervise console has not landed in this build")),
        Command::Requests(_) | Command::Approve(_) | Command::Deny(_) | Command::Answer(_) => {
            Err(not_available("requests", "the supervise control API has not landed in this build"))
        }
        Command::Doctor(_) => Err(not_available("doctor", "the docker backend has not landed in this build")),
    }
}
