//! Providers: how to build and configure one kind of agent.
//!
//! A provider is a declarative `provider.yaml` plus a `Dockerfile` beside it (found by
//! convention) and any template files it names. The built-in providers (`claude`, `codex`) are
//! written in the same format and bundled into the binary; user providers live in
//! `$BOT_BOTTLE_HOME/providers/<name>/`. Only what the format cannot say — the two
//! credential-forwarding keys that SPEC §2 reserves for built-ins — is code, in `plan::build`.
//!
//! Templates substitute `{{var}}`, `{{var|json}}` (a JSON string literal), `{{var|toml}}` (a
//! TOML basic string) and `{{var|sh}}` (a single-quoted shell word). An unknown variable or
//! filter is an error naming the provider and file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A provider definition as written in `provider.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Non-root guest user.
    pub user: String,
    /// Guest home, e.g. `/home/node`.
    pub home: PathBuf,
    /// Working directory; default `<home>/work`.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// Default command.
    pub command: Vec<String>,
    /// Where the manifest's prompt is written, relative to home (e.g. `.claude/CLAUDE.md`).
    #[serde(default)]
    pub prompt_path: Option<PathBuf>,
    /// Where skills are copied, relative to home (each skill becomes `<skills_path>/<name>/`).
    #[serde(default)]
    pub skills_path: Option<PathBuf>,
    /// Environment (values are templates).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files written in the guest.
    #[serde(default)]
    pub files: Vec<ProviderFile>,
    /// Setup commands run as the agent user after the files are written.
    #[serde(default)]
    pub setup: Vec<ProviderSetup>,
    /// The provider's own egress routes (no credentials: those come from built-in keys).
    #[serde(default)]
    pub egress: Vec<ProviderRoute>,
}

/// A file a provider writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    /// Guest path, relative to home unless absolute.
    pub path: PathBuf,
    /// A template file beside `provider.yaml`.
    #[serde(default)]
    pub template: Option<String>,
    /// Inline content (a template too).
    #[serde(default)]
    pub content: Option<String>,
    /// Octal mode as a string, e.g. `"0644"` (default).
    #[serde(default)]
    pub mode: Option<String>,
}

/// A setup command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSetup {
    /// argv, each word a template.
    pub argv: Vec<String>,
    /// Run as root instead of the agent user.
    #[serde(default)]
    pub as_root: bool,
}

/// A route the provider needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderRoute {
    pub host: String,
    #[serde(default)]
    pub ports: Vec<u16>,
    #[serde(default)]
    pub passthrough: bool,
}

/// A loaded provider: its definition, Dockerfile and templates.
#[derive(Debug, Clone)]
pub struct Provider {
    pub def: ProviderDef,
    pub builtin: bool,
    /// The provider's Dockerfile text and, for user providers, its path.
    pub dockerfile: String,
    pub dockerfile_path: Option<PathBuf>,
    /// Template files by name.
    pub templates: BTreeMap<String, String>,
    /// Where the provider was loaded from (for error messages).
    pub origin: PathBuf,
}

/// The built-in providers' names.
pub const BUILTIN: &[&str] = &["claude", "codex"];

struct Bundled {
    name: &'static str,
    yaml: &'static str,
    dockerfile: &'static str,
    templates: &'static [(&'static str, &'static str)],
}

const BUNDLED: &[Bundled] = &[
    Bundled {
        name: "claude",
        yaml: include_str!("../providers/claude/provider.yaml"),
        dockerfile: include_str!("../providers/claude/Dockerfile"),
        templates: &[
            (
                "settings.json",
                include_str!("../providers/claude/settings.json"),
            ),
            (
                "claude.json",
                include_str!("../providers/claude/claude.json"),
            ),
            (
                "statusline.sh",
                include_str!("../providers/claude/statusline.sh"),
            ),
        ],
    },
    Bundled {
        name: "codex",
        yaml: include_str!("../providers/codex/provider.yaml"),
        dockerfile: include_str!("../providers/codex/Dockerfile"),
        templates: &[(
            "config.toml",
            include_str!("../providers/codex/config.toml"),
        )],
    },
];

fn parse_def(yaml: &str, origin: &Path) -> Result<ProviderDef> {
    let def: ProviderDef = serde_yaml_ng::from_str(yaml).map_err(|e| Error::ProviderInvalid {
        path: origin.to_path_buf(),
        message: e.to_string(),
    })?;
    validate_def(&def, origin)?;
    Ok(def)
}

fn validate_def(def: &ProviderDef, origin: &Path) -> Result<()> {
    let invalid = |message: String| Error::ProviderInvalid {
        path: origin.to_path_buf(),
        message,
    };
    if def.user.is_empty() || def.user == "root" {
        return Err(invalid(format!(
            "`user` must name a non-root guest user (got `{}`); agents never run as root",
            def.user
        )));
    }
    if !def.home.is_absolute() {
        return Err(invalid(format!(
            "`home` must be an absolute guest path, got `{}`",
            def.home.display()
        )));
    }
    if def.command.is_empty() {
        return Err(invalid("`command` must have at least one word".into()));
    }
    for f in &def.files {
        match (&f.template, &f.content) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(invalid(format!(
                    "file `{}` needs exactly one of `template` or `content`",
                    f.path.display()
                )))
            }
            _ => {}
        }
        if let Some(m) = &f.mode {
            parse_mode(m).ok_or_else(|| {
                invalid(format!(
                    "file `{}`: mode `{m}` is not an octal mode like \"0644\"",
                    f.path.display()
                ))
            })?;
        }
    }
    Ok(())
}

