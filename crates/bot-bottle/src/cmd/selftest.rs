//! `doctor`'s fail-closed self-test: brings up a real throwaway bottle on the docker backend
//! (the same `launch` as `start`, with a tiny probe provider built from the local
//! `debian:bookworm-slim`, no package downloads), probes from inside the agent that every way
//! out except the proxy is shut and that the proxy refuses what no route allows, then kills the
//! sidecar and checks the agent is left with no way out at all. The bottle is always torn down.
//!
//! The probes need only bash, coreutils and getent (all in Debian's base image): TCP through
//! bash's `/dev/tcp`, HTTP by writing the request line by hand. Nothing probed is outside this
//! machine: the addresses tried are the bottle's own bridges, the host's docker0 gateway and
//! the link-local metadata address, which must fail without a packet leaving the host.

use std::io::Write;
use std::path::{Path, PathBuf};

use bottle_backend::Backend;
use bottle_manifest::BackendKind;
use bottle_state::Home;

use super::lifecycle;
use super::start::{launch, Launch, Launched};

const PROVIDER_YAML: &str = r#"# bot-bottle doctor's probe provider (written by `bot-bottle doctor`, removed after).
name: doctor-probe
description: "bash in Debian, for bot-bottle doctor's self-test"
user: agent
home: /home/agent
command: [sleep, infinity]
"#;

const DOCKERFILE: &str = "FROM debian:bookworm-slim\n\
RUN useradd --create-home --uid 1000 --shell /bin/bash agent\n\
USER agent\n\
WORKDIR /home/agent\n";

const MANIFEST: &str = "version: 1\nname: doctor\nagent:\n  provider: ./provider\n";

/// One probe's result: its name and either what it saw (pass) or why it failed.
pub struct Probe {
    pub name: String,
    pub result: anyhow::Result<String>,
}

/// `tcp HOST PORT` in the probes: prints `connected`, `refused` or `unreachable` (no route,
/// timeout, anything else) and never fails the script.
const TCP_FN: &str = r#"tcp() {
  out=$(timeout 4 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>&1) && { echo connected; return; }
  case "$out" in *refused*) echo refused ;; *) echo unreachable ;; esac
}
"#;

/// The proxy's `host:port` from the agent's own `HTTPS_PROXY`, then a raw HTTP exchange.
const PROXY_FN: &str = r#"proxy_ask() {
  p=${HTTPS_PROXY:-${https_proxy:-}}
  [ -n "$p" ] || { echo "HTTPS_PROXY is not set in the agent"; exit 1; }
  p=${p#http://}; p=${p%/}
  exec 3<>"/dev/tcp/${p%:*}/${p##*:}" || { echo "cannot connect to the proxy at $p"; exit 1; }
  printf '%s' "$1" >&3
  # The status line and headers only: a CONNECT refusal need not close the connection.
  while IFS= read -r -t 10 line <&3; do
    line=${line%$'\r'}; printf '%s\n' "$line"; [ -n "$line" ] || break
  done > /tmp/.doctor-answer
  exec 3<&-
}
"#;

