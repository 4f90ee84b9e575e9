//! Every file the built-in providers write into the guest, snapshot-tested per variant (with and
//! without label, colour and credentials), plus structural checks: the JSON and TOML parse, the
//! status line points at the script, onboarding and workdir trust are seeded, supervise is
//! registered, and no secret value reaches any file, env literal, setup word or plan output.
//! Also loads the example user provider in `examples/providers/python` and plans with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bottle_config::PLACEHOLDER;
use bottle_plan::{build, render, EnvSource, GuestFile, Input, Overrides, Plan};

/// Secret values the host holds in these tests; none may appear in any output.
pub const OAUTH_TOKEN: &str = "sk-ant-oat01-SECRET-OAUTH-TOKEN-VALUE-1111";
pub const API_KEY: &str = "sk-ant-api03-SECRET-API-KEY-VALUE-2222";
const CODEX_SECRETS: &[&str] = &["SECRET-CODEX", "SECRET-ID-TOKEN"];

/// A manifest plus its prompt and skill, written into a temp dir; planned with a fixed slug.
pub struct Case {
    pub dir: tempfile::TempDir,
    pub host_env: BTreeMap<String, String>,
}

impl Case {
    /// `agent_extra` is YAML lines appended under `agent:` (indented by the caller).
    pub fn new(name: &str, top_extra: &str, agent: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("PROMPT.md"),
            "# Standing instructions\n\nWork on branch bot/*. Ask through supervise.\n",
        )
        .unwrap();
        let skill = dir.path().join("skills/review");
        std::fs::create_dir_all(&skill).unwrap();
        std::fs::write(
            skill.join("SKILL.md"),
            "---\nname: review\ndescription: Reviews a diff\n---\nReview it.\n",
        )
        .unwrap();
        let yaml = format!(
            "version: 1\nname: {name}\n{top_extra}agent:\n{agent}prompt: ./PROMPT.md\nskills: [./skills/review]\n"
        );
        std::fs::write(dir.path().join("bottle.yaml"), yaml).unwrap();
        let mut host_env = BTreeMap::new();
        host_env.insert("HOME".to_string(), "/home/operator".to_string());
        host_env.insert("CLAUDE_OAUTH".to_string(), OAUTH_TOKEN.to_string());
        host_env.insert("CLAUDE_API_KEY".to_string(), API_KEY.to_string());
        host_env.insert(
            "CODEX_HOME".to_string(),
            super::plans::fixtures()
                .join("codex-home")
                .display()
                .to_string(),
        );
        Case { dir, host_env }
    }

    pub fn plan_with(&self, bot_home: &Path, overrides: Overrides) -> Plan {
        let path = self.dir.path().join("bottle.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let manifest = bottle_manifest::parse_str(&text, &path).unwrap();
        let lookup = |k: &str| self.host_env.get(k).cloned();
        build(Input {
            manifest: &manifest,
            manifest_path: &path,
            bot_home,
            slug: &format!("{}-a1b2c3", manifest.name),
            overrides,
            host_env: &lookup,
        })
        .unwrap()
    }

    pub fn plan(&self, overrides: Overrides) -> Plan {
        // An empty home: only built-in providers are found.
        let home = self.dir.path().join("bot-home");
        self.plan_with(&home, overrides)
    }
}

/// The guest files by absolute path.
pub fn files(plan: &Plan) -> BTreeMap<String, GuestFile> {
    plan.agent
        .files
        .iter()
        .map(|f| (f.path.display().to_string(), f.clone()))
        .collect()
}

fn file<'a>(files: &'a BTreeMap<String, GuestFile>, path: &str) -> &'a GuestFile {
    files
        .get(path)
        .unwrap_or_else(|| panic!("no guest file {path}; have {:?}", files.keys()))
}

/// `/home/node/.claude/settings.json` → `claude_settings_json`.
fn snap_name(path: &str) -> String {
    let rel = path.strip_prefix("/home/node/").unwrap_or(path);
    rel.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .trim_matches('_')
        .to_string()
}

/// The env, setup and file list in one stable text (values of hidden vars never shown: they
/// are placeholders or references anyway, and the test proves no secret is in them).
fn summary(plan: &Plan) -> String {
    let mut s = String::new();
    for e in &plan.agent.env {
        let v = match &e.value {
            EnvSource::Literal { value } => format!("={value}"),
            EnvSource::HostVar { var, .. } => format!(" <- host ${var}"),
            EnvSource::Prompt => " <- prompt".into(),
            EnvSource::Placeholder => " = <placeholder>".into(),
        };
        s.push_str(&format!(
            "env {}{v}{}\n",
            e.name,
            if e.hidden { " [hidden]" } else { "" }
        ));
    }
    for c in &plan.agent.setup {
        s.push_str(&format!(
            "setup{} {}\n",
            if c.as_root { " (root)" } else { "" },
            c.argv.join(" ")
        ));
    }
    for f in &plan.agent.files {
        s.push_str(&format!("file {} {:04o}\n", f.path.display(), f.mode));
    }
    for d in &plan.agent.dirs {
        s.push_str(&format!("dir {}\n", d.guest.display()));
    }
    for r in &plan.sidecar.routes {
        s.push_str(&format!(
            "route {} {:?} auth={}\n",
            r.host,
            r.tls,
            r.auth
                .as_ref()
                .map(|a| a.scheme.label().to_string())
                .unwrap_or_else(|| "-".into())
        ));
    }
    s.push_str(&format!("command {}\n", plan.agent.command.join(" ")));
    s
}

