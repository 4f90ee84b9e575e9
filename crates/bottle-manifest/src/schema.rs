//! The manifest's JSON Schema, generated from the serde types (so it cannot drift from what the
//! parser accepts in shape; the semantic rules live in `validate`). Checked in as
//! `crates/bottle-manifest/bottle.schema.json` for editors; a test fails when it is stale.

use crate::types::Manifest;

/// The JSON Schema of `bottle.yaml`.
pub fn json_schema() -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(Manifest)).unwrap_or(serde_json::Value::Null);
    // The parser takes plain numbers and booleans in `env` as their text (`PORT: 8080`); say so,
    // or editors would flag what bot-bottle accepts.
    if let Some(env) = schema.pointer_mut("/properties/env/additionalProperties") {
        *env = serde_json::json!({"type": ["string", "number", "boolean"]});
    }
    // Only version 1 exists.
    if let Some(version) = schema.pointer_mut("/properties/version") {
        version["const"] = serde_json::json!(1);
    }
    schema
}

/// The schema as the pretty-printed text checked in (with a final newline).
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    text.push('\n');
    text
}
