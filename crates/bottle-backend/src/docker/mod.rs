//! The docker backend (the reference backend), on the Engine API through bollard.
//!
//! Layout of one bottle (every resource labelled `bot-bottle.managed=true`,
//! `bot-bottle.slug=<slug>`; containers also `bot-bottle.role=agent|sidecar`):
//! * an **internal network** (`Internal`, `inhibit_ipv4`: no route out and no host address on
//!   its bridge, verified after creation — fail closed) holding the agent alone with the sidecar;
//! * an **egress network** (normal NAT bridge) holding the sidecar only;
//! * the **sidecar** on both with fixed addresses, its config written to its stdin at start,
//!   read-only root, no capabilities, `no-new-privileges`, the bottle's audit and state folders
//!   as its only mounts;
//! * the **agent** on the internal network only, as the provider's non-root user, no
//!   capabilities, `no-new-privileges`, no mounts, no DNS server (the sidecar's name comes from
//!   `/etc/hosts`), kept alive by `sleep infinity` under Docker's init so provisioning and the
//!   agent command run as execs (a second `attach` is a second session).

mod image;
mod io;
mod net;
pub mod provision;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, EndpointIpamConfig, EndpointSettings,
    HostConfig, NetworkConnectRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, InspectNetworkOptions,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use bottle_config::SidecarConfig;
use bottle_plan::{
    AgentPlan, ResourceNames, CONTROL_PORT, HEALTH_PORT, LABEL_MANAGED, LABEL_SLUG, SIDECAR_HOST,
};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::engine;
use crate::{
    AttachIo, Backend, BottleStatus, ContainerState, DownReport, Error, ExecOutput, HostAccess,
    LogSource, Result, UpRequest,
};

pub use image::{
    choose_origin, host_binary_mismatch, sidecar_source_tag, sidecar_tag, SidecarBuild,
    SidecarOrigin, SIDECAR_DOCKERFILE,
};
pub use net::{
    control_url, egress_subnet, endpoints, internal_subnet, isolated_network, sidecar_egress_ip,
    sidecar_internal_ip, verify_no_host_address, INDEX_KIND, MAX_INDEX,
};

/// Label naming a container's role in its bottle.
pub const LABEL_ROLE: &str = "bot-bottle.role";
/// Where the bottle's audit folder is mounted in the sidecar (the config's `audit_dir`).
pub const SIDECAR_AUDIT_DIR: &str = "/var/lib/bot-bottle/audit";
/// Where the bottle's sidecar state folder is mounted in the sidecar (the config's `state_dir`).
pub const SIDECAR_STATE_DIR: &str = "/var/lib/bot-bottle/state";
/// The agent's fixed address suffix on the internal network.
const AGENT_HOST_OCTET: u8 = 3;
/// How long the sidecar may take to become healthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// The docker backend.
#[derive(Clone)]
pub struct DockerBackend {
    docker: Docker,
    sidecar_binary: Option<PathBuf>,
    /// How the sidecar image gets its binary; `None`: `BOT_BOTTLE_SIDECAR_BUILD`.
    sidecar_build: Option<SidecarBuild>,
    /// Whether the host reaches the sidecar's control API and health endpoint through ports
    /// published on its loopback instead of the egress bridge address (see
    /// [`Self::with_published_operator_ports`]).
    publish_operator_ports: bool,
    /// Per bottle, the env values that come from the host or the terminal (`${VAR}`,
    /// `?prompt`): handed to each agent process through the exec API, never put in the
    /// container's config, which the engine keeps on disk.
    session_env: std::sync::Arc<std::sync::Mutex<HashMap<String, Vec<String>>>>,
}

