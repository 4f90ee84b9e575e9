//! `bot-bottle list`: active and preserved bottles, `label (name)` in its colour.

use std::io::Write;

use bottle_terminal::{colors_enabled, paint_with, Color};

use crate::cli::ListArgs;
use crate::exit::Outcome;

pub fn run(a: ListArgs) -> Outcome {
    let home = super::home()?;
    let entries = bottle_state::list(&home)?;
    let rows = bottle_state::list_rows(&entries, time::OffsetDateTime::now_utc());
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(0);
    }
    if rows.is_empty() {
        writeln!(out, "no bottles")?;
        return Ok(0);
    }
    let enabled = colors_enabled();
    let width = rows
        .iter()
        .map(|r| r.title.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    writeln!(
        out,
        "{:<width$}  {:<26}  {:<15}  {:<10}  AGE",
        "BOTTLE", "SLUG", "BACKEND", "STATUS"
    )?;
    for r in rows {
        let pad = " ".repeat(width.saturating_sub(r.title.chars().count()));
        let title = match r.color.as_deref().and_then(|c| c.parse::<Color>().ok()) {
            Some(c) => paint_with(&r.title, c, enabled),
            None => r.title.clone(),
        };
        writeln!(
            out,
            "{title}{pad}  {:<26}  {:<15}  {:<10}  {}",
            r.slug, r.backend, r.status, r.age
        )?;
        if let Some(e) = r.error {
            writeln!(out, "    ! {e}")?;
        }
    }
    Ok(0)
}
