//! What one client can hold of a CC: a cap on open connections overall and per
//! address (IPv6 grouped by /64, since one host gets a whole /64), and a deadline
//! for a request's body, so that slow or idle clients cannot exhaust sockets,
//! memory or the workers' and LMSs' turn (cc.conf `[limits]`).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// The address a per-address limit counts under: IPv4 as is, IPv6 by its /64
/// (IPv4-mapped IPv6 addresses count as their IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrKey {
    V4(u32),
    V6Net(u64),
}

impl AddrKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(u32::from(v4)),
                None => Self::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl std::fmt::Display for AddrKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::V4(a) => write!(f, "{}", std::net::Ipv4Addr::from(*a)),
            Self::V6Net(n) => {
                let a = std::net::Ipv6Addr::from((*n as u128) << 64);
                write!(f, "{a}/64")
            }
        }
    }
}

/// Counts open connections; a [`ConnPermit`] is held for each one.
pub struct ConnLimits {
    max_total: usize,
    max_per_addr: usize,
    open: Mutex<(usize, HashMap<AddrKey, usize>)>,
}

/// Why a connection was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerAddr,
}

impl ConnLimits {
    pub fn new(max_total: usize, max_per_addr: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_addr,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A permit for one more connection from `ip`, or why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refused> {
        let key = AddrKey::of(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 >= self.max_total {
            return Err(Refused::Total);
        }
        let n = open.1.entry(key).or_insert(0);
        if *n >= self.max_per_addr {
            return Err(Refused::PerAddr);
        }
        *n += 1;
        open.0 += 1;
        Ok(ConnPermit {
            limits: self.clone(),
            key,
        })
    }

    /// A permit counted only against the overall cap: a trusted proxy's
    /// connection that names no client carries many clients.
    pub fn admit_proxy(self: &Arc<Self>, proxy: IpAddr) -> Result<ConnPermit, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 >= self.max_total {
            return Err(Refused::Total);
        }
        open.0 += 1;
        let key = AddrKey::of(proxy);
        *open.1.entry(key).or_insert(0) += 1;
        Ok(ConnPermit {
            limits: self.clone(),
            key,
        })
    }

    /// Connections open now (overall).
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

/// One open connection; dropping it frees its place.
pub struct ConnPermit {
    limits: Arc<ConnLimits>,
    key: AddrKey,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.key);
            }
        }
    }
}

/// The error a request body gives when it did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// A request body that fails with [`BodyTimedOut`] once its deadline passes
/// before its end was received.
pub struct DeadlineBody<B> {
    inner: B,
    sleep: Pin<Box<Sleep>>,
    limit: Duration,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `err` (or what caused it) is a body that did not arrive in time.
pub fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(AddrKey::of(a), AddrKey::of(b));
        assert_ne!(AddrKey::of(a), AddrKey::of(c));
        let m: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(AddrKey::of(m), AddrKey::of(v4));
        assert_eq!(AddrKey::of(a).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn caps_per_address_and_overall_and_frees_on_drop() {
        let l = ConnLimits::new(3, 2);
        let x: IpAddr = "10.0.0.1".parse().unwrap();
        let y: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = l.admit(x).unwrap();
        let _p2 = l.admit(x).unwrap();
        assert_eq!(l.admit(x).err(), Some(Refused::PerAddr));
        let _p3 = l.admit(y).unwrap();
        assert_eq!(l.admit(y).err(), Some(Refused::Total));
        drop(p1);
        assert_eq!(l.open(), 2);
        let _p4 = l.admit(x).unwrap();
    }
}