/// Snapshots every guest file and the summary; asserts no secret anywhere.
fn snapshot_all(plan: &Plan, variant: &str) {
    assert_no_secret(plan);
    for f in &plan.agent.files {
        let name = format!("{variant}__{}", snap_name(&f.path.display().to_string()));
        insta::assert_snapshot!(name, f.content);
    }
    insta::assert_snapshot!(format!("{variant}__summary"), summary(plan));
}

pub fn assert_no_secret(plan: &Plan) {
    let mut haystacks: Vec<(String, String)> = plan
        .agent
        .files
        .iter()
        .map(|f| (f.path.display().to_string(), f.content.clone()))
        .collect();
    haystacks.push(("plan --json".into(), render::json(plan).unwrap()));
    haystacks.push(("plan".into(), render::human(plan)));
    haystacks.push(("setup".into(), format!("{:?}", plan.agent.setup)));
    haystacks.push(("env".into(), format!("{:?}", plan.agent.env)));
    for (what, text) in &haystacks {
        for secret in [OAUTH_TOKEN, API_KEY].iter().chain(CODEX_SECRETS) {
            assert!(!text.contains(secret), "{what} holds a secret value");
        }
    }
}

fn json(f: &GuestFile) -> serde_json::Value {
    serde_json::from_str(&f.content)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", f.path.display()))
}

/// The checks every claude variant must pass.
fn check_claude(plan: &Plan) {
    let files = files(plan);
    let settings = json(file(&files, "/home/node/.claude/settings.json"));
    assert_eq!(
        settings["statusLine"]["type"], "command",
        "statusLine must be a command"
    );
    let script = settings["statusLine"]["command"].as_str().unwrap();
    assert_eq!(script, "/home/node/.claude/statusline.sh");
    let sh = file(&files, script);
    assert_eq!(sh.mode, 0o755, "the status line script must be executable");
    assert!(sh.content.starts_with("#!/bin/sh\n"));
    assert_eq!(settings["permissions"]["defaultMode"], "bypassPermissions");

    let global = json(file(&files, "/home/node/.claude.json"));
    assert_eq!(global["hasCompletedOnboarding"], true);
    assert!(global["theme"].is_string());
    let workdir = plan.agent.workdir.display().to_string();
    assert_eq!(workdir, "/home/node/work");
    assert_eq!(
        global["projects"][&workdir]["hasTrustDialogAccepted"], true,
        "the workdir must be trusted (the status line is gated by trust)"
    );

    let prompt = file(&files, "/home/node/.claude/CLAUDE.md");
    assert!(prompt.content.starts_with("# Standing instructions"));
    assert_eq!(
        plan.agent.dirs[0].guest,
        PathBuf::from("/home/node/.claude/skills/review")
    );
    assert!(plan.agent.setup.iter().any(|c| !c.as_root
        && c.argv
            == [
                "claude",
                "mcp",
                "add",
                "--transport",
                "http",
                "--scope",
                "user",
                "supervise",
                plan.agent.mcp_url.as_str()
            ]));
    assert_eq!(
        plan.agent.command,
        ["claude", "--dangerously-skip-permissions"]
    );
    let env: BTreeMap<&str, &EnvSource> = plan
        .agent
        .env
        .iter()
        .map(|e| (e.name.as_str(), &e.value))
        .collect();
    assert!(env.contains_key("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"));
    assert!(matches!(
        env.get("NODE_EXTRA_CA_CERTS"),
        Some(EnvSource::Literal { value }) if value == "/etc/bot-bottle/ca.crt"
    ));
}

