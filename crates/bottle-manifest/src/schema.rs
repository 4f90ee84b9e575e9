//! The manifest's JSON Schema, generated from the serde types (so it cannot drift from what the
//! parser accepts in shape; the semantic rules live in `validate`). Checked in as
//! `crates/bottle-manifest/bottle.schema.json` for editors; a test fails when it is stale.

use crate::types::Manifest;

/// The JSON Schema of `bottle.yaml`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Manifest)).unwrap_or(serde_json::Value::Null)
}

/// The schema as the pretty-printed text checked in (with a final newline).
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    text.push('\n');
    text
}
