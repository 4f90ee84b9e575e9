//! The checked-in JSON Schema must match the types. `UPDATE_SCHEMA=1 cargo test -p
//! bottle-manifest` rewrites it.

use std::path::Path;

#[test]
fn checked_in_schema_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bottle.schema.json");
    let fresh = bottle_manifest::schema::json_schema_text();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "{} is stale: the manifest types changed.\n\
         Regenerate it with `UPDATE_SCHEMA=1 cargo test -p bottle-manifest` and commit it.",
        path.display()
    );
    let schema = bottle_manifest::schema::json_schema();
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    for key in [
        "version",
        "name",
        "agent",
        "git",
        "egress",
        "env",
        "supervise",
    ] {
        assert!(
            schema["properties"].get(key).is_some(),
            "schema lacks `{key}`"
        );
    }
}