fn check_codex(plan: &Plan) -> toml::Table {
    let files = files(plan);
    let cfg = file(&files, "/home/node/.codex/config.toml");
    let t: toml::Table = cfg
        .content
        .parse()
        .unwrap_or_else(|e| panic!("config.toml is not valid TOML: {e}"));
    let tui = t["tui"].as_table().expect("[tui] table");
    // Item ids Codex 0.169 knows (it ignores unknown ones with a warning).
    const KNOWN: &[&str] = &[
        "model-name",
        "model-with-reasoning",
        "current-dir",
        "project-name",
        "git-branch",
        "context-remaining",
        "context-used",
        "run-state",
    ];
    let items = tui["status_line"].as_array().expect("status_line list");
    assert!(!items.is_empty());
    for i in items {
        assert!(KNOWN.contains(&i.as_str().unwrap()), "unknown item {i}");
    }
    // No title items: the title is the host's `label (name)` and Codex must not overwrite it.
    assert_eq!(
        tui["terminal_title"].as_array().map(Vec::len),
        Some(0),
        "terminal_title"
    );
    assert_eq!(tui["theme"].as_str(), Some("ansi"));
    assert_eq!(
        t["mcp_servers"]["supervise"]["url"].as_str(),
        Some(plan.agent.mcp_url.as_str())
    );
    assert_eq!(
        t["projects"]["/home/node/work"]["trust_level"].as_str(),
        Some("trusted")
    );
    let prompt = file(&files, "/home/node/.codex/AGENTS.md");
    assert!(prompt.content.starts_with("# Standing instructions"));
    assert!(plan
        .agent
        .env
        .iter()
        .any(|e| e.name == "CODEX_CA_CERTIFICATE"
            && e.value
                == EnvSource::Literal {
                    value: "/etc/bot-bottle/ca-bundle.crt".into()
                }));
    t
}

fn env_of<'a>(plan: &'a Plan, name: &str) -> Option<&'a bottle_plan::EnvVar> {
    plan.agent.env.iter().find(|e| e.name == name)
}

#[test]
fn claude_plain() {
    let case = Case::new("claude-plain", "", "  provider: claude\n");
    let plan = case.plan(Overrides::default());
    check_claude(&plan);
    assert!(env_of(&plan, "CLAUDE_CODE_OAUTH_TOKEN").is_none());
    assert!(env_of(&plan, "ANTHROPIC_API_KEY").is_none());
    let global = json(file(&files(&plan), "/home/node/.claude.json"));
    assert_eq!(
        global["customApiKeyResponses"]["approved"],
        serde_json::json!([])
    );
    snapshot_all(&plan, "claude_plain");
}

#[test]
fn claude_label_color_oauth() {
    let case = Case::new(
        "claude-implementer",
        "label: bob\ncolor: magenta\n",
        "  provider: claude\n  auth_token: CLAUDE_OAUTH\n",
    );
    let plan = case.plan(Overrides::default());
    check_claude(&plan);
    let v = env_of(&plan, "CLAUDE_CODE_OAUTH_TOKEN").expect("oauth placeholder");
    assert_eq!(v.value, EnvSource::Placeholder);
    assert!(v.hidden);
    assert!(env_of(&plan, "ANTHROPIC_API_KEY").is_none());
    let route = plan
        .sidecar
        .routes
        .iter()
        .find(|r| r.host == "api.anthropic.com")
        .unwrap();
    assert_eq!(route.auth.as_ref().unwrap().scheme.label(), "bearer");
    snapshot_all(&plan, "claude_label_color_oauth");
}

#[test]
fn claude_label_color_api_key() {
    let case = Case::new(
        "claude-implementer",
        "label: bob\ncolor: bright-green\n",
        "  provider: claude\n  auth_token: CLAUDE_API_KEY\n",
    );
    let plan = case.plan(Overrides::default());
    check_claude(&plan);
    let v = env_of(&plan, "ANTHROPIC_API_KEY").expect("api key placeholder");
    assert_eq!(v.value, EnvSource::Placeholder);
    assert!(v.hidden);
    assert!(env_of(&plan, "CLAUDE_CODE_OAUTH_TOKEN").is_none());
    // Claude asks once whether to use an API key from the environment unless the key's last 20
    // characters are pre-approved; the key it sees is the placeholder.
    let global = json(file(&files(&plan), "/home/node/.claude.json"));
    let tail: String = {
        let c: Vec<char> = PLACEHOLDER.chars().collect();
        c[c.len().saturating_sub(20)..].iter().collect()
    };
    assert_eq!(
        global["customApiKeyResponses"]["approved"],
        serde_json::json!([tail])
    );
    let route = plan
        .sidecar
        .routes
        .iter()
        .find(|r| r.host == "api.anthropic.com")
        .unwrap();
    assert_eq!(route.auth.as_ref().unwrap().scheme.label(), "header");
    snapshot_all(&plan, "claude_label_color_api_key");
}

#[test]
fn claude_label_without_color_from_overrides() {
    let case = Case::new("claude-implementer", "", "  provider: claude\n");
    let plan = case.plan(Overrides {
        label: Some("carol".into()),
        ..Overrides::default()
    });
    check_claude(&plan);
    let all = files(&plan);
    let sh = &file(&all, "/home/node/.claude/statusline.sh").content;
    assert!(sh.contains("LABEL='carol (claude-implementer)'"), "{sh}");
    assert!(sh.contains("SGR=''"), "{sh}");
    snapshot_all(&plan, "claude_label_no_color");
}

