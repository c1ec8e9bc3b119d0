//! The command center (CC): an HTTPS API in front of a Redis-held queue.
//!
//! Layout:
//! - [`app`]: the router and shared state.
//! - [`server`]: TLS accept loop and graceful shutdown.
//! - [`limits`]: connection caps (overall, per address) and the request body deadline.
//! - [`routes`]: one module per API resource.
//! - [`extract`]: JSON bodies and bearer credentials in the API's error shape.
//! - [`error`]: `ApiError`, the only error type handlers return.
//! - [`store`]: the Redis key schema and Lua scripts (nothing else touches Redis).
//! - [`startup`]: opening Redis at start-up and for `--check`, with errors naming the key to fix.
//! - [`reaper`]: re-queues jobs whose lease expired.
//! - [`callbacks`]: delivers signed callbacks to LMSs, with retries and dead letters.
//! - [`proxy`]: client addresses from trusted load balancers (PROXY v2, X-Forwarded-For).
//! - [`ratelimit`]: failed credentials counted per address; 429 past a limit.
//! - [`metrics`]: Prometheus counters, histograms and cluster gauges (`/metrics`).
//! - [`dashboard`]: the operators' HTML page (`/dashboard`) and its login.
//!
//! Architecture invariant: the CC keeps no state of its own; any number of CCs can
//! serve the same Redis.

pub mod app;
pub mod callbacks;
pub mod catalog;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod proxy;
pub mod ratelimit;
pub mod reaper;
pub mod routes;
pub mod server;
pub mod startup;
pub mod store;
pub mod unread;
pub mod verify_page;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use testamur_common::config::CcConfig;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

/// Start a CC on an already-bound listener and run until `shutdown` completes.
pub async fn run(
    config: CcConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let tls = testamur_common::tls::server_config(
        &config.ssl_certfile,
        &config.ssl_key,
        config.ssl_ca_certs.as_deref(),
    )?;
    let store = startup::open_store(&config).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let jobs_queued = Arc::new(Notify::new());
    let config = Arc::new(config);
    let reaper_interval = (config.lease_ttl / 4).clamp(
        std::time::Duration::from_millis(250),
        std::time::Duration::from_secs(1),
    );
    let reaper = tokio::spawn(reaper::run(
        store.clone(),
        reaper::Reaping {
            max_attempts: config.max_attempts,
            // The same rule as `alive` in /v1/status: three heartbeats missed.
            dead_after: 3 * config.heartbeat_interval,
            interval: reaper_interval,
            dead_letter_retention: config.callbacks.dead_letter_retention,
        },
        jobs_queued.clone(),
        stop_rx.clone(),
    ));
    let callbacks_due = Arc::new(Notify::new());
    let dispatcher = tokio::spawn(
        callbacks::Dispatcher::new(store.clone(), config.clone())
            .context("setting up the callback client ([callbacks] in cc.conf)")?
            .run(callbacks_due.clone(), stop_rx.clone()),
    );
    let state = app::AppState {
        config: config.clone(),
        store,
        jobs_queued,
        shutdown: stop_rx,
        catalog: crate::catalog::CatalogCache::new(3 * config.heartbeat_interval),
        callbacks_due,
    };
    tracing::info!(name = %config.name, addr = %listener.local_addr()?, "command center listening (HTTPS)");
    let app = app::router(state);
    server::serve(listener, tls, app, config.limits.clone(), async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    })
    .await;
    reaper.abort();
    dispatcher.abort();
    tracing::info!("command center stopped");
    Ok(())
}

pub use testamur_common::config::redact_url;
