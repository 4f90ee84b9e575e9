//! The command-line grammar (clap derive). Help text here is what users read: keep it true.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run AI coding agents in bottles: isolated guests whose only way out is a sidecar holding
/// your credentials, relaying git with keys the agent never sees, and asking you for approvals.
#[derive(Debug, Parser)]
#[command(
    name = "bot-bottle",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Backends that can run a bottle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Docker,
    Smolvm,
    AppleContainer,
}

impl From<BackendArg> for bottle_manifest::BackendKind {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Docker => Self::Docker,
            BackendArg::Smolvm => Self::Smolvm,
            BackendArg::AppleContainer => Self::AppleContainer,
        }
    }
}

/// Which audit log `logs` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogKind {
    #[default]
    All,
    Egress,
    Git,
    Supervise,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Plan, build, start the sidecar and the agent, and attach your terminal to the agent.
    Start(StartArgs),
    /// Print the resolved plan of a manifest, with no side effects.
    Plan(PlanArgs),
    /// List active and preserved bottles.
    List(ListArgs),
    /// Attach your terminal to a running bottle's agent.
    Attach(NameArg),
    /// Start a preserved (`--keep`) bottle again, on the backend recorded in its metadata.
    Resume(NameArg),
    /// Stop a bottle's containers, keeping its state for `resume`.
    Stop(NameArg),
    /// Remove a bottle: its containers, networks, provisioned keys and state.
    Rm(RmArgs),
    /// Show a bottle's audit logs (egress decisions, git fetches and pushes, supervise requests).
    Logs(LogsArgs),
    /// The operator console: every bottle's pending requests in one place.
    Supervise,
    /// List pending supervise requests of every bottle.
    Requests(RequestsArgs),
    /// Approve a pending request.
    Approve(DecideArgs),
    /// Deny a pending request.
    Deny(DecideArgs),
    /// Answer a pending question with text.
    Answer(AnswerArgs),
    /// Check the backends and run a fail-closed self-test of a bottle.
    Doctor(DoctorArgs),
    /// List built-in and user providers.
    Providers,
    /// Print shell completions.
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The manifest (default: ./bottle.yaml).
    #[arg(default_value = "bottle.yaml")]
    pub manifest: PathBuf,
    /// Override the manifest's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Display label (skips the label prompt).
    #[arg(long)]
    pub label: Option<String>,
    /// ANSI colour name (skips the colour prompt).
    #[arg(long)]
    pub color: Option<String>,
    /// Backend to run on.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Dockerfile for the agent image (top of the cascade).
    #[arg(long)]
    pub dockerfile: Option<PathBuf>,
    /// Keep the bottle when the agent exits, for `resume`.
    #[arg(long)]
    pub keep: bool,
    /// Run the agent without attaching a terminal (its output goes to `logs`).
    #[arg(long)]
    pub detach: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The manifest.
    #[arg(default_value = "bottle.yaml")]
    pub manifest: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub label: Option<String>,
    #[arg(long)]
    pub color: Option<String>,
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    #[arg(long)]
    pub dockerfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// The bottle's slug (or a unique prefix, or its label).
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The bottle's slug (or a unique prefix, or its label).
    pub name: String,
    /// Remove state even if key revocation fails (the key ids are printed).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The bottle's slug (or a unique prefix, or its label).
    pub name: String,
    #[arg(long, conflicts_with_all = ["git", "supervise"])]
    pub egress: bool,
    #[arg(long, conflicts_with_all = ["egress", "supervise"])]
    pub git: bool,
    #[arg(long, conflicts_with_all = ["egress", "git"])]
    pub supervise: bool,
    /// Keep printing new lines.
    #[arg(long, short)]
    pub follow: bool,
    /// Print raw JSON lines.
    #[arg(long)]
    pub json: bool,
}

impl LogsArgs {
    /// Which log was asked for.
    pub fn kind(&self) -> LogKind {
        if self.egress {
            LogKind::Egress
        } else if self.git {
            LogKind::Git
        } else if self.supervise {
            LogKind::Supervise
        } else {
            LogKind::All
        }
    }
}

#[derive(Debug, Args)]
pub struct RequestsArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Include answered requests.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Request id (as `requests` shows it).
    pub id: String,
    /// A note for the agent.
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// Request id.
    pub id: String,
    /// The answer.
    pub text: String,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Backend to check (default: all).
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Skip the bottle self-test.
    #[arg(long)]
    pub quick: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}