fn probes(index: u32) -> anyhow::Result<Vec<(&'static str, String)>> {
    use bottle_backend::docker;
    let e = docker::endpoints(index)?;
    let (int, _) = docker::internal_subnet(index)?;
    let (egr, _) = docker::egress_subnet(index)?;
    let gw = |n: std::net::Ipv4Addr| {
        let o = n.octets();
        format!("{}.{}.{}.1", o[0], o[1], o[2])
    };
    let sidecar_int = docker::sidecar_internal_ip(index)?;
    let mut p = vec![
        (
            "the agent runs unprivileged",
            r#"u=$(id -u); [ "$u" != 0 ] || { echo "the agent runs as root"; exit 1; }
grep -q '^CapEff:[[:space:]]*0000000000000000$' /proc/self/status || { echo "capabilities left: $(grep ^CapEff /proc/self/status)"; exit 1; }
grep -q '^NoNewPrivs:[[:space:]]*1$' /proc/self/status || { echo "no_new_privs is off"; exit 1; }
echo "uid $u, no capabilities, no_new_privs"
"#
            .to_string(),
        ),
        (
            "no container-engine socket",
            r#"for s in /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock /run/podman/podman.sock; do
  [ -e "$s" ] && { echo "$s is in the agent"; exit 1; }
done
echo "none mounted"
"#
            .to_string(),
        ),
        (
            "routes stay on the internal network",
            format!(
                r#"bad=$(awk -v gw={gw_hex} 'NR>1 && $2=="00000000" && $3!=gw {{print "default route via " $3}}' /proc/net/route)
[ -z "$bad" ] || {{ echo "$bad"; exit 1; }}
if [ -r /proc/net/ipv6_route ] && awk '$1=="00000000000000000000000000000000" && $2=="00" && $10!="lo" {{f=1}} END {{exit !f}}' /proc/net/ipv6_route; then echo "an IPv6 default route exists"; exit 1; fi
if [ -r /proc/net/if_inet6 ] && awk '$4=="00" {{f=1}} END {{exit !f}}' /proc/net/if_inet6; then echo "a global IPv6 address exists"; exit 1; fi
echo "IPv4 only via the internal bridge {gw} (no host address, probed below); no IPv6 route"
"#,
                gw = gw(int),
                gw_hex = route_hex(&gw(int)),
            ),
        ),
        (
            "no name resolution",
            r#"if out=$(timeout 5 getent ahosts example.com); then echo "example.com resolved: $out"; exit 1; fi
echo "example.com does not resolve"
"#
            .to_string(),
        ),
    ];
    // A gateway or the metadata address that answers at all (even "refused") is a way out; on
    // the sidecar's own address a closed port is fine and only a connection is a failure. The
    // probes run in parallel: an unanswered address costs the full timeout.
    let mut targets: Vec<(&str, String, &str)> = vec![
        (
            "internal bridge gateway",
            format!("{} 22", gw(int)),
            "unreachable",
        ),
        (
            "egress bridge gateway",
            format!("{} 22", gw(egr)),
            "unreachable",
        ),
        (
            "docker0 gateway",
            "172.17.0.1 22".to_string(),
            "unreachable",
        ),
        (
            "cloud metadata",
            "169.254.169.254 80".to_string(),
            "unreachable",
        ),
        (
            "sidecar control API",
            format!("{} {}", e.control.ip(), e.control.port()),
            "unreachable",
        ),
    ];
    for (what, port) in [
        ("sidecar control port", e.control.port()),
        ("sidecar admin port", bottle_plan::ADMIN_PORT),
        ("sidecar health port", e.health.port()),
    ] {
        targets.push((what, format!("{sidecar_int} {port}"), "!connected"));
    }
    let mut hosts = format!("{TCP_FN}rm -f /tmp/.doctor-tcp-*\n");
    for (i, (what, addr, want)) in targets.iter().enumerate() {
        let test = match want.strip_prefix('!') {
            Some(not) => format!("[ \"$r\" != {not} ]"),
            None => format!("[ \"$r\" = {want} ]"),
        };
        hosts.push_str(&format!(
            "(r=$(tcp {addr}); {test} || echo \"{what} ({addr}): $r\") > /tmp/.doctor-tcp-{i} &\n"
        ));
    }
    hosts.push_str(
        "wait\nbad=$(cat /tmp/.doctor-tcp-*)\n[ -z \"$bad\" ] || { echo \"$bad\"; exit 1; }\necho \"bridge gateways, docker0, 169.254.169.254 and the sidecar's operator ports: no answer\"\n",
    );
    p.push(("host, metadata and operator ports unreachable", hosts));
    p.push((
        "the proxy refuses an unrouted host",
        format!(
            r#"{PROXY_FN}proxy_ask $'GET http://doctor-unrouted.invalid/ HTTP/1.1\r\nHost: doctor-unrouted.invalid\r\nConnection: close\r\n\r\n'
head -1 /tmp/.doctor-answer | grep -q '^HTTP/1.1 403' || {{ echo "plain HTTP answered: $(head -1 /tmp/.doctor-answer)"; exit 1; }}
grep -qi '^x-bottle-refusal: host_not_allowed$' /tmp/.doctor-answer || {{ echo "no host_not_allowed refusal"; exit 1; }}
proxy_ask $'CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: 169.254.169.254:80\r\n\r\n'
head -1 /tmp/.doctor-answer | grep -q '^HTTP/1.1 403' || {{ echo "CONNECT to the metadata address answered: $(head -1 /tmp/.doctor-answer)"; exit 1; }}
echo "plain HTTP and CONNECT refused with 403 and a reason"
"#
        ),
    ));
    Ok(p)
}

/// After the sidecar is killed: the proxy is gone and nothing else opened.
fn after_sidecar_probe(index: u32) -> anyhow::Result<String> {
    let (int, _) = bottle_backend::docker::internal_subnet(index)?;
    let o = int.octets();
    let gw_hex = route_hex(&format!("{}.{}.{}.1", o[0], o[1], o[2]));
    Ok(format!(
        r#"{TCP_FN}r=$(tcp bottle-sidecar {port}); [ "$r" != connected ] || {{ echo "the proxy still answers"; exit 1; }}
bad=$(awk -v gw={gw_hex} 'NR>1 && $2=="00000000" && $3!=gw {{print "default route via " $3}}' /proc/net/route)
[ -z "$bad" ] || {{ echo "$bad"; exit 1; }}
if timeout 5 getent ahosts example.com >/dev/null; then echo "example.com resolves"; exit 1; fi
echo "proxy $r, still no route and no resolver"
"#,
        port = bottle_plan::PROXY_PORT
    ))
}

/// An IPv4 address as `/proc/net/route` prints it (hex, host byte order of a little-endian
/// machine, the only kind docker's Linux engines run on here).
fn route_hex(ip: &str) -> String {
    let o = ip
        .parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .unwrap_or_default();
    format!("{:02X}{:02X}{:02X}{:02X}", o[3], o[2], o[1], o[0])
}

