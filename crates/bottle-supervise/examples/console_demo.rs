//! The operator console over every bottle under `$BOT_BOTTLE_HOME` (what `bot-bottle supervise`
//! runs). Used by the tmux test; handy by hand too:
//! `BOT_BOTTLE_HOME=~/.bot-bottle cargo run -p bottle-supervise --example console_demo`.

use std::path::PathBuf;

use bottle_supervise::{console, endpoints_from_home};

#[tokio::main]
async fn main() -> Result<(), bottle_supervise::Error> {
    let home = std::env::var_os("BOT_BOTTLE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".bot-bottle"));
    console::run(move || endpoints_from_home(&home).endpoints).await
}
