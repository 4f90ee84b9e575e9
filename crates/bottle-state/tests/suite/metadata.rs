//! metadata.json contents: only the known, non-secret fields; corrupt files reported per
//! bottle; removal hides the bottle at once.

use std::collections::BTreeSet;
use std::fs;

use bottle_state::{
    create_bottle, list, list_rows, read, remove, update, BottleLock, Error, Home,
    ProvisionedKeyRecord, SlugRng, Status,
};
use serde_json::Value;
use time::OffsetDateTime;

use super::new_bottle;

/// Every key path metadata.json may contain. `resources.indexes` and `resources.extra` are
/// maps whose keys are names chosen by backends, so their contents are not listed.
const KNOWN_KEYS: &[&str] = &[
    "schema",
    "slug",
    "name",
    "label",
    "color",
    "backend",
    "provider",
    "status",
    "created",
    "updated",
    "manifest_path",
    "resources",
    "resources.containers",
    "resources.networks",
    "resources.images",
    "resources.indexes",
    "resources.extra",
    "provisioned_keys",
    "provisioned_keys[].repo",
    "provisioned_keys[].forge",
    "provisioned_keys[].api",
    "provisioned_keys[].key_id",
    "provisioned_keys[].title",
    "provisioned_keys[].token_env",
    "keep",
];

fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                if path != "resources.indexes" && path != "resources.extra" {
                    key_paths(v, &path, out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                key_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn metadata_holds_only_the_known_non_secret_fields() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let started = create_bottle(&home, &new_bottle("full"), &mut SlugRng::seeded(11)).unwrap();
    let slug = started.metadata.slug.clone();
    update(&home, &slug, |m| {
        m.status = Status::Preserved;
        m.keep = true;
        m.resources.containers.push("bot-bottle-full-agent".into());
        m.resources.networks.push("bot-bottle-full-internal".into());
        m.resources.images.push("bot-bottle/full:agent".into());
        m.resources.indexes.insert("subnet".into(), 3);
        m.resources
            .extra
            .insert("socket".into(), "/run/x.sock".into());
        m.provisioned_keys.push(ProvisionedKeyRecord {
            repo: "acme/app".into(),
            forge: "github".into(),
            api: "https://api.github.com".into(),
            key_id: "12345".into(),
            title: "bot-bottle full".into(),
            token_env: "GITHUB_ADMIN_TOKEN".into(),
        });
    })
    .unwrap();
    let raw = fs::read(home.bottle(&slug).unwrap().metadata()).unwrap();
    let value: Value = serde_json::from_slice(&raw).unwrap();
    let mut found = BTreeSet::new();
    key_paths(&value, "", &mut found);
    let known: BTreeSet<String> = KNOWN_KEYS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        found, known,
        "metadata.json gained or lost a field: review it for secrets"
    );
    // Round trip through the public reader gives the same data.
    assert_eq!(
        read(&home, &slug).unwrap().provisioned_keys[0].key_id,
        "12345"
    );
}

#[test]
fn corrupt_metadata_is_reported_per_bottle() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let mut rng = SlugRng::seeded(21);
    let good = create_bottle(&home, &new_bottle("good"), &mut rng).unwrap();
    let garbage = create_bottle(&home, &new_bottle("garbage"), &mut rng).unwrap();
    let torn = create_bottle(&home, &new_bottle("torn"), &mut rng).unwrap();

    let garbage_path = home.bottle(garbage.lock.slug()).unwrap().metadata();
    fs::write(&garbage_path, b"\x00\x01 not json").unwrap();
    let torn_path = home.bottle(torn.lock.slug()).unwrap().metadata();
    let full = fs::read(&torn_path).unwrap();
    fs::write(&torn_path, &full[..full.len() / 2]).unwrap();

    let entries = list(&home).unwrap();
    assert_eq!(entries.len(), 3);
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for e in &entries {
        match e {
            Ok(m) => ok.push(m.slug.clone()),
            Err((slug, err @ Error::CorruptMetadata { .. })) => {
                assert!(err.to_string().contains("metadata.json"), "{err}");
                bad.push(slug.clone());
            }
            Err((slug, err)) => panic!("{slug}: unexpected {err}"),
        }
    }
    assert_eq!(ok, vec![good.metadata.slug.clone()]);
    bad.sort();
    let mut expected = vec![
        garbage.lock.slug().to_string(),
        torn.lock.slug().to_string(),
    ];
    expected.sort();
    assert_eq!(bad, expected);

    let rows = list_rows(&entries, OffsetDateTime::now_utc());
    assert_eq!(rows.iter().filter(|r| r.status == "unreadable").count(), 2);
    assert_eq!(
        rows.iter()
            .find(|r| r.slug == good.metadata.slug)
            .unwrap()
            .title,
        "bob (good)"
    );

    // A corrupt bottle can still be removed.
    drop(garbage.lock);
    let lock = BottleLock::try_acquire(&home, bad[0].as_str())
        .unwrap()
        .unwrap();
    remove(&home, lock).unwrap();
    assert_eq!(list(&home).unwrap().len(), 2);
}

#[test]
fn removed_bottles_vanish_from_the_list_and_free_their_slug() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let first = create_bottle(&home, &new_bottle("again"), &mut SlugRng::seeded(4)).unwrap();
    let slug = first.metadata.slug.clone();
    remove(&home, first.lock).unwrap();
    assert!(list(&home).unwrap().is_empty());
    // Nothing is left behind, hidden folders included.
    assert_eq!(fs::read_dir(home.bottles_dir()).unwrap().count(), 0);
    let second = create_bottle(&home, &new_bottle("again"), &mut SlugRng::seeded(4)).unwrap();
    assert_eq!(
        second.metadata.slug, slug,
        "the same seed reuses the freed slug"
    );
}
