//! The pure step: a validated manifest (plus overrides and the provider catalogue) → [`Plan`].
//!
//! No I/O beyond reading files the manifest names (prompt, Dockerfile override), the provider
//! catalogue, and — without keeping any value — the host environment (to tell an OAuth token
//! from an API key) and the host's codex `auth.json` (its account id and refresh time, never
//! its tokens). Deterministic for a given slug.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bottle_config::{AuthScheme, PushRules, TlsMode, PLACEHOLDER};
use bottle_manifest::env::EnvValue;
use bottle_manifest::{AuthSchemeName, BackendKind, GitEntry, GitUpstream, Manifest, RouteTls};

use crate::error::{Error, Result};
use crate::plan::*;
use crate::provider;

/// Command-line overrides of manifest fields.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub label: Option<String>,
    pub color: Option<String>,
    pub backend: Option<BackendKind>,
    /// `--dockerfile`: top of the Dockerfile cascade.
    pub dockerfile: Option<PathBuf>,
}

/// Everything [`build`] reads.
pub struct Input<'a> {
    pub manifest: &'a Manifest,
    /// Absolute path of the manifest file; relative paths resolve against its folder.
    pub manifest_path: &'a Path,
    /// `$BOT_BOTTLE_HOME`, for user providers.
    pub bot_home: &'a Path,
    /// The slug (minted by the state store; fixed in tests).
    pub slug: &'a str,
    pub overrides: Overrides,
    /// Host environment lookup.
    pub host_env: &'a dyn Fn(&str) -> Option<String>,
}

/// How the claude provider authenticates, decided by the token's form (never kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaudeAuth {
    /// `sk-ant-oat…` (from `claude setup-token`): `CLAUDE_CODE_OAUTH_TOKEN`, bearer.
    OAuth,
    /// `sk-ant-api…` (a console API key): `ANTHROPIC_API_KEY`, `x-api-key` header.
    ApiKey,
}

/// Tells an API key from an OAuth token. API keys start with `sk-ant-api`; everything else
/// (including an unset variable at plan time) is treated as an OAuth token.
pub fn classify_claude_token(token: Option<&str>) -> ClaudeAuth {
    match token {
        Some(t) if t.trim().starts_with("sk-ant-api") => ClaudeAuth::ApiKey,
        _ => ClaudeAuth::OAuth,
    }
}

