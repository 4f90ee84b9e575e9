//! Which bottles have a control API, read from `$BOT_BOTTLE_HOME/bottles/<slug>/`.
//!
//! Each bottle folder may hold `supervise.json` (mode 0600: `{"control_url", "control_token"}`)
//! and `metadata.json` (`name`, `label`, `color`; other fields ignored). A bottle without
//! `supervise.json` has no supervise service and is skipped silently; anything unreadable is
//! reported per bottle and never stops the others from being listed.

use std::fs;
use std::path::{Path, PathBuf};

use bottle_config::Secret;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How to reach one bottle's control API, and how to show the bottle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BottleEndpoint {
    pub slug: String,
    pub name: String,
    pub label: Option<String>,
    /// ANSI colour name (`red`, `bright-blue`, …) or `#rrggbb`.
    pub color: Option<String>,
    /// e.g. `http://127.0.0.1:43121`.
    pub control_url: String,
    pub control_token: Secret,
}

impl BottleEndpoint {
    /// `label (name)`, or `name` when there is no label.
    pub fn display_name(&self) -> String {
        display_name(&self.name, self.label.as_deref())
    }

    /// The bottle without its token, for output.
    pub fn bottle_ref(&self) -> BottleRef {
        BottleRef {
            slug: self.slug.clone(),
            name: self.name.clone(),
            label: self.label.clone(),
            color: self.color.clone(),
        }
    }
}

/// A bottle as shown to the operator (no token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BottleRef {
    pub slug: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

impl BottleRef {
    /// `label (name)`, or `name` when there is no label.
    pub fn display_name(&self) -> String {
        display_name(&self.name, self.label.as_deref())
    }
}

fn display_name(name: &str, label: Option<&str>) -> String {
    match label.map(str::trim).filter(|l| !l.is_empty()) {
        Some(label) => format!("{label} ({name})"),
        None => name.to_owned(),
    }
}

/// A problem with one bottle's files.
#[derive(Debug)]
pub struct DiscoveryError {
    pub slug: String,
    pub error: Error,
}

/// What [`endpoints_from_home`] found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Bottles with a usable `supervise.json`, sorted by slug.
    pub endpoints: Vec<BottleEndpoint>,
    /// Per-bottle problems (the bottle is still listed when only `metadata.json` is bad).
    pub errors: Vec<DiscoveryError>,
}

#[derive(Deserialize)]
struct SuperviseFile {
    control_url: String,
    control_token: Secret,
}

#[derive(Deserialize)]
struct MetadataFile {
    name: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default, alias = "colour")]
    color: Option<String>,
}

/// Reads every bottle's `supervise.json` and `metadata.json` under `home/bottles/`.
pub fn endpoints_from_home(home: &Path) -> Discovery {
    let mut found = Discovery::default();
    let bottles = home.join("bottles");
    let entries = match fs::read_dir(&bottles) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return found,
        Err(source) => {
            found.errors.push(DiscoveryError {
                slug: String::new(),
                error: Error::Read {
                    path: bottles,
                    source,
                },
            });
            return found;
        }
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let slug = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match read_bottle(&dir, &slug) {
            Ok(None) => {}
            Ok(Some((endpoint, meta_error))) => {
                found.endpoints.push(endpoint);
                if let Some(error) = meta_error {
                    found.errors.push(DiscoveryError {
                        slug: slug.clone(),
                        error,
                    });
                }
            }
            Err(error) => found.errors.push(DiscoveryError { slug, error }),
        }
    }
    found
}

type Found = Option<(BottleEndpoint, Option<Error>)>;

fn read_bottle(dir: &Path, slug: &str) -> Result<Found, Error> {
    let path = dir.join("supervise.json");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Read { path, source }),
    };
    check_private(&path)?;
    let file: SuperviseFile = serde_json::from_slice(&bytes).map_err(|source| Error::Parse {
        path: path.clone(),
        source,
    })?;
    let url = file.control_url.trim().trim_end_matches('/').to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::BadField {
            path,
            field: "control_url",
            reason: "must start with http:// or https://",
        });
    }
    if file.control_token.is_empty() {
        return Err(Error::BadField {
            path,
            field: "control_token",
            reason: "must not be empty",
        });
    }
    let (meta, meta_error) = match read_metadata(&dir.join("metadata.json")) {
        Ok(meta) => (meta, None),
        Err(e) => (None, Some(e)),
    };
    let (name, label, color) = match meta {
        Some(m) => (m.name.unwrap_or_else(|| slug.to_owned()), m.label, m.color),
        None => (slug.to_owned(), None, None),
    };
    Ok(Some((
        BottleEndpoint {
            slug: slug.to_owned(),
            name,
            label,
            color,
            control_url: url,
            control_token: file.control_token,
        },
        meta_error,
    )))
}