async fn run_probe(
    backend: &dyn Backend,
    slug: &str,
    plan: &bottle_plan::Plan,
    script: &str,
) -> anyhow::Result<String> {
    let argv = vec!["bash".to_string(), "-c".to_string(), script.to_string()];
    let out = backend.exec(slug, &plan.agent, &argv, false).await?;
    let text = out.stdout_text().trim().to_string();
    if out.exit_code == 0 {
        Ok(text)
    } else {
        let mut why = text;
        let err = out.stderr_text();
        if why.is_empty() {
            why = err.trim().to_string();
        }
        Err(anyhow::anyhow!("{why}"))
    }
}

/// Writes the probe provider and manifest to a fresh folder under the home.
fn write_probe_bottle(home: &Home) -> anyhow::Result<PathBuf> {
    let dir = home
        .root()
        .join(format!("doctor-selftest-{}", std::process::id()));
    let provider = dir.join("provider");
    std::fs::create_dir_all(&provider)?;
    std::fs::write(provider.join("provider.yaml"), PROVIDER_YAML)?;
    std::fs::write(provider.join("Dockerfile"), DOCKERFILE)?;
    std::fs::write(dir.join("bottle.yaml"), MANIFEST)?;
    Ok(dir)
}

/// Runs the self-test; `Err` only when no bottle could be brought up at all.
pub async fn run(home: &Home) -> anyhow::Result<Vec<Probe>> {
    home.ensure()?;
    let dir = write_probe_bottle(home)?;
    let result = run_in(home, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(home: &Home, dir: &Path) -> anyhow::Result<Vec<Probe>> {
    let (manifest, manifest_path) = super::plan::load_manifest(&dir.join("bottle.yaml"))?;
    let docker = bottle_backend::docker::DockerBackend::connect().await?;
    let backend = lifecycle::backend_named(BackendKind::Docker.as_str()).await?;
    {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "bot-bottle doctor: starting a probe bottle");
    }
    let Launched { slug, lock, plan } = launch(
        home,
        backend.as_ref(),
        Launch {
            manifest: &manifest,
            manifest_path: &manifest_path,
            backend_kind: BackendKind::Docker,
            label: Some("doctor".into()),
            color: None,
            dockerfile: None,
            keep: false,
        },
    )
    .await?;
    let mut results = Vec::new();
    let index = bottle_state::read(home, &slug)
        .ok()
        .and_then(|m| {
            m.resources
                .indexes
                .get(bottle_backend::docker::INDEX_KIND)
                .copied()
        })
        .ok_or_else(|| anyhow::anyhow!("{slug} has no network index recorded"));
    match index.and_then(|i| Ok((i, probes(i)?))) {
        Ok((index_value, list)) => {
            for (name, script) in list {
                let result = run_probe(backend.as_ref(), &slug, &plan, &script).await;
                results.push(Probe {
                    name: name.to_string(),
                    result,
                });
            }
            let killed = docker.kill_sidecar(&slug).await;
            let result = match killed {
                Ok(()) => match after_sidecar_probe(index_value) {
                    Ok(script) => run_probe(backend.as_ref(), &slug, &plan, &script).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(anyhow::anyhow!("cannot kill the sidecar: {e}")),
            };
            results.push(Probe {
                name: "with the sidecar killed, no way out".into(),
                result,
            });
        }
        Err(e) => results.push(Probe {
            name: "probe addresses".into(),
            result: Err(e),
        }),
    }
    let down = lifecycle::teardown(home, &slug, BackendKind::Docker.as_str(), lock, true).await;
    results.push(Probe {
        name: "probe bottle removed".into(),
        result: down.map(|()| format!("{slug} torn down")),
    });
    Ok(results)
}

#[cfg(test)]
mod tests {
    //! The probes must fail where a way out exists: they run here in a plain container on
    //! docker's default bridge (root, a default route via docker0), which is not bottled.
    //! Only probes that send nothing off the host are run there.

    use std::process::Command;

    fn in_plain_container(script: &str) -> (bool, String) {
        let out = Command::new("docker")
            .args(["run", "--rm", "debian:bookworm-slim", "bash", "-c", script])
            .output()
            .expect("docker run");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn probe(name: &str) -> String {
        super::probes(7)
            .unwrap()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s)
            .unwrap()
    }

    #[test]
    fn route_and_privilege_probes_fail_outside_a_bottle() {
        if Command::new("docker")
            .arg("info")
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            panic!("these tests need a running docker engine (.ci/docker.sh starts one)");
        }
        let (ok, text) = in_plain_container(&probe("routes stay on the internal network"));
        assert!(!ok, "a default route via docker0 went unnoticed: {text}");
        assert!(text.contains("default route via"), "{text}");
        let (ok, text) = in_plain_container(&probe("the agent runs unprivileged"));
        assert!(!ok, "root went unnoticed: {text}");
        assert!(text.contains("runs as root"), "{text}");
    }

    #[test]
    fn route_hex_matches_proc_net_route() {
        assert_eq!(super::route_hex("10.213.250.1"), "01FAD50A");
    }
}