/// Resolves a manifest-relative path (`~/` expands with `$HOME`).
pub fn resolve_path(base: &Path, p: &Path, host_env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~") {
        if let Some(home) = host_env("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    // `components()` drops interior `.` segments, so `dir/./x` prints as `dir/x`.
    joined.components().collect()
}

/// Supervise timeout in seconds (the manifest validator has already checked the syntax).
fn timeout_secs(s: Option<&str>) -> u64 {
    s.and_then(bottle_manifest::parse_timeout)
        .unwrap_or(bottle_manifest::DEFAULT_SUPERVISE_TIMEOUT)
        .as_secs()
}

/// How a manifest env value is sourced (the validator has already rejected malformed values;
/// one that slips through is treated as a literal).
fn env_source(raw: &str) -> EnvSource {
    match EnvValue::parse(raw) {
        Ok(EnvValue::Prompt) => EnvSource::Prompt,
        Ok(EnvValue::HostVar { name, default }) => EnvSource::HostVar { var: name, default },
        _ => EnvSource::Literal {
            value: raw.to_string(),
        },
    }
}

/// Facts read from the host's codex `auth.json` (never its tokens).
struct CodexAuthFacts {
    path: PathBuf,
    account_id: Option<String>,
    last_refresh: Option<String>,
}

fn codex_auth_path(host_env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(h) = host_env("CODEX_HOME") {
        return Some(PathBuf::from(h).join("auth.json"));
    }
    host_env("HOME").map(|h| PathBuf::from(h).join(".codex").join("auth.json"))
}

fn read_codex_facts(host_env: &dyn Fn(&str) -> Option<String>) -> Result<CodexAuthFacts> {
    let path = codex_auth_path(host_env).ok_or_else(|| Error::CodexAuth {
        path: PathBuf::from("~/.codex/auth.json"),
        message: "neither CODEX_HOME nor HOME is set".into(),
    })?;
    let text = std::fs::read_to_string(&path).map_err(|e| Error::CodexAuth {
        path: path.clone(),
        message: format!("cannot read it ({e}); run `codex login` on the host first"),
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::CodexAuth {
        path: path.clone(),
        message: format!("not valid JSON at line {} column {}", e.line(), e.column()),
    })?;
    if v.pointer("/tokens/access_token")
        .and_then(|t| t.as_str())
        .is_none()
    {
        return Err(Error::CodexAuth {
            path,
            message: "has no tokens.access_token; log in with ChatGPT (`codex login`) on the host"
                .into(),
        });
    }
    Ok(CodexAuthFacts {
        account_id: v
            .pointer("/tokens/account_id")
            .and_then(|t| t.as_str())
            .map(String::from),
        last_refresh: v
            .get("last_refresh")
            .and_then(|t| t.as_str())
            .map(String::from),
        path,
    })
}

/// A JWT-shaped placeholder id token (unsigned) carrying only the account id, so codex can read
/// its claims; it authenticates nothing.
fn placeholder_id_token(account_id: Option<&str>) -> String {
    let payload = serde_json::json!({
        "email": "agent@bot-bottle.invalid",
        "https://api.openai.com/auth": {
            "chatgpt_account_id": account_id.unwrap_or(""),
            "chatgpt_plan_type": "unknown"
        }
    });
    format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(payload.to_string().as_bytes()),
        PLACEHOLDER
    )
}

fn b64url(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// ANSI SGR foreground code for a colour name (`magenta` → `35`, `bright-red` → `91`).
pub fn color_sgr(name: &str) -> Option<u8> {
    const BASE: [&str; 8] = [
        "black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
    ];
    if let Some(rest) = name.strip_prefix("bright-") {
        return BASE.iter().position(|c| *c == rest).map(|i| 90 + i as u8);
    }
    BASE.iter().position(|c| *c == name).map(|i| 30 + i as u8)
}

/// The last `n` characters of `s` (all of it when shorter).
fn last_chars(s: &str, n: usize) -> &str {
    let skip = s.chars().count().saturating_sub(n);
    s.char_indices().nth(skip).map_or("", |(i, _)| &s[i..])
}

/// Builds the plan.
pub fn build(input: Input<'_>) -> Result<Plan> {
    let m = input.manifest;
    let env = input.host_env;
    let base = input
        .manifest_path
        .parent()
        .unwrap_or_else(|| Path::new("."));
    let provider = if bottle_manifest::is_provider_path(&m.agent.provider) {
        provider::load_user(&resolve_path(base, Path::new(&m.agent.provider), env))?
    } else {
        provider::find(&m.agent.provider, input.bot_home)?
    };
    let pdef = &provider.def;
    let label = input.overrides.label.clone().or_else(|| m.label.clone());
    let color = input.overrides.color.clone().or_else(|| m.color.clone());
    let backend = input.overrides.backend.unwrap_or(m.backend);
    let home = pdef.home.clone();
    let workdir = pdef.workdir.clone().unwrap_or_else(|| home.join("work"));
    let display = match &label {
        Some(l) => format!("{l} ({})", m.name),
        None => m.name.clone(),
    };
    let mcp_url = format!("http://{SIDECAR_HOST}:{MCP_PORT}/mcp");
    let proxy_url = format!("http://{SIDECAR_HOST}:{PROXY_PORT}");

    // Dockerfile cascade: CLI → manifest → user provider → built-in.
    let (dockerfile, source, context_dir) = if let Some(p) = &input.overrides.dockerfile {
        let p = resolve_path(Path::new("."), p, env);
        (
            read(&p)?,
            DockerfileSource::Cli { path: p.clone() },
            p.parent().map(Path::to_path_buf),
        )
    } else if let Some(p) = &m.agent.dockerfile {
        let p = resolve_path(base, p, env);
        (
            read(&p)?,
            DockerfileSource::Manifest { path: p.clone() },
            p.parent().map(Path::to_path_buf),
        )
    } else if let Some(p) = &provider.dockerfile_path {
        (
            provider.dockerfile.clone(),
            DockerfileSource::UserProvider { path: p.clone() },
            p.parent().map(Path::to_path_buf),
        )
    } else {
        (
            provider.dockerfile.clone(),
            DockerfileSource::Builtin {
                provider: pdef.name.clone(),
            },
            None,
        )
    };
    let tag = format!("bot-bottle/agent-{}:{}", pdef.name, short_hash(&dockerfile));

    // Provider-owned credentials (built-ins only; the manifest validator enforces that too).
    // The two credential keys belong to the built-in providers; a user provider that shadows a
    // built-in's name must not silently drop the credential (the agent would run without it).
    if m.agent.auth_token.is_some() && !(provider.builtin && pdef.name == "claude") {
        return Err(Error::ProviderInvalid {
            path: provider.origin.clone(),
            message:
                "`agent.auth_token` is only honoured by the built-in claude provider, and this \
                      provider is a user provider; remove the key or the user provider of that name"
                    .into(),
        });
    }
    if m.agent.forward_host_credentials && !(provider.builtin && pdef.name == "codex") {
        return Err(Error::ProviderInvalid {
            path: provider.origin.clone(),
            message: "`agent.forward_host_credentials` is only honoured by the built-in codex \
                      provider, and this provider is a user provider; remove the key or the user \
                      provider of that name"
                .into(),
        });
    }
    let claude_auth = if provider.builtin && pdef.name == "claude" {
        m.agent
            .auth_token
            .as_ref()
            .map(|var| (var.clone(), classify_claude_token(env(var).as_deref())))
    } else {
        None
    };
    let codex = if provider.builtin && pdef.name == "codex" && m.agent.forward_host_credentials {
        Some(read_codex_facts(env)?)
    } else {
        None
    };

    let mut vars: BTreeMap<&str, String> = BTreeMap::new();
    vars.insert("name", m.name.clone());
    vars.insert("slug", input.slug.to_string());
    vars.insert("label", label.clone().unwrap_or_else(|| m.name.clone()));
    vars.insert("display", display.clone());
    vars.insert("color", color.clone().unwrap_or_default());
    vars.insert(
        "color_sgr",
        color
            .as_deref()
            .and_then(color_sgr)
            .map(|c| c.to_string())
            .unwrap_or_default(),
    );
    vars.insert("home", home.display().to_string());
    vars.insert("workdir", workdir.display().to_string());
    vars.insert("user", pdef.user.clone());
    vars.insert("ca_cert", GUEST_CA_PATH.to_string());
    vars.insert("mcp_url", mcp_url.clone());
    vars.insert("proxy_url", proxy_url.clone());
    vars.insert("placeholder", PLACEHOLDER.to_string());
    vars.insert(
        "approved_api_keys_json",
        match claude_auth {
            // Claude records approved API keys by their last 20 characters.
            Some((_, ClaudeAuth::ApiKey)) => provider::json_string(last_chars(PLACEHOLDER, 20)),
            _ => String::new(),
        },
    );

    let mut agent_env: Vec<EnvVar> = Vec::new();
    let mut push_env = |name: &str, value: EnvSource, hidden: bool| {
        agent_env.retain(|e| e.name != name);
        agent_env.push(EnvVar {
            name: name.to_string(),
            value,
            hidden,
        });
    };
    let lit = |v: String| EnvSource::Literal { value: v };
    // Proxy and CA variables: backends add nothing of their own.
    let no_proxy = format!("localhost,127.0.0.1,{SIDECAR_HOST}");
    for (k, v) in [
        ("HTTPS_PROXY", proxy_url.clone()),
        ("HTTP_PROXY", proxy_url.clone()),
        ("https_proxy", proxy_url.clone()),
        ("http_proxy", proxy_url.clone()),
        ("NO_PROXY", no_proxy.clone()),
        ("no_proxy", no_proxy.clone()),
        // Node adds these to its roots; the others replace a tool's roots, so they get the
        // bundle (system roots + bottle CA) and passthrough routes keep working.
        ("NODE_EXTRA_CA_CERTS", GUEST_CA_PATH.to_string()),
        ("SSL_CERT_FILE", GUEST_CA_BUNDLE_PATH.to_string()),
        ("CODEX_CA_CERTIFICATE", GUEST_CA_BUNDLE_PATH.to_string()),
        ("GIT_SSL_CAINFO", GUEST_CA_BUNDLE_PATH.to_string()),
        ("REQUESTS_CA_BUNDLE", GUEST_CA_BUNDLE_PATH.to_string()),
        ("CURL_CA_BUNDLE", GUEST_CA_BUNDLE_PATH.to_string()),
        ("BOT_BOTTLE", display.clone()),
        ("BOT_BOTTLE_MCP_URL", mcp_url.clone()),
    ] {
        push_env(k, lit(v), false);
    }
    for (k, v) in &pdef.env {
        let v = provider::render(v, &vars, &pdef.name, "provider.yaml env")?;
        push_env(k, lit(v), false);
    }
    for (k, v) in &m.env {
        let src = env_source(v);
        let hidden = !matches!(src, EnvSource::Literal { .. });
        push_env(k, src, hidden);
    }
    match claude_auth {
        Some((_, ClaudeAuth::OAuth)) => {
            push_env("CLAUDE_CODE_OAUTH_TOKEN", EnvSource::Placeholder, true)
        }
        Some((_, ClaudeAuth::ApiKey)) => {
            push_env("ANTHROPIC_API_KEY", EnvSource::Placeholder, true)
        }
        None => {}
    }

    // Files.
    let abs = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            home.join(p)
        }
    };
    let mut files = Vec::new();
    for f in &pdef.files {
        let (text, fname) = match (&f.template, &f.content) {
            (Some(t), _) => (
                provider
                    .templates
                    .get(t)
                    .cloned()
                    .ok_or_else(|| Error::ProviderInvalid {
                        path: provider.origin.clone(),
                        message: format!("template `{t}` not found"),
                    })?,
                t.clone(),
            ),
            (None, Some(c)) => (c.clone(), f.path.display().to_string()),
            (None, None) => continue,
        };
        let content = provider::render(&text, &vars, &pdef.name, &fname)?;
        let mode = f
            .mode
            .as_deref()
            .and_then(provider::parse_mode)
            .unwrap_or(0o644);
        files.push(GuestFile {
            path: abs(&f.path),
            mode,
            content,
            agent_owned: true,
        });
    }
    if let Some(prompt) = &m.prompt {
        let text = read(&resolve_path(base, prompt, env))?;
        let dest = pdef
            .prompt_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("AGENTS.md"));
        files.push(GuestFile {
            path: abs(&dest),
            mode: 0o644,
            content: text,
            agent_owned: true,
        });
    }
    if let Some(c) = &codex {
        let auth = serde_json::json!({
            "OPENAI_API_KEY": null,
            "tokens": {
                "id_token": placeholder_id_token(c.account_id.as_deref()),
                "access_token": PLACEHOLDER,
                "refresh_token": PLACEHOLDER,
                "account_id": c.account_id,
            },
            "last_refresh": c.last_refresh,
            "auth_mode": "chatgpt",
        });
        files.push(GuestFile {
            path: home.join(".codex/auth.json"),
            mode: 0o600,
            content: serde_json::to_string_pretty(&auth)? + "\n",
            agent_owned: true,
        });
    }
    let skills_root = abs(&pdef
        .skills_path
        .clone()
        .unwrap_or_else(|| PathBuf::from("skills")));
    let dirs = m
        .skills
        .iter()
        .map(|s| {
            let host = resolve_path(base, s, env);
            let name = host
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            GuestDir {
                guest: skills_root.join(name),
                host,
            }
        })
        .collect();

    let mut setup = Vec::new();
    for s in &pdef.setup {
        let argv = s
            .argv
            .iter()
            .map(|w| provider::render(w, &vars, &pdef.name, "provider.yaml setup"))
            .collect::<Result<Vec<_>>>()?;
        setup.push(SetupCommand {
            argv,
            as_root: s.as_root,
        });
    }

    // Routes: manifest first, then the provider's own (a manifest route for the same host wins).
    let mut routes: Vec<RoutePlan> = m
        .egress
        .iter()
        .map(|r| RoutePlan {
            host: r.host.to_ascii_lowercase(),
            ports: r.ports.clone(),
            methods: r.methods.iter().map(|x| x.to_ascii_uppercase()).collect(),
            paths: r.paths.clone(),
            tls: match r.tls {
                Some(RouteTls::Passthrough) => TlsMode::Passthrough,
                _ => TlsMode::Intercept,
            },
            auth: r.auth.as_ref().map(|a| AuthPlan {
                scheme: match a.scheme {
                    AuthSchemeName::Bearer => AuthScheme::Bearer,
                    AuthSchemeName::Basic => AuthScheme::Basic,
                    AuthSchemeName::Header => AuthScheme::Header {
                        name: a.name.clone().unwrap_or_default(),
                    },
                },
                secret: SecretRef::HostVar {
                    var: a.token.clone(),
                },
            }),
            allow_private: r.allow_private,
            origin: "manifest".to_string(),
        })
        .collect();
    for pr in &pdef.egress {
        let auth = match (&claude_auth, &codex, pr.host.as_str()) {
            (Some((var, ClaudeAuth::OAuth)), _, "api.anthropic.com") => Some(AuthPlan {
                scheme: AuthScheme::Bearer,
                secret: SecretRef::HostVar { var: var.clone() },
            }),
            (Some((var, ClaudeAuth::ApiKey)), _, "api.anthropic.com") => Some(AuthPlan {
                scheme: AuthScheme::Header {
                    name: "x-api-key".into(),
                },
                secret: SecretRef::HostVar { var: var.clone() },
            }),
            (_, Some(c), "api.openai.com" | "chatgpt.com") => Some(AuthPlan {
                scheme: AuthScheme::Bearer,
                secret: SecretRef::CodexAuth {
                    path: c.path.clone(),
                },
            }),
            _ => None,
        };
        // A manifest route for a provider-owned host refines it (ports, paths, allow_private)
        // and keeps the provider's credential unless it names its own.
        if let Some(r) = routes.iter_mut().find(|r| r.host == pr.host) {
            if r.auth.is_none() && auth.is_some() {
                r.auth = auth;
                r.tls = TlsMode::Intercept;
                r.origin = format!("manifest+provider:{}", pdef.name);
            }
            continue;
        }
        routes.push(RoutePlan {
            host: pr.host.clone(),
            ports: pr.ports.clone(),
            methods: vec![],
            paths: vec![],
            tls: if pr.passthrough && auth.is_none() {
                TlsMode::Passthrough
            } else {
                TlsMode::Intercept
            },
            auth,
            allow_private: false,
            origin: format!("provider:{}", pdef.name),
        });
    }

    // Git gate.
    let mut git = Vec::new();
    let mut insteadof = Vec::new();
    for g in &m.git {
        let gp = git_plan(g, base, env)?;
        // The gate crate owns the spellings (its pure, server-free part) so the gate and the
        // planner cannot disagree on them.
        if let Ok(forms) = bottle_gitgate::insteadof::upstream_forms(&g.upstream) {
            insteadof.push(InsteadOf {
                gate_url: gp.gate_url.clone(),
                upstream_forms: forms,
            });
        }
        git.push(gp);
    }

    Ok(Plan {
        slug: input.slug.to_string(),
        name: m.name.clone(),
        label,
        color,
        backend,
        manifest_path: input.manifest_path.to_path_buf(),
        provider: ProviderRef {
            name: pdef.name.clone(),
            kind: if provider.builtin {
                ProviderKind::Builtin
            } else {
                ProviderKind::User
            },
        },
        image: ImagePlan {
            tag,
            dockerfile,
            source,
            context_dir,
        },
        agent: AgentPlan {
            user: pdef.user.clone(),
            home,
            workdir,
            command: m
                .agent
                .command
                .clone()
                .unwrap_or_else(|| pdef.command.clone()),
            env: agent_env,
            files,
            dirs,
            setup,
            mcp_url,
            proxy_url,
            no_proxy,
            ca_cert_path: PathBuf::from(GUEST_CA_PATH),
            ca_bundle_path: PathBuf::from(GUEST_CA_BUNDLE_PATH),
            git_insteadof: insteadof,
        },
        sidecar: SidecarPlan {
            routes,
            git,
            supervise_timeout_secs: timeout_secs(m.supervise.timeout.as_deref()),
        },
        resources: ResourceNames::for_slug(input.slug),
    })
}

