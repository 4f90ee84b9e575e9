//! Test harness: bottles on the real Docker engine, an "internet" of containers on the
//! bottle's egress network, and cleanup by label even when a test fails.
//!
//! The sidecar binary: `BOT_BOTTLE_SIDECAR_BIN` if set, else the harness runs
//! `cargo build -p bottle-sidecar` once (same `CARGO_TARGET_DIR` as the test build, debug
//! profile) and uses `<target>/debug/bottle-sidecar`.
//!
//! Indexes: tests take network indexes 200..=255 from a process-wide counter (the CLI allocates
//! from 0 upward through bottle-state), so parallel tests never share a subnet.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, UploadToContainerOptionsBuilder};
use bottle_backend::docker::{self, DockerBackend, SIDECAR_AUDIT_DIR, SIDECAR_STATE_DIR};
use bottle_backend::{Backend, ExecOutput, UpRequest};
use bottle_config::{AuthScheme, Secret, SidecarConfig, TlsMode};
use bottle_plan::resolve::{resolve, Prompter, ResolveInput};
use bottle_plan::*;

pub const PROBE_IMAGE: &str = "bot-bottle-test/probe:2";
pub const UPSTREAM_IMAGE: &str = "bot-bottle-test/upstream:2";
pub const API_HOST: &str = "api.example.test";
/// Another name of the same fake upstream, with no route: the proxy must refuse it.
pub const UNROUTED_HOST: &str = "unrouted.example.test";

pub const PROBE_DOCKERFILE: &str = r#"FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl git ca-certificates procps \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 --shell /bin/bash agent
USER agent
"#;

const UPSTREAM_DOCKERFILE: &str = r#"FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
COPY server.py /srv/server.py
CMD ["python3", "-u", "/srv/server.py"]
"#;

/// The fake upstream: HTTPS on 443 (cert from /srv), plain HTTP on 80; logs the
/// Authorization header it receives on stdout; answers a fixed body.
const UPSTREAM_SERVER: &str = r#"
import http.server, ssl, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    def handle_one(self):
        auth = self.headers.get("Authorization")
        sys.stdout.write("REQUEST %s %s AUTH=%s\n" % (self.command, self.path, auth))
        sys.stdout.flush()
        body = b"hello from upstream\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = handle_one
    do_POST = handle_one
    def log_message(self, *a):
        pass
def plain():
    http.server.ThreadingHTTPServer(("0.0.0.0", 80), H).serve_forever()
threading.Thread(target=plain, daemon=True).start()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/srv/cert.pem", "/srv/key.pem")
s = http.server.ThreadingHTTPServer(("0.0.0.0", 443), H)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"#;

static NEXT_INDEX: AtomicU32 = AtomicU32::new(200);

pub fn next_index() -> u32 {
    // A child process (the SIGKILL test) is handed an index its parent reserved.
    if let Some(i) = std::env::var("BB_TEST_INDEX")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return i;
    }
    let i = NEXT_INDEX.fetch_add(1, Ordering::SeqCst);
    assert!(i < docker::MAX_INDEX, "test network indexes exhausted");
    i
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// The sidecar binary (built once per test process).
pub fn sidecar_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("BOT_BOTTLE_SIDECAR_BIN") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-q", "-p", "bottle-sidecar", "-j", "2"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p bottle-sidecar");
        assert!(status.success(), "cargo build -p bottle-sidecar failed");
        let p = target_dir().join("debug/bottle-sidecar");
        assert!(p.is_file(), "no sidecar binary at {}", p.display());
        p
    })
    .clone()
}

pub async fn backend() -> DockerBackend {
    DockerBackend::connect()
        .await
        .expect("docker engine")
        .with_sidecar_binary(sidecar_binary())
}

/// A test CA and a leaf for [`API_HOST`] (the fake upstream's certificate).
pub struct UpstreamTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn upstream_tls() -> UpstreamTls {
    upstream_tls_for(API_HOST)
}

