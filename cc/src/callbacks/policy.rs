//! Which callback URLs the CC will call: https only (unless cc.conf allows http),
//! and never an address inside the CC's own networks (loopback, private,
//! link-local, ...) unless cc.conf allows it, so a callback_url cannot be used to
//! make the CC reach internal services (SSRF). Checked at submit (the URL as
//! written) and at every delivery (every address the name resolves to, through
//! [`PublicResolver`], so a name re-pointed after submit is caught too).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

#[derive(Debug, Clone, Copy)]
pub struct CallbackPolicy {
    pub allow_http: bool,
    pub allow_private_addresses: bool,
}

impl CallbackPolicy {
    pub fn from_config(c: &testamur_common::config::CallbacksConfig) -> Self {
        Self {
            allow_http: c.allow_http,
            allow_private_addresses: c.allow_private_addresses,
        }
    }

    /// The URL if the CC may call it; else why not, as a sentence for the LMS.
    pub fn check(&self, url: &str) -> Result<Url, String> {
        let u = Url::parse(url).map_err(|e| format!("callback_url is not a valid URL: {e}"))?;
        match u.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(
                    "callback_url must be an https:// URL (this CC does not allow http callbacks)"
                        .into(),
                )
            }
            other => {
                return Err(format!(
                    "callback_url must be an https:// URL, not {other}://"
                ))
            }
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(
                "callback_url must not carry credentials; callbacks are signed instead (X-Testamur-Signature)"
                    .into(),
            );
        }
        let host = u
            .host()
            .ok_or_else(|| "callback_url has no host".to_owned())?;
        if !self.allow_private_addresses {
            let refused = |what: &str| {
                Err(format!(
                    "callback_url points at {what}, which this CC does not call (no requests into private networks); use a public address"
                ))
            };
            match host {
                url::Host::Ipv4(ip) if !is_public(IpAddr::V4(ip)) => {
                    return refused(&format!("the non-public address {ip}"))
                }
                url::Host::Ipv6(ip) if !is_public(IpAddr::V6(ip)) => {
                    return refused(&format!("the non-public address {ip}"))
                }
                url::Host::Domain(d) if is_internal_name(d) => {
                    return refused(&format!("the internal name {d}"))
                }
                _ => {}
            }
        }
        Ok(u)
    }
}

/// Names that by convention never leave the local machine or network.
fn is_internal_name(d: &str) -> bool {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    d == "localhost"
        || [
            ".localhost",
            ".local",
            ".internal",
            ".localdomain",
            ".home.arpa",
        ]
        .iter()
        .any(|s| d.ends_with(s))
        || !d.contains('.')
}

/// Whether an address is on the public internet (not loopback, private,
/// link-local, shared, documentation, multicast, reserved, ...).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (maps to v4 inside)
                || s[0] == 0x2002 // 6to4 (embeds any v4)
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0))
            // v4-compatible
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240) // reserved
}

/// Resolves names with the system resolver and drops every non-public address
/// (unless allowed); a name with only non-public addresses fails to resolve.
pub struct PublicResolver {
    pub allow_private_addresses: bool,
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private_addresses;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (callbacks into private networks are refused)"
                )
                .into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// IP-literal URLs bypass the resolver: check them before sending.
pub fn literal_allowed(url: &Url, policy: &CallbackPolicy) -> bool {
    if policy.allow_private_addresses {
        return true;
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_public(IpAddr::V6(ip)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: CallbackPolicy = CallbackPolicy {
        allow_http: false,
        allow_private_addresses: false,
    };

    #[test]
    fn private_and_internal_targets_are_refused() {
        for u in [
            "https://127.0.0.1/cb",
            "https://10.1.2.3/cb",
            "https://172.16.0.1/cb",
            "https://192.168.1.1/cb",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://[::1]/cb",
            "https://[fd00::1]/cb",
            "https://[fe80::1]/cb",
            "https://[::ffff:127.0.0.1]/cb",
            "https://0.0.0.0/",
            "https://localhost/cb",
            "https://api.localhost/cb",
            "https://printer.local/",
            "https://metadata.google.internal/",
            "https://intranet/",
        ] {
            assert!(STRICT.check(u).is_err(), "{u} should be refused");
        }
        for u in [
            "https://lms.example.org/cb",
            "https://8.8.8.8/x",
            "https://[2606:4700::1]/",
        ] {
            assert!(STRICT.check(u).is_ok(), "{u} should be allowed");
        }
    }

    #[test]
    fn scheme_and_credentials() {
        assert!(STRICT.check("http://lms.example.org/cb").is_err());
        assert!(STRICT.check("ftp://lms.example.org/cb").is_err());
        assert!(STRICT.check("https://user:pw@lms.example.org/cb").is_err());
        let lax = CallbackPolicy {
            allow_http: true,
            allow_private_addresses: true,
        };
        assert!(lax.check("http://127.0.0.1:8080/cb").is_ok());
        assert!(lax.check("https://localhost/cb").is_ok());
    }
}
