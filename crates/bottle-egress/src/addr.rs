//! Host names and IP addresses: normalisation and the address deny table.
//!
//! This module owns two answers: what a host string from the agent *means* (a normalised DNS
//! name, or an IP literal in any spelling `inet_aton` accepts, so that `2130706433`, `0x7f.1`
//! and `[::ffff:169.254.169.254]` are recognised as the addresses they are), and whether an
//! address may be connected to (loopback, private, link-local, CGNAT, NAT64/6to4/Teredo, ULA,
//! multicast, unspecified, and the cloud metadata addresses, which are refused always).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A normalised host: a lower-case ASCII DNS name without trailing dot, or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name (IDNA-mapped to ASCII, lower case, no trailing dot).
    Name(String),
    /// An IP literal, canonical (IPv4-mapped IPv6 becomes IPv4).
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl Host {
    /// The form used for SNI and certificate names (IPv6 without brackets).
    pub fn bare(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }
}

/// Why a host string was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// Empty, bad characters, userinfo, zone id, or IDNA failure.
    Invalid,
    /// Looked like an IP literal (numeric last label) but did not parse as one.
    BadIpLiteral,
}

/// Normalises a host as the agent wrote it (in a CONNECT target, an absolute URI, a `Host`
/// header or an SNI). Brackets are accepted around IPv6 literals only.
pub fn normalise_host(raw: &str) -> Result<Host, HostError> {
    if raw.is_empty() || raw.len() > 255 {
        return Err(HostError::Invalid);
    }
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(HostError::Invalid)?;
        // Zone ids (`fe80::1%eth0`) name an interface of the proxy: never meaningful here.
        return inner
            .parse::<Ipv6Addr>()
            .map(|v6| Host::Ip(IpAddr::V6(v6).to_canonical()))
            .map_err(|_| HostError::BadIpLiteral);
    }
    if raw.contains(':') {
        // A bare IPv6 literal (as SNI never carries one, this only comes from odd clients).
        return raw
            .parse::<Ipv6Addr>()
            .map(|v6| Host::Ip(IpAddr::V6(v6).to_canonical()))
            .map_err(|_| HostError::Invalid);
    }
    if raw
        .bytes()
        .any(|b| matches!(b, b'@' | b'/' | b'\\' | b'%' | b'?' | b'#') || b <= b' ')
    {
        return Err(HostError::Invalid);
    }
    // IDNA maps case and Unicode look-alikes (full-width digits become ASCII digits, which is
    // why the IP-literal check runs after it).
    let ascii = if raw.is_ascii() {
        raw.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(raw).map_err(|_| HostError::Invalid)?
    };
    let name = ascii.strip_suffix('.').unwrap_or(&ascii);
    if name.is_empty() {
        return Err(HostError::Invalid);
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if is_numeric_label(last) {
        return parse_ipv4_like_inet_aton(name)
            .map(|v4| Host::Ip(IpAddr::V4(v4)))
            .ok_or(HostError::BadIpLiteral);
    }
    let valid = name.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !valid {
        return Err(HostError::Invalid);
    }
    Ok(Host::Name(name.to_owned()))
}

/// A label the WHATWG URL parser would treat as an IPv4 part: decimal digits or `0x` hex.
fn is_numeric_label(l: &str) -> bool {
    if l.is_empty() {
        return false;
    }
    if let Some(hex) = l.strip_prefix("0x").or_else(|| l.strip_prefix("0X")) {
        return hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    l.bytes().all(|b| b.is_ascii_digit())
}

/// Parses an IPv4 address the way glibc `inet_aton` does: 1–4 parts, each decimal, octal
/// (leading `0`) or hex (`0x`); the last part fills the remaining bytes.
pub fn parse_ipv4_like_inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = [0u64; 4];
    for (i, p) in parts.iter().enumerate() {
        nums[i] = parse_part(p)?;
    }
    let n = parts.len();
    let last_bits = 8 * (5 - n as u32);
    let last_max: u64 = if last_bits >= 32 {
        u32::MAX as u64
    } else {
        (1u64 << last_bits) - 1
    };
    if nums[n - 1] > last_max || nums[..n - 1].iter().any(|&x| x > 255) {
        return None;
    }
    let mut v: u32 = 0;
    for (i, x) in nums[..n - 1].iter().enumerate() {
        v |= (*x as u32) << (24 - 8 * i as u32);
    }
    v |= nums[n - 1] as u32;
    Some(Ipv4Addr::from(v))
}

fn parse_part(p: &str) -> Option<u64> {
    if p.is_empty() || p.len() > 34 {
        return None;
    }
    if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        if hex.is_empty() {
            return Some(0);
        }
        return u64::from_str_radix(hex, 16).ok();
    }
    if p.len() > 1 && p.starts_with('0') {
        return u64::from_str_radix(&p[1..], 8).ok();
    }
    p.parse::<u64>().ok()
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// Cloud metadata endpoints: refused even on routes with `allow_private`.
    Metadata,
    /// Loopback, private, link-local, CGNAT, ULA, translation prefixes, …: refused unless the
    /// route opts in with `allow_private`.
    Private,
    /// Unspecified, multicast, broadcast, documentation/reserved: never a valid destination.
    Unroutable,
}

