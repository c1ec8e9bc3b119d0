//! Prometheus metrics of this CC (`GET /metrics`, OpenMetrics text). Counters and
//! histograms count what this CC process did (sum them over CCs); gauges describe
//! the cluster, read from Redis at scrape time (the same on every CC). Every
//! metric is documented in docs/OPERATIONS.md.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// A known method, else `other` (never the method as sent).
    pub method: &'static str,
    /// The route template (`/v1/certificates/{cert_id}`), or `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkserverLabels {
    pub workserver: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn work_histogram() -> Histogram {
    // 0.25 ms .. ~8 s
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    /// enqueued, leased, completed, failed_requeued, failed_final, expired
    pub jobs: Family<EventLabels, Counter>,
    /// delivered, retried, dead
    pub callbacks: Family<EventLabels, Counter>,
    pub render_seconds: Family<WorkserverLabels, Histogram>,
    pub sign_seconds: Family<WorkserverLabels, Histogram>,
    pub store_seconds: Family<WorkserverLabels, Histogram>,
    pub redis_errors: Counter,
    /// Connections closed at accept: max_connections, max_connections_per_ip.
    pub connections_refused: Family<ReasonLabels, Counter>,
    // Cluster gauges, set from Redis when scraped.
    pub queue_depth: Gauge,
    pub leased: Gauge,
    pub certificates: Family<StateLabels, Gauge>,
    pub oldest_waiting: Gauge<f64, AtomicU64>,
    pub workservers_alive: Gauge,
    pub workservers_registered: Gauge,
    pub dead_letters: Gauge,
    pub callbacks_pending: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let mut m = Self {
            registry: Registry::with_prefix("testamur"),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            jobs: Family::default(),
            callbacks: Family::default(),
            render_seconds: Family::new_with_constructor(work_histogram),
            sign_seconds: Family::new_with_constructor(work_histogram),
            store_seconds: Family::new_with_constructor(work_histogram),
            redis_errors: Counter::default(),
            connections_refused: Family::default(),
            queue_depth: Gauge::default(),
            leased: Gauge::default(),
            certificates: Family::default(),
            oldest_waiting: Gauge::default(),
            workservers_alive: Gauge::default(),
            workservers_registered: Gauge::default(),
            dead_letters: Gauge::default(),
            callbacks_pending: Gauge::default(),
        };
        let r = &mut m.registry;
        r.register(
            "http_requests",
            "HTTP requests answered by this CC, by method, route and status",
            m.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route",
            m.http_duration.clone(),
        );
        r.register(
            "jobs",
            "Job events on this CC: enqueued, leased, completed, failed_requeued, failed_final, expired (lease ran out; re-queued or ended by the reaper); status_list_leased, status_list_published (Bitstring Status List publications, not counted in the others)",
            m.jobs.clone(),
        );
        r.register(
            "callbacks",
            "Callback delivery attempts by this CC: delivered, retried (failed, will retry), dead (failed for the last time)",
            m.callbacks.clone(),
        );
        r.register(
            "render_seconds",
            "Time to render one certificate, as reported by each workserver (by name)",
            m.render_seconds.clone(),
        );
        r.register(
            "sign_seconds",
            "Time to sign and check one certificate, as reported by each workserver",
            m.sign_seconds.clone(),
        );
        r.register(
            "store_seconds",
            "Time to publish one certificate's files, as reported by each workserver",
            m.store_seconds.clone(),
        );
        r.register(
            "connections_refused",
            "Connections this CC closed as soon as they were accepted, by the limit they hit: max_connections or max_connections_per_ip ([limits] in cc.conf)",
            m.connections_refused.clone(),
        );
        r.register(
            "redis_errors",
            "Redis calls of this CC that failed (Redis unreachable, loading or timing out)",
            m.redis_errors.clone(),
        );
        r.register(
            "queue_depth",
            "Jobs waiting to be leased (cluster)",
            m.queue_depth.clone(),
        );
        r.register(
            "leased_jobs",
            "Jobs leased to workservers now (cluster)",
            m.leased.clone(),
        );
        r.register(
            "certificates",
            "Certificates per state (cluster)",
            m.certificates.clone(),
        );
        r.register(
            "oldest_waiting_job_age_seconds",
            "Age of the oldest job waiting to be leased; 0 when none (cluster)",
            m.oldest_waiting.clone(),
        );
        r.register(
            "workservers_alive",
            "Workservers heard from within 3 heartbeat intervals (cluster)",
            m.workservers_alive.clone(),
        );
        r.register(
            "workservers_registered",
            "Workservers registered, alive or not (cluster)",
            m.workservers_registered.clone(),
        );
        r.register(
            "callback_dead_letters",
            "Callbacks that failed every attempt and wait for a replay (cluster)",
            m.dead_letters.clone(),
        );
        r.register(
            "callbacks_pending",
            "Callbacks waiting for a delivery attempt (cluster)",
            m.callbacks_pending.clone(),
        );
        // Every event shows (as 0) before it first happens, so rates and alerts
        // work from the start.
        for event in [
            "enqueued",
            "leased",
            "completed",
            "failed_requeued",
            "failed_final",
            "expired",
            "status_list_leased",
            "status_list_published",
        ] {
            let _ = m.jobs.get_or_create(&EventLabels { event });
        }
        for event in ["delivered", "retried", "dead"] {
            let _ = m.callbacks.get_or_create(&EventLabels { event });
        }
        m
    }

    pub fn job(&self, event: &'static str, n: u64) {
        self.jobs.get_or_create(&EventLabels { event }).inc_by(n);
    }

    pub fn callback(&self, event: &'static str) {
        self.callbacks.get_or_create(&EventLabels { event }).inc();
    }

    /// The text exposition (OpenMetrics 1.0, which Prometheus reads).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}
