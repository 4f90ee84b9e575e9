//! Semantic rules a well-shaped manifest must also follow (SPEC §2): names, colours, which
//! provider accepts which key, git upstream forms and their credentials, egress route rules,
//! durations, env names and values. All problems are collected, each located on the value (or
//! the key, for "remove this key" errors) it is about.
//!
//! Fields that hold the NAME of a host environment variable are never echoed in errors: a user
//! who pasted the secret itself there must not see it printed again.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::de::suggest;
use crate::env::parse_value;
use crate::error::Problem;
use crate::types::{AuthSchemeName, Manifest, RouteTls, SuperviseSpec};
use crate::yaml::{shorten, Node, PathDisplay, Seg};

/// Supervise timeout when the manifest gives none.
pub const DEFAULT_SUPERVISE_TIMEOUT: Duration = Duration::from_secs(600);

/// The colour names a manifest accepts. `bottle-terminal::COLOR_NAMES` owns the palette; the
/// manifest keeps its own copy so validating a file does not pull in terminal code, and a test
/// in `bot-bottle` (which links both) fails if the two lists ever differ.
pub const COLOR_NAMES: &[&str] = &[
    "black",
    "red",
    "green",
    "yellow",
    "blue",
    "magenta",
    "cyan",
    "white",
    "bright-black",
    "bright-red",
    "bright-green",
    "bright-yellow",
    "bright-blue",
    "bright-magenta",
    "bright-cyan",
    "bright-white",
];

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Parses `<n>s`, `<n>m` or `<n>h` between 1 second and 24 hours.
pub fn parse_timeout(s: &str) -> Option<Duration> {
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        _ => return None,
    };
    (1..=86_400)
        .contains(&secs)
        .then(|| Duration::from_secs(secs))
}

impl SuperviseSpec {
    /// The validated timeout, or [`DEFAULT_SUPERVISE_TIMEOUT`].
    pub fn timeout_duration(&self) -> Duration {
        self.timeout
            .as_deref()
            .and_then(parse_timeout)
            .unwrap_or(DEFAULT_SUPERVISE_TIMEOUT)
    }
}

/// How a git upstream is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    Ssh,
    Https,
}

/// A parsed git `upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitUpstream {
    pub kind: UpstreamKind,
    /// ssh user (`git` in `git@github.com:org/repo.git`), if given.
    pub user: Option<String>,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Explicit port or the default (22 for ssh, 443 for https).
    pub port: u16,
    /// Repository path, without a leading `/`.
    pub path: String,
}

impl GitUpstream {
    /// Parses `user@host:path`, `ssh://[user@]host[:port]/path` or `https://host[:port]/path`.
    pub fn parse(s: &str) -> Option<GitUpstream> {
        parse_upstream(s).ok()
    }
}

type Why = (String, String);

fn why(message: &str, hint: &str) -> Why {
    (message.to_string(), hint.to_string())
}

fn parse_upstream(s: &str) -> Result<GitUpstream, Why> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(why(
            "`upstream` contains spaces or control characters",
            "write the URL without spaces",
        ));
    }
    if let Some(rest) = s.strip_prefix("https://") {
        return parse_url(rest, UpstreamKind::Https);
    }
    if let Some(rest) = s.strip_prefix("ssh://") {
        return parse_url(rest, UpstreamKind::Ssh);
    }
    if s.starts_with("http://") {
        return Err(why(
            "plain http:// upstreams are refused",
            "use https:// — a token must never travel unencrypted",
        ));
    }
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(why(
            &format!("unsupported upstream scheme `{}`", shorten(scheme)),
            "use `git@host:org/repo.git`, `ssh://git@host:22/org/repo.git` or `https://host/org/repo.git`",
        ));
    }
    // scp-like: [user@]host:path, where the host part has no `/`.
    let scp_hint =
        "use `git@host:org/repo.git`, `ssh://git@host:22/org/repo.git` or `https://host/org/repo.git`";
    let Some((authority, path)) = s.split_once(':') else {
        return Err(why("`upstream` is not an ssh or https git URL", scp_hint));
    };
    if authority.contains('/') || authority.is_empty() {
        return Err(why("`upstream` is not an ssh or https git URL", scp_hint));
    }
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = user {
        check_user(u)?;
    }
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        return Err(why(
            "`upstream` has no repository path",
            "add the repository after `:`, e.g. `git@github.com:org/repo.git`",
        ));
    }
    check_host(host)?;
    Ok(GitUpstream {
        kind: UpstreamKind::Ssh,
        user: user.map(str::to_string),
        host: host.to_ascii_lowercase(),
        port: 22,
        path: path.to_string(),
    })
}

