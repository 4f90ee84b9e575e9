//! Start-time resolution: the plan's secret references → a [`SidecarConfig`] with real values,
//! and the agent's environment.
//!
//! This is the only place secret values are read on the host: host env vars, `?prompt` answers,
//! identity key files, the codex `auth.json` access token, and deploy keys minted at start. The
//! results are [`Secret`]s, whose Debug/Display redact; errors name the variable or file, never
//! a value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use bottle_config::{
    AdminEndpoint, BottleIdent, CaMaterial, EgressConfig, EgressLimits, GateRepo, GitGateConfig,
    Injection, Route, Secret, SidecarConfig, SuperviseConfig, UpstreamCredential, PLACEHOLDER,
};

use crate::error::{Error, Result};
use crate::plan::*;

/// Where the sidecar's services listen (chosen by the backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SidecarEndpoints {
    pub proxy: SocketAddr,
    pub gate: SocketAddr,
    pub mcp: SocketAddr,
    pub admin: SocketAddr,
    pub control: SocketAddr,
    pub health: SocketAddr,
}

/// Asks for a `?prompt` value (without echo) — the CLI passes a TTY prompter.
pub trait Prompter {
    /// Returns the value for env `name`, or an error message (e.g. "no terminal").
    fn ask(&mut self, name: &str) -> std::result::Result<String, String>;
}

/// What resolution reads besides the plan.
pub struct ResolveInput<'a> {
    pub host_env: &'a dyn Fn(&str) -> Option<String>,
    pub prompter: &'a mut dyn Prompter,
    pub ca: CaMaterial,
    pub endpoints: SidecarEndpoints,
    pub admin_token: Secret,
    pub control_token: Secret,
    /// Private keys of deploy keys minted at start, by git entry name.
    pub provisioned_keys: BTreeMap<String, Secret>,
    /// Sidecar-side folders.
    pub audit_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Extra PEM roots the proxy and gate trust upstream (tests, corporate CAs).
    pub extra_roots_pem: Option<String>,
}

/// The resolved result.
#[derive(Debug)]
pub struct Resolved {
    pub sidecar: SidecarConfig,
    /// The agent's environment, in order, with values.
    pub agent_env: Vec<(String, Secret)>,
}

/// Reads one secret reference.
pub fn read_secret(
    r: &SecretRef,
    needed_by: &str,
    host_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret> {
    match r {
        SecretRef::HostVar { var } => match host_env(var) {
            Some(v) if !v.is_empty() => Ok(Secret::new(v.trim_end_matches(['\r', '\n']))),
            _ => Err(Error::MissingHostVar {
                var: var.clone(),
                needed_by: needed_by.to_string(),
            }),
        },
        SecretRef::CodexAuth { path } => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::CodexAuth {
                path: path.clone(),
                message: format!("cannot read it ({})", e.kind()),
            })?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::CodexAuth {
                    path: path.clone(),
                    message: format!("not valid JSON at line {} column {}", e.line(), e.column()),
                })?;
            v.pointer("/tokens/access_token")
                .and_then(|t| t.as_str())
                .map(Secret::new)
                .ok_or_else(|| Error::CodexAuth {
                    path: path.clone(),
                    message: "has no tokens.access_token".into(),
                })
        }
    }
}

/// Resolves the agent's environment alone (`attach` from a new process needs it again: values
/// from the host or the terminal are kept nowhere).
pub fn agent_env(
    plan: &Plan,
    env: &dyn Fn(&str) -> Option<String>,
    prompter: &mut dyn Prompter,
) -> Result<Vec<(String, Secret)>> {
    let mut agent_env = Vec::new();

    for e in &plan.agent.env {
        let value = match &e.value {
            EnvSource::Literal { value } => Secret::new(value.clone()),
            EnvSource::Placeholder => Secret::new(PLACEHOLDER),
            EnvSource::HostVar { var, default } => match (env(var), default) {
                (Some(v), _) => Secret::new(v),
                (None, Some(d)) => Secret::new(d.clone()),
                (None, None) => {
                    return Err(Error::MissingHostVar {
                        var: var.clone(),
                        needed_by: format!("env `{}`", e.name),
                    })
                }
            },
            EnvSource::Prompt => {
                Secret::new(prompter.ask(&e.name).map_err(|message| Error::Env {
                    key: e.name.clone(),
                    message,
                })?)
            }
        };
        agent_env.push((e.name.clone(), value));
    }
    Ok(agent_env)
}

