//! Production Redis (issue 17): a primary, a replica and three Sentinels as real
//! processes on free ports; two CCs that find the primary through the Sentinels;
//! a steady stream of submissions; the primary SIGKILLed. The CCs follow the
//! failover by themselves, nothing answers 500 or hangs, and with
//! `durability = "replica"` every request that got a 202 ends downloadable
//! exactly once, also after the old primary comes back as a replica. And Redis
//! SIGKILLed and restarted from its append-only file with `appendfsync always`
//! keeps every 202. The Redis processes are tests/it/redis_nodes.rs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testamur_common::ids::CertId;

use crate::helpers::{assert_all_downloadable, cluster, dump_logs};
use crate::redis_nodes::{free_port, tls_node, wait_for, Node};
use crate::startup_checks::{cc, cc_conf_with};

/// What the submitting clients saw.
#[derive(Default)]
struct Seen {
    accepted: Vec<CertId>,
    /// 503 answers (retried with the same Idempotency-Key), with when.
    unavailable: Vec<Instant>,
    /// Anything else that is not a 202: status and message.
    wrong: Vec<String>,
    /// When a 202 came after the last 503 (the cluster acknowledging again).
    acked_at: Vec<Instant>,
}

impl Seen {
    /// What the streams saw, once they stopped; only 202s and 503s allowed.
    fn finished(seen: &Mutex<Seen>) -> Seen {
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        assert!(
            seen.wrong.is_empty(),
            "answers other than 202/503: {:?}",
            seen.wrong
        );
        seen
    }
}

