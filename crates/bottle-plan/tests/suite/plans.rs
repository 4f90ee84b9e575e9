//! Plans of the fixture manifests, snapshot-tested for people and as JSON, and the proof that no
//! secret value reaches either form.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bottle_manifest::Manifest;
use bottle_plan::{build, render, Input, Overrides, Plan};

pub const SECRETS: &[(&str, &str)] = &[
    ("CLAUDE_TOKEN", "sk-ant-oat01-SECRET-OAUTH-VALUE-0001"),
    ("GITHUB_TOKEN", "ghp_SECRETGITHUBTOKEN0002"),
    ("AWS_REGION", "SECRET-REGION-VALUE-0003"),
    ("EXAMPLE_KEY", "SECRET-EXAMPLE-KEY-0004"),
    ("FILES_USERPASS", "user:SECRET-PASSWORD-0005"),
    ("GH_ADMIN_TOKEN", "SECRET-GH-ADMIN-0006"),
    ("GITLAB_TOKEN", "SECRET-GITLAB-0007"),
    ("GITEA_TOKEN", "SECRET-GITEA-0008"),
];

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn host_env() -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = SECRETS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert("HOME".into(), "/home/operator".into());
    env.insert(
        "CODEX_HOME".into(),
        fixtures().join("codex-home").display().to_string(),
    );
    env
}