/// Parses `"0644"` / `"755"` into a mode.
pub fn parse_mode(s: &str) -> Option<u32> {
    let m = u32::from_str_radix(s.trim_start_matches("0o"), 8).ok()?;
    (m <= 0o7777).then_some(m)
}

/// Loads the built-in provider `name`, if there is one.
pub fn builtin(name: &str) -> Result<Option<Provider>> {
    let Some(b) = BUNDLED.iter().find(|b| b.name == name) else {
        return Ok(None);
    };
    let origin = PathBuf::from(format!("<built-in provider {name}>/provider.yaml"));
    let def = parse_def(b.yaml, &origin)?;
    Ok(Some(Provider {
        def,
        builtin: true,
        dockerfile: b.dockerfile.to_string(),
        dockerfile_path: None,
        templates: b
            .templates
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        origin,
    }))
}

/// Loads the user provider in `dir` (`provider.yaml`, `Dockerfile`, templates).
pub fn load_user(dir: &Path) -> Result<Provider> {
    let yaml_path = dir.join("provider.yaml");
    let yaml = read(&yaml_path)?;
    let def = parse_def(&yaml, &yaml_path)?;
    let dockerfile_path = dir.join("Dockerfile");
    let dockerfile = read(&dockerfile_path)?;
    let mut templates = BTreeMap::new();
    for f in &def.files {
        if let Some(t) = &f.template {
            if t.contains('/') || t.contains("..") {
                return Err(Error::ProviderInvalid {
                    path: yaml_path.clone(),
                    message: format!("template `{t}` must be a file name beside provider.yaml"),
                });
            }
            templates.insert(t.clone(), read(&dir.join(t))?);
        }
    }
    Ok(Provider {
        def,
        builtin: false,
        dockerfile,
        dockerfile_path: Some(dockerfile_path),
        templates,
        origin: yaml_path,
    })
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Finds a provider: a user provider in `<home>/providers/<name>/` wins over a built-in of the
/// same name only if it exists; otherwise the built-in.
pub fn find(name: &str, bot_home: &Path) -> Result<Provider> {
    let dir = bot_home.join("providers").join(name);
    if dir.join("provider.yaml").is_file() {
        return load_user(&dir);
    }
    builtin(name)?.ok_or_else(|| Error::UnknownProvider {
        name: name.to_string(),
        searched: bot_home.join("providers"),
    })
}

/// Lists built-in and installed user providers: (name, builtin, description).
pub fn list(bot_home: &Path) -> Vec<(String, bool, Option<String>)> {
    let mut out: Vec<(String, bool, Option<String>)> = BUNDLED
        .iter()
        .filter_map(|b| builtin(b.name).ok().flatten())
        .map(|p| (p.def.name, true, p.def.description))
        .collect();
    if let Ok(rd) = std::fs::read_dir(bot_home.join("providers")) {
        let mut users: Vec<_> = rd
            .flatten()
            .filter(|e| e.path().join("provider.yaml").is_file())
            .map(|e| match load_user(&e.path()) {
                Ok(p) => (p.def.name, false, p.def.description),
                Err(err) => (
                    e.file_name().to_string_lossy().into_owned(),
                    false,
                    Some(format!("invalid: {err}")),
                ),
            })
            .collect();
        users.sort();
        out.extend(users);
    }
    out
}

/// Renders a template with `vars`.
pub fn render(
    template: &str,
    vars: &BTreeMap<&str, String>,
    provider: &str,
    file: &str,
) -> Result<String> {
    let err = |message: String| Error::Template {
        provider: provider.to_string(),
        file: file.to_string(),
        message,
    };
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| err("`{{` without a closing `}}`".into()))?;
        let expr = after[..end].trim();
        let (var, filter) = match expr.split_once('|') {
            Some((v, f)) => (v.trim(), Some(f.trim())),
            None => (expr, None),
        };
        let value = vars.get(var).ok_or_else(|| {
            err(format!(
                "unknown variable `{var}`; known: {}",
                vars.keys().copied().collect::<Vec<_>>().join(", ")
            ))
        })?;
        match filter {
            None => out.push_str(value),
            Some("json") | Some("toml") => out.push_str(&json_string(value)),
            Some("sh") => out.push_str(&sh_quote(value)),
            Some(f) => return Err(err(format!("unknown filter `{f}`; known: json, toml, sh"))),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A JSON string literal (also a valid TOML basic string: control characters are escaped).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A single-quoted shell word.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for name in BUILTIN {
            let p = builtin(name).unwrap().unwrap();
            assert_eq!(p.def.name, *name);
            assert_eq!(p.def.home, PathBuf::from("/home/node"));
            for f in &p.def.files {
                if let Some(t) = &f.template {
                    assert!(p.templates.contains_key(t), "{name}: missing template {t}");
                }
            }
        }
    }

    #[test]
    fn render_filters() {
        let mut vars = BTreeMap::new();
        vars.insert("x", "a\"b'c".to_string());
        assert_eq!(render("{{x}}", &vars, "p", "f").unwrap(), "a\"b'c");
        assert_eq!(
            render("{{ x|json }}", &vars, "p", "f").unwrap(),
            "\"a\\\"b'c\""
        );
        assert_eq!(render("{{x|sh}}", &vars, "p", "f").unwrap(), "'a\"b'\\''c'");
        let e = render("{{y}}", &vars, "p", "f").unwrap_err().to_string();
        assert!(e.contains("unknown variable `y`"), "{e}");
        let e = render("{{x|up}}", &vars, "p", "f").unwrap_err().to_string();
        assert!(e.contains("unknown filter `up`"), "{e}");
        assert!(render("{{x", &vars, "p", "f").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0644"), Some(0o644));
        assert_eq!(parse_mode("755"), Some(0o755));
        assert_eq!(parse_mode("9"), None);
    }
}
