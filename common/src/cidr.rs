//! Address ranges (`10.0.0.0/8`, `2001:db8::/32`, or one address), as cc.conf's
//! `limits.trusted_proxies` names them.

use std::net::IpAddr;

/// An address range (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an address or a range like 10.0.0.0/8"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        // Peers arrive as IPv4 when they are IPv4-mapped (see `contains`): so must
        // a range written in the mapped form (`::ffff:10.0.0.0/104` is 10.0.0.0/8).
        if let IpAddr::V6(v6) = net {
            if let (Some(v4), true) = (v6.to_ipv4_mapped(), bits >= 96) {
                return Ok(Self {
                    net: IpAddr::V4(v4),
                    bits: bits - 96,
                });
            }
        }
        Ok(Self { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.bits as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), a) => {
                // An IPv4 peer is inside an IPv6 range that covers its mapped form
                // (`::/0`, `::ffff:0:0/80`).
                let a = match a {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                    IpAddr::V6(v6) => v6,
                };
                let mask = u128::MAX.checked_shl(128 - self.bits as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.200.1.2".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        let one = Cidr::parse("192.0.2.7").unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("cc.example.org").is_err());
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }

    /// Found by the `ids` fuzz target: a range written in the IPv4-mapped form
    /// did not hold even its own address, since peers are compared as IPv4.
    #[test]
    fn fuzz_a_mapped_range_holds_its_own_addresses() {
        for (range, inside, outside) in [
            ("::ffff:10.0.0.1", "::ffff:10.0.0.1", "10.0.0.2"),
            ("::ffff:10.0.0.0/104", "10.200.1.2", "11.0.0.1"),
            ("::ffff:0:0/80", "192.0.2.1", "2001:db8::1"),
            ("::/0", "192.0.2.1", "10.0.0.0/8"),
        ] {
            let c = Cidr::parse(range).unwrap();
            assert!(
                c.contains(inside.parse().unwrap()),
                "{range} holds {inside}"
            );
            if let Ok(ip) = outside.parse() {
                assert!(!c.contains(ip), "{range} does not hold {outside}");
            }
        }
        assert!(Cidr::parse("::ffff:10.0.0.1")
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
    }
}