/// A hostile label (only possible through `--label`, which the manifest validator does not see)
/// keeps every generated file well-formed: JSON and TOML escape it, shell quotes it.
#[test]
fn hostile_label_keeps_files_well_formed() {
    let label = "x\"y' $(touch /tmp/pwn) `id` \\ ]]\n[evil]";
    let case = Case::new("claude-implementer", "", "  provider: claude\n");
    let plan = case.plan(Overrides {
        label: Some(label.into()),
        color: Some("red".into()),
        ..Overrides::default()
    });
    check_claude(&plan);
    let case = Case::new("codex-reviewer", "", "  provider: codex\n");
    let plan = case.plan(Overrides {
        label: Some(label.into()),
        ..Overrides::default()
    });
    let t = check_codex(&plan);
    assert!(t.get("evil").is_none(), "label injected a TOML table");
}

#[test]
fn codex_plain() {
    let case = Case::new("codex-reviewer", "", "  provider: codex\n");
    let plan = case.plan(Overrides::default());
    check_codex(&plan);
    assert!(
        !files(&plan).contains_key("/home/node/.codex/auth.json"),
        "no auth.json without forward_host_credentials"
    );
    assert!(plan
        .sidecar
        .routes
        .iter()
        .all(|r| r.auth.is_none() || r.origin == "manifest"));
    snapshot_all(&plan, "codex_plain");
}

#[test]
fn codex_label_color_forwarded_credentials() {
    let case = Case::new(
        "codex-reviewer",
        "label: rev\ncolor: bright-cyan\n",
        "  provider: codex\n  forward_host_credentials: true\n",
    );
    let plan = case.plan(Overrides::default());
    check_codex(&plan);
    let files = files(&plan);
    let auth = file(&files, "/home/node/.codex/auth.json");
    assert_eq!(auth.mode, 0o600);
    let a = json(auth);
    assert_eq!(a["tokens"]["access_token"], PLACEHOLDER);
    assert_eq!(
        a["tokens"]["refresh_token"], PLACEHOLDER,
        "the refresh token never enters the bottle"
    );
    assert_eq!(a["tokens"]["account_id"], "acct-1234");
    assert_eq!(a["auth_mode"], "chatgpt");
    for host in ["api.openai.com", "chatgpt.com"] {
        let r = plan.sidecar.routes.iter().find(|r| r.host == host).unwrap();
        assert_eq!(r.auth.as_ref().unwrap().scheme.label(), "bearer");
    }
    snapshot_all(&plan, "codex_label_color_forward");
}

/// The example user provider in the repository loads through the same loader as installed
/// ones and plans a manifest.
#[test]
fn example_user_provider_loads_and_plans() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/providers/python");
    let p = bottle_plan::provider::load_user(&example).unwrap();
    assert_eq!(p.def.name, "python");
    assert!(!p.builtin);
    assert!(p.dockerfile.contains("FROM debian:bookworm-slim"));

    // Installed into a temp BOT_BOTTLE_HOME, the way a user would.
    let case = Case::new(
        "py-worker",
        "label: pat\ncolor: yellow\n",
        "  provider: python\n",
    );
    let home = case.dir.path().join("bot-home");
    let dest = home.join("providers/python");
    std::fs::create_dir_all(&dest).unwrap();
    for entry in std::fs::read_dir(&example).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
    let plan = case.plan_with(&home, Overrides::default());
    assert_eq!(plan.provider.kind, bottle_plan::ProviderKind::User);
    assert_eq!(plan.agent.user, "agent");
    assert!(matches!(
        &plan.image.source,
        bottle_plan::DockerfileSource::UserProvider { path } if path == &dest.join("Dockerfile")
    ));
    assert_no_secret(&plan);
    let files = files(&plan);
    let startup = file(&files, "/home/agent/.config/bot-bottle/startup.py");
    assert!(startup.content.contains("BOTTLE = \"pat (py-worker)\"\n"));
    let pip = file(&files, "/home/agent/.config/pip/pip.conf");
    assert!(pip.content.contains("cert = /etc/bot-bottle/ca.crt"));
    assert!(files.contains_key("/home/agent/AGENTS.md"));
    assert_eq!(
        plan.agent.dirs[0].guest,
        PathBuf::from("/home/agent/.agents/skills/review")
    );
    for f in plan.agent.files.iter() {
        let name = format!(
            "example_python__{}",
            snap_name(&f.path.display().to_string().replace("/home/agent/", ""))
        );
        insta::assert_snapshot!(name, f.content);
    }
    insta::assert_snapshot!("example_python__summary", summary(&plan));
}
