//! Deliveries in flight per destination host, so that one LMS whose endpoint
//! stalls (accepts connections and never answers) holds at most
//! `callbacks.per_host_concurrency` of this CC's delivery slots instead of all of
//! them. The claim script gets these counts and leaves the callbacks of a full
//! host parked in Redis (pending, no attempt counted) until one of its deliveries
//! ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use url::Url;

/// The name a callback URL's destination is counted under: the host name
/// (lowercase, without a trailing dot) or address, whatever the port, so a second
/// port on the same host shares its limit.
pub fn host_key(url: &Url) -> String {
    url.host_str()
        .unwrap_or("")
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// This CC's deliveries in flight, by host.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<HashMap<String, usize>>>);

impl InFlight {
    /// Count one delivery to `host` until the returned guard is dropped (also
    /// when the delivery task panics).
    pub fn start(&self, host: &str) -> InFlightGuard {
        *self
            .0
            .lock()
            .expect("in-flight map poisoned")
            .entry(host.to_owned())
            .or_default() += 1;
        InFlightGuard {
            map: self.clone(),
            host: host.to_owned(),
        }
    }

    /// Every host with deliveries in flight, and how many.
    pub fn snapshot(&self) -> Vec<(String, usize)> {
        self.0
            .lock()
            .expect("in-flight map poisoned")
            .iter()
            .map(|(h, n)| (h.clone(), *n))
            .collect()
    }
}

pub struct InFlightGuard {
    map: InFlight,
    host: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let Ok(mut m) = self.map.0.lock() else {
            return;
        };
        if let Some(n) = m.get_mut(&self.host) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_whatever_the_port_or_case() {
        let k = |u: &str| host_key(&Url::parse(u).unwrap());
        assert_eq!(k("https://LMS.Example.org/cb"), "lms.example.org");
        assert_eq!(k("https://lms.example.org.:8443/cb"), "lms.example.org");
        assert_eq!(k("https://[2606:4700::1]:444/"), "[2606:4700::1]");
        assert_eq!(k("https://127.0.0.1:9/x"), "127.0.0.1");
        // A backslash is a path separator in https URLs: the host is what is called.
        assert_eq!(k("https://evil.example\\@good.example/"), "evil.example");
    }

    #[test]
    fn guards_count_and_release() {
        let f = InFlight::default();
        let a = f.start("a");
        let a2 = f.start("a");
        let _b = f.start("b");
        let mut s = f.snapshot();
        s.sort();
        assert_eq!(s, vec![("a".into(), 2), ("b".into(), 1)]);
        drop(a);
        drop(a2);
        assert_eq!(f.snapshot(), vec![("b".into(), 1)]);
    }
}
