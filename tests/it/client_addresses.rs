//! Who the CC thinks a client is, and what wrong credentials from it cost (issue
//! 12 items 14, 24, 25): failed credentials slow one address down without locking
//! the right credential out, and behind a trusted load balancer (PROXY v2 or
//! X-Forwarded-For) the limits count the client it names. HAProxy itself: `haproxy`.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{cluster, TestCluster};

/// Items 14, 24, 25: wrong credentials from one address get 429 after ten, but
/// the right credential from that address is still served (no lock-out).
#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_slow_down_but_never_lock_out_the_right_one() {
    let c = cluster(|s| s.workservers = 0).await;
    let op = c.operator().unwrap();
    let mut codes = Vec::new();
    for _ in 0..12 {
        let r = op
            .http()
            .get(op.url("/v1/status"))
            .bearer_auth("not-a-key-0123456789")
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert!(r.headers().contains_key(reqwest::header::RETRY_AFTER));
        }
        codes.push(r.status().as_u16());
    }
    assert_eq!(&codes[..10], &[401; 10]);
    assert_eq!(&codes[10..], &[429, 429], "{codes:?}");
    assert!(
        op.status().await.unwrap().is_ok(),
        "the right operator key is locked out"
    );

    let reg = |pass: String| {
        let op = op.clone();
        async move {
            op.http()
                .post(op.url("/v1/workservers/register"))
                .json(&json!({"name": "w1", "cc_pass": pass, "capacity": 1, "version": "t"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(reg("wrong-pass-0123456789".into()).await);
    }
    assert_eq!(&codes[10..], &[429, 429], "{codes:?}");
    assert_eq!(
        reg(c.info.cc_pass.clone()).await,
        201,
        "the right cc_pass is locked out"
    );
}

/// One request through a fake load balancer at `from` (a loopback address): a
/// PROXY v2 header naming `client` (when given), then TLS and a GET of
/// /v1/status with `key`. The HTTP status, or None when the CC would not talk.
async fn status_via(c: &TestCluster, from: &str, client: Option<&str>, key: &str) -> Option<u16> {
    status_via_with(c, from, client, key, &[]).await
}

/// As [`status_via`], with `X-Forwarded-For` header lines (each value one line).
async fn status_via_with(
    c: &TestCluster,
    from: &str,
    client: Option<&str>,
    key: &str,
    xff: &[&str],
) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port: u16 = c.info.cc_url.rsplit(':').next().unwrap().parse().unwrap();
    let server: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut tcp = sock.connect(server).await.ok()?;
    if let Some(client) = client {
        let h = testamur_cc::proxy::header_v2(client.parse().unwrap(), server);
        tcp.write_all(&h).await.ok()?;
    }
    let tls = std::sync::Arc::new(testamur_common::tls::client_config(&c.info.ca_cert).unwrap());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .ok()?
    .ok()?;
    let xff: String = xff
        .iter()
        .map(|v| format!("X-Forwarded-For: {v}\r\n"))
        .collect();
    let req = format!("GET /v1/status HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n{xff}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Items 14 and 24: behind a trusted load balancer that sends the PROXY protocol
/// v2 (HAProxy `send-proxy-v2`), the rate limits count the client it names, so
/// one bad client does not get everyone behind the balancer 429s; an address not
/// in `trusted_proxies` cannot name a client at all.
#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_limits_count_the_client_it_names() {
    let c = cluster(|s| {
        s.workservers = 0;
        s.cc_extra = "[limits]\ntrusted_proxies = [\"127.0.0.3\"]\n".into();
    })
    .await;
    let bad = "not-a-key-0123456789";
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(status_via(&c, "127.0.0.3", Some("203.0.113.7:5000"), bad).await);
    }
    assert_eq!(&codes[10..], &[Some(429), Some(429)], "{codes:?}");
    // Another client behind the same balancer is not punished for it.
    assert_eq!(
        status_via(&c, "127.0.0.3", Some("203.0.113.8:5000"), bad).await,
        Some(401)
    );
    let good = c.info.operator_api_key.clone();
    assert_eq!(
        status_via(&c, "127.0.0.3", Some("203.0.113.7:5001"), &good).await,
        Some(200)
    );
    // The balancer's own connections without a header (health checks) still work.
    assert_eq!(status_via(&c, "127.0.0.3", None, &good).await, Some(200));
    // Not a trusted proxy: a PROXY header is not understood (the TLS handshake fails).
    assert_eq!(
        status_via(&c, "127.0.0.4", Some("203.0.113.9:5000"), &good).await,
        None
    );
}

/// Items 14 and 24: a trusted proxy that sends no PROXY header (nginx,
/// re-encrypting) names the client in `X-Forwarded-For`, and the rate limits
/// count that client: its right-most entry (the one the proxy added; entries left
/// of it are the client's own word), of the last header line. On a connection
/// with a PROXY v2 header, and from an address not in `trusted_proxies`, the
/// header is ignored: the client counted is the one the connection shows.
#[tokio::test(flavor = "multi_thread")]
async fn x_forwarded_for_from_a_trusted_proxy_names_the_client_and_from_others_is_ignored() {
    let c = cluster(|s| {
        s.workservers = 0;
        s.cc_extra = "[limits]\ntrusted_proxies = [\"127.0.0.3\"]\n".into();
    })
    .await;
    let (bad, good) = ("not-a-key-0123456789", c.info.operator_api_key.clone());
    let proxy = "127.0.0.3";
    let x = "203.0.113.7";
    // X's wrong keys: 401 ten times, then 429 for X.
    let mut codes = Vec::new();
    for _ in 0..11 {
        codes.push(status_via_with(&c, proxy, None, bad, &[x]).await);
    }
    assert_eq!(&codes[..10], &[Some(401); 10], "{codes:?}");
    assert_eq!(codes[10], Some(429), "X was not limited: {codes:?}");
    // Y behind the same proxy is served; X's right key too.
    assert_eq!(
        status_via_with(&c, proxy, None, bad, &["203.0.113.8"]).await,
        Some(401)
    );
    assert_eq!(
        status_via_with(&c, proxy, None, &good, &[x]).await,
        Some(200)
    );
    // The right-most entry is the client: X cannot hide behind a made-up entry on
    // its left, and a made-up X on the left does not get Y limited.
    assert_eq!(
        status_via_with(&c, proxy, None, bad, &[&format!("198.51.100.1, {x}")]).await,
        Some(429)
    );
    assert_eq!(
        status_via_with(&c, proxy, None, bad, &[&format!("{x}, 203.0.113.9")]).await,
        Some(401)
    );
    // Several header lines: the last line's right-most entry.
    assert_eq!(
        status_via_with(&c, proxy, None, bad, &["203.0.113.10", x]).await,
        Some(429)
    );
    assert_eq!(
        status_via_with(&c, proxy, None, bad, &[x, "203.0.113.10"]).await,
        Some(401)
    );
    // The proxy's own address was never charged with X's failures.
    assert_eq!(status_via_with(&c, proxy, None, bad, &[]).await, Some(401));
    // A PROXY v2 header names the client; X-Forwarded-For on that connection is ignored.
    assert_eq!(
        status_via_with(&c, proxy, Some("203.0.113.20:5000"), bad, &[x]).await,
        Some(401)
    );
    // From an address that is not a trusted proxy the header is ignored: naming
    // the limited X does not get it 429s, and naming a new client each time does
    // not escape its own count.
    let outsider = "127.0.0.4";
    assert_eq!(
        status_via_with(&c, outsider, None, bad, &[x]).await,
        Some(401)
    );
    let mut codes = Vec::new();
    for i in 0..10 {
        let fresh = format!("198.51.100.{}", 10 + i);
        codes.push(status_via_with(&c, outsider, None, bad, &[&fresh]).await);
    }
    assert_eq!(&codes[..9], &[Some(401); 9], "{codes:?}");
    assert_eq!(
        codes[9],
        Some(429),
        "the outsider escaped its count: {codes:?}"
    );
    assert_eq!(
        status_via_with(&c, outsider, None, &good, &[x]).await,
        Some(200)
    );
}