/// A test CA and a leaf for `host`.
pub fn upstream_tls_for(host: &str) -> UpstreamTls {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct subject names: with rcgen's default name on both, OpenSSL clients (curl doing
    // its own TLS through a passthrough route) take the leaf for a self-signed certificate.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bot-bottle test upstream CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec![host.to_string()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, host);
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    UpstreamTls {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

struct NoPrompt;
impl Prompter for NoPrompt {
    fn ask(&mut self, name: &str) -> std::result::Result<String, String> {
        Err(format!("no prompt in tests ({name})"))
    }
}

/// Options of a test bottle.
pub struct Opts {
    pub command: Vec<String>,
    /// Real token for the API route (injected by the proxy as a bearer token).
    pub token: String,
    pub setup: Vec<SetupCommand>,
    pub files: Vec<GuestFile>,
    pub git: Vec<GitPlan>,
    pub insteadof: Vec<InsteadOf>,
    pub extra_roots: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            command: vec!["true".into()],
            token: format!(
                "real-secret-{}",
                std::process::id() as u64 * 7919 + next_nonce()
            ),
            setup: vec![],
            files: vec![],
            git: vec![],
            insteadof: vec![],
            extra_roots: None,
        }
    }
}

fn next_nonce() -> u64 {
    static N: AtomicU32 = AtomicU32::new(1);
    u64::from(N.fetch_add(1, Ordering::SeqCst))
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
}

pub fn test_plan(slug: &str, opts: &Opts) -> Plan {
    let mcp_url = format!("http://{SIDECAR_HOST}:{MCP_PORT}/mcp");
    let proxy_url = format!("http://{SIDECAR_HOST}:{PROXY_PORT}");
    let no_proxy = format!("localhost,127.0.0.1,{SIDECAR_HOST}");
    let lit = |v: &str| EnvSource::Literal { value: v.into() };
    let mut env = Vec::new();
    for (k, v) in [
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("HTTP_PROXY", proxy_url.as_str()),
        ("https_proxy", proxy_url.as_str()),
        ("http_proxy", proxy_url.as_str()),
        ("NO_PROXY", no_proxy.as_str()),
        ("no_proxy", no_proxy.as_str()),
        ("NODE_EXTRA_CA_CERTS", GUEST_CA_PATH),
        ("SSL_CERT_FILE", GUEST_CA_PATH),
        ("CODEX_CA_CERTIFICATE", GUEST_CA_PATH),
        ("GIT_SSL_CAINFO", GUEST_CA_PATH),
    ] {
        env.push(EnvVar {
            name: k.into(),
            value: lit(v),
            hidden: false,
        });
    }
    env.push(EnvVar {
        name: "API_TOKEN".into(),
        value: EnvSource::Placeholder,
        hidden: true,
    });
    Plan {
        slug: slug.into(),
        name: "probe".into(),
        label: None,
        color: None,
        backend: BackendKind::Docker,
        manifest_path: PathBuf::from("/nonexistent/bottle.yaml"),
        provider: ProviderRef {
            name: "probe".into(),
            kind: ProviderKind::User,
        },
        image: ImagePlan {
            tag: PROBE_IMAGE.into(),
            dockerfile: PROBE_DOCKERFILE.into(),
            source: DockerfileSource::Builtin {
                provider: "probe".into(),
            },
            context_dir: None,
        },
        agent: AgentPlan {
            user: "agent".into(),
            home: "/home/agent".into(),
            workdir: "/home/agent/work".into(),
            command: opts.command.clone(),
            env,
            files: opts.files.clone(),
            dirs: vec![],
            setup: opts.setup.clone(),
            mcp_url,
            proxy_url,
            no_proxy,
            ca_cert_path: GUEST_CA_PATH.into(),
            ca_bundle_path: bottle_plan::GUEST_CA_BUNDLE_PATH.into(),
            git_insteadof: opts.insteadof.clone(),
        },
        sidecar: SidecarPlan {
            routes: vec![RoutePlan {
                host: API_HOST.into(),
                ports: vec![],
                methods: vec![],
                paths: vec![],
                tls: TlsMode::Intercept,
                auth: Some(AuthPlan {
                    scheme: AuthScheme::Bearer,
                    secret: SecretRef::HostVar {
                        var: "TEST_API_TOKEN".into(),
                    },
                }),
                allow_private: true,
                origin: "manifest".into(),
            }],
            git: opts.git.clone(),
            supervise_timeout_secs: 30,
        },
        resources: ResourceNames::for_slug(slug),
    }
}

/// A running test bottle; `down` runs when it is dropped (also on panic).
pub struct Bottle {
    pub slug: String,
    pub index: u32,
    pub plan: Plan,
    pub sidecar: SidecarConfig,
    pub token: String,
    pub backend: DockerBackend,
    pub home: tempfile::TempDir,
    /// The agent env the resolve gave (host values included), for [`Bottle::request`].
    pub agent_env: Vec<(String, Secret)>,
    audit_dir: PathBuf,
    state_dir: PathBuf,
}

