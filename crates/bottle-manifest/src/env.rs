//! Resolution of the manifest's `env:` values at start.
//!
//! A value is a literal, `${VAR}` / `${VAR:-default}` (read from the host environment), or
//! exactly `?prompt` (asked on the terminal without echo). Resolved values are
//! [`Secret`]s: their `Debug`/`Display` are redacted, and no error here ever contains a value.
//! The host lookup and the prompter are passed in, so resolution is testable without a real
//! environment or terminal.

use std::collections::BTreeMap;

use bottle_config::Secret;

use crate::error::{Error, Result};
use crate::validate::is_env_name;

/// One `env:` value as written in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// Used as written.
    Literal(String),
    /// `${name}` or `${name:-default}`: from the host environment at start.
    HostVar {
        name: String,
        default: Option<String>,
    },
    /// `?prompt`: asked on the terminal at start.
    Prompt,
}

impl EnvValue {
    /// Parses a manifest value. A `${` that is not exactly one whole `${VAR}` or
    /// `${VAR:-default}` is an error (interpolation inside text is not supported). The error
    /// never contains the value.
    pub fn parse(s: &str) -> Result<EnvValue> {
        parse_value(s).map_err(|(message, hint)| Error::EnvSyntax { message, hint })
    }

    /// True when the value comes from outside the manifest (host env or the terminal): such
    /// values may be secrets and are hidden from summaries.
    pub fn is_external(&self) -> bool {
        !matches!(self, EnvValue::Literal(_))
    }
}

pub(crate) fn parse_value(s: &str) -> std::result::Result<EnvValue, (String, String)> {
    if s == "?prompt" {
        return Ok(EnvValue::Prompt);
    }
    if !s.contains("${") {
        return Ok(EnvValue::Literal(s.to_string()));
    }
    let whole =
        "write the whole value as `${VAR}` or `${VAR:-default}`; text around it is not supported";
    let Some(inner) = s.strip_prefix("${") else {
        return Err(("`${` may only start the value".into(), whole.into()));
    };
    let Some(inner) = inner.strip_suffix('}') else {
        return Err(("`${` is not closed with `}`".into(), whole.into()));
    };
    let (name, default) = match inner.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (inner, None),
    };
    if default.is_some_and(|d| d.contains("${")) {
        return Err((
            "a default may not contain another `${`".into(),
            "give a plain default: `${VAR:-text}`".into(),
        ));
    }
    if default.is_none() && name.contains(':') {
        return Err((
            "`${VAR:...}` needs `:-` before a default".into(),
            "write `${VAR:-default}`".into(),
        ));
    }
    if name.contains('}') || name.contains("${") {
        return Err((
            "only one `${VAR}` is allowed, as the whole value".into(),
            whole.into(),
        ));
    }
    if !is_env_name(name) {
        return Err((
            "the name inside `${...}` is not a valid environment variable name".into(),
            "use letters, digits and `_`, not starting with a digit, e.g. `${AWS_REGION}`".into(),
        ));
    }
    Ok(EnvValue::HostVar {
        name: name.to_string(),
        default: default.map(str::to_string),
    })
}

/// Asks the operator for a `?prompt` value.
pub trait Prompter {
    /// Asks for the value of env key `name`.
    fn ask(&mut self, name: &str) -> Result<String>;
}

/// Asks on the controlling terminal without echo; refuses clearly when there is none.
#[derive(Debug, Default, Clone, Copy)]
pub struct TtyPrompter;

impl Prompter for TtyPrompter {
    fn ask(&mut self, name: &str) -> Result<String> {
        // rpassword opens /dev/tty itself; opening it first tells "no terminal" apart from a
        // failed read.
        if std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .is_err()
        {
            return Err(Error::NoTerminal {
                key: name.to_string(),
            });
        }
        rpassword::prompt_password(format!("{name} (not echoed): ")).map_err(|source| {
            Error::Prompt {
                key: name.to_string(),
                source,
            }
        })
    }
}

/// The host's environment, for [`Resolver::new`].
pub fn host_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Resolves a manifest's `env:` map into values.
pub struct Resolver<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    prompter: &'a mut dyn Prompter,
}