fn check_user(u: &str) -> Result<(), Why> {
    if u.is_empty()
        || !u
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(why(
            "`upstream` has an invalid user name",
            "the ssh user is usually `git`, as in `git@github.com:org/repo.git`",
        ));
    }
    Ok(())
}

fn parse_url(rest: &str, kind: UpstreamKind) -> Result<GitUpstream, Why> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = user {
        if kind == UpstreamKind::Https || u.contains(':') {
            return Err(why(
                "`upstream` must not contain credentials",
                "remove the `user:password@` part; give https upstreams `token: HOST_VAR` instead",
            ));
        }
        check_user(u)?;
    }
    let (host, port) = split_host_port(hostport)?;
    let default_port = match kind {
        UpstreamKind::Ssh => 22,
        UpstreamKind::Https => 443,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.is_empty() {
        return Err(why(
            "`upstream` has no repository path",
            "add the repository path, e.g. `https://github.com/org/repo.git`",
        ));
    }
    check_host(&host)?;
    Ok(GitUpstream {
        kind,
        user: user.map(str::to_string),
        host: host.to_ascii_lowercase(),
        port: port.unwrap_or(default_port),
        path: path.to_string(),
    })
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), Why> {
    let bad_port = || {
        why(
            "`upstream` has an invalid port",
            "a port is a number from 1 to 65535",
        )
    };
    let parse_port = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad_port()),
        Ok(n) => Ok(Some(n)),
    };
    if let Some(rest) = hostport.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| {
            why(
                "`upstream` has an unclosed `[`",
                "write IPv6 hosts as `[::1]`",
            )
        })?;
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None if after.is_empty() => None,
            None => return Err(bad_port()),
        };
        return Ok((h.to_string(), port));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_string(), parse_port(p)?)),
        None => Ok((hostport.to_string(), None)),
    }
}

fn check_host(host: &str) -> Result<(), Why> {
    if host.parse::<Ipv6Addr>().is_ok() || is_hostname(host) {
        Ok(())
    } else {
        Err(why(
            "`upstream` has an invalid host name",
            "use a host name such as `github.com`",
        ))
    }
}

/// DNS-style host name (also accepts IPv4 literals, which are dotted labels of digits).
fn is_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

pub(crate) fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value that looks like a credential rather than a variable name.
pub(crate) fn looks_like_secret(s: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
        "glpat-",
        "xoxb-",
        "xoxp-",
        "AKIA",
        "eyJ",
    ];
    s.contains("sk-")
        || PREFIXES.iter().any(|p| s.starts_with(p))
        || (s.chars().count() > 40 && !s.contains('_'))
}

fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 40
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A best-effort slug for the hint: lowercase, runs of other characters become `-`.
fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    out.chars()
        .take(40)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// Zero-width and bidirectional-override characters: they make a label in a terminal title
/// look like something else.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+.^_`|~-".contains(c))
}

/// Builds paths like `git[1].identity` for locating values.
macro_rules! path {
    ($($seg:expr),* $(,)?) => { [$(Seg::from($seg)),*] };
}

