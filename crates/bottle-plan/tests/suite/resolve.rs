//! Start-time resolution: real values reach the sidecar config and the agent env, errors name
//! the variable and never a value.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bottle_config::{CaMaterial, Secret, UpstreamCredential};
use bottle_plan::resolve::{resolve, Prompter, ResolveInput, SidecarEndpoints};
use bottle_plan::Overrides;

use super::plans::{host_env, plan_of};

struct Answers(BTreeMap<String, String>);
impl Prompter for Answers {
    fn ask(&mut self, name: &str) -> Result<String, String> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| "no terminal is attached".to_string())
    }
}

fn endpoints() -> SidecarEndpoints {
    let a = |p: u16| -> SocketAddr { format!("10.0.0.2:{p}").parse().unwrap() };
    SidecarEndpoints {
        proxy: a(3128),
        gate: a(8080),
        mcp: a(8765),
        admin: a(9099),
        control: a(9100),
        health: a(9000),
    }
}

fn input<'a>(env: &'a dyn Fn(&str) -> Option<String>, p: &'a mut dyn Prompter) -> ResolveInput<'a> {
    ResolveInput {
        host_env: env,
        prompter: p,
        ca: CaMaterial {
            cert_pem: "CERT".into(),
            key_pem: Secret::new("KEY"),
        },
        endpoints: endpoints(),
        admin_token: Secret::new("admin-tok"),
        control_token: Secret::new("control-tok"),
        provisioned_keys: BTreeMap::new(),
        audit_dir: "/var/lib/bot-bottle/audit".into(),
        state_dir: "/var/lib/bot-bottle/state".into(),
        extra_roots_pem: None,
    }
}

#[test]
fn real_values_reach_the_sidecar_and_the_agent_gets_placeholders() {
    let plan = plan_of("routes", Overrides::default());
    let env = host_env();
    let lookup = |k: &str| env.get(k).cloned();
    let mut answers = Answers(BTreeMap::new());
    let r = resolve(&plan, input(&lookup, &mut answers)).unwrap();
    let api = r
        .sidecar
        .egress
        .routes
        .iter()
        .find(|r| r.host == "api.example.com")
        .unwrap();
    assert_eq!(
        api.auth.as_ref().unwrap().secret.expose(),
        "SECRET-EXAMPLE-KEY-0004"
    );
    // The JSON for the sidecar's stdin carries it; Debug never does.
    assert!(String::from_utf8(r.sidecar.to_json().unwrap())
        .unwrap()
        .contains("SECRET-EXAMPLE-KEY-0004"));
    assert!(!format!("{:?}", r.sidecar).contains("SECRET-EXAMPLE-KEY-0004"));
    assert!(r
        .agent_env
        .iter()
        .all(|(_, v)| !v.expose().contains("SECRET")));
}

#[test]
fn prompt_values_and_host_vars_reach_the_agent_env() {
    let plan = plan_of("user-provider", Overrides::default());
    let env = host_env();
    let lookup = |k: &str| env.get(k).cloned();
    let mut answers = Answers([("API_KEY".to_string(), "typed-value".to_string())].into());
    let r = resolve(&plan, input(&lookup, &mut answers)).unwrap();
    let v = r.agent_env.iter().find(|(k, _)| k == "API_KEY").unwrap();
    assert_eq!(v.1.expose(), "typed-value");
}

#[test]
fn prompt_without_terminal_is_a_clear_error() {
    let plan = plan_of("user-provider", Overrides::default());
    let env = host_env();
    let lookup = |k: &str| env.get(k).cloned();
    let mut answers = Answers(BTreeMap::new());
    let err = resolve(&plan, input(&lookup, &mut answers))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "env `API_KEY`: no terminal is attached");
}

#[test]
fn missing_host_var_names_the_var_and_no_value() {
    let plan = plan_of("claude-auth", Overrides::default());
    let mut env = host_env();
    env.remove("GITHUB_TOKEN");
    let lookup = |k: &str| env.get(k).cloned();
    let mut answers = Answers([("DB_PASSWORD".to_string(), "pw".to_string())].into());
    let err = resolve(&plan, input(&lookup, &mut answers))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`GITHUB_TOKEN`") && err.contains("api.github.com"),
        "{err}"
    );
    for (_, secret) in super::plans::SECRETS {
        assert!(!err.contains(secret));
    }
}

#[test]
fn codex_access_token_is_injected_and_the_guest_file_holds_placeholders() {
    let plan = plan_of("codex-forward", Overrides::default());
    let env = host_env();
    let lookup = |k: &str| env.get(k).cloned();
    let mut answers = Answers(BTreeMap::new());
    let r = resolve(&plan, input(&lookup, &mut answers)).unwrap();
    let route = r
        .sidecar
        .egress
        .routes
        .iter()
        .find(|r| r.host == "api.openai.com")
        .unwrap();
    assert_eq!(
        route.auth.as_ref().unwrap().secret.expose(),
        "SECRET-CODEX-ACCESS-TOKEN-abc123"
    );
    let auth = plan
        .agent
        .files
        .iter()
        .find(|f| f.path.ends_with(".codex/auth.json"))
        .unwrap();
    assert!(!auth.content.contains("SECRET"));
    assert!(auth.content.contains("egress-placeholder"));
    assert_eq!(auth.mode, 0o600);
}

#[test]
fn identity_files_are_read_into_the_gate_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("id"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n",
    )
    .unwrap();
    let mut plan = plan_of("claude-auth", Overrides::default());
    if let bottle_plan::GitCredentialPlan::Identity { key_file, .. } =
        &mut plan.sidecar.git[0].credential
    {
        *key_file = dir.path().join("id");
    }
    let env = host_env();
    let lookup = |k: &str| env.get(k).cloned();
    let mut answers = Answers([("DB_PASSWORD".to_string(), "pw".to_string())].into());
    let r = resolve(&plan, input(&lookup, &mut answers)).unwrap();
    match &r.sidecar.git.repos[0].credential {
        UpstreamCredential::Ssh {
            private_key,
            known_hosts,
        } => {
            assert!(private_key.expose().contains("OPENSSH"));
            assert!(known_hosts.starts_with("github.com ssh-ed25519"));
        }
        other => panic!("unexpected {other:?}"),
    }
}
