//! The template catalogues of the live workservers, as this CC sees them: which
//! ones count is read from Redis (catalogs.lua: live, not draining, newest first),
//! each catalogue is stored there content-addressed, and both are cached for a
//! moment, so checking a submission costs no Redis call most of the time. Redis
//! stays the only source of truth: a workserver registering, leaving or going
//! silent counts on every CC within [`FRESH`] (at once on the CC it talked to).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testamur_common::catalog::Catalog;
use testamur_common::catalogs::Catalogs;
use tokio::sync::Mutex;

use crate::store::{Store, StoreError};

/// How long a looked-up set of catalogues is trusted before asking Redis again.
const FRESH: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Cached {
    at: Option<Instant>,
    digests: Vec<String>,
    current: Arc<Catalogs>,
    /// Catalogues by digest (immutable); only those of `digests` are kept.
    by_digest: HashMap<String, Arc<Catalog>>,
}

#[derive(Clone)]
pub struct CatalogCache {
    inner: Arc<Mutex<Cached>>,
    /// Set when a workserver registered, left or drains through this CC.
    stale: Arc<AtomicBool>,
    /// A workserver counts as live when heard from within this.
    alive_within: Duration,
}

impl CatalogCache {
    pub fn new(alive_within: Duration) -> Self {
        Self {
            inner: Arc::default(),
            stale: Arc::default(),
            alive_within,
        }
    }

    /// Forget the cached view (a workserver registered, left or drains here).
    pub fn invalidate(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// The catalogues submissions are checked against; empty until some
    /// workserver has registered one.
    pub async fn get(&self, store: &Store) -> Result<Arc<Catalogs>, StoreError> {
        let mut c = self.inner.lock().await;
        if self.stale.swap(false, Ordering::AcqRel) {
            c.at = None;
        }
        // Only catalogues are cached, never their absence: the first workserver's
        // registration (on any CC) must count at once, or submissions in the
        // next moments would go unchecked.
        if !c.current.is_empty() && c.at.is_some_and(|at| at.elapsed() < FRESH) {
            return Ok(c.current.clone());
        }
        let digests = store.live_catalog_digests(self.alive_within).await?;
        if digests != c.digests {
            let mut by_digest = HashMap::new();
            let mut list = Vec::with_capacity(digests.len());
            for d in &digests {
                let catalog = match c.by_digest.get(d) {
                    Some(k) => Some(k.clone()),
                    None => store.catalog(d).await?.map(Arc::new),
                };
                // Gone between the two reads (its workserver left): skip it.
                if let Some(k) = catalog {
                    by_digest.insert(d.clone(), k.clone());
                    list.push(k);
                }
            }
            c.by_digest = by_digest;
            c.current = Arc::new(Catalogs(list));
            c.digests = digests;
        }
        c.at = Some(Instant::now());
        Ok(c.current.clone())
    }
}
