//! The arguments of net-out and net-in, checked before any rule is made:
//! what reaches net.sh is always something iptables accepts.

use std::fs;
use std::net::Ipv4Addr;

use crate::errors::{Error, Result};

/// `A.B.C.D/N`, a bare address (/32), or a range `A-B` with A <= B.
pub fn parse_network(s: &str) -> Result<String> {
    let bad = |why: &str| Error::BadArgument(format!("invalid network {s:?}: {why}"));
    if let Some((a, b)) = s.split_once('-') {
        let a: Ipv4Addr = a.parse().map_err(|_| bad("want A.B.C.D-E.F.G.H"))?;
        let b: Ipv4Addr = b.parse().map_err(|_| bad("want A.B.C.D-E.F.G.H"))?;
        if u32::from(a) > u32::from(b) {
            return Err(bad("the range ends before it starts"));
        }
        return Ok(format!("{a}-{b}"));
    }
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, p),
        None => (s, "32"),
    };
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad("want A.B.C.D/N"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| bad("prefix must be 0..=32"))?;
    Ok(format!("{addr}/{prefix}"))
}

fn parse_port(s: &str) -> Result<u16> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::BadArgument(format!("invalid port {s:?} (1..=65535)")))
}

/// `N`, `A:B` (A <= B) or a list of up to 15 of those (iptables multiport).
pub fn parse_ports(s: &str) -> Result<String> {
    let items: Vec<&str> = s.split(',').collect();
    if items.len() > 15 {
        return Err(Error::BadArgument(format!(
            "too many ports in {s:?} (15 at most)"
        )));
    }
    let mut out = Vec::new();
    for item in items {
        match item.split_once(':') {
            Some((a, b)) => {
                let (a, b) = (parse_port(a)?, parse_port(b)?);
                if a > b {
                    return Err(Error::BadArgument(format!(
                        "invalid port range {item:?}: it ends before it starts"
                    )));
                }
                out.push(format!("{a}:{b}"));
            }
            None => out.push(parse_port(item)?.to_string()),
        }
    }
    Ok(out.join(","))
}

#[derive(Debug, Clone, Default)]
pub struct NetOut {
    pub network: Option<String>,
    pub port: Option<String>,
    pub port_range: Option<String>,
    pub protocol: Option<String>,
    pub icmp_type: Option<i64>,
    pub icmp_code: Option<i64>,
    pub log: bool,
}

impl NetOut {
    /// The environment of `net.sh out`.
    pub fn env(&self) -> Result<Vec<(String, String)>> {
        let mut env = Vec::new();
        if let Some(network) = &self.network {
            env.push(("NETWORK".to_string(), parse_network(network)?));
        }
        let ports = match (&self.port, &self.port_range) {
            (Some(_), Some(_)) => {
                return Err(Error::BadArgument(
                    "give --port or --port-range, not both".into(),
                ))
            }
            (Some(p), None) => Some(parse_ports(p)?),
            (None, Some(r)) => {
                if !r.contains(':') || r.contains(',') {
                    return Err(Error::BadArgument(format!(
                        "invalid port range {r:?} (want A:B)"
                    )));
                }
                Some(parse_ports(r)?)
            }
            (None, None) => None,
        };
        let protocol = match self.protocol.as_deref() {
            None if ports.is_some() => "tcp",
            None => "all",
            Some(p @ ("tcp" | "udp" | "icmp" | "all")) => p,
            Some(p) => {
                return Err(Error::BadArgument(format!(
                    "invalid protocol {p:?} (tcp, udp, icmp or all)"
                )))
            }
        };
        if ports.is_some() && !matches!(protocol, "tcp" | "udp") {
            return Err(Error::BadArgument(format!(
                "ports need protocol tcp or udp, not {protocol}"
            )));
        }
        if (self.icmp_type.is_some() || self.icmp_code.is_some()) && protocol != "icmp" {
            return Err(Error::BadArgument(format!(
                "--icmp-type and --icmp-code need --protocol icmp, not {protocol}"
            )));
        }
        if self.icmp_code.is_some() && self.icmp_type.is_none() {
            return Err(Error::BadArgument("--icmp-code needs --icmp-type".into()));
        }
        for (what, v) in [("type", self.icmp_type), ("code", self.icmp_code)] {
            if let Some(v) = v {
                if !(0..=255).contains(&v) {
                    return Err(Error::BadArgument(format!(
                        "icmp {what} {v} out of range 0..=255"
                    )));
                }
            }
        }
        if self.network.is_none() && ports.is_none() && protocol == "all" {
            return Err(Error::BadArgument(
                "net-out needs --network, --port or --protocol".into(),
            ));
        }
        env.push(("PROTOCOL".to_string(), protocol.to_string()));
        if let Some(ports) = ports {
            env.push(("PORTS".to_string(), ports));
        }
        if let Some(t) = self.icmp_type {
            env.push(("ICMP_TYPE".to_string(), t.to_string()));
        }
        if let Some(c) = self.icmp_code {
            env.push(("ICMP_CODE".to_string(), c.to_string()));
        }
        if self.log {
            env.push(("LOG".to_string(), "true".to_string()));
        }
        Ok(env)
    }
}

