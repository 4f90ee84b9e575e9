//! The data behind `bot-bottle list`: one row per bottle, plain text (the CLI adds colour), and
//! the same rows as JSON for `--json`.

use serde::Serialize;
use time::OffsetDateTime;

use crate::store::ListEntry;

/// One row of `bot-bottle list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListRow {
    /// The bottle's slug.
    pub slug: String,
    /// `label (name)`, or `name` without a label; the slug when the metadata is unreadable.
    pub title: String,
    /// The manifest's name (absent when the metadata is unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The label, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// ANSI colour name to paint `title` with, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Backend name (empty when unreadable).
    pub backend: String,
    /// Provider name (empty when unreadable).
    pub provider: String,
    /// Status, lowercase; `unreadable` when the metadata could not be read.
    pub status: String,
    /// RFC 3339 creation time (empty when unknown).
    pub created: String,
    /// Humanised age (`42s`, `5m`, `3h`, `2d`), `?` when unknown.
    pub age: String,
    /// Age in seconds, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    /// Why the metadata could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Rows for `bot-bottle list`, in the order of `entries`, ages relative to `now`.
pub fn list_rows(entries: &[ListEntry], now: OffsetDateTime) -> Vec<ListRow> {
    entries
        .iter()
        .map(|entry| match entry {
            Ok(m) => {
                let age_seconds = m.created_at().map(|t| (now - t).whole_seconds().max(0));
                ListRow {
                    slug: m.slug.clone(),
                    title: m.display_name(),
                    name: Some(m.name.clone()),
                    label: m.label.clone(),
                    color: m.color.clone(),
                    backend: m.backend.clone(),
                    provider: m.provider.clone(),
                    status: m.status.to_string(),
                    created: m.created.clone(),
                    age: age_seconds.map_or_else(|| "?".to_string(), humanize_age),
                    age_seconds,
                    error: None,
                }
            }
            Err((slug, err)) => ListRow {
                slug: slug.clone(),
                title: slug.clone(),
                name: None,
                label: None,
                color: None,
                backend: String::new(),
                provider: String::new(),
                status: "unreadable".to_string(),
                created: String::new(),
                age: "?".to_string(),
                age_seconds: None,
                error: Some(err.to_string()),
            },
        })
        .collect()
}

/// `42s`, `5m`, `3h`, `2d`: the largest whole unit, rounded down; negative ages are `0s`.
pub fn humanize_age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Metadata, Resources, Status, SCHEMA_VERSION};
    use crate::Error;
    use time::format_description::well_known::Rfc3339;

    #[test]
    fn ages_are_humanised() {
        assert_eq!(humanize_age(-5), "0s");
        assert_eq!(humanize_age(42), "42s");
        assert_eq!(humanize_age(59), "59s");
        assert_eq!(humanize_age(60), "1m");
        assert_eq!(humanize_age(5 * 60 + 59), "5m");
        assert_eq!(humanize_age(3 * 3600 + 1), "3h");
        assert_eq!(humanize_age(2 * 86_400 + 7), "2d");
    }

    #[test]
    fn rows_for_good_and_unreadable_bottles() {
        let m = Metadata {
            schema: SCHEMA_VERSION,
            slug: "app-abc123".into(),
            name: "app".into(),
            label: Some("bob".into()),
            color: Some("magenta".into()),
            backend: "docker".into(),
            provider: "claude".into(),
            status: Status::Running,
            created: "2026-01-02T03:00:00Z".into(),
            updated: "2026-01-02T03:00:00Z".into(),
            manifest_path: "/m/bottle.yaml".into(),
            resources: Resources::default(),
            provisioned_keys: vec![],
            keep: false,
        };
        let now = OffsetDateTime::parse("2026-01-02T06:30:00Z", &Rfc3339).unwrap();
        let entries = vec![
            Ok(m),
            Err((
                "bad-000000".to_string(),
                Error::MissingMetadata {
                    slug: "bad-000000".into(),
                },
            )),
        ];
        let rows = list_rows(&entries, now);
        assert_eq!(rows[0].title, "bob (app)");
        assert_eq!(rows[0].color.as_deref(), Some("magenta"));
        assert_eq!(rows[0].status, "running");
        assert_eq!(rows[0].age, "3h");
        assert_eq!(rows[1].status, "unreadable");
        assert!(rows[1].error.as_deref().unwrap().contains("bad-000000"));
        let json = serde_json::to_value(&rows).unwrap();
        assert_eq!(json[0]["age_seconds"], 3 * 3600 + 1800);
        assert_eq!(json[0]["label"], "bob");
        assert!(json[1].get("label").is_none());
        // No ANSI escapes: colour is the CLI's job.
        assert!(!serde_json::to_string(&rows).unwrap().contains('\u{1b}'));
    }
}
