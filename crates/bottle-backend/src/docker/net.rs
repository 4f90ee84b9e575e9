//! Per-bottle addressing and networks.
//!
//! Each bottle has an index (allocated under the state lock, so concurrent starts never share
//! one) that selects two /24s: the internal network `10.213.<i>.0/24` (agent + sidecar, no host
//! address on its bridge, no route out) and the egress network `10.214.<i>.0/24` (sidecar only,
//! a normal NAT bridge). The sidecar has fixed addresses `.2` on both, so the agent's
//! `/etc/hosts` entry and the host's control URL are known before anything starts.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::Docker;
use bottle_plan::{ADMIN_PORT, CONTROL_PORT, GATE_PORT, HEALTH_PORT, MCP_PORT, PROXY_PORT};

use crate::error::engine;
use crate::{Error, Result, SidecarEndpoints};

/// `bottle_state::allocate_index` kind for the docker subnets.
pub const INDEX_KIND: &str = "docker-net";
/// Exclusive upper bound of the index (one /24 per bottle in each /16).
pub const MAX_INDEX: u32 = 256;

/// Internal network /16 (agent side).
const INTERNAL_NET: [u8; 2] = [10, 213];
/// Egress network /16 (sidecar's way out; host-reachable).
const EGRESS_NET: [u8; 2] = [10, 214];

fn check(index: u32) -> Result<u8> {
    u8::try_from(index)
        .ok()
        .filter(|_| index < MAX_INDEX)
        .ok_or(Error::Index {
            index,
            max: MAX_INDEX,
        })
}

/// The internal network's subnet for an index.
pub fn internal_subnet(index: u32) -> Result<(Ipv4Addr, u8)> {
    let i = check(index)?;
    Ok((Ipv4Addr::new(INTERNAL_NET[0], INTERNAL_NET[1], i, 0), 24))
}

/// The egress network's subnet for an index.
pub fn egress_subnet(index: u32) -> Result<(Ipv4Addr, u8)> {
    let i = check(index)?;
    Ok((Ipv4Addr::new(EGRESS_NET[0], EGRESS_NET[1], i, 0), 24))
}

/// The sidecar's address on the internal network (what `bottle-sidecar` resolves to in the agent).
pub fn sidecar_internal_ip(index: u32) -> Result<Ipv4Addr> {
    let i = check(index)?;
    Ok(Ipv4Addr::new(INTERNAL_NET[0], INTERNAL_NET[1], i, 2))
}

/// The sidecar's address on the egress network (reachable from the host, not from the agent).
pub fn sidecar_egress_ip(index: u32) -> Result<Ipv4Addr> {
    let i = check(index)?;
    Ok(Ipv4Addr::new(EGRESS_NET[0], EGRESS_NET[1], i, 2))
}

/// Where the sidecar's services listen for a bottle with this index:
/// agent-facing services on the internal address only; the egress admin API on the sidecar's
/// loopback; the supervise control API and health on the egress address (the host reaches it,
/// the agent has no route to it).
pub fn endpoints(index: u32) -> Result<SidecarEndpoints> {
    let int = IpAddr::V4(sidecar_internal_ip(index)?);
    let egr = IpAddr::V4(sidecar_egress_ip(index)?);
    Ok(SidecarEndpoints {
        proxy: SocketAddr::new(int, PROXY_PORT),
        gate: SocketAddr::new(int, GATE_PORT),
        mcp: SocketAddr::new(int, MCP_PORT),
        admin: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), ADMIN_PORT),
        control: SocketAddr::new(egr, CONTROL_PORT),
        health: SocketAddr::new(egr, HEALTH_PORT),
    })
}

/// The index whose internal or egress /24 contains `subnet` (a CIDR string), if any.
pub fn index_of_subnet(subnet: &str) -> Option<u32> {
    let (addr, _) = subnet.split_once('/')?;
    let o = addr.parse::<Ipv4Addr>().ok()?.octets();
    ([o[0], o[1]] == INTERNAL_NET || [o[0], o[1]] == EGRESS_NET).then_some(u32::from(o[2]))
}

/// The supervise control API's base URL as the host reaches it (for `supervise.json`).
pub fn control_url(index: u32) -> Result<String> {
    Ok(format!("http://{}", endpoints(index)?.control))
}

#[cfg(test)]
mod index_tests {
    #[test]
    fn subnets_map_back_to_indexes() {
        assert_eq!(super::index_of_subnet("10.213.7.0/24"), Some(7));
        assert_eq!(super::index_of_subnet("10.214.255.0/24"), Some(255));
        assert_eq!(super::index_of_subnet("172.17.0.0/16"), None);
        assert_eq!(super::index_of_subnet("garbage"), None);
    }
}

