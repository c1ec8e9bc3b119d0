//! Client addresses behind a load balancer. Connections from a trusted proxy
//! (cc.conf `[limits] trusted_proxies`) may start with a PROXY protocol v2 header
//! (HAProxy `send-proxy-v2`), which names the client; requests on a trusted
//! proxy's connection without one may name it in `X-Forwarded-For` (nginx). The
//! per-address connection cap and the credential rate limits then count the real
//! client, not the balancer. From anyone else both are ignored: an outsider
//! cannot choose the address it is counted under.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use std::time::Duration;
pub use testamur_common::cidr::Cidr;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The PROXY protocol v2 signature.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

pub fn is_trusted(proxies: &[Cidr], ip: IpAddr) -> bool {
    proxies.iter().any(|c| c.contains(ip))
}

/// Why a trusted proxy's header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("the PROXY header did not arrive in time")]
    Timeout,
    #[error("a malformed PROXY v2 header: {0}")]
    Malformed(&'static str),
}

/// On a trusted proxy's connection: if it starts with a PROXY v2 header, read it
/// (exactly, leaving the TLS bytes after it) and return the client address it
/// names (`None` for a LOCAL command, e.g. the proxy's own health check, or an
/// address family we do not use). Without the header, nothing is read.
pub async fn read_header(
    tcp: &mut TcpStream,
    timeout: Duration,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    tokio::time::timeout(timeout, read_header_inner(tcp))
        .await
        .map_err(|_| ProxyHeaderError::Timeout)?
}

async fn read_header_inner(tcp: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut head = [0u8; 16];
    // Wait until 16 bytes are there (or the peer stops sending), then look.
    loop {
        let n = tcp.peek(&mut head).await?;
        let k = n.min(12);
        if n == 0 || head[..k] != SIGNATURE[..k] {
            return Ok(None); // TLS (0x16 ...), not a PROXY header
        }
        if n >= 16 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tcp.read_exact(&mut head).await?;
    let fixed = parse_fixed(&head)?;
    let mut body = vec![0u8; fixed.len];
    tcp.read_exact(&mut body).await?;
    parse_addresses(fixed.command, fixed.family, &body)
}

/// The fixed 16-byte part of a PROXY v2 header (after the signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedPart {
    pub command: u8,
    pub family: u8,
    /// Length of the address block that follows.
    pub len: usize,
}

/// Check the first 16 bytes of a PROXY v2 header: signature, version, and a
/// length we are willing to read.
pub fn parse_fixed(head: &[u8; 16]) -> Result<FixedPart, ProxyHeaderError> {
    if head[..12] != SIGNATURE {
        return Err(ProxyHeaderError::Malformed("no PROXY v2 signature"));
    }
    if head[12] >> 4 != 2 {
        return Err(ProxyHeaderError::Malformed("not version 2"));
    }
    let len = u16::from_be_bytes([head[14], head[15]]) as usize;
    if len > 2048 {
        return Err(ProxyHeaderError::Malformed("longer than 2048 bytes"));
    }
    Ok(FixedPart {
        command: head[12] & 0x0f,
        family: head[13],
        len,
    })
}

/// A whole PROXY v2 header at the start of `bytes`, read by the same steps as
/// [`read_header`]: the client address it names and the header's length (where
/// the TLS bytes start). `Ok(None)` when `bytes` does not start with the
/// signature (nothing would be read); an error when it is cut short. For the
/// fuzz targets and tools.
pub fn parse_header(bytes: &[u8]) -> Result<Option<(Option<SocketAddr>, usize)>, ProxyHeaderError> {
    let k = bytes.len().min(12);
    if bytes.is_empty() || bytes[..k] != SIGNATURE[..k] {
        return Ok(None);
    }
    let short = || ProxyHeaderError::Io(std::io::ErrorKind::UnexpectedEof.into());
    let head: &[u8; 16] = bytes
        .get(..16)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(short)?;
    let fixed = parse_fixed(head)?;
    let body = bytes.get(16..16 + fixed.len).ok_or_else(short)?;
    let addr = parse_addresses(fixed.command, fixed.family, body)?;
    Ok(Some((addr, 16 + fixed.len)))
}

/// The source address of a PROXY v2 header's body.
fn parse_addresses(
    command: u8,
    family: u8,
    body: &[u8],
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    match command {
        0 => return Ok(None), // LOCAL: the proxy speaking for itself
        1 => {}
        _ => return Err(ProxyHeaderError::Malformed("unknown command")),
    }
    match family >> 4 {
        1 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        2 if body.len() >= 36 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port)))
        }
        1 | 2 => Err(ProxyHeaderError::Malformed("address block too short")),
        _ => Ok(None), // unix sockets or unspecified: keep the proxy's address
    }
}

/// The client a trusted proxy names in `X-Forwarded-For`: the right-most entry
/// (the one the proxy added itself; the ones left of it are the client's word).
pub fn forwarded_for(headers: &axum::http::HeaderMap) -> Option<IpAddr> {
    let v = headers.get_all("x-forwarded-for").iter().next_back()?;
    let last = v.to_str().ok()?.rsplit(',').next()?.trim();
    last.parse().ok()
}

/// Writes a PROXY v2 header naming `client` (for tests and tools).
pub fn header_v2(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x21); // version 2, PROXY
    match (client, server) {
        (SocketAddr::V4(c), SocketAddr::V4(s)) => {
            out.push(0x11); // INET, STREAM
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&c.ip().octets());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&c.port().to_be_bytes());
            out.extend_from_slice(&s.port().to_be_bytes());
        }
        (c, s) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21); // INET6, STREAM
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(c).octets());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&c.port().to_be_bytes());
            out.extend_from_slice(&s.port().to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_xff() {
        for (client, server) in [
            ("203.0.113.7:4242", "10.0.0.11:8443"),
            ("[2001:db8::7]:4242", "[2001:db8::1]:8443"),
        ] {
            let client: SocketAddr = client.parse().unwrap();
            let h = header_v2(client, server.parse().unwrap());
            let got = parse_addresses(h[12] & 0x0f, h[13], &h[16..]).unwrap();
            assert_eq!(got, Some(client));
        }
        assert_eq!(parse_addresses(0, 0x11, &[0; 12]).unwrap(), None);
        assert!(parse_addresses(1, 0x11, &[0; 4]).is_err());
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4, 198.51.100.9".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some("198.51.100.9".parse().unwrap()));
    }
}
