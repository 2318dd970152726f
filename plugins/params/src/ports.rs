//! Published ports: [`parse_port`] reads `docker run -p` syntax into a
//! [`PortSpec`], which is written back the same way.

use std::fmt;
use std::net::IpAddr;

/// A published port, from [`parse_port`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The host address to bind (without brackets for IPv6); `None`: all.
    pub host_ip: Option<String>,
    /// The host port; `None` (absent or 0): the daemon picks one.
    pub host_port: Option<u16>,
    /// The container's port.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

impl PortSpec {
    /// Whether both bind the same fixed host port (an address left open
    /// binds every address, so it meets any other).
    pub(crate) fn same_host_port(&self, other: &PortSpec) -> bool {
        let wildcard = |ip: &Option<String>| {
            ip.as_deref()
                .is_none_or(|ip| ip.parse::<IpAddr>().is_ok_and(|a| a.is_unspecified()))
        };
        self.host_port.is_some()
            && self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip == other.host_ip
                || wildcard(&self.host_ip)
                || wildcard(&other.host_ip))
    }
}

/// Written back in `-p` syntax: `[IP:][HOST:]CONTAINER/PROTO`.
impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = &self.host_ip {
            if ip.contains(':') {
                write!(f, "[{ip}]:")?;
            } else {
                write!(f, "{ip}:")?;
            }
        }
        match self.host_port {
            Some(p) => write!(f, "{p}:")?,
            None if self.host_ip.is_some() => write!(f, ":")?,
            None => {}
        }
        write!(f, "{}/{}", self.container_port, self.protocol)
    }
}

/// Parse a published port in `docker run -p` syntax:
/// `[[IP:][HOST]:]CONTAINER[/PROTO]` (`80`, `8080:80`, `127.0.0.1:8080:80/tcp`,
/// `127.0.0.1::80`, `[::1]:8080:80`, `53:53/udp`). Ports are 1–65535; a
/// host port of 0 or none lets the daemon pick; the protocol is tcp (the
/// default), udp or sctp. Ranges (`8000-8010:80-90`) are not supported.
pub fn parse_port(s: &str) -> Result<PortSpec, String> {
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((rest, proto)) => {
            let proto = proto.to_ascii_lowercase();
            if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                return Err(format!(
                    "unknown protocol `{proto}` in `{s}` (use tcp, udp or sctp)"
                ));
            }
            (rest, proto)
        }
        None => (s, "tcp".to_owned()),
    };
    let (host_ip, ports) = if let Some(bracketed) = rest.strip_prefix('[') {
        let Some((ip, after)) = bracketed.split_once(']') else {
            return Err(format!("`{s}`: an IPv6 address is written `[addr]`"));
        };
        let Some(ports) = after.strip_prefix(':') else {
            return Err(format!(
                "`{s}` is not `[IP]:HOST:CONTAINER` (use `[IP]::CONTAINER` to let Docker pick the host port)"
            ));
        };
        if !ports.contains(':') {
            return Err(format!(
                "`{s}` is not `[IP]:HOST:CONTAINER` (use `[IP]::CONTAINER` to let Docker pick the host port)"
            ));
        }
        (Some(ip), ports)
    } else {
        match rest.matches(':').count() {
            0 | 1 => (None, rest),
            2 => {
                let (ip, ports) = rest.split_once(':').expect("two colons");
                (Some(ip), ports)
            }
            _ => {
                return Err(format!(
                    "`{s}` is not `[IP:][HOST:]CONTAINER[/PROTO]` (write an IPv6 address in brackets)"
                ));
            }
        }
    };
    let host_ip = match host_ip {
        None => None,
        Some(ip) => match ip.parse::<IpAddr>() {
            Ok(addr) => Some(addr.to_string()),
            Err(_) => {
                return Err(format!("`{ip}` is not an IP address"));
            }
        },
    };
    let (host, container) = match ports.split_once(':') {
        Some((h, c)) => (Some(h), c),
        None => (None, ports),
    };
    let container_port = port_number(container)?;
    let host_port = match host {
        None | Some("") => None,
        Some(h) if h.bytes().all(|b| b == b'0') => None,
        Some(h) => Some(port_number(h)?),
    };
    Ok(PortSpec {
        host_ip,
        host_port,
        container_port,
        protocol,
    })
}

/// A port number 1–65535.
fn port_number(s: &str) -> Result<u16, String> {
    if s.is_empty() {
        return Err("a port number is missing".into());
    }
    if s.contains('-') {
        return Err(format!(
            "port ranges (`{s}`) are not supported: list each port"
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}` is not a port number"));
    }
    match s.parse::<u64>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(format!("port {s} is out of range 1–65535")),
    }
}
