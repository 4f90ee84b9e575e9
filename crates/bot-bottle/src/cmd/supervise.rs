//! `supervise` (the operator console) and the script-facing `requests`, `approve`, `deny`,
//! `answer`, over every bottle's control API (discovered from each bottle's 0600
//! `supervise.json`).

use std::io::Write;

use bottle_supervise::{endpoints_from_home, ops, BottleEndpoint};

use crate::cli::{AnswerArgs, DecideArgs, RequestsArgs};
use crate::exit::Outcome;

fn endpoints() -> anyhow::Result<Vec<BottleEndpoint>> {
    let home = super::home()?;
    let found = endpoints_from_home(home.root());
    let mut err = std::io::stderr().lock();
    for e in &found.errors {
        let _ = writeln!(err, "bot-bottle: skipping bottle {}: {}", e.slug, e.error);
    }
    Ok(found.endpoints)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Runtime::new()?)
}

/// `bot-bottle supervise`.
pub fn console() -> Outcome {
    let home = super::home()?;
    let root = home.root().to_path_buf();
    runtime()?.block_on(bottle_supervise::console::run(move || {
        endpoints_from_home(&root).endpoints
    }))?;
    Ok(0)
}

/// `bot-bottle requests`.
pub fn requests(a: RequestsArgs) -> Outcome {
    let eps = endpoints()?;
    let listing = runtime()?.block_on(ops::list_requests(&eps, a.all));
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &listing)?;
        writeln!(out)?;
    } else {
        out.write_all(ops::format_listing(&listing, bottle_terminal::colors_enabled()).as_bytes())?;
    }
    Ok(if listing.errors.is_empty() { 0 } else { 1 })
}

fn report(entry: bottle_supervise::ops::Entry, verb: &str) -> Outcome {
    writeln!(
        std::io::stdout().lock(),
        "{verb} {} ({})",
        entry.request.id,
        entry.bottle.display_name()
    )?;
    Ok(0)
}

/// `bot-bottle approve ID`.
pub fn approve(a: DecideArgs) -> Outcome {
    let eps = endpoints()?;
    report(
        runtime()?.block_on(ops::approve(&eps, &a.id, a.note))?,
        "approved",
    )
}

/// `bot-bottle deny ID`.
pub fn deny(a: DecideArgs) -> Outcome {
    let eps = endpoints()?;
    report(
        runtime()?.block_on(ops::deny(&eps, &a.id, a.note))?,
        "denied",
    )
}

/// `bot-bottle answer ID TEXT`.
pub fn answer(a: AnswerArgs) -> Outcome {
    let eps = endpoints()?;
    report(
        runtime()?.block_on(ops::answer(&eps, &a.id, &a.text))?,
        "answered",
    )
}
