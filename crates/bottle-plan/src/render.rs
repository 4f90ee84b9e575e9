//! The plan for people (`bot-bottle plan`) and as JSON (`--json`).
//!
//! Neither form ever holds a secret value: a plan holds only references (host env var names,
//! "asked at start", the codex auth file's path), and hidden env vars are marked as such.

use std::fmt::Write as _;

use bottle_config::TlsMode;

use crate::error::Result;
use crate::plan::*;

/// Renders the plan for people.
pub fn human(plan: &Plan) -> String {
    let mut s = String::new();
    let display = match &plan.label {
        Some(l) => format!("{l} ({})", plan.name),
        None => plan.name.clone(),
    };
    let _ = writeln!(s, "bottle    {display}");
    let _ = writeln!(s, "slug      {}", plan.slug);
    if let Some(c) = &plan.color {
        let _ = writeln!(s, "colour    {c}");
    }
    let _ = writeln!(s, "backend   {}", plan.backend.as_str());
    let kind = match plan.provider.kind {
        ProviderKind::Builtin => "built-in",
        ProviderKind::User => "user",
    };
    let _ = writeln!(s, "provider  {} ({kind})", plan.provider.name);
    let from = match &plan.image.source {
        DockerfileSource::Cli { path } => format!("--dockerfile {}", path.display()),
        DockerfileSource::Manifest { path } => {
            format!("manifest agent.dockerfile {}", path.display())
        }
        DockerfileSource::UserProvider { path } => format!("user provider {}", path.display()),
        DockerfileSource::Builtin { provider } => format!("built-in {provider}"),
    };
    let _ = writeln!(s, "image     {} (Dockerfile: {from})", plan.image.tag);
    let a = &plan.agent;
    let _ = writeln!(
        s,
        "agent     user {}, home {}, workdir {}",
        a.user,
        a.home.display(),
        a.workdir.display()
    );
    let _ = writeln!(s, "command   {}", a.command.join(" "));

    let _ = writeln!(s, "\ngit gate");
    if plan.sidecar.git.is_empty() {
        let _ = writeln!(s, "  (none)");
    }
    for g in &plan.sidecar.git {
        let cred = match &g.credential {
            GitCredentialPlan::Identity { key_file, .. } => {
                format!("identity {}", key_file.display())
            }
            GitCredentialPlan::Provisioned {
                forge, read_only, ..
            } => format!(
                "deploy key via {} ({})",
                match forge {
                    Forge::Gitea => "gitea",
                    Forge::Github => "github",
                    Forge::Gitlab => "gitlab",
                },
                if *read_only {
                    "read-only"
                } else {
                    "read-write"
                }
            ),
            GitCredentialPlan::HttpsToken { token } => format!("token {}", secret_ref(token)),
        };
        let push = if g.push.allow.is_empty() {
            "read-only".to_string()
        } else {
            let mut p = format!("push {}", g.push.allow.join(", "));
            if g.push.allow_force {
                p.push_str(" +force");
            }
            if g.push.allow_delete {
                p.push_str(" +delete");
            }
            p
        };
        let _ = writeln!(
            s,
            "  {} → {}:{}  {push}  [{cred}]",
            g.name, g.upstream_host, g.upstream_port
        );
    }

    let _ = writeln!(s, "\negress (every other host is refused)");
    for r in &plan.sidecar.routes {
        let ports = if r.ports.is_empty() {
            String::new()
        } else {
            format!(
                ":{}",
                r.ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let mut line = format!("  {}{ports}", r.host);
        line.push_str(match r.tls {
            TlsMode::Intercept => "  intercept",
            TlsMode::Passthrough => "  passthrough",
        });
        if let Some(a) = &r.auth {
            let _ = write!(line, " [auth:{}]", a.scheme.label());
        }
        if !r.methods.is_empty() {
            let _ = write!(line, " methods {}", r.methods.join(","));
        }
        if !r.paths.is_empty() {
            let _ = write!(line, " paths {}", r.paths.join(","));
        }
        if r.allow_private {
            line.push_str(" allow_private");
        }
        if r.origin != "manifest" {
            let _ = write!(line, " ({})", r.origin);
        }
        let _ = writeln!(s, "{line}");
    }

    let _ = writeln!(s, "\nenv");
    for e in &a.env {
        let v = match &e.value {
            EnvSource::Literal { value } if !e.hidden => format!("={value}"),
            EnvSource::Literal { .. } => String::new(),
            EnvSource::HostVar {
                var,
                default: Some(_),
            } => format!("  from host ${{{var}}} (with default)"),
            EnvSource::HostVar { var, default: None } => format!("  from host ${{{var}}}"),
            EnvSource::Prompt => "  asked at start".to_string(),
            EnvSource::Placeholder => {
                "  placeholder (the proxy injects the real credential)".to_string()
            }
        };
        let hidden = if e.hidden { "  [hidden]" } else { "" };
        let _ = writeln!(s, "  {}{v}{hidden}", e.name);
    }

    let _ = writeln!(s, "\nfiles");
    for f in &a.files {
        let _ = writeln!(
            s,
            "  {} ({:04o}, {} bytes)",
            f.path.display(),
            f.mode,
            f.content.len()
        );
    }
    for d in &a.dirs {
        let _ = writeln!(s, "  {}/ (from {})", d.guest.display(), d.host.display());
    }
    if !a.setup.is_empty() {
        let _ = writeln!(s, "\nsetup");
        for c in &a.setup {
            let _ = writeln!(
                s,
                "  {}{}",
                if c.as_root { "# " } else { "$ " },
                c.argv.join(" ")
            );
        }
    }
    if !a.git_insteadof.is_empty() {
        let _ = writeln!(s, "\ngit remotes rewritten to the gate");
        for r in &a.git_insteadof {
            let _ = writeln!(s, "  {} ← {}", r.gate_url, r.upstream_forms.join(" | "));
        }
    }
    let _ = writeln!(
        s,
        "\nsupervise {} (timeout {}s)\nproxy     {}",
        a.mcp_url, plan.sidecar.supervise_timeout_secs, a.proxy_url
    );
    s
}

fn secret_ref(r: &SecretRef) -> String {
    match r {
        SecretRef::HostVar { var } => format!("from host ${{{var}}}"),
        SecretRef::CodexAuth { path } => format!("from {}", path.display()),
    }
}

/// Renders the plan as pretty JSON.
pub fn json(plan: &Plan) -> Result<String> {
    Ok(serde_json::to_string_pretty(plan)?)
}