impl Bottle {
    /// The `up` / `resume` request for this bottle.
    pub fn request(&self) -> UpRequest<'_> {
        UpRequest {
            plan: &self.plan,
            sidecar: &self.sidecar,
            agent_env: &self.agent_env,
            audit_dir: &self.audit_dir,
            state_dir: &self.state_dir,
            index: self.index,
            progress: false,
        }
    }
}

/// A bottle planned and resolved for `backend` but not started; like a started one it is torn
/// down when dropped.
pub fn unstarted(tag: &str, opts: Opts, backend: DockerBackend) -> Bottle {
    let token = opts.token.clone();
    let (slug, index, plan, sidecar, agent_env, home) = prepare(tag, opts);
    Bottle {
        slug,
        index,
        plan,
        sidecar,
        token,
        backend,
        audit_dir: home.path().join("audit"),
        state_dir: home.path().join("sidecar"),
        home,
        agent_env,
    }
}

impl Drop for Bottle {
    fn drop(&mut self) {
        let slug = self.slug.clone();
        // Drop may run inside a runtime: tear down on a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                if let Ok(b) = DockerBackend::connect().await {
                    let _ = b.down(&slug).await;
                }
            });
        })
        .join();
    }
}

pub fn slug(tag: &str) -> String {
    format!("t-{tag}-{:x}", next_nonce() & 0xffffff)
}