/// Submits one certificate after another to CC `k` until `stop`, each retried
/// with its own Idempotency-Key until it gets an answer that is not a 503.
async fn submit_stream(
    lms: testamur::api::ApiClient,
    prefix: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut req = testamur::cmd::demo::sample_request(i);
        req.username = Some(format!("{prefix}{i:05}"));
        let key = format!("{prefix}-{i}");
        i += 1;
        loop {
            let sent =
                tokio::time::timeout(Duration::from_secs(10), lms.submit_idempotent(&req, &key))
                    .await;
            // Whether to send it again (a 503); the lock is not held across awaits.
            let retry = matches!(&sent, Ok(Ok(Err(f))) if f.status == 503);
            {
                let mut s = seen.lock().unwrap();
                match sent {
                    Err(_) => s.wrong.push(format!("{key}: no answer within 10 s")),
                    Ok(Err(e)) => s.wrong.push(format!("{key}: {e:#}")),
                    Ok(Ok(Ok(r))) => {
                        s.accepted.push(r.cert_id);
                        s.acked_at.push(Instant::now());
                    }
                    Ok(Ok(Err(f))) if f.status == 503 => s.unavailable.push(Instant::now()),
                    Ok(Ok(Err(f))) => s.wrong.push(format!("{key}: {} {}", f.status, f.message)),
                }
            }
            if retry {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sentinel_failover_with_replica_durability_keeps_every_acknowledged_request() {
    let ha = tempfile::Builder::new().prefix("tm-ha-").tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let primary = Node::redis(&ha.path().join("primary"), p1, &[]);
    let replica = Node::redis(
        &ha.path().join("replica"),
        p2,
        &["--replicaof".into(), "127.0.0.1".into(), p1.to_string()],
    );
    wait_for("the replica to sync", Duration::from_secs(20), || {
        replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    let sentinel_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let sentinels: Vec<Node> = sentinel_ports
        .iter()
        .enumerate()
        .map(|(i, p)| Node::sentinel(&ha.path().join(format!("sentinel-{i}")), *p, p1))
        .collect();
    wait_for(
        "the Sentinels to see each other and the replica",
        Duration::from_secs(30),
        || {
            sentinels.iter().all(|s| {
                let m = s.cli(&["SENTINEL", "MASTER", "tm"]);
                let lines: Vec<&str> = m.lines().collect();
                let field = |k: &str| {
                    lines
                        .iter()
                        .position(|l| *l == k)
                        .and_then(|i| lines.get(i + 1))
                        .map(|v| v.to_string())
                };
                field("num-other-sentinels").as_deref() == Some("2")
                    && field("num-slaves").as_deref() == Some("1")
            })
        },
    );

    // TESTAMUR_TEST_DURABILITY=local shows what the test holds: acknowledged
    // requests lost in the failover.
    let durability = std::env::var("TESTAMUR_TEST_DURABILITY").unwrap_or_else(|_| "replica".into());
    let addresses = sentinel_ports
        .iter()
        .map(|p| format!("\"redis://127.0.0.1:{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let c = cluster(|s| {
        s.ccs = 2;
        s.workservers = 2;
        s.ws_capacity = 4;
        s.lease_ttl_s = 4;
        s.heartbeat_interval_s = 1;
        s.cc_redis = Some(format!(
            "durability = \"{durability}\"\ndurability_timeout_ms = 500\n\n\
             [redis_sentinel]\nsentinels = [{addresses}]\nmaster_name = \"tm\"\n"
        ));
    })
    .await;
    // The cluster's own Redis is not the one in use.
    assert!(
        primary.cli(&["DBSIZE"]).trim() != "0",
        "the CCs write to the Sentinels' primary"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let streams: Vec<_> = (1..=2)
        .map(|k| {
            tokio::spawn(submit_stream(
                c.lms_at(k).unwrap(),
                format!("ha{k}-"),
                stop.clone(),
                seen.clone(),
            ))
        })
        .collect();
    // Each CC says where it writes and what a 202 waits for.
    let op = c.operator().unwrap();
    let redis = op.status().await.unwrap().unwrap().redis.unwrap();
    assert_eq!(
        (
            redis.durability.as_str(),
            redis.replicas_wanted,
            redis.replicas_connected
        ),
        (durability.as_str(), u32::from(durability == "replica"), 1)
    );
    assert_eq!(redis.primary, Some(format!("127.0.0.1:{p1}")));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = seen.lock().unwrap().accepted.len();
    assert!(
        before > 10,
        "submissions flow before the failover ({before})"
    );

    // TESTAMUR_FAILOVERS (default 1) failovers in a row, the roles swapping each
    // time (scripts/failover-soak.sh runs many; docs/RELIABILITY.md has figures).
    let rounds: usize = std::env::var("TESTAMUR_FAILOVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let ports = [p1, p2];
    let dirs = [ha.path().join("primary"), ha.path().join("replica")];
    let mut nodes = [primary, replica];
    let mut cur = 0;
    for round in 1..=rounds {
        let (pi, ri) = (cur, 1 - cur);
        // The replica falls behind for a moment, then the primary dies: the
        // primary drops its link to the replica (frozen for 0.6 s, less than the
        // Sentinels' down-after of 1 s, so it cannot link again), and what the
        // primary acknowledged meanwhile never reaches the replica that gets
        // promoted. With durability "replica" it acknowledged none of it (each
        // write waited for the replica, then answered 503).
        let frozen_pid = nodes[ri].pid();
        crate::helpers::signal(frozen_pid, "STOP");
        nodes[pi].cli(&["CLIENT", "KILL", "TYPE", "replica"]);
        tokio::time::sleep(Duration::from_millis(600)).await;
        nodes[pi].kill();
        crate::helpers::signal(frozen_pid, "CONT");
        let killed = Instant::now();
        // Within 10 s both CCs answer from the promoted replica (reads; writes
        // wait for a replica to confirm them, and there is none until the old
        // primary is back).
        let mut served = [None, None];
        while served.iter().any(Option::is_none) {
            assert!(
                killed.elapsed() < Duration::from_secs(10),
                "failover {round}: the CCs did not serve from the promoted replica within 10 s\n{}",
                dump_logs(&c.dir().join("logs"))
            );
            for (k, slot) in served.iter_mut().enumerate() {
                if slot.is_some() {
                    continue;
                }
                let api = testamur::api::ApiClient::new(
                    &c.info.cc_url_of(k + 1),
                    Some(&c.info.ca_cert),
                    op.key(),
                )
                .unwrap();
                let promoted = nodes[ri].cli(&["ROLE"]).starts_with("master");
                if let Ok(Ok(_)) = api.status().await {
                    if promoted {
                        *slot = Some(killed.elapsed());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("failover {round}: CCs served from the promoted replica after {served:?}");
        // The new primary has no replica until the old one is back: status says so.
        let redis = op.status().await.unwrap().unwrap().redis.unwrap();
        assert_eq!(
            (redis.primary, redis.replicas_connected),
            (Some(format!("127.0.0.1:{}", ports[ri])), 0)
        );

        // The old primary comes back; the Sentinels make it a replica of the new one.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let back = Instant::now();
        nodes[pi] = Node::redis(&dirs[pi], ports[pi], &[]);
        wait_for(
            "the old primary to rejoin as a replica",
            Duration::from_secs(30),
            || {
                nodes[pi]
                    .cli(&["INFO", "replication"])
                    .contains("master_link_status:up")
            },
        );
        // Writes are confirmed again.
        let resumed = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let s = seen.lock().unwrap();
            if s.acked_at.iter().any(|t| *t > resumed) {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(40),
                "failover {round}: no submission acknowledged after the old primary rejoined\n{}",
                dump_logs(&c.dir().join("logs"))
            );
        }
        // Before the next round every Sentinel must know the new replica as up.
        let name = format!("127.0.0.1:{}", ports[pi]);
        wait_for(
            "the Sentinels to see the new replica",
            Duration::from_secs(30),
            || {
                sentinels.iter().all(|s| {
                    let out = s.cli(&["SENTINEL", "REPLICAS", "tm"]);
                    let lines: Vec<&str> = out.lines().collect();
                    lines.iter().position(|l| *l == name).is_some_and(|i| {
                        lines[i..]
                            .iter()
                            .position(|l| *l == "flags")
                            .and_then(|j| lines.get(i + j + 1))
                            == Some(&"slave")
                    })
                })
            },
        );
        cur = ri;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for s in streams {
        s.await.unwrap();
    }
    let seen = Seen::finished(&seen);
    assert!(
        !seen.unavailable.is_empty(),
        "the stream saw the failover (503s while no replica could confirm)"
    );
    // Every acknowledged request is there, once: one certificate each, and each
    // downloadable exactly once.
    let mut ids = seen.accepted.clone();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.dedup();
    assert_eq!(
        ids.len(),
        seen.accepted.len(),
        "a certificate id acknowledged twice"
    );
    assert_all_downloadable(&c, &ids).await;
    // Nothing more than what was acknowledged: every request was retried until it
    // got its 202, so the certificates Redis counts are exactly those.
    let status = c.operator().unwrap().status().await.unwrap().unwrap();
    let counted: i64 = status.certificates.values().sum();
    assert_eq!(
        counted as usize,
        ids.len(),
        "certificates in Redis: {:?}",
        status.certificates
    );
    let total: i64 = nodes[1 - cur].cli(&["DBSIZE"]).trim().parse().unwrap();
    assert!(
        total > 0,
        "the old primary holds the data again as a replica"
    );
    eprintln!(
        "{rounds} failover(s): {} acknowledged, {} answers 503 meanwhile",
        ids.len(),
        seen.unavailable.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_with_appendfsync_always_keeps_every_acknowledged_request() {
    let mut c = cluster(|s| {
        s.workservers = 1;
        s.ws_capacity = 4;
    })
    .await;
    c.redis.set_appendfsync("always").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stream = tokio::spawn(submit_stream(
        c.lms().unwrap(),
        "aof-".into(),
        stop.clone(),
        seen.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.redis.crash_and_restart().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    stream.await.unwrap();
    let seen = Seen::finished(&seen);
    assert!(
        seen.accepted.len() > 20,
        "submissions flowed ({})",
        seen.accepted.len()
    );
    assert_all_downloadable(&c, &seen.accepted).await;
}

#[test]
fn the_cc_reaches_redis_and_sentinels_over_tls_with_their_passwords() {
    let dir = tempfile::Builder::new()
        .prefix("tm-tls-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    // Makes the CA and the certificate for localhost and 127.0.0.1 in d/tls.
    cc_conf_with(d, "redis_url = \"redis://127.0.0.1:1\"", None);
    let tls = d.join("tls");
    let (p, sp) = (free_port(), free_port());
    let _primary = tls_node(
        &d.join("primary"),
        &tls,
        p,
        String::new(),
        "redis-pw",
        false,
    );
    let _sentinel = tls_node(
        &d.join("sentinel"),
        &tls,
        sp,
        format!(
            "tls-replication yes\nsentinel monitor tm 127.0.0.1 {p} 1\nsentinel auth-pass tm redis-pw\n"
        ),
        "sentinel-pw",
        true,
    );

    // One Redis over TLS: with the CA that signed its certificate...
    let conf = cc_conf_with(
        d,
        &format!("redis_url = \"rediss://localhost:{p}\"\nredis_ca_certs = \"tls/ca.pem\""),
        Some("redis-pw"),
    );
    let (ok, out, err) = cc(&conf, true);
    assert!(
        ok && out.contains("ok"),
        "rediss:// with redis_ca_certs: {out}{err}"
    );
    // ...and without it (the system's roots do not know the test CA).
    let conf = cc_conf_with(
        d,
        &format!("redis_url = \"rediss://localhost:{p}\""),
        Some("redis-pw"),
    );
    let (ok, _, err) = cc(&conf, true);
    assert!(
        !ok && err.contains("redis_url") && err.contains("redis_ca_certs"),
        "an unknown CA is refused and the message says what to set: {err}"
    );

    // Through a TLS Sentinel with its own password, to the primary over TLS.
    let sentinel = |password: &str| {
        format!(
            "redis_ca_certs = \"tls/ca.pem\"\n[redis_sentinel]\nsentinels = [\"rediss://localhost:{sp}\"]\n\
             master_name = \"tm\"\npassword = \"{password}\"\ntls = true\n"
        )
    };
    let conf = cc_conf_with(d, &sentinel("sentinel-pw"), Some("redis-pw"));
    let (ok, out, err) = cc(&conf, true);
    assert!(
        ok && out.contains("ok") && out.contains("redis_sentinel"),
        "TLS Sentinel: {out}{err}"
    );
    let conf = cc_conf_with(d, &sentinel("wrong-pw"), Some("redis-pw"));
    let (ok, _, err) = cc(&conf, true);
    assert!(
        !ok && err.contains("redis_sentinel.password"),
        "a wrong Sentinel password names its key: {err}"
    );
}

/// With `durability = "replica"` an LMS never hears of an outcome a failover
/// could still lose: a completion the replicas have not confirmed gets no
/// callback until they have.
#[tokio::test(flavor = "multi_thread")]
async fn with_replica_durability_no_callback_goes_out_before_replicas_confirm() {
    let c = cluster(|s| {
        s.workservers = 1;
        s.cc_redis = Some(
            "redis_url = \"{redis_url}\"\ndurability = \"replica\"\ndurability_timeout_ms = 200"
                .into(),
        );
        s.cc_extra = format!(
            "{}timeout_s = 1\n",
            crate::callbacks::callbacks_conf(100, 30)
        );
    })
    .await;
    // A replica of the cluster's Redis (which gets a TCP port for it).
    let port = free_port();
    c.redis
        .cli(&["CONFIG", "SET", "port", &port.to_string()])
        .unwrap();
    let dir = c.dir().join("replica");
    let replica_args = [
        "--replicaof".to_owned(),
        "127.0.0.1".to_owned(),
        port.to_string(),
    ];
    let mut replica = Node::redis(&dir, free_port(), &replica_args);
    let synced = |n: &Node| {
        n.cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    };
    wait_for("the replica to sync", Duration::from_secs(20), || {
        synced(&replica)
    });
    let rx = crate::callbacks::Receiver::start(&c, 0).await;
    let lms = c.lms().unwrap();

    // Acknowledged while the replica is there; the workserver is frozen, so the
    // job completes only once the replica is gone.
    let ws = c.ws_pid(1).unwrap();
    crate::helpers::signal(ws, "STOP");
    let mut req = testamur::cmd::demo::sample_request(1);
    req.callback_url = Some(rx.url.clone());
    // As an LMS does, retried with the same Idempotency-Key while the CC answers
    // 503: on a loaded machine the replica can miss the 200 ms confirmation.
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        match lms
            .submit_idempotent(&req, "replica-durability-1")
            .await
            .unwrap()
        {
            Ok(r) => break r.cert_id,
            Err(e) if e.status == 503 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("submit: {e:?}"),
        }
    };
    replica.kill();
    crate::helpers::signal(ws, "CONT");
    // The primary records the completion (its answer to the workserver is 503),
    // but the callback waits.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cert = lms.certificate(id.as_str()).await.unwrap().unwrap();
        if cert.state == testamur_common::state::CertState::Downloadable {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the completion never reached the primary"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        rx.deliveries().is_empty(),
        "a callback went out before any replica had the completion: {:?}",
        rx.deliveries()
    );
    // The replica is back: the callback goes out (once its claim lapses).
    let mut replica = Node::redis(&dir, free_port(), &replica_args);
    wait_for("the replica to sync again", Duration::from_secs(20), || {
        synced(&replica)
    });
    rx.wait_for(&c, "delivered after the replica came back", |d| {
        d.iter().any(|d| d.answered == 200)
    })
    .await;
    replica.kill();
}