/// Classifies an address; `None` means public unicast.
pub fn classify(ip: IpAddr) -> Option<AddrClass> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddrClass> {
    let o = ip.octets();
    // Metadata: AWS/GCP/Azure IMDS, Alibaba, Azure wireserver.
    if ip == Ipv4Addr::new(169, 254, 169, 254)
        || ip == Ipv4Addr::new(169, 254, 170, 2)
        || ip == Ipv4Addr::new(100, 100, 100, 200)
        || ip == Ipv4Addr::new(168, 63, 129, 16)
    {
        return Some(AddrClass::Metadata);
    }
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || o[0] == 0 || o[0] >= 240 {
        return Some(AddrClass::Unroutable);
    }
    if ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || ip.is_documentation()
    {
        return Some(AddrClass::Private);
    }
    None
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddrClass> {
    let s = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some(AddrClass::Metadata);
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return Some(AddrClass::Unroutable);
    }
    // Embedded IPv4 in translation prefixes: classify the embedded address, and never let
    // less than "private" through (the translator is a network path we do not control).
    let embedded = if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        Some(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        )) // NAT64
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        )) // 6to4
    } else if s[0] == 0x2001 && s[1] == 0 {
        let (a, b) = (!s[6], !s[7]); // Teredo client address is stored inverted
        Some(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        ))
    } else if s[0..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() {
        // IPv4-compatible (deprecated) ::a.b.c.d
        Some(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ))
    } else {
        None
    };
    if let Some(v4) = embedded {
        return match classify_v4(v4) {
            Some(AddrClass::Metadata) => Some(AddrClass::Metadata),
            _ => Some(AddrClass::Private),
        };
    }
    if ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // ULA fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0])
    // discard-only 100::/64
    {
        return Some(AddrClass::Private);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn inet_aton_spellings() {
        let lo = Host::Ip(ip("127.0.0.1"));
        for s in [
            "2130706433",
            "0x7f.1",
            "0177.0.0.1",
            "127.1",
            "0x7F000001",
            "127.0.0.1.",
            "127.0.1",
        ] {
            assert_eq!(normalise_host(s), Ok(lo.clone()), "{s}");
        }
        assert_eq!(normalise_host("0"), Ok(Host::Ip(ip("0.0.0.0"))));
        assert_eq!(
            normalise_host("[::ffff:169.254.169.254]"),
            Ok(Host::Ip(ip("169.254.169.254")))
        );
        assert_eq!(
            normalise_host("[::ffff:a9fe:a9fe]"),
            Ok(Host::Ip(ip("169.254.169.254")))
        );
        assert_eq!(normalise_host("[::1]"), Ok(Host::Ip(ip("::1"))));
        assert_eq!(
            normalise_host("[fe80::1%25eth0]"),
            Err(HostError::BadIpLiteral)
        );
        assert_eq!(normalise_host("1.2.3.4.5"), Err(HostError::BadIpLiteral));
        assert_eq!(normalise_host("256.1.1.1"), Err(HostError::BadIpLiteral));
        assert_eq!(normalise_host("99999999999"), Err(HostError::BadIpLiteral));
        // Full-width digits map to ASCII through IDNA and are still caught.
        assert_eq!(normalise_host("１２７.０.０.１"), Ok(lo));
    }

    #[test]
    fn names_normalise() {
        let n = Host::Name("api.example.com".into());
        assert_eq!(normalise_host("API.Example.COM."), Ok(n.clone()));
        assert_eq!(normalise_host("api.example.com"), Ok(n));
        assert_eq!(
            normalise_host("bücher.example"),
            Ok(Host::Name("xn--bcher-kva.example".into()))
        );
        for bad in [
            "",
            ".",
            "a..b",
            "user@host",
            "a b",
            "a/b",
            "evil.example\\@api",
            "a%2eb",
        ] {
            assert!(normalise_host(bad).is_err(), "{bad}");
        }
        // A name whose last label is not numeric stays a name.
        assert_eq!(
            normalise_host("1.2.3.example"),
            Ok(Host::Name("1.2.3.example".into()))
        );
    }

    #[test]
    fn deny_table() {
        for m in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "64:ff9b::a9fe:a9fe",
            "100.100.100.200",
        ] {
            assert_eq!(classify(ip(m)), Some(AddrClass::Metadata), "{m}");
        }
        for p in [
            "127.0.0.1",
            "10.0.0.5",
            "172.16.3.4",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2002:0808:0808::1",
        ] {
            assert_eq!(classify(ip(p)), Some(AddrClass::Private), "{p}");
        }
        for u in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"] {
            assert_eq!(classify(ip(u)), Some(AddrClass::Unroutable), "{u}");
        }
        for ok in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1"] {
            assert_eq!(classify(ip(ok)), None, "{ok}");
        }
    }
}