impl From<&str> for Seg {
    fn from(s: &str) -> Self {
        Seg::Key(s.to_string())
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

struct Checker<'a> {
    root: &'a Node,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    /// A problem with the value at `path`.
    fn value(&mut self, path: &[Seg], message: impl Into<String>, hint: impl Into<String>) {
        let mark = self.root.locate(path);
        self.problems.push(mark.problem(message, Some(hint.into())));
    }

    /// A problem with the presence of the key at `path`.
    fn key(&mut self, path: &[Seg], message: impl Into<String>, hint: impl Into<String>) {
        let mark = self.root.locate_key(path);
        self.problems.push(mark.problem(message, Some(hint.into())));
    }

    fn line_of(&self, path: &[Seg]) -> usize {
        self.root.locate(path).line
    }

    /// A field holding the NAME of a host env var. Never echoes the value.
    fn env_name_field(&mut self, path: &[Seg], value: &str, example: &str) {
        let shown = PathDisplay(path).to_string();
        if looks_like_secret(value) {
            self.value(
                path,
                format!("`{shown}` looks like a secret value, not the name of an environment variable"),
                format!(
                    "this field takes the NAME of a host environment variable (e.g. `{example}`) that holds the secret; \
                     export it on the host, and rotate the secret since it was written into this file"
                ),
            );
        } else if !is_env_name(value) {
            self.value(
                path,
                format!("`{shown}` must be the name of a host environment variable"),
                format!("use letters, digits and `_`, not starting with a digit, e.g. `{example}`"),
            );
        }
    }
}

/// Checks every rule; normalises hosts (lower-case) and methods (upper-case) in place.
pub(crate) fn validate(m: &mut Manifest, root: &Node) -> Vec<Problem> {
    let mut c = Checker {
        root,
        problems: Vec::new(),
    };
    top_level(&mut c, m);
    agent(&mut c, m);
    env(&mut c, m);
    git(&mut c, m);
    egress(&mut c, m);
    if let Some(t) = &m.supervise.timeout {
        if parse_timeout(t).is_none() {
            c.value(
                &path!["supervise", "timeout"],
                "`supervise.timeout` must be a duration from 1s to 24h",
                "write a number followed by s, m or h, e.g. `90s`, `10m`, `1h`",
            );
        }
    }
    c.problems
}

fn top_level(c: &mut Checker<'_>, m: &Manifest) {
    if m.version != 1 {
        c.value(
            &path!["version"],
            format!("unsupported manifest version {}", m.version),
            "this bot-bottle understands `version: 1` only",
        );
    }
    if !is_slug(&m.name) {
        let suggestion = slugify(&m.name);
        let example = if suggestion.is_empty() || !is_slug(&suggestion) {
            "my-agent".to_string()
        } else {
            suggestion
        };
        c.value(
            &path!["name"],
            "`name` must be 1-40 lowercase letters, digits or `-`, starting with a letter or digit",
            format!("e.g. `name: {example}`; use `label:` for a free-form display name"),
        );
    }
    if let Some(label) = &m.label {
        if label.trim().is_empty() {
            c.value(
                &path!["label"],
                "`label` is empty",
                "remove `label:` or give it some text",
            );
        } else if label
            .chars()
            .any(|ch| ch.is_control() || is_invisible_format(ch))
        {
            c.value(
                &path!["label"],
                "`label` contains control or invisible formatting characters",
                "use printable text only (it is shown in terminal titles)",
            );
        } else if label.chars().count() > 40 {
            c.value(
                &path!["label"],
                format!(
                    "`label` is {} characters long; the limit is 40",
                    label.chars().count()
                ),
                "shorten the label",
            );
        }
    }
    if let Some(color) = &m.color {
        if !COLOR_NAMES.contains(&color.as_str()) {
            let message = match suggest(color, COLOR_NAMES) {
                Some(s) => format!("unknown colour `{}` — did you mean `{s}`?", shorten(color)),
                None => format!("unknown colour `{}`", shorten(color)),
            };
            c.value(
                &path!["color"],
                message,
                format!("use one of: {}", COLOR_NAMES.join(", ")),
            );
        }
    }
}

fn agent(c: &mut Checker<'_>, m: &Manifest) {
    let a = &m.agent;
    let provider_ok = is_provider_path(&a.provider)
        || (!a.provider.is_empty()
            && a.provider.len() <= 40
            && a.provider
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'));
    if !provider_ok {
        c.value(
            &path!["agent", "provider"],
            "`agent.provider` must be `claude`, `codex`, a user provider's name (lowercase letters, digits, `-`) or a provider folder path starting with `./`, `../` or `/`",
            "e.g. `provider: claude`, or `provider: ./provider` for a folder with provider.yaml and Dockerfile beside the manifest",
        );
    }
    if let Some(token) = &a.auth_token {
        if a.provider != "claude" {
            c.key(
                &path!["agent", "auth_token"],
                "`auth_token` is only accepted by the built-in claude provider",
                "remove `auth_token`, or use `provider: claude`; other providers get credentials through `env:` or egress routes",
            );
        } else {
            c.env_name_field(&path!["agent", "auth_token"], token, "CLAUDE_TOKEN");
        }
    }
    if a.forward_host_credentials && a.provider != "codex" {
        c.key(
            &path!["agent", "forward_host_credentials"],
            "`forward_host_credentials` is only accepted by the built-in codex provider",
            "remove `forward_host_credentials`, or use `provider: codex`",
        );
    }
    if let Some(cmd) = &a.command {
        if cmd.first().is_none_or(|first| first.trim().is_empty()) {
            c.value(
                &path!["agent", "command"],
                "`agent.command` is empty",
                "give the program and its arguments, e.g. `command: [claude, --verbose]`, or remove it",
            );
        }
    }
}

fn env(c: &mut Checker<'_>, m: &Manifest) {
    for (key, value) in &m.env {
        if !is_env_name(key) {
            c.key(
                &path!["env", key.as_str()],
                format!(
                    "env key `{}` is not a valid environment variable name",
                    shorten(key)
                ),
                "use letters, digits and `_`, not starting with a digit, e.g. `LOG_LEVEL`",
            );
        }
        if let Err((message, hint)) = parse_value(value) {
            c.value(
                &path!["env", key.as_str()],
                format!("env `{}`: {message}", shorten(key)),
                hint,
            );
        }
    }
}

fn git(c: &mut Checker<'_>, m: &Manifest) {
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, g) in m.git.iter().enumerate() {
        let name_ok = !g.name.is_empty()
            && g.name.len() <= 100
            && g.name != "."
            && g.name != ".."
            && g.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch));
        if !name_ok {
            c.value(
                &path!["git", i, "name"],
                format!("git name `{}` is not allowed", shorten(&g.name)),
                "use letters, digits, `.`, `_` and `-` (it becomes `/<name>.git` on the gate)",
            );
        } else if g.name.ends_with(".git") {
            c.value(
                &path!["git", i, "name"],
                "git name must not end in `.git`",
                "drop the suffix: the gate serves `<name>.git` already",
            );
        }
        if let Some(first) = names.insert(g.name.clone(), i) {
            let line = c.line_of(&path!["git", first, "name"]);
            c.value(
                &path!["git", i, "name"],
                format!("duplicate git name `{}`", shorten(&g.name)),
                format!(
                    "each entry needs its own name; the first `{}` is at line {line}",
                    shorten(&g.name)
                ),
            );
        }

