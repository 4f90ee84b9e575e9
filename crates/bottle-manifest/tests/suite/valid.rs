//! Valid manifests parse, with defaults applied and case-insensitive fields normalised.

use std::path::Path;
use std::time::Duration;

use bottle_manifest::env::EnvValue;
use bottle_manifest::*;

fn parse(name: &str) -> Manifest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/valid")
        .join(name);
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    parse_str(&source, &path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn spec_example_parses() {
    let m = parse("spec_example.yaml");
    assert_eq!(m.name, "claude-implementer");
    assert_eq!(m.label.as_deref(), Some("bob"));
    assert_eq!(m.backend, BackendKind::Docker);
    assert_eq!(m.agent.auth_token.as_deref(), Some("CLAUDE_TOKEN"));
    assert_eq!(
        m.agent.command.as_deref(),
        Some(&["claude".to_string()][..])
    );
    assert_eq!(m.env["DB_PASSWORD"], "?prompt");
    assert_eq!(
        EnvValue::parse(&m.env["REGION"]).unwrap(),
        EnvValue::HostVar {
            name: "AWS_REGION".into(),
            default: None
        }
    );
    let g = &m.git[0];
    assert_eq!(
        g.identity.as_deref(),
        Some(Path::new("~/.ssh/acme_app_deploy"))
    );
    assert_eq!(g.push, ["refs/heads/bot/*"]);
    let up = GitUpstream::parse(&g.upstream).unwrap();
    assert_eq!((up.host.as_str(), up.port), ("github.com", 22));
    assert_eq!(m.egress.len(), 3);
    assert_eq!(
        m.egress[0].auth.as_ref().unwrap().scheme,
        AuthSchemeName::Bearer
    );
    assert_eq!(m.egress[1].tls, Some(RouteTls::Passthrough));
    assert!(m.egress[2].allow_private && !m.egress[0].allow_private);
    assert_eq!(m.supervise.timeout_duration(), Duration::from_secs(600));
}

#[test]
fn minimal_manifest_gets_defaults() {
    let m = parse("minimal.yaml");
    assert_eq!(m.backend, BackendKind::Docker);
    assert!(m.git.is_empty() && m.egress.is_empty() && m.env.is_empty() && m.skills.is_empty());
    assert!(m.label.is_none() && m.prompt.is_none() && m.supervise.timeout.is_none());
    assert!(!m.agent.forward_host_credentials);
    assert_eq!(m.supervise.timeout_duration(), DEFAULT_SUPERVISE_TIMEOUT);
}

#[test]
fn every_other_field_parses_and_is_normalised() {
    let m = parse("codex_everything.yaml");
    assert_eq!(m.backend, BackendKind::AppleContainer);
    assert!(m.agent.forward_host_credentials);
    // Plain numbers and booleans in env are their text.
    assert_eq!(m.env["PORT"], "8080");
    assert_eq!(m.env["DEBUG"], "true");
    assert_eq!(m.env["EMPTY"], "");
    assert_eq!(m.env["PRICE"], "$5");
    let pk = m.git[0].provisioned_key.as_ref().unwrap();
    assert_eq!((pk.forge, pk.read_only), (Forge::Gitea, false));
    assert!(m.git[0].allow_force && !m.git[0].allow_delete);
    assert_eq!(GitUpstream::parse(&m.git[0].upstream).unwrap().port, 2222);
    let docs = GitUpstream::parse(&m.git[1].upstream).unwrap();
    assert_eq!((docs.kind, docs.port), (UpstreamKind::Https, 8443));
    let r = &m.egress[0];
    assert_eq!(r.host, "api.example.com");
    assert_eq!(r.methods, ["GET", "POST"]);
    assert_eq!(r.ports, [443, 8443]);
    assert_eq!(r.auth.as_ref().unwrap().name.as_deref(), Some("X-Api-Key"));
    assert_eq!(m.supervise.timeout_duration(), Duration::from_secs(90));
}

#[test]
fn provisioned_key_defaults_to_read_only() {
    let src = "version: 1\nname: bot\nagent: {provider: claude}\ngit:\n  - name: app\n    upstream: git@github.com:a/b.git\n    known_hosts: ./kh\n    provisioned_key: {forge: github, api: https://api.github.com, token: GH}\n";
    let m = parse_str(src, Path::new("x.yaml")).unwrap();
    assert!(m.git[0].provisioned_key.as_ref().unwrap().read_only);
}

#[test]
fn user_provider_with_its_own_name_parses() {
    let src = "version: 1\nname: bot\nagent: {provider: my-aider, dockerfile: ./Dockerfile}\n";
    let m = parse_str(src, Path::new("x.yaml")).unwrap();
    assert_eq!(m.agent.provider, "my-aider");
}

#[test]
fn semantic_errors_are_reported_together_in_order() {
    let src = "version: 3\nname: Bad_Name\nagent: {provider: claude}\nsupervise: {timeout: 2d}\n";
    let err = parse_str(src, Path::new("b.yaml")).unwrap_err();
    let lines: Vec<(usize, usize)> = err
        .diagnostics()
        .iter()
        .map(|d| (d.location.line, d.location.col))
        .collect();
    assert_eq!(lines, [(1, 10), (2, 7), (4, 22)]);
    assert!(matches!(err, Error::Many(ref all) if all.len() == 3));
}

#[test]
fn empty_collections_may_be_left_blank() {
    let src = "version: 1\nname: bot\nagent: {provider: claude}\nenv:\n  # FOO: bar\nskills:\ngit:\negress:\nsupervise:\n";
    let m = parse_str(src, Path::new("x.yaml")).unwrap();
    assert!(m.env.is_empty() && m.skills.is_empty() && m.git.is_empty() && m.egress.is_empty());
    assert_eq!(m.supervise.timeout_duration(), DEFAULT_SUPERVISE_TIMEOUT);

    let err = parse_str("version: 1\nname: bot\nagent:\n", Path::new("x.yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.yaml:3:6: `agent` is missing the required key `provider`\n  hint: add `provider: claude` (or `codex`, or a user provider's name)"
    );
}
