//! One module per subcommand; [`dispatch`] routes to them.

mod completions;
mod lifecycle;
mod list;
mod logs;
mod manage;
mod plan;
mod providers;
mod selftest;
mod start;
mod supervise;

use crate::cli::{Cli, Command};
use crate::exit::Outcome;

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> Outcome {
    match cli.command {
        Command::Plan(a) => plan::run(a),
        Command::Providers => providers::run(),
        Command::Completions(a) => completions::run(a),
        Command::Start(a) => start::run(a),
        Command::Resume(a) => start::resume(a),
        Command::List(a) => list::run(a),
        Command::Attach(a) => manage::attach(a),
        Command::Stop(a) => manage::stop(a),
        Command::Rm(a) => manage::rm(a),
        Command::Logs(a) => logs::run(a),
        Command::Doctor(a) => manage::doctor(a),
        Command::Supervise => supervise::console(),
        Command::Requests(a) => supervise::requests(a),
        Command::Approve(a) => supervise::approve(a),
        Command::Deny(a) => supervise::deny(a),
        Command::Answer(a) => supervise::answer(a),
    }
}

/// The state home (`$BOT_BOTTLE_HOME` or `~/.bot-bottle`).
pub fn home() -> anyhow::Result<bottle_state::Home> {
    Ok(bottle_state::Home::from_env()?)
}

/// Finds a bottle by slug, unique slug prefix, or label.
pub fn find_bottle(home: &bottle_state::Home, name: &str) -> anyhow::Result<String> {
    let entries = bottle_state::list(home)?;
    let slugs: Vec<(String, Option<String>)> = entries
        .iter()
        .map(|e| match e {
            Ok(m) => (m.slug.clone(), m.label.clone()),
            Err((slug, _)) => (slug.clone(), None),
        })
        .collect();
    if let Some((s, _)) = slugs.iter().find(|(s, _)| s == name) {
        return Ok(s.clone());
    }
    let matches: Vec<&String> = slugs
        .iter()
        .filter(|(s, l)| s.starts_with(name) || l.as_deref() == Some(name))
        .map(|(s, _)| s)
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(anyhow::Error::new(crate::exit::Failure {
            code: 1,
            hint: Some("`bot-bottle list` shows the bottles there are".into()),
        })
        .context(format!("no bottle named `{name}`"))),
        many => Err(anyhow::Error::new(crate::exit::Failure {
            code: 1,
            hint: Some(format!(
                "it matches {}; give more of the slug",
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        })
        .context(format!("`{name}` is ambiguous"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn manifest_and_terminal_accept_the_same_colours() {
        assert_eq!(
            bottle_manifest::COLOR_NAMES,
            &bottle_terminal::COLOR_NAMES[..],
            "bottle-manifest's colour list drifted from bottle-terminal's palette"
        );
    }
}