        match parse_upstream(&g.upstream) {
            Err((message, hint)) => c.value(&path!["git", i, "upstream"], message, hint),
            Ok(up) if up.kind == UpstreamKind::Ssh => {
                match (&g.identity, &g.provisioned_key) {
                    (Some(_), Some(_)) => c.key(
                        &path!["git", i, "provisioned_key"],
                        "`identity` and `provisioned_key` are mutually exclusive",
                        "keep `identity` (your own key file) or `provisioned_key` (a deploy key minted per bottle), not both",
                    ),
                    (None, None) => c.value(
                        &path!["git", i],
                        "an ssh upstream needs `identity` or `provisioned_key`",
                        "add `identity: ~/.ssh/deploy_key`, or `provisioned_key: {forge: github, api: https://api.github.com, token: GITHUB_ADMIN_TOKEN}`",
                    ),
                    _ => {}
                }
                if g.known_hosts.is_none() {
                    c.value(
                        &path!["git", i],
                        "an ssh upstream needs `known_hosts`",
                        "add `known_hosts: ./known_hosts` with the upstream's pinned host keys (`ssh-keyscan host > known_hosts`, then verify them)",
                    );
                }
                if g.token.is_some() {
                    c.key(
                        &path!["git", i, "token"],
                        "`token` is for https upstreams",
                        "ssh upstreams authenticate with `identity` or `provisioned_key`; remove `token`",
                    );
                }
            }
            Ok(_) => {
                match &g.token {
                    None => c.value(
                        &path!["git", i],
                        "an https upstream needs `token`",
                        "add `token: HOST_VAR`, the NAME of the host environment variable holding the access token",
                    ),
                    Some(t) => c.env_name_field(&path!["git", i, "token"], t, "GITHUB_TOKEN"),
                }
                for key in ["identity", "provisioned_key", "known_hosts"] {
                    let present = match key {
                        "identity" => g.identity.is_some(),
                        "provisioned_key" => g.provisioned_key.is_some(),
                        _ => g.known_hosts.is_some(),
                    };
                    if present {
                        c.key(
                            &path!["git", i, key],
                            format!("`{key}` is for ssh upstreams"),
                            "https upstreams authenticate with `token: HOST_VAR`; remove it, or use an ssh upstream (`git@host:org/repo.git`)",
                        );
                    }
                }
            }
        }

