//! HTTPS serving: a TLS accept loop over a bound listener, HTTP/1.1 per connection,
//! and a graceful shutdown that lets in-flight requests finish (with a deadline).
//!
//! Every connection holds a place under the caps of [`crate::limits`] (overall and
//! per address) from accept to close; the TLS handshake, a request's head and its
//! body each have to arrive within `limits.request_timeout`, so a client that
//! trickles bytes is cut off instead of holding a place for ever. Behind a trusted
//! load balancer the client is the one its PROXY v2 header (or `X-Forwarded-For`)
//! names ([`crate::proxy`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use testamur_common::config::LimitsConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::app::PeerAddr;
use crate::limits::{ConnLimits, DeadlineBody, Refused};
use crate::proxy;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: LimitsConfig,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let caps = ConnLimits::new(limits.max_connections, limits.max_connections_per_ip);
    let timeout = limits.request_timeout;
    let proxies = Arc::new(limits.trusted_proxies.clone());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(conn) => conn,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let trusted = proxy::is_trusted(&proxies, peer.ip());
        // Anyone else is counted at once, before a byte is read.
        let early = if trusted {
            None
        } else {
            match caps.admit(peer.ip()) {
                Ok(p) => Some(p),
                Err(why) => {
                    refused(&why, peer);
                    drop(tcp);
                    continue;
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let caps = caps.clone();
        tokio::spawn(async move {
            let mut tcp = tcp;
            // A trusted proxy's connection: the client it names (PROXY v2), and its
            // place under the caps of that client.
            let (client, _permit, via_proxy) = match early {
                Some(p) => (peer, p, false),
                None => {
                    let named = match proxy::read_header(&mut tcp, timeout).await {
                        Ok(named) => named,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "bad PROXY header from a trusted proxy");
                            return;
                        }
                    };
                    let admitted = match named {
                        Some(c) => caps.admit(c.ip()).map(|p| (c, p)),
                        None => caps.admit_proxy(peer.ip()).map(|p| (peer, p)),
                    };
                    match admitted {
                        Ok((c, p)) => (c, p, named.is_none()),
                        Err(why) => {
                            refused(&why, named.unwrap_or(peer));
                            return;
                        }
                    }
                }
            };
            let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let (parts, body) = req.into_parts();
                let mut req = hyper::Request::from_parts(
                    parts,
                    axum::body::Body::new(DeadlineBody::new(body, timeout)),
                );
                // A trusted proxy that sent no PROXY header may name the client
                // in X-Forwarded-For (nginx); nobody else can.
                let addr = match via_proxy
                    .then(|| proxy::forwarded_for(req.headers()))
                    .flatten()
                {
                    Some(ip) => SocketAddr::new(ip, 0),
                    None => client,
                };
                req.extensions_mut().insert(PeerAddr(addr));
                app.clone().oneshot(req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("no longer accepting connections; finishing in-flight requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {SHUTDOWN_GRACE:?}; closing them");
    }
}

fn refused(why: &Refused, peer: SocketAddr) {
    crate::metrics::metrics().connections_refused(why);
    tracing::debug!(%peer, ?why, "connection refused: too many open connections");
}

impl crate::metrics::Metrics {
    fn connections_refused(&self, why: &Refused) {
        let reason = match why {
            Refused::Total => "max_connections",
            Refused::PerAddr => "max_connections_per_ip",
        };
        self.connections_refused
            .get_or_create(&crate::metrics::ReasonLabels { reason })
            .inc();
    }
}
