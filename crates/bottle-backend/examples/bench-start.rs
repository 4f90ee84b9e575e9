//! Bench for `bench/start`: a warm bottle start through the docker backend (`up`, then the
//! agent command `true` attached with pipes) against a bare `docker run --rm <same image> true`,
//! alternating, N rounds (arg 1, default 7), medians. Teardown is not timed. Prints per-round
//! figures on stderr and ends with
//! `RESULT start_vs_docker_run=<x> start_ms_median=<m>` on stdout.
//!
//! It drives the backend directly because it measures the backend's part of `bot-bottle start`
//! (images warm, no terminal).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::path::PathBuf;
use std::time::Instant;

use bottle_backend::docker::{self, DockerBackend, SIDECAR_AUDIT_DIR, SIDECAR_STATE_DIR};
use bottle_backend::{AttachIo, Backend, UpRequest};
use bottle_config::Secret;
use bottle_plan::resolve::{resolve, Prompter, ResolveInput};
use bottle_plan::*;

const IMAGE: &str = "bot-bottle-bench/shell:1";
const DOCKERFILE: &str = include_str!("../../../examples/shell/provider/Dockerfile");

struct NoPrompt;
impl Prompter for NoPrompt {
    fn ask(&mut self, _: &str) -> std::result::Result<String, String> {
        Err("no prompt".into())
    }
}

fn plan(slug: &str) -> Plan {
    let lit = |v: &str| EnvSource::Literal { value: v.into() };
    let proxy = format!("http://{SIDECAR_HOST}:{PROXY_PORT}");
    Plan {
        slug: slug.into(),
        name: "bench".into(),
        label: None,
        color: None,
        backend: BackendKind::Docker,
        manifest_path: PathBuf::from("/nonexistent/bottle.yaml"),
        provider: ProviderRef {
            name: "shell".into(),
            kind: ProviderKind::User,
        },
        image: ImagePlan {
            tag: IMAGE.into(),
            dockerfile: DOCKERFILE.into(),
            source: DockerfileSource::Builtin {
                provider: "shell".into(),
            },
            context_dir: None,
        },
        agent: AgentPlan {
            user: "agent".into(),
            home: "/home/agent".into(),
            workdir: "/home/agent/work".into(),
            command: vec!["true".into()],
            env: vec![
                EnvVar {
                    name: "HTTPS_PROXY".into(),
                    value: lit(&proxy),
                    hidden: false,
                },
                EnvVar {
                    name: "SSL_CERT_FILE".into(),
                    value: lit(GUEST_CA_PATH),
                    hidden: false,
                },
            ],
            files: vec![GuestFile {
                path: "/home/agent/.bashrc.d/bot-bottle.sh".into(),
                mode: 0o644,
                content: "PS1='(bench) $ '\n".into(),
                agent_owned: true,
            }],
            dirs: vec![],
            setup: vec![],
            mcp_url: format!("http://{SIDECAR_HOST}:{MCP_PORT}/mcp"),
            proxy_url: proxy.clone(),
            no_proxy: "localhost".into(),
            ca_cert_path: GUEST_CA_PATH.into(),
            ca_bundle_path: bottle_plan::GUEST_CA_BUNDLE_PATH.into(),
            git_insteadof: vec![],
        },
        sidecar: SidecarPlan {
            routes: vec![],
            git: vec![],
            supervise_timeout_secs: 60,
        },
        resources: ResourceNames::for_slug(slug),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn one_start(backend: &DockerBackend, round: usize, home: &std::path::Path) -> f64 {
    let slug = format!("bench-{}-{round}", std::process::id());
    let index = 250 + (round as u32 % 5);
    let plan = plan(&slug);
    let ca = bottle_tls::Ca::generate("bench").unwrap();
    let resolved = resolve(
        &plan,
        ResolveInput {
            host_env: &|_| None,
            prompter: &mut NoPrompt,
            ca: bottle_config::CaMaterial {
                cert_pem: ca.cert_pem().into(),
                key_pem: Secret::new(ca.key_pem()),
            },
            endpoints: docker::endpoints(index).unwrap(),
            admin_token: Secret::new("bench-admin"),
            control_token: Secret::new("bench-control"),
            provisioned_keys: Default::default(),
            audit_dir: SIDECAR_AUDIT_DIR.into(),
            state_dir: SIDECAR_STATE_DIR.into(),
            extra_roots_pem: None,
        },
    )
    .unwrap();
    let audit = home.join(format!("{slug}/audit"));
    let state = home.join(format!("{slug}/sidecar"));
    let t = Instant::now();
    let up = backend
        .up(UpRequest {
            plan: &plan,
            sidecar: &resolved.sidecar,
            agent_env: &resolved.agent_env,
            audit_dir: &audit,
            state_dir: &state,
            index,
            progress: false,
        })
        .await;
    let code = match up {
        Ok(_) => {
            backend
                .attach(&slug, &plan.agent, &plan.agent.command, AttachIo::Pipes)
                .await
        }
        Err(e) => Err(e),
    };
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    backend.down(&slug).await.unwrap();
    assert_eq!(code.unwrap(), 0);
    ms
}

fn one_docker_run() -> f64 {
    let t = Instant::now();
    let st = std::process::Command::new("docker")
        .args(["run", "--rm", IMAGE, "true"])
        .status()
        .unwrap();
    assert!(st.success());
    t.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(7);
    let sidecar = std::env::var("BOT_BOTTLE_SIDECAR_BIN").expect("BOT_BOTTLE_SIDECAR_BIN");
    let backend = DockerBackend::connect()
        .await
        .unwrap()
        .with_sidecar_binary(sidecar);
    let home = tempfile::tempdir().unwrap();
    // Warm-up (builds images when absent): not counted.
    one_start(&backend, 1000, home.path()).await;
    one_docker_run();
    let (mut starts, mut runs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let s = one_start(&backend, round, home.path()).await;
        let r = one_docker_run();
        eprintln!("round {round}: start {s:.0} ms, docker run {r:.0} ms");
        starts.push(s);
        runs.push(r);
    }
    let (s, r) = (median(&mut starts), median(&mut runs));
    eprintln!("median: start {s:.0} ms, docker run {r:.0} ms");
    println!(
        "RESULT start_vs_docker_run={:.2} start_ms_median={:.0}",
        s / r,
        s
    );
}