        for (j, pattern) in g.push.iter().enumerate() {
            let ok = pattern.starts_with("refs/")
                && pattern.len() > "refs/".len()
                && !pattern.contains("..")
                && !pattern
                    .chars()
                    .any(|ch| ch.is_whitespace() || ch.is_control());
            if !ok {
                c.value(
                    &path!["git", i, "push", j],
                    format!("push pattern `{}` is not a ref pattern", shorten(pattern)),
                    "write full ref patterns without spaces or `..`, e.g. `refs/heads/bot/*`",
                );
            }
        }

        if let Some(pk) = &g.provisioned_key {
            if pk.read_only && !g.push.is_empty() {
                c.value(
                    &path!["git", i, "provisioned_key"],
                    "a read-only provisioned key cannot push, but `push` is not empty",
                    "set `read_only: false` in `provisioned_key`, or remove `push`",
                );
            }
            let api_ok = ["https://", "http://"].iter().any(|s| {
                pk.api.strip_prefix(s).is_some_and(|rest| {
                    split_host_port(rest.split('/').next().unwrap_or(""))
                        .is_ok_and(|(h, _)| is_hostname(&h) || h.parse::<Ipv6Addr>().is_ok())
                })
            });
            if !api_ok {
                c.value(
                    &path!["git", i, "provisioned_key", "api"],
                    "`provisioned_key.api` must be an http(s) URL",
                    "e.g. `https://api.github.com`, `https://gitea.example/api/v1`, `https://gitlab.example/api/v4`",
                );
            }
            c.env_name_field(
                &path!["git", i, "provisioned_key", "token"],
                &pk.token,
                "FORGE_ADMIN_TOKEN",
            );
        }
    }
}