fn cidr((net, len): (Ipv4Addr, u8)) -> String {
    format!("{net}/{len}")
}

fn gateway((net, _): (Ipv4Addr, u8)) -> String {
    let o = net.octets();
    Ipv4Addr::new(o[0], o[1], o[2], 1).to_string()
}

/// The request for an isolated bridge network: `internal` (no route out),
/// `inhibit_ipv4` (no host address on the bridge) and no masquerading, so only the containers
/// attached to it can talk over it. `gateway` is the address the engine reserves (it is
/// never configured on the host).
pub fn isolated_network(
    name: &str,
    subnet: (Ipv4Addr, u8),
    gateway: Option<String>,
    labels: &HashMap<String, String>,
) -> NetworkCreateRequest {
    let options = HashMap::from([
        (
            "com.docker.network.bridge.inhibit_ipv4".to_string(),
            "true".to_string(),
        ),
        // Containers on the internal network talk to the sidecar only; no IP masquerading either.
        (
            "com.docker.network.bridge.enable_ip_masquerade".to_string(),
            "false".to_string(),
        ),
    ]);
    NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("bridge".into()),
        internal: Some(true),
        enable_ipv6: Some(false),
        options: Some(options),
        labels: Some(labels.clone()),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            config: Some(vec![IpamConfig {
                subnet: Some(cidr(subnet)),
                gateway,
                ..Default::default()
            }]),
            options: None,
        }),
        ..Default::default()
    }
}

/// Creates the internal network: `Internal` (no route out) with
/// `com.docker.network.bridge.inhibit_ipv4` (no host address on the bridge, so host services
/// on 0.0.0.0 are unreachable), then verifies that no host interface holds an address in its
/// subnet and fails closed if one does.
pub(crate) async fn create_internal(
    docker: &Docker,
    name: &str,
    index: u32,
    labels: &HashMap<String, String>,
) -> Result<()> {
    let subnet = internal_subnet(index)?;
    let req = isolated_network(name, subnet, Some(gateway(subnet)), labels);
    docker
        .create_network(req)
        .await
        .map_err(docker_op(format!("create network {name}")))?;
    verify_no_host_address(name, subnet)
}

/// Creates the egress network (a normal bridge with NAT).
pub(crate) async fn create_egress(
    docker: &Docker,
    name: &str,
    index: u32,
    labels: &HashMap<String, String>,
) -> Result<()> {
    let subnet = egress_subnet(index)?;
    let req = NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("bridge".into()),
        internal: Some(false),
        enable_ipv6: Some(false),
        labels: Some(labels.clone()),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            config: Some(vec![IpamConfig {
                subnet: Some(cidr(subnet)),
                gateway: Some(gateway(subnet)),
                ..Default::default()
            }]),
            options: None,
        }),
        ..Default::default()
    };
    docker
        .create_network(req)
        .await
        .map_err(docker_op(format!("create network {name}")))?;
    Ok(())
}

fn docker_op(op: String) -> impl FnOnce(bollard::errors::Error) -> Error {
    engine(op)
}

/// Fails when any host interface has an IPv4 address inside `subnet`.
pub fn verify_no_host_address(network: &str, (net, len): (Ipv4Addr, u8)) -> Result<()> {
    let ifaces = if_addrs::get_if_addrs().map_err(|source| Error::HostDir {
        path: "/proc/net (host interfaces)".into(),
        source,
    })?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let base = u32::from(net) & mask;
    for iface in ifaces {
        if let IpAddr::V4(a) = iface.ip() {
            if u32::from(a) & mask == base {
                return Err(Error::HostAddressOnBridge {
                    network: network.to_string(),
                    addr: format!("{a} on {}", iface.name),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_agent_host_and_loopback_sides() {
        let e = endpoints(7).unwrap();
        assert_eq!(e.proxy.to_string(), "10.213.7.2:3128");
        assert_eq!(e.gate.to_string(), "10.213.7.2:8080");
        assert_eq!(e.mcp.to_string(), "10.213.7.2:8765");
        assert_eq!(e.admin.to_string(), "127.0.0.1:9099");
        assert_eq!(e.control.to_string(), "10.214.7.2:9100");
        assert_eq!(e.health.to_string(), "10.214.7.2:9000");
        assert_eq!(control_url(7).unwrap(), "http://10.214.7.2:9100");
    }

    #[test]
    fn out_of_range_index_is_an_error() {
        assert!(matches!(
            endpoints(256),
            Err(Error::Index { index: 256, .. })
        ));
    }

    #[test]
    fn loopback_subnet_is_detected_as_a_host_address() {
        let e = verify_no_host_address("lo-test", (Ipv4Addr::new(127, 0, 0, 0), 8)).unwrap_err();
        assert!(e.to_string().contains("127.0.0.1"), "{e}");
    }
}
