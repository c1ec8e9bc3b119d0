//! `testamur status`: the cluster's status, readable.

use std::process::ExitCode;

use super::target::{TargetArgs, Want};

pub async fn run(a: TargetArgs) -> anyhow::Result<ExitCode> {
    let client = a.client(Want::Operator)?;
    let s = match client.status().await? {
        Ok(s) => s,
        Err(f) => anyhow::bail!("the CC refused: {}", f.message),
    };
    println!("command center {}", s.cc_name);
    println!(
        "queue: {} waiting (oldest {:.1}s), {} leased, {} completed in the last minute",
        s.queue_depth, s.oldest_waiting_job_age_s, s.leased, s.throughput_last_minute
    );
    let counts: Vec<String> = s
        .certificates
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("certificates: {}", counts.join(", "));
    println!("workservers:");
    for w in &s.workservers {
        println!(
            "  {:<16} {:<6} in flight {:>3}/{:<3} completed {:>6} failed {:>4}{}  last heartbeat {}",
            w.name,
            if w.alive { "alive" } else { "DEAD" },
            w.in_flight,
            w.capacity,
            w.completed,
            w.failed,
            if w.draining { " draining" } else { "" },
            w.last_heartbeat
        );
        if let Some(conflict) = &w.name_conflict {
            println!("    NAME CONFLICT: {conflict}");
        }
    }
    println!(
        "callbacks: {} waiting for delivery, {} dead letters{}",
        s.callbacks_pending,
        s.dead_letters,
        if s.dead_letters > 0 {
            " (list: GET /v1/callbacks/dead; replay: POST /v1/callbacks/replay)"
        } else {
            ""
        }
    );
    for l in &s.status_lists {
        println!(
            "status list {}: {} of {} changes published{}{}",
            l.list,
            l.published,
            l.changes,
            l.published_at
                .as_deref()
                .map(|t| format!(" (at {t})"))
                .unwrap_or_default(),
            if l.publishing { ", publishing" } else { "" }
        );
    }
    if !s.recent_errors.is_empty() {
        println!("recent errors:");
        for e in s.recent_errors.iter().take(10) {
            println!("  {} cert {}: {}", e.at, e.cert_id, e.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}