fn egress(c: &mut Checker<'_>, m: &mut Manifest) {
    let mut hosts: HashMap<String, usize> = HashMap::new();
    for (i, r) in m.egress.iter_mut().enumerate() {
        let host_path = path!["egress", i, "host"];
        let host = r.host.to_ascii_lowercase();
        let host_problem = if host.contains("://") {
            Some((
                "`host` must not include a scheme",
                "write just the host name, e.g. `api.github.com`; `tls:` says how it is reached"
                    .to_string(),
            ))
        } else if host.contains('/') {
            Some((
                "`host` must not include a path",
                "write just the host name; restrict paths with `paths: [/prefix]`".to_string(),
            ))
        } else if host.contains(':') && host.parse::<Ipv6Addr>().is_err() {
            let port = host.rsplit(':').next().unwrap_or("");
            let port = if port.chars().all(|ch| ch.is_ascii_digit()) && !port.is_empty() {
                port
            } else {
                "8443"
            };
            Some((
                "`host` must not include a port",
                format!("write the host alone and list ports separately: `ports: [{port}]`"),
            ))
        } else if host == "*" {
            Some((
                "`host: \"*\"` would allow every host",
                "list the hosts the agent needs; use `*.example.com` for a domain's subdomains"
                    .to_string(),
            ))
        } else if let Some(suffix) = host.strip_prefix("*.") {
            (!is_hostname(suffix) || suffix.contains('*')).then_some((
                "`host` wildcard must be `*.` followed by a domain",
                "e.g. `host: \"*.npmjs.org\"` (quote it: `*` starts an alias in YAML)".to_string(),
            ))
        } else if host.parse::<Ipv6Addr>().is_ok() || is_hostname(&host) {
            None
        } else {
            Some((
                "`host` is not a valid host name",
                "use a host name such as `api.github.com`, or `*.example.com`".to_string(),
            ))
        };
        if let Some((message, hint)) = host_problem {
            c.value(&host_path, message, hint);
        }
        if let Some(first) = hosts.insert(host.clone(), i) {
            let line = c.line_of(&path!["egress", first, "host"]);
            c.value(
                &host_path,
                format!("duplicate egress host `{}`", shorten(&host)),
                format!("merge the two routes into one; the first is at line {line}"),
            );
        }
        r.host = host;

        for (j, port) in r.ports.iter().enumerate() {
            if *port == 0 {
                c.value(
                    &path!["egress", i, "ports", j],
                    "port 0 is not a port",
                    "a port is a number from 1 to 65535",
                );
            }
        }
        for (j, method) in r.methods.iter_mut().enumerate() {
            let upper = method.to_ascii_uppercase();
            if METHODS.contains(&upper.as_str()) {
                *method = upper;
            } else {
                let message = match suggest(&upper, METHODS) {
                    Some(s) => format!(
                        "unknown HTTP method `{}` — did you mean `{s}`?",
                        shorten(method)
                    ),
                    None => format!("unknown HTTP method `{}`", shorten(method)),
                };
                c.value(
                    &path!["egress", i, "methods", j],
                    message,
                    format!("use any of: {}", METHODS.join(", ")),
                );
            }
        }
        for (j, p) in r.paths.iter().enumerate() {
            if !p.starts_with('/') {
                c.value(
                    &path!["egress", i, "paths", j],
                    format!("path `{}` must start with `/`", shorten(p)),
                    format!(
                        "write it as a path prefix, e.g. `/{}`",
                        shorten(p.trim_start_matches('/'))
                    ),
                );
            }
        }
        let passthrough = r.tls == Some(RouteTls::Passthrough);
        if passthrough {
            if r.auth.is_some() {
                c.key(
                    &path!["egress", i, "auth"],
                    "`auth` cannot be used with `tls: passthrough`",
                    "a credential can only be injected into intercepted traffic: remove `tls: passthrough` or remove `auth`",
                );
            }
            if !r.methods.is_empty() {
                c.key(
                    &path!["egress", i, "methods"],
                    "`methods` cannot be checked with `tls: passthrough`",
                    "passthrough traffic is not decrypted: remove `methods`, or remove `tls: passthrough`",
                );
            }
            if !r.paths.is_empty() {
                c.key(
                    &path!["egress", i, "paths"],
                    "`paths` cannot be checked with `tls: passthrough`",
                    "passthrough traffic is not decrypted: remove `paths`, or remove `tls: passthrough`",
                );
            }
        }
        if let Some(auth) = &r.auth {
            match (auth.scheme, &auth.name) {
                (AuthSchemeName::Header, None) => c.value(
                    &path!["egress", i, "auth"],
                    "`scheme: header` needs `name`",
                    "add the header to set, e.g. `name: X-Api-Key`",
                ),
                (AuthSchemeName::Header, Some(n)) if !is_header_name(n) => c.value(
                    &path!["egress", i, "auth", "name"],
                    "`auth.name` is not a valid HTTP header name",
                    "use letters, digits and `-`, e.g. `X-Api-Key`",
                ),
                (AuthSchemeName::Bearer | AuthSchemeName::Basic, Some(_)) => c.key(
                    &path!["egress", i, "auth", "name"],
                    "`name` is only used with `scheme: header`",
                    "remove `name` (bearer and basic always use the Authorization header), or use `scheme: header`",
                ),
                _ => {}
            }
            c.env_name_field(
                &path!["egress", i, "auth", "token"],
                &auth.token,
                "API_TOKEN",
            );
        }
    }
}

/// A file or folder the manifest references, for [`crate::check_files`].
pub(crate) struct FileRef {
    pub what: &'static str,
    pub path: PathBuf,
    pub at: Vec<Seg>,
    pub dir: bool,
    pub needs_skill_md: bool,
    pub hint: String,
}

/// True when `agent.provider` names a provider folder by path rather than by name.
pub fn is_provider_path(provider: &str) -> bool {
    provider.starts_with("./") || provider.starts_with("../") || provider.starts_with('/')
}