impl<'a> Resolver<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>, prompter: &'a mut dyn Prompter) -> Self {
        Resolver { lookup, prompter }
    }

    /// Resolves every entry. Host variables are checked first and all missing ones reported
    /// together, before anything is asked on the terminal.
    pub fn resolve(&mut self, env: &BTreeMap<String, String>) -> Result<BTreeMap<String, Secret>> {
        let mut parsed = Vec::with_capacity(env.len());
        let mut errors = Vec::new();
        for (key, raw) in env {
            match parse_value(raw) {
                Ok(v) => parsed.push((key, v)),
                Err((message, hint)) => errors.push(Error::EnvSyntax {
                    message: format!("env `{key}`: {message}"),
                    hint,
                }),
            }
        }
        let mut out = BTreeMap::new();
        let mut prompts = Vec::new();
        for (key, value) in parsed {
            match value {
                EnvValue::Literal(v) => {
                    out.insert(key.clone(), Secret::new(v));
                }
                EnvValue::HostVar { name, default } => {
                    let found = (self.lookup)(&name);
                    // Like the shell: `:-` also applies when the variable is set but empty.
                    let value = match (found, default) {
                        (Some(v), Some(d)) if v.is_empty() => Some(d),
                        (Some(v), _) => Some(v),
                        (None, d) => d,
                    };
                    match value {
                        Some(v) => {
                            out.insert(key.clone(), Secret::new(v));
                        }
                        None => errors.push(Error::EnvUnset {
                            key: key.clone(),
                            var: name,
                        }),
                    }
                }
                EnvValue::Prompt => prompts.push(key),
            }
        }
        if let Some(e) = Error::collect(errors) {
            return Err(e);
        }
        for key in prompts {
            let v = self.prompter.ask(key)?;
            out.insert(key.clone(), Secret::new(v));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    struct Scripted(Vec<String>, Vec<String>);

    impl Prompter for Scripted {
        fn ask(&mut self, name: &str) -> Result<String> {
            self.1.push(name.to_string());
            Ok(self.0.remove(0))
        }
    }

    #[test]
    fn parses_each_form() {
        assert_eq!(
            EnvValue::parse("debug").unwrap(),
            EnvValue::Literal("debug".into())
        );
        assert_eq!(
            EnvValue::parse("$HOME").unwrap(),
            EnvValue::Literal("$HOME".into())
        );
        assert_eq!(EnvValue::parse("?prompt").unwrap(), EnvValue::Prompt);
        assert_eq!(
            EnvValue::parse("?prompt ").unwrap(),
            EnvValue::Literal("?prompt ".into())
        );
        assert_eq!(
            EnvValue::parse("${AWS_REGION}").unwrap(),
            EnvValue::HostVar {
                name: "AWS_REGION".into(),
                default: None
            }
        );
        assert_eq!(
            EnvValue::parse("${R:-eu-west-1}").unwrap(),
            EnvValue::HostVar {
                name: "R".into(),
                default: Some("eu-west-1".into())
            }
        );
        assert_eq!(
            EnvValue::parse("${R:-}").unwrap(),
            EnvValue::HostVar {
                name: "R".into(),
                default: Some(String::new())
            }
        );
        for bad in [
            "${zz9",
            "${}zz9",
            "${1zz9}",
            "zz9${A}",
            "${A}zz9",
            "${A:zz9}",
            "${A}${zz9}",
            "${A:-${zz9}}",
        ] {
            let e = EnvValue::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("zz9"), "error echoes the value: {e}");
        }
    }

    #[test]
    fn resolves_host_vars_defaults_and_prompts() {
        let lookup = |n: &str| match n {
            "REGION" => Some("eu-north-1".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let mut p = Scripted(vec!["hunter2".into()], Vec::new());
        let env = map(&[
            ("A", "lit"),
            ("B", "${REGION}"),
            ("C", "${UNSET:-dflt}"),
            ("D", "${EMPTY:-dflt}"),
            ("E", "${EMPTY}"),
            ("PW", "?prompt"),
        ]);
        let out = Resolver::new(&lookup, &mut p).resolve(&env).unwrap();
        let got: Vec<(&str, &str)> = out.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        assert_eq!(
            got,
            [
                ("A", "lit"),
                ("B", "eu-north-1"),
                ("C", "dflt"),
                ("D", "dflt"),
                ("E", ""),
                ("PW", "hunter2")
            ]
        );
        assert_eq!(p.1, ["PW"]);
        let dbg = format!("{out:?}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("eu-north-1"),
            "{dbg}"
        );
    }

    #[test]
    fn unset_vars_are_all_reported_before_prompting() {
        let lookup = |n: &str| (n == "SET").then(|| "s3cr3t-value".to_string());
        let mut p = Scripted(Vec::new(), Vec::new());
        let env = map(&[
            ("A", "${MISSING_A}"),
            ("B", "${MISSING_B}"),
            ("C", "${SET}"),
            ("PW", "?prompt"),
        ]);
        let e = Resolver::new(&lookup, &mut p)
            .resolve(&env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("env `A` needs the host environment variable `MISSING_A`"),
            "{e}"
        );
        assert!(e.contains("`MISSING_B`"), "{e}");
        assert!(!e.contains("s3cr3t-value"), "{e}");
        assert!(p.1.is_empty(), "prompted before reporting unset vars");
    }
}
