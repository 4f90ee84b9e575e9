//! `metadata.json`: what the host remembers about a bottle.
//!
//! It holds names and identifiers only — name, label, colour, backend, provider, status,
//! timestamps, resource names, provisioned deploy-key ids — and **never a secret value**: no
//! token, key, password or resolved env value. `Resources::extra` is free-form and the same rule
//! applies to it. A test serialises a full sample and checks that only these keys exist.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The `schema` this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Lifecycle of a bottle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A `start` is creating it (with the bottle lock free, this means the start crashed).
    Starting,
    /// Up and attached to.
    Running,
    /// Stopped; resources may remain.
    Stopped,
    /// Kept after exit for inspection (`keep`).
    Preserved,
    /// A start or run failed; resources may remain for `rm` to clean.
    Failed,
    /// `rm` is tearing it down.
    Removing,
}

impl Status {
    /// The lowercase name used in `metadata.json` and `bot-bottle list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Preserved => "preserved",
            Status::Failed => "failed",
            Status::Removing => "removing",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names of what a backend created for the bottle, so `rm` can find and delete it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Container (or VM) names.
    #[serde(default)]
    pub containers: Vec<String>,
    /// Network names.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Image tags built for this bottle.
    #[serde(default)]
    pub images: Vec<String>,
    /// Allocated indexes by kind (subnet, port block, ...); see [`crate::allocate_index`].
    #[serde(default)]
    pub indexes: BTreeMap<String, u32>,
    /// Backend-specific names (socket paths, VM ids). Never a secret value.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// A deploy key bot-bottle registered on a forge for this bottle (so `rm` can delete it).
/// Only the key's id and title: the private key lives in the sidecar config, never here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedKeyRecord {
    /// Repository, e.g. `acme/app`.
    pub repo: String,
    /// Forge kind: `gitea`, `github` or `gitlab`.
    pub forge: String,
    /// API base URL.
    pub api: String,
    /// The forge's id of the key.
    pub key_id: String,
    /// The key's title on the forge.
    pub title: String,
    /// Name (never the value) of the host env var holding the forge API token, for revocation.
    #[serde(default)]
    pub token_env: String,
}

/// The contents of `metadata.json`. See the module docs: never a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Unique slug, `<name>-<6 chars>`; also the directory name.
    pub slug: String,
    /// The manifest's `name`.
    pub name: String,
    /// Display label, shown as `label (name)`.
    #[serde(default)]
    pub label: Option<String>,
    /// ANSI colour name.
    #[serde(default)]
    pub color: Option<String>,
    /// `docker`, `smolvm`, `apple-container`.
    pub backend: String,
    /// Provider name.
    pub provider: String,
    /// Lifecycle state.
    pub status: Status,
    /// RFC 3339 creation time (UTC).
    pub created: String,
    /// RFC 3339 time of the last write (UTC).
    pub updated: String,
    /// The manifest the bottle was started from.
    pub manifest_path: PathBuf,
    /// What the backend created.
    #[serde(default)]
    pub resources: Resources,
    /// Deploy keys registered on forges.
    #[serde(default)]
    pub provisioned_keys: Vec<ProvisionedKeyRecord>,
    /// Keep the bottle after exit instead of removing it.
    #[serde(default)]
    pub keep: bool,
}

impl Metadata {
    /// `label (name)`, or just `name` without a label.
    pub fn display_name(&self) -> String {
        match &self.label {
            Some(label) if !label.is_empty() => format!("{label} ({})", self.name),
            _ => self.name.clone(),
        }
    }

    /// The creation time, if `created` parses.
    pub fn created_at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.created, &Rfc3339).ok()
    }
}

/// Now, as RFC 3339 UTC.
pub(crate) fn now_rfc3339() -> String {
    // Formatting a UTC time as RFC 3339 fails only for years outside 0..=9999.
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Metadata {
        Metadata {
            schema: SCHEMA_VERSION,
            slug: "app-abc123".into(),
            name: "app".into(),
            label: Some("bob".into()),
            color: Some("magenta".into()),
            backend: "docker".into(),
            provider: "claude".into(),
            status: Status::Running,
            created: "2026-01-02T03:04:05Z".into(),
            updated: "2026-01-02T03:04:06Z".into(),
            manifest_path: "/m/bottle.yaml".into(),
            resources: Resources::default(),
            provisioned_keys: vec![],
            keep: false,
        }
    }

    #[test]
    fn round_trips_and_status_is_lowercase() {
        let m = sample();
        let s = serde_json::to_string(&m).unwrap();
        assert!(s.contains(r#""status":"running""#), "{s}");
        assert_eq!(serde_json::from_str::<Metadata>(&s).unwrap(), m);
    }

    #[test]
    fn display_name_uses_label_when_present() {
        let mut m = sample();
        assert_eq!(m.display_name(), "bob (app)");
        m.label = None;
        assert_eq!(m.display_name(), "app");
    }

    #[test]
    fn now_is_rfc3339() {
        assert!(OffsetDateTime::parse(&now_rfc3339(), &Rfc3339).is_ok());
    }
}