fn read_metadata(path: &Path) -> Result<Option<MetadataFile>, Error> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| Error::Parse {
            path: path.to_path_buf(),
            source,
        })
}

/// Refuses a token file that others than its owner can read or write.
fn check_private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::LooseMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Writes `supervise.json` for a bottle (mode 0600), as the host side does at `start`; the
/// tests and the console demo use it too.
pub fn write_supervise_file(
    bottle_dir: &Path,
    control_url: &str,
    token: &Secret,
) -> crate::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = bottle_dir.join("supervise.json");
    let write_err = |source| Error::Write {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(bottle_dir).map_err(write_err)?;
    let body = serde_json::json!({ "control_url": control_url, "control_token": token.expose() });
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(write_err)?;
    // `mode` applies only when the file is created; tighten one that already existed before
    // the token goes in.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(write_err)?;
    file.write_all(body.to_string().as_bytes())
        .map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn reads_bottles_and_reports_junk_per_bottle() {
        let home = tempfile::tempdir().unwrap();
        let b = home.path().join("bottles");
        // Good, with label and colour.
        write_supervise_file(&b.join("a-1"), "http://127.0.0.1:1/", &Secret::new("tok-a")).unwrap();
        fs::write(
            b.join("a-1/metadata.json"),
            r#"{"name":"impl","label":"Fixer","color":"cyan","backend":"docker"}"#,
        )
        .unwrap();
        // Good, no metadata.
        write_supervise_file(&b.join("b-2"), "http://127.0.0.1:2", &Secret::new("tok-b")).unwrap();
        // No supervise.json: skipped silently.
        fs::create_dir_all(b.join("c-3")).unwrap();
        // Junk JSON.
        fs::create_dir_all(b.join("d-4")).unwrap();
        fs::write(b.join("d-4/supervise.json"), "{oops").unwrap();
        fs::set_permissions(
            b.join("d-4/supervise.json"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        // World-readable token file.
        write_supervise_file(&b.join("e-5"), "http://127.0.0.1:5", &Secret::new("tok-e")).unwrap();
        fs::set_permissions(
            b.join("e-5/supervise.json"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        // Bad metadata: still listed, with an error.
        write_supervise_file(&b.join("f-6"), "http://127.0.0.1:6", &Secret::new("tok-f")).unwrap();
        fs::write(b.join("f-6/metadata.json"), "[]").unwrap();

        let found = endpoints_from_home(home.path());
        let slugs: Vec<_> = found.endpoints.iter().map(|e| e.slug.as_str()).collect();
        assert_eq!(slugs, ["a-1", "b-2", "f-6"]);
        assert_eq!(found.endpoints[0].display_name(), "Fixer (impl)");
        assert_eq!(found.endpoints[0].color.as_deref(), Some("cyan"));
        assert_eq!(found.endpoints[0].control_url, "http://127.0.0.1:1");
        assert_eq!(found.endpoints[1].display_name(), "b-2");
        let errors: Vec<String> = found
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.slug, e.error))
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("d-4: ") && errors[0].contains("is not valid"));
        assert!(errors[1].starts_with("e-5: ") && errors[1].contains("must be 0600"));
        assert!(errors[2].starts_with("f-6: ") && errors[2].contains("metadata.json"));
        for e in &errors {
            assert!(!e.contains("tok-"), "no token in errors: {e}");
        }
        assert!(!format!("{:?}", found.endpoints).contains("tok-"));
    }

    #[test]
    fn rewriting_tightens_a_loose_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("supervise.json");
        fs::write(&path, "{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_supervise_file(dir.path(), "http://127.0.0.1:1", &Secret::new("t")).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn missing_home_is_empty() {
        let home = tempfile::tempdir().unwrap();
        let found = endpoints_from_home(&home.path().join("nope"));
        assert!(found.endpoints.is_empty() && found.errors.is_empty());
    }
}