/// Prepares (plan, config) without starting anything.
fn prepare(
    tag: &str,
    opts: Opts,
) -> (
    String,
    u32,
    Plan,
    SidecarConfig,
    Vec<(String, Secret)>,
    tempfile::TempDir,
) {
    let slug = slug(tag);
    let index = next_index();
    let plan = test_plan(&slug, &opts);
    let ca = bottle_tls::Ca::generate(&format!("bot-bottle {slug}")).unwrap();
    let token = opts.token.clone();
    let env = move |v: &str| (v == "TEST_API_TOKEN").then(|| token.clone());
    let resolved = resolve(
        &plan,
        ResolveInput {
            host_env: &env,
            prompter: &mut NoPrompt,
            ca: bottle_config::CaMaterial {
                cert_pem: ca.cert_pem().into(),
                key_pem: Secret::new(ca.key_pem()),
            },
            endpoints: docker::endpoints(index).unwrap(),
            admin_token: Secret::new(format!("admin-{}", next_nonce())),
            control_token: Secret::new(format!("control-{}", next_nonce())),
            provisioned_keys: Default::default(),
            audit_dir: SIDECAR_AUDIT_DIR.into(),
            state_dir: SIDECAR_STATE_DIR.into(),
            extra_roots_pem: opts.extra_roots.clone(),
        },
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    (
        slug,
        index,
        plan,
        resolved.sidecar,
        resolved.agent_env,
        home,
    )
}

pub async fn start(tag: &str, mut opts: Opts) -> Bottle {
    let tls = upstream_tls();
    if opts.extra_roots.is_none() {
        opts.extra_roots = Some(tls.ca_pem.clone());
    }
    let bottle = unstarted(tag, opts, backend().await);
    tokio::time::timeout(
        Duration::from_secs(900),
        bottle.backend.up(bottle.request()),
    )
    .await
    .expect("up timed out")
    .expect("up");
    start_upstream(&bottle, &tls).await;
    // Wait until the fake upstream listens (python takes a moment to start).
    for _ in 0..100 {
        let probe = bottle
            .upstream_exec(&[
                "python3",
                "-c",
                "import socket; socket.create_connection(('127.0.0.1', 443), 2); socket.create_connection(('127.0.0.1', 80), 2)",
            ])
            .await;
        if probe.exit_code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bottle
}

/// Starts the fake upstream on the bottle's egress network under [`API_HOST`], labelled with
/// the bottle's slug so `down` removes it.
async fn start_upstream(b: &Bottle, tls: &UpstreamTls) {
    let name = format!("bot-bottle-{}-upstream", b.slug);
    start_upstream_container(b, &name, &b.plan.resources.egress_network, API_HOST, tls).await;
}

/// Starts a fake upstream container `name` on `network` under the DNS alias `alias`, serving
/// `tls`'s leaf on 443 (and plain HTTP on 80), labelled with the bottle's slug so `down`
/// removes it. Returns once it was started (not necessarily listening yet: see
/// [`wait_listening`]).
pub async fn start_upstream_container(
    b: &Bottle,
    name: &str,
    network: &str,
    alias: &str,
    tls: &UpstreamTls,
) {
    let docker = b.backend.client();
    ensure_upstream_image(&b.backend).await;
    let labels: HashMap<String, String> = b.plan.resources.labels.clone().into_iter().collect();
    let body = ContainerCreateBody {
        image: Some(UPSTREAM_IMAGE.into()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_string()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_string(),
                EndpointSettings {
                    aliases: Some(vec![alias.into()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(name).build()),
            body,
        )
        .await
        .unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("srv/cert.pem", &tls.cert_pem),
        ("srv/key.pem", &tls.key_pem),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, path, data.as_bytes()).unwrap();
    }
    docker
        .upload_to_container(
            name,
            Some(UploadToContainerOptionsBuilder::default().path("/").build()),
            bollard::body_full(tar.into_inner().unwrap().into()),
        )
        .await
        .unwrap();
    docker.start_container(name, None).await.unwrap();
}

/// Waits until the fake upstream `name` listens on 443 and 80 (python takes a moment to
/// start); panics if it never does.
pub async fn wait_listening(b: &Bottle, name: &str) {
    for _ in 0..300 {
        let probe = b
            .container_exec(
                name,
                "root",
                &[
                    "python3",
                    "-c",
                    "import socket; socket.create_connection(('127.0.0.1', 443), 2); socket.create_connection(('127.0.0.1', 80), 2)",
                ],
            )
            .await;
        if probe.exit_code == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fake upstream {name} never listened on 443 and 80");
}

/// Creates a bridge network `name` on `subnet` (CIDR), labelled with the bottle's slug so
/// `down` removes it. It is `internal` with no host address and no masquerading: only the
/// containers attached to it can talk over it, and nothing on it is routed off this host.
pub async fn create_labelled_network(b: &Bottle, name: &str, subnet: &str) {
    let labels: HashMap<String, String> = b.plan.resources.labels.clone().into_iter().collect();
    let (net, len) = subnet.split_once('/').unwrap();
    let req = docker::isolated_network(
        name,
        (net.parse().unwrap(), len.parse().unwrap()),
        None,
        &labels,
    );
    b.backend.client().create_network(req).await.unwrap();
}

/// Attaches container `container` to network `network` (no alias, engine-chosen address).
pub async fn connect_network(b: &Bottle, network: &str, container: &str) {
    b.backend
        .client()
        .connect_network(
            network,
            bollard::models::NetworkConnectRequest {
                container: container.to_string(),
                endpoint_config: None,
            },
        )
        .await
        .unwrap();
}

async fn ensure_upstream_image(b: &DockerBackend) {
    use futures_util::StreamExt;
    let docker = b.client();
    if docker.inspect_image(UPSTREAM_IMAGE).await.is_ok() {
        return;
    }
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("Dockerfile", UPSTREAM_DOCKERFILE),
        ("server.py", UPSTREAM_SERVER),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, path, data.as_bytes()).unwrap();
    }
    let opts = bollard::query_parameters::BuildImageOptionsBuilder::default()
        .t(UPSTREAM_IMAGE)
        .rm(true)
        .build();
    let mut s = docker.build_image(
        opts,
        None,
        Some(bollard::body_full(tar.into_inner().unwrap().into())),
    );
    while let Some(item) = s.next().await {
        item.expect("build upstream image");
    }
}

impl Bottle {
    /// Runs a shell script in the agent as the agent user.
    pub async fn sh(&self, script: &str) -> ExecOutput {
        let argv = vec!["bash".to_string(), "-c".to_string(), script.to_string()];
        tokio::time::timeout(
            Duration::from_secs(120),
            self.backend
                .exec(&self.slug, &self.plan.agent, &argv, false),
        )
        .await
        .expect("exec timed out")
        .expect("exec")
    }

    /// The fake upstream's stdout (its request log).
    pub async fn upstream_log(&self) -> String {
        let name = format!("bot-bottle-{}-upstream", self.slug);
        self.container_log(&name).await
    }

    /// A container's stdout and stderr so far (a fake upstream's request log).
    pub async fn container_log(&self, name: &str) -> String {
        use futures_util::StreamExt;
        let opts = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut s = self.backend.client().logs(name, Some(opts));
        let mut out = String::new();
        while let Some(Ok(c)) = s.next().await {
            out.push_str(&String::from_utf8_lossy(&c.into_bytes()));
        }
        out
    }

    /// The upstream's address on the egress network.
    pub async fn upstream_ip(&self) -> String {
        let name = format!("bot-bottle-{}-upstream", self.slug);
        let c = self
            .backend
            .client()
            .inspect_container(&name, None)
            .await
            .unwrap();
        let nets = c.network_settings.unwrap().networks.unwrap();
        nets.get(&self.plan.resources.egress_network)
            .unwrap()
            .ip_address
            .clone()
            .unwrap()
    }
}

impl Bottle {
    /// Runs a command in the fake upstream container (a machine on the egress side).
    pub async fn upstream_exec(&self, argv: &[&str]) -> ExecOutput {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        use futures_util::StreamExt;
        let name = format!("bot-bottle-{}-upstream", self.slug);
        let docker = self.backend.client();
        let id = docker
            .create_exec(
                &name,
                CreateExecOptions {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(argv.iter().map(|s| s.to_string()).collect()),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id;
        let mut out = ExecOutput {
            exit_code: -1,
            stdout: vec![],
            stderr: vec![],
        };
        if let StartExecResults::Attached { mut output, .. } =
            docker.start_exec(&id, None).await.unwrap()
        {
            while let Some(Ok(o)) = output.next().await {
                out.stdout.extend_from_slice(&o.into_bytes());
            }
        }
        out.exit_code = docker
            .inspect_exec(&id)
            .await
            .unwrap()
            .exit_code
            .unwrap_or(-1);
        out
    }
}

pub const GIT_HOST: &str = "git.example.test";
pub const GIT_IMAGE: &str = "bot-bottle-test/git-upstream:1";
const GIT_DOCKERFILE: &str = r#"FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server git \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 --shell /bin/bash git && mkdir -p /run/sshd
CMD ["/usr/sbin/sshd", "-D", "-e"]
"#;

/// Host-side key material for the sshd git upstream: the gate's identity and the pinned host key.
pub struct GitKeys {
    pub dir: tempfile::TempDir,
    pub identity: PathBuf,
    pub known_hosts: PathBuf,
    pub client_pub: String,
    pub host_key: String,
}

pub fn git_keys() -> GitKeys {
    let dir = tempfile::tempdir().unwrap();
    for name in ["id", "host"] {
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(dir.path().join(name))
            .status()
            .expect("ssh-keygen (apt: openssh-client)");
        assert!(st.success());
    }
    let host_pub = std::fs::read_to_string(dir.path().join("host.pub")).unwrap();
    let mut parts = host_pub.split_whitespace();
    let line = format!(
        "{GIT_HOST} {} {}\n",
        parts.next().unwrap(),
        parts.next().unwrap()
    );
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, line).unwrap();
    GitKeys {
        identity: dir.path().join("id"),
        known_hosts,
        client_pub: std::fs::read_to_string(dir.path().join("id.pub")).unwrap(),
        host_key: std::fs::read_to_string(dir.path().join("host")).unwrap(),
        dir,
    }
}

/// Starts an sshd git upstream (`git@git.example.test:repo.git`, branch `main` with one
/// commit) on the bottle's egress network.
pub async fn start_git_upstream(b: &Bottle, keys: &GitKeys) {
    use futures_util::StreamExt;
    let docker = b.backend.client();
    if docker.inspect_image(GIT_IMAGE).await.is_err() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(GIT_DOCKERFILE.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, "Dockerfile", GIT_DOCKERFILE.as_bytes())
            .unwrap();
        let opts = bollard::query_parameters::BuildImageOptionsBuilder::default()
            .t(GIT_IMAGE)
            .rm(true)
            .build();
        let mut s = docker.build_image(
            opts,
            None,
            Some(bollard::body_full(tar.into_inner().unwrap().into())),
        );
        while let Some(item) = s.next().await {
            item.expect("build git upstream image");
        }
    }
    let name = format!("bot-bottle-{}-git", b.slug);
    let labels: HashMap<String, String> = b.plan.resources.labels.clone().into_iter().collect();
    let body = ContainerCreateBody {
        image: Some(GIT_IMAGE.into()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(b.plan.resources.egress_network.clone()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                b.plan.resources.egress_network.clone(),
                EndpointSettings {
                    aliases: Some(vec![GIT_HOST.into()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body,
        )
        .await
        .unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data, mode, uid) in [
        (
            "etc/ssh/ssh_host_ed25519_key",
            keys.host_key.as_str(),
            0o600,
            0,
        ),
        (
            "home/git/.ssh/authorized_keys",
            keys.client_pub.as_str(),
            0o600,
            1000,
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        tar.append_data(&mut h, path, data.as_bytes()).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o700);
    h.set_uid(1000);
    h.set_gid(1000);
    tar.append_data(&mut h, "home/git/.ssh/", std::io::empty())
        .unwrap();
    docker
        .upload_to_container(
            &name,
            Some(UploadToContainerOptionsBuilder::default().path("/").build()),
            bollard::body_full(tar.into_inner().unwrap().into()),
        )
        .await
        .unwrap();
    docker.start_container(&name, None).await.unwrap();
    let seed = b
        .container_exec(
            &name,
            "git",
            &[
                "sh",
                "-c",
                "set -e; git init -q --bare ~/repo.git; cd /tmp; git init -q w; cd w; \
                 git -c user.name=t -c user.email=t@t commit -q --allow-empty -m init; \
                 git push -q ~/repo.git HEAD:refs/heads/main",
            ],
        )
        .await;
    assert_eq!(seed.exit_code, 0, "{}", seed.stdout_text());
}

impl Bottle {
    /// Runs a command in a container (the fakes) as `user`, output merged.
    pub async fn container_exec(&self, name: &str, user: &str, argv: &[&str]) -> ExecOutput {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        use futures_util::StreamExt;
        let docker = self.backend.client();
        let id = docker
            .create_exec(
                name,
                CreateExecOptions {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    user: Some(user.to_string()),
                    cmd: Some(argv.iter().map(|s| s.to_string()).collect()),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id;
        let mut out = ExecOutput {
            exit_code: -1,
            stdout: vec![],
            stderr: vec![],
        };
        if let StartExecResults::Attached { mut output, .. } =
            docker.start_exec(&id, None).await.unwrap()
        {
            while let Some(Ok(o)) = output.next().await {
                out.stdout.extend_from_slice(&o.into_bytes());
            }
        }
        out.exit_code = docker
            .inspect_exec(&id)
            .await
            .unwrap()
            .exit_code
            .unwrap_or(-1);
        out
    }
}

/// Every labelled resource of a slug (containers and networks), as names.
pub async fn labelled(b: &DockerBackend, slug: &str) -> Vec<String> {
    let st = b.status(slug).await.unwrap();
    let mut v = st.networks.clone();
    if st.agent != bottle_backend::ContainerState::Missing {
        v.push("agent".into());
    }
    if st.sidecar != bottle_backend::ContainerState::Missing {
        v.push("sidecar".into());
    }
    v
}

impl Bottle {
    /// Runs a shell script in the agent as the agent user, allowing it up to `limit` (for
    /// scripts that wait on the operator).
    pub async fn sh_for(&self, script: &str, limit: Duration) -> ExecOutput {
        let argv = vec!["bash".to_string(), "-c".to_string(), script.to_string()];
        tokio::time::timeout(
            limit,
            self.backend
                .exec(&self.slug, &self.plan.agent, &argv, false),
        )
        .await
        .expect("exec timed out")
        .expect("exec")
    }

    /// One call to the bottle's supervise control API from the host, as the operator:
    /// `(status, JSON body)`. Plain HTTP/1.1 over a socket, so the control token never shows up
    /// in a process's argv.
    pub async fn control(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let addr = docker::endpoints(self.index).unwrap().control;
        self.control_at(addr, method, path, body).await
    }

    /// [`Self::control`] at a given address (a port published on the host's loopback).
    pub async fn control_at(
        &self,
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
            token = self.sidecar.supervise.control_token.expose(),
            len = body.len(),
        );
        let raw = tokio::time::timeout(Duration::from_secs(60), async {
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            s.write_all(request.as_bytes()).await?;
            let mut raw = Vec::new();
            s.read_to_end(&mut raw).await?;
            std::io::Result::Ok(raw)
        })
        .await
        .expect("control API call timed out")
        .expect("control API call");
        let raw = String::from_utf8(raw).expect("control API answer is UTF-8");
        let (head, payload) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP head in control API answer: {raw}"));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in control API answer: {head}"));
        let json = serde_json::from_str(payload)
            .unwrap_or_else(|e| panic!("control API body is not JSON ({e}): {payload}"));
        (status, json)
    }
}