pub(crate) fn referenced_files(m: &Manifest) -> Vec<FileRef> {
    let rel = "paths are relative to the manifest's folder; `~/` means your home folder";
    let mut out = Vec::new();
    let mut file = |what, path: &PathBuf, at: Vec<Seg>, hint: String| {
        out.push(FileRef {
            what,
            path: path.clone(),
            at,
            dir: false,
            needs_skill_md: false,
            hint,
        });
    };
    if let Some(p) = &m.prompt {
        file(
            "prompt file",
            p,
            path!["prompt"].to_vec(),
            format!("create it or fix the path ({rel})"),
        );
    }
    if is_provider_path(&m.agent.provider) {
        let folder = PathBuf::from(&m.agent.provider);
        file(
            "provider definition",
            &folder.join("provider.yaml"),
            path!["agent", "provider"].to_vec(),
            format!("the provider folder needs provider.yaml and a Dockerfile ({rel})"),
        );
        file(
            "provider Dockerfile",
            &folder.join("Dockerfile"),
            path!["agent", "provider"].to_vec(),
            format!("the provider folder needs provider.yaml and a Dockerfile ({rel})"),
        );
    }
    if let Some(p) = &m.agent.dockerfile {
        file(
            "Dockerfile",
            p,
            path!["agent", "dockerfile"].to_vec(),
            format!("create it or fix the path ({rel})"),
        );
    }
    for (i, g) in m.git.iter().enumerate() {
        if let Some(p) = &g.identity {
            file(
                "identity key",
                p,
                path!["git", i, "identity"].to_vec(),
                format!("point it at the ssh private key for this upstream ({rel})"),
            );
        }
        if let Some(p) = &g.known_hosts {
            file("known_hosts file", p, path!["git", i, "known_hosts"].to_vec(), format!("create it with the upstream's host keys, e.g. `ssh-keyscan github.com > known_hosts`, and verify them ({rel})"));
        }
    }
    for (i, p) in m.skills.iter().enumerate() {
        out.push(FileRef {
            what: "skill folder",
            path: p.clone(),
            at: path!["skills", i].to_vec(),
            dir: true,
            needs_skill_md: true,
            hint: format!("a skill is a folder holding SKILL.md ({rel})"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_timeout("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_timeout("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_timeout("25h"), None);
        assert_eq!(parse_timeout("0s"), None);
        assert_eq!(parse_timeout("10"), None);
        assert_eq!(parse_timeout("m"), None);
        assert_eq!(parse_timeout("1é"), None);
        assert_eq!(parse_timeout("99999999999999999999h"), None);
        assert_eq!(
            SuperviseSpec::default().timeout_duration(),
            DEFAULT_SUPERVISE_TIMEOUT
        );
    }

    #[test]
    fn upstreams() {
        let u = GitUpstream::parse("git@github.com:acme/app.git").unwrap();
        assert_eq!(
            (u.kind, u.host.as_str(), u.port, u.path.as_str()),
            (UpstreamKind::Ssh, "github.com", 22, "acme/app.git")
        );
        assert_eq!(u.user.as_deref(), Some("git"));
        let u = GitUpstream::parse("ssh://git@127.0.0.1:2222/srv/app.git").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 2222, "srv/app.git")
        );
        let u = GitUpstream::parse("https://GitHub.com/acme/app.git").unwrap();
        assert_eq!(
            (u.kind, u.host.as_str(), u.port),
            (UpstreamKind::Https, "github.com", 443)
        );
        let u = GitUpstream::parse("https://[::1]:8443/a.git").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8443));
        for bad in [
            "http://github.com/a.git",
            "https://user:pw@github.com/a.git",
            "https://github.com",
            "ssh://host:0/a",
            "/srv/app.git",
            "./app",
            "git@github.com:",
            "ftp://x/y",
            "git@bad host:a",
        ] {
            assert!(GitUpstream::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn names_and_secrets() {
        assert!(is_env_name("GITHUB_TOKEN") && is_env_name("_x1"));
        assert!(!is_env_name("1X") && !is_env_name("A-B") && !is_env_name(""));
        assert!(looks_like_secret("sk-ant-abc"));
        assert!(looks_like_secret("ghp_aaaaaaaaaaaaaaaaaaaa"));
        assert!(looks_like_secret(&"a".repeat(41)));
        assert!(!looks_like_secret(
            "CLAUDE_CODE_OAUTH_TOKEN_FOR_THE_IMPLEMENTER_BOT"
        ));
        assert!(is_slug("claude-implementer") && !is_slug("-x") && !is_slug("A"));
        assert_eq!(slugify("My Agent!"), "my-agent");
    }
}