fn git_plan(g: &GitEntry, base: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<GitPlan> {
    let u = GitUpstream::parse(&g.upstream);
    let (host, port) = u
        .as_ref()
        .map(|u| (u.host.clone(), u.port))
        .unwrap_or_default();
    let known = g
        .known_hosts
        .as_ref()
        .map(|k| resolve_path(base, k, env))
        .unwrap_or_default();
    let credential = if let Some(id) = &g.identity {
        GitCredentialPlan::Identity {
            key_file: resolve_path(base, id, env),
            known_hosts: known,
        }
    } else if let Some(pk) = &g.provisioned_key {
        let repo = u
            .as_ref()
            .map(|u| u.path.trim_end_matches(".git").to_string())
            .unwrap_or_default();
        GitCredentialPlan::Provisioned {
            forge: pk.forge,
            api: pk.api.clone(),
            repo,
            token: SecretRef::HostVar {
                var: pk.token.clone(),
            },
            read_only: pk.read_only,
            known_hosts: known,
        }
    } else {
        GitCredentialPlan::HttpsToken {
            token: SecretRef::HostVar {
                var: g.token.clone().unwrap_or_default(),
            },
        }
    };
    Ok(GitPlan {
        name: g.name.clone(),
        upstream: g.upstream.clone(),
        upstream_host: host,
        upstream_port: port,
        credential,
        push: PushRules {
            allow: g.push.clone(),
            allow_force: g.allow_force,
            allow_delete: g.allow_delete,
        },
        gate_url: format!("http://{SIDECAR_HOST}:{GATE_PORT}/{}.git", g.name),
    })
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A short, stable content hash (FNV-1a 64) for image tags. Not a security property: it only
/// keeps tags distinct per Dockerfile text.
pub fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_classes() {
        assert_eq!(
            classify_claude_token(Some("sk-ant-api03-x")),
            ClaudeAuth::ApiKey
        );
        assert_eq!(
            classify_claude_token(Some("sk-ant-oat01-x")),
            ClaudeAuth::OAuth
        );
        assert_eq!(classify_claude_token(None), ClaudeAuth::OAuth);
    }

    #[test]
    fn timeouts_and_colours() {
        assert_eq!(timeout_secs(Some("10m")), 600);
        assert_eq!(timeout_secs(Some("90s")), 90);
        assert_eq!(timeout_secs(None), 600);
        assert_eq!(color_sgr("magenta"), Some(35));
        assert_eq!(color_sgr("bright-red"), Some(91));
        assert_eq!(color_sgr("pink"), None);
    }

    #[test]
    fn b64() {
        assert_eq!(b64url(b"hello"), "aGVsbG8");
        assert_eq!(b64url(b"ab"), "YWI");
    }
}