/// Checks a host port asked for: 1..=65535 is the type's business, 0 is not
/// a port.
pub fn check_port(port: u16, what: &str) -> Result<u16> {
    if port == 0 {
        return Err(Error::BadArgument(format!("{what} 0 is not a port")));
    }
    Ok(port)
}

/// Tcp ports something on the host listens on (any namespace-local socket
/// of the host's network namespace).
pub fn listening_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        ports.extend(parse_listening(&text));
    }
    ports
}

fn parse_listening(text: &str) -> Vec<u16> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // st 0A is TCP_LISTEN.
            if fields.get(3) != Some(&"0A") {
                return None;
            }
            let (_, port) = fields.get(1)?.rsplit_once(':')?;
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        assert_eq!(parse_network("10.1.2.3/24").unwrap(), "10.1.2.3/24");
        assert_eq!(parse_network("10.1.2.3").unwrap(), "10.1.2.3/32");
        assert_eq!(
            parse_network("10.0.0.1-10.0.0.9").unwrap(),
            "10.0.0.1-10.0.0.9"
        );
        for bad in [
            "10.0.0.9-10.0.0.1",
            "10.0.0.1/33",
            "300.0.0.1/8",
            "x",
            "10.0.0.0/",
            "-",
            "1.2.3.4;rm",
        ] {
            assert_eq!(parse_network(bad).unwrap_err().exit_code(), 5, "{bad}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(parse_ports("80").unwrap(), "80");
        assert_eq!(parse_ports("80:90,443").unwrap(), "80:90,443");
        for bad in ["0", "65536", "90:80", "a", "", "1,", "-1"] {
            assert_eq!(parse_ports(bad).unwrap_err().exit_code(), 5, "{bad}");
        }
    }

    #[test]
    fn protocol_combinations() {
        let ok = NetOut {
            protocol: Some("icmp".into()),
            icmp_type: Some(8),
            icmp_code: Some(0),
            ..Default::default()
        };
        let env = ok.env().unwrap();
        assert!(env.contains(&("ICMP_TYPE".into(), "8".into())));
        let with_port = NetOut {
            port: Some("53".into()),
            ..Default::default()
        };
        assert!(with_port
            .env()
            .unwrap()
            .contains(&("PROTOCOL".into(), "tcp".into())));
        let bad = [
            NetOut {
                protocol: Some("tcp".into()),
                icmp_type: Some(8),
                ..Default::default()
            },
            NetOut {
                protocol: Some("icmp".into()),
                icmp_code: Some(1),
                ..Default::default()
            },
            NetOut {
                protocol: Some("icmp".into()),
                icmp_type: Some(256),
                ..Default::default()
            },
            NetOut {
                protocol: Some("all".into()),
                port: Some("80".into()),
                ..Default::default()
            },
            NetOut {
                port: Some("80".into()),
                port_range: Some("1:2".into()),
                ..Default::default()
            },
            NetOut::default(),
        ];
        for b in bad {
            assert_eq!(b.env().unwrap_err().exit_code(), 5, "{b:?}");
        }
    }

    #[test]
    fn listening_sockets() {
        let text = "  sl  local_address rem_address   st\n\
           0: 00000000:1F90 00000000:0000 0A 00000000:00000000\n\
           1: 0100007F:0050 0100007F:C000 01 00000000:00000000\n";
        assert_eq!(parse_listening(text), vec![8080]);
    }
}