pub fn plan_of(case: &str, overrides: Overrides) -> Plan {
    let path = fixtures().join(case).join("bottle.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let manifest: Manifest = bottle_manifest::parse_str(&text, &path).unwrap();
    let env = host_env();
    let lookup = |k: &str| env.get(k).cloned();
    build(Input {
        manifest: &manifest,
        manifest_path: &path,
        bot_home: &fixtures().join("home"),
        slug: &format!("{}-a1b2c3", manifest.name),
        overrides,
        host_env: &lookup,
    })
    .unwrap()
}

fn scrub(s: &str) -> String {
    s.replace(&fixtures().display().to_string(), "<fixtures>")
}

fn check(case: &str, overrides: Overrides, snap: &str) {
    let plan = plan_of(case, overrides);
    let human = render::human(&plan);
    let json = render::json(&plan).unwrap();
    for (var, secret) in SECRETS {
        assert!(!human.contains(secret), "{case}: plan output leaks {var}");
        assert!(!json.contains(secret), "{case}: plan --json leaks {var}");
    }
    for leaked in ["SECRET-CODEX", "SECRET-ID-TOKEN"] {
        assert!(
            !json.contains(leaked),
            "{case}: codex auth.json token leaks"
        );
    }
    insta::assert_snapshot!(format!("{snap}_human"), scrub(&human));
    insta::assert_snapshot!(format!("{snap}_json"), scrub(&json));
}

#[test]
fn claude_with_auth_token() {
    check("claude-auth", Overrides::default(), "claude_auth");
}

#[test]
fn codex_forwarding_host_credentials() {
    check("codex-forward", Overrides::default(), "codex_forward");
}

#[test]
fn user_provider() {
    check("user-provider", Overrides::default(), "user_provider");
}

#[test]
fn git_entries_of_every_kind() {
    check("git-entries", Overrides::default(), "git_entries");
}

#[test]
fn routes_with_filters_and_auth() {
    check("routes", Overrides::default(), "routes");
}

#[test]
fn minimal() {
    check("minimal", Overrides::default(), "minimal");
}

#[test]
fn dockerfile_from_manifest() {
    check(
        "dockerfile-cascade",
        Overrides::default(),
        "dockerfile_manifest",
    );
}

#[test]
fn dockerfile_from_cli_beats_manifest_and_cli_overrides_identity() {
    let o = Overrides {
        label: Some("carol".into()),
        color: Some("green".into()),
        backend: Some(bottle_manifest::BackendKind::Docker),
        dockerfile: Some(fixtures().join("shared/cli.Dockerfile")),
    };
    check("dockerfile-cascade", o, "dockerfile_cli");
}

#[test]
fn claude_api_key_uses_header_and_api_key_variable() {
    let path = fixtures().join("claude-auth/bottle.yaml");
    let manifest: Manifest =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut env = host_env();
    env.insert("CLAUDE_TOKEN".into(), "sk-ant-api03-SECRET-KEY".into());
    let lookup = |k: &str| env.get(k).cloned();
    let plan = build(Input {
        manifest: &manifest,
        manifest_path: &path,
        bot_home: &fixtures().join("home"),
        slug: "x-000000",
        overrides: Overrides::default(),
        host_env: &lookup,
    })
    .unwrap();
    let route = plan
        .sidecar
        .routes
        .iter()
        .find(|r| r.host == "api.anthropic.com")
        .unwrap();
    assert_eq!(route.auth.as_ref().unwrap().scheme.label(), "header");
    assert!(plan
        .agent
        .env
        .iter()
        .any(|e| e.name == "ANTHROPIC_API_KEY" && e.hidden));
    assert!(!plan
        .agent
        .env
        .iter()
        .any(|e| e.name == "CLAUDE_CODE_OAUTH_TOKEN"));
    let claude_json = plan
        .agent
        .files
        .iter()
        .find(|f| f.path.ends_with(".claude.json"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&claude_json.content).unwrap();
    assert_eq!(
        v["customApiKeyResponses"]["approved"][0],
        "egress-placeholder"
    );
    assert!(!render::json(&plan).unwrap().contains("SECRET-KEY"));
}

#[test]
fn generated_files_are_well_formed() {
    for case in ["claude-auth", "codex-forward", "routes"] {
        let plan = plan_of(case, Overrides::default());
        for f in &plan.agent.files {
            let name = f.path.display().to_string();
            if name.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(&f.content)
                    .unwrap_or_else(|e| panic!("{case}: {name} is not JSON: {e}"));
            }
        }
    }
}

#[test]
fn unknown_provider_is_a_clear_error() {
    let manifest: Manifest =
        serde_yaml_ng::from_str("version: 1\nname: x\nagent: {provider: nope}\n").unwrap();
    let lookup = |_: &str| None;
    let err = build(Input {
        manifest: &manifest,
        manifest_path: Path::new("/tmp/bottle.yaml"),
        bot_home: &fixtures().join("home"),
        slug: "x-1",
        overrides: Overrides::default(),
        host_env: &lookup,
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown provider `nope`"), "{err}");
}

fn plan_text(yaml: &str, home: &Path) -> Result<Plan, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bottle.yaml");
    std::fs::write(&path, yaml).unwrap();
    let manifest = bottle_manifest::parse_str(yaml, &path).unwrap();
    let env = host_env();
    let lookup = |k: &str| env.get(k).cloned();
    build(Input {
        manifest: &manifest,
        manifest_path: &path,
        bot_home: home,
        slug: "t-000000",
        overrides: Overrides::default(),
        host_env: &lookup,
    })
    .map_err(|e| e.to_string())
}

#[test]
fn a_manifest_route_for_a_provider_host_keeps_the_provider_credential() {
    let plan = plan_text(
        "version: 1\nname: t\nagent: {provider: claude, auth_token: CLAUDE_TOKEN}\n\
         egress:\n  - host: api.anthropic.com\n    allow_private: true\n",
        &fixtures().join("home"),
    )
    .unwrap();
    let routes: Vec<_> = plan
        .sidecar
        .routes
        .iter()
        .filter(|r| r.host == "api.anthropic.com")
        .collect();
    assert_eq!(routes.len(), 1, "one route, refined by the manifest");
    assert!(routes[0].allow_private);
    assert_eq!(routes[0].auth.as_ref().unwrap().scheme.label(), "bearer");
}

#[test]
fn a_user_provider_shadowing_a_builtin_refuses_builtin_credential_keys() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("providers/claude");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("provider.yaml"),
        "name: claude\nuser: me\nhome: /home/me\ncommand: [sh]\n",
    )
    .unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM debian:bookworm-slim\n").unwrap();
    let err = plan_text(
        "version: 1\nname: t\nagent: {provider: claude, auth_token: CLAUDE_TOKEN}\n",
        home.path(),
    )
    .unwrap_err();
    assert!(
        err.contains("only honoured by the built-in claude provider"),
        "{err}"
    );
}