/// Resolves the plan.
pub fn resolve(plan: &Plan, input: ResolveInput<'_>) -> Result<Resolved> {
    let env = input.host_env;
    let agent_env = agent_env(plan, env, input.prompter)?;

    let mut routes = Vec::new();
    for r in &plan.sidecar.routes {
        let auth = match &r.auth {
            Some(a) => Some(Injection {
                scheme: a.scheme.clone(),
                secret: read_secret(&a.secret, &format!("egress route {}", r.host), env)?,
            }),
            None => None,
        };
        routes.push(Route {
            host: r.host.clone(),
            ports: r.ports.clone(),
            methods: r.methods.clone(),
            paths: r.paths.clone(),
            tls: r.tls,
            auth,
            allow_private: r.allow_private,
            origin: Some(r.origin.clone()),
        });
    }

    let mut repos = Vec::new();
    for g in &plan.sidecar.git {
        let read_file = |p: &PathBuf, what: &str| {
            std::fs::read_to_string(p)
                .map_err(|source| Error::Read {
                    path: p.clone(),
                    source,
                })
                .and_then(|s| {
                    if s.trim().is_empty() {
                        Err(Error::Env {
                            key: format!("git `{}`", g.name),
                            message: format!("{what} {} is empty", p.display()),
                        })
                    } else {
                        Ok(s)
                    }
                })
        };
        let credential = match &g.credential {
            GitCredentialPlan::Identity {
                key_file,
                known_hosts,
            } => UpstreamCredential::Ssh {
                private_key: Secret::new(read_file(key_file, "identity file")?),
                known_hosts: read_file(known_hosts, "known_hosts file")?,
            },
            GitCredentialPlan::Provisioned { known_hosts, .. } => UpstreamCredential::Ssh {
                private_key: input
                    .provisioned_keys
                    .get(&g.name)
                    .cloned()
                    .ok_or_else(|| Error::Env {
                        key: format!("git `{}`", g.name),
                        message: "no deploy key was minted for this entry".into(),
                    })?,
                known_hosts: read_file(known_hosts, "known_hosts file")?,
            },
            GitCredentialPlan::HttpsToken { token } => UpstreamCredential::HttpsToken {
                token: read_secret(token, &format!("git `{}`", g.name), env)?,
                username: None,
                extra_roots_pem: input.extra_roots_pem.clone(),
            },
        };
        repos.push(GateRepo {
            name: g.name.clone(),
            upstream: g.upstream.clone(),
            credential,
            push: g.push.clone(),
        });
    }

    let sidecar = SidecarConfig {
        bottle: BottleIdent {
            slug: plan.slug.clone(),
            name: plan.name.clone(),
            label: plan.label.clone(),
        },
        audit_dir: input.audit_dir,
        state_dir: input.state_dir,
        health_listen: input.endpoints.health,
        egress: EgressConfig {
            listen: input.endpoints.proxy,
            admin_listen: input.endpoints.admin,
            admin_token: input.admin_token.clone(),
            ca: input.ca,
            extra_roots_pem: input.extra_roots_pem,
            routes,
            limits: EgressLimits::default(),
        },
        git: GitGateConfig {
            listen: input.endpoints.gate,
            repos,
        },
        supervise: SuperviseConfig {
            listen: input.endpoints.mcp,
            control_listen: input.endpoints.control,
            control_token: input.control_token,
            timeout_secs: plan.sidecar.supervise_timeout_secs,
            egress_admin: AdminEndpoint {
                url: format!("http://127.0.0.1:{}", input.endpoints.admin.port()),
                token: input.admin_token,
            },
        },
    };
    Ok(Resolved { sidecar, agent_env })
}