impl DockerBackend {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket) and negotiates the
    /// API version down to the engine's.
    pub async fn connect() -> Result<Self> {
        let docker = Docker::connect_with_defaults().map_err(Error::Connect)?;
        let docker = docker.negotiate_version().await.map_err(Error::Connect)?;
        Ok(Self {
            docker,
            sidecar_binary: None,
            sidecar_build: None,
            publish_operator_ports: !cfg!(target_os = "linux"),
            session_env: Default::default(),
        })
    }

    /// Uses this `bottle-sidecar` binary for the sidecar image instead of
    /// [`crate::find_sidecar_binary`].
    pub fn with_sidecar_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.sidecar_binary = Some(path.into());
        self
    }

    /// Publishes the sidecar's control and health ports on the host's loopback (ephemeral
    /// ports, read back after each start) for the host to reach them there. The default off
    /// Linux, where the engine runs in a VM (Docker Desktop) and a bridge address is not routed
    /// to the host; on Linux the host reaches the egress bridge address directly, which spares
    /// the engine a port proxy per port at every start.
    pub fn with_published_operator_ports(mut self, publish: bool) -> Self {
        self.publish_operator_ports = publish;
        self
    }

    /// Chooses how the sidecar image gets its binary instead of `BOT_BOTTLE_SIDECAR_BUILD`.
    pub fn with_sidecar_build(mut self, build: SidecarBuild) -> Self {
        self.sidecar_build = Some(build);
        self
    }

    /// Where the sidecar image's binary comes from (see [`image::choose_origin`]): a binary
    /// given with [`Self::with_sidecar_binary`] wins; otherwise the mode decides, asking the
    /// engine its platform when the host binary might do.
    pub async fn sidecar_origin(&self) -> Result<SidecarOrigin> {
        let build = match self.sidecar_build {
            Some(b) => b,
            None => SidecarBuild::from_env()?,
        };
        if build != SidecarBuild::Source {
            // A binary named outright (here or in BOT_BOTTLE_SIDECAR_BIN) is used as it is: on
            // macOS that is how a cross-built Linux binary is brought.
            if let Some(p) = &self.sidecar_binary {
                return Ok(SidecarOrigin::Binary(p.clone()));
            }
            if std::env::var_os("BOT_BOTTLE_SIDECAR_BIN").is_some() {
                return crate::find_sidecar_binary().map(SidecarOrigin::Binary);
            }
        }
        let mismatch = match build {
            SidecarBuild::Auto => {
                let v = self
                    .docker
                    .version()
                    .await
                    .map_err(engine("version".to_string()))?;
                host_binary_mismatch(
                    std::env::consts::OS,
                    std::env::consts::ARCH,
                    v.os.as_deref().unwrap_or("linux"),
                    v.arch.as_deref().unwrap_or_default(),
                )
            }
            SidecarBuild::Binary | SidecarBuild::Source => None,
        };
        choose_origin(build, mismatch, crate::find_sidecar_binary())
    }

    /// Builds (or reuses) the sidecar image; returns its tag.
    pub async fn ensure_sidecar_image(
        &self,
        labels: &HashMap<String, String>,
        progress: bool,
    ) -> Result<String> {
        let origin = self.sidecar_origin().await?;
        // The tag, and the origin label that tells which older images this one replaces.
        let (tag, origin_label) = match &origin {
            SidecarOrigin::Binary(b) => (image::sidecar_tag(b)?, b.display().to_string()),
            SidecarOrigin::Source => (image::sidecar_source_tag(), "source".to_string()),
        };
        let context = || match &origin {
            SidecarOrigin::Binary(b) => image::sidecar_context(b),
            SidecarOrigin::Source => image::sidecar_source_context(),
        };
        let mut labels = labels.clone();
        labels.insert(image::LABEL_SIDECAR_ORIGIN.into(), origin_label.clone());
        if image::ensure(&self.docker, &tag, context, &labels, progress).await? {
            image::prune_sidecar_images(&self.docker, &origin_label, &tag).await;
            if origin == SidecarOrigin::Source {
                image::prune_build_stage(&self.docker).await;
            }
        }
        Ok(tag)
    }

    /// The engine client (tests and `doctor` use it for checks of their own).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    fn labels(slug: &str, role: Option<&str>) -> HashMap<String, String> {
        let mut l: HashMap<String, String> =
            ResourceNames::for_slug(slug).labels.into_iter().collect();
        if let Some(r) = role {
            l.insert(LABEL_ROLE.into(), r.into());
        }
        l
    }

    /// Builds (or reuses) the sidecar and agent images.
    pub async fn ensure_images(&self, req: &UpRequest<'_>) -> Result<String> {
        let labels = Self::labels(&req.plan.slug, None);
        let plan = req.plan;
        let sidecar = self.ensure_sidecar_image(&labels, req.progress);
        let agent = image::ensure(
            &self.docker,
            &plan.image.tag,
            || image::agent_context(&plan.image.dockerfile, plan.image.context_dir.as_deref()),
            &labels,
            req.progress,
        );
        let (sidecar_tag, _) = tokio::try_join!(sidecar, agent)?;
        Ok(sidecar_tag)
    }

    async fn create_sidecar(&self, req: &UpRequest<'_>, image: &str) -> Result<()> {
        let r = &req.plan.resources;
        for dir in [req.audit_dir, req.state_dir] {
            std::fs::create_dir_all(dir).map_err(|source| Error::HostDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        // Run as the owner of the bottle's folders so the sidecar can write them without any
        // capability (and files it writes stay the user's).
        let owner = {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(req.audit_dir).map_err(|source| Error::HostDir {
                path: req.audit_dir.to_path_buf(),
                source,
            })?;
            format!("{}:{}", m.uid(), m.gid())
        };
        let egress_ip = net::sidecar_egress_ip(req.index)?;
        let endpoint = |ip: std::net::Ipv4Addr| EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some(ip.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            user: Some(owner),
            env: Some(vec![format!("HOME={SIDECAR_STATE_DIR}")]),
            attach_stdin: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(true),
            tty: Some(false),
            labels: Some(Self::labels(&req.plan.slug, Some("sidecar"))),
            exposed_ports: self
                .publish_operator_ports
                .then(|| operator_ports().collect()),
            host_config: Some(HostConfig {
                binds: Some(vec![
                    format!("{}:{SIDECAR_AUDIT_DIR}:rw", req.audit_dir.display()),
                    format!("{}:{SIDECAR_STATE_DIR}:rw", req.state_dir.display()),
                ]),
                network_mode: Some(r.egress_network.clone()),
                port_bindings: self.publish_operator_ports.then(|| {
                    operator_ports()
                        .map(|p| {
                            let binding = PortBinding {
                                host_ip: Some("127.0.0.1".into()),
                                // Empty: the engine picks a free port.
                                host_port: Some(String::new()),
                            };
                            (p, Some(vec![binding]))
                        })
                        .collect()
                }),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                init: Some(true),
                readonly_rootfs: Some(true),
                tmpfs: Some(HashMap::from([(
                    "/tmp".to_string(),
                    "rw,nosuid,nodev".to_string(),
                )])),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    r.egress_network.clone(),
                    endpoint(egress_ip),
                )])),
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default()
            .name(&r.sidecar_container)
            .build();
        self.docker
            .create_container(Some(opts), body)
            .await
            .map_err(engine(format!("create container {}", r.sidecar_container)))?;
        Ok(())
    }

    /// Joins the (created, not yet started) sidecar to the internal network at its fixed address.
    async fn connect_sidecar_internal(&self, req: &UpRequest<'_>) -> Result<()> {
        let r = &req.plan.resources;
        let internal_ip = net::sidecar_internal_ip(req.index)?;
        let endpoint = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some(internal_ip.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.docker
            .connect_network(
                &r.internal_network,
                NetworkConnectRequest {
                    container: r.sidecar_container.clone(),
                    endpoint_config: Some(endpoint),
                },
            )
            .await
            .map_err(engine(format!(
                "connect {} to {}",
                r.sidecar_container, r.internal_network
            )))?;
        Ok(())
    }

    /// Starts the sidecar and writes its config to its stdin (then closes it), so the config
    /// never touches disk, argv or an image layer.
    async fn start_sidecar(&self, name: &str, config: &SidecarConfig) -> Result<()> {
        let json = config.to_json().map_err(|e| Error::Setup {
            step: "serialise sidecar config".into(),
            code: -1,
            output: e.to_string(),
        })?;
        let opts = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stream(true)
            .stdout(false)
            .stderr(false)
            .build();
        let mut attached = self
            .docker
            .attach_container(name, Some(opts))
            .await
            .map_err(engine(format!("attach to {name}")))?;
        self.docker
            .start_container(name, None)
            .await
            .map_err(engine(format!("start {name}")))?;
        let write = async {
            attached.input.write_all(&json).await?;
            attached.input.flush().await?;
            attached.input.shutdown().await
        };
        write.await.map_err(|e| Error::Setup {
            step: "write the sidecar config to its stdin".into(),
            code: -1,
            output: e.to_string(),
        })?;
        Ok(())
    }

    async fn container_state(&self, name: &str) -> Result<ContainerState> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => {
                let st = c.state.unwrap_or_default();
                Ok(match st.status {
                    Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
                    Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
                    Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
                    Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
                    Some(ContainerStateStatusEnum::EXITED) => {
                        ContainerState::Exited { code: st.exit_code }
                    }
                    _ => ContainerState::Dead,
                })
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(ContainerState::Missing),
            Err(e) => Err(engine(format!("inspect {name}"))(e)),
        }
    }

    async fn log_tail(&self, name: &str, lines: usize) -> String {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut s = self.docker.logs(name, Some(opts));
        let mut out = Vec::new();
        while let Some(Ok(chunk)) = s.next().await {
            out.extend_from_slice(&chunk.into_bytes());
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn wait_healthy(&self, name: &str, addr: SocketAddr) -> Result<()> {
        let deadline = tokio::time::Instant::now() + HEALTH_TIMEOUT;
        let mut tries: u32 = 0;
        loop {
            if probe_health(addr).await {
                return Ok(());
            }
            tries += 1;
            if tries >= 25 {
                tries = 0;
                let st = self.container_state(name).await?;
                if st != ContainerState::Running {
                    return Err(Error::SidecarUnhealthy {
                        reason: format!("the sidecar container is {st:?}"),
                        log: self.log_tail(name, 30).await,
                    });
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::SidecarUnhealthy {
                    reason: format!("no answer on http://{addr}/healthz within {HEALTH_TIMEOUT:?}"),
                    log: self.log_tail(name, 30).await,
                });
            }
            // Short: the sidecar is usually ready within tens of milliseconds of its start.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn create_agent(&self, req: &UpRequest<'_>) -> Result<()> {
        let r = &req.plan.resources;
        let agent = &req.plan.agent;
        let sidecar_ip = net::sidecar_internal_ip(req.index)?;
        let agent_ip = {
            let o = sidecar_ip.octets();
            std::net::Ipv4Addr::new(o[0], o[1], o[2], AGENT_HOST_OCTET)
        };
        let (env, session) = split_env(req);
        self.remember_env(&req.plan.slug, session);
        let body = ContainerCreateBody {
            image: Some(req.plan.image.tag.clone()),
            user: Some(agent.user.clone()),
            entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
            cmd: Some(vec![]),
            env: Some(env),
            labels: Some(Self::labels(&req.plan.slug, Some("agent"))),
            host_config: Some(HostConfig {
                network_mode: Some(r.internal_network.clone()),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                init: Some(true),
                extra_hosts: Some(vec![format!("{SIDECAR_HOST}:{sidecar_ip}")]),
                // No resolver: the only name the agent needs is in /etc/hosts; every other
                // name is resolved by the proxy. Docker's embedded DNS still answers on
                // 127.0.0.11, so the external forwarder is pointed at a closed local port.
                dns: Some(vec!["127.0.0.1".into()]),
                dns_search: Some(vec![]),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    r.internal_network.clone(),
                    EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some(agent_ip.to_string()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default()
            .name(&r.agent_container)
            .build();
        self.docker
            .create_container(Some(opts), body)
            .await
            .map_err(engine(format!("create container {}", r.agent_container)))?;
        Ok(())
    }

    async fn start_agent(&self, name: &str) -> Result<()> {
        self.docker
            .start_container(name, None)
            .await
            .map_err(engine(format!("start {name}")))
    }

    async fn run_step(
        &self,
        container: &str,
        step: &str,
        argv: Vec<String>,
        user: &str,
        workdir: Option<&str>,
    ) -> Result<ExecOutput> {
        let out = io::capture(
            &self.docker,
            io::ExecSpec {
                container,
                argv: &argv,
                user,
                workdir,
                env: Vec::new(),
            },
        )
        .await?;
        if out.exit_code != 0 {
            let mut text = out.stderr_text();
            text.push_str(&out.stdout_text());
            let tail: String = text
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(Error::Setup {
                step: step.to_string(),
                code: out.exit_code,
                output: tail.trim().to_string(),
            });
        }
        Ok(out)
    }

    /// Starts the created agent container and writes its files (see [`provision`]) with
    /// archive API calls only, no exec. What the tar needs from the image is read while the
    /// container starts (on a container that is not running, every archive call mounts its
    /// file system, which costs more than waiting for the start).
    async fn start_and_provision(&self, req: &UpRequest<'_>) -> Result<()> {
        let agent = &req.plan.agent;
        let c = req.plan.resources.agent_container.as_str();
        let git_path = provision::gitconfig_path(agent);
        // The image's ~/.gitconfig matters only when rules go into it and the provider does
        // not write that file itself.
        let read_gitconfig =
            !agent.git_insteadof.is_empty() && !agent.files.iter().any(|f| f.path == git_path);
        let probes = provision::probe_paths(agent);
        let (passwd, bundle, gitconfig, existing, ()) = tokio::try_join!(
            self.read_file(c, "/etc/passwd"),
            self.read_file(c, provision::SYSTEM_BUNDLE),
            async {
                match read_gitconfig {
                    true => self.read_file(c, &git_path.display().to_string()).await,
                    false => Ok(None),
                }
            },
            futures_util::future::try_join_all(probes.iter().map(|p| async move {
                Ok::<_, Error>(self.path_exists(c, p).await?.then_some(p.as_path()))
            })),
            self.start_agent(c),
        )?;
        let ids = passwd
            .as_deref()
            .and_then(|p| provision::ids_from_passwd(p, &agent.user))
            .ok_or_else(|| Error::Setup {
                step: format!("look up user {} in the image's /etc/passwd", agent.user),
                code: -1,
                output: "no such user: the provider's `user` must exist in its image".into(),
            })?;
        let existing: Vec<&Path> = existing.into_iter().flatten().collect();
        let missing = provision::missing_dirs(agent, |p| existing.contains(&p));
        let tar = provision::guest_tar(
            agent,
            &req.sidecar.egress.ca.cert_pem,
            provision::FromImage {
                ids,
                bundle: bundle.as_deref(),
                gitconfig: gitconfig.as_deref(),
                missing_dirs: &missing,
            },
        )?;
        let opts = UploadToContainerOptionsBuilder::default().path("/").build();
        self.docker
            .upload_to_container(c, Some(opts), bollard::body_full(Bytes::from(tar)))
            .await
            .map_err(engine(format!("copy files into {c}")))?;
        Ok(())
    }

    /// Runs the provider's setup commands in the started agent container.
    async fn run_setup(&self, req: &UpRequest<'_>) -> Result<()> {
        let agent = &req.plan.agent;
        let c = req.plan.resources.agent_container.as_str();
        let workdir = agent.workdir.display().to_string();
        for s in &agent.setup {
            let user = if s.as_root {
                "root"
            } else {
                agent.user.as_str()
            };
            let step = s.argv.first().cloned().unwrap_or_default();
            self.run_step(
                c,
                &format!("setup: {step}"),
                s.argv.clone(),
                user,
                Some(&workdir),
            )
            .await?;
        }
        Ok(())
    }

    /// Whether a path exists in a container (created or running), through the archive API.
    async fn path_exists(&self, container: &str, path: &Path) -> Result<bool> {
        let shown = path.display().to_string();
        let opts = bollard::query_parameters::ContainerArchiveInfoOptionsBuilder::default()
            .path(&shown)
            .build();
        match self
            .docker
            .get_container_archive_info(container, Some(opts))
            .await
        {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(engine(format!("look up {shown} in {container}"))(e)),
        }
    }

    /// Reads one regular file out of a container through the archive API (`None` if absent).
    async fn read_file(&self, container: &str, path: &str) -> Result<Option<String>> {
        let opts = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut s = self.docker.download_from_container(container, Some(opts));
        let mut raw = Vec::new();
        while let Some(chunk) = s.next().await {
            match chunk {
                Ok(b) => raw.extend_from_slice(&b),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Ok(None),
                Err(e) => return Err(engine(format!("read {path} in {container}"))(e)),
            }
        }
        let mut archive = tar::Archive::new(raw.as_slice());
        let entries = archive.entries().map_err(Error::Tar)?;
        for entry in entries {
            let mut entry = entry.map_err(Error::Tar)?;
            if entry.header().entry_type().is_file() {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).map_err(Error::Tar)?;
                return Ok(Some(text));
            }
        }
        Ok(None)
    }

    async fn containers(
        &self,
        slug: Option<&str>,
    ) -> Result<Vec<bollard::models::ContainerSummary>> {
        let label = match slug {
            Some(s) => format!("{LABEL_SLUG}={s}"),
            None => format!("{LABEL_MANAGED}=true"),
        };
        let filters = HashMap::from([("label".to_string(), vec![label])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(opts))
            .await
            .map_err(engine("list containers"))
    }

    async fn networks(&self, slug: Option<&str>) -> Result<Vec<bollard::models::Network>> {
        let label = match slug {
            Some(s) => format!("{LABEL_SLUG}={s}"),
            None => format!("{LABEL_MANAGED}=true"),
        };
        let filters = HashMap::from([("label".to_string(), vec![label])]);
        let opts = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        self.docker
            .list_networks(Some(opts))
            .await
            .map_err(engine("list networks"))
    }

    /// Kills a bottle's sidecar and leaves its agent running: `doctor` uses it to show the
    /// agent then has no way out at all (the bottle fails closed).
    pub async fn kill_sidecar(&self, slug: &str) -> Result<()> {
        let name = ResourceNames::for_slug(slug).sidecar_container;
        self.docker
            .kill_container(
                &name,
                None::<bollard::query_parameters::KillContainerOptions>,
            )
            .await
            .map_err(engine(format!("kill {name}")))
    }

    async fn start_existing(&self, req: &UpRequest<'_>) -> Result<HostAccess> {
        let r = &req.plan.resources;
        let (net, len) = net::internal_subnet(req.index)?;
        net::verify_no_host_address(&r.internal_network, (net, len))?;
        self.start_sidecar(&r.sidecar_container, req.sidecar)
            .await?;
        self.reach_sidecar(req).await
    }

    /// How the host reaches the started sidecar (its egress address, or the ports the engine
    /// published on loopback for this start), once its health endpoint answers there.
    async fn reach_sidecar(&self, req: &UpRequest<'_>) -> Result<HostAccess> {
        let name = &req.plan.resources.sidecar_container;
        let (access, health) = if self.publish_operator_ports {
            let c = self
                .docker
                .inspect_container(name, None)
                .await
                .map_err(engine(format!("inspect {name}")))?;
            let ports = c.network_settings.and_then(|n| n.ports).unwrap_or_default();
            let published = |port: u16| -> Result<SocketAddr> {
                ports
                    .get(&format!("{port}/tcp"))
                    .and_then(|b| b.as_ref())
                    .into_iter()
                    .flatten()
                    .filter(|b| b.host_ip.as_deref() == Some("127.0.0.1"))
                    .find_map(|b| b.host_port.as_deref()?.parse::<u16>().ok())
                    .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
                    .ok_or_else(|| Error::Setup {
                        step: format!("read the host port published for {name}'s port {port}"),
                        code: -1,
                        output: format!("the engine reports {ports:?}"),
                    })
            };
            let control = published(CONTROL_PORT)?;
            let access = HostAccess {
                control_url: format!("http://{control}"),
                sidecar_ip: control.ip(),
            };
            (access, published(HEALTH_PORT)?)
        } else {
            let access = HostAccess {
                control_url: net::control_url(req.index)?,
                sidecar_ip: std::net::IpAddr::V4(net::sidecar_egress_ip(req.index)?),
            };
            (access, req.sidecar.health_listen)
        };
        self.wait_healthy(name, health).await?;
        Ok(access)
    }
}

/// The sidecar ports the host uses (supervise control API, health), as the engine names them.
fn operator_ports() -> impl Iterator<Item = String> {
    [CONTROL_PORT, HEALTH_PORT]
        .into_iter()
        .map(|p| format!("{p}/tcp"))
}

/// One `GET /healthz`; true on a 200.
async fn probe_health(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: sidecar\r\n\r\n")
            .await?;
        let mut buf = [0u8; 16];
        let mut n = 0;
        while n < buf.len() {
            let m = s.read(&mut buf[n..]).await?;
            if m == 0 {
                break;
            }
            n += m;
        }
        Ok::<bool, std::io::Error>(
            buf[..n].starts_with(b"HTTP/1.1 200") || buf[..n].starts_with(b"HTTP/1.0 200"),
        )
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}

fn role_of(c: &bollard::models::ContainerSummary) -> Option<&str> {
    c.labels.as_ref()?.get(LABEL_ROLE).map(String::as_str)
}

fn summary_state(c: &bollard::models::ContainerSummary) -> ContainerState {
    use bollard::models::ContainerSummaryStateEnum as S;
    match c.state {
        Some(S::RUNNING) => ContainerState::Running,
        Some(S::CREATED) => ContainerState::Created,
        Some(S::PAUSED) => ContainerState::Paused,
        Some(S::RESTARTING) => ContainerState::Restarting,
        Some(S::EXITED) => ContainerState::Exited { code: None },
        _ => ContainerState::Dead,
    }
}

/// Splits the agent env: literals and placeholders go in the container's config; values from
/// the host env or the terminal stay in memory for the exec API only.
fn split_env(req: &UpRequest<'_>) -> (Vec<String>, Vec<String>) {
    use bottle_plan::EnvSource;
    let external: std::collections::HashSet<&str> = req
        .plan
        .agent
        .env
        .iter()
        .filter(|e| matches!(e.value, EnvSource::HostVar { .. } | EnvSource::Prompt))
        .map(|e| e.name.as_str())
        .collect();
    let mut config = Vec::new();
    let mut session = Vec::new();
    for (k, v) in req.agent_env {
        let pair = format!("{k}={}", v.expose());
        if external.contains(k.as_str()) {
            session.push(pair);
        } else {
            config.push(pair);
        }
    }
    (config, session)
}

impl DockerBackend {
    fn remember_env(&self, slug: &str, env: Vec<String>) {
        if let Ok(mut m) = self.session_env.lock() {
            m.insert(slug.to_string(), env);
        }
    }

    fn session_env(&self, slug: &str) -> Vec<String> {
        self.session_env
            .lock()
            .ok()
            .and_then(|m| m.get(slug).cloned())
            .unwrap_or_default()
    }

    /// One sweep of everything labelled with `slug`: containers, then networks.
    async fn down_once(&self, slug: &str) -> Result<DownReport> {
        let mut report = DownReport::default();
        for c in self.containers(Some(slug)).await? {
            let Some(id) = c.id.as_deref() else { continue };
            let opts = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match self.docker.remove_container(id, Some(opts)).await {
                Ok(())
                | Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => return Err(engine(format!("remove container {id}"))(e)),
            }
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_else(|| id.to_string());
            report.containers.push(name);
        }
        for n in self.networks(Some(slug)).await? {
            let Some(id) = n.id.as_deref() else { continue };
            // Anything else still attached (e.g. a test's fake upstream) would keep the network
            // alive: disconnect it first.
            if let Ok(info) = self
                .docker
                .inspect_network(id, None::<InspectNetworkOptions>)
                .await
            {
                for cid in info.containers.unwrap_or_default().into_keys() {
                    let _ = self
                        .docker
                        .disconnect_network(
                            id,
                            bollard::models::NetworkDisconnectRequest {
                                container: cid,
                                force: Some(true),
                            },
                        )
                        .await;
                }
            }
            match self.docker.remove_network(id).await {
                Ok(())
                | Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => return Err(engine(format!("remove network {id}"))(e)),
            }
            report
                .networks
                .push(n.name.clone().unwrap_or_else(|| id.to_string()));
        }
        Ok(report)
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn up(&self, req: UpRequest<'_>) -> Result<HostAccess> {
        let r = &req.plan.resources;
        let sidecar_image = self.ensure_images(&req).await?;
        let labels = Self::labels(&req.plan.slug, None);
        // Two pipelines, each container created as soon as its own network exists: the agent's
        // needs the internal network; the sidecar is created on the egress network and joins
        // the internal one (when that exists) before it starts. The sidecar's addresses are
        // fixed in advance, so the agent is provisioned (which needs no network) while the
        // sidecar starts.
        // `join!`, not `try_join!`: an early error must not drop the other pipeline's request
        // mid-flight, or the engine could create a resource after a cleanup has listed them.
        let (internal_done, mut internal_ready) = tokio::sync::watch::channel(None::<bool>);
        let agent = async {
            let created =
                net::create_internal(&self.docker, &r.internal_network, req.index, &labels).await;
            let _ = internal_done.send(Some(created.is_ok()));
            created?;
            self.create_agent(&req).await?;
            self.start_and_provision(&req).await?;
            self.run_setup(&req).await
        };
        let sidecar = async {
            net::create_egress(&self.docker, &r.egress_network, req.index, &labels).await?;
            self.create_sidecar(&req, &sidecar_image).await?;
            let internal_ok = internal_ready
                .wait_for(Option::is_some)
                .await
                .map(|v| *v == Some(true))
                .unwrap_or(false);
            if !internal_ok {
                // The agent pipeline reports why.
                return Ok(None);
            }
            self.connect_sidecar_internal(&req).await?;
            self.start_existing(&req).await.map(Some)
        };
        let (agent, sidecar) = tokio::join!(agent, sidecar);
        agent?;
        sidecar?.ok_or_else(|| Error::Setup {
            step: "create the internal network".into(),
            code: -1,
            output: "failed without an error (report a bug)".into(),
        })
    }

    async fn attach(
        &self,
        slug: &str,
        agent: &AgentPlan,
        command: &[String],
        io: AttachIo,
    ) -> Result<i64> {
        let names = ResourceNames::for_slug(slug);
        let workdir = agent.workdir.display().to_string();
        let spec = io::ExecSpec {
            container: &names.agent_container,
            argv: command,
            user: &agent.user,
            workdir: Some(&workdir),
            env: self.session_env(slug),
        };
        match io {
            AttachIo::Terminal => io::terminal(&self.docker, spec).await,
            AttachIo::Pipes => io::pipes(&self.docker, spec).await,
        }
    }

    async fn exec(
        &self,
        slug: &str,
        agent: &AgentPlan,
        argv: &[String],
        as_root: bool,
    ) -> Result<ExecOutput> {
        let names = ResourceNames::for_slug(slug);
        let workdir = agent.workdir.display().to_string();
        io::capture(
            &self.docker,
            io::ExecSpec {
                container: &names.agent_container,
                argv,
                user: if as_root { "root" } else { &agent.user },
                workdir: Some(&workdir),
                env: self.session_env(slug),
            },
        )
        .await
    }

    async fn stop(&self, slug: &str) -> Result<()> {
        // Both containers stop at once: the agent's init and the sidecar exit on SIGTERM.
        let running: Vec<String> = self
            .containers(Some(slug))
            .await?
            .into_iter()
            .filter(|c| summary_state(c) == ContainerState::Running)
            .filter_map(|c| c.id)
            .collect();
        let stops = running.iter().map(|id| async move {
            let opts = StopContainerOptionsBuilder::default().t(5).build();
            self.docker
                .stop_container(id, Some(opts))
                .await
                .map_err(engine(format!("stop {id}")))
        });
        futures_util::future::try_join_all(stops).await?;
        Ok(())
    }

    async fn resume(&self, req: UpRequest<'_>) -> Result<HostAccess> {
        self.remember_env(&req.plan.slug, split_env(&req).1);
        let r = &req.plan.resources;
        for (name, what) in [
            (&r.sidecar_container, "sidecar"),
            (&r.agent_container, "agent"),
        ] {
            if self.container_state(name).await? == ContainerState::Missing {
                return Err(Error::NotFound {
                    slug: req.plan.slug.clone(),
                    what: format!("the {what} container"),
                });
            }
        }
        let access = if self.container_state(&r.sidecar_container).await? == ContainerState::Running
        {
            // A running sidecar already has its config; nothing to hand over again.
            self.reach_sidecar(&req).await?
        } else {
            self.start_existing(&req).await?
        };
        if self.container_state(&r.agent_container).await? != ContainerState::Running {
            self.docker
                .start_container(&r.agent_container, None)
                .await
                .map_err(engine(format!("start {}", r.agent_container)))?;
        }
        Ok(access)
    }

    async fn down(&self, slug: &str) -> Result<DownReport> {
        // A start killed mid-way can leave engine requests in flight that land after a first
        // sweep (a container or network created a moment later): sweep until one finds nothing.
        let mut report = DownReport::default();
        for pass in 0..6 {
            if pass > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            let swept = self.down_once(slug).await?;
            if swept.containers.is_empty() && swept.networks.is_empty() {
                break;
            }
            report.containers.extend(swept.containers);
            report.networks.extend(swept.networks);
        }
        Ok(report)
    }

    async fn status(&self, slug: &str) -> Result<BottleStatus> {
        let mut st = BottleStatus {
            slug: slug.to_string(),
            agent: ContainerState::Missing,
            sidecar: ContainerState::Missing,
            networks: Vec::new(),
        };
        for c in self.containers(Some(slug)).await? {
            match role_of(&c) {
                Some("agent") => st.agent = summary_state(&c),
                Some("sidecar") => st.sidecar = summary_state(&c),
                _ => {}
            }
        }
        st.networks = self
            .networks(Some(slug))
            .await?
            .into_iter()
            .filter_map(|n| n.name)
            .collect();
        st.networks.sort();
        Ok(st)
    }

    fn set_session_env(&self, slug: &str, env: &[(String, bottle_config::Secret)]) {
        let pairs = env
            .iter()
            .map(|(k, v)| format!("{k}={}", v.expose()))
            .collect();
        self.remember_env(slug, pairs);
    }

    async fn indexes_in_use(&self) -> Result<std::collections::BTreeSet<u32>> {
        let all = self
            .docker
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .map_err(engine("list networks"))?;
        Ok(all
            .iter()
            .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
            .flatten()
            .filter_map(|c| net::index_of_subnet(c.subnet.as_deref()?))
            .collect())
    }

    async fn list(&self) -> Result<Vec<BottleStatus>> {
        let mut by_slug: std::collections::BTreeMap<String, BottleStatus> = Default::default();
        let slug_of = |labels: Option<&HashMap<String, String>>| {
            labels.and_then(|l| l.get(LABEL_SLUG)).cloned()
        };
        let entry = |m: &mut std::collections::BTreeMap<String, BottleStatus>, slug: String| {
            m.entry(slug.clone())
                .or_insert_with(|| BottleStatus {
                    slug,
                    agent: ContainerState::Missing,
                    sidecar: ContainerState::Missing,
                    networks: Vec::new(),
                })
                .clone()
        };
        for c in self.containers(None).await? {
            let Some(slug) = slug_of(c.labels.as_ref()) else {
                continue;
            };
            let mut st = entry(&mut by_slug, slug.clone());
            match role_of(&c) {
                Some("agent") => st.agent = summary_state(&c),
                Some("sidecar") => st.sidecar = summary_state(&c),
                _ => {}
            }
            by_slug.insert(slug, st);
        }
        for n in self.networks(None).await? {
            let Some(slug) = slug_of(n.labels.as_ref()) else {
                continue;
            };
            let mut st = entry(&mut by_slug, slug.clone());
            if let Some(name) = n.name {
                st.networks.push(name);
                st.networks.sort();
            }
            by_slug.insert(slug, st);
        }
        Ok(by_slug.into_values().collect())
    }

    async fn logs(
        &self,
        slug: &str,
        source: LogSource,
        follow: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<()> {
        let names = ResourceNames::for_slug(slug);
        let name = match source {
            LogSource::Sidecar => names.sidecar_container,
            LogSource::Agent => names.agent_container,
        };
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .build();
        let mut s = self.docker.logs(&name, Some(opts));
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(engine(format!("logs of {name}")))?;
            out.write_all(&chunk.into_bytes()).map_err(Error::Io)?;
        }
        out.flush().map_err(Error::Io)
    }
}

/// Path helper for tests and callers: where a host bottle folder's audit/state go.
pub fn sidecar_mounts(audit: &Path, state: &Path) -> [(PathBuf, &'static str); 2] {
    [
        (audit.to_path_buf(), SIDECAR_AUDIT_DIR),
        (state.to_path_buf(), SIDECAR_STATE_DIR),
    ]
}
