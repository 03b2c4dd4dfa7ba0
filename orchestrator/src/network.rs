//! The /30 networks containers get: one address for the host end of the
//! veth, one for the container end.

use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::errors::{Error, Result};

/// Default pool, as Warden's.
pub const DEFAULT_POOL: &str = "10.254.0.0/22";
/// Each container's network.
pub const CONTAINER_PREFIX: u8 = 30;

/// An IPv4 network, `ADDR/PREFIX`, with ADDR the network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    addr: u32,
    prefix: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self> {
        if prefix > 32 {
            return Err(Error::BadArgument(format!("prefix /{prefix} is over 32")));
        }
        let addr = u32::from(addr) & mask(prefix);
        Ok(Ipv4Net { addr, prefix })
    }

    /// The /30 (the container network) holding `ip`.
    pub fn container_network_of(ip: Ipv4Addr) -> Self {
        Ipv4Net {
            addr: u32::from(ip) & mask(CONTAINER_PREFIX),
            prefix: CONTAINER_PREFIX,
        }
    }

    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }

    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr + 1)
    }

    pub fn container_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr + 2)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.addr
    }

    pub fn contains_net(&self, other: &Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr())
    }

    /// The /30 networks of this pool, in order.
    pub fn subnets(&self) -> impl Iterator<Item = Ipv4Net> {
        let count: u64 = if self.prefix >= CONTAINER_PREFIX {
            u64::from(self.prefix == CONTAINER_PREFIX)
        } else {
            1u64 << (CONTAINER_PREFIX - self.prefix)
        };
        let base = self.addr;
        (0..count).map(move |i| Ipv4Net {
            addr: base + (i as u32) * 4,
            prefix: CONTAINER_PREFIX,
        })
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl FromStr for Ipv4Net {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::BadArgument(format!("invalid network {s:?} (want A.B.C.D/N)"));
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > CONTAINER_PREFIX {
            return Err(Error::BadArgument(format!(
                "network {s} is smaller than a /{CONTAINER_PREFIX}"
            )));
        }
        Ipv4Net::new(addr, prefix)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix)
    }
}

/// Destinations the host already routes (from /proc/net/route): a /30 of
/// the pool that is routed was taken by something outside this depot (another
/// depot, another tool) and must not be handed out again.
pub fn routed_networks() -> Vec<Ipv4Net> {
    let Ok(text) = fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    parse_route_table(&text)
}

fn parse_route_table(text: &str) -> Vec<Ipv4Net> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(fields.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?;
            // The kernel prints the in-memory (network order) word as a
            // native integer.
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            if mask == 0 {
                return None;
            }
            Ipv4Net::new(dest, mask.count_ones() as u8).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_has_256_slash_30s() {
        let pool: Ipv4Net = DEFAULT_POOL.parse().unwrap();
        let nets: Vec<_> = pool.subnets().collect();
        assert_eq!(nets.len(), 256);
        assert_eq!(nets[0].to_string(), "10.254.0.0/30");
        assert_eq!(nets[255].to_string(), "10.254.3.252/30");
        assert_eq!(nets[1].host_ip(), Ipv4Addr::new(10, 254, 0, 5));
        assert_eq!(nets[1].container_ip(), Ipv4Addr::new(10, 254, 0, 6));
        assert_eq!(nets[1].netmask(), Ipv4Addr::new(255, 255, 255, 252));
    }

    #[test]
    fn parse_normalises_and_rejects() {
        assert_eq!(
            "10.254.1.7/24".parse::<Ipv4Net>().unwrap().to_string(),
            "10.254.1.0/24"
        );
        assert!("10.254.0.0".parse::<Ipv4Net>().is_err());
        assert!("10.254.0.0/31".parse::<Ipv4Net>().is_err());
        assert!("10.254.0.300/24".parse::<Ipv4Net>().is_err());
        assert!("10.254.0.0/x".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn container_network_of_an_address() {
        let n = Ipv4Net::container_network_of(Ipv4Addr::new(10, 254, 0, 10));
        assert_eq!(n.to_string(), "10.254.0.8/30");
        let pool: Ipv4Net = DEFAULT_POOL.parse().unwrap();
        assert!(pool.contains_net(&n));
        let outside = Ipv4Net::container_network_of(Ipv4Addr::new(10, 254, 4, 1));
        assert!(!pool.contains_net(&outside));
    }

    #[test]
    fn route_table_is_decoded() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     w-abc-0\t0800FE0A\t00000000\t0001\t0\t0\t0\tFCFFFFFF\t0\t0\t0\n";
        let nets = parse_route_table(table);
        assert_eq!(nets.len(), 1);
        assert_eq!(nets[0].to_string(), "10.254.0.8/30");
    }
}
